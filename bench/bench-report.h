/* SPDX-License-Identifier: MIT */
/* bench-report.h - what every vrpc-bench subcommand takes besides its own options:
 * --load N (N CPU-bound co-runners for the whole run, as on a busy dom0) and --json (one JSON
 * object per row on stdout, the human table moved to stderr). */
#pragma once

#include <stdbool.h>

/* bench_report_take_opts() - removes --load N / --load=N and --json from @argv (*@argcp
 * entries, argv[0] kept), so each subcommand's own parser never sees them, then starts the
 * co-runners and, with --json, moves the human output to stderr. Returns -1 to go on, or 2
 * after a one-line error on stderr (a bad N, a failed fork). Call once, before any output. */
int bench_report_take_opts(int *argcp, char **argv);

/* bench_report_load() - the number of co-runners running (the N of --load, 0 without). */
int bench_report_load(void);

/* bench_report_json() - whether --json was given. */
bool bench_report_json(void);

/* bench_row() - with --json, prints {"bench": @bench, "row": @row, "value": @value,
 * "unit": @unit} as one line on the real stdout and flushes it; without, does nothing (the
 * human table is each benchmark's own). @bench, @row and @unit are plain identifiers; a
 * non-finite @value is printed as null. */
void bench_row(const char *bench, const char *row, double value, const char *unit);

/* bench_report_stop() - kills and reaps the co-runners (also run at exit). */
void bench_report_stop(void);
