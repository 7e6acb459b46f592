/* SPDX-License-Identifier: MIT */
/*
 * ask.h - the dispatcher's external programs: the prompt behind a policy `ask` (ask-program
 * in dispatcher.yaml) and the notification behind `notify: true` (notify-program). Both run
 * asynchronously on the dispatcher's loop; nothing here ever waits for them, except
 * ask_set_free() at shutdown.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "librpc/loop.h"
#include "vrpc-policy.h"

typedef struct AskSet AskSet;
typedef struct Ask Ask;

/* The longest first line read from the ask program (longer: an unrecognised answer). */
#define ASK_LINE_MAX 128
/* At most this many notify programs run at once, and at most ASK_NOTIFY_PER_SECOND start
 * per second: more notifications are dropped (and counted in the log). */
#define ASK_NOTIFY_RUNNING_MAX 16
#define ASK_NOTIFY_PER_SECOND 10

/* The argv of both programs (the notify program gets the decision after them). */
typedef struct AskArgs {
    const char *source;         /* the calling domain */
    const char *call;           /* SERVICE or SERVICE+ARG */
    const char *target;         /* redirect, else the named target, else "@default" */
    const char *default_target; /* the rule's default_target, or "" */
} AskArgs;

typedef enum AskVerdict {
    ASK_VERDICT_DENY = 0,   /* deny, with a reason */
    ASK_VERDICT_ALLOW,      /* "allow", program exited 0 */
    ASK_VERDICT_ALLOW_NAME, /* "allow NAME", program exited 0: NAME in name */
} AskVerdict;

/* A prompt's outcome, before it is checked against the rule (ask_decide()). */
typedef struct AskAnswer {
    AskVerdict verdict;
    char name[VRPC_POLICY_NAME_MAX + 1]; /* ALLOW_NAME: the untrusted NAME, syntax-checked */
    char text[ASK_LINE_MAX + 1];         /* the first line as written (any bytes but NUL,
                                          * for the audit log, which escapes it); "" if none */
    char reason[96];                     /* DENY: why, "ask: ..." */
} AskAnswer;

/* The answer is known. Called from the loop, outside any connection's dispatch; the Ask
 * handle is no longer valid once it is called. */
typedef void (*AskDoneFn)(const AskAnswer *answer, void *userdata);

/* A set for @loop. @ask_program / @notify_program: absolute paths or NULL (copied);
 * @timeout_ms: how long a prompt may take (notify programs are killed after it too).
 * Returns 0 or -ENOMEM. */
int ask_set_new(AskSet **setp, RpcLoop *loop, const char *ask_program, int64_t timeout_ms,
                const char *notify_program);

/* Kill every program still running (SIGKILL to its process group), reap it, free the set.
 * No callback is called. Accepts NULL; returns NULL. */
AskSet *ask_set_free(AskSet *set);

/* True when an ask program is configured. */
bool ask_set_has_program(const AskSet *set);

/*
 * Run the ask program for one call: argv SOURCE CALL TARGET DEFAULT_TARGET, stdin
 * /dev/null, stdout a pipe, stderr the dispatcher's, cwd /, a clean environment (only
 * PATH), no other fds, default signal handling, its own session and process group. @fn gets
 * the answer exactly once unless ask_cancel() comes first. Returns 0 and *askp, -ENOENT when
 * no ask program is configured, or -errno when it cannot be started (nothing is left
 * running and @fn is not called).
 */
int ask_start(AskSet *set, const AskArgs *args, AskDoneFn fn, void *userdata, Ask **askp);

/* One line per ask still waiting for its answer, for `vrpc-ctl status`:
 * "ask SOURCE CALL TARGET pending-ms MS pid PID". */
void ask_set_status(const AskSet *set, FILE *f);

/* The call is gone: kill the program's process group; it is reaped when it has died. @fn
 * is never called. Accepts NULL. */
void ask_cancel(Ask *ask);

/* Run the notify program, if configured, with argv SOURCE CALL TARGET DEFAULT_TARGET
 * DECISION, stdout to /dev/null, and forget it (it is reaped when it exits, killed after the
 * timeout). Rate-limited; failures are logged. */
void ask_notify(AskSet *set, const AskArgs *args, const char *decision);

/* Parse the first line of an answer (@len bytes, no '\n'; untrusted) for a program that
 * exited 0. Fills @answer; no error return. */
void ask_parse_line(const char *untrusted_line, size_t len, AskAnswer *answer);

/*
 * The final decision for an answered prompt of @decision (an ASK made by @policy):
 * "allow" goes to the decision's target (a deny when that is @default), "allow NAME" to
 * NAME when it matches the rule's target column or default_target
 * (vrpc_policy_decision_check_target()). Returns true and the target in @targetp, or false
 * and the deny reason in *reasonp (static or pointing into @answer).
 */
bool ask_decide(const AskAnswer *answer, const VrpcPolicy *policy,
                const VrpcPolicyDecision *decision, char targetp[VRPC_POLICY_NAME_MAX + 1],
                const char **reasonp);
