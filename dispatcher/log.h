/* SPDX-License-Identifier: MIT */
/*
 * log.h - the dispatcher's stderr logger: one line per event with a level.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

/* Messages above this syslog level are dropped (default LOG_INFO). */
void dlog_set_level(int level);
int dlog_get_level(void);
/* "error", "warning", "info" or "debug" -> syslog level; -EINVAL otherwise. */
int dlog_level_from_string(const char *s);
bool dlog_enabled(int level);
void dlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Install this logger as the sink of librpc and the vchan library. */
void dlog_install_library_sinks(void);
/* While @quiet, the libraries' lines are logged at debug level: for an operation whose
 * outcome the caller logs itself, rate-limited. */
void dlog_library_quiet(bool quiet);
