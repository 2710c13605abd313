#!/usr/bin/python3
"""The guide's flup/WSGI hello-world FastCGI application, extended for the tests.

    flup_app.py                      socket on fd 0 (started by a process manager)
    flup_app.py /path/app.sock       listen on a unix socket
    flup_app.py 127.0.0.1:9000       listen on TCP

Paths (matched on the end of SCRIPT_NAME + PATH_INFO, or `mode=` in the query):
    .../echo   responds with the exact request body (application/octet-stream)
    .../env    dumps the WSGI environ's string items, sorted, one NAME=VALUE per line
    anything else: the guide's "Hello World!" page.
"""
import os
import sys

from flup.server.fcgi import WSGIServer


def app(environ, start_response):
    path = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
    query = environ.get('QUERY_STRING', '')
    if path.endswith('/echo') or 'mode=echo' in query:
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            length = 0
        body = environ['wsgi.input'].read(length) if length > 0 else b''
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('X-Body-Length', str(len(body))),
                                  ('X-App', 'flup')])
        return [body]
    if path.endswith('/env') or 'mode=env' in query:
        lines = ['%s=%s\n' % (k, v) for k, v in sorted(environ.items()) if isinstance(v, str)]
        lines.append('APP_PID=%d\n' % os.getpid())
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-App', 'flup')])
        return [''.join(lines).encode('utf-8', 'surrogateescape')]
    start_response('200 OK', [('Content-Type', 'text/html'), ('X-App', 'flup')])
    return [b'''<html>
    <head>
        <title>Hello World!</title>
    </head>
    <body>
        <h1>Hello world!</h1>
    </body>
</html>''']


if __name__ == "__main__":
    if len(sys.argv) > 1:
        bind = sys.argv[1]
        if not bind.startswith('/') and ':' in bind:
            host, port = bind.rsplit(':', 1)
            bind = (host, int(port))
        WSGIServer(app, bindAddress=bind).run()
    else:
        WSGIServer(app).run()
