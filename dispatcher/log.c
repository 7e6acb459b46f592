/* SPDX-License-Identifier: MIT */
/*
 * log.c - the dispatcher's logger. Every line goes to stderr as "vrpc-dispatcher: LEVEL: msg",
 * one write(2) per line so that lines from concurrent processes do not interleave. librpc and
 * the vchan library log through the same sink, so their connection-close reasons (protocol
 * violations, quotas) appear with the dispatcher's own lines.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "librpc/rpc.h"
#include "vchan/vchan.h"

static int log_level = LOG_INFO;

void dlog_set_level(int level)
{
    log_level = level;
}

int dlog_get_level(void)
{
    return log_level;
}

bool dlog_enabled(int level)
{
    return level <= log_level;
}

int dlog_level_from_string(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"error", LOG_ERR}, {"warning", LOG_WARNING}, {"info", LOG_INFO},
                  {"debug", LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcmp(s, levels[i].name) == 0)
            return levels[i].level;
    return -EINVAL;
}

static const char *level_name(int level)
{
    switch (level) {
    case LOG_EMERG:
    case LOG_ALERT:
    case LOG_CRIT:
    case LOG_ERR:
        return "error";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
    case LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

static void vlog_line(int level, const char *fmt, va_list ap)
{
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "vrpc-dispatcher: %s: ", level_name(level));
    int m;

    if (n < 0)
        return;
    m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    /* Best effort: a full stderr must not stop the daemon. */
    if (write(STDERR_FILENO, buf, (size_t)n) < 0)
        return;
}

void dlog(int level, const char *fmt, ...)
{
    va_list ap;

    if (!dlog_enabled(level))
        return;
    va_start(ap, fmt);
    vlog_line(level, fmt, ap);
    va_end(ap);
}

static bool library_quiet;

void dlog_library_quiet(bool quiet)
{
    library_quiet = quiet;
}

static void library_sink(int level, const char *msg, void *userdata)
{
    dlog(library_quiet && level < LOG_DEBUG ? LOG_DEBUG : level, "%s", msg);
}

void dlog_install_library_sinks(void)
{
    rpc_set_log(library_sink, NULL);
    vchan_set_log(library_sink, NULL);
}
