/* SPDX-License-Identifier: MIT */
/*
 * offer.c - vrpc-agent's dom0 link. The agent offers ONE vchan to dom0 at
 * /local/domain/N/data/vrpc (announced by data/vrpc-ready = "<pid>.<generation>"), speaks
 * librpc on it as ACCEPTOR (the dispatcher connects and is INITIATOR), and runs the services
 * of its services folder for the calls the dispatcher opens (through vrpc_handler). When the
 * dispatcher goes away, or another process of the domain rewrites the announcement while
 * the offer waits, the agent offers a new vchan under a new generation.
 */

#include "offer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenstore.h>

#include "common/direct.h"
#include "direct.h"
#include "vchan/vchan.h"
#include "vrpc-services.h"

#define REOFFER_RETRY_MS 1000
/* The announcement must have stayed changed (by someone else) this long before we re-offer:
 * a process of this domain rewriting data/vrpc-ready in a loop costs one offer, not one per
 * write. */
#define ANNOUNCE_QUIET_MS 200
#define ANNOUNCE_LOG_INTERVAL_MS 10000

static const RpcCallbacks dom0_callbacks;

/* ---- dom0 link ---------------------------------------------------------------------------- */

static void schedule_reoffer(Agent *a, RpcConn *closed);

static int offer(Agent *a)
{
    Vchan *vc = NULL;
    int r = vchan_server_new(&vc, 0, a->vchan_path, a->ring_size, a->ring_size);
    if (r < 0) {
        logmsg(LOG_ERR, "cannot offer a vchan at %s: %s", a->vchan_path, strerror(-r));
        return r;
    }
    RpcConnConfig cfg;
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_ACCEPTOR;
    cfg.hello_timeout_ms = 0; /* the dispatcher connects whenever it comes */
    cfg.accept_hold_ms = RPC_ACCEPT_HOLD_DAEMON_MS; /* ACCEPT leaves with the first output */
    if (a->direct)
        cfg.features |= RPC_FEATURE_DIRECT; /* direct.c; not with --no-direct */
    RpcConn *conn = NULL;
    r = rpc_conn_new_vchan(&conn, vc, true, &cfg, &dom0_callbacks, a);
    if (r < 0) {
        logmsg(LOG_ERR, "cannot create the dom0 connection: %s", strerror(-r));
        return r;
    }
    rpc_conn_set_name(conn, "dom0");
    r = rpc_conn_attach(conn, a->loop);
    if (r < 0) {
        rpc_conn_free(conn);
        return r;
    }
    a->generation++;
    char gen[64];
    int n = snprintf(gen, sizeof gen, "%ld.%u", (long)getpid(), a->generation);
    if (!xs_write(a->xs, XBT_NULL, a->ready_path, gen, (unsigned)n)) {
        r = -errno;
        logmsg(LOG_ERR, "cannot write %s: %s", a->ready_path, strerror(errno));
        rpc_conn_free(conn);
        return r ? r : -EIO;
    }
    a->dom0 = conn;
    snprintf(a->announced, sizeof a->announced, "%s", gen);
    logmsg(LOG_INFO, "offered vchan at %s (generation %s)", a->vchan_path, gen);
    return 0;
}

static void reoffer(Agent *a)
{
    a->dom0_old = rpc_conn_free(a->dom0_old); /* frees the vchan: removes data/vrpc */
    if (a->quitting || a->dom0)
        return;
    if (offer(a) < 0)
        rpc_loop_timer_set(a->retry_timer, REOFFER_RETRY_MS);
}

static void on_reoffer(RpcLoopSource *src, void *userdata)
{
    reoffer(userdata);
}

static void on_retry(RpcLoopSource *src, void *userdata)
{
    reoffer(userdata);
}

static void schedule_reoffer(Agent *a, RpcConn *closed)
{
    if (a->dom0 == closed)
        a->dom0 = NULL;
    if (a->dom0_old && a->dom0_old != closed)
        rpc_conn_free(a->dom0_old);
    a->dom0_old = closed;
    rpc_loop_defer_again(a->reoffer_src);
}

/* ---- our announcement, changed under us ------------------------------------------------------
 *
 * data/vrpc-ready belongs to this domain, so any process in it can rewrite it. The dispatcher
 * connects to whatever generation it reads there, once per generation: if the value it read
 * last is not ours and its attempt failed (our offer was being replaced), it would wait
 * forever for a new generation while we wait forever for it. So we watch our own
 * announcement; when it stays changed while our offer is unconnected, we offer a new vchan
 * under a new generation, which the dispatcher connects to.
 */

/* Whether the announcement differs from ours while our offer waits for the dispatcher. */
static bool announcement_changed(Agent *a)
{
    if (!a->dom0 || rpc_conn_is_ready(a->dom0) || a->quitting)
        return false; /* re-offering already, or connected: nothing to repair */
    unsigned len = 0;
    char *untrusted_value = xs_read(a->xs, XBT_NULL, a->ready_path, &len);
    bool changed = !untrusted_value || len != strlen(a->announced) ||
                   memcmp(untrusted_value, a->announced, len) != 0;
    free(untrusted_value);
    return changed;
}

static void on_announce_timer(RpcLoopSource *src, void *userdata)
{
    Agent *a = userdata;
    if (!announcement_changed(a))
        return;
    int64_t now = rpc_loop_now_ms();
    if (now >= a->announce_log_next_ms) {
        logmsg(LOG_WARNING,
               "%s was changed by another process of this domain; offering a new "
               "vchan (%u more such changes since the last report)",
               a->ready_path, a->announce_log_suppressed);
        a->announce_log_next_ms = now + ANNOUNCE_LOG_INTERVAL_MS;
        a->announce_log_suppressed = 0;
    } else {
        a->announce_log_suppressed++;
    }
    schedule_reoffer(a, a->dom0);
}

static void on_xs_watch(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Agent *a = userdata;
    bool ours = false;
    char **vec;
    for (int budget = 4096; budget > 0 && (vec = xs_check_watch(a->xs)); budget--) {
        ours = ours || strcmp(vec[XS_WATCH_PATH], a->ready_path) == 0;
        free(vec);
    }
    /* (Re)start the quiet period at every change: one re-offer after a burst. */
    if (ours && announcement_changed(a))
        rpc_loop_timer_set(a->announce_timer, ANNOUNCE_QUIET_MS);
}

static int watch_announcement(Agent *a)
{
    if (!xs_watch(a->xs, a->ready_path, "vrpc-ready"))
        return errno ? -errno : -EIO;
    return rpc_loop_add_fd(a->loop, xs_fileno(a->xs), EPOLLIN, on_xs_watch, a, &a->xs_src);
}

/* ---- calls from the dispatcher ------------------------------------------------------------ */

static void dom0_on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *userdata)
{
    Agent *a = userdata;
    if (call->flags & VRPC_CALL_F_CONTROL) {
        direct_control_call(a, s, call); /* the dispatcher's own business */
        return;
    }
    /* A call from the dispatcher: its source field is trusted here (dom0 is). */
    const char *source = call->source ? call->source : "";
    if (!source[0]) {
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: call without source");
        return;
    }
    VrpcHandlerRequest req = {
        .services_dir = a->services_dir,
        .service = call->service,
        .argument = call->argument,
        .where = call->target && call->target[0] ? call->target : "this domain",
        .call = {.source = source,
                 .requested_target = call->target,
                 .user = call->user,
                 .daemon_socket = a->socket_path},
    };
    VrpcHandlerRefusal why;
    VrpcHandler *h = NULL;
    if (vrpc_handler_serve(a->handlers, s, &req, NULL, NULL, &h, NULL, &why) == 0)
        logmsg(LOG_DEBUG, "call %s from %s started", vrpc_handler_service(h), source);
    else if (why.started)
        logmsg(LOG_INFO, "call %s from %s refused: %s", why.entry, source, why.detail);
    else
        logmsg(LOG_INFO, "call %s from %s: %d %s", call->service, source, why.code, why.detail);
}

static void dom0_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    Agent *a = userdata;

    if (!a->quitting)
        logmsg(LOG_WARNING, "dom0 connection closed (%s: %s); offering a new vchan",
               rpc_error_name(error), reason ? reason : "");
    if (!a->quitting)
        schedule_reoffer(a, conn);
    /* The dispatcher forgets its direct channels with the connection. */
    direct_close_all(a);
}

static void dom0_on_ready(RpcConn *conn, const RpcPeerInfo *peer, void *userdata)
{
    logmsg(LOG_INFO, "dom0 connected (protocol %u)", peer->version);
}

static const RpcCallbacks dom0_callbacks = {
    .on_ready = dom0_on_ready,
    .on_call = dom0_on_call,
    .on_close = dom0_on_close,
};

/* ---- lifetime ----------------------------------------------------------------------------- */

int offer_init(Agent *a)
{
    int r;

    /* The defer source runs once at creation; nothing to re-offer yet then. */
    if ((r = rpc_loop_add_defer(a->loop, on_reoffer, a, &a->reoffer_src)) < 0 ||
        (r = rpc_loop_add_timer(a->loop, -1, on_retry, a, &a->retry_timer)) < 0 ||
        (r = rpc_loop_add_timer(a->loop, -1, on_announce_timer, a, &a->announce_timer)) < 0)
        return r;
    return 0;
}

int offer_start(Agent *a)
{
    int r = offer(a);

    if (r < 0)
        return r;
    r = watch_announcement(a);
    if (r < 0)
        logmsg(LOG_ERR, "cannot watch %s: %s", a->ready_path, strerror(-r));
    return r;
}

void offer_stop(Agent *a)
{
    if (a->dom0) {
        rpc_conn_close(a->dom0, "vrpc-agent exiting");
        a->dom0 = rpc_conn_free(a->dom0);
    }
    a->dom0_old = rpc_conn_free(a->dom0_old);
    if (a->ready_path[0])
        xs_rm(a->xs, XBT_NULL, a->ready_path);
    a->retry_timer = rpc_loop_source_free(a->retry_timer);
    a->announce_timer = rpc_loop_source_free(a->announce_timer);
    a->xs_src = rpc_loop_source_free(a->xs_src);
    a->reoffer_src = rpc_loop_source_free(a->reoffer_src);
}
