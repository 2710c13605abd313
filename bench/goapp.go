// The benchmark's routes (as bench/app.c) in Go's net/http/fcgi, which multiplexes:
// it answers FCGI_MPXS_CONNS=1 and runs each request of a connection in a goroutine.
// Started like the C app: the listening socket is fd 0 (fcgi.Serve(nil, …)).
package main

import (
	"io"
	"net/http"
	"net/http/fcgi"
	"strconv"
	"strings"
)

func main() {
	big := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz", 40330)[:1048576])
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The route is the query (ours) or the last path segment (mod_proxy_fcgi).
		route := r.URL.RawQuery
		if route == "" {
			route = r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		}
		switch {
		case route == "post" && r.Method == "POST":
			n, _ := io.Copy(io.Discard, r.Body)
			s := strconv.FormatInt(n, 10)
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(s)))
			io.WriteString(w, s)
		case route == "small":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "13")
			io.WriteString(w, "Hello, world!")
		case route == "big":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", "1048576")
			w.Write(big)
		default:
			http.NotFound(w, r)
		}
	})
	if err := fcgi.Serve(nil, h); err != nil {
		panic(err)
	}
}
