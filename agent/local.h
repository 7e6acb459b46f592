/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * local.h - the agent's local callers: vrpc-call clients on the Unix socket, whose calls are
 * relayed to dom0 as streams of the dom0 connection.
 */

#include "agent.h"

/* Listen on a->socket_path (replacing a stale socket, refusing a live one) and accept
 * clients on the loop. Returns 0 or a negative errno. */
int local_listen(Agent *a);

/* Shutdown: free every client (their calls are reset), stop listening and remove the
 * socket. */
void local_stop(Agent *a);

/* Forward local call @down (we are its HANDLER, unanswered, no ops) to dom0 as a new stream
 * with CALL @flags and @call_id (a fallback from a direct channel: VRPC_CALL_F_NO_DIRECT and
 * the dispatcher's id of the attempt); @down_eof: its stdin EOF already arrived. Answers
 * @down itself on failure. */
void local_forward(Agent *a, RpcStream *down, bool down_eof, uint32_t flags, uint64_t call_id);
