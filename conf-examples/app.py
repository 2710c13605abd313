#!/usr/bin/python3
# The seed guide's hello-world WSGI application (flup). Python 3's WSGI
# needs bytes, hence the b'' literal; otherwise unchanged. The last line
# picks the mode, as the guide explains:
#   WSGIServer(app).run()                                  dynamic / static on fd 0
#   WSGIServer(app, bindAddress='/tmp/fcgi.sock').run()    external (socket)
#   WSGIServer(app, bindAddress=('127.0.0.1', 8080)).run() external (TCP)
# This copy takes the bind address from its first argument so one file
# serves every example.
import sys

from flup.server.fcgi import WSGIServer


def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/html')])
    return [b'''<html>
    <head>
        <title>Hello World!</title>
    </head>
    <body>
        <h1>Hello world!</h1>
    </body>
</html>''']


if __name__ == "__main__":
    if len(sys.argv) > 1 and ':' in sys.argv[1] and not sys.argv[1].startswith('/'):
        host, port = sys.argv[1].rsplit(':', 1)
        WSGIServer(app, bindAddress=(host, int(port))).run()
    elif len(sys.argv) > 1:
        WSGIServer(app, bindAddress=sys.argv[1]).run()
    else:
        WSGIServer(app).run()
