/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * VrpcDiag: the list of load errors, each one line "FILE:LINE:COL: message"
 * (or "FILE: message" when there is no position). Capped so that a huge
 * broken file cannot make the error list itself a memory problem.
 */

#include <stdbool.h>
#include <stddef.h>

#define VRPC_DIAG_MAX 200

typedef struct VrpcDiag {
    char **lines;
    size_t n_lines;
    size_t n_errors; /* counts past the cap too */
    bool oom;        /* an error could not be recorded */
} VrpcDiag;

void vrpc_diag_init(VrpcDiag *diag);
void vrpc_diag_deinit(VrpcDiag *diag);

/* vrpc_diag_add() - record an error at LINE:COL (1-based; LINE 0 = no
 * position). Never fails: on ENOMEM the error is counted and oom is set. */
void vrpc_diag_add(VrpcDiag *diag, const char *file, unsigned line, unsigned col, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/* vrpc_diag_keep_last() - forget the errors recorded after the diag held
 * N_LINES lines and N_ERRORS errors, except the most recent one. Used when a
 * file turns out not to parse: its other errors are consequences. */
void vrpc_diag_keep_last(VrpcDiag *diag, size_t n_lines, size_t n_errors);

static inline bool vrpc_diag_has_errors(const VrpcDiag *diag)
{
    return diag->n_errors > 0;
}
