/* SPDX-License-Identifier: MIT */
/*
 * sched-mode.h - the dispatcher's scheduling policy (--sched): SCHED_OTHER, SCHED_BATCH, or
 * chosen by what the daemon carries (auto).
 */
#ifndef VRPC_DISPATCHER_SCHED_MODE_H
#define VRPC_DISPATCHER_SCHED_MODE_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher.h"

typedef enum SchedMode { SCHED_MODE_OTHER, SCHED_MODE_BATCH, SCHED_MODE_AUTO } SchedMode;

typedef struct SchedAuto SchedAuto;

/* The mode named @name ("other", "batch", "auto"), or -1. */
int sched_mode_parse(const char *name);

/* Set the policy of @mode for this process (auto starts as SCHED_BATCH) and, for auto, watch
 * the bytes @d's connections carry from a prepare source of @d->loop: SCHED_OTHER while they
 * carry bulk data, SCHED_BATCH again once they have not for a while. Returns 0 (*@sp NULL
 * unless auto) or -errno; auto where the policy cannot be changed logs that and returns 0
 * with *@sp NULL (the daemon keeps the policy it has). */
int sched_start(Dispatcher *d, SchedMode mode, SchedAuto **sp);

SchedAuto *sched_free(SchedAuto *s);

#endif
