#!/usr/bin/python3
"""A raw-protocol FastCGI application that attacks the response framing (issue 10,
findings 5-7 and nph output). Unix socket in argv[1], a count file in argv[2].

Connections are served in threads and kept when the request asks (FCGI_KEEP_CONN).
The `mode` query parameter picks the answer:

  genuine        "genuine response"
  te_chunked&n=N `Transfer-Encoding: chunked` and a body that ends a chunked body early
                 and carries a second, injected HTTP response (then N bytes of padding)
  cl_over&n=N    `Content-Length: N`, then N bytes and an injected HTTP response
  cl_short&n=N&m=M  `Content-Length: N`, then only M bytes and END_REQUEST
  stray_late     an answer; then, once the next request on the connection has been
                 read, a STDOUT record with the *old* request id ("injected") before
                 the real answer
  stray_next     an answer; 0.2 s after END_REQUEST, a whole response with the *next*
                 request id ("injected")
  count_close    appends a line to the count file; on a connection that carried a
                 request before, closes it without answering; otherwise answers
  nph_bad        a CGI head (`Status: 200 OK`) where an nph response needs HTTP
  nph_good       a complete HTTP/1.1 response, raw
"""
import struct
import sys
import threading
import time
import urllib.parse

from fcgi_raw import BEGIN, PARAMS, STDIN, STDOUT, end, parse_nv, serve_forever, read_record, rec

INJECTED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\ninjected"
HEAD = b"Status: 200 OK\r\nContent-Type: text/plain\r\n"
COUNT_FILE = sys.argv[2]
LOCK = threading.Lock()


def read_request(conn):
    """(request id, keep flag, environment) of the next request, after its STDIN end."""
    rid, keep, params = None, False, b""
    while True:
        rtype, r, content = read_record(conn)
        if rtype == BEGIN:
            rid, keep = r, bool(content[2] & 1)
        elif rtype == PARAMS:
            params += content
        elif rtype == STDIN and not content:
            return rid, keep, dict(parse_nv(params))


def stdout(rid, data):
    """`data` as STDOUT records (at most 65535 bytes each) plus the end of the stream."""
    out = b"".join(rec(STDOUT, rid, data[i:i + 65535]) for i in range(0, len(data), 65535))
    return out + rec(STDOUT, rid)


def answer(rid, body=b"genuine response"):
    return stdout(rid, HEAD + b"\r\n" + body) + end(rid)


def serve(conn):
    served = 0
    stray_late = False
    while True:
        rid, keep, env = read_request(conn)
        served += 1
        qs = urllib.parse.parse_qs(env.get(b"QUERY_STRING", b"").decode())
        mode = qs.get("mode", ["genuine"])[0]
        n = int(qs.get("n", ["0"])[0])
        if stray_late:
            # Late output for the previous request, sent once the next one is here.
            conn.sendall(rec(STDOUT, rid - 1 if rid > 1 else 1, HEAD + b"\r\ninjected"))
            stray_late = False
        if mode == "te_chunked":
            body = b"5\r\nhello\r\n0\r\n\r\n" + INJECTED + b"x" * n
            conn.sendall(stdout(rid, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body) + end(rid))
        elif mode == "cl_over":
            head = HEAD + b"Content-Length: %d\r\n\r\n" % n
            conn.sendall(stdout(rid, head + b"a" * n + INJECTED) + end(rid))
        elif mode == "cl_short":
            m = int(qs.get("m", ["0"])[0])
            conn.sendall(stdout(rid, HEAD + b"Content-Length: %d\r\n\r\n" % n + b"a" * m) + end(rid))
        elif mode == "stray_late":
            conn.sendall(answer(rid, b"first"))
            stray_late = True
        elif mode == "stray_next":
            conn.sendall(answer(rid, b"first"))
            time.sleep(0.2)
            conn.sendall(answer((rid % 65535) + 1, b"injected"))
        elif mode == "count_close":
            with LOCK, open(COUNT_FILE, "a") as f:
                f.write("ran\n")
            if served > 1:
                return
            conn.sendall(answer(rid, b"counted"))
        elif mode == "nph_bad":
            conn.sendall(stdout(rid, HEAD + b"\r\nnot http") + end(rid))
        elif mode == "nph_good":
            raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Nph: raw\r\nContent-Length: 9\r\n\r\nnph body\n"
            conn.sendall(stdout(rid, raw) + end(rid))
        else:
            conn.sendall(answer(rid))
        if not keep:
            return


def main():
    serve_forever(sys.argv[1], serve, (EOFError, ConnectionError, BrokenPipeError, struct.error))


if __name__ == "__main__":
    main()
