/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for name handling on the call path: the input is split
 * at newlines into SOURCE, TARGET and SERVICE[+ARG], which go through
 * vrpc_policy_split_call() and then, unvalidated, straight into
 * vrpc_policy_evaluate(), as a hostile guest's request would. Invariants: a
 * split that succeeds yields names that pass validation, and a request the
 * evaluator refuses is always a deny.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vrpc-policy.h"

static VrpcPolicy *policy;

static void load_policy(void)
{
    static const char rules[] =
        "rules:\n"
        "  - {service: 'demo.*', source: '@anyvm', target: '@adminvm', action: allow}\n"
        "  - {service: arg.Svc, argument: x, source: '*', target: '*', action: ask}\n"
        "  - {service: d, source: '@tag:t', target: '@default', action: allow, redirect: w}\n"
        "  - {service: '*', source: '*', target: '@anyvm', action: deny}\n";
    static const char domains[] = "domains:\n  w: {tags: [t], type: app}\n";
    VrpcPolicyText file = {"fuzz.yaml", rules, sizeof(rules) - 1};
    VrpcPolicyText dom = {"domains.yaml", domains, sizeof(domains) - 1};

    if (vrpc_policy_load_texts(&file, 1, &dom, &policy) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char service[VRPC_POLICY_NAME_MAX + 1], argument[VRPC_POLICY_NAME_MAX + 1];
    char *copy;
    const char *fields[3] = {"", "", ""};
    VrpcPolicyDecision d;
    int rc;

    if (!policy)
        load_policy();
    copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    for (int i = 0, start = 0; i < 3; i++) {
        char *nl = strchr(copy + start, '\n');

        fields[i] = copy + start;
        if (!nl)
            break;
        *nl = 0;
        start = (int)(nl - copy) + 1;
    }

    rc = vrpc_policy_split_call(fields[2], service, argument);
    if (rc == 0 &&
        (!vrpc_policy_service_is_valid(service) || !vrpc_policy_argument_is_valid(argument)))
        __builtin_trap();
    if (rc != 0 && (service[0] || argument[0]))
        __builtin_trap();

    /* the raw, unvalidated fields, as a guest could send them */
    rc = vrpc_policy_evaluate(policy,
                              &(VrpcPolicyRequest){.source = fields[0],
                                                   .untrusted_target = fields[1],
                                                   .untrusted_service = fields[2],
                                                   .untrusted_argument = argument},
                              &d);
    if (rc != 0 && d.action != VRPC_POLICY_DENY)
        __builtin_trap();
    /* and the split call, as the dispatcher would pass it */
    rc = vrpc_policy_evaluate(policy,
                              &(VrpcPolicyRequest){.source = fields[0],
                                                   .untrusted_target = fields[1],
                                                   .untrusted_service = service,
                                                   .untrusted_argument = argument},
                              &d);
    if (rc != 0 && d.action != VRPC_POLICY_DENY)
        __builtin_trap();
    free(copy);
    return 0;
}
