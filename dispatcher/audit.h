/* SPDX-License-Identifier: MIT */
/*
 * audit.h - the audit log: one JSON object per finished call, one line each.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Audit Audit;

/* One finished call. Strings may be NULL (written as ""). Timings < 0 are omitted. */
typedef struct AuditRecord {
    int64_t time_us;         /* wall clock (CLOCK_REALTIME) when the call arrived */
    const char *source;
    const char *target;      /* as requested ("@default" when none was named) */
    const char *resolved_target;
    const char *service;
    const char *argument;
    const char *decision;    /* "allow", "deny", ... */
    const char *rule;        /* "FILE:LINE", or "" */
    int exit_code;
    double duration_ms;
    /* --debug only: */
    bool timings;
    int64_t policy_us, spawn_us, first_byte_us;
} AuditRecord;

/* Open the audit sink: append to @path (created 0600), or the stderr log when NULL.
 * Returns 0, -ENOMEM or -errno of open(2). */
int audit_new(Audit **auditp, const char *path);
Audit *audit_free(Audit *audit);

/* Format @rec as one JSON line (with '\n') into @buf. Returns its length, or -ENOBUFS. */
int audit_format(const AuditRecord *rec, char *buf, size_t size);

/* Write one line; failures are logged once and otherwise ignored. */
void audit_write(Audit *audit, const AuditRecord *rec);
