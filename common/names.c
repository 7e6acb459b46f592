/* SPDX-License-Identifier: MIT */
/*
 * names.c - see names.h. Everything that crosses a domain boundary or comes from a
 * configuration file is checked against these rules before it reaches a matcher, a path or
 * a command line, which is what closes the class of bugs behind QSB-038 (names reaching a
 * shell or a matcher unchecked). Where the codec and the policy used to disagree, the
 * stricter rule won: a domain name starts with a letter or digit, a user name is not empty
 * and does not start with '-' (an optional field that may be empty says so at its caller).
 */
#include "common/names.h"

#include <errno.h>
#include <string.h>

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Every byte of @s is a letter, a digit, '.', '_', '-' or one of @extra. */
static bool chars_valid(const char *s, size_t len, const char *extra)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (is_alnum(c) || c == '.' || c == '_' || c == '-')
            continue;
        if (extra && c != 0 && strchr(extra, c))
            continue;
        return false;
    }
    return true;
}

static bool name_valid(const char *s, size_t len, size_t min, size_t max, const char *extra)
{
    return s && len >= min && len <= max && chars_valid(s, len, extra);
}

bool vrpc_name_valid_service(const char *s, size_t len)
{
    return name_valid(s, len, 1, VRPC_NAME_MAX, NULL);
}

bool vrpc_name_valid_argument(const char *s, size_t len)
{
    return name_valid(s, len, 0, VRPC_NAME_MAX, "+");
}

bool vrpc_name_can_name_service(const char *s, size_t len, bool argument)
{
    if (!argument && len > 0 && s[0] == '.')
        return false;
    return !(len >= 5 && memcmp(s + len - 5, ".yaml", 5) == 0);
}

bool vrpc_name_valid_domain(const char *s, size_t len)
{
    return name_valid(s, len, 1, VRPC_NAME_MAX, NULL) && is_alnum(s[0]);
}

bool vrpc_name_valid_label(const char *s, size_t len)
{
    return vrpc_name_valid_service(s, len);
}

bool vrpc_name_valid_user(const char *s, size_t len)
{
    return name_valid(s, len, 1, VRPC_USER_MAX, NULL) && s[0] != '-';
}

bool vrpc_name_valid_host(const char *s, size_t len)
{
    size_t label = 0; /* length of the label being read */

    if (!s || len == 0 || len > VRPC_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '.') {
            /* No empty label, no label ending in '-'. */
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        label++;
    }
    /* len <= VRPC_HOST_MAX keeps every label within 63 characters. */
    return label > 0 && s[len - 1] != '-';
}

bool vrpc_name_valid_qualified(const char *s, size_t len)
{
    const char *at;
    size_t domain_len;

    if (!s || len > VRPC_NAME_MAX)
        return false;
    at = memchr(s, '@', len);
    if (!at)
        return vrpc_name_valid_domain(s, len);
    domain_len = (size_t)(at - s);
    return vrpc_name_valid_domain(s, domain_len) &&
           vrpc_name_valid_host(at + 1, len - domain_len - 1);
}

bool vrpc_name_valid_target(const char *s, size_t len)
{
    if (!s || len > VRPC_NAME_MAX)
        return false;
    if (len > 0 && s[0] == '@')
        return name_valid(s + 1, len - 1, 0, VRPC_NAME_MAX, ":");
    if (memchr(s, '@', len))
        return vrpc_name_valid_qualified(s, len);
    return name_valid(s, len, 0, VRPC_NAME_MAX, ":");
}

int vrpc_name_split_qualified(const char *untrusted, char domain[VRPC_NAME_MAX + 1],
                              char host[VRPC_HOST_MAX + 1])
{
    const char *at;
    size_t len, domain_len;

    domain[0] = 0;
    host[0] = 0;
    if (!untrusted)
        return -EINVAL;
    len = strnlen(untrusted, VRPC_NAME_MAX + 1);
    if (!vrpc_name_valid_qualified(untrusted, len))
        return -EINVAL;
    at = memchr(untrusted, '@', len);
    domain_len = at ? (size_t)(at - untrusted) : len;
    memcpy(domain, untrusted, domain_len);
    domain[domain_len] = 0;
    if (!at)
        return 0;
    memcpy(host, at + 1, len - domain_len - 1);
    host[len - domain_len - 1] = 0;
    return 1;
}

int vrpc_name_join_qualified(char out[VRPC_NAME_MAX + 1], const char *domain, const char *host)
{
    size_t domain_len, host_len;

    out[0] = 0;
    if (!domain)
        return -EINVAL;
    domain_len = strnlen(domain, VRPC_NAME_MAX + 1);
    host_len = host ? strnlen(host, VRPC_HOST_MAX + 1) : 0;
    if (!vrpc_name_valid_domain(domain, domain_len) ||
        (host_len > 0 && !vrpc_name_valid_host(host, host_len)))
        return -EINVAL;
    if (host_len > 0 && domain_len + 1 + host_len > VRPC_NAME_MAX)
        return -ENAMETOOLONG;
    memcpy(out, domain, domain_len);
    out[domain_len] = 0;
    if (host_len > 0) {
        out[domain_len] = '@';
        memcpy(out + domain_len + 1, host, host_len);
        out[domain_len + 1 + host_len] = 0;
    }
    return 0;
}

int vrpc_name_split_call(const char *untrusted_call, char servicep[VRPC_NAME_MAX + 1],
                         char argumentp[VRPC_NAME_MAX + 1])
{
    const char *plus;
    size_t total, service_len, argument_len;

    servicep[0] = 0;
    argumentp[0] = 0;

    /* Validate the untrusted text in one place: lengths first, never reading past the
     * longest possible call, then the character sets. */
    if (!untrusted_call)
        return VRPC_NAME_E_SERVICE;
    total = strnlen(untrusted_call, 2 * VRPC_NAME_MAX + 2);
    plus = memchr(untrusted_call, '+', total);
    service_len = plus ? (size_t)(plus - untrusted_call) : total;
    argument_len = plus ? total - service_len - 1 : 0;
    if (!vrpc_name_valid_service(untrusted_call, service_len))
        return VRPC_NAME_E_SERVICE;
    if (plus && !vrpc_name_valid_argument(plus + 1, argument_len))
        return VRPC_NAME_E_ARGUMENT;

    memcpy(servicep, untrusted_call, service_len);
    servicep[service_len] = 0;
    if (plus) {
        memcpy(argumentp, plus + 1, argument_len);
        argumentp[argument_len] = 0;
    }
    return 0;
}
