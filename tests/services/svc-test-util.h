/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Helpers for the services tests: temporary services folders, installing
 * entries in them, and running a started handler to its end.
 */

#include <check.h>
#include <stdbool.h>
#include <stddef.h>

#include "leak.h"
#include "vrpc-services.h"

/* What a handler produced. */
typedef struct SvcOutput {
    char *out; /* NUL-terminated (may also hold NULs: see out_len) */
    size_t out_len;
    char *err;
    size_t err_len;
    int exit_code; /* -1 for a socket service */
} SvcOutput;

/* A fresh folder under TMPDIR (mode 0755); removed by svc_tmpdir_remove(). */
char *svc_tmpdir(void);
void svc_tmpdir_remove(char *dir);

/* Write DATA as DIR/NAME with MODE. */
void svc_write_file(const char *dir, const char *name, const char *data, int mode);
/* Copy the probe program to DIR/NAME (mode 0755). */
void svc_install_probe(const char *dir, const char *name);

/* Resolve SERVICE+ARG (ARG may be NULL) in DIR; asserts success. */
VrpcService *svc_resolve_ok(const char *dir, const char *service, const char *arg);
/* Resolve and return the error code, the reason in ERR. */
int svc_resolve_err(const char *dir, const char *service, const char *arg,
                    char err[VRPC_SERVICES_ERROR_MAX]);

/* Start SERVICE with a default call ("work" calling "dom0"); asserts success. */
void svc_start_ok(const VrpcService *service, const VrpcServiceCall *call,
                  VrpcServiceProcess *proc);

/* Feed INPUT (then EOF) to PROC, read its stdout/stderr to EOF and reap it
 * (blocking). Closes PROC's fds. */
SvcOutput svc_finish(VrpcServiceProcess *proc, const void *input, size_t input_len);
void svc_output_free(SvcOutput *o);

/* Resolve in DIR, start with CALL (NULL: default) and finish with no input. */
SvcOutput svc_run(const char *dir, const char *service, const char *arg,
                  const VrpcServiceCall *call);

/* The default call: source "work", requested target "dom0". */
extern const VrpcServiceCall svc_default_call;

/* Run SUITE; returns the exit status for main(). */
int svc_run_suite(Suite *suite);
