/* SPDX-License-Identifier: MIT */
/*
 * audit.h - the audit log: one JSON object per finished call, one line each.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Audit Audit;

/* How a call ended (the "end" field; docs/man/vrpc-dispatcher.8, AUDIT LOG). */
typedef enum AuditEnd {
    AUDIT_END_EXIT = 0,  /* a handler ran; exit is its status */
    AUDIT_END_REFUSED,   /* refused before a handler ran: 125, 126 or 127 */
    AUDIT_END_TIMEOUT,   /* the service's timeout killed the handler (exit 125) */
    AUDIT_END_CANCELLED, /* the caller went away first: no exit status (null) */
    AUDIT_END_ABORTED,   /* the target side failed mid-call: exit 125 */
    /* Direct calls only (the agents report the end, route.c): */
    AUDIT_END_UNCONFIRMED, /* only the source's agent reported the end: exit is its word */
    AUDIT_END_MISMATCH,    /* the two agents' reports differ: exit is the source's word */
} AuditEnd;

/* One finished call. Strings may be NULL (written as ""). Timings < 0 are written null. */
typedef struct AuditRecord {
    int64_t time_us; /* wall clock (CLOCK_REALTIME) when the call arrived */
    const char *source;
    const char *target;          /* as requested ("@default" when none was named) */
    const char *resolved_target; /* where the call went; "" when it went nowhere */
    const char *service;
    const char *argument;
    const char *policy;   /* the policy's action: "allow", "deny", "ask", "none" */
    const char *answer;   /* ask: the program's first line; "" otherwise */
    const char *decision; /* what was done: "allow" or "deny" */
    const char *reason;   /* why a call was denied or ended early; "" */
    const char *rule;     /* "FILE:LINE", "default" (no rule matched), "none" */
    AuditEnd end;
    int exit_code;       /* < 0: none (written null) */
    int64_t duration_us; /* arrival to end */
    /* Stages, from the call's arrival: */
    int64_t policy_us, ask_us, spawn_us, first_byte_us;
    /* Calls to a guest: "relay" (through dom0) or "direct" (a direct channel); NULL: no
     * field. fallback: why a call that could have gone direct was relayed; NULL: none. */
    const char *path;
    const char *fallback;
    /* Direct calls: whose end report the line rests on, "both", "target", "source" or
     * "none"; NULL: no field. */
    const char *reported_by;
} AuditRecord;

/* "exit", "refused", "timeout", "cancelled", "aborted", "unconfirmed", "mismatch". */
const char *audit_end_name(AuditEnd end);

/* Open the audit sink: append to @path (created 0600), or the stderr log when NULL.
 * Returns 0, -ENOMEM or -errno of open(2). */
int audit_new(Audit **auditp, const char *path);
Audit *audit_free(Audit *audit);

/* Format @rec as one JSON line (with '\n') into @buf. Returns its length, or -ENOBUFS. */
int audit_format(const AuditRecord *rec, char *buf, size_t size);

/* Write one line; failures are logged once and otherwise ignored. */
void audit_write(Audit *audit, const AuditRecord *rec);
