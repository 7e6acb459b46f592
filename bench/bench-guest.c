/* SPDX-License-Identifier: MIT */
/*
 * bench-guest.c - the caller that `vrpc-bench calls` and `vrpc-bench remote` re-execute inside
 * a guest (bench-guest.h): a librpc connection to the guest's agent, as vrpc-call makes, that
 * times sequential calls, opens many at once, or streams a pattern through demo.Echo and
 * checks every byte that comes back; and the driver side that starts it with vrpc-sim exec
 * and reads its one line of figures.
 */
#include "bench-guest.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "librpc/rpc.h"

/* The stream's bytes: byte i is pattern[i % PATTERN_PERIOD]. A prime period, so that a lost,
 * repeated or reordered chunk of any size below it shows. */
#define PATTERN_PERIOD 65521u
/* Bytes per rpc_stream_write() of the stream: as much as a client with its input at hand
 * offers at once (librpc cuts it into frames of the peer's max_frame), not one period. */
#define STREAM_WRITE_MAX (1024u * 1024u)
static uint8_t pattern[PATTERN_PERIOD + STREAM_WRITE_MAX];

static void pattern_init(void)
{
    uint32_t x = 2463534242u;

    for (size_t i = 0; i < PATTERN_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pattern[i] = (uint8_t)x;
    }
    for (size_t i = PATTERN_PERIOD; i < sizeof(pattern); i++)
        pattern[i] = pattern[i - PATTERN_PERIOD];
}

/* Whether @len bytes at stream offset @off are the pattern's. */
static bool pattern_ok(unsigned long long off, const uint8_t *data, size_t len)
{
    while (len) {
        size_t at = (size_t)(off % PATTERN_PERIOD), n = len < PATTERN_PERIOD ? len : PATTERN_PERIOD;

        if (memcmp(data, pattern + at, n) != 0)
            return false;
        off += n;
        data += n;
        len -= n;
    }
    return true;
}

typedef struct Caller {
    RpcConn *conn;
    int done;   /* calls finished */
    int ok;     /* calls that ended with the expected exit code */
    int expect; /* expected exit code */
    unsigned long long received;
    bool verify;   /* stream mode: compare stdout with the pattern */
    bool corrupt;  /* a byte came back that was not sent there */
    bool writable;
    bool closed;
} Caller;

typedef struct CallState {
    Caller *c;
    uint64_t t0;
    bool finished;
} CallState;

static size_t cb_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *ud)
{
    Caller *c = ud;

    (void)s;
    if (ch != RPC_CH_STDOUT)
        return len;
    if (c->verify && !c->corrupt && !pattern_ok(c->received, data, len))
        c->corrupt = true;
    c->received += len;
    return len;
}

static void finish(RpcStream *s, Caller *c, int32_t code)
{
    CallState *cs = rpc_stream_get_userdata(s);

    if (cs && !cs->finished) {
        cs->finished = true;
        c->done++;
        if (code == c->expect)
            c->ok++;
    }
}

static void cb_exit(RpcStream *s, int32_t code, bool refused, const char *reason, void *ud)
{
    (void)refused;
    (void)reason;
    finish(s, ud, code);
}

static void cb_reset(RpcStream *s, uint32_t code, bool local, const char *reason, void *ud)
{
    (void)code;
    (void)local;
    (void)reason;
    finish(s, ud, -1);
}

static void cb_writable(RpcStream *s, void *ud)
{
    (void)s;
    ((Caller *)ud)->writable = true;
}

static void cb_close(RpcConn *conn, int error, const char *reason, void *ud)
{
    (void)conn;
    fprintf(stderr, "vrpc-bench: connection to the agent closed: %s (%s)\n", reason,
            rpc_error_name(error));
    ((Caller *)ud)->closed = true;
}

/* Run the connection until @c->done reaches @want (or it closes, or 30 s pass). */
static int drive(Caller *c, int want)
{
    uint64_t deadline = bench_now_ns() + 30000000000ull;

    while (c->done < want && !c->closed) {
        struct pollfd p = {rpc_conn_fd(c->conn), (short)rpc_conn_events(c->conn), 0};
        int t = rpc_conn_next_timeout_ms(c->conn);

        if (bench_now_ns() > deadline)
            return -ETIMEDOUT;
        if (t < 0 || t > 100)
            t = 100;
        if (rpc_conn_dispatch(c->conn) != 0)
            break;
        if (c->done >= want)
            break;
        poll(&p, 1, t);
    }
    return c->done >= want ? 0 : -EIO;
}

static int connect_agent(Caller *c)
{
    static const RpcCallbacks cb = {
        .on_data = cb_data,
        .on_exit = cb_exit,
        .on_reset = cb_reset,
        .on_writable = cb_writable,
        .on_close = cb_close,
        .on_stream_free = NULL,
    };
    const char *path = getenv("VRPC_SOCKET");
    RpcConnConfig cfg;
    int fd;

    if (!path || !*path) {
        fprintf(stderr, "vrpc-bench: VRPC_SOCKET is not set (run under vrpc-sim exec)\n");
        return -1;
    }
    fd = rpc_unix_connect(path);
    if (fd < 0) {
        fprintf(stderr, "vrpc-bench: cannot connect to %s: %s\n", path, strerror(-fd));
        return -1;
    }
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_INITIATOR;
    cfg.max_streams = 4096;
    cfg.keepalive_ms = 0;
    cfg.max_frame = RPC_FRAME_MAX_LOCAL; /* as libvrpc's callers */
    if (rpc_conn_new_fd(&c->conn, fd, true, &cfg, &cb, c) < 0)
        return -1;
    return 0;
}

static RpcStream *open_call(Caller *c, const char *target, const char *service, CallState *cs)
{
    RpcCall call = {.service = service, .target = target};
    RpcStream *s = NULL;

    if (rpc_stream_open(c->conn, &call, &s) < 0)
        return NULL;
    cs->c = c;
    cs->finished = false;
    rpc_stream_set_userdata(s, cs);
    return s;
}

/* latency: COUNT sequential calls, each sending @payload bytes on stdin then EOF.
 * Prints "lat N OK p50_ns p99_ns". */
static int client_latency(const char *target, const char *service, int count, size_t payload,
                          int expect)
{
    static const uint8_t msg[64] = "0123456789abcdef0123456789abcdef0123456789abcdef012345678\n";
    Caller c = {.expect = expect};
    uint64_t *lat = calloc((size_t)count, sizeof(*lat));
    int n = 0;

    if (!lat || connect_agent(&c) < 0)
        return 1;
    for (int i = 0; i < count && !c.closed; i++) {
        CallState cs;
        uint64_t t0 = bench_now_ns();
        /* The call, its input and EOF leave in one write (rpc_conn_cork), as any client that
         * has its whole input at hand would send them. */
        rpc_conn_cork(c.conn);
        RpcStream *s = open_call(&c, target, service, &cs);

        if (s && payload)
            (void)rpc_stream_write(s, RPC_CH_STDIN, msg, payload < sizeof(msg) ? payload : 64);
        if (s)
            rpc_stream_close_write(s, RPC_CH_STDIN);
        rpc_conn_uncork(c.conn);
        if (!s)
            break;
        if (drive(&c, i + 1) < 0)
            break;
        lat[n++] = bench_now_ns() - t0;
    }
    printf("lat %d %d %" PRIu64 " %" PRIu64 "\n", n, c.ok, bench_percentile(lat, n, 50),
           bench_percentile(lat, n, 99));
    free(lat);
    rpc_conn_free(c.conn);
    return 0;
}

/* concurrent: COUNT calls opened at once on one connection. Prints "conc N OK ns". */
static int client_concurrent(const char *target, const char *service, int count)
{
    Caller c = {.expect = 0};
    CallState *cs = calloc((size_t)count, sizeof(*cs));
    uint64_t t0;
    int opened = 0;

    if (!cs || connect_agent(&c) < 0)
        return 1;
    t0 = bench_now_ns();
    for (int i = 0; i < count; i++) {
        RpcStream *s = open_call(&c, target, service, &cs[i]);

        if (!s)
            break;
        rpc_stream_close_write(s, RPC_CH_STDIN);
        opened++;
    }
    drive(&c, opened);
    printf("conc %d %d %" PRIu64 "\n", opened, c.ok, bench_now_ns() - t0);
    free(cs);
    rpc_conn_free(c.conn);
    return 0;
}

/* stream: BYTES of the pattern through demo.Echo, written and read back at once. Prints
 * "stream BYTES ns", BYTES 0 unless all came back as sent. */
static int client_stream(const char *target, unsigned long long bytes)
{
    Caller c = {.expect = 0, .verify = true};
    unsigned long long sent = 0;
    CallState cs;
    RpcStream *s;
    uint64_t t0;

    if (connect_agent(&c) < 0)
        return 1;
    pattern_init();
    t0 = bench_now_ns();
    s = open_call(&c, target, "demo.Echo", &cs);
    if (!s)
        return 1;
    while (!c.closed && c.done == 0) {
        while (s && sent < bytes) {
            size_t at = (size_t)(sent % PATTERN_PERIOD);
            size_t want =
                bytes - sent < STREAM_WRITE_MAX ? (size_t)(bytes - sent) : STREAM_WRITE_MAX;
            ssize_t n = rpc_stream_write(s, RPC_CH_STDIN, pattern + at, want);

            if (n <= 0)
                break;
            sent += (unsigned long long)n;
            if (sent == bytes)
                rpc_stream_close_write(s, RPC_CH_STDIN);
        }
        struct pollfd p = {rpc_conn_fd(c.conn), (short)rpc_conn_events(c.conn), 0};
        if (rpc_conn_dispatch(c.conn) != 0)
            break;
        if (c.done)
            break;
        if (sent < bytes && c.writable) {
            c.writable = false;
            continue;
        }
        poll(&p, 1, 100);
    }
    if (c.corrupt)
        fprintf(stderr, "vrpc-bench: demo.Echo returned bytes that were not sent\n");
    printf("stream %llu %" PRIu64 "\n", c.ok && !c.corrupt && c.received == bytes ? bytes : 0ull,
           bench_now_ns() - t0);
    rpc_conn_free(c.conn);
    return 0;
}

/* __client lat|conc|stream TARGET SERVICE COUNT PAYLOAD EXPECT */
int bench_guest_client_main(int argc, char **argv)
{
    if (argc != 8)
        return 2;
    const char *mode = argv[2], *target = argv[3], *service = argv[4];
    unsigned long long count = strtoull(argv[5], NULL, 10);
    int payload = atoi(argv[6]), expect = atoi(argv[7]);

    signal(SIGPIPE, SIG_IGN);
    if (strcmp(mode, "lat") == 0)
        return client_latency(target, service, (int)count, (size_t)payload, expect);
    if (strcmp(mode, "conc") == 0)
        return client_concurrent(target, service, (int)count);
    if (strcmp(mode, "stream") == 0)
        return client_stream(target, count);
    return 2;
}

/* ---- the driver side ------------------------------------------------------------------- */

char *bench_guest_run(const BenchGuest *g, const char *mode, const char *target,
                      const char *service, unsigned long long count, int payload, int expect)
{
    char scount[24], spayload[16], sexpect[16];

    snprintf(scount, sizeof(scount), "%llu", count);
    snprintf(spayload, sizeof(spayload), "%d", payload);
    snprintf(sexpect, sizeof(sexpect), "%d", expect);
    char *argv[] = {(char *)g->sim,  "exec",         "--ns",         (char *)g->ns,
                    (char *)g->guest, "--",          (char *)g->self, (char *)g->sub,
                    "__client",       (char *)mode, (char *)target, (char *)service,
                    scount,           spayload,     sexpect,        NULL};
    return bench_run_capture(argv);
}

bool bench_guest_latency(const BenchGuest *g, const char *target, const char *service,
                         int calls, int payload, int expect, double *p50p, double *p99p,
                         int *okp)
{
    char *out = bench_guest_run(g, "lat", target, service, (unsigned long long)calls, payload,
                                expect);
    unsigned long long a, b;
    int cnt, ok;
    bool got = out && sscanf(out, "lat %d %d %llu %llu", &cnt, &ok, &a, &b) == 4 && cnt > 0;

    free(out);
    if (!got)
        return false;
    *p50p = (double)a;
    *p99p = (double)b;
    *okp = ok;
    return true;
}

double bench_guest_stream(const BenchGuest *g, const char *target, unsigned long long bytes)
{
    char *out = bench_guest_run(g, "stream", target, "demo.Echo", bytes, 0, 0);
    unsigned long long b, ns;
    double gbs = 0;

    if (out && sscanf(out, "stream %llu %llu", &b, &ns) == 2 && b == bytes && ns)
        gbs = (double)b / (double)ns;
    free(out);
    return gbs;
}
