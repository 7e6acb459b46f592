/* SPDX-License-Identifier: MIT */
/*
 * log.c - see log.h. Each line is formatted whole and written with one write(2), so lines
 * of concurrent threads or processes sharing stderr never interleave; a full or closed
 * stderr never stops the program.
 */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_program = "vrpc";
static int log_level = LOG_INFO;
static bool library_quiet;

void vrpc_log_init(const char *program)
{
    if (program && *program)
        log_program = program;
}

void vrpc_log_set_level(int level)
{
    log_level = level;
}

int vrpc_log_get_level(void)
{
    return log_level;
}

bool vrpc_log_enabled(int level)
{
    return level <= log_level;
}

int vrpc_log_level_from_string(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};
    for (size_t i = 0; s && i < sizeof(levels) / sizeof(levels[0]); i++)
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

void vrpc_vlog(int level, const char *fmt, va_list ap)
{
    char buf[2048];
    int n, m;

    if (!vrpc_log_enabled(level))
        return;
    n = snprintf(buf, sizeof(buf), "%s: %s: ", log_program, level_name(level));
    if (n < 0)
        return;
    m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    if (write(STDERR_FILENO, buf, (size_t)n) < 0)
        return; /* best effort */
}

void vrpc_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vrpc_vlog(level, fmt, ap);
    va_end(ap);
}

void vrpc_log_sink(int level, const char *msg, void *userdata)
{
    (void)userdata;
    vrpc_log(library_quiet && level < LOG_DEBUG ? LOG_DEBUG : level, "%s", msg);
}

void vrpc_log_library_quiet(bool quiet)
{
    library_quiet = quiet;
}
