/* SPDX-License-Identifier: MIT */
/*
 * local.c - vrpc-agent's local callers. vrpc-call clients connect to the agent's Unix socket
 * and speak librpc on it (we are ACCEPTOR and their calls' HANDLER); each call is relayed to
 * the dispatcher as a stream of the dom0 connection (we are its CALLER), the two joined by
 * librpc's RpcRelay (credit propagated end to end; a lost dom0 side fails the call with 125).
 * The source of a relayed call is never forwarded: it is the dispatcher's business.
 */

#include "local.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/direct.h"
#include "direct.h"
#include "librpc/relay.h"
#include "vrpc-services.h"
#include "common/list.h"

struct Client {
    Agent *agent;
    RpcConn *conn;
    struct Client *prev, *next;
};

/* ---- relays (local call -> dom0) ------------------------------------------------------------ */

/* What the caller hears when its call's dom0 side fails. */
static void relay_abort_reason(RpcRelay *r, bool reset, uint32_t code, const char *reason,
                               char *buf, size_t size, void *userdata)
{
    if (!reset || code == RPC_RESET_CONN_CLOSED)
        snprintf(buf, size, "vrpc: connection to dom0 lost");
    else
        snprintf(buf, size, "vrpc: call reset by dom0 (%s)%s%s", rpc_reset_code_name(code),
                 reason && reason[0] ? ": " : "", reason ? reason : "");
}

static const RpcRelayOps local_relay_ops = {
    .abort_code = VRPC_SERVICES_EXIT_FRAMEWORK,
    .cancel_reason = "caller went away",
    .abort_reason = relay_abort_reason,
};

/* The dispatcher may answer with a redirect to a direct channel (direct.c): stdin is held
 * until dom0's side accepts, so that the redirected call starts with all of it. */
static void relay_redirect(RpcRelay *r, RpcStream *down, bool down_eof, const char *reason,
                           void *userdata)
{
    direct_redirect(userdata, down, down_eof, reason);
}

static const RpcRelayOps local_relay_ops_direct = {
    .abort_code = VRPC_SERVICES_EXIT_FRAMEWORK,
    .cancel_reason = "caller went away",
    .abort_reason = relay_abort_reason,
    .hold_until_accept = true,
    .redirect_code = VRPC_DIRECT_REDIRECT_CODE,
    .on_redirect = relay_redirect,
};

static bool dom0_has_direct(const Agent *a)
{
    RpcPeerInfo info;

    return a->direct && rpc_conn_peer_info(a->dom0, &info) == 0 &&
           (info.features & RPC_FEATURE_DIRECT);
}

void local_forward(Agent *a, RpcStream *s, bool down_eof, uint32_t flags, uint64_t call_id)
{
    const RpcCall *call = rpc_stream_call(s);

    if (!a->dom0 || !rpc_conn_is_ready(a->dom0)) {
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK,
                                "vrpc: not connected to dom0 (is vrpc-dispatcher running?)");
        return;
    }
    /* The source is the dispatcher's business: never forwarded from a local client. */
    /* A call that may end on another guest may be redirected to a direct channel: its
     * stdin is then held until dom0's answer (one round trip), so not for calls to dom0. */
    const char *target = call->target ? call->target : "";
    bool redirectable = !(flags & VRPC_CALL_F_NO_DIRECT) && dom0_has_direct(a) &&
                        strcmp(target, "dom0") != 0 && strcmp(target, "@adminvm") != 0;
    RpcCall up_call = {.service = call->service,
                       .argument = call->argument,
                       .target = call->target,
                       .source = "",
                       .user = "",
                       .call_id = call_id,
                       .flags = flags | (redirectable ? VRPC_CALL_F_DIRECT_OK : 0)};
    const RpcRelayOps *ops = redirectable ? &local_relay_ops_direct : &local_relay_ops;
    RpcStream *up = NULL;
    RpcRelay *r = NULL;
    int e = rpc_stream_open(a->dom0, &up_call, &up);
    if (e == 0) {
        e = rpc_relay_new(&r, s, up, ops, a);
        if (e < 0)
            (void)rpc_stream_reset(up, RPC_RESET_CANCEL, "vrpc: out of memory");
    }
    if (e < 0) {
        char reason[128];
        snprintf(reason, sizeof reason, "vrpc: cannot forward the call to dom0: %s",
                 e == -EBUSY ? "too many calls in flight" : strerror(-e));
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, reason);
        return;
    }
    if (down_eof)
        rpc_relay_note_down_eof(r);
    if (rpc_stream_is_paused(s))
        (void)rpc_stream_resume(s); /* stdin held during a redirect */
    logmsg(LOG_DEBUG, "local call %s%s%s to '%s' -> dom0 stream %u%s", call->service,
           call->argument && call->argument[0] ? "+" : "", call->argument ? call->argument : "",
           call->target ? call->target : "", rpc_stream_id(up),
           flags & VRPC_CALL_F_NO_DIRECT ? " (fallback from a direct channel)" : "");
}

/* A call of a local client: down = the vrpc-call stream (we are HANDLER), up = the dom0
 * stream we open for it (we are CALLER). */
static void local_call(Agent *a, RpcStream *s, const RpcCall *call)
{
    local_forward(a, s, false, 0, 0);
}

/* ---- local connections -------------------------------------------------------------------- */

static void client_free(Client *c)
{
    Agent *a = c->agent;
    VRPC_LIST_UNLINK(&a->clients, c);
    rpc_conn_free(c->conn); /* deferred when inside its dispatch */
    free(c);
}

static void client_on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *userdata)
{
    local_call(((Client *)userdata)->agent, s, call);
}

static void client_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    logmsg(LOG_DEBUG, "local client closed (%s)", rpc_error_name(error));
    client_free(userdata);
}

static const RpcCallbacks client_callbacks = {
    .on_call = client_on_call,
    .on_close = client_on_close,
};

static void on_listen(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Agent *a = userdata;
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                logmsg(LOG_WARNING, "accept: %s", strerror(errno));
            return;
        }
        Client *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            continue;
        }
        c->agent = a;
        RpcConnConfig cfg;
        rpc_conn_config_init(&cfg);
        cfg.role = RPC_ROLE_ACCEPTOR;
        cfg.keepalive_ms = 0;
        cfg.accept_hold_ms = RPC_ACCEPT_HOLD_DAEMON_MS; /* ACCEPT leaves with the first output */
        cfg.max_frame = RPC_FRAME_MAX_LOCAL;
        int r = rpc_conn_new_fd(&c->conn, cfd, true, &cfg, &client_callbacks, c);
        if (r == 0)
            r = rpc_conn_attach(c->conn, a->loop);
        if (r < 0) {
            logmsg(LOG_WARNING, "cannot serve a local client: %s", strerror(-r));
            rpc_conn_free(c->conn);
            free(c);
            continue;
        }
        rpc_conn_set_name(c->conn, "local");
        c->next = a->clients;
        if (a->clients)
            a->clients->prev = c;
        a->clients = c;
    }
}

int local_listen(Agent *a)
{
    /* 0755 like the umask default the agent always had: only its own user may connect; a
     * stale socket of an earlier agent is replaced, a live one is refused. */
    int fd = rpc_unix_listen(a->socket_path, 0755, 1024);
    if (fd < 0)
        return fd;
    a->listen_fd = fd;
    return rpc_loop_add_fd(a->loop, fd, EPOLLIN, on_listen, a, &a->listen_src);
}

void local_stop(Agent *a)
{
    while (a->clients)
        client_free(a->clients);
    if (a->listen_fd >= 0) {
        a->listen_src = rpc_loop_source_free(a->listen_src);
        close(a->listen_fd);
        a->listen_fd = -1;
        unlink(a->socket_path);
    }
}
