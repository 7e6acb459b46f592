/* SPDX-License-Identifier: MIT */
/*
 * guests.h - find guest agents through xenstore and keep one connection to each.
 */
#pragma once

#include "dispatcher.h"

/*
 * Open xenstore, watch @introduceDomain, @releaseDomain and /local/domain (for
 * N/data/vrpc-ready), register the watch fd with d->loop and connect to every agent that is
 * already announced. Returns 0, -ENOMEM, or -errno of xs_open()/xs_watch().
 */
int guests_new(Guests **gp, Dispatcher *d);
Guests *guests_free(Guests *g);

/* The connection to the agent of @domid closed before it was ready (its vchan broke, or the
 * HELLO failed): try again after the guest's backoff. @g may be NULL (shutting down). */
void guests_connection_lost(Guests *g, int domid);
