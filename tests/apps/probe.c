/*
 * probe: a precise FastCGI responder for mod_fastcgi's integration tests.
 *
 * Build:  gcc -O2 -Wall -o probe probe.c -lfcgi      (tests/apps/build.sh does this)
 *
 * Usage:  probe                         listen socket on fd 0 (started by a process manager)
 *         probe --socket /path/app.sock  open a unix socket itself (FCGX_OpenSocket)
 *         probe --port 127.0.0.1:9000    open a TCP socket itself (FCGX_OpenSocket)
 *         ... --processes N              N processes accepting on that socket (forked)
 *
 * Single-threaded FCGX_Accept_r loop.  The behaviour of each request is selected by
 * QUERY_STRING `mode=` (default `env`, or the process environment variable
 * PROBE_DEFAULT_MODE when the query names no mode).  See the table in mode dispatch below.
 *
 * The byte pattern and the checksum are defined identically in tests/common/mod.rs:
 *   pattern: xorshift64 state s = seed * 0x9E3779B97F4A7C15 ^ 0xD1B54A32D192ED03 (1 if 0);
 *            each step s ^= s<<13; s ^= s>>7; s ^= s<<17; emits the 8 bytes of s little-endian.
 *   checksum: FNV-1a 64, printed as 16 lowercase hex digits.
 *
 * Unless the query has `nodrain=1`, every mode that does not consume FCGI_STDIN itself drains
 * it after writing its response, so that libfcgi keeps a FCGI_KEEP_CONN connection open.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK 65536

/* ---------- pattern + checksum (must match tests/common/mod.rs) ---------- */

typedef struct {
    uint64_t s;
    unsigned char word[8];
    int left; /* unread bytes remaining in word */
} pattern_t;

static void pattern_init(pattern_t *p, uint64_t seed)
{
    p->s = (seed * 0x9E3779B97F4A7C15ULL) ^ 0xD1B54A32D192ED03ULL;
    if (p->s == 0)
        p->s = 1;
    p->left = 0;
}

static void pattern_fill(pattern_t *p, unsigned char *out, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (p->left == 0) {
            uint64_t x = p->s;
            int b;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p->s = x;
            for (b = 0; b < 8; b++)
                p->word[b] = (unsigned char)(x >> (8 * b));
            p->left = 8;
        }
        out[i] = p->word[8 - p->left];
        p->left--;
    }
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_update(uint64_t h, const unsigned char *d, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= d[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* ---------- query string helpers ---------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Returns a malloc'd, percent-decoded value of `name` in query `qs`, or NULL. */
static char *qparam(const char *qs, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = qs;
    if (qs == NULL)
        return NULL;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= nlen && strncmp(p, name, nlen) == 0 && (len == nlen || p[nlen] == '=')) {
            const char *v = len == nlen ? p + len : p + nlen + 1;
            size_t vlen = (size_t)(p + len - v);
            char *out = malloc(vlen + 1);
            size_t i, o = 0;
            if (out == NULL)
                return NULL;
            for (i = 0; i < vlen; i++) {
                if (v[i] == '%' && i + 2 < vlen && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
                    out[o++] = (char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
                    i += 2;
                } else if (v[i] == '+') {
                    out[o++] = ' ';
                } else {
                    out[o++] = v[i];
                }
            }
            out[o] = '\0';
            return out;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return NULL;
}

static long long qnum(const char *qs, const char *name, long long dflt)
{
    char *v = qparam(qs, name);
    long long r = dflt;
    if (v != NULL) {
        if (*v)
            r = strtoll(v, NULL, 10);
        free(v);
    }
    return r;
}

static void sleep_ms(long long ms)
{
    struct timespec ts;
    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------- request handling ---------- */

static unsigned long long served = 0;
/* Requests served on the current connection (1 = a new connection). */
static unsigned long long conn_seq = 0;

/* Reads all of FCGI_STDIN; returns the byte count, updates *sum, optionally keeps the bytes. */
static size_t read_all_stdin(FCGX_Stream *in, uint64_t *sum, unsigned char **keep)
{
    static unsigned char buf[IO_CHUNK];
    size_t total = 0, cap = 0;
    uint64_t h = FNV_OFFSET;
    unsigned char *data = NULL;
    int n;
    while ((n = FCGX_GetStr((char *)buf, sizeof buf, in)) > 0) {
        h = fnv_update(h, buf, (size_t)n);
        if (keep) {
            if (total + (size_t)n > cap) {
                size_t ncap = cap ? cap * 2 : IO_CHUNK;
                unsigned char *nd;
                while (ncap < total + (size_t)n)
                    ncap *= 2;
                nd = realloc(data, ncap);
                if (nd == NULL) {
                    free(data);
                    _exit(3);
                }
                data = nd;
                cap = ncap;
            }
            memcpy(data + total, buf, (size_t)n);
        }
        total += (size_t)n;
    }
    if (sum)
        *sum = h;
    if (keep)
        *keep = data;
    return total;
}

static void put_pid_header(FCGX_Stream *out)
{
    FCGX_FPrintF(out, "X-Probe-Pid: %ld\r\nX-Probe-Served: %llu\r\nX-Probe-Conn-Seq: %llu\r\n", (long)getpid(),
                 served, conn_seq);
}

static void write_pattern(FCGX_Stream *out, long long size, uint64_t seed)
{
    static unsigned char buf[IO_CHUNK];
    pattern_t p;
    pattern_init(&p, seed);
    while (size > 0) {
        size_t n = size > IO_CHUNK ? IO_CHUNK : (size_t)size;
        pattern_fill(&p, buf, n);
        FCGX_PutStr((const char *)buf, (int)n, out);
        size -= (long long)n;
    }
}

static uint64_t pattern_sum(long long size, uint64_t seed)
{
    static unsigned char buf[IO_CHUNK];
    pattern_t p;
    uint64_t h = FNV_OFFSET;
    pattern_init(&p, seed);
    while (size > 0) {
        size_t n = size > IO_CHUNK ? IO_CHUNK : (size_t)size;
        pattern_fill(&p, buf, n);
        h = fnv_update(h, buf, n);
        size -= (long long)n;
    }
    return h;
}

/* Flushes what was written and ends the connection without FCGI_END_REQUEST. */
static void abandon(FCGX_Request *req, FCGX_Stream *out, int code)
{
    FCGX_FFlush(out);
    if (code == 0 && req->ipcFd >= 0) {
        shutdown(req->ipcFd, SHUT_RDWR);
        close(req->ipcFd);
    }
    _exit(code);
}

static void handle(FCGX_Request *req)
{
    FCGX_Stream *in = req->in, *out = req->out, *err = req->err;
    const char *qs = FCGX_GetParam("QUERY_STRING", req->envp);
    char *mode = qparam(qs, "mode");
    int drain = qnum(qs, "nodrain", 0) == 0;
    const char *m;

    if (mode == NULL) {
        const char *d = getenv("PROBE_DEFAULT_MODE");
        mode = strdup(d && *d ? d : "env");
    }
    m = mode;

    if (strcmp(m, "env") == 0) {
        char **e;
        size_t n;
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\n");
        for (e = req->envp; e && *e; e++) {
            FCGX_PutS(*e, out);
            FCGX_PutChar('\n', out);
        }
        n = read_all_stdin(in, NULL, NULL);
        FCGX_FPrintF(out, "STDIN_BYTES=%lu\n", (unsigned long)n);
        drain = 0;
    } else if (strcmp(m, "echo") == 0) {
        unsigned char *data = NULL;
        uint64_t sum;
        size_t n = read_all_stdin(in, &sum, &data);
        FCGX_FPrintF(out, "Content-Type: application/octet-stream\r\n");
        FCGX_FPrintF(out, "X-Body-Length: %lu\r\nX-Body-Sum: %016llx\r\n", (unsigned long)n,
                     (unsigned long long)sum);
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\n");
        if (n > 0)
            FCGX_PutStr((const char *)data, (int)n, out);
        free(data);
        drain = 0;
    } else if (strcmp(m, "sum") == 0) {
        uint64_t sum;
        size_t n = read_all_stdin(in, &sum, NULL);
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\nlen=%lu sum=%016llx\n", (unsigned long)n, (unsigned long long)sum);
        drain = 0;
    } else if (strcmp(m, "big") == 0) {
        long long size = qnum(qs, "size", 1048576);
        uint64_t seed = (uint64_t)qnum(qs, "seed", 1);
        FCGX_FPrintF(out, "Content-Type: application/octet-stream\r\n");
        FCGX_FPrintF(out, "X-Body-Length: %lld\r\nX-Body-Sum: %016llx\r\n", size,
                     (unsigned long long)pattern_sum(size, seed));
        if (qnum(qs, "cl", 0))
            FCGX_FPrintF(out, "Content-Length: %lld\r\n", size);
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\n");
        write_pattern(out, size, seed);
    } else if (strcmp(m, "slow") == 0) {
        long long delay = qnum(qs, "delay_ms", 200), chunks = qnum(qs, "chunks", 5), i;
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\n");
        FCGX_FFlush(out);
        for (i = 0; i < chunks; i++) {
            if (i > 0)
                sleep_ms(delay);
            FCGX_FPrintF(out, "chunk %lld\n", i);
            FCGX_FFlush(out);
        }
    } else if (strcmp(m, "sleep") == 0) {
        long long ms = qnum(qs, "ms", 1000);
        sleep_ms(ms);
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\nslept %lld\n", ms);
    } else if (strcmp(m, "crash_before_headers") == 0) {
        char *how = qparam(qs, "how");
        if (how && strcmp(how, "abort") == 0)
            abort();
        _exit(1);
    } else if (strcmp(m, "crash_mid_body") == 0 || strcmp(m, "close_mid_body") == 0) {
        read_all_stdin(in, NULL, NULL);
        FCGX_FPrintF(out, "Content-Type: application/octet-stream\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\n");
        write_pattern(out, 100 * 1024, (uint64_t)qnum(qs, "seed", 1));
        abandon(req, out, strcmp(m, "crash_mid_body") == 0 ? 1 : 0);
    } else if (strcmp(m, "stderr") == 0) {
        long long lines = qnum(qs, "lines", 1), i;
        for (i = 1; i <= lines; i++)
            FCGX_FPrintF(err, "probe stderr line %lld\n", i);
        FCGX_FFlush(err);
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\nwrote %lld stderr lines\n", lines);
    } else if (strcmp(m, "fd2") == 0) {
        /* One line on the process's own stderr (not FCGI_STDERR): where the
         * process manager pointed fd 2 when it started this process. */
        char *tag = qparam(qs, "tag");
        fprintf(stderr, "probe fd2 line %s pid %ld\n", tag ? tag : "-", (long)getpid());
        fflush(stderr);
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\nwrote one line to fd 2\n");
    } else if (strcmp(m, "stderr_partial") == 0) {
        FCGX_PutS("partial", err);
        FCGX_FFlush(err);
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\nwrote partial stderr\n");
    } else if (strcmp(m, "redirect_internal") == 0 || strcmp(m, "redirect_external") == 0) {
        char *to = qparam(qs, "to");
        const char *dflt = m[9] == 'i' ? "/index.html" : "http://127.0.0.1/elsewhere";
        FCGX_FPrintF(out, "Location: %s\r\n\r\n", to ? to : dflt);
        free(to);
    } else if (strcmp(m, "status") == 0) {
        long long code = qnum(qs, "code", 200);
        char *reason = qparam(qs, "reason");
        FCGX_FPrintF(out, "Status: %lld %s\r\nContent-Type: text/plain\r\n", code,
                     reason ? reason : "Probe");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\nstatus %lld\n", code);
        free(reason);
    } else if (strcmp(m, "cookies") == 0) {
        FCGX_FPrintF(out, "Content-Type: text/plain\r\n"
                          "Set-Cookie: a=1; Path=/\r\n"
                          "Set-Cookie: b=2; Path=/\r\n");
        put_pid_header(out);
        FCGX_FPrintF(out, "\r\ntwo cookies\n");
    } else if (strcmp(m, "badheader") == 0) {
        FCGX_FPrintF(out, "Content-Type: text/plain\r\nThis line is not a header\r\n\r\nbody\n");
    } else if (strcmp(m, "noheaders") == 0) {
        FCGX_FPrintF(out, "just body bytes, no header terminator");
    } else if (strcmp(m, "empty") == 0) {
        /* finish without writing anything */
    } else if (strcmp(m, "hugeheader") == 0) {
        long long size = qnum(qs, "size", 16384);
        char *v = malloc((size_t)(size > 0 ? size : 0) + 1);
        if (v == NULL)
            _exit(3);
        memset(v, 'h', (size_t)(size > 0 ? size : 0));
        v[size > 0 ? size : 0] = '\0';
        FCGX_FPrintF(out, "Content-Type: text/plain\r\nX-Huge: ");
        FCGX_PutS(v, out);
        FCGX_FPrintF(out, "\r\n\r\nhuge header %lld\n", size);
        free(v);
    } else if (strcmp(m, "nph") == 0) {
        FCGX_FPrintF(out, "HTTP/1.0 201 Made\r\nContent-Type: text/plain\r\n\r\nnph body");
    } else {
        FCGX_FPrintF(out, "Status: 400 Unknown Probe Mode\r\nContent-Type: text/plain\r\n\r\n"
                          "unknown mode: %s\n", m);
    }

    if (drain)
        read_all_stdin(in, NULL, NULL);
    free(mode);
}

int main(int argc, char **argv)
{
    FCGX_Request req;
    int sock = 0;

    if (FCGX_Init() != 0) {
        fprintf(stderr, "probe: FCGX_Init failed\n");
        return 2;
    }
    int processes = 1;
    if (argc == 5 && strcmp(argv[3], "--processes") == 0) {
        processes = atoi(argv[4]);
        if (processes < 1 || processes > 64) {
            fprintf(stderr, "probe: --processes wants 1 to 64\n");
            return 2;
        }
        argc = 3;
    }
    if (argc == 3 && (strcmp(argv[1], "--socket") == 0 || strcmp(argv[1], "--port") == 0)) {
        sock = FCGX_OpenSocket(argv[2], 128);
        if (sock < 0) {
            fprintf(stderr, "probe: cannot open socket %s: %s\n", argv[2], strerror(errno));
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--socket PATH | --port HOST:PORT [--processes N]]\n", argv[0]);
        return 2;
    }
    /* --processes N: N processes accept on the one socket (as a process manager
     * would start them); each still answers FCGI_MAX_CONNS=1, as libfcgi does. */
    for (int i = 1; i < processes; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "probe: fork: %s\n", strerror(errno));
            return 2;
        }
        if (pid == 0)
            break;
    }
    fprintf(stderr, "probe: pid %ld ready\n", (long)getpid());
    fflush(stderr);

    if (FCGX_InitRequest(&req, sock, 0) != 0)
        return 2;
    int prev_fd = -1, prev_keep = 0;
    while (FCGX_Accept_r(&req) >= 0) {
        served++;
        /* libfcgi keeps ipcFd across requests while the gateway sets FCGI_KEEP_CONN. */
        conn_seq = (req.ipcFd == prev_fd && prev_keep) ? conn_seq + 1 : 1;
        prev_fd = req.ipcFd;
        prev_keep = req.keepConnection;
        handle(&req);
        FCGX_Finish_r(&req);
    }
    return 0;
}
