"""FastCGI records by hand, for the raw-protocol test applications (hostile.py, authz.py).

No library on purpose: the applications must be able to send what a library never would
(bad versions, padding, foreign ids). Imported from the script's own directory.
"""
import os
import socket
import struct

VERSION = 1
BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7


def rec(rtype, rid, content=b"", padding=0, version=VERSION):
    return struct.pack("!BBHHBx", version, rtype, rid, len(content), padding) + content + b"\0" * padding


def end(rid, app_status=0, proto_status=0):
    return rec(END, rid, struct.pack("!IB3x", app_status, proto_status))


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_record(conn):
    version, rtype, rid, clen, plen = struct.unpack("!BBHHBx", read_exact(conn, 8))
    content = read_exact(conn, clen) if clen else b""
    if plen:
        read_exact(conn, plen)
    return rtype, rid, content


def nv_len(data, i):
    b = data[i]
    if b < 128:
        return b, i + 1
    return struct.unpack("!I", data[i:i + 4])[0] & 0x7FFFFFFF, i + 4


def parse_nv(data):
    """The name-value pairs of a PARAMS stream, in order."""
    out = []
    i = 0
    while i < len(data):
        nlen, i = nv_len(data, i)
        vlen, i = nv_len(data, i)
        out.append((data[i:i + nlen], data[i + nlen:i + nlen + vlen]))
        i += nlen + vlen
    return out


def read_request(conn):
    """Reads one request up to the end of STDIN: (request id, role, environment dict,
    sizes of the PARAMS records, stdin bytes)."""
    rid, role, params, param_records, stdin = None, None, b"", [], b""
    while True:
        rtype, r, content = read_record(conn)
        if rtype == BEGIN:
            rid = r
            role = struct.unpack("!H", content[:2])[0]
        elif rtype == PARAMS:
            param_records.append(len(content))
            params += content
        elif rtype == STDIN:
            if not content:
                break
            stdin += content
    return rid, role, dict(parse_nv(params)), param_records, stdin


def listen_unix(path, backlog=64):
    """A listening Unix socket at `path` (a stale file is replaced), open to
    every user, so Apache's User can connect whoever started the test app."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o666)
    srv.listen(backlog)
    return srv


def serve_forever(path, serve, quiet=(EOFError, ConnectionError, BrokenPipeError, OSError)):
    """Listens at `path` and runs `serve(conn)` in a thread per connection; the
    errors in `quiet` (a gateway closing early) end a connection silently."""
    import threading

    def handle(conn):
        try:
            serve(conn)
        except quiet:
            pass
        finally:
            conn.close()

    srv = listen_unix(path)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
