#!/usr/bin/python3
"""A deliberately misbehaving FastCGI application for protocol tests.

It speaks raw FastCGI (no library) on a Unix socket given as argv[1] and
misbehaves according to the `mode` query parameter:

  ok             a correct response, records split at odd sizes
  params         dumps every received PARAMS name with its value length and
                 the content lengths of the PARAMS records (checks packing
                 and splitting of long values)
  overloaded     END_REQUEST with protocolStatus FCGI_OVERLOADED
  unknown_role   END_REQUEST with protocolStatus FCGI_UNKNOWN_ROLE
  bad_version    a record with version 2
  wrong_id       STDOUT for request id 7
  unknown_type   an unknown record type (42) with padding, then a response
  eof_mid_body   headers + part of the body, then close without END_REQUEST
  eof_no_headers close right after reading the request
  stderr_nul     a STDERR record containing a NUL byte, then a response
  end_size       END_REQUEST with a 7-byte body
  padding        STDOUT records with 255 bytes of padding each

Each connection serves one request; the app serves connections forever.
"""
import socket
import sys
import urllib.parse

from fcgi_raw import END, STDERR, STDOUT, end, listen_unix, read_request, rec


def respond(conn, rid, env, param_records):
    qs = urllib.parse.parse_qs(env.get(b"QUERY_STRING", b"").decode())
    mode = qs.get("mode", ["ok"])[0]
    head = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    if mode == "ok":
        data = head + b"hello from hostile\n"
        conn.sendall(rec(STDOUT, rid, data[:3]) + rec(STDOUT, rid, data[3:17]) + rec(STDOUT, rid, data[17:]))
        conn.sendall(rec(STDOUT, rid) + end(rid))
    elif mode == "params":
        lines = [b"records=" + b",".join(str(n).encode() for n in param_records)]
        for k, v in env.items():
            lines.append(k + b"=" + str(len(v)).encode())
        conn.sendall(rec(STDOUT, rid, head + b"\n".join(lines) + b"\n") + end(rid))
    elif mode == "overloaded":
        conn.sendall(end(rid, 0, 2))
    elif mode == "unknown_role":
        conn.sendall(end(rid, 0, 3))
    elif mode == "bad_version":
        conn.sendall(rec(STDOUT, rid, head, version=2))
    elif mode == "wrong_id":
        conn.sendall(rec(STDOUT, 7, head + b"not for you\n") + end(7))
    elif mode == "unknown_type":
        conn.sendall(rec(42, 0, b"xyz", padding=5) + rec(STDOUT, rid, head + b"after unknown\n") + end(rid))
    elif mode == "eof_mid_body":
        conn.sendall(rec(STDOUT, rid, head + b"x" * 5000))
        conn.shutdown(socket.SHUT_RDWR)
    elif mode == "eof_no_headers":
        conn.shutdown(socket.SHUT_RDWR)
    elif mode == "stderr_nul":
        conn.sendall(rec(STDERR, rid, b"before\0after\n") + rec(STDOUT, rid, head + b"ok\n") + end(rid))
    elif mode == "end_size":
        conn.sendall(rec(STDOUT, rid, head + b"ok\n") + rec(END, rid, b"\0" * 7))
    elif mode == "padding":
        conn.sendall(rec(STDOUT, rid, head, padding=255) + rec(STDOUT, rid, b"padded body\n", padding=255) + end(rid))
    else:
        conn.sendall(rec(STDOUT, rid, head + b"unknown mode\n") + end(rid))


def main():
    srv = listen_unix(sys.argv[1])
    while True:
        conn, _ = srv.accept()
        try:
            rid, _role, env, recs, _stdin = read_request(conn)
            respond(conn, rid, env, recs)
        except (EOFError, ConnectionError, BrokenPipeError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
