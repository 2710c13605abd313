-- wrk script: every request is a POST with a 1 MiB body (bench/run passes it with -s).
wrk.method = "POST"
wrk.body = string.rep("a", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
