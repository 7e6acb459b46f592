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
