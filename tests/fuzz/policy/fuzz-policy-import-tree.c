/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the import-qubes tree walker: the input is a whole
 * qrexec policy folder, files separated by NUL bytes, each "NAME\nTEXT"
 * (NAME relative to the folder: "30-user.policy", "include/admin"). It is
 * converted as a folder and from its first file, in strict and in
 * --skip-unconvertible mode, which exercises include resolution, loops,
 * escapes, the pre-4.1 format of !include-service files and the folder's
 * name rules. Invariants: a conversion with problems writes nothing; one
 * without writes YAML that the vrpc loader accepts; skipping never adds a
 * problem; and with nothing to skip both modes write the same YAML.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import-qubes.h"
#include "vrpc-policy.h"

#define MAX_FILES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Result {
    int problems;
    PolicyImportStats stats;
    char *out;
    size_t out_size;
} Result;

static void run(const VrpcPolicyText *tree, size_t n, const char *const *top, bool skip,
                Result *res)
{
    /* small enough to keep each run fast, big enough for real trees */
    PolicyImportOptions opts = {.skip_unconvertible = skip, .max_bytes = 256 * 1024};
    char *err = NULL;
    size_t err_size = 0;
    FILE *fout = open_memstream(&res->out, &res->out_size);
    FILE *ferr = open_memstream(&err, &err_size);

    if (!fout || !ferr)
        abort();
    res->problems = policy_import_qubes_memory(tree, n, top, top ? 1 : 0, &opts, fout, ferr,
                                               &res->stats);
    fclose(fout);
    fclose(ferr);
    free(err);
    if (res->problems < 0)
        abort(); /* only -ENOMEM / -EIO, which memory streams do not give here */
    if (res->problems > 0 && res->out_size != 0)
        __builtin_trap();
    if (res->problems == 0) {
        VrpcPolicy *policy = NULL;
        VrpcPolicyText yaml = {"out.yaml", res->out, res->out_size};

        if (vrpc_policy_load_texts(&yaml, 1, NULL, &policy) != 0)
            __builtin_trap();
        vrpc_policy_unref(policy);
    }
}

static void check_modes(const VrpcPolicyText *tree, size_t n, const char *const *top)
{
    Result strict = {0}, skip = {0};

    run(tree, n, top, false, &strict);
    run(tree, n, top, true, &skip);
    if (skip.problems > strict.problems)
        __builtin_trap();
    if (strict.problems == 0 && (skip.stats.skipped != 0 || skip.out_size != strict.out_size ||
                                 memcmp(skip.out, strict.out, strict.out_size) != 0))
        __builtin_trap();
    free(strict.out);
    free(skip.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VrpcPolicyText tree[MAX_FILES];
    char *names[MAX_FILES];
    size_t n = 0, off = 0;

    while (off < size && n < MAX_FILES) {
        const char *start = (const char *)data + off;
        const char *end = memchr(start, 0, size - off);
        size_t len = end ? (size_t)(end - start) : size - off;
        const char *nl = memchr(start, '\n', len);
        size_t name_len = nl ? (size_t)(nl - start) : len;

        names[n] = strndup(start, name_len);
        if (!names[n])
            abort();
        tree[n] = (VrpcPolicyText){names[n], nl ? nl + 1 : start + len,
                                   nl ? len - name_len - 1 : 0};
        n++;
        off += len + (end ? 1 : 0);
    }
    check_modes(tree, n, NULL);
    if (n > 0)
        check_modes(tree, n, (const char *const[]){names[0]});
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return 0;
}
