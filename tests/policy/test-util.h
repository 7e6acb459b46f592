/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Helpers shared by the policy tests: private temporary folders (safe for
 * parallel runs), file writing and running a program with captured output. Leaks are
 * checked with tests/support/leak.h, which this header brings in.
 */

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "leak.h"
#include "vrpc-policy.h"

/* A fresh folder inside the test program's base folder under $TMPDIR (or
 * /tmp), which tu_run_suite() removes even after failures; the caller frees
 * the returned string. */
char *tu_mkdtemp(void);
/* Remove PATH and everything below it; silent if it does not exist. */
void tu_rmrf(const char *path);
/* Write CONTENT to DIR/REL atomically (temp file + rename), creating DIR/REL's
 * parent folder if needed. */
void tu_write(const char *dir, const char *rel, const char *content);
/* tu_write() without the rename: open, write and close DIR/REL itself. */
void tu_write_in_place(const char *dir, const char *rel, const char *content);
/* mkdir DIR/REL. */
void tu_mkdir(const char *dir, const char *rel);

typedef struct TuRun {
    int status; /* exit code, or 128 + signal */
    char *out;
    char *err;
} TuRun;

/* Run ARGV (argv[0] is a path) with stdin from /dev/null; capture everything. */
void tu_run(char *const argv[], TuRun *run);
void tu_run_free(TuRun *run);

/* Load one in-memory policy set: FILES as {name, text} pairs, DOMAINS may be NULL. */
int tu_load(VrpcPolicy **policyp, const char *const *names, const char *const *texts,
            size_t n_files, const char *domains);

/* Run a suite, print the results, return an exit code for main(). */
int tu_run_suite(Suite *suite);
