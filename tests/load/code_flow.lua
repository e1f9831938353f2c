-- The authorization code flow of a logged-in browser (its cookie comes with -H), end to end:
-- GET /oauth2/authorize answers a redirect (303) with a code; the next request of the thread
-- exchanges a waiting code at POST /oauth2/token. Prints `bench flows=N` (tokens issued).
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    codes = {}
    flows = 0
    local redirect = os.getenv("REDIRECT_URI")
    authorize = "/oauth2/authorize?client_id=" .. os.getenv("CLIENT_ID")
        .. "&redirect_uri=" .. redirect:gsub("[:/]", function(c) return string.format("%%%02X", string.byte(c)) end)
        .. "&response_type=code&scope=openid%20email&state=s"
    exchange = "grant_type=authorization_code&redirect_uri=" .. redirect .. "&code="
    client_auth = "Basic " .. os.getenv("CLIENT_AUTH")
end

function request()
    local code = table.remove(codes)
    if code then
        return wrk.format("POST", "/oauth2/token", {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["Authorization"] = client_auth,
        }, exchange .. code)
    end
    return wrk.format("GET", authorize)
end

function response(status, headers, body)
    if status == 302 or status == 303 then
        local code = (headers["Location"] or headers["location"] or ""):match("[?&]code=([^&]+)")
        if code then
            table.insert(codes, code)
        end
    elseif status == 200 and body:find('"access_token"', 1, true) then
        flows = flows + 1
    end
end

function done(summary, latency, requests)
    local total = 0
    for _, thread in ipairs(threads) do
        total = total + thread:get("flows")
    end
    io.write(string.format("bench flows=%d\n", total))
end
