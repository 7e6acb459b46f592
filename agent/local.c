/* SPDX-License-Identifier: MIT */
/*
 * local.c - vrpc-agent's local callers. vrpc-call clients connect to the agent's Unix socket
 * and speak librpc on it (we are ACCEPTOR and their calls' HANDLER); each call is relayed to
 * the dispatcher as a stream of the dom0 connection (we are its CALLER), with credit
 * propagated end to end: bytes are consumed on one side only once the other side took them.
 * The source of a relayed call is never forwarded: it is the dispatcher's business.
 */

#include "local.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vrpc-services.h"

enum { STREAM_KIND_RELAY = VRPC_STREAM_KIND_USER + 1 };

struct Client {
    Agent *agent;
    RpcConn *conn;
    struct Client *prev, *next;
};


/* A local call relayed to dom0: down = the vrpc-call stream (we are HANDLER), up = the
 * dom0 stream (we are CALLER). */
typedef struct Relay {
    VrpcStreamTag tag;
    Agent *agent;
    RpcStream *down, *up;
    bool down_answered;  /* accepted or refused */
    bool down_paused;    /* we returned short from down's on_data: resume when up writable */
    bool up_paused;      /* same for up's on_data, resume when down writable */
} Relay;

static Relay *relay_of(RpcStream *s)
{
    VrpcStreamTag *tag = s ? rpc_stream_get_userdata(s) : NULL;
    return tag && tag->kind == STREAM_KIND_RELAY ? (Relay *)tag : NULL;
}

static void relay_maybe_free(Relay *r)
{
    if (!r->down && !r->up)
        free(r);
}

/* End the local call with @code and @reason (refuse when not answered yet). */
static void relay_fail_down(Relay *r, int code, const char *reason)
{
    if (!r->down)
        return;
    if (!r->down_answered) {
        r->down_answered = true;
        (void)rpc_stream_refuse(r->down, code, reason);
    } else if (rpc_stream_exit(r->down, code, reason) < 0) {
        (void)rpc_stream_reset(r->down, RPC_RESET_CANCEL, reason);
    }
}

static void local_call(Agent *a, RpcStream *s, const RpcCall *call)
{
    if (!a->dom0 || !rpc_conn_is_ready(a->dom0)) {
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK,
                                "vrpc: not connected to dom0 (is vrpc-dispatcher running?)");
        return;
    }
    Relay *r = calloc(1, sizeof *r);
    if (!r) {
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: out of memory");
        return;
    }
    r->tag.kind = STREAM_KIND_RELAY;
    r->agent = a;
    /* The source is the dispatcher's business: never forwarded from a local client. */
    RpcCall up_call = {.service = call->service, .argument = call->argument,
                       .target = call->target, .source = "", .user = ""};
    RpcStream *up = NULL;
    int e = rpc_stream_open(a->dom0, &up_call, &up);
    if (e < 0) {
        free(r);
        char reason[128];
        snprintf(reason, sizeof reason, "vrpc: cannot forward the call to dom0: %s",
                 e == -EBUSY ? "too many calls in flight" : strerror(-e));
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, reason);
        return;
    }
    r->down = s;
    r->up = up;
    rpc_stream_set_userdata(s, r);
    rpc_stream_set_userdata(up, r);
    logmsg(LOG_DEBUG, "local call %s%s%s to '%s' -> dom0 stream %u", call->service,
           call->argument && call->argument[0] ? "+" : "",
           call->argument ? call->argument : "", call->target ? call->target : "",
           rpc_stream_id(up));
}

static size_t relay_on_data(Relay *r, RpcStream *s, RpcChannel ch, const uint8_t *data,
                            size_t len)
{
    RpcStream *other = s == r->down ? r->up : r->down;
    if (!other)
        return len; /* the other side is gone: discard */
    ssize_t n = rpc_stream_write(other, ch, data, len);
    if (n == -EAGAIN)
        n = 0;
    if (n < 0)
        return len; /* the other side cannot take it any more: discard */
    if ((size_t)n < len) {
        if (s == r->down)
            r->down_paused = true;
        else
            r->up_paused = true;
    }
    return (size_t)n;
}

static void relay_on_writable(Relay *r, RpcStream *s)
{
    /* @s can take data again: resume the stream that feeds it. */
    if (s == r->down && r->up_paused && r->up) {
        r->up_paused = false;
        (void)rpc_stream_resume(r->up);
    } else if (s == r->up && r->down_paused && r->down) {
        r->down_paused = false;
        (void)rpc_stream_resume(r->down);
    }
}

static void relay_on_eof(Relay *r, RpcStream *s, RpcChannel ch)
{
    RpcStream *other = s == r->down ? r->up : r->down;
    if (other)
        (void)rpc_stream_close_write(other, ch);
}

static void relay_on_reset(Relay *r, RpcStream *s, uint32_t code, bool local,
                           const char *reason)
{
    if (s == r->down) {
        /* vrpc-call went away or reset: cancel the call upstream. */
        if (r->up)
            (void)rpc_stream_reset(r->up, RPC_RESET_CANCEL, "caller went away");
        return;
    }
    char why[RPC_REASON_MAX + 64];
    if (code == RPC_RESET_CONN_CLOSED)
        snprintf(why, sizeof why, "vrpc: connection to dom0 lost");
    else
        snprintf(why, sizeof why, "vrpc: call reset by dom0 (%s)%s%s",
                 rpc_reset_code_name(code), reason && reason[0] ? ": " : "",
                 reason ? reason : "");
    relay_fail_down(r, VRPC_SERVICES_EXIT_FRAMEWORK, why);
}

/* ---- relay events (both connections) ------------------------------------------------------ */

void local_relay_on_accept(RpcStream *s)
{
    Relay *r = relay_of(s);
    if (r && s == r->up && r->down && !r->down_answered) {
        r->down_answered = true;
        if (rpc_stream_accept(r->down) < 0)
            (void)rpc_stream_reset(r->up, RPC_RESET_CANCEL, "caller went away");
    }
}

size_t local_relay_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len)
{
    Relay *r = relay_of(s);
    return r ? relay_on_data(r, s, ch, data, len) : len;
}

void local_relay_on_eof(RpcStream *s, RpcChannel ch)
{
    Relay *r = relay_of(s);
    if (r)
        relay_on_eof(r, s, ch);
}

void local_relay_on_exit(RpcStream *s, int32_t code, bool refused, const char *reason)
{
    Relay *r = relay_of(s);
    if (!r || s != r->up || !r->down)
        return;
    if (!r->down_answered) {
        r->down_answered = true;
        if (refused) {
            (void)rpc_stream_refuse(r->down, code, reason);
            return;
        }
        (void)rpc_stream_accept(r->down);
    }
    if (rpc_stream_exit(r->down, code, reason && reason[0] ? reason : NULL) < 0)
        (void)rpc_stream_reset(r->down, RPC_RESET_CANCEL, "vrpc: call ended");
}

void local_relay_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason)
{
    Relay *r = relay_of(s);
    if (r)
        relay_on_reset(r, s, code, local, reason);
}

void local_relay_on_writable(RpcStream *s)
{
    Relay *r = relay_of(s);
    if (r)
        relay_on_writable(r, s);
}

void local_relay_on_stream_free(RpcStream *s)
{
    Relay *r = relay_of(s);
    if (!r)
        return;
    rpc_stream_set_userdata(s, NULL);
    if (s == r->down) {
        r->down = NULL;
        if (r->up)
            (void)rpc_stream_reset(r->up, RPC_RESET_CANCEL, "caller went away");
    } else {
        r->up = NULL;
        if (r->down)
            relay_fail_down(r, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: connection to dom0 lost");
    }
    relay_maybe_free(r);
}

/* ---- local connections -------------------------------------------------------------------- */

static void client_free(Client *c)
{
    Agent *a = c->agent;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    rpc_conn_free(c->conn); /* deferred when inside its dispatch */
    free(c);
}

static void client_on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *userdata)
{
    local_call(((Client *)userdata)->agent, s, call);
}

static size_t client_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                             void *userdata)
{
    return local_relay_on_data(s, ch, data, len);
}

static void client_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    local_relay_on_eof(s, ch);
}

static void client_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason,
                            void *userdata)
{
    local_relay_on_reset(s, code, local, reason);
}

static void client_on_writable(RpcStream *s, void *userdata)
{
    local_relay_on_writable(s);
}

static void client_on_stream_free(RpcStream *s, void *userdata)
{
    local_relay_on_stream_free(s);
}

static void client_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    logmsg(LOG_DEBUG, "local client closed (%s)", rpc_error_name(error));
    client_free(userdata);
}

static const RpcCallbacks client_callbacks = {
    .on_call = client_on_call,
    .on_data = client_on_data,
    .on_eof = client_on_eof,
    .on_reset = client_on_reset,
    .on_writable = client_on_writable,
    .on_stream_free = client_on_stream_free,
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
