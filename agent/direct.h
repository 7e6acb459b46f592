/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * direct.h - vrpc-agent's ends of direct guest<->guest channels (docs/protocol.md, "Direct
 * channels"). As a TARGET it serves the channels the dispatcher asks for (vrpc-direct.serve)
 * and runs the calls that come on them with a token the dispatcher registered; as a SOURCE
 * it connects to a channel when the dispatcher redirects one of its local calls there.
 */

#include "agent.h"

typedef struct AgentDirect AgentDirect;

int direct_init(Agent *a);
/* Close every channel (shutdown, or the dom0 connection is lost: the dispatcher forgets
 * its channels then). */
void direct_close_all(Agent *a);
void direct_free(Agent *a);

/* A control call from the dispatcher (VRPC_CALL_F_CONTROL on the dom0 connection). */
void direct_control_call(Agent *a, RpcStream *s, const RpcCall *call);

/* The dispatcher redirected local call @down (unanswered, stdin held; @down_eof: its stdin
 * EOF already arrived) to a direct channel, @reason its redirect text. Joins @down to a
 * stream on that channel, or falls back through dom0. */
void direct_redirect(Agent *a, RpcStream *down, bool down_eof, const char *reason);
