/* SPDX-License-Identifier: MIT */
/*
 * dtest.h - helpers shared by the dispatcher's integration tests (see dtest.c).
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "leak.h"
#include "vtest.h"

#define MAX_AGENTS 4

/* The policy every environment starts with (policy.d/50-test.yaml). */
extern const char *const test_policy;

typedef struct Env {
    char ns[64];
    char dir[64];
    char etc[128], sock[128], control[128], audit[128], log[128];
    pid_t disp;
    pid_t agent[MAX_AGENTS];
    char agent_dom[MAX_AGENTS][32];
    int n_agents;
    int n_guests;      /* a test that destroys the last guest lowers it */
    int n_guests_up;   /* at env_up */
    VtLeak *leak;      /* taken by env_up, checked by env_down */
    size_t audit_seen; /* audit lines up to this one were returned by wait_audit_line */
} Env;

long long now_ms(void);
void sleep_ms(int ms);
/* Write @path atomically (a hidden temporary file, then rename), as docs/policy.md asks. */
void write_file(const char *path, const char *text);

VtResult ctl(Env *e, const char *a1, const char *a2, const char *a3, const char *a4);
/* `vrpc-ctl status` output, or NULL. Caller frees. */
char *ctl_status(Env *e);
void wait_guests(Env *e, int n);
/* Poll until `vrpc-ctl status` has @needle (@present) or not; false after 20 s. */
bool wait_status(Env *e, const char *needle, bool present);

/* One more dispatcher option for the next disp_start() (env_up() included), or NULL. */
extern const char *dtest_disp_option;
void disp_start(Env *e);
void disp_stop(Env *e);
pid_t agent_serve(Env *e, const char *dom);
void agent_stop(Env *e, pid_t pid, int sig);
/* Reap agent @pid, killed with its domain (sim destroy). */
void agent_gone(Env *e, pid_t pid);

/* fake-agent call in @dom (options @opts, NULL-terminated, may be NULL). */
VtResult guest_call_opts(Env *e, const char *dom, const char *const *opts, const char *target,
                         const char *svc);
VtResult guest_call(Env *e, const char *dom, const char *input, const char *target,
                    const char *svc);
/* A dom0 caller on the dispatcher's local socket. */
VtResult local_call(Env *e, const char *input, const char *target, const char *svc);

/* A sim with @guests, ETC with the test policy and the shipped services, the dispatcher
 * (with @dispatcher_yaml when not NULL) started and the leak snapshot taken (e->leak). */
void env_up(Env *e, const char *tag, const char *dispatcher_yaml, const char *const *guests);
/* Stop the agents, check for leaks (calls; the dispatcher's fds, the instance's processes,
 * grants and xenstore nodes, waiting for them), stop the dispatcher (exit 0), down the sim,
 * remove the folder. */
void env_down(Env *e);

/* @line is one flat JSON object of strings, numbers and nulls. */
bool json_flat_object(const char *line);
/* The last audit line of a call of @service from @source, or NULL. Caller frees. */
char *audit_line(Env *e, const char *source, const char *service);
/* The last such line among those written after the last line this function returned, polled until it
 * appears (hang guard VT_HANG_MS): a call's line, not the line of the call before it, even when
 * the caller saw its answer before the dispatcher wrote the audit. NULL on the hang guard. */
char *wait_audit_line(Env *e, const char *source, const char *service);
void assert_alive(Env *e);
