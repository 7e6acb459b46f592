/* SPDX-License-Identifier: MIT */
/*
 * audit.c - the dispatcher's audit log. Each finished call becomes one JSON object on one
 * line with always the same fields, in this order: time (RFC 3339, UTC, microseconds),
 * source, target, resolved_target, service, argument, policy, answer, decision, reason,
 * rule, end, exit, duration_ms, policy_us, ask_us, spawn_us, first_byte_us, then path,
 * fallback and reported_by where they apply (the format and
 * every value are documented in vrpc-dispatcher(8), AUDIT LOG). Strings are escaped
 * completely (every byte outside printable ASCII as \u00XX), so that a line is always valid
 * JSON whatever a name holds. Lines go to --audit FILE (appended with one write(2) each) or
 * to the stderr log.
 */
#include "audit.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct Audit {
    int fd; /* -1: the log */
    bool failed;
};

int audit_new(Audit **auditp, const char *path)
{
    Audit *a = calloc(1, sizeof(*a));

    if (!a)
        return -ENOMEM;
    a->fd = -1;
    if (path) {
        a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (a->fd < 0) {
            int r = -errno;
            free(a);
            return r;
        }
    }
    *auditp = a;
    return 0;
}

Audit *audit_free(Audit *a)
{
    if (!a)
        return NULL;
    if (a->fd >= 0)
        close(a->fd);
    free(a);
    return NULL;
}

const char *audit_end_name(AuditEnd end)
{
    switch (end) {
    case AUDIT_END_EXIT:
        return "exit";
    case AUDIT_END_REFUSED:
        return "refused";
    case AUDIT_END_TIMEOUT:
        return "timeout";
    case AUDIT_END_CANCELLED:
        return "cancelled";
    case AUDIT_END_ABORTED:
        return "aborted";
    case AUDIT_END_UNCONFIRMED:
        return "unconfirmed";
    case AUDIT_END_MISMATCH:
        return "mismatch";
    }
    return "unknown";
}

typedef struct Out {
    char *buf;
    size_t size, len;
    bool overflow;
} Out;

static void out_raw(Out *o, const char *s, size_t n)
{
    if (o->overflow || o->size - o->len <= n) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void out_fmt(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_fmt(Out *o, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        o->overflow = true;
        return;
    }
    out_raw(o, tmp, (size_t)n);
}

/* Printable ASCII that JSON takes as it is. */
static bool json_plain(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}

/* ,"KEY":"VALUE" (no comma if @first), VALUE escaped; runs of plain characters are copied
 * whole (one line per call: the dispatcher writes it before the call's EXIT leaves). */
static void out_str(Out *o, const char *key, const char *s, bool first)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");

    if (!first)
        out_raw(o, ",", 1);
    out_raw(o, "\"", 1);
    out_raw(o, key, strlen(key));
    out_raw(o, "\":\"", 3);
    while (*p) {
        size_t n = 0;
        while (json_plain(p[n]))
            n++;
        if (n) {
            out_raw(o, (const char *)p, n);
            p += n;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            out_raw(o, e, 2);
        } else {
            char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            out_raw(o, u, 6);
        }
        p++;
    }
    out_raw(o, "\"", 1);
}

/* A stage time: microseconds, or null when the call never reached that stage. */
static void out_us(Out *o, const char *key, int64_t us)
{
    if (us >= 0)
        out_fmt(o, ",\"%s\":%lld", key, (long long)us);
    else
        out_fmt(o, ",\"%s\":null", key);
}

int audit_format(const AuditRecord *rec, char *buf, size_t size)
{
    Out o = {.buf = buf, .size = size};
    time_t secs = (time_t)(rec->time_us / 1000000);
    struct tm tm;
    char ts[64];

    if (size == 0)
        return -ENOBUFS;
    buf[0] = '\0';
    gmtime_r(&secs, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(rec->time_us % 1000000));
    out_raw(&o, "{", 1);
    out_str(&o, "time", ts, true);
    out_str(&o, "source", rec->source, false);
    out_str(&o, "target", rec->target, false);
    out_str(&o, "resolved_target", rec->resolved_target, false);
    out_str(&o, "service", rec->service, false);
    out_str(&o, "argument", rec->argument, false);
    out_str(&o, "policy", rec->policy, false);
    out_str(&o, "answer", rec->answer, false);
    out_str(&o, "decision", rec->decision, false);
    out_str(&o, "reason", rec->reason, false);
    out_str(&o, "rule", rec->rule, false);
    out_str(&o, "end", audit_end_name(rec->end), false);
    if (rec->exit_code >= 0)
        out_fmt(&o, ",\"exit\":%d", rec->exit_code);
    else
        out_raw(&o, ",\"exit\":null", 12);
    out_fmt(&o, ",\"duration_ms\":%.3f",
            rec->duration_us > 0 ? (double)rec->duration_us / 1000.0 : 0.0);
    out_us(&o, "policy_us", rec->policy_us);
    out_us(&o, "ask_us", rec->ask_us);
    out_us(&o, "spawn_us", rec->spawn_us);
    out_us(&o, "first_byte_us", rec->first_byte_us);
    if (rec->path)
        out_str(&o, "path", rec->path, false);
    if (rec->fallback)
        out_str(&o, "fallback", rec->fallback, false);
    if (rec->reported_by)
        out_str(&o, "reported_by", rec->reported_by, false);
    out_raw(&o, "}\n", 2);
    return o.overflow ? -ENOBUFS : (int)o.len;
}

void audit_write(Audit *a, const AuditRecord *rec)
{
    char line[4096];
    int n = audit_format(rec, line, sizeof(line));

    if (n < 0) {
        dlog(LOG_ERR, "audit: record too long, dropped");
        return;
    }
    if (!a || a->fd < 0) {
        line[n - 1] = '\0';
        dlog(LOG_INFO, "audit %s", line);
        return;
    }
    if (write(a->fd, line, (size_t)n) != n && !a->failed) {
        a->failed = true;
        dlog(LOG_ERR, "audit: cannot write the audit log: %s", strerror(errno));
    }
}
