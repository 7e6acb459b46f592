/* SPDX-License-Identifier: MIT */
/*
 * stream-sm.h - private: the per-stream state machine, pure (no I/O, no buffers). The
 * connection feeds it every frame received on a stream (rpc_stream_sm_rx) and every action
 * the application asks for (rpc_stream_sm_tx); it answers whether the event is legal in the
 * current state, to be ignored, or a violation, and when the stream is finished.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "rpc.h"

/* Answer to the call, from either side's point of view. */
typedef enum RpcAnswer {
    RPC_ANSWER_NONE = 0,
    RPC_ANSWER_ACCEPTED,
    RPC_ANSWER_REFUSED,
    RPC_ANSWER__COUNT,
} RpcAnswer;

/* Events. RX events are frames from the peer; TX events are our actions. */
typedef enum RpcSmEvent {
    RPC_SM_ACCEPT = 0,
    RPC_SM_REFUSE,
    RPC_SM_EXIT,
    RPC_SM_DATA, /* with a channel */
    RPC_SM_EOF,  /* with a channel */
    RPC_SM_RESET,
    RPC_SM_RESET_ACK,
    RPC_SM_WINDOW,
    RPC_SM__COUNT,
} RpcSmEvent;

typedef enum RpcSmResult {
    RPC_SM_OK = 0,    /* legal: act on it */
    RPC_SM_DISCARD,   /* legal but moot (stream being reset or already answered): drop it */
    RPC_SM_VIOLATION, /* the peer broke the protocol: close the connection */
} RpcSmResult;

typedef struct RpcStreamSm {
    bool caller; /* we opened the stream */
    RpcAnswer answer;
    uint8_t in_eof;  /* bit per channel: the peer half-closed it */
    uint8_t out_eof; /* bit per channel: we half-closed it */
    bool exit_done;  /* handler: EXIT sent; caller: EXIT received */
    bool reset_sent; /* we sent RESET and wait for the peer's RESET/ACK */
    bool done;       /* finished: free the stream */
} RpcStreamSm;

void rpc_stream_sm_init(RpcStreamSm *sm, bool caller);

/* A frame from the peer. *@whyp gets a static reason for VIOLATION. */
RpcSmResult rpc_stream_sm_rx(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch, const char **whyp);

/* An action of ours. Returns 0 (state updated) or the -errno documented in rpc.h:
 * -EBADF wrong channel for this side, -EPERM action of the other side, -EPROTO not yet
 * accepted, -EPIPE channel/stream already closed for sending, -EALREADY already answered
 * or exited, -ENOTCONN stream being reset or done. */
int rpc_stream_sm_tx(RpcStreamSm *sm, RpcSmEvent ev, RpcChannel ch);

/* True if the application may still send on @ch (rpc_stream_sm_tx(DATA) would be 0). */
bool rpc_stream_sm_can_send(const RpcStreamSm *sm, RpcChannel ch);

/* The handler has completed (exit or refusal sent), or the caller has (exit received). */
bool rpc_stream_sm_completed(const RpcStreamSm *sm);

const char *rpc_sm_event_name(RpcSmEvent ev);
const char *rpc_answer_name(RpcAnswer a);
