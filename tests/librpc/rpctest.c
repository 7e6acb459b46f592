/* SPDX-License-Identifier: MIT */
/*
 * rpctest.c - test helpers for librpc: connection pairs over both transports, recording
 * callbacks, a pump, and a raw peer for hand-made frames.
 */
#include "rpctest.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vchan/vchan.h"

const char *rt_transport_name(RtTransport t)
{
    return t == RT_SOCKET ? "socket" : t == RT_VCHAN ? "vchan" : "stream";
}

/* ---- RT_STREAM: a buffering transport ------------------------------------------------------ */

typedef struct RtBufT {
    int fd;
    size_t pos, fill;
    uint8_t buf[64 << 10];
} RtBufT;

/* Reads the socket in big gulps and hands out at most @n (the rest stays pending). */
static ssize_t bt_read(void *ctx, void *out, size_t n)
{
    RtBufT *t = ctx;
    if (t->pos == t->fill) {
        ssize_t r = read(t->fd, t->buf, sizeof(t->buf));
        if (r < 0)
            return errno == EAGAIN ? -EAGAIN : -errno;
        if (r == 0)
            return 0;
        t->pos = 0;
        t->fill = (size_t)r;
    }
    /* Small pieces, so that much stays buffered between reads. */
    size_t k = t->fill - t->pos;
    if (k > n)
        k = n;
    if (k > 1000)
        k = 1000;
    memcpy(out, t->buf + t->pos, k);
    t->pos += k;
    return (ssize_t)k;
}

static ssize_t bt_writev(void *ctx, const struct iovec *iov, int cnt)
{
    RtBufT *t = ctx;
    ssize_t r = writev(t->fd, iov, cnt);
    return r < 0 ? (errno == EAGAIN ? -EAGAIN : -errno) : r;
}

static size_t bt_pending(void *ctx)
{
    RtBufT *t = ctx;
    return t->fill - t->pos;
}

static void bt_free(void *ctx)
{
    RtBufT *t = ctx;
    close(t->fd);
    free(t);
}

static const RpcTransportOps bt_ops = {
    .read = bt_read, .writev = bt_writev, .pending = bt_pending, .free = bt_free};

static void bt_conn_new(RpcConn **cp, int fd, const RpcConnConfig *cfg, const RpcCallbacks *cb,
                        void *ud)
{
    RtBufT *t = calloc(1, sizeof(*t));
    ck_assert_ptr_nonnull(t);
    t->fd = fd;
    ck_assert_int_eq(rpc_conn_new_stream(cp, fd, &bt_ops, t, cfg, cb, ud), 0);
}

RtStreamLog *rt_log(RtSide *side, RpcStream *s)
{
    RtStreamLog *l = rpc_stream_get_userdata(s);
    if (l)
        return l;
    ck_assert_int_lt(side->nstreams, RT_MAX_STREAMS);
    l = &side->log[side->nstreams++];
    memset(l, 0, sizeof(*l));
    l->s = s;
    l->id = rpc_stream_id(s);
    l->consume_limit = side->default_consume;
    rpc_stream_set_userdata(s, l);
    return l;
}

RtStreamLog *rt_log_by_id(RtSide *side, uint32_t id)
{
    for (int i = 0; i < side->nstreams; i++)
        if (side->log[i].id == id)
            return &side->log[i];
    return NULL;
}

static void on_ready(RpcConn *conn, const RpcPeerInfo *peer, void *ud)
{
    RtSide *side = ud;
    side->ready++;
    side->peer = *peer;
}

static void on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *ud)
{
    RtSide *side = ud;
    side->calls++;
    rt_log(side, s);
    if (side->auto_accept)
        ck_assert_int_eq(rpc_stream_accept(s), 0);
}

static void on_accept(RpcStream *s, void *ud)
{
    rt_log(ud, s)->accepted = true;
}

static size_t on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len, void *ud)
{
    RtSide *side = ud;
    RtStreamLog *l = rt_log(side, s);
    size_t take = len < l->consume_limit ? len : l->consume_limit;

    if (side->data_hook)
        take = side->data_hook(side, s, data, len);

    ck_assert_uint_gt(len, 0);
    if (l->eof[ch])
        l->events_after_eof++;
    if (take == 0)
        return 0;
    if (l->nbytes[ch] + take > l->cap[ch]) {
        size_t cap = l->cap[ch] ? l->cap[ch] : 4096;
        while (cap < l->nbytes[ch] + take)
            cap *= 2;
        l->buf[ch] = realloc(l->buf[ch], cap);
        ck_assert_ptr_nonnull(l->buf[ch]);
        l->cap[ch] = cap;
    }
    memcpy(l->buf[ch] + l->nbytes[ch], data, take);
    l->nbytes[ch] += take;
    return take;
}

static void on_eof(RpcStream *s, RpcChannel ch, void *ud)
{
    RtStreamLog *l = rt_log(ud, s);
    ck_assert(!l->eof[ch]);
    l->eof[ch] = true;
}

static void on_exit_cb(RpcStream *s, int32_t code, bool refused, const char *reason, void *ud)
{
    RtStreamLog *l = rt_log(ud, s);
    ck_assert(!l->exited);
    l->exited = true;
    l->refused = refused;
    l->exit_code = code;
    snprintf(l->exit_reason, sizeof(l->exit_reason), "%s", reason);
}

static void on_reset(RpcStream *s, uint32_t code, bool local, const char *reason, void *ud)
{
    RtStreamLog *l = rt_log(ud, s);
    ck_assert(!l->reset);
    l->reset = true;
    l->reset_code = code;
    l->reset_local = local;
    snprintf(l->reset_reason, sizeof(l->reset_reason), "%s", reason);
}

static void on_writable(RpcStream *s, void *ud)
{
    RtSide *side = ud;
    rt_log(side, s)->writable++;
    if (side->writable_hook)
        side->writable_hook(side, s);
}

static void on_stream_free(RpcStream *s, void *ud)
{
    RtStreamLog *l = rt_log(ud, s);
    ck_assert(!l->freed);
    l->freed = true;
    l->ready_at_free = ((RtSide *)ud)->ready;
    l->s = NULL;
}

static void on_close(RpcConn *conn, int error, const char *reason, void *ud)
{
    RtSide *side = ud;
    ck_assert(!side->closed);
    side->closed = true;
    side->close_error = error;
    snprintf(side->close_reason, sizeof(side->close_reason), "%s", reason);
}

static const RpcCallbacks rt_callbacks = {
    .on_ready = on_ready,
    .on_call = on_call,
    .on_accept = on_accept,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_exit = on_exit_cb,
    .on_reset = on_reset,
    .on_writable = on_writable,
    .on_stream_free = on_stream_free,
    .on_close = on_close,
};

static void side_init(RtSide *side)
{
    memset(side, 0, sizeof(*side));
    side->log = calloc(RT_MAX_STREAMS, sizeof(*side->log));
    ck_assert_ptr_nonnull(side->log);
    side->auto_accept = true;
    side->default_consume = SIZE_MAX;
}

static void side_deinit(RtSide *side)
{
    side->conn = rpc_conn_free(side->conn);
    for (int i = 0; i < side->nstreams; i++)
        for (int ch = 0; ch < 3; ch++)
            free(side->log[i].buf[ch]);
    free(side->log);
    side->log = NULL;
}

void rt_pair_init(RtPair *p, RtTransport t, const RpcConnConfig *cfg_a, const RpcConnConfig *cfg_b)
{
    RpcConnConfig ca, cb;

    memset(p, 0, sizeof(*p));
    p->transport = t;
    side_init(&p->a);
    side_init(&p->b);
    if (cfg_a)
        ca = *cfg_a;
    else
        rpc_conn_config_init(&ca);
    if (cfg_b)
        cb = *cfg_b;
    else
        rpc_conn_config_init(&cb);
    ca.role = RPC_ROLE_INITIATOR;
    cb.role = RPC_ROLE_ACCEPTOR;
    if (t == RT_SOCKET) {
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(rpc_conn_new_fd(&p->a.conn, sv[0], true, &ca, &rt_callbacks, &p->a), 0);
        ck_assert_int_eq(rpc_conn_new_fd(&p->b.conn, sv[1], true, &cb, &rt_callbacks, &p->b), 0);
    } else if (t == RT_STREAM) {
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        bt_conn_new(&p->a.conn, sv[0], &ca, &rt_callbacks, &p->a);
        bt_conn_new(&p->b.conn, sv[1], &cb, &rt_callbacks, &p->b);
    } else {
        Vchan *srv, *cli;
        ck_assert_int_eq(vchan_pair_new(&srv, &cli, 65536, 65536), 0);
        ck_assert_int_eq(rpc_conn_new_vchan(&p->a.conn, cli, true, &ca, &rt_callbacks, &p->a), 0);
        ck_assert_int_eq(rpc_conn_new_vchan(&p->b.conn, srv, true, &cb, &rt_callbacks, &p->b), 0);
    }
    rpc_conn_set_name(p->a.conn, "a");
    rpc_conn_set_name(p->b.conn, "b");
}

void rt_pair_deinit(RtPair *p)
{
    side_deinit(&p->a);
    side_deinit(&p->b);
}

static uint64_t activity(RtPair *p)
{
    RpcConnStats sa, sb;
    uint64_t v = 0;
    if (p->a.conn) {
        rpc_conn_get_stats(p->a.conn, &sa);
        v += sa.bytes_in + sa.bytes_out + sa.frames_in + sa.streams_total + sa.rx_held;
    }
    if (p->b.conn) {
        rpc_conn_get_stats(p->b.conn, &sb);
        v += sb.bytes_in + sb.bytes_out + sb.frames_in + sb.streams_total + sb.rx_held;
    }
    return v;
}

int rt_pump(RtPair *p)
{
    int rounds = 0, still = 0;
    uint64_t last = activity(p);

    while (rounds < 100000 && still < 3) {
        if (p->a.conn)
            rpc_conn_dispatch(p->a.conn);
        if (p->b.conn)
            rpc_conn_dispatch(p->b.conn);
        rounds++;
        uint64_t now = activity(p);
        still = now == last ? still + 1 : 0;
        last = now;
    }
    return rounds;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool rt_both_ready(RtPair *p)
{
    return p->a.ready && p->b.ready;
}

void rt_pair_up(RtPair *p, RtTransport t, const RpcConnConfig *cfg_a, const RpcConnConfig *cfg_b)
{
    rt_pair_init(p, t, cfg_a, cfg_b);
    ck_assert(rt_pump_until(p, rt_both_ready, RT_HANG_MS));
}

bool rt_pump_until(RtPair *p, bool (*cond)(RtPair *p), int max_ms)
{
    int64_t end = mono_ms() + max_ms;

    while (!cond(p)) {
        int64_t left = end - mono_ms();
        if (left <= 0)
            return false;
        struct pollfd pf[2];
        int n = 0, t = (int)left;
        RpcConn *cs[2] = {p->a.conn, p->b.conn};
        for (int i = 0; i < 2; i++) {
            if (!cs[i] || rpc_conn_is_closed(cs[i]))
                continue;
            if (rpc_conn_prepare_wait(cs[i]) > 0)
                t = 0;
            pf[n].fd = rpc_conn_fd(cs[i]);
            pf[n].events = (short)((rpc_conn_events(cs[i]) & 0x4) ? POLLIN | POLLOUT : POLLIN);
            n++;
            int to = rpc_conn_next_timeout_ms(cs[i]);
            if (to >= 0 && to < t)
                t = to;
        }
        poll(pf, (nfds_t)n, t);
        rt_pump(p);
    }
    return true;
}

RpcStream *rt_open(RtPair *p, RtSide *side, const char *service)
{
    RpcCall call = {.service = service};
    RpcStream *s = NULL;
    ck_assert_int_eq(rpc_stream_open(side->conn, &call, &s), 0);
    rt_log(side, s);
    return s;
}

/* ---- raw peer ---------------------------------------------------------------------------- */

void rt_raw_init(RtRaw *r, RpcRole role, const RpcConnConfig *cfg)
{
    RpcConnConfig c;
    int sv[2];

    memset(r, 0, sizeof(*r));
    side_init(&r->side);
    if (cfg)
        c = *cfg;
    else
        rpc_conn_config_init(&c);
    c.role = role;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    r->raw = sv[1];
    ck_assert_int_eq(rpc_conn_new_fd(&r->side.conn, sv[0], true, &c, &rt_callbacks, &r->side), 0);
    rpc_conn_set_name(r->side.conn, "raw-peer");
}

void rt_raw_deinit(RtRaw *r)
{
    side_deinit(&r->side);
    close(r->raw);
}

void rt_raw_bytes(RtRaw *r, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(r->raw, b, n);
        if (w < 0 && errno == EAGAIN) {
            rt_raw_pump(r);
            uint8_t sink[65536];
            while (read(r->raw, sink, sizeof(sink)) > 0)
                ;
            continue;
        }
        ck_assert_int_gt(w, 0);
        b += w;
        n -= (size_t)w;
    }
}

void rt_raw_frame(RtRaw *r, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                  size_t len)
{
    uint8_t hdr[RPC_FRAME_HEADER_SIZE];
    RpcFrameHeader h = {.type = type, .flags = flags, .stream = stream, .length = (uint32_t)len};
    rpc_frame_header_encode(hdr, &h);
    rt_raw_bytes(r, hdr, sizeof(hdr));
    if (len)
        rt_raw_bytes(r, payload, len);
}

void rt_raw_hello(RtRaw *r, RpcRole role)
{
    RpcHelloMsg m = {
        .version_min = 1,
        .version_max = 1,
        .role = role,
        .max_frame = 65536,
        .max_streams = 1024,
        .stream_window = 65536,
        .conn_window = 1 << 20,
    };
    uint8_t buf[RPC_HELLO_MAX];
    int n = rpc_msg_encode_hello(&m, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    rt_raw_frame(r, RPC_FT_HELLO, 0, 0, buf, (size_t)n);
}

void rt_raw_call(RtRaw *r, uint32_t stream, const char *service)
{
    RpcCall call = {.service = service};
    uint8_t buf[RPC_CALL_MAX];
    int n = rpc_msg_encode_call(&call, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    rt_raw_frame(r, RPC_FT_CALL, 0, stream, buf, (size_t)n);
}

void rt_raw_pump(RtRaw *r)
{
    for (int i = 0; i < 4; i++)
        rpc_conn_dispatch(r->side.conn);
}

int rt_raw_read_frames(RtRaw *r, RpcFrameHeader *hs, int max)
{
    static uint8_t buf[1 << 21];
    size_t fill = 0;
    int n = 0;

    for (;;) {
        ssize_t k = read(r->raw, buf + fill, sizeof(buf) - fill);
        if (k <= 0)
            break;
        fill += (size_t)k;
    }
    size_t pos = 0;
    while (fill - pos >= RPC_FRAME_HEADER_SIZE) {
        RpcFrameHeader h;
        const char *why;
        ck_assert_int_eq(rpc_frame_header_decode(buf + pos, RPC_FRAME_MAX_HARD, &h, &why), 0);
        ck_assert_uint_ge(fill - pos - RPC_FRAME_HEADER_SIZE, h.length);
        if (n < max)
            hs[n] = h;
        n++;
        pos += RPC_FRAME_HEADER_SIZE + h.length;
    }
    return n;
}
