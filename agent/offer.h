/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * offer.h - the agent's link to dom0: the vchan it offers at /local/domain/N/data/vrpc,
 * announced by data/vrpc-ready, the re-offer when the dispatcher goes away or the
 * announcement is changed under us, and the calls the dispatcher opens on it (services).
 */

#include "agent.h"

/* Create the loop sources of the offer (re-offer, retry and quiet timers). Returns 0 or a
 * negative errno from the loop. */
int offer_init(Agent *a);

/* Offer the first vchan and watch data/vrpc-ready. Logs its own errors; returns 0 or a
 * negative errno. */
int offer_start(Agent *a);

/* Shutdown: close the dom0 connection, free it and the one awaiting its re-offer, remove
 * the announcement and free the sources of offer_init(). */
void offer_stop(Agent *a);
