/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The compiled policy, as seen from inside the library: the loader builds it
 * with policy_new()/policy_add_rule()/policy_seal(); the evaluator and the
 * graph writer read it. After policy_seal() nothing changes it again.
 */

#include <stdint.h>

#include "common/diag.h"
#include "domains.h"
#include "names.h"
#include "vrpc-policy.h"

/* A compiled rule. All strings live in the policy's arena. */
typedef struct PolicyRule {
    const char *service; /* exact name, or the prefix before '*' ("" for "*") */
    size_t service_len;
    bool service_prefix;  /* the rule ended in '*' */
    const char *argument; /* NULL: any argument; "": no argument */
    PolicyToken source;   /* token values are NUL-terminated arena copies */
    PolicyToken target;
    VrpcPolicyAction action;
    const char *redirect;       /* NULL or a domain name ("dom0" for @adminvm) */
    const char *default_target; /* NULL or a domain name */
    const char *user;           /* NULL or a user name */
    int notify;                 /* -1: not set, else 0 or 1 */
    const char *file;
    unsigned line;
} PolicyRule;

/* What the loader hands to policy_add_rule(); strings are borrowed and copied. */
typedef struct PolicyRuleSpec {
    const char *service;
    size_t service_len;
    bool service_prefix;
    const char *argument; /* NULL: any */
    size_t argument_len;
    PolicyToken source;
    PolicyToken target;
    VrpcPolicyAction action;
    const char *redirect;
    const char *default_target;
    const char *user;
    int notify;
    unsigned line;
} PolicyRuleSpec;

/* A normalized call: validated names, "dom0" for dom0, target NULL for @default. */
typedef struct PolicyCall {
    const char *source;
    const char *target;
    const char *service;
    size_t service_len;
    const char *argument; /* "" for no argument */
} PolicyCall;

/* policy_new() - an empty, unsealed policy with refcount 1. Returns 0 or -ENOMEM. */
int policy_new(VrpcPolicy **policyp);
VrpcDiag *policy_get_diag(VrpcPolicy *policy);
/* policy_add_file() - remember PATH; *pathp gets the policy's copy. 0 or -ENOMEM. */
int policy_add_file(VrpcPolicy *policy, const char *path, const char **pathp);
/* policy_add_rule() - append a rule from FILE (a policy_add_file() copy). 0 or -ENOMEM. */
int policy_add_rule(VrpcPolicy *policy, const char *file, const PolicyRuleSpec *spec);
/* policy_set_domains() - take ownership of DOMAINS (may be NULL). */
void policy_set_domains(VrpcPolicy *policy, PolicyDomains *domains);
/* policy_seal() - build the index; the policy is valid iff no error was
 * recorded. Returns 0 or -ENOMEM. */
int policy_seal(VrpcPolicy *policy);

size_t policy_get_n_rules_internal(const VrpcPolicy *policy);
const PolicyRule *policy_get_rule(const VrpcPolicy *policy, size_t index);
const PolicyDomains *policy_get_domains(const VrpcPolicy *policy);

/* policy_match() - evaluate CALL, already validated and normalized, against a
 * sealed policy, ignoring validity. The graph writer also feeds it rule
 * patterns ("demo.*") as literal service names. */
void policy_match(const VrpcPolicy *policy, const PolicyCall *call, VrpcPolicyDecision *decision);
