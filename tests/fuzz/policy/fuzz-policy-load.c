/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the policy loader: the input is loaded once as a
 * policy file and once as domains.yaml. Beyond "no crash, no leak, no UB" it
 * checks the loader's promises: a policy is valid exactly when it has no
 * errors, every error names its file, and an invalid policy denies everything;
 * a valid one is evaluated for a few calls (and the evaluator must agree with
 * itself about refusing malformed requests).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vrpc-policy.h"

static void check_errors(const VrpcPolicy *policy, const char *file)
{
    size_t n = vrpc_policy_get_n_errors(policy);

    if (vrpc_policy_is_valid(policy) != (n == 0))
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (strncmp(vrpc_policy_get_error(policy, i), file, strlen(file)) != 0)
            __builtin_trap();
}

static void evaluate_some(const VrpcPolicy *policy)
{
    static const VrpcPolicyRequest calls[] = {
        {"work", "dom0", "demo.Echo", ""},         {"dom0", "work", "a", "b"},
        {"work", "@default", "demo.Secret", NULL}, {"vault", "@adminvm", "x", "y+z"},
        {"@adminvm", "vault", "demo.", ""},
    };

    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        VrpcPolicyDecision d;
        char line[8192];

        if (vrpc_policy_evaluate(policy, &calls[i], &d) != 0)
            __builtin_trap();
        if (!vrpc_policy_is_valid(policy) && d.action != VRPC_POLICY_DENY)
            __builtin_trap();
        if (d.action == VRPC_POLICY_ALLOW && !d.target[0])
            __builtin_trap();
        vrpc_policy_decision_format(&d, line, sizeof(line));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char tag_rules[] =
        "rules:\n  - {service: '*', source: '@tag:a', target: '@type:b', action: allow}\n";
    VrpcPolicyText text = {"fuzz.yaml", (const char *)data, size};
    VrpcPolicyText domains = {"domains.yaml", (const char *)data, size};
    VrpcPolicyText rules = {"rules.yaml", tag_rules, sizeof(tag_rules) - 1};
    VrpcPolicy *policy = NULL;

    if (vrpc_policy_load_texts(&text, 1, NULL, &policy) >= 0) {
        check_errors(policy, "fuzz.yaml:");
        evaluate_some(policy);
        vrpc_policy_unref(policy);
    }
    policy = NULL;
    if (vrpc_policy_load_texts(&rules, 1, &domains, &policy) >= 0) {
        check_errors(policy, "domains.yaml:");
        evaluate_some(policy);
        vrpc_policy_unref(policy);
    }
    return 0;
}
