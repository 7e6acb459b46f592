/* SPDX-License-Identifier: MIT */
/*
 * vrpc-agent - the guest side of vrpc. It offers ONE vchan to dom0 at
 * /local/domain/N/data/vrpc (announced by data/vrpc-ready = "<pid>.<generation>"), speaks
 * librpc on it as ACCEPTOR (the dispatcher connects and is INITIATOR), runs the services of
 * its services folder for the calls the dispatcher opens (through vrpc_handler), and relays
 * the calls of local vrpc-call clients (librpc over a Unix socket) to the dispatcher as
 * streams of that vchan, with credit propagated end to end. When the dispatcher goes away
 * the agent fails the calls in flight and offers a new vchan. Foreground, logs to stderr,
 * SIGTERM/SIGINT end it cleanly.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>
#include <xenstore.h>

#include "common/escape.h"
#include "handler.h"
#include "librpc/loop.h"
#include "librpc/rpc.h"
#include "vchan/vchan.h"
#include "vrpc-services.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

#define DEFAULT_SOCKET "/run/vrpc/agent.sock"
#define DEFAULT_ETC "/etc/vrpc"
#define REOFFER_RETRY_MS 1000
/* The announcement must have stayed changed (by someone else) this long before we re-offer:
 * a process of this domain rewriting data/vrpc-ready in a loop costs one offer, not one per
 * write. */
#define ANNOUNCE_QUIET_MS 200
#define ANNOUNCE_LOG_INTERVAL_MS 10000

enum { STREAM_KIND_RELAY = VRPC_STREAM_KIND_USER + 1 };

typedef struct Agent Agent;

/* First member of both connection userdata types. */
enum { CONN_DOM0 = 1, CONN_LOCAL = 2 };

typedef struct Client {
    int kind; /* CONN_LOCAL */
    Agent *agent;
    RpcConn *conn;
    struct Client *prev, *next;
} Client;

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

struct Agent {
    int kind; /* CONN_DOM0 */
    RpcLoop *loop;
    VrpcHandlerSet *handlers;
    char services_dir[PATH_MAX];
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    bool debug;
    size_t ring_size;

    struct xs_handle *xs;
    int domid;
    char vchan_path[128];
    char ready_path[128];
    unsigned generation;
    char announced[64];            /* what we wrote to data/vrpc-ready last */
    RpcLoopSource *xs_src;         /* watch on data/vrpc-ready */
    RpcLoopSource *announce_timer; /* it changed under us: re-offer once it is quiet */
    int64_t announce_log_next_ms;  /* rate limit of the "changed under us" warning */
    unsigned announce_log_suppressed;

    RpcConn *dom0;         /* current dom0 connection (NULL while re-offering) */
    RpcConn *dom0_old;     /* closed, to be freed by the deferred re-offer */
    RpcLoopSource *reoffer_src;
    RpcLoopSource *retry_timer;

    int listen_fd;
    RpcLoopSource *listen_src;
    Client *clients;
    bool quitting;
};

static bool g_debug;

__attribute__((format(printf, 2, 3))) static void logmsg(int level, const char *fmt, ...)
{
    static const char *const names[] = {"emerg", "alert", "crit", "error",
                                        "warning", "notice", "info", "debug"};
    if (level >= LOG_DEBUG && !g_debug)
        return;
    va_list ap;
    char buf[1024];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "vrpc-agent: %s: %s\n", names[level & 7], buf);
}

static void lib_log(int level, const char *msg, void *userdata)
{
    logmsg(level, "%s", msg);
}

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
    extern const RpcCallbacks agent_callbacks;
    RpcConn *conn = NULL;
    r = rpc_conn_new_vchan(&conn, vc, true, &cfg, &agent_callbacks, a);
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
        logmsg(LOG_WARNING, "%s was changed by another process of this domain; offering a new "
               "vchan (%u more such changes since the last report)", a->ready_path,
               a->announce_log_suppressed);
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

/* ---- relays (local call -> dom0) ------------------------------------------------------------ */

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

/* ---- callbacks (all connections) --------------------------------------------------------- */

static bool is_dom0(RpcConn *conn)
{
    return *(int *)rpc_conn_get_userdata(conn) == CONN_DOM0;
}

static void cb_on_call(RpcConn *conn, RpcStream *s, const RpcCall *call, void *userdata)
{
    if (!is_dom0(conn)) {
        local_call(((Client *)userdata)->agent, s, call);
        return;
    }
    Agent *a = userdata;
    /* A call from the dispatcher: its source field is trusted here (dom0 is). */
    const char *source = call->source ? call->source : "";
    if (!source[0]) {
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: call without source");
        return;
    }
    const char *arg = call->argument ? call->argument : "";
    VrpcService *svc = NULL;
    char err[VRPC_SERVICES_ERROR_MAX] = "";
    int r = vrpc_service_resolve(a->services_dir, call->service, strlen(call->service), arg,
                                 strlen(arg), &svc, err);
    if (r != 0) {
        int code = r > 0 ? vrpc_services_error_exit_code(r) : VRPC_SERVICES_EXIT_FRAMEWORK;
        char reason[RPC_REASON_MAX + 1];
        /* worded like the dispatcher's refusal: what was asked of whom */
        if (code == VRPC_SERVICES_EXIT_NOT_FOUND)
            snprintf(reason, sizeof(reason), "vrpc: %s%s%s not found in %s", call->service,
                     arg[0] ? "+" : "", arg, call->target && call->target[0] ? call->target
                                                                            : "this domain");
        else
            snprintf(reason, sizeof(reason), "%s",
                     err[0] ? err : "vrpc: cannot read the services folder");
        logmsg(LOG_INFO, "call %s from %s: %d %s", call->service, source, code,
               err[0] ? err : vrpc_services_strerror(r));
        (void)rpc_stream_refuse(s, code, reason);
        return;
    }
    VrpcHandlerCall hc = {.source = source, .requested_target = call->target,
                          .user = call->user};
    r = vrpc_handler_start(a->handlers, s, svc, &hc, NULL, NULL, NULL, err);
    if (r != 0)
        logmsg(LOG_INFO, "call %s from %s refused: %s", svc->entry, source, err);
    else
        logmsg(LOG_DEBUG, "call %s from %s started", svc->entry, source);
    vrpc_service_free(svc);
}

static void cb_on_accept(RpcStream *s, void *userdata)
{
    Relay *r = relay_of(s);
    if (r && s == r->up && r->down && !r->down_answered) {
        r->down_answered = true;
        if (rpc_stream_accept(r->down) < 0)
            (void)rpc_stream_reset(r->up, RPC_RESET_CANCEL, "caller went away");
    }
}

static size_t cb_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                         void *userdata)
{
    if (vrpc_handler_from_stream(s))
        return vrpc_handler_on_data(s, ch, data, len);
    Relay *r = relay_of(s);
    return r ? relay_on_data(r, s, ch, data, len) : len;
}

static void cb_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    if (vrpc_handler_from_stream(s)) {
        vrpc_handler_on_eof(s, ch);
        return;
    }
    Relay *r = relay_of(s);
    if (r)
        relay_on_eof(r, s, ch);
}

static void cb_on_exit(RpcStream *s, int32_t code, bool refused, const char *reason,
                       void *userdata)
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

static void cb_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason,
                        void *userdata)
{
    if (vrpc_handler_from_stream(s)) {
        vrpc_handler_on_reset(s, code, local, reason);
        return;
    }
    Relay *r = relay_of(s);
    if (r)
        relay_on_reset(r, s, code, local, reason);
}

static void cb_on_writable(RpcStream *s, void *userdata)
{
    if (vrpc_handler_from_stream(s)) {
        vrpc_handler_on_writable(s);
        return;
    }
    Relay *r = relay_of(s);
    if (r)
        relay_on_writable(r, s);
}

static void cb_on_stream_free(RpcStream *s, void *userdata)
{
    if (vrpc_handler_from_stream(s)) {
        vrpc_handler_on_stream_free(s);
        return;
    }
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

static void client_free(Client *c);

static void cb_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    if (is_dom0(conn)) {
        Agent *a = userdata;
        if (!a->quitting)
            logmsg(LOG_WARNING, "dom0 connection closed (%s: %s); offering a new vchan",
                   rpc_error_name(error), reason ? reason : "");
        if (!a->quitting)
            schedule_reoffer(a, conn);
        return;
    }
    Client *c = userdata;
    logmsg(LOG_DEBUG, "local client closed (%s)", rpc_error_name(error));
    client_free(c);
}

static void cb_on_ready(RpcConn *conn, const RpcPeerInfo *peer, void *userdata)
{
    if (is_dom0(conn))
        logmsg(LOG_INFO, "dom0 connected (protocol %u)", peer->version);
}

const RpcCallbacks agent_callbacks = {
    .on_ready = cb_on_ready,
    .on_call = cb_on_call,
    .on_accept = cb_on_accept,
    .on_data = cb_on_data,
    .on_eof = cb_on_eof,
    .on_exit = cb_on_exit,
    .on_reset = cb_on_reset,
    .on_writable = cb_on_writable,
    .on_stream_free = cb_on_stream_free,
    .on_close = cb_on_close,
};

/* ---- local socket ----------------------------------------------------------------------- */

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
        c->kind = CONN_LOCAL;
        c->agent = a;
        RpcConnConfig cfg;
        rpc_conn_config_init(&cfg);
        cfg.role = RPC_ROLE_ACCEPTOR;
        cfg.keepalive_ms = 0;
        int r = rpc_conn_new_fd(&c->conn, cfd, true, &cfg, &agent_callbacks, c);
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

static int listen_local(Agent *a)
{
    /* 0755 like the umask default the agent always had: only its own user may connect; a
     * stale socket of an earlier agent is replaced, a live one is refused. */
    int fd = rpc_unix_listen(a->socket_path, 0755, 1024);
    if (fd < 0)
        return fd;
    a->listen_fd = fd;
    return rpc_loop_add_fd(a->loop, fd, EPOLLIN, on_listen, a, &a->listen_src);
}

/* ---- main ------------------------------------------------------------------------------ */

static void on_signal(RpcLoopSource *src, const struct signalfd_siginfo *si, void *userdata)
{
    Agent *a = userdata;
    logmsg(LOG_INFO, "signal %u: exiting", si->ssi_signo);
    a->quitting = true;
    rpc_loop_quit(a->loop, 0);
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vrpc-agent [--etc DIR] [--socket PATH] [--ring-size BYTES] [--debug]\n"
            "The guest agent of vrpc: serves dom0's dispatcher over one vchan at\n"
            "/local/domain/N/data/vrpc, runs services from DIR/services and forwards the\n"
            "calls of local vrpc-call clients.\n"
            "  --etc DIR        configuration folder (default %s; services in DIR/services)\n"
            "  --socket PATH    local socket for vrpc-call (default $VRPC_SOCKET, else %s)\n"
            "  --ring-size N    vchan ring size in bytes each way (default 1048576)\n"
            "  --debug          log every call\n"
            "  --help, --version\n",
            DEFAULT_ETC, DEFAULT_SOCKET);
}

static int read_domid(struct xs_handle *xs)
{
    unsigned len = 0;
    char *v = xs_read(xs, XBT_NULL, "domid", &len);
    if (!v)
        return -errno ? -errno : -ENOENT;
    char *end = NULL;
    errno = 0;
    long d = strtol(v, &end, 10);
    int ok = !errno && end != v && *end == '\0' && d > 0 && d < VCHAN_DOMID_FIRST_RESERVED;
    free(v);
    return ok ? (int)d : -EPROTO;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"etc", required_argument, NULL, 'e'},    {"socket", required_argument, NULL, 's'},
        {"ring-size", required_argument, NULL, 'r'}, {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *etc = DEFAULT_ETC;
    const char *sock = getenv("VRPC_SOCKET");
    size_t ring = VCHAN_RING_SIZE_MAX;
    int c;
    opterr = 0; /* one line of our own for a bad option */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            etc = optarg;
            break;
        case 's':
            sock = optarg;
            break;
        case 'r': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v < 4096 || v > VCHAN_RING_SIZE_MAX) {
                fprintf(stderr, "vrpc-agent: --ring-size: 4096..%zu\n", VCHAN_RING_SIZE_MAX);
                return 2;
            }
            ring = v;
            break;
        }
        case 'd':
            g_debug = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("vrpc-agent (vrpc) %s\n", VRPC_VERSION);
            return 0;
        default:
            fprintf(stderr, "vrpc-agent: unknown option or missing value '%s' (try --help)\n",
                    VRPC_ESC(argv[optind - 1]));
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "vrpc-agent: unexpected argument '%s' (try --help)\n", VRPC_ESC(argv[optind]));
        return 2;
    }
    if (!sock || !sock[0])
        sock = DEFAULT_SOCKET;

    static Agent agent;
    Agent *a = &agent;
    a->kind = CONN_DOM0;
    a->listen_fd = -1;
    a->ring_size = ring;
    a->debug = g_debug;
    if ((size_t)snprintf(a->services_dir, sizeof a->services_dir, "%s/services", etc) >=
            sizeof a->services_dir ||
        (size_t)snprintf(a->socket_path, sizeof a->socket_path, "%s", sock) >=
            sizeof a->socket_path) {
        fprintf(stderr, "vrpc-agent: path too long\n");
        return 2;
    }
    rpc_set_log(lib_log, NULL);
    vchan_set_log(lib_log, NULL);

    int ret = 1, r;
    RpcLoopSource *sig_term = NULL, *sig_int = NULL;
    a->xs = xs_open(0);
    if (!a->xs) {
        logmsg(LOG_ERR, "cannot open xenstore (%s): vrpc-agent runs in a Xen guest; on a host "
                        "without Xen, start it inside the emulated host with "
                        "'vrpc-sim exec DOMAIN -- vrpc-agent'", strerror(errno));
        return 1;
    }
    a->domid = read_domid(a->xs);
    if (a->domid < 0) {
        logmsg(LOG_ERR, "cannot read our domid from xenstore: %s", strerror(-a->domid));
        goto out;
    }
    snprintf(a->vchan_path, sizeof a->vchan_path, "/local/domain/%d/data/vrpc", a->domid);
    snprintf(a->ready_path, sizeof a->ready_path, "/local/domain/%d/data/vrpc-ready",
             a->domid);

    if ((r = rpc_loop_new(&a->loop)) < 0 ||
        (r = vrpc_handler_set_new(&a->handlers, a->loop)) < 0 ||
        (r = rpc_loop_add_signal(a->loop, SIGTERM, on_signal, a, &sig_term)) < 0 ||
        (r = rpc_loop_add_signal(a->loop, SIGINT, on_signal, a, &sig_int)) < 0 ||
        (r = rpc_loop_add_defer(a->loop, on_reoffer, a, &a->reoffer_src)) < 0 ||
        (r = rpc_loop_add_timer(a->loop, -1, on_retry, a, &a->retry_timer)) < 0 ||
        (r = rpc_loop_add_timer(a->loop, -1, on_announce_timer, a, &a->announce_timer)) < 0) {
        logmsg(LOG_ERR, "cannot set up the event loop: %s", strerror(-r));
        goto out;
    }
    /* The defer source runs once at creation; nothing to re-offer yet then. */
    r = listen_local(a);
    if (r < 0) {
        logmsg(LOG_ERR, "cannot listen on %s: %s", a->socket_path, strerror(-r));
        goto out;
    }
    r = offer(a);
    if (r < 0)
        goto out;
    r = watch_announcement(a);
    if (r < 0) {
        logmsg(LOG_ERR, "cannot watch %s: %s", a->ready_path, strerror(-r));
        goto out;
    }
    logmsg(LOG_INFO, "domain %d ready; services in %s; local socket %s", a->domid,
           a->services_dir, a->socket_path);
    r = rpc_loop_run(a->loop);
    ret = r < 0 ? 1 : 0;

out:
    a->quitting = true;
    while (a->clients)
        client_free(a->clients);
    if (a->dom0) {
        rpc_conn_close(a->dom0, "vrpc-agent exiting");
        a->dom0 = rpc_conn_free(a->dom0);
    }
    a->dom0_old = rpc_conn_free(a->dom0_old);
    a->handlers = vrpc_handler_set_free(a->handlers);
    if (a->ready_path[0])
        xs_rm(a->xs, XBT_NULL, a->ready_path);
    if (a->listen_fd >= 0) {
        a->listen_src = rpc_loop_source_free(a->listen_src);
        close(a->listen_fd);
        unlink(a->socket_path);
    }
    rpc_loop_source_free(sig_term);
    rpc_loop_source_free(sig_int);
    a->retry_timer = rpc_loop_source_free(a->retry_timer);
    a->announce_timer = rpc_loop_source_free(a->announce_timer);
    a->xs_src = rpc_loop_source_free(a->xs_src);
    a->reoffer_src = rpc_loop_source_free(a->reoffer_src);
    a->loop = rpc_loop_free(a->loop);
    xs_close(a->xs);
    return ret;
}
