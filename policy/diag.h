/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * PolicyDiag: the list of load errors, each one line "FILE:LINE:COL: message"
 * (or "FILE: message" when there is no position). Capped so that a huge
 * broken file cannot make the error list itself a memory problem.
 */

#include <stdbool.h>
#include <stddef.h>

#define POLICY_DIAG_MAX 200

typedef struct PolicyDiag {
    char **lines;
    size_t n_lines;
    size_t n_errors; /* counts past the cap too */
    bool oom;        /* an error could not be recorded */
} PolicyDiag;

void policy_diag_init(PolicyDiag *diag);
void policy_diag_deinit(PolicyDiag *diag);

/* policy_diag_add() - record an error at LINE:COL (1-based; LINE 0 = no
 * position). Never fails: on ENOMEM the error is counted and oom is set. */
void policy_diag_add(PolicyDiag *diag, const char *file, unsigned line, unsigned col,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* policy_diag_keep_last() - forget the errors recorded after the diag held
 * N_LINES lines and N_ERRORS errors, except the most recent one. Used when a
 * file turns out not to parse: its other errors are consequences. */
void policy_diag_keep_last(PolicyDiag *diag, size_t n_lines, size_t n_errors);

static inline bool policy_diag_has_errors(const PolicyDiag *diag) {
    return diag->n_errors > 0;
}
