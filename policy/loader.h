/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The loader: policy YAML and domains.yaml text in, compiled rules and domain
 * metadata out. All problems go to the diagnostics as FILE:LINE:COL lines.
 */

#include <stddef.h>

#include "common/diag.h"
#include "domains.h"
#include "vrpc-policy.h"

/* Largest text vrpc_policy_load_texts() takes per file, in bytes (tools and
 * benchmarks that build policies in memory). */
#define POLICY_FILE_MAX (64u * 1024 * 1024)

/* The caps of vrpc_policy_load(), i.e. of what the dispatcher and
 * vrpc-policy read from a configuration folder: each file, and all files
 * together (domains.yaml and every policy.d/NAME.yaml). 1 MiB is about
 * 10,000 rules, far beyond any hand-written file (the shipped policy is
 * 1 KiB); 4 MiB compiles in a few hundred milliseconds on the reload thread
 * and bounds the memory a policy can take. See docs/policy.md. */
#define POLICY_LOAD_FILE_MAX (1024u * 1024)
#define POLICY_LOAD_TOTAL_MAX (4u * 1024 * 1024)

/* policy_loader_parse_policy() - compile the rules of one policy file into
 * POLICY (unsealed); FILE must be a policy_add_file() copy. Returns 0 (errors,
 * if any, are in the policy's diagnostics) or -ENOMEM. */
int policy_loader_parse_policy(VrpcPolicy *policy, const char *file, const char *data, size_t size);

/* policy_loader_parse_domains() - read domains.yaml text into DOMAINS.
 * Returns 0 (errors, if any, are in DIAG) or -ENOMEM. */
int policy_loader_parse_domains(PolicyDomains *domains, VrpcDiag *diag, const char *file,
                                const char *data, size_t size);
