/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * vrpc-policy: the public interface of the vrpc policy engine.
 *
 * A configuration folder (default /etc/vrpc) holds policy.d/NAME.yaml and
 * domains.yaml. vrpc_policy_load() parses it once into an immutable, indexed,
 * reference-counted VrpcPolicy; vrpc_policy_evaluate() decides calls against
 * such a snapshot without parsing or allocating. A VrpcPolicyHolder keeps the
 * current snapshot and swaps in a new one on reload; a VrpcPolicyWatch turns
 * inotify events on the folder into reloads for an event loop.
 *
 * Fail closed: a policy whose files have any error still loads, as a policy
 * that denies every call with the reason "invalid policy".
 *
 * Return conventions: negative errno for system errors, 0 for success, and the
 * positive VRPC_POLICY_E_* codes below for outcomes the caller must handle.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/names.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VRPC_POLICY_EXPORT __attribute__((visibility("default")))

/* Longest service name, argument, domain, tag or type name, in bytes. */
#define VRPC_POLICY_NAME_MAX VRPC_NAME_MAX
/* Longest user name in a rule. */
#define VRPC_POLICY_USER_MAX VRPC_USER_MAX
/* The default configuration folder. */
#define VRPC_POLICY_DEFAULT_ETC "/etc/vrpc"

enum {
    /* The policy has errors: the returned policy denies every call. */
    VRPC_POLICY_E_INVALID = 1,
    /* The request's service name is not [A-Za-z0-9._-]{1,64}. */
    VRPC_POLICY_E_SERVICE,
    /* The request's argument is not [A-Za-z0-9._+-]{0,64}. */
    VRPC_POLICY_E_ARGUMENT,
    /* The request's source is not a domain name. */
    VRPC_POLICY_E_SOURCE,
    /* The request's target is not a domain name, @adminvm or @default. */
    VRPC_POLICY_E_TARGET,
};

typedef enum VrpcPolicyAction {
    VRPC_POLICY_DENY = 0,
    VRPC_POLICY_ALLOW,
    VRPC_POLICY_ASK,
} VrpcPolicyAction;

typedef struct VrpcPolicy VrpcPolicy;
typedef struct VrpcPolicyHolder VrpcPolicyHolder;
typedef struct VrpcPolicyWatch VrpcPolicyWatch;

/* One in-memory file for vrpc_policy_load_texts(). */
typedef struct VrpcPolicyText {
    const char *name; /* used in error messages and rule locations */
    const char *data; /* need not be NUL-terminated */
    size_t size;
} VrpcPolicyText;

/*
 * One call to decide. source comes from the transport (which connection the
 * request arrived on), never from the message; the other fields come from the
 * calling domain and are validated by vrpc_policy_evaluate() before use.
 */
typedef struct VrpcPolicyRequest {
    const char *source;             /* domain name; "dom0" or "@adminvm" for dom0 */
    const char *untrusted_target;   /* name, "dom0", "@adminvm", or "@default"/NULL */
    const char *untrusted_service;  /* service name, without argument */
    const char *untrusted_argument; /* argument; NULL or "" for none */
} VrpcPolicyRequest;

/*
 * The outcome of one evaluation. The const char * fields point into the
 * evaluated policy and stay valid while the caller holds a reference to it.
 */
typedef struct VrpcPolicyDecision {
    VrpcPolicyAction action;
    /* Resolved target: the redirect or the requested target ("dom0" for
     * @adminvm). Empty on deny; "@default" for an ask that leaves the target
     * to whoever answers. */
    char target[VRPC_POLICY_NAME_MAX + 1];
    const char *user;           /* run the handler as this user; NULL: not set */
    const char *default_target; /* ask only: suggested target; NULL: not set */
    bool notify;                /* the rule's notify, else true on deny only */
    const char *reason;         /* static text for the log */
    const char *rule_file;      /* file of the deciding rule; NULL: no rule */
    unsigned rule_line;         /* line of the deciding rule; 0: no rule */
    /* For vrpc_policy_decision_check_target(): 1 + the deciding rule's position
     * in the evaluated policy; 0: no rule. */
    size_t rule_index;
} VrpcPolicyDecision;

/*
 * vrpc_policy_load() - load ETC_DIR/policy.d/NAME.yaml and ETC_DIR/domains.yaml.
 * Files are read in strcmp() order of their names; hidden files and names not
 * ending in ".yaml" are ignored; a missing domains.yaml means no metadata.
 * Returns 0 and a valid policy in *policyp; VRPC_POLICY_E_INVALID and a
 * deny-everything policy carrying the errors in *policyp; -EINVAL for a NULL
 * argument or -ENOMEM, with *policyp untouched.
 */
VRPC_POLICY_EXPORT int vrpc_policy_load(const char *etc_dir, VrpcPolicy **policyp);

/*
 * vrpc_policy_load_texts() - like vrpc_policy_load(), from memory: FILES in
 * the given order, DOMAINS (may be NULL) as domains.yaml.
 * Returns 0, VRPC_POLICY_E_INVALID (see vrpc_policy_load()), -EINVAL or -ENOMEM.
 */
VRPC_POLICY_EXPORT int vrpc_policy_load_texts(const VrpcPolicyText *files, size_t n_files,
                                              const VrpcPolicyText *domains, VrpcPolicy **policyp);

/* vrpc_policy_ref() - take one more reference; returns POLICY. NULL is allowed. */
VRPC_POLICY_EXPORT VrpcPolicy *vrpc_policy_ref(VrpcPolicy *policy);

/* vrpc_policy_unref() - drop one reference, freeing on the last; always returns
 * NULL. NULL is allowed. Safe to call from any thread. */
VRPC_POLICY_EXPORT VrpcPolicy *vrpc_policy_unref(VrpcPolicy *policy);

/* vrpc_policy_is_valid() - false if any file had an error (the policy then
 * denies every call). No error return. */
VRPC_POLICY_EXPORT bool vrpc_policy_is_valid(const VrpcPolicy *policy);

/* vrpc_policy_get_n_errors() - number of load errors. No error return. */
VRPC_POLICY_EXPORT size_t vrpc_policy_get_n_errors(const VrpcPolicy *policy);

/* vrpc_policy_get_error() - load error INDEX as "FILE:LINE:COL: message" (or
 * "PATH: message" for an unreadable file); NULL when INDEX is out of range. */
VRPC_POLICY_EXPORT const char *vrpc_policy_get_error(const VrpcPolicy *policy, size_t index);

/* vrpc_policy_get_n_rules() / _get_n_files() - counts for logs. No error return. */
VRPC_POLICY_EXPORT size_t vrpc_policy_get_n_rules(const VrpcPolicy *policy);
VRPC_POLICY_EXPORT size_t vrpc_policy_get_n_files(const VrpcPolicy *policy);

/*
 * vrpc_policy_evaluate() - decide REQUEST against POLICY; the first matching
 * rule wins, no match denies. *decisionp is always filled in, a deny on any
 * error. Returns 0 when the policy was consulted (whatever the decision, an
 * invalid policy included: reason "invalid policy"), VRPC_POLICY_E_SOURCE,
 * _TARGET, _SERVICE or _ARGUMENT when a request field is malformed, in which
 * case the policy is not consulted, or -EINVAL when POLICY or REQUEST is NULL.
 * Never allocates; thread-safe.
 */
VRPC_POLICY_EXPORT int vrpc_policy_evaluate(const VrpcPolicy *policy,
                                            const VrpcPolicyRequest *request,
                                            VrpcPolicyDecision *decisionp);

/*
 * vrpc_policy_split_call() - split an untrusted "SERVICE[+ARG]" at the first
 * '+' into the buffers SERVICEP and ARGUMENTP (each VRPC_POLICY_NAME_MAX + 1
 * bytes), after validating both. "SERVICE+" and "SERVICE" both give an empty
 * argument. Returns 0, VRPC_POLICY_E_SERVICE or VRPC_POLICY_E_ARGUMENT (both
 * buffers are then "").
 */
VRPC_POLICY_EXPORT int vrpc_policy_split_call(const char *untrusted_call,
                                              char servicep[VRPC_POLICY_NAME_MAX + 1],
                                              char argumentp[VRPC_POLICY_NAME_MAX + 1]);

/* vrpc_policy_service_is_valid() / _argument_is_valid() / _domain_is_valid() -
 * the name rules, for callers that validate early. No error return. */
VRPC_POLICY_EXPORT bool vrpc_policy_service_is_valid(const char *service);
VRPC_POLICY_EXPORT bool vrpc_policy_argument_is_valid(const char *argument);
VRPC_POLICY_EXPORT bool vrpc_policy_domain_is_valid(const char *domain);
/* vrpc_policy_qualified_domain_is_valid() - NAME is a domain name or DOMAIN@HOST
 * (a domain of another host; HOST a lowercase DNS name), 64 bytes at most. */
VRPC_POLICY_EXPORT bool vrpc_policy_qualified_domain_is_valid(const char *name);

/*
 * vrpc_policy_decision_resolve_ask() - apply the dispatcher's ask setting: an
 * ASK decision with no ask program configured (ASK_PROGRAM NULL or "") becomes
 * a DENY with reason "ask: no ask program configured"; the rule stays. Returns
 * true when the decision is still ASK and the program must be consulted.
 */
VRPC_POLICY_EXPORT bool vrpc_policy_decision_resolve_ask(VrpcPolicyDecision *decision,
                                                         const char *ask_program);

/*
 * vrpc_policy_decision_check_target() - an ask was answered "allow NAME":
 * may the call go to NAME? NAME (untrusted: a domain name, "dom0" or
 * "@adminvm") must match the target column of the rule that made DECISION
 * (evaluated against POLICY, whose reference the caller still holds), or be
 * that rule's default_target. On success the domain ("dom0" for dom0) is
 * copied into TARGETP. Returns 0; VRPC_POLICY_E_TARGET when NAME is malformed,
 * @default, or outside the rule (TARGETP is then ""); -EINVAL when DECISION is
 * not an ASK made by a rule of POLICY.
 */
VRPC_POLICY_EXPORT int vrpc_policy_decision_check_target(const VrpcPolicy *policy,
                                                         const VrpcPolicyDecision *decision,
                                                         const char *untrusted_name,
                                                         char targetp[VRPC_POLICY_NAME_MAX + 1]);

/*
 * vrpc_policy_decision_format() - the one-line form used by `vrpc-policy
 * explain` and logs: "allow target=dom0 rule=FILE:LINE" or "deny rule=default",
 * followed by user=, default_target= and notify= when they apply, and by
 * reason="..." for a deny that no deny rule or missing rule explains.
 * Returns the length snprintf() would write (>= SIZE means truncated).
 */
VRPC_POLICY_EXPORT int vrpc_policy_decision_format(const VrpcPolicyDecision *decision, char *buf,
                                                   size_t size);

/* vrpc_policy_action_to_string() - "allow", "deny" or "ask"; "invalid" else. */
VRPC_POLICY_EXPORT const char *vrpc_policy_action_to_string(VrpcPolicyAction action);

/*
 * vrpc_policy_holder_new() - a holder for ETC_DIR (copied), loaded once.
 * Returns 0; VRPC_POLICY_E_INVALID (holder created, holding the deny-all
 * policy: fail closed); -EINVAL or -ENOMEM (no holder).
 */
VRPC_POLICY_EXPORT int vrpc_policy_holder_new(VrpcPolicyHolder **holderp, const char *etc_dir);

/* vrpc_policy_holder_free() - drop the holder and its reference; returns NULL.
 * NULL is allowed. Snapshots taken with _get() stay valid. */
VRPC_POLICY_EXPORT VrpcPolicyHolder *vrpc_policy_holder_free(VrpcPolicyHolder *holder);

/* vrpc_policy_holder_get() - a new reference to the current snapshot; release
 * it with vrpc_policy_unref(). Never NULL. Thread-safe. */
VRPC_POLICY_EXPORT VrpcPolicy *vrpc_policy_holder_get(VrpcPolicyHolder *holder);

/*
 * vrpc_policy_holder_reload() - load the folder again and swap the result in
 * atomically: calls in flight keep the snapshot they took. Returns 0;
 * VRPC_POLICY_E_INVALID (the deny-all policy was swapped in: fail closed);
 * -ENOMEM (nothing swapped, the old snapshot stays). Thread-safe.
 */
VRPC_POLICY_EXPORT int vrpc_policy_holder_reload(VrpcPolicyHolder *holder);

/* vrpc_policy_holder_get_etc_dir() - the folder the holder loads. */
VRPC_POLICY_EXPORT const char *vrpc_policy_holder_get_etc_dir(const VrpcPolicyHolder *holder);

/*
 * vrpc_policy_watch_new() - watch HOLDER's folder, policy.d/ and domains.yaml
 * with inotify. Only complete files count: a file closed after writing,
 * renamed in, removed or renamed away (never a creation, a write in progress
 * or a touch); temporaries (dotfiles, names ending in '~', ".swp", ".tmp")
 * are ignored; while a watched file is being written the reload waits for
 * its close. Changes are debounced, and the reload runs on a worker thread
 * so that the caller's loop is never stalled by a parse. The watch borrows
 * HOLDER, which must outlive it. Returns 0, or -errno from inotify, epoll,
 * timerfd or eventfd (the folder itself must exist) or -ENOMEM.
 */
VRPC_POLICY_EXPORT int vrpc_policy_watch_new(VrpcPolicyWatch **watchp, VrpcPolicyHolder *holder);

/* vrpc_policy_watch_free() - close the watch (waiting for a reload that is
 * running to finish); returns NULL. NULL is allowed. */
VRPC_POLICY_EXPORT VrpcPolicyWatch *vrpc_policy_watch_free(VrpcPolicyWatch *watch);

/* vrpc_policy_watch_get_fd() - the non-blocking fd to poll for EPOLLIN. */
VRPC_POLICY_EXPORT int vrpc_policy_watch_get_fd(const VrpcPolicyWatch *watch);

/*
 * vrpc_policy_watch_dispatch() - handle whatever made the fd readable,
 * without blocking: file events, the debounce timer (which starts a reload)
 * or the end of a reload. Returns 0 (nothing finished), 1 (a reload finished
 * and its snapshot is in the holder; it may be invalid, see the holder), or
 * -errno from read() or timerfd, or -ENOMEM from the load.
 */
VRPC_POLICY_EXPORT int vrpc_policy_watch_dispatch(VrpcPolicyWatch *watch);

/*
 * vrpc_policy_watch_get_pending() - whether a change was seen that is not in
 * the holder yet (waiting for the debounce, for a file to be closed, or being
 * loaded). *WRITINGP (may be NULL) is set to the name of a file that was
 * written to and not closed yet, which holds the reload back, or NULL; the
 * name is valid until the next dispatch.
 */
VRPC_POLICY_EXPORT bool vrpc_policy_watch_get_pending(const VrpcPolicyWatch *watch,
                                                      const char **writingp);

#ifdef __cplusplus
}
#endif
