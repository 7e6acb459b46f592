/* SPDX-License-Identifier: MIT */
/*
 * main.c - vrpc-dispatcher, the dom0 daemon of vrpc. It finds the guests' agents through
 * xenstore and keeps one librpc connection over one vchan to each, accepts dom0 callers on a
 * local Unix socket, decides every call with the compiled policy (reloaded when policy.d or
 * domains.yaml change), runs dom0 services and relays calls between guests, and writes one
 * audit line per call. It runs in the foreground, logs to stderr, and on SIGTERM (SIGINT,
 * SIGHUP) closes every connection, kills its handlers and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ask.h"
#include "common/escape.h"
#include "common/memory.h"
#include "audit.h"
#include "config.h"
#include "link.h"
#include "control.h"
#include "direct.h"
#include "dispatcher.h"
#include "guests.h"
#include "handler.h"
#include "librpc/loop.h"
#include "log.h"
#include "peer.h"
#include "route.h"
#include "sched-mode.h"
#include "vrpc-policy.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0.0"
#endif

#define DEFAULT_SOCKET "/run/vrpc/dispatcher.sock"
#define DEFAULT_CONTROL "/run/vrpc/control.sock"

/* Dispatcher.peer_lost: a guest connection ended; guests.c looks at its announcement. */
static void on_peer_lost(Dispatcher *d, int domid)
{
    guests_connection_lost(d->guests, domid);
}

/* Dispatcher.guests_changed: a guest connection became ready or went away. */
static void on_guests_changed(Dispatcher *d)
{
    control_guests_changed(d->control);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: vrpc-dispatcher [--etc DIR] [--socket PATH] [--control PATH]\n"
               "                       [--audit FILE] [--sched MODE] [--debug]\n"
               "The vrpc dom0 daemon: connects to every guest's vrpc-agent, decides calls with\n"
               "the policy in DIR/policy.d, runs dom0 services from DIR/services.\n"
               "\n"
               "  --etc DIR       configuration folder (default /etc/vrpc)\n"
               "  --socket PATH   socket for dom0 callers (default $VRPC_SOCKET, else\n"
               "                  " DEFAULT_SOCKET ")\n"
               "  --control PATH  control socket for vrpc-ctl (default $VRPC_CONTROL, else\n"
               "                  " DEFAULT_CONTROL ")\n"
               "  --audit FILE    append the audit log (JSON lines) to FILE (default: the log)\n"
               "  --sched MODE    scheduling policy: auto (the default: SCHED_BATCH, so that a\n"
               "                  wake-up of the daemon does not preempt the handler that woke\n"
               "                  it, and SCHED_OTHER while its connections carry bulk data,\n"
               "                  which SCHED_BATCH slows on a busy host), batch or other;\n"
               "                  handlers always start as SCHED_OTHER\n"
               "  --sched-batch   the same as --sched batch\n"
               "  --debug         log at debug level\n"
               "  --help, --version\n");
}

typedef struct Listener {
    Dispatcher *d;
    int fd;
    char *path;
    RpcLoopSource *src;
} Listener;

static void on_local_accept(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    Listener *l = userdata;

    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                dlog(LOG_WARNING, "local socket: accept: %s", strerror(errno));
            return;
        }
        int r = peer_new_local(l->d, cfd, NULL);
        if (r < 0)
            dlog(LOG_WARNING, "local caller: %s", strerror(-r));
    }
}

typedef struct PolicyWatchCtx {
    Dispatcher *d;
    VrpcPolicyWatch *watch;
    bool held_back; /* logged that a file being written holds the reload back */
} PolicyWatchCtx;

static void log_policy_state(Dispatcher *d, const char *what)
{
    VrpcPolicy *p = vrpc_policy_holder_get(d->policy);

    if (vrpc_policy_is_valid(p)) {
        dlog(LOG_INFO, "policy %s: %zu rules from %zu files", what, vrpc_policy_get_n_rules(p),
             vrpc_policy_get_n_files(p));
    } else {
        size_t n = vrpc_policy_get_n_errors(p);
        /* the causes first, then what follows from them */
        for (size_t i = 0; i < n && i < 10; i++)
            dlog(LOG_ERR, "policy: %s", vrpc_policy_get_error(p, i));
        dlog(LOG_ERR, "policy %s: INVALID, every call is denied (%zu errors)", what, n);
    }
    vrpc_policy_unref(p);
}

static void on_policy_watch(RpcLoopSource *src, int fd, uint32_t events, void *userdata)
{
    PolicyWatchCtx *ctx = userdata;
    int r = vrpc_policy_watch_dispatch(ctx->watch);
    const char *writing = NULL;

    if (r == 1)
        log_policy_state(ctx->d, "reloaded");
    else if (r < 0)
        dlog(LOG_WARNING, "policy watch: %s", strerror(-r));
    /* Once per episode: the reload waits until the file is closed. */
    if (vrpc_policy_watch_get_pending(ctx->watch, &writing) && writing) {
        if (!ctx->held_back)
            dlog(LOG_INFO, "policy: reload waits until %s is closed (being written)", writing);
        ctx->held_back = true;
    } else {
        ctx->held_back = false;
    }
}

static void on_signal(RpcLoopSource *src, const struct signalfd_siginfo *si, void *userdata)
{
    Dispatcher *d = userdata;

    dlog(LOG_INFO, "signal %u: shutting down", si->ssi_signo);
    rpc_loop_quit(d->loop, 0);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"etc", required_argument, NULL, 'e'},     {"socket", required_argument, NULL, 's'},
        {"control", required_argument, NULL, 'c'}, {"audit", required_argument, NULL, 'a'},
        {"debug", no_argument, NULL, 'd'},         {"sched-batch", no_argument, NULL, 'b'},
        {"sched", required_argument, NULL, 'S'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {0},
    };
    const char *etc = VRPC_POLICY_DEFAULT_ETC, *socket_path = NULL, *control_path = NULL;
    const char *audit_path = NULL;
    char err[DISPATCHER_CONFIG_ERROR_MAX];
    TlsCtx *tls = NULL; /* host.tls, until links_new() takes it */
    Dispatcher d = {.guests_changed = on_guests_changed,
                    .peer_call = route_call,
                    .peer_gone = route_peer_gone,
                    .peer_lost = on_peer_lost};
    Listener local = {.fd = -1};
    PolicyWatchCtx pw = {0};
    RpcLoopSource *policy_src = NULL, *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    int opt, r, ret = 1;
    int sched_mode = SCHED_MODE_AUTO;
    SchedAuto *sched = NULL;

    /* a relay frees and allocates a buffer per frame: keep it (memory.h) */
    vrpc_daemon_keep_freed_memory();
    opterr = 0; /* one line of our own for a bad option */

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            etc = optarg;
            break;
        case 's':
            socket_path = optarg;
            break;
        case 'c':
            control_path = optarg;
            break;
        case 'a':
            audit_path = optarg;
            break;
        case 'd':
            d.debug = true;
            break;
        case 'b':
            sched_mode = SCHED_MODE_BATCH;
            break;
        case 'S':
            sched_mode = sched_mode_parse(optarg);
            if (sched_mode < 0) {
                fprintf(stderr,
                        "vrpc-dispatcher: --sched: '%s' is not other, batch or auto (try "
                        "--help)\n",
                        VRPC_ESC(optarg));
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("vrpc-dispatcher (vrpc) %s\n", VRPC_VERSION);
            return 0;
        default:
            fprintf(stderr, "vrpc-dispatcher: unknown option or missing value '%s' (try --help)\n",
                    VRPC_ESC(argv[optind - 1]));
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "vrpc-dispatcher: unexpected argument '%s' (try --help)\n",
                VRPC_ESC(argv[optind]));
        return 2;
    }
    if (!socket_path) {
        const char *env = getenv("VRPC_SOCKET");
        socket_path = env && *env ? env : DEFAULT_SOCKET;
    }
    if (!control_path) {
        const char *env = getenv("VRPC_CONTROL");
        control_path = env && *env ? env : DEFAULT_CONTROL;
    }

    dlog_install_library_sinks();
    signal(SIGPIPE, SIG_IGN);
    r = dispatcher_config_load(&d.config, etc, err);
    if (r < 0) {
        dlog(LOG_ERR, "%s", err);
        goto out;
    }
    if (d.debug)
        dlog_set_level(LOG_DEBUG);
    else if (d.config.log_level >= 0)
        dlog_set_level(d.config.log_level);
    if (!audit_path)
        audit_path = d.config.audit_log;
    /* host.tls (cross-host links): refused now, before anything starts, if it will not do */
    r = links_load_tls(&d.config.host, &tls, err, sizeof(err));
    if (r < 0) {
        dlog(LOG_ERR, "%s", err);
        goto out;
    }

    d.etc_dir = strdup(etc);
    d.socket_path = socket_path;
    if (!d.etc_dir || asprintf(&d.services_dir, "%s/services", etc) < 0) {
        d.services_dir = NULL;
        dlog(LOG_ERR, "out of memory");
        goto out;
    }
    r = audit_new(&d.audit, audit_path);
    if (r < 0) {
        dlog(LOG_ERR, "audit log %s: %s", audit_path, strerror(-r));
        goto out;
    }
    r = rpc_loop_new(&d.loop);
    if (r < 0) {
        dlog(LOG_ERR, "event loop: %s", strerror(-r));
        goto out;
    }
    r = ask_set_new(&d.asks, d.loop, d.config.ask_program, d.config.ask_timeout_ms,
                    d.config.notify_program);
    if (r < 0) {
        dlog(LOG_ERR, "out of memory");
        goto out;
    }
    /* Checked again at every prompt (a failure there denies); said once here. */
    if (d.config.ask_program && access(d.config.ask_program, X_OK) < 0)
        dlog(LOG_WARNING, "ask-program %s: %s (every ask will be denied)", d.config.ask_program,
             strerror(errno));
    if (d.config.notify_program && access(d.config.notify_program, X_OK) < 0)
        dlog(LOG_WARNING, "notify-program %s: %s", d.config.notify_program, strerror(errno));
    /* SIGHUP too (its terminal went away): the same clean end. The policy reloads by
     * itself (inotify), so there is nothing for SIGHUP to re-read. */
    if (rpc_loop_add_signal(d.loop, SIGTERM, on_signal, &d, &sigterm) < 0 ||
        rpc_loop_add_signal(d.loop, SIGINT, on_signal, &d, &sigint) < 0 ||
        rpc_loop_add_signal(d.loop, SIGHUP, on_signal, &d, &sighup) < 0) {
        dlog(LOG_ERR, "cannot handle signals");
        goto out;
    }

    r = vrpc_policy_holder_new(&d.policy, etc);
    if (r < 0) {
        dlog(LOG_ERR, "policy: %s", strerror(-r));
        goto out;
    }
    log_policy_state(&d, "loaded");
    pw.d = &d;
    r = vrpc_policy_watch_new(&pw.watch, d.policy);
    if (r < 0) {
        dlog(LOG_ERR, "policy: cannot watch %s: %s", etc, strerror(-r));
        goto out;
    }
    r = rpc_loop_add_fd(d.loop, vrpc_policy_watch_get_fd(pw.watch), EPOLLIN, on_policy_watch, &pw,
                        &policy_src);
    if (r < 0)
        goto out;

    r = vrpc_handler_set_new(&d.handlers, d.loop);
    if (r < 0) {
        dlog(LOG_ERR, "handlers: %s", strerror(-r));
        goto out;
    }
    /* The policy (sched-mode.c): SCHED_BATCH shortens calls, SCHED_OTHER keeps streams fast on a
     * busy host. */
    r = sched_start(&d, (SchedMode)sched_mode, &sched);
    if (r < 0) {
        /* batch: the policy was refused; auto: only its watch could not be set up */
        dlog(LOG_ERR, "--sched %s: %s",
             sched_mode == SCHED_MODE_BATCH ? "batch: cannot run as SCHED_BATCH"
                                            : "auto: cannot watch the connections",
             strerror(-r));
        goto out;
    }

    local.d = &d;
    r = rpc_unix_listen(socket_path, 0666, 128);
    if (r < 0) {
        dlog(LOG_ERR, "socket %s: %s", socket_path, strerror(-r));
        goto out;
    }
    local.fd = r;
    local.path = (char *)socket_path;
    r = rpc_loop_add_fd(d.loop, local.fd, EPOLLIN, on_local_accept, &local, &local.src);
    if (r < 0)
        goto out;

    r = control_new(&d.control, &d, control_path);
    if (r < 0) {
        dlog(LOG_ERR, "control socket %s: %s", control_path, strerror(-r));
        goto out;
    }

    r = guests_new(&d.guests, &d);
    if (r < 0) {
        dlog(LOG_ERR,
             "cannot open xenstore (%s): vrpc-dispatcher runs in dom0 of a Xen host; "
             "on a host without Xen use 'vrpc-sim up --vrpc' or "
             "'vrpc-sim exec dom0 -- vrpc-dispatcher'",
             strerror(-r));
        goto out;
    }
    r = direct_init(&d);
    if (r < 0)
        goto out;
    {
        char lerr[512];
        r = links_new(&d.links, &d, tls, lerr, sizeof(lerr));
        tls = NULL; /* taken */
        if (r < 0) {
            dlog(LOG_ERR, "%s", lerr);
            goto out;
        }
    }
    dlog(LOG_INFO, "ready: socket %s, control %s, etc %s", socket_path, control_path, etc);

    r = rpc_loop_run(d.loop);
    ret = r < 0 ? 1 : 0;

out:
    d.stopping = true;
    d.guests = guests_free(d.guests);
    d.control = control_free(d.control);
    local.src = rpc_loop_source_free(local.src);
    if (local.fd >= 0) {
        close(local.fd);
        unlink(local.path);
    }
    while (d.peers) {
        Peer *p = d.peers;
        if (p->conn && !rpc_conn_is_closed(p->conn))
            rpc_conn_close(p->conn, "vrpc-dispatcher shutting down");
        if (d.peers == p)
            peer_free(p);
    }
    /* Peers dropped earlier whose deferred release has not run yet are freed with their
     * defer sources by rpc_loop_free() below, without the callback: run them now. */
    if (d.loop)
        rpc_loop_run_once(d.loop, 0);
    d.links = links_free(d.links);
    tls_ctx_free(tls);
    sched = sched_free(sched);
    d.handlers = vrpc_handler_set_free(d.handlers);
    route_free_all(&d);
    direct_deinit(&d);
    d.asks = ask_set_free(d.asks);
    rpc_loop_source_free(policy_src);
    vrpc_policy_watch_free(pw.watch);
    vrpc_policy_holder_free(d.policy);
    rpc_loop_source_free(sigterm);
    rpc_loop_source_free(sigint);
    rpc_loop_source_free(sighup);
    d.loop = rpc_loop_free(d.loop);
    audit_free(d.audit);
    dispatcher_config_deinit(&d.config);
    free(d.etc_dir);
    free(d.services_dir);
    return ret;
}
