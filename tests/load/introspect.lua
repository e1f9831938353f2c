-- POST /oauth2/introspect of one access token; CLIENT_AUTH is the Basic credential of a
-- confidential client, TOKEN the access token.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("CLIENT_AUTH")
wrk.body = "token=" .. os.getenv("TOKEN") .. "&token_type_hint=access_token"
