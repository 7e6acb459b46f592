/* SPDX-License-Identifier: MIT */
#pragma once

/* Conversion of Qubes qrexec .policy files into vrpc policy YAML. */

#include <stdio.h>

#include "vrpc-policy.h"

/*
 * policy_import_qubes() - convert FILES (qrexec 4.1+ format, one rule a line:
 * SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...]) to one YAML policy
 * file. Every construct without a vrpc equivalent (!include, @dispvm,
 * autostart=, ...) is reported to ERR as "FILE:LINE: message"; nothing is
 * dropped silently, and OUT gets the YAML only when there was no problem.
 * Returns the number of problems (0: converted), or -ENOMEM / -EIO.
 */
int policy_import_qubes(const VrpcPolicyText *files, size_t n_files, FILE *out, FILE *err);
