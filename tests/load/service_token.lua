-- POST /oauth2/token, client_credentials; CLIENT_AUTH is the Basic credential.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("CLIENT_AUTH")
wrk.body = "grant_type=client_credentials"
