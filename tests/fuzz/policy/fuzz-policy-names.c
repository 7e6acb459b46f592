/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for name handling on the call path: the input is split
 * at newlines into SOURCE, TARGET and SERVICE[+ARG], which go through
 * vrpc_policy_split_call() and then, unvalidated, straight into
 * vrpc_policy_evaluate(), as a hostile guest's request would. Invariants: a
 * split that succeeds yields names that pass validation, and a request the
 * evaluator refuses is always a deny. SOURCE and TARGET also go through the
 * qualified-name rules (DOMAIN@HOST): a split that succeeds joins back to the
 * same text, and the codec, policy and common rules agree.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/names.h"
#include "vrpc-policy.h"

static VrpcPolicy *policy;

static void load_policy(void)
{
    static const char rules[] =
        "rules:\n"
        "  - {service: 'demo.*', source: '@anyvm', target: '@adminvm', action: allow}\n"
        "  - {service: arg.Svc, argument: x, source: '*', target: '*', action: ask}\n"
        "  - {service: d, source: '@tag:t', target: '@default', action: allow, redirect: w}\n"
        "  - {service: r, source: '*@*', target: 'w@h', action: allow}\n"
        "  - {service: r, source: '*@h.b', target: '*@*', action: ask, default_target: x@y}\n"
        "  - {service: '*', source: '*', target: '@anyvm', action: deny}\n";
    static const char domains[] = "domains:\n  w: {tags: [t], type: app}\n";
    VrpcPolicyText file = {"fuzz.yaml", rules, sizeof(rules) - 1};
    VrpcPolicyText dom = {"domains.yaml", domains, sizeof(domains) - 1};

    if (vrpc_policy_load_texts(&file, 1, &dom, &policy) != 0)
        abort();
}

/* Split NAME as a qualified name and check the round trip. */
static void check_qualified(const char *name)
{
    char domain[VRPC_NAME_MAX + 1], host[VRPC_HOST_MAX + 1], joined[VRPC_NAME_MAX + 1];
    size_t len = strnlen(name, VRPC_NAME_MAX + 1);
    bool valid = vrpc_name_valid_qualified(name, len);
    int rc = vrpc_name_split_qualified(name, domain, host);

    if (valid != vrpc_policy_qualified_domain_is_valid(name))
        __builtin_trap();
    if (valid != (rc >= 0) || (rc < 0 && (domain[0] || host[0])))
        __builtin_trap();
    if (valid && vrpc_name_valid_target(name, len) != true)
        __builtin_trap();
    if (rc < 0)
        return;
    if ((rc == 1) != (host[0] != 0) || !vrpc_name_valid_domain(domain, strlen(domain)) ||
        (rc == 1 && !vrpc_name_valid_host(host, strlen(host))))
        __builtin_trap();
    if (vrpc_name_join_qualified(joined, domain, host) != 0 || strcmp(joined, name) != 0)
        __builtin_trap();
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

    check_qualified(fields[0]);
    check_qualified(fields[1]);

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
