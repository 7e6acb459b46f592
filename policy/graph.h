/* SPDX-License-Identifier: MIT */
#pragma once

/* The Graphviz view of a compiled policy, for `vrpc-policy graph`. */

#include <stdio.h>

#include "vrpc-policy.h"

/*
 * policy_graph_write() - write a dot digraph of who may call what: one node
 * per domain the configuration names (plus dom0), one edge per source, resolved
 * target and action (allow solid, ask dashed), labelled with the services.
 * Returns 0, -ENOMEM or -EIO (write error).
 */
int policy_graph_write(const VrpcPolicy *policy, FILE *out);
