/* SPDX-License-Identifier: MIT */
/*
 * api-probe: exercises libvrpc's public API (vrpc/vrpc.h) from inside a domain of the
 * emulated host (run with `vrpc-sim exec DOM -- api-probe MODE ...`) and prints one result
 * line that tests/api/test-api.c checks. Every mode also checks that it leaves no fd open.
 *
 *   buffer TARGET SERVICE [INPUT]   vrpc_call_buffer: "rc=R exit=E len=L out=OUT"
 *   stream TARGET SERVICE BYTES     streaming with poll(): sends BYTES pseudo-random bytes,
 *                                   reads stdout and stderr: "exit=E out=N sum=H err=ERR
 *                                   reason=REASON" (H: FNV-1a of stdout; input sum on stderr)
 *   concurrent N TARGET             N calls of demo.Uppercase at once on one client, driven
 *                                   by notify callbacks: "ok=K of N"
 *   big TARGET BYTES                vrpc_call_buffer of BYTES zero bytes to demo.Echo:
 *                                   "rc=R exit=E len=L"
 *   cancel TARGET                   opens test.Sleep, reads the handler's pid, cancels the
 *                                   call: "pid=P exit=E reason=REASON"
 *   threads N TARGET                N threads each making 5 vrpc_call_buffer calls of
 *                                   demo.Uppercase at once: "ok=K of N*5"
 *   serve PATH N                    a socket service (VrpcServer) answering N calls in one
 *                                   process: "src=S svc=V arg=A|<stdin upper-cased>"
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vrpc/vrpc.h"
#include "vtest.h"

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int mode_buffer(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *in = argc > 2 ? argv[2] : NULL;
    char *out = NULL;
    size_t len = 0;
    int code = -1;
    int r = vrpc_call_buffer(argv[0], argv[1], in, in ? strlen(in) : 0, &out, &len, &code);
    printf("rc=%d exit=%d len=%zu out=%s\n", r, code, len, out ? out : "(null)");
    if (r == 0 && (!out || strlen(out) != len))
        printf("BAD: out not NUL-terminated at len\n");
    if (r < 0 && out)
        printf("BAD: out set on failure\n");
    free(out);
    return 0;
}

static int mode_stream(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    size_t total = strtoull(argv[2], NULL, 10), sent = 0, got = 0;
    uint64_t h_in = 1469598103934665603ull, h_out = h_in;
    char err[512] = "";
    size_t err_len = 0;
    VrpcClient *client;
    VrpcCall *call;
    int r = vrpc_client_new(&client, NULL);
    if (r < 0) {
        printf("client_new=%d\n", r);
        return 0;
    }
    r = vrpc_call_open(client, argv[0], argv[1], &call);
    if (r < 0) {
        printf("call_open=%d\n", r);
        vrpc_client_free(client);
        return 0;
    }
    uint8_t buf[65536];
    uint32_t seed = 12345;
    bool out_eof = false, err_eof = false, in_closed = false;
    while (!(vrpc_call_done(call) && out_eof && err_eof)) {
        while (!in_closed) {
            if (sent == total) {
                vrpc_call_close_stdin(call);
                in_closed = true;
                break;
            }
            ssize_t space = vrpc_call_write_space(call);
            if (space < 0) {
                in_closed = true; /* the handler does not read */
                break;
            }
            if (space == 0)
                break;
            size_t n = total - sent < (size_t)space ? total - sent : (size_t)space;
            if (n > sizeof buf)
                n = sizeof buf;
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                buf[i] = (uint8_t)(seed >> 16);
            }
            ssize_t w = vrpc_call_write(call, buf, n);
            if (w != (ssize_t)n) {
                printf("BAD: write took %zd of %zu with space %zd\n", w, n, space);
                return 1;
            }
            h_in = fnv(h_in, buf, n);
            sent += n;
        }
        for (;;) {
            ssize_t n = vrpc_call_read(call, VRPC_STDOUT, buf, sizeof buf);
            if (n == 0)
                out_eof = true;
            if (n <= 0)
                break;
            h_out = fnv(h_out, buf, (size_t)n);
            got += (size_t)n;
        }
        for (;;) {
            ssize_t n = vrpc_call_read(call, VRPC_STDERR, err + err_len, sizeof err - 1 - err_len);
            if (n == 0 || err_len == sizeof err - 1)
                err_eof = true;
            if (n <= 0)
                break;
            err_len += (size_t)n;
        }
        if (vrpc_call_done(call) && out_eof && err_eof)
            break;
        struct pollfd p = {.fd = vrpc_client_fd(client), .events = POLLIN};
        if (poll(&p, 1, vrpc_client_timeout_ms(client)) < 0) {
            printf("BAD: poll\n");
            return 1;
        }
        vrpc_client_dispatch(client);
    }
    err[err_len] = '\0';
    for (char *q = err; *q; q++)
        if (*q == '\n')
            *q = '/';
    int code = -1;
    vrpc_call_exit_code(call, &code);
    const char *reason = vrpc_call_reason(call);
    printf("exit=%d out=%zu sum=%016llx err=%s reason=%s\n", code, got, (unsigned long long)h_out,
           err, reason ? reason : "(none)");
    fprintf(stderr, "in=%zu sum=%016llx\n", sent, (unsigned long long)h_in);
    vrpc_call_free(call);
    vrpc_client_free(client);
    return 0;
}

static int mode_big(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    size_t n = strtoull(argv[1], NULL, 10);
    char *in = calloc(n ? n : 1, 1), *out = NULL;
    size_t len = 0;
    int code = -1;
    if (!in)
        return 1;
    int r = vrpc_call_buffer(argv[0], "demo.Echo", in, n, &out, &len, &code);
    printf("rc=%d exit=%d len=%zu\n", r, code, len);
    if (r == 0 && (len != n || memcmp(in, out, n) != 0))
        printf("BAD: echo differs\n");
    free(in);
    free(out);
    return 0;
}

static int mode_cancel(int argc, char **argv)
{
    if (argc < 1)
        return 2;
    VrpcClient *client;
    VrpcCall *call;
    if (vrpc_client_new(&client, NULL) < 0 ||
        vrpc_call_open(client, argv[0], "test.Sleep", &call) < 0) {
        printf("BAD: open\n");
        return 1;
    }
    char line[64];
    size_t got = 0;
    while (!memchr(line, '\n', got) && got < sizeof line - 1 && !vrpc_call_done(call)) {
        ssize_t n = vrpc_call_read(call, VRPC_STDOUT, line + got, sizeof line - 1 - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == -EAGAIN)
            vrpc_client_wait(client, -1);
        else
            break;
    }
    line[got] = '\0';
    int r = vrpc_call_cancel(call, "enough");
    int code = -1;
    vrpc_call_exit_code(call, &code);
    char rest[8];
    if (r != 0 || vrpc_call_read(call, VRPC_STDOUT, rest, sizeof rest) != 0 ||
        vrpc_call_cancel(call, NULL) != -EALREADY)
        printf("BAD: after cancel\n");
    /* let the cancel reach the daemon before the connection goes */
    for (int i = 0; i < 3; i++)
        vrpc_client_wait(client, 0);
    printf("pid=%d exit=%d reason=%s\n", atoi(line), code, vrpc_call_reason(call));
    vrpc_call_free(call);
    vrpc_client_free(client);
    return 0;
}

typedef struct Thr {
    const char *target;
    int index, ok;
} Thr;

static void *thread_main(void *arg)
{
    Thr *t = arg;
    for (int i = 0; i < 5; i++) {
        char in[64], want[64], *out = NULL;
        snprintf(in, sizeof in, "thread %d call %d\n", t->index, i);
        snprintf(want, sizeof want, "THREAD %d CALL %d\n", t->index, i);
        int code = -1;
        if (vrpc_call_buffer(t->target, "demo.Uppercase", in, strlen(in), &out, NULL, &code) == 0 &&
            code == 0 && strcmp(out, want) == 0)
            t->ok++;
        free(out);
    }
    return NULL;
}

static int mode_threads(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int n = atoi(argv[0]), ok = 0;
    if (n <= 0 || n > 64)
        return 2;
    pthread_t tid[64];
    Thr t[64];
    for (int i = 0; i < n; i++) {
        t[i] = (Thr){.target = argv[1], .index = i};
        if (pthread_create(&tid[i], NULL, thread_main, &t[i]) != 0)
            return 1;
    }
    for (int i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
        ok += t[i].ok;
    }
    printf("ok=%d of %d\n", ok, n * 5);
    return 0;
}

typedef struct Conc {
    VrpcCall *call;
    char want[64];
    char got[64];
    size_t got_len;
    bool ok, finished;
    int *left;
} Conc;

static void conc_notify(VrpcCall *call, void *userdata)
{
    Conc *c = userdata;
    ssize_t n;
    while ((n = vrpc_call_read(call, VRPC_STDOUT, c->got + c->got_len,
                               sizeof c->got - 1 - c->got_len)) > 0)
        c->got_len += (size_t)n;
    int code;
    if (!c->finished && n == 0 && vrpc_call_exit_code(call, &code) == 0) {
        c->got[c->got_len] = '\0';
        c->ok = code == 0 && strcmp(c->got, c->want) == 0;
        if (!c->ok)
            fprintf(stderr, "call %p: exit %d got '%s' want '%s'\n", (void *)call, code, c->got,
                    c->want);
        c->finished = true;
        (*c->left)--;
        /* freeing the call inside its own notify is allowed */
        c->call = vrpc_call_free(call);
    }
}

static int mode_concurrent(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int n = atoi(argv[0]);
    if (n <= 0 || n > 10000)
        return 2;
    Conc *cs = calloc((size_t)n, sizeof *cs);
    VrpcClient *client;
    int r = vrpc_client_new(&client, NULL);
    if (r < 0 || !cs) {
        printf("client_new=%d\n", r);
        return 0;
    }
    int left = n;
    for (int i = 0; i < n; i++) {
        snprintf(cs[i].want, sizeof cs[i].want, "CALL-%d OF MANY\n", i);
        cs[i].left = &left;
        r = vrpc_call_open(client, argv[1], "demo.Uppercase", &cs[i].call);
        if (r < 0) {
            printf("call_open %d = %d\n", i, r);
            return 0;
        }
        vrpc_call_set_notify(cs[i].call, conc_notify, &cs[i]);
        if (vrpc_call_get_userdata(cs[i].call) != &cs[i])
            printf("BAD: userdata\n");
    }
    /* stdin goes out as each call gets credit (with the daemon's HELLO, at first) */
    bool *pending_in = calloc((size_t)n, sizeof *pending_in);
    if (!pending_in)
        return 1;
    for (int i = 0; i < n; i++)
        pending_in[i] = true;
    int polls = 0;
    while (left > 0 && polls < 1000000) {
        for (int i = 0; i < n; i++) {
            if (!pending_in[i] || !cs[i].call)
                continue;
            char in[64];
            snprintf(in, sizeof in, "call-%d of many\n", i);
            ssize_t space = vrpc_call_write_space(cs[i].call);
            if (space >= (ssize_t)strlen(in)) {
                if (vrpc_call_write(cs[i].call, in, strlen(in)) == (ssize_t)strlen(in)) {
                    vrpc_call_close_stdin(cs[i].call);
                    pending_in[i] = false;
                }
            }
        }
        polls++;
        if (vrpc_client_wait(client, -1) == -ENOTCONN)
            break;
    }
    int ok = 0;
    for (int i = 0; i < n; i++) {
        ok += cs[i].ok;
        vrpc_call_free(cs[i].call);
    }
    printf("ok=%d of %d\n", ok, n);
    free(pending_in);
    vrpc_client_free(client);
    free(cs);
    return 0;
}

static int mode_serve(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int n = atoi(argv[1]);
    VrpcServer *srv;
    int r = vrpc_server_listen(&srv, argv[0], 0600);
    if (r < 0) {
        fprintf(stderr, "listen: %s\n", strerror(-r));
        return 1;
    }
    /* readiness for the test: the socket exists now */
    printf("listening\n");
    fflush(stdout);
    for (int i = 0; i < n;) {
        struct pollfd p = {.fd = vrpc_server_fd(srv), .events = POLLIN};
        if (poll(&p, 1, -1) < 0)
            return 1;
        VrpcServerCall *call;
        r = vrpc_server_accept(srv, 10000, &call);
        if (r == -EAGAIN)
            continue;
        i++;
        if (r < 0) {
            fprintf(stderr, "accept: %s\n", strerror(-r));
            continue;
        }
        int fd = vrpc_server_call_fd(call);
        char reply[512];
        int len = snprintf(reply, sizeof reply, "src=%s svc=%s arg=%s|",
                           vrpc_server_call_source(call), vrpc_server_call_service(call),
                           vrpc_server_call_untrusted_argument(call));
        for (;;) {
            struct pollfd q = {.fd = fd, .events = POLLIN};
            (void)poll(&q, 1, -1);
            ssize_t got = read(fd, reply + len, sizeof reply - 1 - (size_t)len);
            if (got < 0 && errno == EAGAIN)
                continue;
            if (got <= 0 || (size_t)len + (size_t)got >= sizeof reply - 1)
                break;
            for (ssize_t k = 0; k < got; k++)
                reply[len + k] = (char)toupper((unsigned char)reply[len + k]);
            len += (int)got;
        }
        if (write(fd, reply, (size_t)len) != len)
            fprintf(stderr, "short reply\n");
        vrpc_server_call_free(call);
    }
    vrpc_server_free(srv);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("Usage: api-probe buffer|stream|concurrent|serve ARGS...\n"
               "Exercises libvrpc inside a guest of the emulated host (a test helper of "
               "tests/api).\n");
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "api-probe: expected a mode: buffer|stream|concurrent|serve (try "
                        "--help)\n");
        return 2;
    }
    int fds = vt_count_fds();
    int r;
    if (strcmp(argv[1], "buffer") == 0)
        r = mode_buffer(argc - 2, argv + 2);
    else if (strcmp(argv[1], "stream") == 0)
        r = mode_stream(argc - 2, argv + 2);
    else if (strcmp(argv[1], "concurrent") == 0)
        r = mode_concurrent(argc - 2, argv + 2);
    else if (strcmp(argv[1], "threads") == 0)
        r = mode_threads(argc - 2, argv + 2);
    else if (strcmp(argv[1], "big") == 0)
        r = mode_big(argc - 2, argv + 2);
    else if (strcmp(argv[1], "cancel") == 0)
        r = mode_cancel(argc - 2, argv + 2);
    else if (strcmp(argv[1], "serve") == 0)
        r = mode_serve(argc - 2, argv + 2);
    else
        r = 2;
    fflush(stdout);
    if (vt_count_fds() != fds) {
        printf("BAD: %d fds before, %d after\n", fds, vt_count_fds());
        r = 1;
    }
    return r;
}
