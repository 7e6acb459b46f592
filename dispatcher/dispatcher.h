/* SPDX-License-Identifier: MIT */
/*
 * dispatcher.h - private: the state shared by the dispatcher's modules.
 *
 *   guests.c   xenstore discovery (watches, scans, @releaseDomain checks)
 *   peer.c     one librpc connection: a guest's vchan or a dom0 caller's Unix socket
 *   route.c    one call: policy, dom0 services (vrpc_handler), relay to a guest
 *   ask.c      the ask program (policy `ask`) and the notify program (`notify: true`)
 *   control.c  the control socket of vrpc-ctl
 *   link.c     links to other hosts (TLS: tls.c), one Peer (PEER_HOST) each
 *   audit.c    the audit log;  config.c dispatcher.yaml;  log.c the stderr log
 *   main.c     options, start-up, the loop, shutdown
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "librpc/loop.h"
#include "librpc/rpc.h"

typedef struct AskSet AskSet;
typedef struct Audit Audit;
typedef struct Call Call;
typedef struct Control Control;
typedef struct DirectSet DirectSet;
typedef struct Guests Guests;
typedef struct Links Links;
typedef struct Peer Peer;
typedef struct VrpcHandlerSet VrpcHandlerSet;
typedef struct VrpcPolicyHolder VrpcPolicyHolder;

#define DISPATCHER_GONE_MAX 64

typedef struct Dispatcher {
    RpcLoop *loop;
    char *etc_dir;
    char *services_dir;
    const char *socket_path; /* dom0 callers' socket; handlers get it as VRPC_SOCKET */
    DispatcherConfig config;
    bool debug;
    bool stopping; /* the daemon is shutting down: the calls it cuts are its doing */
    VrpcPolicyHolder *policy;
    VrpcHandlerSet *handlers;
    Audit *audit;
    AskSet *asks;
    Guests *guests;
    Control *control;
    Links *links; /* cross-host links (link.c); NULL without a host: section */
    Peer *peers;  /* every live connection, guests and local callers */
    Call *calls;  /* every call not yet finished */
    DirectSet *direct; /* direct guest<->guest channels (direct.c) */
    uint64_t next_call_id;
    uint64_t calls_total;   /* calls received */
    uint64_t refused_total; /* calls refused (126) */
    unsigned calls_in_flight;
    /* Guests whose connection ended recently, for the audit reason of calls to them
     * (peer_absent_reason()): a small ring, newest overwriting oldest. */
    struct {
        char name[RPC_DOMAIN_MAX + 1];
        bool destroyed;
    } gone[DISPATCHER_GONE_MAX];
    unsigned gone_next;
    /* Called by peer.c when a guest connection became ready or went away; main.c points it
     * at the control socket (wakes vrpc-ctl wait-guests). NULL: nobody listens. A hook, so
     * that the modules below main.c never call back up into it. */
    void (*guests_changed)(struct Dispatcher *d);
    /* What peer.c, the connections, hands up to the modules above it, set by main.c (the
     * same reason: no module calls up into one that depends on it):
     * peer_call       a CALL arrived on @src's connection (route.c: route_call);
     * peer_gone       @p's connection is released, its streams gone (route.c);
     * peer_lost       a guest connection ended: look at its announcement again (guests.c).
     * NULL: ignored (unit tests). */
    void (*peer_call)(Peer *src, RpcStream *s, const RpcCall *untrusted_call);
    void (*peer_gone)(Peer *p);
    void (*peer_lost)(struct Dispatcher *d, int domid);
    /* host_lost       a host link's peer was dropped (link.c: dial again). */
    void (*host_lost)(Peer *p);
} Dispatcher;

/* The connection configuration for a peer (role given), from dispatcher.yaml. */
void dispatcher_conn_config(const Dispatcher *d, RpcRole role, RpcConnConfig *cfg);
