/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * relay.h - join two librpc streams into one call: @down, a call we received (we are its
 * HANDLER, not yet answered), and @up, the call we opened for it elsewhere (we are its
 * CALLER), on any two connections of any transport. The relay owns both streams' events
 * (rpc_stream_set_ops) and:
 *   - moves bytes both ways (down's STDIN to up; up's STDOUT/STDERR to down), consuming on
 *     one side only what the other side took, so the receiver's credit reaches the sender
 *     (delivery pauses and resumes from the other stream's on_writable);
 *   - passes EOFs on; accepts down when up is accepted; gives down up's EXIT or REFUSE;
 *   - when up fails (reset, its connection lost, freed unanswered), answers down with
 *     abort_code and the text of ops->abort_reason (EXIT once accepted, else REFUSE);
 *   - when down goes away (reset, freed unanswered), resets up with RPC_RESET_CANCEL and
 *     cancel_reason.
 * The owner hears of the call's milestones and its one end through RpcRelayOps, and the
 * relay frees itself once both streams are gone (on_free comes first).
 *
 * Threading: single-threaded, like the connections.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct RpcRelay RpcRelay;

/* How a relayed call ended (RpcRelayOps.on_end). */
typedef enum RpcRelayEnd {
    RPC_RELAY_END_EXIT = 1,  /* up's EXIT was given to down */
    RPC_RELAY_END_REFUSED,   /* up's REFUSE was given to down */
    RPC_RELAY_END_ABORTED,   /* up failed: down got abort_code and the abort reason */
    RPC_RELAY_END_CANCELLED, /* down went away: up was reset */
} RpcRelayEnd;

/* What the owner sets. Every callback may be NULL; userdata is rpc_relay_new()'s. */
typedef struct RpcRelayOps {
    /* Exit code down gets when up fails (e.g. 125). */
    int32_t abort_code;
    /* Reason of the RESET up gets when down goes away. */
    const char *cancel_reason;
    /* up's handler accepted the call (down is accepted right after). */
    void (*on_accept)(RpcRelay *r, void *userdata);
    /* The first bytes of up's STDOUT/STDERR were taken by down. */
    void (*on_first_byte)(RpcRelay *r, void *userdata);
    /* up failed: write the reason down gets into @buf (@size bytes). @reset: up was reset
     * (by its peer, the library or its connection closing: @code and @reason are the
     * reset's); false: up was freed without an answer. NULL: "vrpc: call aborted". */
    void (*abort_reason)(RpcRelay *r, bool reset, uint32_t code, const char *reason, char *buf,
                         size_t size, void *userdata);
    /* The call ended (once): @code is the exit code down was given (-1 for CANCELLED) and
     * @reason up's refusal or the abort reason (NULL when there is none). */
    void (*on_end)(RpcRelay *r, RpcRelayEnd end, int32_t code, const char *reason, void *userdata);
    /* Both streams are gone; the relay is freed when this returns. */
    void (*on_free)(RpcRelay *r, void *userdata);
    /* Hold down's stdin (data and EOF) until up is accepted: nothing of it reaches up before
     * up's handler took the call, so that a redirect can hand down on untouched. */
    bool hold_until_accept;
    /* Non-zero with on_redirect: when up is refused with this code before down was
     * answered, the relay lets go of down (unanswered, no ops, its held stdin still held)
     * and hands it to on_redirect with up's reason; @down_eof: down's stdin EOF already
     * arrived (no data is held then). on_redirect must answer down or join it to another
     * relay (then call rpc_relay_note_down_eof() if @down_eof) before it returns. on_end is
     * not called for a redirected call. */
    int32_t redirect_code;
    void (*on_redirect)(RpcRelay *r, RpcStream *down, bool down_eof, const char *reason,
                        void *userdata);
} RpcRelayOps;

/*
 * Relay @down (we are its HANDLER, not answered yet) and @up (we are its CALLER, just
 * opened, no event delivered yet); both must have neither ops nor userdata of their own.
 * @ops is kept by reference. Returns 0 and sets *@rp (may be NULL), -EINVAL or -ENOMEM
 * (nothing changed: the caller still owns both streams).
 */
RPC_EXPORT int rpc_relay_new(RpcRelay **rp, RpcStream *down, RpcStream *up, const RpcRelayOps *ops,
                             void *userdata);

/* down's stdin EOF was delivered before this relay took it (a redirect): pass it on to up
 * (at once, or when up is accepted with hold_until_accept). */
RPC_EXPORT void rpc_relay_note_down_eof(RpcRelay *r);

/* The streams (NULL once gone). */
RPC_EXPORT RpcStream *rpc_relay_down(const RpcRelay *r);
RPC_EXPORT RpcStream *rpc_relay_up(const RpcRelay *r);

#ifdef __cplusplus
}
#endif
