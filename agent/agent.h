/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * agent.h - the state vrpc-agent's files share: one Agent per process (main.c), its dom0
 * link and announcement (offer.c) and its local callers (local.c).
 */

#include "common/log.h"
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>
#include <syslog.h>

#include "handler.h"
#include "librpc/loop.h"
#include "librpc/rpc.h"

struct xs_handle;
typedef struct Client Client;
typedef struct AgentDirect AgentDirect;

typedef struct Agent {
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

    RpcConn *dom0;     /* current dom0 connection (NULL while re-offering) */
    RpcConn *dom0_old; /* closed, to be freed by the deferred re-offer */
    RpcLoopSource *reoffer_src;
    RpcLoopSource *retry_timer;

    int listen_fd;
    RpcLoopSource *listen_src;
    Client *clients;
    bool quitting;

    bool no_direct;      /* --no-direct: no direct guest<->guest channels */
    AgentDirect *direct; /* direct.c; NULL with --no-direct */
} Agent;

/* One line on stderr, "vrpc-agent: LEVEL: ...", LOG_DEBUG only with --debug (main.c). */
/* The agent's name for the one logger (common/log.h): "vrpc-agent: LEVEL: message". */
#define logmsg(...) vrpc_log(__VA_ARGS__)
