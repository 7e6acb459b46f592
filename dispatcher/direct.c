/* SPDX-License-Identifier: MIT */
/*
 * direct.c - direct guest<->guest channels, the dispatcher's part (direct.h). For a pair of
 * guests S -> T whose agents both announced RPC_FEATURE_DIRECT, dom0 creates
 * /local/domain/T/vrpc-direct/CH owned by T and readable by S only, and asks T's agent
 * (control call vrpc-direct.serve on T's dom0 connection) to offer a vchan there to S and to
 * accept one token for one call. The target serves because it is the end that must check the
 * tokens, and because the vchan server publishes its grant and event channel readable by its
 * peer only: no third domain can map the ring. Each call holds a reference on its channel;
 * without calls for direct-idle-timeout the channel is closed (vrpc-direct.close) and its
 * xenstore nodes removed, as they are when either agent goes away.
 */
#include "direct.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xenstore.h>

#include "common/direct.h"
#include "common/list.h"
#include "log.h"
#include "peer.h"

struct DirectChan {
    Dispatcher *d;
    DirectChan *prev, *next;
    Peer *src, *dst; /* NULL once gone */
    int src_domid, dst_domid;
    unsigned ch;
    unsigned refs;   /* requests in flight and calls holding it */
    bool dead;       /* closed (an agent went away, or idle): no new calls */
    RpcLoopSource *idle;
    char path[96];
};

struct DirectReq {
    DirectChan *chan;
    DirectReqFn done;
    void *userdata;
    uint64_t token;
    bool cancelled;
};

struct DirectSet {
    struct xs_handle *xs;
    DirectChan *chans;
    unsigned next_ch;
};

/* ---- control calls to an agent ------------------------------------------------------------ */

typedef struct Ctl {
    void (*done)(void *userdata, int code); /* code: the EXIT status, -1 refused or lost */
    void *userdata;
    bool fired;
} Ctl;

static void ctl_fire(Ctl *c, int code)
{
    if (c->fired)
        return;
    c->fired = true;
    if (c->done)
        c->done(c->userdata, code);
}

static void ctl_on_exit(RpcStream *s, int32_t code, bool refused, const char *reason,
                        void *userdata)
{
    ctl_fire(userdata, refused ? -1 : code);
}

static void ctl_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason,
                         void *userdata)
{
    ctl_fire(userdata, -1);
}

static void ctl_on_stream_free(RpcStream *s, void *userdata)
{
    rpc_stream_set_ops(s, NULL, NULL);
    ctl_fire(userdata, -1);
    free(userdata);
}

static const RpcStreamOps ctl_ops = {
    .on_exit = ctl_on_exit,
    .on_reset = ctl_on_reset,
    .on_stream_free = ctl_on_stream_free,
};

static int ctl_send(Peer *dst, const char *service, const char *argument, uint64_t call_id,
                    const char *text, void (*done)(void *, int), void *userdata)
{
    RpcCall call = {.service = service,
                    .argument = argument,
                    .source = "dom0",
                    .call_id = call_id,
                    .flags = VRPC_CALL_F_CONTROL};
    RpcStream *s = NULL;
    Ctl *c;
    int r;

    if (!dst || !dst->conn || !rpc_conn_is_ready(dst->conn))
        return -ENOTCONN;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->done = done;
    c->userdata = userdata;
    r = rpc_stream_open(dst->conn, &call, &s);
    if (r < 0) {
        free(c);
        return r;
    }
    rpc_stream_set_ops(s, &ctl_ops, c);
    if (text) {
        size_t len = strlen(text);
        /* A short line always fits the initial window and the send queue (one frame). */
        if (rpc_stream_write(s, RPC_CH_STDIN, text, len) != (ssize_t)len) {
            c->done = NULL;
            rpc_stream_reset(s, RPC_RESET_INTERNAL, "vrpc: cannot send");
            return -EIO; /* c is freed by on_stream_free; done is not called */
        }
    }
    rpc_stream_close_write(s, RPC_CH_STDIN);
    return 0;
}

/* ---- channels ------------------------------------------------------------------------------- */

static DirectSet *set_of(const Dispatcher *d)
{
    return d->direct;
}

static void chan_remove_nodes(DirectChan *c)
{
    DirectSet *ds = set_of(c->d);
    char base[96];
    bool others = false;

    if (!ds->xs)
        return;
    xs_rm(ds->xs, XBT_NULL, c->path);
    for (DirectChan *o = ds->chans; o; o = o->next)
        others = others || (o != c && !o->dead && o->dst_domid == c->dst_domid);
    if (!others && vrpc_direct_base_path(base, sizeof(base), c->dst_domid) > 0)
        xs_rm(ds->xs, XBT_NULL, base);
}

static void chan_free(DirectChan *c)
{
    DirectSet *ds = set_of(c->d);

    VRPC_LIST_UNLINK(&ds->chans, c);
    rpc_loop_source_free(c->idle);
    free(c);
}

/* No new calls on @c any more: tell its target to close its end, remove the nodes. */
static void chan_kill(DirectChan *c, const char *why)
{
    char arg[16];

    if (c->dead)
        return;
    c->dead = true;
    dlog(LOG_DEBUG, "direct channel %u (%d -> %d) closed: %s", c->ch, c->src_domid,
         c->dst_domid, why);
    snprintf(arg, sizeof(arg), "%u", c->ch);
    if (c->dst)
        (void)ctl_send(c->dst, VRPC_DIRECT_SVC_CLOSE, arg, 0, NULL, NULL, NULL);
    chan_remove_nodes(c);
    rpc_loop_timer_set(c->idle, -1);
    if (!c->refs)
        chan_free(c);
}

static void chan_on_idle(RpcLoopSource *src, void *userdata)
{
    DirectChan *c = userdata;

    if (!c->refs)
        chan_kill(c, "idle");
}

void direct_chan_release(DirectChan *c)
{
    if (!c || !c->refs)
        return;
    if (--c->refs)
        return;
    if (c->dead)
        chan_free(c);
    else
        rpc_loop_timer_set(c->idle, (int64_t)c->d->config.direct_idle_ms);
}

static DirectChan *chan_get(Dispatcher *d, Peer *src, Peer *dst)
{
    DirectSet *ds = set_of(d);
    struct xs_permissions perms[2] = {{.id = (unsigned)dst->domid, .perms = XS_PERM_NONE},
                                      {.id = (unsigned)src->domid, .perms = XS_PERM_READ}};
    DirectChan *c;

    for (c = ds->chans; c; c = c->next)
        if (!c->dead && c->src == src && c->dst == dst)
            return c;
    if (!ds->xs)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->d = d;
    c->src = src;
    c->dst = dst;
    c->src_domid = src->domid;
    c->dst_domid = dst->domid;
    c->ch = ++ds->next_ch;
    if (vrpc_direct_path(c->path, sizeof(c->path), dst->domid, c->ch) < 0 ||
        rpc_loop_add_timer(d->loop, -1, chan_on_idle, c, &c->idle) < 0) {
        free(c);
        return NULL;
    }
    /* The directory is the target's (its agent publishes the ring there), readable by the
     * source only; nobody else may even read it. */
    if (!xs_mkdir(ds->xs, XBT_NULL, c->path) ||
        !xs_set_permissions(ds->xs, XBT_NULL, c->path, perms, 2)) {
        dlog(LOG_WARNING, "direct channel %s: cannot create it: %s", c->path, strerror(errno));
        xs_rm(ds->xs, XBT_NULL, c->path);
        rpc_loop_source_free(c->idle);
        free(c);
        return NULL;
    }
    c->next = ds->chans;
    if (ds->chans)
        ds->chans->prev = c;
    ds->chans = c;
    return c;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void req_served(void *userdata, int code)
{
    DirectReq *q = userdata;
    DirectChan *c = q->chan;

    if (!q->cancelled) {
        if (code == 0 && !c->dead)
            q->done(q->userdata, 0, NULL, c, c->dst_domid, c->ch, q->token);
        else
            q->done(q->userdata, -EPROTO,
                    c->dead ? "direct channel closed" : "target agent refused to serve", NULL, 0,
                    0, 0);
    }
    if (code != 0 || c->dead || q->cancelled)
        direct_chan_release(c); /* on success the caller holds it now */
    free(q);
}

int direct_request(Dispatcher *d, Peer *src, Peer *dst, const DirectCallInfo *info,
                   DirectReqFn done, void *userdata, DirectReq **reqp)
{
    VrpcDirectServe sv = {.peer_domid = src->domid, .call_id = info->call_id};
    char text[320];
    DirectChan *c = chan_get(d, src, dst);
    DirectReq *q;
    int r;

    if (!c)
        return -EIO;
    q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    if (getrandom(&q->token, sizeof(q->token), 0) != (ssize_t)sizeof(q->token)) {
        free(q);
        return -EIO;
    }
    q->chan = c;
    q->done = done;
    q->userdata = userdata;
    sv.ch = c->ch;
    sv.token = q->token;
    snprintf(sv.source, sizeof(sv.source), "%s", info->source);
    snprintf(sv.service, sizeof(sv.service), "%s", info->service);
    snprintf(sv.argument, sizeof(sv.argument), "%s", info->argument ? info->argument : "");
    snprintf(sv.user, sizeof(sv.user), "%s", info->user ? info->user : "");
    if (vrpc_direct_format_serve(text, sizeof(text), &sv) < 0) {
        free(q);
        return -EINVAL;
    }
    c->refs++;
    rpc_loop_timer_set(c->idle, -1);
    r = ctl_send(dst, VRPC_DIRECT_SVC_SERVE, "", info->call_id, text, req_served, q);
    if (r < 0) {
        free(q);
        direct_chan_release(c);
        return r;
    }
    *reqp = q;
    return 0;
}

void direct_req_cancel(DirectReq *q)
{
    if (q)
        q->cancelled = true;
}

typedef struct Revoke {
    void (*done)(void *userdata, bool dropped);
    void *userdata;
} Revoke;

static void revoke_done(void *userdata, int code)
{
    Revoke *rv = userdata;

    rv->done(rv->userdata, code == 0);
    free(rv);
}

int direct_revoke(DirectChan *c, uint64_t call_id, uint64_t token,
                  void (*done)(void *userdata, bool dropped), void *userdata)
{
    char arg[20];
    Revoke *rv;
    int r;

    if (!c || c->dead || !c->dst)
        return -ENOTCONN;
    rv = calloc(1, sizeof(*rv));
    if (!rv)
        return -ENOMEM;
    rv->done = done;
    rv->userdata = userdata;
    snprintf(arg, sizeof(arg), "%016" PRIx64, token);
    r = ctl_send(c->dst, VRPC_DIRECT_SVC_REVOKE, arg, call_id, NULL, revoke_done, rv);
    if (r < 0)
        free(rv);
    return r;
}

/* ---- policy of use ------------------------------------------------------------------------ */

static bool peer_has_direct(const Peer *p)
{
    RpcPeerInfo info;

    return p->conn && rpc_conn_peer_info(p->conn, &info) == 0 &&
           (info.features & RPC_FEATURE_DIRECT);
}

bool direct_possible(const Dispatcher *d, const Peer *src, const Peer *dst, const char **whyp)
{
    *whyp = NULL;
    if (!d->direct || !set_of(d)->xs || d->config.direct_idle_ms <= 0)
        return false;
    if (!src || !dst || src->kind != PEER_GUEST || dst->kind != PEER_GUEST || src == dst)
        return false;
    if (!peer_has_direct(src))
        return false; /* the source asks for nothing else: not a fallback */
    if (!peer_has_direct(dst)) {
        *whyp = "target-no-direct";
        return false;
    }
    return true;
}

void direct_peer_gone(Peer *p)
{
    DirectSet *ds = set_of(p->d);
    DirectChan *c, *next;

    if (!ds)
        return;
    for (c = ds->chans; c; c = next) {
        next = c->next;
        if (c->src != p && c->dst != p)
            continue;
        if (c->src == p)
            c->src = NULL;
        if (c->dst == p)
            c->dst = NULL;
        chan_kill(c, "an agent went away");
    }
}

/* A dispatcher that was killed left its channels' directories behind (the agents closed
 * their ends when its connections went): at start no channel exists, so remove them all. */
static void remove_stale(DirectSet *ds)
{
    unsigned n = 0;
    char **doms = xs_directory(ds->xs, XBT_NULL, "/local/domain", &n);
    char path[96];

    for (unsigned i = 0; doms && i < n; i++) {
        char *end;
        long domid = strtol(doms[i], &end, 10);
        if (*end || domid <= 0 || domid > 0x7fff ||
            vrpc_direct_base_path(path, sizeof(path), (int)domid) < 0)
            continue;
        xs_rm(ds->xs, XBT_NULL, path); /* fails harmlessly where there is none */
    }
    free(doms);
}

int direct_init(Dispatcher *d)
{
    DirectSet *ds = calloc(1, sizeof(*ds));

    if (!ds)
        return -ENOMEM;
    ds->xs = xs_open(0);
    if (!ds->xs)
        dlog(LOG_WARNING, "direct channels: cannot open xenstore (%s); calls between guests "
                          "are relayed",
             strerror(errno));
    else
        remove_stale(ds);
    d->direct = ds;
    return 0;
}

void direct_deinit(Dispatcher *d)
{
    DirectSet *ds = d->direct;

    if (!ds)
        return;
    while (ds->chans) {
        DirectChan *c = ds->chans;
        if (!c->dead)
            chan_remove_nodes(c);
        c->dead = true;
        chan_free(c);
    }
    if (ds->xs)
        xs_close(ds->xs);
    free(ds);
    d->direct = NULL;
}
