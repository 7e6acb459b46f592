/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The loader: policy YAML and domains.yaml text in, compiled rules and domain
 * metadata out. All problems go to the diagnostics as FILE:LINE:COL lines.
 */

#include <stddef.h>

#include "diag.h"
#include "domains.h"
#include "vrpc-policy.h"

/* Largest policy or domains file read, in bytes. */
#define POLICY_FILE_MAX (64u * 1024 * 1024)

/* policy_loader_parse_policy() - compile the rules of one policy file into
 * POLICY (unsealed); FILE must be a policy_add_file() copy. Returns 0 (errors,
 * if any, are in the policy's diagnostics) or -ENOMEM. */
int policy_loader_parse_policy(VrpcPolicy *policy, const char *file, const char *data, size_t size);

/* policy_loader_parse_domains() - read domains.yaml text into DOMAINS.
 * Returns 0 (errors, if any, are in DIAG) or -ENOMEM. */
int policy_loader_parse_domains(PolicyDomains *domains, PolicyDiag *diag, const char *file,
                                const char *data, size_t size);
