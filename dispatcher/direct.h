/* SPDX-License-Identifier: MIT */
/*
 * direct.h - the dispatcher's side of direct guest<->guest channels (docs/protocol.md,
 * "Direct channels"): one channel per (source, target) pair of guests, its xenstore
 * directory (created by dom0, owned by the target, readable by the source), the control
 * calls that make the target agent serve it and register one token per call, and its idle
 * close. route.c decides when to use it and keeps the calls.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher.h"

typedef struct DirectChan DirectChan;
typedef struct DirectReq DirectReq;
typedef struct DirectSet DirectSet;

int direct_init(Dispatcher *d);
void direct_deinit(Dispatcher *d);

/* Whether a call from @src to @dst may go on a direct channel: both are guests (different
 * ones) whose agents negotiated RPC_FEATURE_DIRECT, and direct-idle-timeout is not 0. When
 * not, *@whyp says why for the audit line (NULL: direct was never a possibility). */
bool direct_possible(const Dispatcher *d, const Peer *src, const Peer *dst, const char **whyp);

/* What the target must check a direct CALL against. */
typedef struct DirectCallInfo {
    uint64_t call_id;
    const char *source, *service, *argument, *user;
} DirectCallInfo;

/* The broker's answer: @err 0 and the channel (a reference the caller now holds, released
 * with direct_chan_release()) or -errno / -EPROTO (the target refused), with a short reason
 * in @why for the audit line. */
typedef void (*DirectReqFn)(void *userdata, int err, const char *why, DirectChan *chan,
                            int target_domid, unsigned ch, uint64_t token);

/* Get or set up the channel @src -> @dst and register a fresh token for @info with the target
 * agent. @done is called later (never from inside this call), unless direct_req_cancel().
 * Returns 0, or -errno (nothing pending, @done not called). */
int direct_request(Dispatcher *d, Peer *src, Peer *dst, const DirectCallInfo *info,
                   DirectReqFn done, void *userdata, DirectReq **reqp);
void direct_req_cancel(DirectReq *req);

/* A call that held the channel ended (its exit report came, or it was revoked or lost). The
 * channel closes after direct-idle-timeout without calls. Accepts NULL. */
void direct_chan_release(DirectChan *chan);

/* Ask the target to drop the unused token of call @call_id; @done(userdata, true) if it was
 * dropped unused, false if it was used (its exit report will come) or the target is gone. */
int direct_revoke(DirectChan *chan, uint64_t call_id, uint64_t token,
                  void (*done)(void *userdata, bool dropped), void *userdata);

/* @p's connection went away: close every channel it is an end of (the xenstore directory
 * is removed; the other agent is told to close its end). */
void direct_peer_gone(Peer *p);
