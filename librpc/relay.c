/* SPDX-License-Identifier: MIT */
/*
 * relay.c - one call relayed between two streams (relay.h): the agent's local calls to dom0
 * and the dispatcher's calls to guests. Bytes are consumed on one stream only once the other
 * took them (rpc_stream_write), so credit crosses the relay and a slow reader slows the
 * writer on the other connection; everything else is the stream state mapped across: accept,
 * EOF, EXIT and REFUSE from up to down, a failure of either side to the other.
 */

#include "relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

struct RpcRelay {
    RpcStream *down; /* the call we received (HANDLER); NULL once freed */
    RpcStream *up;   /* the call we opened (CALLER); NULL once freed */
    const RpcRelayOps *ops;
    void *userdata;
    bool down_accepted; /* ACCEPT sent on down */
    bool ended;         /* down was answered for good or went away: on_end called */
    bool first_byte;    /* on_first_byte called */
    bool up_accepted;   /* up's ACCEPT (or EXIT) arrived */
    bool down_eof;      /* down's stdin EOF held for up (hold_until_accept) */
    unsigned busy;      /* inside one of its events: freeing waits */
};

/* Enter/leave one of the relay's events: answering one stream can free the other inside
 * the call, and the relay must outlive the event that started it. */
static RpcRelay *relay_enter(void *userdata)
{
    RpcRelay *r = userdata;

    r->busy++;
    return r;
}

static void relay_leave(RpcRelay *r)
{
    if (--r->busy || r->down || r->up)
        return;
    if (r->ops->on_free)
        r->ops->on_free(r, r->userdata);
    free(r);
}

static void relay_end(RpcRelay *r, RpcRelayEnd end, int32_t code, const char *reason)
{
    if (r->ended)
        return;
    r->ended = true;
    if (r->ops->on_end)
        r->ops->on_end(r, end, code, reason, r->userdata);
}

/* Give down its final answer. ended is set first: with down's stdin EOF already in, the
 * answer completes the stream and librpc may free it (on_stream_free) before this returns;
 * that is the end of the call, not the caller going away. */
static void relay_answer_down(RpcRelay *r, RpcRelayEnd end, int32_t code, const char *reason)
{
    RpcStream *down = r->down;

    relay_end(r, end, code, reason);
    if (!down)
        return;
    if (!r->down_accepted)
        (void)rpc_stream_refuse(down, code, reason);
    else if (rpc_stream_exit(down, code, reason && reason[0] ? reason : NULL) < 0)
        (void)rpc_stream_reset(down, RPC_RESET_CANCEL, "vrpc: call ended");
}

/* up failed: down gets the abort code and the owner's words for it. */
static void relay_abort(RpcRelay *r, bool reset, uint32_t code, const char *reason)
{
    char text[RPC_REASON_MAX + 1];

    if (r->ended)
        return;
    if (r->ops->abort_reason)
        r->ops->abort_reason(r, reset, code, reason, text, sizeof(text), r->userdata);
    else
        snprintf(text, sizeof(text), "vrpc: call aborted");
    relay_answer_down(r, RPC_RELAY_END_ABORTED, r->ops->abort_code, text);
}

/* down went away: cancel up. */
static void relay_cancel(RpcRelay *r)
{
    if (r->ended)
        return;
    relay_end(r, RPC_RELAY_END_CANCELLED, -1, NULL);
    if (r->up)
        (void)rpc_stream_reset(r->up, RPC_RESET_CANCEL, r->ops->cancel_reason);
}

/* ---- events of both streams ------------------------------------------------------------- */

static size_t relay_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                            void *userdata)
{
    RpcRelay *r = relay_enter(userdata);
    bool from_up = s == r->up;
    RpcStream *other = from_up ? (r->ended ? NULL : r->down) : r->up;
    ssize_t n;
    size_t used;

    if (!from_up && other && r->ops->hold_until_accept && !r->up_accepted) {
        relay_leave(r);
        return 0; /* held: delivery pauses until up is accepted (relay_on_accept) */
    }
    n = other ? rpc_stream_write(other, ch, data, len) : (ssize_t)len;
    if (n == -EAGAIN)
        used = 0; /* delivery pauses; on_writable of @other resumes it */
    else if (n < 0 || !other)
        used = len; /* the other side is gone or cannot take it any more: discard */
    else
        used = (size_t)n;
    if (other && from_up && n > 0 && !r->first_byte) {
        r->first_byte = true;
        if (r->ops->on_first_byte)
            r->ops->on_first_byte(r, r->userdata);
    }
    relay_leave(r);
    return used;
}

static void relay_on_writable(RpcStream *s, void *userdata)
{
    RpcRelay *r = relay_enter(userdata);
    /* @s can take data again: resume the stream that feeds it. */
    RpcStream *feeder = s == r->down ? r->up : r->down;

    if (feeder && rpc_stream_is_paused(feeder))
        (void)rpc_stream_resume(feeder);
    relay_leave(r);
}

static void relay_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    RpcRelay *r = relay_enter(userdata);

    if (s == r->down) {
        if (r->up && r->ops->hold_until_accept && !r->up_accepted)
            r->down_eof = true; /* passed on at the accept */
        else if (r->up)
            (void)rpc_stream_close_write(r->up, RPC_CH_STDIN);
    } else if (r->down && r->down_accepted && !r->ended) {
        (void)rpc_stream_close_write(r->down, ch);
    }
    relay_leave(r);
}

static void relay_on_accept(RpcStream *s, void *userdata)
{
    RpcRelay *r = relay_enter(userdata);

    if (s == r->up) {
        r->up_accepted = true;
        if (r->down_eof)
            (void)rpc_stream_close_write(r->up, RPC_CH_STDIN);
        else if (r->down && rpc_stream_is_paused(r->down))
            (void)rpc_stream_resume(r->down); /* the stdin held until now */
    }
    if (s == r->up && r->ops->on_accept)
        r->ops->on_accept(r, r->userdata);
    if (s == r->up && r->down && !r->ended && !r->down_accepted) {
        if (rpc_stream_accept(r->down) == 0)
            r->down_accepted = true;
        else
            relay_cancel(r);
    }
    relay_leave(r);
}

static void relay_on_exit(RpcStream *s, int32_t code, bool refused, const char *reason,
                          void *userdata)
{
    RpcRelay *r = relay_enter(userdata);

    if (s == r->up && !r->ended && refused && r->ops->redirect_code &&
        code == r->ops->redirect_code && r->ops->on_redirect && r->down && !r->down_accepted) {
        /* Hand down over, unanswered and with its stdin still held. */
        RpcStream *down = r->down;
        r->down = NULL;
        r->ended = true;
        rpc_stream_set_ops(down, NULL, NULL);
        r->ops->on_redirect(r, down, r->down_eof, reason, r->userdata);
    } else if (s == r->up && !r->ended) {
        if (!refused && r->down && !r->down_accepted && rpc_stream_accept(r->down) == 0)
            r->down_accepted = true; /* an EXIT is an answer after an accept */
        relay_answer_down(r, refused ? RPC_RELAY_END_REFUSED : RPC_RELAY_END_EXIT, code, reason);
    }
    relay_leave(r);
}

static void relay_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason,
                           void *userdata)
{
    RpcRelay *r = relay_enter(userdata);

    if (s == r->down)
        relay_cancel(r); /* the caller went away (or broke the stream) */
    else
        relay_abort(r, true, code, reason);
    relay_leave(r);
}

static void relay_on_stream_free(RpcStream *s, void *userdata)
{
    RpcRelay *r = relay_enter(userdata);

    rpc_stream_set_ops(s, NULL, NULL);
    if (s == r->down) {
        r->down = NULL;
        relay_cancel(r); /* freed without an answer or a reset seen */
    } else {
        r->up = NULL;
        relay_abort(r, false, 0, NULL);
    }
    relay_leave(r); /* frees the relay once both streams are gone */
}

static const RpcStreamOps relay_stream_ops = {
    .on_accept = relay_on_accept,
    .on_data = relay_on_data,
    .on_eof = relay_on_eof,
    .on_exit = relay_on_exit,
    .on_reset = relay_on_reset,
    .on_writable = relay_on_writable,
    .on_stream_free = relay_on_stream_free,
};

int rpc_relay_new(RpcRelay **rp, RpcStream *down, RpcStream *up, const RpcRelayOps *ops,
                  void *userdata)
{
    RpcRelay *r;

    if (!down || !up || !ops || down == up || rpc_stream_is_caller(down) ||
        !rpc_stream_is_caller(up) || rpc_stream_get_ops(down) || rpc_stream_get_ops(up) ||
        rpc_stream_get_userdata(down) || rpc_stream_get_userdata(up))
        return -EINVAL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->down = down;
    r->up = up;
    r->ops = ops;
    r->userdata = userdata;
    rpc_stream_set_ops(down, &relay_stream_ops, r);
    rpc_stream_set_ops(up, &relay_stream_ops, r);
    if (rp)
        *rp = r;
    return 0;
}

void rpc_relay_note_down_eof(RpcRelay *r)
{
    if (r->ops->hold_until_accept && !r->up_accepted)
        r->down_eof = true;
    else if (r->up)
        (void)rpc_stream_close_write(r->up, RPC_CH_STDIN);
}

RpcStream *rpc_relay_down(const RpcRelay *r)
{
    return r->down;
}

RpcStream *rpc_relay_up(const RpcRelay *r)
{
    return r->up;
}
