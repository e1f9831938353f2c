-- POST /api/v1/token/refresh along refresh-token chains: every answer's refresh token is
-- the one presented next, so each request is a real rotation (never a reuse within the
-- grace period). REFRESH_TOKENS names a file of refresh tokens, one a line; each wrk thread
-- takes its own share of them (thread i of n takes lines i, i + n, ...).
--
-- wrk keeps one Lua state per thread and does not say which connection an answer belongs
-- to, so each thread keeps a queue of tokens: request() takes the oldest, response() puts
-- back the new one. Seed at least as many tokens per thread as connections per thread.

local threads = {}
local counter = 0

function setup(thread)
    counter = counter + 1
    thread:set("thread_index", counter)
    table.insert(threads, thread)
    for _, t in ipairs(threads) do
        t:set("thread_count", counter)
    end
end

local queue = {}
local head = 1
local tail = 0

local function push(token)
    tail = tail + 1
    queue[tail] = token
end

local function pop()
    if head > tail then
        return nil
    end
    local token = queue[head]
    queue[head] = nil
    head = head + 1
    return token
end

function init(args)
    local path = os.getenv("REFRESH_TOKENS")
    assert(path, "set REFRESH_TOKENS to a file of refresh tokens, one a line")
    local index, count = thread_index or 1, thread_count or 1
    local line_number = 0
    for line in io.lines(path) do
        if line ~= "" then
            if line_number % count == index - 1 then
                push(line)
            end
            line_number = line_number + 1
        end
    end
    assert(tail >= head, "no refresh token for this thread")
end

function request()
    local token = pop()
    if token == nil then
        -- Every token of this thread is in flight: the chains have run dry (too few seeds,
        -- or answers without a new token). A request wrk counts as non-2xx keeps it honest.
        token = "exhausted"
    end
    return wrk.format("POST", "/api/v1/token/refresh",
        { ["Content-Type"] = "application/json" },
        '{"refresh_token": "' .. token .. '"}')
end

function response(status, headers, body)
    local token = body and string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if token then
        push(token)
    end
end
