-- POST /api/v1/signup with a new address per request (SIGNUP_PREFIX keeps runs apart); each
-- accepted sign-up queues a verification mail. Prints `bench accepted=N` at the end.
local threads = {}

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

function init(args)
    prefix = os.getenv("SIGNUP_PREFIX") .. "-" .. id
    counter = 0
    accepted = 0
end

function request()
    counter = counter + 1
    local body = string.format(
        '{"email": "bench-%s-%d@example.com", "password": "bench password 1"}', prefix, counter)
    return wrk.format("POST", "/api/v1/signup", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
    if status == 202 then
        accepted = accepted + 1
    end
end

function done(summary, latency, requests)
    local total = 0
    for _, thread in ipairs(threads) do
        total = total + thread:get("accepted")
    end
    io.write(string.format("bench accepted=%d\n", total))
end
