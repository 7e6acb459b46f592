/* SPDX-License-Identifier: MIT */
/*
 * Names and tokens. Service names are [A-Za-z0-9._-]{1,64}; arguments
 * [A-Za-z0-9._+-]{0,64}; domain names [A-Za-z0-9._-]{1,64} starting with a
 * letter or digit (so they never look like an option or a token); tag and
 * type names [A-Za-z0-9._-]{1,64}; user names [A-Za-z0-9._-]{1,32} not
 * starting with '-'. Everything that crosses a domain boundary is checked
 * against these rules before the policy is consulted, which is what closes
 * the class of bugs behind QSB-038 (names reaching a shell or a matcher
 * unchecked).
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "names.h"
#include "vrpc-policy.h"

static bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_name_char(char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static bool chars_valid(const char *s, size_t len, bool allow_plus) {
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(s[i]) && !(allow_plus && s[i] == '+'))
            return false;
    return true;
}

bool policy_service_valid(const char *s, size_t len) {
    return s && len >= 1 && len <= VRPC_POLICY_NAME_MAX && chars_valid(s, len, false);
}

bool policy_argument_valid(const char *s, size_t len) {
    return s && len <= VRPC_POLICY_NAME_MAX && chars_valid(s, len, true);
}

bool policy_domain_valid(const char *s, size_t len) {
    return s && len >= 1 && len <= VRPC_POLICY_NAME_MAX && is_alnum(s[0]) &&
           chars_valid(s, len, false);
}

bool policy_label_valid(const char *s, size_t len) {
    return s && len >= 1 && len <= VRPC_POLICY_NAME_MAX && chars_valid(s, len, false);
}

bool policy_user_valid(const char *s, size_t len) {
    return s && len >= 1 && len <= VRPC_POLICY_USER_MAX && s[0] != '-' &&
           chars_valid(s, len, false);
}

bool policy_is_dom0(const char *s) {
    return s && strcmp(s, "dom0") == 0;
}

int policy_service_pattern_parse(const char *s, size_t len, size_t *prefix_lenp, bool *is_prefixp,
                                 const char **errp) {
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
    if (!chars_valid(s, plen, false)) {
        *errp = "service must be a name of [A-Za-z0-9._-], a prefix ending in '*', or \"*\"";
        return -EINVAL;
    }
    *prefix_lenp = plen;
    *is_prefixp = is_prefix;
    return 0;
}

static bool token_is(const char *s, size_t len, const char *word) {
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static bool token_has_prefix(const char *s, size_t len, const char *prefix) {
    size_t plen = strlen(prefix);
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

int policy_token_parse(const char *s, size_t len, PolicyToken *tokenp, const char **errp) {
    PolicyToken t = {0};

    if (len == 0) {
        *errp = "empty domain token";
        return -EINVAL;
    }
    if (token_is(s, len, "*")) {
        t.kind = POLICY_TOKEN_ANY;
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
        if (!policy_label_valid(t.value, t.len)) {
            *errp = tag ? "@tag: needs a tag name of [A-Za-z0-9._-], 1 to 64 characters"
                        : "@type: needs a type name of [A-Za-z0-9._-], 1 to 64 characters";
            return -EINVAL;
        }
    } else if (token_has_prefix(s, len, "@dispvm")) {
        *errp = "unknown token: @dispvm is not supported by vrpc";
        return -EINVAL;
    } else if (s[0] == '@' || s[0] == '$') {
        *errp = "unknown token (expected @anyvm, @adminvm, @tag:T, @type:T, @default or \"*\")";
        return -EINVAL;
    } else {
        t.kind = POLICY_TOKEN_NAME;
        t.value = s;
        t.len = len;
        if (!policy_domain_valid(s, len)) {
            *errp = "invalid domain name (expected [A-Za-z0-9._-], 1 to 64 characters, "
                    "starting with a letter or digit)";
            return -EINVAL;
        }
    }
    *tokenp = t;
    return 0;
}

const char *policy_token_kind_to_string(PolicyTokenKind kind) {
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
    }
    return "?";
}

char *policy_quote(char *buf, size_t size, const char *s, size_t len) {
    size_t o = 0;
    size_t shown = len > 48 ? 45 : len;

    if (size < 16) {
        if (size)
            buf[0] = 0;
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < shown && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        }
    }
    if (shown < len && o + 5 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = 0;
    return buf;
}

bool vrpc_policy_service_is_valid(const char *service) {
    return service && policy_service_valid(service, strlen(service));
}

bool vrpc_policy_argument_is_valid(const char *argument) {
    return argument && policy_argument_valid(argument, strlen(argument));
}

bool vrpc_policy_domain_is_valid(const char *domain) {
    return domain && policy_domain_valid(domain, strlen(domain));
}

int vrpc_policy_split_call(const char *untrusted_call, char servicep[VRPC_POLICY_NAME_MAX + 1],
                           char argumentp[VRPC_POLICY_NAME_MAX + 1]) {
    const char *plus;
    size_t total, service_len, argument_len;

    servicep[0] = 0;
    argumentp[0] = 0;

    /* Validate the untrusted text in one place: lengths first, never reading
     * past the longest possible call, then the character sets. */
    if (!untrusted_call)
        return VRPC_POLICY_E_SERVICE;
    total = strnlen(untrusted_call, 2 * VRPC_POLICY_NAME_MAX + 2);
    plus = memchr(untrusted_call, '+', total);
    service_len = plus ? (size_t)(plus - untrusted_call) : total;
    argument_len = plus ? total - service_len - 1 : 0;
    if (!policy_service_valid(untrusted_call, service_len))
        return VRPC_POLICY_E_SERVICE;
    if (plus && !policy_argument_valid(plus + 1, argument_len))
        return VRPC_POLICY_E_ARGUMENT;

    memcpy(servicep, untrusted_call, service_len);
    servicep[service_len] = 0;
    if (plus) {
        memcpy(argumentp, plus + 1, argument_len);
        argumentp[argument_len] = 0;
    }
    return 0;
}
