/* SPDX-License-Identifier: MIT */
/*
 * Policy tokens and service patterns, on top of the name rules of
 * common/names.h (one set for the codec, the policy and the services): a
 * rule's service column, its source and target tokens, and the public
 * vrpc_policy_*_is_valid() / vrpc_policy_split_call() forms of the rules.
 * Everything that crosses a domain boundary is checked against these rules
 * before the policy is consulted.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/names.h"
#include "names.h"
#include "vrpc-policy.h"

bool policy_is_dom0(const char *s)
{
    return s && strcmp(s, "dom0") == 0;
}

int policy_service_pattern_parse(const char *s, size_t len, size_t *prefix_lenp, bool *is_prefixp,
                                 const char **errp)
{
    bool is_prefix = len > 0 && s[len - 1] == '*';
    size_t plen = is_prefix ? len - 1 : len;

    if (len == 0) {
        *errp = "empty service name";
        return -EINVAL;
    }
    if (plen > VRPC_POLICY_NAME_MAX) {
        *errp = "service name longer than 64 characters";
        return -EINVAL;
    }
    if (plen > 0 && !vrpc_name_valid_service(s, plen)) {
        *errp = "service must be a name of [A-Za-z0-9._-], a prefix ending in '*', or \"*\"";
        return -EINVAL;
    }
    *prefix_lenp = plen;
    *is_prefixp = is_prefix;
    return 0;
}

bool policy_name_is_remote(const char *name)
{
    return name && strchr(name, '@') != NULL;
}

static bool token_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static bool token_has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t plen = strlen(prefix);
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

int policy_token_parse(const char *s, size_t len, PolicyToken *tokenp, const char **errp)
{
    PolicyToken t = {0};

    if (len == 0) {
        *errp = "empty domain token";
        return -EINVAL;
    }
    if (token_is(s, len, "*")) {
        t.kind = POLICY_TOKEN_ANY;
    } else if (token_is(s, len, "*@*")) {
        t.kind = POLICY_TOKEN_REMOTE_ANY;
    } else if (token_has_prefix(s, len, "*@")) {
        t.kind = POLICY_TOKEN_REMOTE_HOST;
        t.value = s + 2;
        t.len = len - 2;
        if (!vrpc_name_valid_host(t.value, t.len)) {
            *errp = "*@ needs \"*\" or a host name (lowercase DNS name: labels of [a-z0-9-] "
                    "not starting or ending with '-', joined by '.', 1 to 63 characters)";
            return -EINVAL;
        }
    } else if (token_is(s, len, "@anyvm")) {
        t.kind = POLICY_TOKEN_ANYVM;
    } else if (token_is(s, len, "@adminvm") || token_is(s, len, "dom0")) {
        t.kind = POLICY_TOKEN_ADMINVM;
    } else if (token_is(s, len, "@default")) {
        t.kind = POLICY_TOKEN_DEFAULT;
    } else if (token_has_prefix(s, len, "@tag:") || token_has_prefix(s, len, "@type:")) {
        bool tag = s[1] == 't' && s[2] == 'a';
        size_t skip = tag ? 5 : 6;

        t.kind = tag ? POLICY_TOKEN_TAG : POLICY_TOKEN_TYPE;
        t.value = s + skip;
        t.len = len - skip;
        if (!vrpc_name_valid_label(t.value, t.len)) {
            *errp = tag ? "@tag: needs a tag name of [A-Za-z0-9._-], 1 to 64 characters"
                        : "@type: needs a type name of [A-Za-z0-9._-], 1 to 64 characters";
            return -EINVAL;
        }
    } else if (token_has_prefix(s, len, "@dispvm")) {
        *errp = "unknown token: @dispvm is not supported by vrpc";
        return -EINVAL;
    } else if (s[0] == '@' && memchr(s + 1, '@', len - 1)) {
        *errp = "a token such as @adminvm cannot name a host (another host's dom0 is dom0@HOST)";
        return -EINVAL;
    } else if (s[0] == '@' || s[0] == '$') {
        *errp = "unknown token (expected @anyvm, @adminvm, @tag:T, @type:T or \"*\"; in a "
                "target also @default)";
        return -EINVAL;
    } else {
        t.kind = POLICY_TOKEN_NAME;
        t.value = s;
        t.len = len;
        if (memchr(s, '@', len)) {
            if (!vrpc_name_valid_qualified(s, len)) {
                *errp = "invalid remote domain (expected NAME@HOST: a domain name of "
                        "[A-Za-z0-9._-] starting with a letter or digit, '@', a lowercase DNS "
                        "host name; 64 characters in all)";
                return -EINVAL;
            }
        } else if (!vrpc_name_valid_domain(s, len)) {
            *errp = "invalid domain name (expected [A-Za-z0-9._-], 1 to 64 characters, "
                    "starting with a letter or digit)";
            return -EINVAL;
        }
    }
    *tokenp = t;
    return 0;
}

const char *policy_token_kind_to_string(PolicyTokenKind kind)
{
    switch (kind) {
    case POLICY_TOKEN_ANY:
        return "*";
    case POLICY_TOKEN_ANYVM:
        return "@anyvm";
    case POLICY_TOKEN_ADMINVM:
        return "@adminvm";
    case POLICY_TOKEN_NAME:
        return "name";
    case POLICY_TOKEN_TAG:
        return "@tag:";
    case POLICY_TOKEN_TYPE:
        return "@type:";
    case POLICY_TOKEN_DEFAULT:
        return "@default";
    case POLICY_TOKEN_REMOTE_ANY:
        return "*@*";
    case POLICY_TOKEN_REMOTE_HOST:
        return "*@HOST";
    }
    return "?";
}

bool vrpc_policy_service_is_valid(const char *service)
{
    return service && vrpc_name_valid_service(service, strlen(service));
}

bool vrpc_policy_argument_is_valid(const char *argument)
{
    return argument && vrpc_name_valid_argument(argument, strlen(argument));
}

bool vrpc_policy_domain_is_valid(const char *domain)
{
    return domain && vrpc_name_valid_domain(domain, strlen(domain));
}

bool vrpc_policy_qualified_domain_is_valid(const char *name)
{
    return name && vrpc_name_valid_qualified(name, strnlen(name, VRPC_NAME_MAX + 1));
}

int vrpc_policy_split_call(const char *untrusted_call, char servicep[VRPC_POLICY_NAME_MAX + 1],
                           char argumentp[VRPC_POLICY_NAME_MAX + 1])
{
    switch (vrpc_name_split_call(untrusted_call, servicep, argumentp)) {
    case 0:
        return 0;
    case VRPC_NAME_E_ARGUMENT:
        return VRPC_POLICY_E_ARGUMENT;
    default:
        return VRPC_POLICY_E_SERVICE;
    }
}
