#!/usr/bin/python3
"""A raw-protocol FastCGI application that honours FCGI_ABORT_REQUEST (issue 14 tests).

Usage: abort_app.py SOCKET LOGFILE

Serves every connection in a thread, request after request while the gateway sets
FCGI_KEEP_CONN. Per request, by the `mode` query parameter:

  small   "conn=<C> seq=<S> id=<request id>" (C numbers connections from 1, S counts the
          requests a connection carried)
  big     a 64 MiB body in records of 65528 bytes, checking between records for an incoming
          FCGI_ABORT_REQUEST; on one it stops, appends "abort conn=<C> id=<id> after=<bytes>"
          to LOGFILE and ends the request (END_REQUEST, app status 1)

A connection closed in the middle of a response is logged as "closed conn=<C> ...".
"""
import itertools
import select
import sys
import threading
import urllib.parse

from fcgi_raw import ABORT, BEGIN, PARAMS, STDIN, STDOUT, end, parse_nv, read_record, rec, serve_forever

LOG_LOCK = threading.Lock()
CONN_IDS = itertools.count(1)


def log(line):
    with LOG_LOCK:
        with open(sys.argv[2], "a") as f:
            f.write(line + "\n")


def read_request(conn):
    """(request id, keep_conn, env) of the next request; stray records are skipped."""
    rid, keep, params = None, False, b""
    while True:
        rtype, r, content = read_record(conn)
        if rtype == BEGIN:
            rid, keep, params = r, bool(content[2] & 1), b""
        elif rtype == PARAMS and r == rid:
            params += content
        elif rtype == STDIN and r == rid and not content:
            return rid, keep, dict(parse_nv(params))


def serve(conn):
    cid = next(CONN_IDS)
    for seq in itertools.count(1):
        rid, keep, env = read_request(conn)
        qs = urllib.parse.parse_qs(env.get(b"QUERY_STRING", b"").decode())
        mode = qs.get("mode", ["small"])[0]
        head = b"Content-Type: text/plain\r\n\r\n"
        if mode == "big":
            sent = 0
            chunk = b"x" * 65528
            conn.sendall(rec(STDOUT, rid, head))
            aborted = False
            try:
                while sent < 64 << 20:
                    readable, _, _ = select.select([conn], [], [], 0)
                    if readable:
                        rtype, r, _ = read_record(conn)
                        if rtype == ABORT and r == rid:
                            aborted = True
                            break
                    conn.sendall(rec(STDOUT, rid, chunk))
                    sent += len(chunk)
            except (EOFError, ConnectionError, BrokenPipeError, OSError):
                log(f"closed conn={cid} id={rid} after={sent}")
                raise
            if aborted:
                log(f"abort conn={cid} id={rid} after={sent}")
                conn.sendall(rec(STDOUT, rid) + end(rid, app_status=1))
            else:
                conn.sendall(rec(STDOUT, rid) + end(rid))
        else:
            body = f"conn={cid} seq={seq} id={rid}\n".encode()
            conn.sendall(rec(STDOUT, rid, head + body) + rec(STDOUT, rid) + end(rid))
        if not keep:
            return


if __name__ == "__main__":
    serve_forever(sys.argv[1], serve)
