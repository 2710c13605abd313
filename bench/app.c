/*
 * bench/app.c: the FastCGI application every benchmark configuration talks to.
 *
 * Build:  gcc -O2 -Wall -o app app.c -lfcgi        (bench/run does this)
 *
 * Usage:  app                          listen socket on fd 0 (started by a process
 *                                      manager: FastCgiServer, mod_fcgid, bench/run)
 *         app --socket PATH [--backlog N]
 *                                      open and listen on a unix socket itself
 *                                      (FastCgiExternalServer / ProxyPass unix:)
 *         app ... --threads N          N threads, each with its own FCGX_Request,
 *                                      taking turns in accept() (a multi-threaded
 *                                      application: N connections at once per process)
 *
 * By default a single-threaded FCGX_Accept_r loop, like most libfcgi applications.  The request
 * is chosen by the query string when there is one (/app.fcgi?small), otherwise by the
 * end of REQUEST_URI's path, so the same binary answers under any prefix
 * (/app.fcgi/small, /app/small, /app.fcgi?small, ...):
 *
 *   GET  .../small  -> 200, "Hello, world!" (13 bytes)
 *   GET  .../big    -> 200, 1 MiB: byte i is 'a' + i % 26
 *   POST .../post   -> 200, reads the whole request body, answers its length in
 *                      decimal (e.g. "1048576"), no newline
 *   GET  .../huge   -> 200, 1 GiB: the 1 MiB body 1024 times (bench/run --huge)
 *   anything else   -> 404
 *
 * Every response carries Content-Length.  Request bodies are always read to the end
 * so that libfcgi keeps FCGI_KEEP_CONN connections open.
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BIG_LEN (1024 * 1024)
#define SMALL_BODY "Hello, world!"

static char big[BIG_LEN];
static pthread_mutex_t accept_lock = PTHREAD_MUTEX_INITIALIZER;

/* The route: the whole query string when there is one, else the path's last segment. */
static int route_is(const char *uri, size_t n, const char *query, const char *name)
{
    size_t k = strlen(name);
    if (query != NULL)
        return strcmp(query, name) == 0;
    return n > k && uri[n - k - 1] == '/' && memcmp(uri + n - k, name, k) == 0;
}

static long drain(FCGX_Stream *in)
{
    char inbuf[65536];
    long total = 0;
    int n;
    while ((n = FCGX_GetStr(inbuf, (int)sizeof inbuf, in)) > 0)
        total += n;
    return total;
}

static void reply(FCGX_Request *r, const char *status, const char *body, size_t len)
{
    FCGX_FPrintF(r->out,
                 "Status: %s\r\nContent-Type: %s\r\nContent-Length: %lu\r\n\r\n",
                 status,
                 len == BIG_LEN ? "application/octet-stream" : "text/plain",
                 (unsigned long)len);
    if (len > 0)
        FCGX_PutStr(body, (int)len, r->out);
}

/* One thread's accept loop on the listening socket `arg`. */
static void *serve(void *arg)
{
    FCGX_Request req;
    if (FCGX_InitRequest(&req, (int)(long)arg, 0) != 0) {
        fprintf(stderr, "app: FCGX_InitRequest failed\n");
        exit(1);
    }
    for (;;) {
        /* The accept lock only around accept(): a thread whose connection was kept
         * (FCGI_KEEP_CONN) reads its next request without it. (libfcgi's own threaded
         * example locks around every FCGX_Accept_r, so a thread with a kept
         * connection waits for the lock while another sits in accept() holding it,
         * and the request on the kept connection waits for a new connection.) */
        int rc, lock = req.ipcFd < 0;
        if (lock)
            pthread_mutex_lock(&accept_lock);
        rc = FCGX_Accept_r(&req);
        if (lock)
            pthread_mutex_unlock(&accept_lock);
        if (rc < 0)
            break;
        const char *uri = FCGX_GetParam("REQUEST_URI", req.envp);
        const char *method = FCGX_GetParam("REQUEST_METHOD", req.envp);
        const char *query;
        size_t n = 0;
        if (uri == NULL)
            uri = "";
        if (method == NULL)
            method = "";
        while (uri[n] != '\0' && uri[n] != '?')
            n++;
        if (uri[n] == '?' && uri[n + 1] != '\0')
            query = uri + n + 1; /* /app.fcgi?small */
        else
            query = NULL;
        if (strcmp(method, "POST") == 0 && route_is(uri, n, query, "post")) {
            char num[32];
            long total = drain(req.in);
            int k = snprintf(num, sizeof num, "%ld", total);
            reply(&req, "200 OK", num, (size_t)k);
        } else {
            drain(req.in);
            if (route_is(uri, n, query, "small"))
                reply(&req, "200 OK", SMALL_BODY, sizeof SMALL_BODY - 1);
            else if (route_is(uri, n, query, "big"))
                reply(&req, "200 OK", big, BIG_LEN);
            else if (route_is(uri, n, query, "huge")) {
                int i;
                FCGX_FPrintF(req.out, "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                      "Content-Length: %lu\r\n\r\n",
                             (unsigned long)BIG_LEN * 1024UL);
                for (i = 0; i < 1024; i++)
                    if (FCGX_PutStr(big, BIG_LEN, req.out) < 0)
                        break;
            }
            else
                reply(&req, "404 Not Found", "not found\n", 10);
        }
        FCGX_Finish_r(&req);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int sock = 0, backlog = 1024, threads = 1, i;
    pthread_t tid;
    const char *path = NULL;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--backlog") == 0 && i + 1 < argc)
            backlog = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--socket PATH [--backlog N]] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    for (i = 0; i < BIG_LEN; i++)
        big[i] = (char)('a' + i % 26);
    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0) {
        fprintf(stderr, "app: FCGX_Init failed\n");
        return 1;
    }
    if (path != NULL) {
        sock = FCGX_OpenSocket(path, backlog);
        if (sock < 0) {
            fprintf(stderr, "app: cannot listen on %s\n", path);
            return 1;
        }
        chmod(path, 0777);
    }
    for (i = 1; i < threads; i++)
        if (pthread_create(&tid, NULL, serve, (void *)(long)sock) != 0) {
            fprintf(stderr, "app: pthread_create failed\n");
            return 1;
        }
    serve((void *)(long)sock);
    return 0;
}
