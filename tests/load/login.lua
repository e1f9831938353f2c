-- POST /api/v1/login with the benchmark user.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "bench@example.com", "password": "bench password 1"}'
