/* SPDX-License-Identifier: MIT */
/*
 * peer.h - one librpc connection of the dispatcher: a guest agent's vchan (we are the vchan
 * client and the librpc INITIATOR) or a dom0 caller on the local socket (ACCEPTOR).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher.h"
#include "librpc/loop.h"
#include "librpc/rpc.h"

typedef enum PeerKind {
    PEER_GUEST = 1,
    PEER_LOCAL = 2,
    PEER_HOST = 3, /* another host's dispatcher, over TLS (link.c) */
} PeerKind;

typedef struct Tls Tls;

struct Peer {
    Dispatcher *d;
    Peer *prev, *next; /* in d->peers while not dropped */
    PeerKind kind;
    int domid;                     /* guests; 0 for local callers */
    char name[RPC_DOMAIN_MAX + 1]; /* the source name of its calls ("dom0" for local) */
    char generation[64];           /* guests: the vrpc-ready value we connected for */
    RpcConn *conn;
    Vchan *vchan;             /* guests: owned by conn, kept for vchan_check_peer() */
    bool ready;               /* HELLO exchanged */
    bool dropped;             /* closing: no longer in d->peers, freed by a deferred call */
    bool destroyed;           /* guests: dropped because the domain was destroyed */
    unsigned calls_in_flight; /* calls this peer made that are not finished */
    unsigned calls_out;       /* hosts: calls relayed to it that are not finished */
    void *link;               /* hosts: link.c's HostLink */
    uint64_t calls_total;
};

/* Connect to the agent of guest @domid (@name from /local/domain/N/name) at
 * /local/domain/N/data/vrpc. Returns 0 and the new peer (already listed), or -errno of
 * vchan_client_new() / librpc. */
int peer_new_guest(Dispatcher *d, int domid, const char *name, const char *generation,
                   Peer **peerp);

/* Wrap an accepted local socket (taken over; closed on failure). Returns 0 or -errno. */
int peer_new_local(Dispatcher *d, int fd, Peer **peerp);

/* A link to host @host over the finished TLS session @tls (taken over). Returns 0 or -errno. */
int peer_new_host(Dispatcher *d, Tls *tls, RpcRole role, const char *host, Peer **peerp);

/* Close the connection (GOAWAY with @reason, streams reset) and free the peer once the
 * current dispatch has unwound. Safe inside any callback; idempotent. */
void peer_drop(Peer *p, const char *reason);

/* Free at once (shutdown). */
void peer_free(Peer *p);

/* The ready guest connection named @name, or NULL. */
Peer *peer_find_guest(Dispatcher *d, const char *name);
/* The live guest peer of @domid (ready or not), or NULL. */
Peer *peer_find_domid(Dispatcher *d, int domid);
/* Why there is no ready connection to guest @name, for the audit line (never shown to the
 * caller): "target domain gone", "target not connected" or "unknown target". */
const char *peer_absent_reason(const Dispatcher *d, const char *name);
/* Ready guest connections. */
unsigned peer_count_ready_guests(const Dispatcher *d);
