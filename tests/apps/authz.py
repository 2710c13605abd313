#!/usr/bin/python3
"""A FastCGI AUTHORIZER-role application for tests/auth.rs (raw protocol, no library).

Listens on the Unix socket argv[1], or, without an argument, on the socket it was given
as fd 0 (a dynamic/static application started by mod_fastcgi).  Decides by
FCGI_APACHE_ROLE:

  AUTHENTICATOR   REMOTE_USER/REMOTE_PASSWD against USERS
  AUTHORIZER      REMOTE_USER in AUTHORIZED
  ACCESS_CHECKER  request header `X-Allow: yes` (HTTP_X_ALLOW)

and, deciding per URI, refuses in the AUTHORIZER and ACCESS_CHECKER roles any request whose
SCRIPT_NAME + PATH_INFO (the URI being checked: after an internal redirect or in a
subrequest, the new one) contains `secret`.

Pass: `Status: 200`, `Variable-AUTH_VAR: v1`, `X-Plain: p1` and
`Variable-<ROLE>_INFO: role=..;sn=..;pi=..;pt=..;cl=..;pw=..;prev=..;body=..` describing what it
received (`-` when a variable was absent; `pw` is the password it saw; `prev` is AUTH_VAR as
exported by an earlier phase; `body` the number of STDIN bytes).
Fail: `Status: 401` (authenticator, authorizer) or `Status: 403` (access checker),
`X-Fail-Hdr: f1`, `Variable-AUTH_VAR: v1` and a 30 000-byte body of `Z` that must never
reach the client.

The content request's query string can force other answers:
  az=bad       a malformed header block (comm failure)
  az=weird     `Status: 302` plus Location (not 200 = fail)
  az=busy      `Status: 429` (an error status other than the default)
  az=nostatus  no Status header at all (= 200), only `Variable-NOSTATUS: 1`
"""
import socket
import sys
import urllib.parse

from fcgi_raw import STDOUT, end, listen_unix, read_request, rec

USERS = {b"alice": b"wonderland", b"bob": b"builder"}
AUTHORIZED = {b"alice"}
BIG_BODY = b"Z" * 30000


def stdout(rid, data):
    out = b""
    for i in range(0, len(data), 65535):
        out += rec(STDOUT, rid, data[i:i + 65535])
    return out + rec(STDOUT, rid)


def secret_uri(env):
    return b"secret" in env.get(b"SCRIPT_NAME", b"") + env.get(b"PATH_INFO", b"")


def respond(conn, rid, fcgi_role, env, stdin):
    role = env.get(b"FCGI_APACHE_ROLE", b"-")
    user = env.get(b"REMOTE_USER", b"")
    qs = urllib.parse.parse_qs(env.get(b"QUERY_STRING", b"").decode())
    force = qs.get("az", [""])[0]
    if fcgi_role != 2:
        ok = False
    elif role == b"AUTHENTICATOR":
        ok = USERS.get(user) is not None and USERS.get(user) == env.get(b"REMOTE_PASSWD")
    elif role == b"AUTHORIZER":
        ok = user in AUTHORIZED and not secret_uri(env)
    elif role == b"ACCESS_CHECKER":
        ok = env.get(b"HTTP_X_ALLOW") == b"yes" and not secret_uri(env)
    else:
        ok = False

    def g(name):
        return env.get(name, b"-")

    info = b";".join([
        b"role=" + role,
        b"sn=" + g(b"SCRIPT_NAME"),
        b"pi=" + g(b"PATH_INFO"),
        b"pt=" + g(b"PATH_TRANSLATED"),
        b"cl=" + g(b"CONTENT_LENGTH"),
        b"pw=" + g(b"REMOTE_PASSWD"),
        b"prev=" + g(b"AUTH_VAR"),
        b"body=" + str(len(stdin)).encode(),
    ])
    if force == "bad":
        data = b"this is not a header\r\n\r\n"
    elif force == "weird":
        data = b"Status: 302 Found\r\nLocation: /elsewhere\r\nX-Fail-Hdr: f1\r\n\r\n" + BIG_BODY
    elif force == "busy":
        data = b"Status: 429 Too Many Requests\r\nX-Fail-Hdr: f1\r\n\r\n" + BIG_BODY
    elif force == "nostatus":
        data = b"Variable-NOSTATUS: 1\r\n\r\n"
    elif ok:
        data = (b"Status: 200 OK\r\nVariable-AUTH_VAR: v1\r\nX-Plain: p1\r\nVariable-" + role + b"_INFO: "
                + info + b"\r\n\r\n")
    else:
        status = b"403 Forbidden" if role == b"ACCESS_CHECKER" else b"401 Unauthorized"
        data = (b"Status: " + status + b"\r\nX-Fail-Hdr: f1\r\nVariable-AUTH_VAR: v1\r\n"
                b"Content-Type: text/plain\r\n\r\n" + BIG_BODY)
    conn.sendall(stdout(rid, data) + end(rid))


def main():
    if len(sys.argv) > 1:
        srv = listen_unix(sys.argv[1])
    else:
        srv = socket.socket(fileno=0)
    while True:
        conn, _ = srv.accept()
        try:
            rid, fcgi_role, env, _records, stdin = read_request(conn)
            respond(conn, rid, fcgi_role, env, stdin)
        except (EOFError, ConnectionError, BrokenPipeError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
