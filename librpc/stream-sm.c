/* SPDX-License-Identifier: MIT */
/*
 * stream-sm.c - the per-stream state machine of the vrpc protocol. The caller (the end that
 * sent CALL) may send only stdin; the handler only an answer (ACCEPT or REFUSE), stdout,
 * stderr and one EXIT. Each direction half-closes on its own; EXIT implies EOF on stdout and
 * stderr. RESET is acknowledged, so that once both ends have freed a stream no frame for it
 * can still be in flight, and any later frame for it other than RESET/WINDOW_UPDATE is a
 * violation. Events change state here; the connection performs the actions.
 */
#include "stream-sm.h"

#include <errno.h>

#define CH_BIT(ch) ((uint8_t)(1u << (unsigned)(ch)))
#define HANDLER_CHANNELS (CH_BIT(RPC_CH_STDOUT) | CH_BIT(RPC_CH_STDERR))

static const char *const event_names[RPC_SM__COUNT] = {
    [RPC_SM_ACCEPT] = "accept",
    [RPC_SM_REFUSE] = "refuse",
    [RPC_SM_EXIT] = "exit",
    [RPC_SM_DATA] = "data",
    [RPC_SM_EOF] = "eof",
    [RPC_SM_RESET] = "reset",
    [RPC_SM_RESET_ACK] = "reset-ack",
    [RPC_SM_WINDOW] = "window-update",
};

static const char *const answer_names[RPC_ANSWER__COUNT] = {
    [RPC_ANSWER_NONE] = "pending",
    [RPC_ANSWER_ACCEPTED] = "accepted",
    [RPC_ANSWER_REFUSED] = "refused",
};

const char *rpc_sm_event_name(RpcSmEvent ev)
{
    return (unsigned)ev < RPC_SM__COUNT ? event_names[ev] : "invalid";
}

const char *rpc_answer_name(RpcAnswer a)
{
    return (unsigned)a < RPC_ANSWER__COUNT ? answer_names[a] : "invalid";
}

void rpc_stream_sm_init(RpcStreamSm *sm, bool caller)
{
    *sm = (RpcStreamSm){.caller = caller};
}

static bool valid_channel(RpcChannel ch)
{
    return ch == RPC_CH_STDIN || ch == RPC_CH_STDOUT || ch == RPC_CH_STDERR;
}

/* Caller side: frames from the handler. */
static RpcSmResult rx_caller(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch, const char **whyp)
{
    switch (ev) {
    case RPC_SM_ACCEPT:
        if (sm->reset_sent)
            return RPC_SM_DISCARD;
        if (sm->answer != RPC_ANSWER_NONE) {
            *whyp = "second answer to a call";
            return RPC_SM_VIOLATION;
        }
        sm->answer = RPC_ANSWER_ACCEPTED;
        return RPC_SM_OK;
    case RPC_SM_REFUSE:
    case RPC_SM_EXIT:
        /* A handler that completed while our RESET was in flight will not acknowledge it
         * (it freed the stream): its answer ends the stream for us too. */
        if (sm->reset_sent) {
            sm->done = true;
            return RPC_SM_DISCARD;
        }
        if (ev == RPC_SM_REFUSE) {
            if (sm->answer != RPC_ANSWER_NONE) {
                *whyp = "refusal after the call was answered";
                return RPC_SM_VIOLATION;
            }
            sm->answer = RPC_ANSWER_REFUSED;
        } else if (sm->answer != RPC_ANSWER_ACCEPTED) {
            *whyp = "exit status before the call was accepted";
            return RPC_SM_VIOLATION;
        }
        sm->exit_done = true;
        sm->in_eof |= HANDLER_CHANNELS;
        sm->out_eof |= CH_BIT(RPC_CH_STDIN);
        sm->done = true;
        return RPC_SM_OK;
    case RPC_SM_DATA:
    case RPC_SM_EOF:
        if (!valid_channel(ch) || ch == RPC_CH_STDIN) {
            *whyp = "stdin data from the handler (wrong direction)";
            return RPC_SM_VIOLATION;
        }
        if (sm->reset_sent)
            return RPC_SM_DISCARD;
        if (sm->answer != RPC_ANSWER_ACCEPTED) {
            *whyp = "output before the call was accepted";
            return RPC_SM_VIOLATION;
        }
        if (sm->in_eof & CH_BIT(ch)) {
            *whyp = "output after EOF";
            return RPC_SM_VIOLATION;
        }
        if (ev == RPC_SM_EOF)
            sm->in_eof |= CH_BIT(ch);
        return RPC_SM_OK;
    default:
        break;
    }
    *whyp = "invalid stream event";
    return RPC_SM_VIOLATION;
}

/* Handler side: frames from the caller. */
static RpcSmResult rx_handler(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch, const char **whyp)
{
    switch (ev) {
    case RPC_SM_ACCEPT:
    case RPC_SM_REFUSE:
    case RPC_SM_EXIT:
        *whyp = "answer or exit status from the caller (wrong direction)";
        return RPC_SM_VIOLATION;
    case RPC_SM_DATA:
    case RPC_SM_EOF:
        if (!valid_channel(ch) || ch != RPC_CH_STDIN) {
            /* QSB-087: a caller must never inject stdout/stderr. */
            *whyp = "stdout/stderr data from the caller (wrong direction)";
            return RPC_SM_VIOLATION;
        }
        if (sm->in_eof & CH_BIT(RPC_CH_STDIN)) {
            *whyp = "stdin after EOF";
            return RPC_SM_VIOLATION;
        }
        if (ev == RPC_SM_EOF) {
            sm->in_eof |= CH_BIT(RPC_CH_STDIN);
            if (sm->exit_done && !sm->reset_sent) {
                sm->done = true;
                return RPC_SM_DISCARD;
            }
        }
        if (sm->reset_sent || sm->exit_done)
            return RPC_SM_DISCARD;
        return RPC_SM_OK;
    default:
        break;
    }
    *whyp = "invalid stream event";
    return RPC_SM_VIOLATION;
}

RpcSmResult rpc_stream_sm_rx(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch, const char **whyp)
{
    if (sm->done) {
        *whyp = "frame on a finished stream";
        return RPC_SM_VIOLATION;
    }
    switch (ev) {
    case RPC_SM_WINDOW:
        return sm->reset_sent ? RPC_SM_DISCARD : RPC_SM_OK;
    case RPC_SM_RESET:
        /* The peer's RESET, or ours crossing it: the stream is gone either way. */
        sm->done = true;
        return RPC_SM_OK;
    case RPC_SM_RESET_ACK:
        if (!sm->reset_sent) {
            *whyp = "reset acknowledgement without a reset";
            return RPC_SM_VIOLATION;
        }
        sm->done = true;
        return RPC_SM_OK;
    default:
        break;
    }
    return sm->caller ? rx_caller(sm, ev, ch, whyp) : rx_handler(sm, ev, ch, whyp);
}

static bool our_channel(const RpcStreamSm *sm, RpcChannel ch)
{
    return sm->caller ? ch == RPC_CH_STDIN : (ch == RPC_CH_STDOUT || ch == RPC_CH_STDERR);
}

int rpc_stream_sm_tx(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch)
{
    if (sm->done || sm->reset_sent)
        return -ENOTCONN;
    switch (ev) {
    case RPC_SM_ACCEPT:
    case RPC_SM_REFUSE:
        if (sm->caller)
            return -EPERM;
        if (sm->answer != RPC_ANSWER_NONE)
            return -EALREADY;
        if (ev == RPC_SM_ACCEPT) {
            sm->answer = RPC_ANSWER_ACCEPTED;
            return 0;
        }
        sm->answer = RPC_ANSWER_REFUSED;
        sm->exit_done = true;
        sm->out_eof |= HANDLER_CHANNELS;
        if (sm->in_eof & CH_BIT(RPC_CH_STDIN))
            sm->done = true;
        return 0;
    case RPC_SM_EXIT:
        if (sm->caller)
            return -EPERM;
        if (sm->exit_done)
            return -EALREADY;
        if (sm->answer != RPC_ANSWER_ACCEPTED)
            return -EPROTO;
        sm->exit_done = true;
        sm->out_eof |= HANDLER_CHANNELS;
        if (sm->in_eof & CH_BIT(RPC_CH_STDIN))
            sm->done = true;
        return 0;
    case RPC_SM_DATA:
    case RPC_SM_EOF:
        if (!valid_channel(ch))
            return -EINVAL;
        if (!our_channel(sm, ch))
            return -EBADF;
        if (!sm->caller && sm->answer == RPC_ANSWER_NONE)
            return -EPROTO;
        if (sm->out_eof & CH_BIT(ch))
            return ev == RPC_SM_EOF ? -EALREADY : -EPIPE;
        if (ev == RPC_SM_EOF)
            sm->out_eof |= CH_BIT(ch);
        return 0;
    case RPC_SM_RESET:
        sm->reset_sent = true;
        return 0;
    case RPC_SM_RESET_ACK:
        /* We acknowledge the peer's RESET: the stream is gone. */
        sm->done = true;
        return 0;
    default:
        return -EINVAL;
    }
}

bool rpc_stream_sm_can_send(const RpcStreamSm *sm, RpcChannel ch)
{
    RpcStreamSm copy = *sm;
    return rpc_stream_sm_tx(&copy, RPC_SM_DATA, ch) == 0;
}

bool rpc_stream_sm_completed(const RpcStreamSm *sm)
{
    return sm->exit_done;
}
