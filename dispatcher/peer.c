/* SPDX-License-Identifier: MIT */
/*
 * peer.c - the dispatcher's connections. A guest peer is the vchan client of the agent's
 * offer at /local/domain/N/data/vrpc with a librpc connection on top (INITIATOR); a local
 * peer is a dom0 caller on the Unix socket (ACCEPTOR). Every peer has the per-guest buffer
 * quotas of dispatcher.yaml (connection window, send-queue bound) and counts its calls in
 * flight. The connection callbacks hand every CALL to route.c; the stream's events then go to
 * whoever owns it (a vrpc_handler, a prompt or an RpcRelay: rpc_stream_set_ops), never here.
 * A peer that violates the protocol is closed by librpc; a peer is freed from a deferred loop
 * callback, never inside its own dispatch, so that the stream callbacks librpc still
 * delivers while closing find it intact.
 */
#include "peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "librpc/loop.h"
#include "log.h"
#include "tls.h"
#include "vchan/vchan.h"
#include "common/list.h"

static void list_add(Dispatcher *d, Peer *p)
{
    p->next = d->peers;
    p->prev = NULL;
    if (d->peers)
        d->peers->prev = p;
    d->peers = p;
}

static void list_remove(Dispatcher *d, Peer *p)
{
    VRPC_LIST_UNLINK(&d->peers, p);
    p->prev = p->next = NULL;
}

/* ---- callbacks ---------------------------------------------------------------------------- */

/* Remember (or, @forget, stop remembering) that guest @name's connection ended. */
static void gone_note(Dispatcher *d, const char *name, bool destroyed, bool forget)
{
    for (unsigned i = 0; i < DISPATCHER_GONE_MAX; i++)
        if (strcmp(d->gone[i].name, name) == 0)
            d->gone[i].name[0] = '\0';
    if (forget)
        return;
    snprintf(d->gone[d->gone_next].name, sizeof(d->gone[0].name), "%s", name);
    d->gone[d->gone_next].destroyed = destroyed;
    d->gone_next = (d->gone_next + 1) % DISPATCHER_GONE_MAX;
}

const char *peer_absent_reason(const Dispatcher *d, const char *name)
{
    for (const Peer *p = d->peers; p; p = p->next)
        if (p->kind == PEER_GUEST && strcmp(p->name, name) == 0)
            return "target not connected"; /* its agent is connecting */
    for (unsigned i = 0; i < DISPATCHER_GONE_MAX; i++)
        if (strcmp(d->gone[i].name, name) == 0)
            return d->gone[i].destroyed ? "target domain gone" : "target not connected";
    return "unknown target";
}

static void guests_changed(Dispatcher *d)
{
    if (d->guests_changed)
        d->guests_changed(d);
}

static void on_ready(RpcConn *conn, const RpcPeerInfo *info, void *userdata)
{
    Peer *p = userdata;

    p->ready = true;
    if (p->kind == PEER_GUEST) {
        gone_note(p->d, p->name, false, true);
        dlog(LOG_INFO, "guest %s (domid %d) connected, generation %s", p->name, p->domid,
             p->generation);
        guests_changed(p->d);
    }
}

static void on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *userdata)
{
    Peer *p = userdata;

    if (p->d->peer_call)
        p->d->peer_call(p, s, call);
    else
        rpc_stream_refuse(s, 125, "vrpc: no router");
}

static void on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    Peer *p = userdata;

    if (p->kind == PEER_GUEST)
        dlog(error == RPC_E_PROTO || error == RPC_E_QUOTA ? LOG_WARNING : LOG_INFO,
             "guest %s (domid %d) disconnected: %s", p->name, p->domid, reason);
    else if (p->kind == PEER_HOST)
        dlog(error == RPC_E_PROTO || error == RPC_E_QUOTA ? LOG_WARNING : LOG_INFO,
             "host %s disconnected: %s", p->name, reason);
    else
        dlog(LOG_DEBUG, "local caller disconnected: %s", reason);
    peer_drop(p, NULL);
}

static const RpcCallbacks peer_callbacks = {
    .on_ready = on_ready,
    .on_call = on_call,
    .on_close = on_close,
};

/* ---- lifetime ----------------------------------------------------------------------------- */

void dispatcher_conn_config(const Dispatcher *d, RpcRole role, RpcConnConfig *cfg)
{
    rpc_conn_config_init(cfg);
    cfg->role = role;
    /* A short call's ACCEPT leaves with its output and EXIT: one wake-up of the peer. */
    cfg->accept_hold_ms = RPC_ACCEPT_HOLD_DAEMON_MS;
    if (d->config.direct_idle_ms > 0)
        cfg->features |= RPC_FEATURE_DIRECT; /* direct.c: channels between guests */
    /* Streams a peer may open: the calls-in-flight quota refuses politely first (125);
     * librpc's stream quota (the connection closed, RPC_E_QUOTA) is the hard stop behind it. */
    cfg->max_streams = d->config.max_calls_per_guest + 16;
    if (d->config.max_buffer_per_guest) {
        uint64_t b = d->config.max_buffer_per_guest;
        cfg->conn_window = (uint32_t)b;
        if (cfg->stream_window > cfg->conn_window)
            cfg->stream_window = cfg->conn_window;
        cfg->max_tx_queue = (size_t)b;
    }
    if (d->config.keepalive_ms >= 0) {
        cfg->keepalive_ms = (uint32_t)d->config.keepalive_ms;
        if (cfg->keepalive_ms && cfg->dead_peer_ms < 3 * cfg->keepalive_ms)
            cfg->dead_peer_ms = 3 * cfg->keepalive_ms;
    }
}

/* Name the connection, put it on the loop and list the peer; on failure free both. */
static int peer_start(Dispatcher *d, Peer *p, const char *label, Peer **peerp)
{
    int r;

    rpc_conn_set_name(p->conn, label);
    /* librpc reads a new vchan's ring at the first dispatch, which attaching schedules: the
     * agent's HELLO, written before we mapped the ring, is not left waiting for an event. */
    r = rpc_conn_attach(p->conn, d->loop);
    if (r < 0) {
        rpc_conn_free(p->conn);
        free(p);
        return r;
    }
    list_add(d, p);
    if (peerp)
        *peerp = p;
    return 0;
}

static Peer *peer_alloc(Dispatcher *d, PeerKind kind)
{
    Peer *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->d = d;
    p->kind = kind;
    return p;
}

int peer_new_guest(Dispatcher *d, int domid, const char *name, const char *generation, Peer **peerp)
{
    RpcConnConfig cfg;
    char path[64], label[RPC_DOMAIN_MAX + 16];
    Vchan *vc = NULL;
    Peer *p;
    int r;

    p = peer_alloc(d, PEER_GUEST);
    if (!p)
        return -ENOMEM;
    p->domid = domid;
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->generation, sizeof(p->generation), "%s", generation);
    snprintf(path, sizeof(path), "/local/domain/%d/data/vrpc", domid);
    r = vchan_client_new(&vc, domid, path);
    if (r < 0) {
        free(p);
        return r;
    }
    dispatcher_conn_config(d, RPC_ROLE_INITIATOR, &cfg);
    r = rpc_conn_new_vchan(&p->conn, vc, true, &cfg, &peer_callbacks, p);
    if (r < 0) {
        free(p);
        return r;
    }
    p->vchan = vc;
    snprintf(label, sizeof(label), "guest %s", p->name);
    return peer_start(d, p, label, peerp);
}

int peer_new_local(Dispatcher *d, int fd, Peer **peerp)
{
    RpcConnConfig cfg;
    Peer *p;
    int r;

    p = peer_alloc(d, PEER_LOCAL);
    if (!p) {
        close(fd);
        return -ENOMEM;
    }
    snprintf(p->name, sizeof(p->name), "dom0");
    dispatcher_conn_config(d, RPC_ROLE_ACCEPTOR, &cfg);
    cfg.max_frame = RPC_FRAME_MAX_LOCAL;
    r = rpc_conn_new_fd(&p->conn, fd, true, &cfg, &peer_callbacks, p);
    if (r < 0) {
        free(p);
        return r;
    }
    return peer_start(d, p, "local caller", peerp);
}

int peer_new_host(Dispatcher *d, Tls *tls, RpcRole role, const char *host, Peer **peerp)
{
    RpcConnConfig cfg;
    char label[RPC_DOMAIN_MAX + 16];
    Peer *p;
    int r;

    p = peer_alloc(d, PEER_HOST);
    if (!p) {
        tls_free(tls);
        return -ENOMEM;
    }
    snprintf(p->name, sizeof(p->name), "%s", host);
    /* A host gets a guest's quotas. */
    dispatcher_conn_config(d, role, &cfg);
    r = rpc_conn_new_stream(&p->conn, tls_fd(tls), &tls_transport_ops, tls, &cfg, &peer_callbacks,
                            p);
    if (r < 0) {
        free(p);
        return r;
    }
    snprintf(label, sizeof(label), "host %s", p->name);
    return peer_start(d, p, label, peerp);
}

void peer_free(Peer *p)
{
    if (!p)
        return;
    if (!p->dropped)
        list_remove(p->d, p);
    p->dropped = true;
    if (p->kind == PEER_HOST && p->link && p->d->host_lost)
        p->d->host_lost(p);
    dlog(LOG_DEBUG, "%s %s: connection released",
         p->kind == PEER_GUEST  ? "guest"
         : p->kind == PEER_HOST ? "host"
                                : "local",
         p->name);
    /* Outside any dispatch: the stream callbacks run now, while p is intact. */
    p->conn = rpc_conn_free(p->conn);
    if (p->d->peer_gone)
        p->d->peer_gone(p);
    free(p);
}

static void deferred_free(RpcLoopSource *src, void *userdata)
{
    peer_free(userdata);
}

void peer_drop(Peer *p, const char *reason)
{
    bool was_ready;

    if (!p || p->dropped)
        return;
    was_ready = p->ready;
    p->dropped = true;
    p->ready = false;
    list_remove(p->d, p);
    if (reason && p->conn && !rpc_conn_is_closed(p->conn))
        rpc_conn_close(p->conn, reason);
    if (p->kind == PEER_HOST && p->d->host_lost)
        p->d->host_lost(p);
    if (rpc_loop_add_defer(p->d->loop, deferred_free, p, NULL) < 0) {
        /* Out of memory: leak the peer rather than free it under a running dispatch. */
        dlog(LOG_ERR, "cannot schedule the release of connection %s", p->name);
    }
    if (p->kind == PEER_GUEST && (was_ready || p->destroyed))
        gone_note(p->d, p->name, p->destroyed, false);
    if (p->kind == PEER_GUEST && was_ready)
        guests_changed(p->d);
    /* Either way, look at the announcement again: a connection that never got ready may
     * have its offer still there, and an agent that restarted has made a new one. */
    if (p->kind == PEER_GUEST && p->d->peer_lost)
        p->d->peer_lost(p->d, p->domid);
}

Peer *peer_find_guest(Dispatcher *d, const char *name)
{
    for (Peer *p = d->peers; p; p = p->next)
        if (p->kind == PEER_GUEST && p->ready && strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

Peer *peer_find_domid(Dispatcher *d, int domid)
{
    for (Peer *p = d->peers; p; p = p->next)
        if (p->kind == PEER_GUEST && p->domid == domid)
            return p;
    return NULL;
}

unsigned peer_count_ready_guests(const Dispatcher *d)
{
    unsigned n = 0;
    for (const Peer *p = d->peers; p; p = p->next)
        n += p->kind == PEER_GUEST && p->ready;
    return n;
}
