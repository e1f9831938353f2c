-- POST /api/v1/login with the benchmark user; with LOGIN_USERS=N, with the users
-- bench-0@example.com .. bench-(N-1)@example.com in turn (the lockout counts a login in
-- flight against its account until it ends, so one account refuses more than
-- lockout.max_failures concurrent logins from clients without a device token).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "bench@example.com", "password": "bench password 1"}'

local users = tonumber(os.getenv("LOGIN_USERS") or "0")
local next_user = 0

if users > 0 then
    function request()
        next_user = (next_user + 1) % users
        return wrk.format(nil, nil, nil, string.format(
            '{"email": "bench-%d@example.com", "password": "bench password 1"}', next_user))
    end
end
