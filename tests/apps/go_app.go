// A Go net/http/fcgi application for the integration tests (tests/go_fcgi.rs): Go's
// FastCGI server answers FCGI_MPXS_CONNS=1 and runs each request of a connection in a
// goroutine, so it is a real multiplexing application.
//
// Usage: go_app SOCKET   (a Unix socket it creates, mode 0666)
//        go_app          (the listening socket is fd 0: FastCgiServer)
//
// Every response carries X-Conns (connections accepted so far, the module's capacity
// question included) and X-Inflight (requests in progress when this one started).
// Routes by query parameter mode:
//
//	env      the CGI variables the module sent, one NAME=value per line
//	echo     the request body back (X-Body-Length)
//	sleep    sleeps ms= milliseconds
//	error    status 500 written by the application
//	exit     the process exits (status 3) before answering
//	stream   64 MiB in 64 KiB flushed pieces
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

var conns, inflight int64

type counting struct{ net.Listener }

func (l counting) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		atomic.AddInt64(&conns, 1)
	}
	return c, err
}

func main() {
	var l net.Listener
	if len(os.Args) > 1 {
		path := os.Args[1]
		os.Remove(path)
		ul, err := net.Listen("unix", path)
		if err != nil {
			panic(err)
		}
		os.Chmod(path, 0666)
		l = ul
	} else {
		fl, err := net.FileListener(os.Stdin)
		if err != nil {
			panic(err)
		}
		l = fl
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := atomic.AddInt64(&inflight, 1)
		defer atomic.AddInt64(&inflight, -1)
		w.Header().Set("X-Conns", strconv.FormatInt(atomic.LoadInt64(&conns), 10))
		w.Header().Set("X-Inflight", strconv.FormatInt(k, 10))
		q := r.URL.Query()
		switch q.Get("mode") {
		case "echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("X-Body-Length", strconv.Itoa(len(body)))
			w.Write(body)
		case "sleep":
			ms, _ := strconv.Atoi(q.Get("ms"))
			time.Sleep(time.Duration(ms) * time.Millisecond)
			io.WriteString(w, "slept\n")
		case "error":
			http.Error(w, "the application failed", http.StatusInternalServerError)
		case "exit":
			os.Exit(3)
		case "stream":
			w.Header().Set("Content-Type", "application/octet-stream")
			piece := make([]byte, 65536)
			for i := 0; i < 1024; i++ {
				if _, err := w.Write(piece); err != nil {
					return
				}
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		default:
			env := fcgi.ProcessEnv(r)
			names := make([]string, 0, len(env))
			for k := range env {
				names = append(names, k)
			}
			sort.Strings(names)
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "METHOD=%s\nPROTO=%s\nQUERY=%s\nPATH=%s\n", r.Method, r.Proto, r.URL.RawQuery, r.URL.Path)
			for _, k := range names {
				fmt.Fprintf(w, "%s=%s\n", k, env[k])
			}
		}
	})
	if err := fcgi.Serve(counting{l}, h); err != nil {
		panic(err)
	}
}
