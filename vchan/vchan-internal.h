/* SPDX-License-Identifier: MIT */
/*
 * vchan-internal.h - private: the Vchan object shared by the API core (core.c) and its
 * transports: Xen (xen.c) and the in-process pair (local.c).
 */
#pragma once

#include "ring.h"
#include "vchan.h"

/* A transport: how events travel and how the channel is torn down. */
typedef struct VchanBackend {
    const char *name;
    /* send one event to the peer: 0 or -errno */
    int (*notify)(Vchan *c);
    /* consume pending events without blocking, re-enable delivery: count or -errno */
    int (*consume)(Vchan *c);
    /* the same when poll(2) just said the fd is readable: may skip checks for that */
    int (*consume_ready)(Vchan *c);
    /* optional: sleep until an event comes, consume it: count, -errno, or -EOPNOTSUPP
     * (then the caller polls the fd) */
    int (*wait_event)(Vchan *c);
    /* does the peer still exist: 1, 0 or -errno */
    int (*check_peer)(Vchan *c);
    /* full clean close of a possibly half-built channel; frees c->priv */
    void (*destroy)(Vchan *c);
} VchanBackend;

struct Vchan {
    VchanRing ring;
    bool ring_ready; /* ring initialised: the live byte may be written */
    const VchanBackend *backend;
    void *priv;
    int fd;
    int domid;
    char *path;
    VchanOptions opts;
    uint64_t spin_budget_ns; /* adaptive spin budget, <= opts.spin_ns */
    unsigned spin_misses;
    unsigned waits_since_probe;
    unsigned probe_gap; /* waits between full-budget probe spins */
    bool probing;       /* the current wait is a probe */
    bool peer_asleep;   /* we sent an event since our last wait: the peer was not running */
    VchanStats stats;
    bool violation_logged;
};

/* Allocate a blank channel (fd -1, default options). NULL on ENOMEM. */
Vchan *vchan_alloc(const VchanBackend *backend, int domid, const char *path);

/* Log through the installed sink. */
void vchan_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send an event to the peer (counts it; logs a failure). */
int vchan_kick(Vchan *c);
