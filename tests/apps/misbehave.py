#!/usr/bin/python3
"""A FastCGI application that misbehaves for a long time (tests/misbehave.rs).

Raw FastCGI (fcgi_raw.py) on the Unix socket argv[1]; one thread per connection, so a
connection it holds forever does not stop the next request. The `mode` query parameter:

  ok            a correct response
  no_stdin      reads BEGIN and PARAMS, never reads STDIN, holds the connection 60 s
  stop_reading  reads 64 KiB of STDIN, then stops reading and holds the connection 60 s
  stop_response headers and 4 KiB of body, then holds the connection 60 s
  slow_headers  sends its headers one byte a second (one STDOUT record per byte)
  never         reads the whole request, never answers; holds the connection 60 s
  stderr_flood  `mb` MiB (default 4) of 100-byte stderr lines, then a correct response
"""
import socket
import sys
import time
import urllib.parse

from fcgi_raw import BEGIN, PARAMS, STDERR, STDIN, STDOUT, end, parse_nv, serve_forever, read_record, rec

HEAD = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"


def read_params(conn):
    """Reads BEGIN and PARAMS only: (request id, environment)."""
    rid, params = None, b""
    while True:
        rtype, r, content = read_record(conn)
        if rtype == BEGIN:
            rid = r
        elif rtype == PARAMS:
            if not content:
                return rid, dict(parse_nv(params))
            params += content


def mode_of(env):
    qs = urllib.parse.parse_qs(env.get(b"QUERY_STRING", b"").decode())
    return qs.get("mode", ["ok"])[0], qs


def serve(conn):
    rid, env = read_params(conn)
    mode, qs = mode_of(env)
    if mode == "no_stdin":
        time.sleep(60)
        return
    if mode == "stop_reading":
        got = 0
        while got < 64 * 1024:
            rtype, _, content = read_record(conn)
            if rtype == STDIN:
                if not content:
                    break
                got += len(content)
        time.sleep(60)
        return
    # Every other mode reads the rest of the request first.
    while True:
        rtype, _, content = read_record(conn)
        if rtype == STDIN and not content:
            break
    if mode == "stop_response":
        conn.sendall(rec(STDOUT, rid, HEAD + b"x" * 4096))
        time.sleep(60)
    elif mode == "slow_headers":
        for b in HEAD + b"slow\n":
            conn.sendall(rec(STDOUT, rid, bytes([b])))
            time.sleep(1)
        conn.sendall(end(rid))
    elif mode == "never":
        time.sleep(60)
    elif mode == "stderr_flood":
        mb = int(qs.get("mb", ["4"])[0])
        line = b"e" * 99 + b"\n"
        chunk = line * 300  # 30,000 bytes: within one record
        total = 0
        while total < mb * 1024 * 1024:
            conn.sendall(rec(STDERR, rid, chunk))
            total += len(chunk)
        conn.sendall(rec(STDOUT, rid, HEAD + b"flooded\n") + end(rid))
    else:
        conn.sendall(rec(STDOUT, rid, HEAD + b"ok\n") + end(rid))


def main():
    serve_forever(sys.argv[1], serve, (EOFError, ConnectionError, BrokenPipeError, OSError))


if __name__ == "__main__":
    main()
