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

bool vrpc_name_valid_target(const char *s, size_t len)
{
    return name_valid(s, len, 0, VRPC_NAME_MAX, "@:");
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
