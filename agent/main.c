/* SPDX-License-Identifier: MIT */
/*
 * vrpc-agent - the guest side of vrpc. It offers ONE vchan to dom0 at
 * /local/domain/N/data/vrpc (offer.c), runs the services of its services folder for the
 * calls the dispatcher opens, and relays the calls of local vrpc-call clients (librpc over a
 * Unix socket, local.c) to the dispatcher as streams of that vchan, with credit propagated
 * end to end. When the dispatcher goes away the agent fails the calls in flight and offers a
 * new vchan. This file holds the command line, the logger and the process's lifetime.
 * Foreground, logs to stderr, SIGTERM/SIGINT/SIGHUP end it cleanly.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenstore.h>

#include "agent.h"
#include "common/escape.h"
#include "common/memory.h"
#include "direct.h"
#include "local.h"
#include "offer.h"
#include "vchan/vchan.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

#define DEFAULT_SOCKET "/run/vrpc/agent.sock"
#define DEFAULT_ETC "/etc/vrpc"

static bool g_debug;

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
            "Usage: vrpc-agent [--etc DIR] [--socket PATH] [--ring-size BYTES] [--no-direct]\n"
            "                  [--debug]\n"
            "The guest agent of vrpc: serves dom0's dispatcher over one vchan at\n"
            "/local/domain/N/data/vrpc, runs services from DIR/services and forwards the\n"
            "calls of local vrpc-call clients.\n"
            "  --etc DIR        configuration folder (default %s; services in DIR/services)\n"
            "  --socket PATH    local socket for vrpc-call (default $VRPC_SOCKET, else %s)\n"
            "  --ring-size N    vchan ring size in bytes each way (default 1048576)\n"
            "  --no-direct      no direct channels to other guests: every call is relayed\n"
            "                   through dom0\n"
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
        {"etc", required_argument, NULL, 'e'},
        {"socket", required_argument, NULL, 's'},
        {"ring-size", required_argument, NULL, 'r'},
        {"debug", no_argument, NULL, 'd'},
        {"no-direct", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *etc = DEFAULT_ETC;
    const char *sock = getenv("VRPC_SOCKET");
    size_t ring = VCHAN_RING_SIZE_MAX;
    bool no_direct = false;
    int c;
    /* a relay frees and allocates a buffer per frame: keep it (memory.h) */
    vrpc_daemon_keep_freed_memory();
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
        case 'n':
            no_direct = true;
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
        fprintf(stderr, "vrpc-agent: unexpected argument '%s' (try --help)\n",
                VRPC_ESC(argv[optind]));
        return 2;
    }
    if (!sock || !sock[0])
        sock = DEFAULT_SOCKET;

    static Agent agent;
    Agent *a = &agent;
    a->listen_fd = -1;
    a->ring_size = ring;
    a->debug = g_debug;
    a->no_direct = no_direct;
    if ((size_t)snprintf(a->services_dir, sizeof a->services_dir, "%s/services", etc) >=
            sizeof a->services_dir ||
        (size_t)snprintf(a->socket_path, sizeof a->socket_path, "%s", sock) >=
            sizeof a->socket_path) {
        fprintf(stderr, "vrpc-agent: path too long\n");
        return 2;
    }
    vrpc_log_init("vrpc-agent");
    if (g_debug)
        vrpc_log_set_level(LOG_DEBUG);
    rpc_set_log(vrpc_log_sink, NULL);
    vchan_set_log(vrpc_log_sink, NULL);

    int ret = 1, r;
    RpcLoopSource *sig_term = NULL, *sig_int = NULL, *sig_hup = NULL;
    a->xs = xs_open(0);
    if (!a->xs) {
        logmsg(LOG_ERR,
               "cannot open xenstore (%s): vrpc-agent runs in a Xen guest; on a host "
               "without Xen, start it inside the emulated host with "
               "'vrpc-sim exec DOMAIN -- vrpc-agent'",
               strerror(errno));
        return 1;
    }
    a->domid = read_domid(a->xs);
    if (a->domid < 0) {
        logmsg(LOG_ERR, "cannot read our domid from xenstore: %s", strerror(-a->domid));
        goto out;
    }
    snprintf(a->vchan_path, sizeof a->vchan_path, "/local/domain/%d/data/vrpc", a->domid);
    snprintf(a->ready_path, sizeof a->ready_path, "/local/domain/%d/data/vrpc-ready", a->domid);

    if ((r = rpc_loop_new(&a->loop)) < 0 || (r = vrpc_handler_set_new(&a->handlers, a->loop)) < 0 ||
        (r = rpc_loop_add_signal(a->loop, SIGTERM, on_signal, a, &sig_term)) < 0 ||
        (r = rpc_loop_add_signal(a->loop, SIGINT, on_signal, a, &sig_int)) < 0 ||
        (r = rpc_loop_add_signal(a->loop, SIGHUP, on_signal, a, &sig_hup)) < 0 ||
        (r = offer_init(a)) < 0 || (!a->no_direct && (r = direct_init(a)) < 0)) {
        logmsg(LOG_ERR, "cannot set up the event loop: %s", strerror(-r));
        goto out;
    }
    r = local_listen(a);
    if (r < 0) {
        logmsg(LOG_ERR, "cannot listen on %s: %s", a->socket_path, strerror(-r));
        goto out;
    }
    r = offer_start(a);
    if (r < 0)
        goto out;
    logmsg(LOG_INFO, "domain %d ready; services in %s; local socket %s", a->domid, a->services_dir,
           a->socket_path);
    r = rpc_loop_run(a->loop);
    ret = r < 0 ? 1 : 0;

out:
    a->quitting = true;
    local_stop(a);
    direct_free(a);
    offer_stop(a);
    a->handlers = vrpc_handler_set_free(a->handlers);
    rpc_loop_source_free(sig_term);
    rpc_loop_source_free(sig_int);
    rpc_loop_source_free(sig_hup);
    a->loop = rpc_loop_free(a->loop);
    xs_close(a->xs);
    return ret;
}
