/* SPDX-License-Identifier: MIT */
/*
 * Load error collection for configuration files (the policy set, SERVICE.yaml,
 * dispatcher.yaml). Every problem is kept as one formatted line so that, for
 * the policy, `vrpc-policy check` and the dispatcher's startup log print
 * exactly the same text. After VRPC_DIAG_MAX lines one final line says that
 * no more are reported.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/diag.h"

void vrpc_diag_init(VrpcDiag *diag)
{
    *diag = (VrpcDiag){0};
}

void vrpc_diag_deinit(VrpcDiag *diag)
{
    if (!diag)
        return;
    for (size_t i = 0; i < diag->n_lines; i++)
        free(diag->lines[i]);
    free(diag->lines);
    *diag = (VrpcDiag){0};
}

static void diag_append(VrpcDiag *diag, char *line)
{
    char **lines = realloc(diag->lines, (diag->n_lines + 1) * sizeof(*lines));

    if (!lines) {
        free(line);
        diag->oom = true;
        return;
    }
    diag->lines = lines;
    diag->lines[diag->n_lines++] = line;
}

void vrpc_diag_add(VrpcDiag *diag, const char *file, unsigned line, unsigned col, const char *fmt,
                   ...)
{
    char msg[512];
    char *text = NULL;
    va_list ap;
    int r;

    diag->n_errors++;
    if (diag->n_errors > VRPC_DIAG_MAX + 1)
        return;
    if (diag->n_errors == VRPC_DIAG_MAX + 1) {
        r = asprintf(&text, "%s: too many errors, not reporting any more", file);
    } else {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (line > 0)
            r = asprintf(&text, "%s:%u:%u: %s", file, line, col, msg);
        else
            r = asprintf(&text, "%s: %s", file, msg);
    }
    if (r < 0) {
        diag->oom = true;
        return;
    }
    diag_append(diag, text);
}

void vrpc_diag_keep_last(VrpcDiag *diag, size_t n_lines, size_t n_errors)
{
    char *last;

    /* Only when every error since then was recorded (no cap, no ENOMEM). */
    if (diag->n_lines <= n_lines + 1 || diag->n_lines - n_lines != diag->n_errors - n_errors)
        return;
    last = diag->lines[diag->n_lines - 1];
    for (size_t i = n_lines; i + 1 < diag->n_lines; i++)
        free(diag->lines[i]);
    diag->lines[n_lines] = last;
    diag->n_lines = n_lines + 1;
    diag->n_errors = n_errors + 1;
}
