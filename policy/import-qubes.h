/* SPDX-License-Identifier: MIT */
#pragma once

/* Conversion of a Qubes qrexec policy (files or a whole policy.d folder) into
 * vrpc policy YAML. */

#include <stdbool.h>
#include <stdio.h>

#include "vrpc-policy.h"

typedef struct PolicyImportOptions {
    /* Skip the lines vrpc cannot express (@dispvm tokens, !compat-4.0),
     * reporting each, instead of failing. */
    bool skip_unconvertible;
    /* Most bytes read over all files, counting each inclusion (an include
     * tree can repeat files); 0: the default, 64 MiB. */
    size_t max_bytes;
} PolicyImportOptions;

typedef struct PolicyImportStats {
    int problems; /* lines or files that made the conversion fail */
    int skipped;  /* lines skipped with skip_unconvertible */
    int notes;    /* conversions worth a look (reported on stderr, not failures) */
    size_t rules; /* rules written */
} PolicyImportStats;

/*
 * policy_import_qubes_memory() - convert a tree of in-memory files. TREE
 * holds files named by their path relative to the policy folder
 * ("30-user.policy", "include/admin-global-ro"). TOP lists the files to
 * convert, in order; TOP == NULL converts the folder as qrexec reads it
 * (every root-level NAME.policy in name order). !include, !include-dir and
 * !include-service are resolved in TREE with qrexec's rules. Problems go to
 * ERR as "FILE:LINE: message"; OUT gets the YAML only when there was none.
 * OPTS and STATSP may be NULL. Returns the number of problems (0: converted),
 * or -ENOMEM / -EIO.
 */
int policy_import_qubes_memory(const VrpcPolicyText *tree, size_t n_tree, const char *const *top,
                               size_t n_top, const PolicyImportOptions *opts, FILE *out, FILE *err,
                               PolicyImportStats *statsp);

/*
 * policy_import_qubes_paths() - like policy_import_qubes_memory(), from the
 * file system: each of PATHS is a policy.d folder (its *.policy files in name
 * order), one file (includes resolve in its folder), or "-" (standard input;
 * includes resolve in the current folder). Include paths must stay inside
 * that folder; an absolute path under /etc/qubes/policy.d is read from the
 * same place in it. Returns the number of problems, or -ENOMEM / -EIO.
 */
int policy_import_qubes_paths(const char *const *paths, size_t n_paths,
                              const PolicyImportOptions *opts, FILE *out, FILE *err,
                              PolicyImportStats *statsp);
