/* SPDX-License-Identifier: MIT */
/*
 * bench-rpc.c - `vrpc-bench rpc-mux`: librpc's multiplexing cost against the raw vchan it
 * runs on, measured in the same run over vchans with 1 MiB rings between dom0 and a guest of
 * a private vrpc-sim instance (the benchmark re-executes itself under `vrpc-sim exec` as a
 * hidden peer subcommand; --local runs both ends in one process over vchan_pair_new()
 * instead). Each rep is two runs, each a pair of processes with fresh vchans, one per
 * contender, and the contenders take turns in them (run_bulk(), run_rtt()): bulk, --bytes each
 * for raw (the guest writes in 64 KiB writes, dom0 copies them out and acknowledges each
 * turn's bytes with one byte), librpc on one stream (stdin of one call; the handler
 * acknowledges each turn on stdout) and librpc over 64 concurrent streams; then the 64-byte
 * round trip, raw ping/echo against stdin/stdout echo on one stream. The librpc ends wait in
 * the vchan blocking helpers the raw ends use (pump()).
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
/* Round trips per chunk of one contender before the other takes its turn (run_rtt()). */
#define RTT_CHUNK 250
/* Turns of each bulk contender per run (run_bulk()). */
#define BULK_TURNS 8

enum { M_BULK, M_RTT, M_COUNT };
static const char *const mode_names[M_COUNT] = {"bulk", "rtt"};
/* The vchans of a run (3 for bulk: raw, one stream, 64 streams; 2 for rtt: raw, librpc). */
static const int mode_vchans[M_COUNT] = {3, 2};

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
    int nstreams; /* bulk: 1 or NSTREAMS; rtt: 1 */
    int exits;
    int failed;
    bool called; /* rtt, handler: the caller's stream arrived */
    /* rtt: bytes back on the current round (caller), echoed in all (handler); bulk: the
     * acknowledgements of turns (one byte per stream and turn) received or sent */
    size_t got;
    unsigned long long bytes; /* bulk: of the run, per contender */
    int ncalled;              /* bulk, handler: streams arrived (their order is the caller's) */
    RpcStream *streams[NSTREAMS];
    unsigned long long left[NSTREAMS]; /* bulk, caller: of the current turn, still to write */
    unsigned long long recv[NSTREAMS]; /* bulk, handler: received in all */
    unsigned long long next[NSTREAMS]; /* bulk, handler: received by the end of the turn */
    int turn[NSTREAMS];                /* bulk, handler: the turn under way */
} Bench;

/* Bytes of turn @t on stream @i of @n: a bulk run's @bytes per contender in BULK_TURNS turns
 * (the last takes the remainder), each turn's spread over the streams. */
static unsigned long long turn_share(unsigned long long bytes, int t, int n, int i)
{
    unsigned long long tb = bytes / BULK_TURNS + (t == BULK_TURNS - 1 ? bytes % BULK_TURNS : 0);
    return tb / (unsigned)n + ((unsigned long long)i < tb % (unsigned)n ? 1 : 0);
}

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
        if (!want_space) {
            int r = vchan_wait_readable(b->vc, 1, to);
            if (r < 0 && r != -ETIMEDOUT && r != -EPIPE)
                return -1;
        } else {
            /* room for one 64 KiB write (one frame): librpc's window opens at a frame's room */
            VchanStats st0, st1;
            vchan_get_stats(b->vc, &st0);
            int r = vchan_wait_writable(b->vc, CHUNK + RPC_FRAME_HEADER_SIZE, to);
            if (r < 0 && r != -ETIMEDOUT && r != -EPIPE)
                return -1;
            vchan_get_stats(b->vc, &st1);
            if (r == 0 && st1.sleeps != st0.sleeps)
                batch_wait(b->vc);
        }
    }
    return rpc_conn_dispatch(b->conn) != 0 ? -1 : 0;
}

static void h_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *ud)
{
    Bench *b = ud;

    b->called = true;
    if (b->mode == M_BULK) {
        int i = b->ncalled;
        if (i == b->nstreams) {
            b->failed = 1;
            return;
        }
        b->streams[b->ncalled++] = s;
        b->next[i] = turn_share(b->bytes, 0, b->nstreams, i);
    }
    if (rpc_stream_accept(s) < 0)
        b->failed = 1;
}

/* Bulk, handler: @len more bytes on stream @s; one byte back on stdout for each turn's share
 * complete (the caller's next turn waits for all of them). */
static void bulk_received(Bench *b, RpcStream *s, size_t len)
{
    int i = 0;

    while (i < b->ncalled && b->streams[i] != s)
        i++;
    if (i == b->ncalled) {
        b->failed = 1;
        return;
    }
    b->recv[i] += len;
    while (b->turn[i] < BULK_TURNS && b->recv[i] >= b->next[i]) {
        if (rpc_stream_write(s, RPC_CH_STDOUT, "k", 1) != 1)
            b->failed = 1;
        b->got++;
        if (++b->turn[i] < BULK_TURNS)
            b->next[i] += turn_share(b->bytes, b->turn[i], b->nstreams, i);
    }
}

static size_t h_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *ud)
{
    Bench *b = ud;
    if (b->mode == M_RTT) {
        if (b->caller) {
            b->got += len;
            return len;
        }
        ssize_t w = rpc_stream_write(s, RPC_CH_STDOUT, data, len);
        if (w <= 0)
            return 0;
        b->got += (size_t)w;
        return (size_t)w;
    }
    if (b->caller)
        b->got += len; /* acknowledgements */
    else
        bulk_received(b, s, len); /* consumed in place, as the raw receiver's copy */
    return len;
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
    if (b->caller && b->exits < b->nstreams)
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

/* Bulk, caller: turn @t, each stream's share written and acknowledged; adds its time to
 * *@nsp. Sleeps only when every stream is blocked. */
static int rpc_turn(Bench *b, int t, uint64_t *nsp)
{
    int n = b->nstreams, open = 0;
    size_t want = (size_t)(t + 1) * (size_t)n; /* acknowledgements by the end of the turn */
    uint64_t t0 = bench_now_ns();

    for (int i = 0; i < n; i++)
        if ((b->left[i] = turn_share(b->bytes, t, n, i)) > 0)
            open++;
    while (open > 0 || b->got < want) {
        bool moved = false;
        for (int i = 0; i < n; i++) {
            while (b->left[i] > 0) {
                size_t k = b->left[i] < CHUNK ? (size_t)b->left[i] : CHUNK;
                ssize_t w = rpc_stream_write(b->streams[i], RPC_CH_STDIN, payload, k);
                if (w <= 0)
                    break;
                b->left[i] -= (unsigned long long)w;
                moved = true;
                if (b->left[i] == 0)
                    open--;
                if (n > 1)
                    break; /* one chunk per stream per round */
            }
        }
        if (moved ? rpc_conn_dispatch(b->conn) != 0 : pump(b, open > 0) < 0)
            return -1;
        if (b->failed)
            return -1;
    }
    *nsp += bench_now_ns() - t0;
    return 0;
}

/* Bulk, handler: serve until every stream acknowledged turn @t. */
static int rpc_turn_serve(Bench *b, int t)
{
    size_t want = (size_t)(t + 1) * (size_t)b->nstreams;

    while (b->got < want)
        if (pump(b, false) < 0 || b->failed)
            return -1;
    return 0;
}

/* Caller side of the round trip: @count 64-byte messages on @s, each echoed before the next. */
static int rpc_ping(Bench *b, RpcStream *s, int count, uint64_t *lat)
{
    uint8_t msg[MSG] = {2};
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

/*
 * The round trip, both contenders between the same two processes: raw ping/echo over @raw,
 * librpc over @rv, in chunks of RTT_CHUNK round trips taking turns (raw first in even chunks,
 * librpc first in odd ones). Under CPU-bound co-runners two processes are either placed so
 * that both can spin on the rings (sub-microsecond round trips) or not (each round trip
 * wakes the peer, ~10 us here), and a placement lasts thousands of round trips; measured in
 * separate process pairs, the contenders drew their placements independently and a run
 * could compare one's spinning with the other's sleeping (18x). Taking turns, both see the
 * same placements. Sender (the guest): "rtt RAW50 RAW99 MUX50 MUX99" in @out.
 */
static int run_rtt(Vchan *raw, Vchan *rv, bool sender, int count, char *out, size_t outlen)
{
    Bench b = {.vc = rv, .mode = M_RTT, .caller = sender};
    uint64_t *lat_raw = NULL, *lat_mux = NULL;
    RpcStream *s = NULL;
    RpcConnConfig cfg;
    int rc = -1;

    rpc_cfg(&cfg, sender);
    if (rpc_conn_new_vchan(&b.conn, rv, true, &cfg, &bench_cb, &b) < 0) {
        vchan_free(raw);
        return -1;
    }
    if (sender) {
        lat_raw = calloc((size_t)count, sizeof(*lat_raw));
        lat_mux = calloc((size_t)count, sizeof(*lat_mux));
        if (!lat_raw || !lat_mux ||
            rpc_stream_open(b.conn, &(RpcCall){.service = "bench.Echo"}, &s) < 0)
            goto out;
        while (rpc_stream_send_window(s, RPC_CH_STDIN) <= 0)
            if (pump(&b, false) < 0 || b.failed)
                goto out;
    } else {
        while (!b.called) /* the call first: the caller waits for its window */
            if (pump(&b, false) < 0 || b.failed)
                goto out;
    }
    for (int done = 0, chunk = 0; done < count; chunk++) {
        int n = count - done < RTT_CHUNK ? count - done : RTT_CHUNK;
        for (int turn = 0; turn < 2; turn++) {
            bool raw_turn = (turn == 0) == (chunk % 2 == 0);
            if (raw_turn) {
                if ((sender ? raw_ping(raw, n, lat_raw + done) : raw_echo(raw, n)) < 0)
                    goto out;
            } else if (sender) {
                if (rpc_ping(&b, s, n, lat_mux + done) < 0)
                    goto out;
            } else {
                while (b.got < (size_t)(done + n) * MSG)
                    if (pump(&b, false) < 0 || b.failed)
                        goto out;
            }
        }
        done += n;
    }
    if (sender) {
        char r[64], m[64];
        rpc_stream_close_write(s, RPC_CH_STDIN);
        while (b.exits < 1)
            if (pump(&b, false) < 0 || b.failed)
                goto out;
        bench_format_rtt(r, sizeof(r), lat_raw, count);
        bench_format_rtt(m, sizeof(m), lat_mux, count);
        snprintf(out, outlen, "rtt %.*s %s", (int)strcspn(r + 4, "\n"), r + 4, m + 4);
        rpc_conn_close(b.conn, "done");
        for (int i = 0; i < 100 && rpc_conn_dispatch(b.conn) == 0; i++)
            ;
    } else {
        (void)rpc_serve(&b);
    }
    rc = b.failed ? -1 : 0;
out:
    free(lat_raw);
    free(lat_mux);
    rpc_conn_free(b.conn);
    vchan_flush(raw, 5000);
    vchan_free(raw);
    return rc;
}

/*
 * Bulk, the three contenders between the same two processes: raw over @vs[0], librpc with one
 * stream over @vs[1] and with NSTREAMS over @vs[2] (all taken), each moving @bytes in
 * BULK_TURNS turns, a turn acknowledged before the next contender's (the order rotates:
 * raw, one, many; one, many, raw; ...). Under co-runners, how the two processes are placed
 * and preempted sets a run's pace (runs of the same contender spread 20 % and more either
 * way); taking turns, the three share the placements. Sender (the guest): "bulk RAW ONE
 * MANY", each the nanoseconds of its turns.
 */
static int run_bulk(Vchan **vs, bool sender, unsigned long long bytes, char *out, size_t outlen)
{
    Bench bb[2] = {
        {.vc = vs[1], .mode = M_BULK, .caller = sender, .nstreams = 1, .bytes = bytes},
        {.vc = vs[2], .mode = M_BULK, .caller = sender, .nstreams = NSTREAMS, .bytes = bytes},
    };
    uint64_t ns[3] = {0, 0, 0};
    RpcConnConfig cfg;
    int rc = -1;

    rpc_cfg(&cfg, sender);
    if (rpc_conn_new_vchan(&bb[0].conn, vs[1], true, &cfg, &bench_cb, &bb[0]) < 0) {
        vchan_free(vs[2]);
        goto out_raw;
    }
    if (rpc_conn_new_vchan(&bb[1].conn, vs[2], true, &cfg, &bench_cb, &bb[1]) < 0)
        goto out;
    if (sender) /* (--local: the other end is a thread of this process) */
        memset(payload, 0x5a, sizeof(payload));
    for (int k = 0; sender && k < 2; k++)
        for (int i = 0; i < bb[k].nstreams; i++)
            if (rpc_stream_open(bb[k].conn, &(RpcCall){.service = "bench.Sink"},
                                &bb[k].streams[i]) < 0)
                goto out;
    for (int t = 0; t < BULK_TURNS; t++) {
        for (int k = 0; k < 3; k++) {
            int c = (t + k) % 3;
            if (c == 0) {
                uint64_t x = 0;
                unsigned long long share = turn_share(bytes, t, 1, 0);
                if ((sender ? raw_send(vs[0], share, &x) : raw_recv(vs[0], share)) < 0)
                    goto out;
                ns[0] += x;
            } else if ((sender ? rpc_turn(&bb[c - 1], t, &ns[c]) : rpc_turn_serve(&bb[c - 1], t)) <
                       0) {
                goto out;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        Bench *b = &bb[k];
        if (!sender) {
            (void)rpc_serve(b);
            continue;
        }
        for (int i = 0; i < b->nstreams; i++)
            rpc_stream_close_write(b->streams[i], RPC_CH_STDIN);
        while (b->exits < b->nstreams)
            if (pump(b, false) < 0 || b->failed)
                goto out;
        rpc_conn_close(b->conn, "done");
        for (int i = 0; i < 100 && rpc_conn_dispatch(b->conn) == 0; i++)
            ;
    }
    rc = bb[0].failed || bb[1].failed ? -1 : 0;
    if (rc == 0 && sender)
        snprintf(out, outlen, "bulk %llu %llu %llu\n", (unsigned long long)ns[0],
                 (unsigned long long)ns[1], (unsigned long long)ns[2]);
out:
    rpc_conn_free(bb[0].conn);
    rpc_conn_free(bb[1].conn);
out_raw:
    vchan_flush(vs[0], 5000);
    vchan_free(vs[0]);
    return rc;
}

/* One end of run @mode over its mode_vchans[@mode] vchans @vs (taken). */
static int run_mode(Vchan **vs, int mode, bool sender, unsigned long long bytes, int count,
                    char *out, size_t outlen)
{
    if (mode == M_RTT)
        return run_rtt(vs[0], vs[1], sender, count, out, outlen);
    return run_bulk(vs, sender, bytes, out, outlen);
}

/* ---- hidden peer under vrpc-sim exec ----
 * __peer server|client DOMID PATH MODE BYTES COUNT: the server is the guest (sender). The
 * run's vchans are PATH, PATH-1, PATH-2 ... */

/* Vchan @i of a run at @path, server or client end, connected. */
static int peer_vchan(Vchan **vp, bool server, int domid, const char *path, int i)
{
    char full[256];
    int rc;

    if (i)
        snprintf(full, sizeof(full), "%s-%d", path, i);
    else
        snprintf(full, sizeof(full), "%s", path);
    rc = server ? vchan_server_new(vp, domid, full, RING, RING)
                : vchan_client_new_wait(vp, domid, full, 20000);
    if (rc < 0)
        fprintf(stderr, "rpc-mux peer: vchan %s %s: %s\n", server ? "server" : "client", full,
                strerror(-rc));
    return rc;
}

static int peer_main(int argc, char **argv)
{
    Vchan *vs[3] = {NULL, NULL, NULL};
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
    for (int i = 0; i < mode_vchans[mode]; i++)
        if (peer_vchan(&vs[i], server, domid, argv[4], i) < 0)
            return 1;
    for (int i = 0; server && i < mode_vchans[mode]; i++)
        if (bench_vchan_wait_client(vs[i], 20000) < 0)
            return 1;
    char out[128] = "";
    rc = run_mode(vs, mode, server, bytes, count, out, sizeof(out));
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
    Vchan *v[3];
    int mode, count, rc;
    unsigned long long bytes;
} LocalEnd;

static void *local_rx(void *arg)
{
    LocalEnd *e = arg;
    char out[128];
    e->rc = run_mode(e->v, e->mode, false, e->bytes, e->count, out, sizeof(out));
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
        Vchan *srv[3] = {NULL, NULL, NULL};
        pthread_t th;
        char out[128] = "";
        int i = 0;
        while (i < mode_vchans[mode] && vchan_pair_new(&srv[i], &rx.v[i], RING, RING) == 0)
            i++;
        if (i < mode_vchans[mode] || pthread_create(&th, NULL, local_rx, &rx) != 0) {
            for (i = 0; i < 3; i++) {
                vchan_free(srv[i]);
                vchan_free(rx.v[i]);
            }
            return NULL;
        }
        int rc = run_mode(srv, mode, true, cfg->opt.bytes, cfg->opt.rtt, out, sizeof(out));
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
               "  (default 5) repetitions; in each, the contenders take turns between the\n"
               "  same two processes.\n"
               "  --json rows: raw_gbps mux1_gbps mux64_gbps rtt64_raw_p50_us rtt64_mux_p50_us\n");
}

int bench_rpc_main(int argc, char **argv)
{
    static const char *const guests[] = {"rpcguest", NULL};
    Cfg cfg = {.opt = {.sim = VRPC_SIM_BIN, .bytes = 1ull << 30, .reps = 5, .rtt = 10000}};
    int rc;
    /* per rep: the bulk run's ns of raw, one, many; the rtt run's raw p50 and p99, librpc's */
    uint64_t bulk[3][MAX_REPS], rtt[4][MAX_REPS];
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
    /* The contenders take turns within each run (run_bulk(), run_rtt()). */
    for (int rep = 0; rep < cfg.opt.reps; rep++) {
        for (int m = 0; m < M_COUNT; m++) {
            char *out = one_run(&cfg, m);
            unsigned long long x[4] = {0, 0, 0, 0};
            bool ok = out &&
                      (m == M_RTT ? sscanf(out, "rtt %llu %llu %llu %llu", &x[0], &x[1], &x[2],
                                           &x[3]) == 4 &&
                                        x[0] && x[2]
                                  : sscanf(out, "bulk %llu %llu %llu", &x[0], &x[1], &x[2]) == 3 &&
                                        x[0] && x[1] && x[2]);
            if (!ok) {
                fprintf(stderr, "vrpc-bench rpc-mux: %s run failed\n", mode_names[m]);
                failed = true;
            }
            for (int k = 0; k < (m == M_RTT ? 4 : 3); k++)
                (m == M_RTT ? rtt : bulk)[k][rep] = x[k];
            free(out);
        }
    }
    if (!cfg.opt.local)
        bench_sim_down(cfg.opt.sim, cfg.ns);
    double rtt_raw = (double)bench_median_u64(rtt[0], cfg.opt.reps);
    double rtt_raw99 = (double)bench_median_u64(rtt[1], cfg.opt.reps);
    double rtt_mux = (double)bench_median_u64(rtt[2], cfg.opt.reps);
    double rtt_mux99 = (double)bench_median_u64(rtt[3], cfg.opt.reps);
    double gb[3];
    for (int k = 0; k < 3; k++) {
        double ns = (double)bench_median_u64(bulk[k], cfg.opt.reps);
        gb[k] = ns > 0 ? (double)cfg.opt.bytes / ns : 0;
    }
    printf("\n%-34s %12s %10s\n", "measurement", "value", "vs raw");
    printf("%-34s %8.2f GB/s %9s\n", "raw vchan bulk", gb[0], "1.00x");
    printf("%-34s %8.2f GB/s %9.2fx\n", "librpc bulk, 1 stream", gb[1],
           gb[0] > 0 ? gb[1] / gb[0] : 0);
    printf("%-34s %8.2f GB/s %9.2fx\n", "librpc bulk, 64 streams (aggregate)", gb[2],
           gb[0] > 0 ? gb[2] / gb[0] : 0);
    printf("%-34s %9.2f us %9s\n", "raw vchan 64 B round trip p50", rtt_raw / 1000, "1.00x");
    printf("%-34s %9.2f us %9s\n", "raw vchan 64 B round trip p99", rtt_raw99 / 1000, "1.00x");
    printf("%-34s %9.2f us %9.2fx\n", "librpc 64 B round trip p50", rtt_mux / 1000,
           rtt_raw > 0 ? rtt_mux / rtt_raw : 0);
    printf("%-34s %9.2f us %9.2fx\n", "librpc 64 B round trip p99", rtt_mux99 / 1000,
           rtt_raw99 > 0 ? rtt_mux99 / rtt_raw99 : 0);
    bench_row("rpc-mux", "raw_gbps", gb[0] > 0 ? gb[0] : NAN, "GB/s");
    bench_row("rpc-mux", "mux1_gbps", gb[1] > 0 ? gb[1] : NAN, "GB/s");
    bench_row("rpc-mux", "mux64_gbps", gb[2] > 0 ? gb[2] : NAN, "GB/s");
    bench_row("rpc-mux", "rtt64_raw_p50_us", rtt_raw > 0 ? rtt_raw / 1000 : NAN, "us");
    bench_row("rpc-mux", "rtt64_mux_p50_us", rtt_mux > 0 ? rtt_mux / 1000 : NAN, "us");
    printf("single-stream target >= 0.85x raw: %s\n",
           gb[0] > 0 && gb[1] / gb[0] >= 0.85 ? "met" : "NOT met");
    fflush(stdout);
    return failed ? 1 : 0;
}
