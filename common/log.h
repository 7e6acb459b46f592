/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logger of vrpc's programs: one line per event on stderr,
 * "PROGRAM: LEVEL: message", with a level threshold. The libraries (librpc, vchan) never
 * print: a program points their log sinks at vrpc_log_sink().
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

/* Names the program in every line (default "vrpc"). @program must outlive the logger. */
void vrpc_log_init(const char *program);
/* Messages above this syslog level are dropped (default LOG_INFO). */
void vrpc_log_set_level(int level);
int vrpc_log_get_level(void);
bool vrpc_log_enabled(int level);
/* "error", "warning", "info" or "debug" -> syslog level; -EINVAL otherwise. */
int vrpc_log_level_from_string(const char *s);
void vrpc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vrpc_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* A library's log sink (the signature of RpcLogFn and VchanLogFn). */
void vrpc_log_sink(int level, const char *msg, void *userdata);
/* While @quiet, the libraries' lines are logged at debug level: for an operation whose
 * outcome the program logs itself, rate-limited. */
void vrpc_log_library_quiet(bool quiet);
