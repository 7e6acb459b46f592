/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for `vrpc-policy import-qubes`: the input is a qrexec
 * policy file. Invariant: a conversion that reports no problem produces YAML
 * that the vrpc loader accepts as a valid policy; a conversion with problems
 * writes nothing.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "import-qubes.h"
#include "vrpc-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VrpcPolicyText in = {"fuzz.policy", (const char *)data, size};
    char *out = NULL, *err = NULL;
    size_t out_size = 0, err_size = 0;
    FILE *fout = open_memstream(&out, &out_size);
    FILE *ferr = open_memstream(&err, &err_size);
    int problems;

    if (!fout || !ferr)
        abort();
    problems = policy_import_qubes_memory(&in, 1, (const char *const[]){in.name}, 1, NULL, fout,
                                          ferr, NULL);
    fclose(fout);
    fclose(ferr);
    if (problems > 0 && out_size != 0)
        __builtin_trap();
    if (problems == 0) {
        VrpcPolicy *policy = NULL;
        VrpcPolicyText yaml = {"out.yaml", out, out_size};

        if (vrpc_policy_load_texts(&yaml, 1, NULL, &policy) != 0)
            __builtin_trap();
        vrpc_policy_unref(policy);
    }
    free(out);
    free(err);
    return 0;
}
