#!/bin/sh
# A CGI script for fcgiwrap (tests/realapps.rs): its environment, or (QUERY_STRING
# mode=echo) the request body back, or (mode=fail) an exit without any output.
case "$QUERY_STRING" in
  *mode=echo*)
    # The whole body first: fcgiwrap feeds a script's stdin before it reads its stdout,
    # so a script that answers while it reads would block on a full pipe.
    tmp=$(mktemp)
    head -c "$CONTENT_LENGTH" > "$tmp"
    printf 'Content-Type: application/octet-stream\r\nX-Body-Length: %s\r\n\r\n' "$(stat -c %s "$tmp")"
    cat "$tmp"
    rm -f "$tmp"
    ;;
  *mode=fail*)
    exit 1
    ;;
  *)
    printf 'Content-Type: text/plain\r\nX-Pid: %s\r\n\r\n' "$$"
    env | sort
    ;;
esac
