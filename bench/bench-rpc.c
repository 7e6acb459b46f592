/* SPDX-License-Identifier: MIT */
/*
 * bench-rpc.c - `vrpc-bench rpc-mux`: librpc's multiplexing cost against the raw vchan it
 * runs on, measured in the same run over vchans with 1 MiB rings between dom0 and a guest of
 * a private vrpc-sim instance (the benchmark re-executes itself under `vrpc-sim exec` as a
 * hidden peer subcommand; --local runs both ends in one process over vchan_pair_new()
 * instead). Four measurements, each a fresh vchan: raw bulk (the guest writes --bytes in
 * 64 KiB writes, dom0 copies them out, then acknowledges), librpc bulk on one stream (stdin
 * of one call; the handler's exit is the acknowledgement), librpc aggregate over 64
 * concurrent streams, and the 64-byte round trip (raw ping/echo vs stdin/stdout echo on one
 * stream). The librpc ends wait in the vchan blocking helpers the raw ends use (pump()).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-report.h"
#include "bench-util.h"
#include "bench-rpc.h"
#include "librpc/rpc.h"
#include "vchan/vchan.h"

#ifndef VRPC_SIM_BIN
#define VRPC_SIM_BIN "vrpc-sim"
#endif

#define RING ((size_t)1 << 20)
#define CHUNK ((size_t)64 << 10)
#define MSG 64
#define NSTREAMS 64
#define MAX_REPS 20

enum { M_RAW, M_ONE, M_MANY, M_RAW_RTT, M_RPC_RTT, M_COUNT };
static const char *const mode_names[M_COUNT] = {"raw", "one", "many", "rawrtt", "rpcrtt"};

/* ---- raw vchan ends ------------------------------------------------------------------ */

static int raw_send(Vchan *v, unsigned long long bytes, uint64_t *nsp)
{
    static uint8_t buf[CHUNK];
    uint8_t ack;
    memset(buf, 0x5a, sizeof(buf));
    uint64_t t0 = bench_now_ns();
    for (unsigned long long done = 0; done < bytes;) {
        size_t n = bytes - done < CHUNK ? (size_t)(bytes - done) : CHUNK;
        if (vchan_write_full(v, buf, n, NULL, 30000) < 0)
            return -1;
        done += n;
    }
    if (vchan_read_full(v, &ack, 1, NULL, 30000) != 0)
        return -1;
    *nsp = bench_now_ns() - t0;
    return 0;
}

static int raw_recv(Vchan *v, unsigned long long bytes)
{
    static uint8_t buf[CHUNK];
    for (unsigned long long done = 0; done < bytes;) {
        ssize_t n = vchan_read(v, buf, sizeof(buf));
        if (n == -EAGAIN) {
            if (vchan_wait_readable(v, 1, 30000) < 0)
                return -1;
            continue;
        }
        if (n <= 0)
            return -1;
        done += (unsigned long long)n;
    }
    return vchan_write_full(v, "k", 1, NULL, 30000) < 0 ? -1 : 0;
}

static int raw_ping(Vchan *v, int count, uint64_t *lat)
{
    uint8_t msg[MSG] = {1}, back[MSG];
    for (int i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();
        if (vchan_write_full(v, msg, MSG, NULL, 30000) < 0 ||
            vchan_read_full(v, back, MSG, NULL, 30000) != 0)
            return -1;
        lat[i] = bench_now_ns() - t0;
    }
    return 0;
}

static int raw_echo(Vchan *v, int count)
{
    uint8_t msg[MSG];
    for (int i = 0; i < count; i++)
        if (vchan_read_full(v, msg, MSG, NULL, 30000) != 0 ||
            vchan_write_full(v, msg, MSG, NULL, 30000) < 0)
            return -1;
    return 0;
}

/* ---- librpc ends ---------------------------------------------------------------------- */

typedef struct Bench {
    RpcConn *conn;
    Vchan *vc; /* the conn's transport: the bench waits on it as the raw ends do */
    int mode;
    bool caller;
    int exits;
    int failed;
    size_t got; /* rtt: bytes back on the current round */
    RpcStream *streams[NSTREAMS];
    unsigned long long left[NSTREAMS];
} Bench;

static uint8_t payload[CHUNK];

/* What vchan_write_full() does after it slept on a full ring, for the librpc writer: yield
 * the CPU (to the reader, if it waits for ours) until half the ring is free, at most 50 us,
 * instead of writing a little at each of the reader's reads. */
static void batch_wait(Vchan *v)
{
    uint64_t end = bench_now_ns() + 50000;

    for (;;) {
        ssize_t space = vchan_buffer_space(v);
        if (space < 0 || (size_t)space >= vchan_write_ring_size(v) / 2 ||
            vchan_is_open(v) != VCHAN_STATE_OPEN || bench_now_ns() >= end)
            return;
        sched_yield();
    }
}

/* Wait the way the raw ends wait inside vchan_read_full() and vchan_write_full(), then
 * dispatch: first the vchan's own blocking helper (an adaptive spin on the ring indices
 * that arms no notification, then arm and sleep in poll(2)), for data, or for ring space
 * for a 64 KiB write while one of ours was refused (@want_space); it returns at once if there is
 * some; after a sleep for room, batch_wait() as vchan_write_full() does. Same policy for
 * both contenders. Not while librpc has work of its own
 * (a timeout of 0: buffered frames, deferred work). */
static int pump(Bench *b, bool want_space)
{
    int to = rpc_conn_next_timeout_ms(b->conn);
    if (to != 0) {
        if (to < 0 || to > 1000)
            to = 1000;
        /* room for one 64 KiB write (one frame): librpc's window opens at a frame's room */
        VchanStats st0, st1;
        vchan_get_stats(b->vc, &st0);
        int r = want_space ? vchan_wait_writable(b->vc, CHUNK + RPC_FRAME_HEADER_SIZE, to)
                           : vchan_wait_readable(b->vc, 1, to);
        if (r < 0 && r != -ETIMEDOUT && r != -EPIPE)
            return -1;
        vchan_get_stats(b->vc, &st1);
        if (want_space && r == 0 && st1.sleeps != st0.sleeps)
            batch_wait(b->vc);
    }
    return rpc_conn_dispatch(b->conn) != 0 ? -1 : 0;
}

static void h_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *ud)
{
    if (rpc_stream_accept(s) < 0)
        ((Bench *)ud)->failed = 1;
}

static size_t h_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *ud)
{
    Bench *b = ud;
    if (b->mode == M_RPC_RTT) {
        if (b->caller) {
            b->got += len;
            return len;
        }
        ssize_t w = rpc_stream_write(s, RPC_CH_STDOUT, data, len);
        return w > 0 ? (size_t)w : 0;
    }
    return len; /* bulk: the data is consumed in place, as the raw receiver's copy */
}

static void h_eof(RpcStream *s, RpcChannel ch, void *ud)
{
    if (ch == RPC_CH_STDIN)
        rpc_stream_exit(s, 0, NULL);
}

static void h_exit(RpcStream *s, int32_t code, bool refused, const char *reason, void *ud)
{
    Bench *b = ud;
    b->exits++;
    if (code != 0 || refused)
        b->failed = 1;
}

static void h_writable(RpcStream *s, void *ud)
{
    Bench *b = ud;
    if (!b->caller)
        rpc_stream_resume(s);
}

static void h_close(RpcConn *conn, int error, const char *reason, void *ud)
{
    Bench *b = ud;
    /* The caller closes once every exit is in; anything earlier is a failure. */
    if (b->caller && b->exits < (b->mode == M_MANY ? NSTREAMS : 1))
        b->failed = 1;
}

static const RpcCallbacks bench_cb = {
    .on_call = h_call,
    .on_data = h_data,
    .on_eof = h_eof,
    .on_exit = h_exit,
    .on_writable = h_writable,
    .on_close = h_close,
};

static void rpc_cfg(RpcConnConfig *cfg, bool caller)
{
    rpc_conn_config_init(cfg);
    cfg->role = caller ? RPC_ROLE_INITIATOR : RPC_ROLE_ACCEPTOR;
    /* Windows above the ring size, so that the ring, not credit, is what limits. */
    cfg->stream_window = 4u << 20;
    cfg->conn_window = 64u << 20;
    cfg->keepalive_ms = 0;
}

/* Caller side of the bulk modes: write on 1 or 64 streams, then wait for every exit. */
static int rpc_send(Bench *b, unsigned long long bytes, uint64_t *nsp)
{
    int n = b->mode == M_MANY ? NSTREAMS : 1;
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        if (rpc_stream_open(b->conn, &(RpcCall){.service = "bench.Sink"}, &b->streams[i]) < 0)
            return -1;
        b->left[i] = bytes / (unsigned long long)n;
    }
    int open = n;
    while (open > 0 || b->exits < n) {
        bool moved = false;
        for (int i = 0; i < n; i++) {
            while (b->left[i] > 0) {
                size_t k = b->left[i] < CHUNK ? (size_t)b->left[i] : CHUNK;
                ssize_t w = rpc_stream_write(b->streams[i], RPC_CH_STDIN, payload, k);
                if (w <= 0)
                    break;
                b->left[i] -= (unsigned long long)w;
                moved = true;
                if (b->left[i] == 0) {
                    rpc_stream_close_write(b->streams[i], RPC_CH_STDIN);
                    open--;
                }
                if (n > 1)
                    break; /* one chunk per stream per turn */
            }
        }
        /* Sleep only when every stream is blocked. */
        if (moved ? rpc_conn_dispatch(b->conn) != 0 : pump(b, open > 0) < 0)
            return -1;
        if (b->failed)
            return -1;
    }
    *nsp = bench_now_ns() - t0;
    return 0;
}

static int rpc_ping(Bench *b, int count, uint64_t *lat)
{
    RpcStream *s;
    uint8_t msg[MSG] = {2};
    if (rpc_stream_open(b->conn, &(RpcCall){.service = "bench.Echo"}, &s) < 0)
        return -1;
    while (rpc_stream_send_window(s, RPC_CH_STDIN) <= 0)
        if (pump(b, false) < 0 || b->failed)
            return -1;
    for (int i = 0; i < count; i++) {
        uint64_t t0 = bench_now_ns();
        b->got = 0;
        if (rpc_stream_write(s, RPC_CH_STDIN, msg, MSG) != MSG)
            return -1;
        while (b->got < MSG)
            if (pump(b, false) < 0 || b->failed)
                return -1;
        lat[i] = bench_now_ns() - t0;
    }
    rpc_stream_close_write(s, RPC_CH_STDIN);
    while (b->exits < 1)
        if (pump(b, false) < 0 || b->failed)
            return -1;
    return 0;
}

/* Handler side: serve until the caller has what it wants and closes. */
static int rpc_serve(Bench *b)
{
    while (!rpc_conn_is_closed(b->conn) && !b->failed)
        if (pump(b, false) < 0)
            break;
    return b->failed ? -1 : 0;
}

/* ---- running one measurement with both ends given ----------------------------------- */

/* One end of one measurement over @v (taken). @sender: the guest side (caller / writer). */
static int run_end(Vchan *v, int mode, bool sender, unsigned long long bytes, int count, char *out,
                   size_t outlen)
{
    uint64_t ns = 0;
    int rc;

    if (mode == M_RAW || mode == M_RAW_RTT) {
        if (mode == M_RAW)
            rc = sender ? raw_send(v, bytes, &ns) : raw_recv(v, bytes);
        else if (sender) {
            uint64_t *lat = calloc((size_t)count, sizeof(*lat));
            rc = lat ? raw_ping(v, count, lat) : -1;
            if (rc == 0)
                bench_format_rtt(out, outlen, lat, count);
            free(lat);
        } else
            rc = raw_echo(v, count);
        if (rc == 0 && sender && mode == M_RAW)
            snprintf(out, outlen, "ns %llu\n", (unsigned long long)ns);
        vchan_flush(v, 5000);
        vchan_free(v);
        return rc;
    }
    Bench b = {.vc = v, .mode = mode, .caller = sender};
    RpcConnConfig cfg;
    rpc_cfg(&cfg, sender);
    if (rpc_conn_new_vchan(&b.conn, v, true, &cfg, &bench_cb, &b) < 0)
        return -1;
    if (!sender) {
        rc = rpc_serve(&b);
    } else if (mode == M_RPC_RTT) {
        uint64_t *lat = calloc((size_t)count, sizeof(*lat));
        rc = lat ? rpc_ping(&b, count, lat) : -1;
        if (rc == 0)
            bench_format_rtt(out, outlen, lat, count);
        free(lat);
    } else {
        rc = rpc_send(&b, bytes, &ns);
        if (rc == 0)
            snprintf(out, outlen, "ns %llu\n", (unsigned long long)ns);
    }
    if (sender) {
        rpc_conn_close(b.conn, "done");
        for (int i = 0; i < 100 && rpc_conn_dispatch(b.conn) == 0; i++)
            ;
    }
    rpc_conn_free(b.conn);
    return rc;
}

/* ---- hidden peer under vrpc-sim exec ----
 * __peer server|client DOMID PATH MODE BYTES COUNT: the server is the guest (sender). */
static int peer_main(int argc, char **argv)
{
    Vchan *v = NULL;
    int rc, mode = -1;

    if (argc != 8)
        return 2;
    bool server = strcmp(argv[2], "server") == 0;
    int domid = atoi(argv[3]);
    for (int m = 0; m < M_COUNT; m++)
        if (strcmp(argv[5], mode_names[m]) == 0)
            mode = m;
    if (mode < 0)
        return 2;
    unsigned long long bytes = strtoull(argv[6], NULL, 0);
    int count = atoi(argv[7]);
    rc = server ? vchan_server_new(&v, domid, argv[4], RING, RING)
                : vchan_client_new_wait(&v, domid, argv[4], 20000);
    if (rc < 0) {
        fprintf(stderr, "rpc-mux peer: vchan %s: %s\n", argv[2], strerror(-rc));
        return 1;
    }
    if (server && bench_vchan_wait_client(v, 20000) < 0)
        return 1;
    char out[128] = "";
    rc = run_end(v, mode, server, bytes, count, out, sizeof(out));
    fputs(out, stdout);
    fflush(stdout);
    return rc < 0 ? 1 : 0;
}

/* ---- driver -------------------------------------------------------------------------- */

typedef struct Cfg {
    BenchOpts opt; /* sim, bytes, reps, rtt (and --local) */
    char self[PATH_MAX];
    char ns[64];
    unsigned seq;
} Cfg;

typedef struct LocalEnd {
    Vchan *v;
    int mode, count, rc;
    unsigned long long bytes;
} LocalEnd;

static void *local_rx(void *arg)
{
    LocalEnd *e = arg;
    char out[128];
    e->rc = run_end(e->v, e->mode, false, e->bytes, e->count, out, sizeof(out));
    return NULL;
}

/* One measurement; returns the sender's output line, or NULL. */
static char *one_run(Cfg *cfg, int mode)
{
    char sbytes[24], scount[24];
    snprintf(sbytes, sizeof(sbytes), "%llu", cfg->opt.bytes);
    snprintf(scount, sizeof(scount), "%d", cfg->opt.rtt);

    if (cfg->opt.local) {
        /* vchan_pair_new() is in-process: the receiving end runs in a thread. */
        LocalEnd rx = {.mode = mode, .bytes = cfg->opt.bytes, .count = cfg->opt.rtt};
        Vchan *srv;
        pthread_t th;
        char out[128] = "";
        if (vchan_pair_new(&srv, &rx.v, RING, RING) < 0)
            return NULL;
        if (pthread_create(&th, NULL, local_rx, &rx) != 0) {
            vchan_free(srv);
            vchan_free(rx.v);
            return NULL;
        }
        int rc = run_end(srv, mode, true, cfg->opt.bytes, cfg->opt.rtt, out, sizeof(out));
        pthread_join(th, NULL);
        return rc < 0 || rx.rc < 0 ? NULL : strdup(out);
    }
    char path[64], abspath[96];
    snprintf(path, sizeof(path), "data/rpcbench/%u", ++cfg->seq);
    snprintf(abspath, sizeof(abspath), "/local/domain/1/%s", path);
    char *sargv[] = {(char *)cfg->opt.sim,
                     "exec",
                     "--ns",
                     cfg->ns,
                     "rpcguest",
                     "--",
                     cfg->self,
                     "rpc-mux",
                     "__peer",
                     "server",
                     "0",
                     path,
                     (char *)mode_names[mode],
                     sbytes,
                     scount,
                     NULL};
    char *cargv[] = {(char *)cfg->opt.sim,
                     "exec",
                     "--ns",
                     cfg->ns,
                     "dom0",
                     "--",
                     cfg->self,
                     "rpc-mux",
                     "__peer",
                     "client",
                     "1",
                     abspath,
                     (char *)mode_names[mode],
                     sbytes,
                     scount,
                     NULL};
    char *so, *co;
    if (bench_run_pair(sargv, cargv, &so, &co) < 0)
        return NULL;
    free(co);
    return so;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-bench rpc-mux [--bytes N] [--reps N] [--rtt N] [--local] [--sim PATH]\n"
               "  librpc over a vchan with 1 MiB rings vs the raw vchan, in one run: bulk\n"
               "  throughput of one stream and of 64 concurrent streams, 64-byte round trip.\n"
               "  The ends run as a guest and dom0 of a private vrpc-sim instance; --local\n"
               "  uses an in-process vchan pair (two threads) instead. Medians of --reps\n"
               "  (default 5) repetitions, the contenders interleaved.\n"
               "  --json rows: raw_gbps mux1_gbps mux64_gbps rtt64_raw_p50_us rtt64_mux_p50_us\n");
}

int bench_rpc_main(int argc, char **argv)
{
    static const char *const guests[] = {"rpcguest", NULL};
    Cfg cfg = {.opt = {.sim = VRPC_SIM_BIN, .bytes = 1ull << 30, .reps = 5, .rtt = 10000}};
    int rc;
    uint64_t v[M_COUNT][MAX_REPS], w[M_COUNT][MAX_REPS];
    bool failed = false;

    if (argc >= 2 && strcmp(argv[1], "__peer") == 0)
        return peer_main(argc, argv);
    rc = bench_parse_opts("rpc-mux", argc, argv, &cfg.opt, true, 1ull << 20, MAX_REPS, usage);
    if (rc >= 0)
        return rc;
    rc = bench_self_exe(cfg.self, sizeof(cfg.self));
    if (rc < 0) {
        fprintf(stderr, "vrpc-bench rpc-mux: /proc/self/exe: %s\n", strerror(-rc));
        return 1;
    }
    snprintf(cfg.ns, sizeof(cfg.ns), "vrpc-rpcbench-%d", (int)getpid());
    signal(SIGPIPE, SIG_IGN);
    if (!cfg.opt.local && bench_sim_up(cfg.opt.sim, cfg.ns, guests) < 0) {
        fprintf(stderr, "vrpc-bench rpc-mux: cannot bring up a sim instance with %s\n",
                cfg.opt.sim);
        return 1;
    }
    printf("vrpc-bench rpc-mux: %s, 1 MiB rings, %llu bytes per bulk run, %d round trips, "
           "median of %d, %d co-runners\n",
           cfg.opt.local ? "in-process vchan pair (--local)" : "guest -> dom0 on vrpc-sim",
           cfg.opt.bytes, cfg.opt.rtt, cfg.opt.reps, bench_report_load());
    fflush(stdout);
    /* Interleave the contenders rep by rep, so that drift hits all alike. */
    for (int rep = 0; rep < cfg.opt.reps; rep++) {
        for (int m = 0; m < M_COUNT; m++) {
            char *out = one_run(&cfg, m);
            unsigned long long x = 0, y = 0;
            bool rtt = m == M_RAW_RTT || m == M_RPC_RTT;
            if (!out ||
                (rtt ? sscanf(out, "rtt %llu %llu", &x, &y) != 2
                     : sscanf(out, "ns %llu", &x) != 1) ||
                x == 0) {
                fprintf(stderr, "vrpc-bench rpc-mux: %s run failed\n", mode_names[m]);
                failed = true;
            }
            v[m][rep] = x;
            w[m][rep] = y;
            free(out);
        }
    }
    if (!cfg.opt.local)
        bench_sim_down(cfg.opt.sim, cfg.ns);
    double med[M_COUNT], med99[M_COUNT];
    for (int m = 0; m < M_COUNT; m++) {
        med[m] = (double)bench_median_u64(v[m], cfg.opt.reps);
        med99[m] = (double)bench_median_u64(w[m], cfg.opt.reps);
    }
    double gb[3];
    for (int m = 0; m < 3; m++)
        gb[m] = med[m] > 0 ? (double)cfg.opt.bytes / med[m] : 0;
    printf("\n%-34s %12s %10s\n", "measurement", "value", "vs raw");
    printf("%-34s %8.2f GB/s %9s\n", "raw vchan bulk", gb[M_RAW], "1.00x");
    printf("%-34s %8.2f GB/s %9.2fx\n", "librpc bulk, 1 stream", gb[M_ONE],
           gb[M_RAW] > 0 ? gb[M_ONE] / gb[M_RAW] : 0);
    printf("%-34s %8.2f GB/s %9.2fx\n", "librpc bulk, 64 streams (aggregate)", gb[M_MANY],
           gb[M_RAW] > 0 ? gb[M_MANY] / gb[M_RAW] : 0);
    printf("%-34s %9.2f us %9s\n", "raw vchan 64 B round trip p50", med[M_RAW_RTT] / 1000, "1.00x");
    printf("%-34s %9.2f us %9s\n", "raw vchan 64 B round trip p99", med99[M_RAW_RTT] / 1000,
           "1.00x");
    printf("%-34s %9.2f us %9.2fx\n", "librpc 64 B round trip p50", med[M_RPC_RTT] / 1000,
           med[M_RAW_RTT] > 0 ? med[M_RPC_RTT] / med[M_RAW_RTT] : 0);
    printf("%-34s %9.2f us %9.2fx\n", "librpc 64 B round trip p99", med99[M_RPC_RTT] / 1000,
           med99[M_RAW_RTT] > 0 ? med99[M_RPC_RTT] / med99[M_RAW_RTT] : 0);
    bench_row("rpc-mux", "raw_gbps", gb[M_RAW] > 0 ? gb[M_RAW] : NAN, "GB/s");
    bench_row("rpc-mux", "mux1_gbps", gb[M_ONE] > 0 ? gb[M_ONE] : NAN, "GB/s");
    bench_row("rpc-mux", "mux64_gbps", gb[M_MANY] > 0 ? gb[M_MANY] : NAN, "GB/s");
    bench_row("rpc-mux", "rtt64_raw_p50_us", med[M_RAW_RTT] > 0 ? med[M_RAW_RTT] / 1000 : NAN,
              "us");
    bench_row("rpc-mux", "rtt64_mux_p50_us", med[M_RPC_RTT] > 0 ? med[M_RPC_RTT] / 1000 : NAN,
              "us");
    printf("single-stream target >= 0.85x raw: %s\n",
           gb[M_RAW] > 0 && gb[M_ONE] / gb[M_RAW] >= 0.85 ? "met" : "NOT met");
    fflush(stdout);
    return failed ? 1 : 0;
}
