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

/* Events of the dom0 side of a relayed call, from the dom0 connection's callbacks; no-ops
 * (on_data: consumed) for a stream that is not a relay's. */
void local_relay_on_accept(RpcStream *s);
size_t local_relay_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len);
void local_relay_on_eof(RpcStream *s, RpcChannel ch);
void local_relay_on_exit(RpcStream *s, int32_t code, bool refused, const char *reason);
void local_relay_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason);
void local_relay_on_writable(RpcStream *s);
void local_relay_on_stream_free(RpcStream *s);
