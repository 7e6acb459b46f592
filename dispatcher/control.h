/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control socket that vrpc-ctl talks to (mode 0600).
 *
 * Line protocol, one command per connection:
 *   "status\n"                    -> "guest NAME domid N calls-in-flight K calls-total T\n"
 *                                    per connected guest, then
 *                                    "total guests G calls-in-flight K calls-total T refused R\n"
 *   "stats\n"                     -> "guest NAME domid N events-sent S events-consumed C
 *                                    frames-sent F frames-received R\n" per connected
 *                                    guest: its vchan's event counters (sent to the agent,
 *                                    consumed from it) and its connection's frame counters
 *   "wait-guests COUNT TIMEOUT_MS\n" -> "ok\n" once COUNT guests are connected,
 *                                    "timeout\n" after TIMEOUT_MS
 *   anything else                 -> "error: ...\n"
 * The server closes the connection after its answer.
 */
#pragma once

#include "dispatcher.h"

#define CONTROL_LINE_MAX 128
#define CONTROL_CLIENTS_MAX 64

/* Listen on @path. Returns 0, or -errno (see rpc_unix_listen()). */
int control_new(Control **cp, Dispatcher *d, const char *path);
/* Stop listening, drop the clients and unlink the socket. */
Control *control_free(Control *c);
/* Re-check the wait-guests waiters. */
void control_guests_changed(Control *c);
