#!/usr/bin/python3
"""A raw-protocol FastCGI application that multiplexes (issue 14 tests).

Usage: mux_app.py SOCKET MAX_REQS

Answers FCGI_GET_VALUES with FCGI_MPXS_CONNS=1, FCGI_MAX_REQS=MAX_REQS and
FCGI_MAX_CONNS=100. On each connection one thread reads records; every request whose STDIN
is complete runs in a thread of its own, so that several requests are in flight on one
connection at once; records are written whole under the connection's write lock.

Per request, by query parameter: `ms=N` sleeps N ms before answering; `echo=1` answers with
the request body. The response names the connection (numbered from 1 in accept order), the
request id and how many requests were in flight on the connection when it started:
"conn=<C> id=<I> inflight=<K>" (then the body for echo).
"""
import itertools
import struct
import sys
import threading
import time
import urllib.parse

from fcgi_raw import ABORT, BEGIN, END, PARAMS, STDIN, STDOUT, parse_nv, read_record, rec, serve_forever

GET_VALUES, GET_VALUES_RESULT = 9, 10
CONN_IDS = itertools.count(1)


def nv(name, value):
    return bytes([len(name), len(value)]) + name + value


def serve(conn):
    cid = next(CONN_IDS)
    lock = threading.Lock()
    inflight = {}
    reqs = {}

    def send(data):
        with lock:
            conn.sendall(data)

    def run(rid, env, body):
        qs = urllib.parse.parse_qs(env.get(b"QUERY_STRING", b"").decode())
        with lock:
            inflight[rid] = True
            k = len(inflight)
        time.sleep(int(qs.get("ms", ["0"])[0]) / 1000)
        out = f"conn={cid} id={rid} inflight={k}\n".encode()
        if qs.get("echo"):
            out += body
        data = b"Content-Type: application/octet-stream\r\n\r\n" + out
        records = b"".join(rec(STDOUT, rid, data[i:i + 65528]) for i in range(0, len(data), 65528))
        with lock:
            inflight.pop(rid, None)
        send(records + rec(STDOUT, rid) + rec(END, rid, struct.pack("!IB3x", 0, 0)))

    while True:
        rtype, rid, content = read_record(conn)
        if rtype == GET_VALUES:
            vals = nv(b"FCGI_MAX_CONNS", b"100") + nv(b"FCGI_MAX_REQS", sys.argv[2].encode()) + nv(
                b"FCGI_MPXS_CONNS", b"1")
            send(rec(GET_VALUES_RESULT, 0, vals))
        elif rtype == BEGIN:
            reqs[rid] = [b"", b""]
        elif rtype == PARAMS and rid in reqs:
            reqs[rid][0] += content
        elif rtype == STDIN and rid in reqs:
            if content:
                reqs[rid][1] += content
            else:
                params, body = reqs.pop(rid)
                threading.Thread(target=run, args=(rid, dict(parse_nv(params)), body), daemon=True).start()
        elif rtype == ABORT:
            pass


if __name__ == "__main__":
    serve_forever(sys.argv[1], serve)
