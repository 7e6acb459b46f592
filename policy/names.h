/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Token and service-pattern syntax shared by the loader, the evaluator and
 * import-qubes. The name rules themselves are common/names.h (included here
 * for the policy's files). Every function takes an explicit length so that
 * scalars holding NUL bytes are rejected rather than silently truncated.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/escape.h"
#include "common/names.h"

typedef enum PolicyTokenKind {
    POLICY_TOKEN_ANY,         /* "*": every domain, dom0 included */
    POLICY_TOKEN_ANYVM,       /* @anyvm: every domain but dom0 */
    POLICY_TOKEN_ADMINVM,     /* @adminvm or the name dom0 */
    POLICY_TOKEN_NAME,        /* a domain name */
    POLICY_TOKEN_TAG,         /* @tag:T */
    POLICY_TOKEN_TYPE,        /* @type:T */
    POLICY_TOKEN_DEFAULT,     /* @default: the caller named no target */
    POLICY_TOKEN_REMOTE_ANY,  /* "*@*": every domain of every other host */
    POLICY_TOKEN_REMOTE_HOST, /* "*@HOST": every domain of HOST (value: HOST) */
} PolicyTokenKind;

/* A parsed token; VALUE points into the parsed text (NAME, TAG, TYPE, REMOTE_HOST only). A
 * NAME may be qualified (NAME@HOST: one domain of another host). */
typedef struct PolicyToken {
    PolicyTokenKind kind;
    const char *value;
    size_t len;
} PolicyToken;

bool policy_is_dom0(const char *s);

/*
 * policy_service_pattern_parse() - a rule's service: an exact name, a prefix
 * ending in '*' ("demo.*"), or "*". On success *prefix_lenp is the length of
 * the part before '*' and *is_prefixp tells whether there was a '*'.
 * Returns 0, or -EINVAL with a static message in *errp.
 */
int policy_service_pattern_parse(const char *s, size_t len, size_t *prefix_lenp, bool *is_prefixp,
                                 const char **errp);

/* policy_name_is_remote() - NAME (NUL-terminated, may be NULL) is DOMAIN@HOST. */
bool policy_name_is_remote(const char *name);

/*
 * policy_token_parse() - name | NAME@HOST | dom0 | * | *@* | *@HOST | @anyvm |
 * @adminvm | @tag:T | @type:T | @default. Which tokens fit which column is the
 * caller's business.
 * Returns 0, or -EINVAL with a static message in *errp.
 */
int policy_token_parse(const char *s, size_t len, PolicyToken *tokenp, const char **errp);

/* policy_token_kind_to_string() - "*", "@anyvm", ... ("name" for NAME). */
const char *policy_token_kind_to_string(PolicyTokenKind kind);
