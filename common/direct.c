/* SPDX-License-Identifier: MIT */
/*
 * direct.c - the texts both ends of the direct guest<->guest path agree on (direct.h): the
 * channel's xenstore path, the redirect, the serve request and the exit report, formatted by
 * the side that trusts them and parsed strictly (whole string, ranges) by the other.
 */

#include "direct.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "names.h"

static int fit(int n, size_t size)
{
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int vrpc_direct_base_path(char *buf, size_t size, int target_domid)
{
    return fit(snprintf(buf, size, "/local/domain/%d/vrpc-direct", target_domid), size);
}

int vrpc_direct_path(char *buf, size_t size, int target_domid, unsigned ch)
{
    return fit(snprintf(buf, size, "/local/domain/%d/vrpc-direct/%u", target_domid, ch), size);
}

int vrpc_direct_format_redirect(char *buf, size_t size, int target_domid, unsigned ch,
                                uint64_t token, uint64_t call_id)
{
    return fit(snprintf(buf, size, "direct %d %u %016" PRIx64 " %" PRIu64, target_domid, ch,
                        token, call_id),
               size);
}

/* One decimal number of at most @max, no sign, no leading zero, up to a space or the end. */
static int take_dec(const char **sp, uint64_t max, uint64_t *vp)
{
    const char *s = *sp;
    uint64_t v = 0;
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9') {
        if (n > 19 || (n && s[0] == '0'))
            return -EINVAL;
        uint64_t d = (uint64_t)(s[n] - '0');
        if (v > (max - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
        n++;
    }
    if (!n)
        return -EINVAL;
    *sp = s + n;
    *vp = v;
    return 0;
}

static int take_hex16(const char **sp, uint64_t *vp)
{
    const char *s = *sp;
    uint64_t v = 0;

    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -EINVAL;
        v = v << 4 | d;
    }
    *sp = s + 16;
    *vp = v;
    return 0;
}

static int take_space(const char **sp)
{
    if (**sp != ' ')
        return -EINVAL;
    (*sp)++;
    return 0;
}

/* A word of [A-Za-z0-9._+-] into @out (at most @cap - 1 bytes). */
static int take_word(const char **sp, char *out, size_t cap)
{
    const char *s = *sp;
    size_t n = strcspn(s, " \n");

    if (!n || n >= cap)
        return -EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    *sp = s + n;
    return 0;
}

int vrpc_direct_parse_redirect(const char *untrusted, int *target_domidp, unsigned *chp,
                               uint64_t *tokenp, uint64_t *call_idp)
{
    const char *s = untrusted;
    uint64_t dom, ch, token, id;

    if (!s || strncmp(s, "direct ", 7) != 0)
        return -EINVAL;
    s += 7;
    if (take_dec(&s, 0x7fff, &dom) < 0 || dom == 0 || take_space(&s) < 0 ||
        take_dec(&s, UINT32_MAX, &ch) < 0 || take_space(&s) < 0 || take_hex16(&s, &token) < 0 ||
        take_space(&s) < 0 || take_dec(&s, UINT64_MAX, &id) < 0 || *s)
        return -EINVAL;
    *target_domidp = (int)dom;
    *chp = (unsigned)ch;
    *tokenp = token;
    *call_idp = id;
    return 0;
}

int vrpc_direct_format_serve(char *buf, size_t size, const VrpcDirectServe *req)
{
    return fit(snprintf(buf, size, "%u %d %s %016" PRIx64 " %" PRIu64 " %s %s %s\n", req->ch,
                        req->peer_domid, req->source, req->token, req->call_id, req->service,
                        req->argument[0] ? req->argument : "-", req->user[0] ? req->user : "-"),
               size);
}

int vrpc_direct_parse_serve(const char *untrusted, size_t len, VrpcDirectServe *req)
{
    char line[256];
    const char *s = line;
    uint64_t ch, dom;

    if (len == 0 || len >= sizeof(line) || memchr(untrusted, '\0', len))
        return -EINVAL;
    memcpy(line, untrusted, len);
    line[len] = '\0';
    memset(req, 0, sizeof(*req));
    if (take_dec(&s, UINT32_MAX, &ch) < 0 || take_space(&s) < 0 ||
        take_dec(&s, 0x7fff, &dom) < 0 || dom == 0 || take_space(&s) < 0 ||
        take_word(&s, req->source, sizeof(req->source)) < 0 || take_space(&s) < 0 ||
        take_hex16(&s, &req->token) < 0 || take_space(&s) < 0 ||
        take_dec(&s, UINT64_MAX, &req->call_id) < 0 || take_space(&s) < 0 ||
        take_word(&s, req->service, sizeof(req->service)) < 0 || take_space(&s) < 0 ||
        take_word(&s, req->argument, sizeof(req->argument)) < 0 || take_space(&s) < 0 ||
        take_word(&s, req->user, sizeof(req->user)) < 0 || strcmp(s, "\n") != 0)
        return -EINVAL;
    if (strcmp(req->argument, "-") == 0)
        req->argument[0] = '\0';
    if (strcmp(req->user, "-") == 0)
        req->user[0] = '\0';
    if (!vrpc_name_valid_service(req->service, strlen(req->service)) ||
        !vrpc_name_valid_domain(req->source, strlen(req->source)) ||
        (req->user[0] && !vrpc_name_valid_user(req->user, strlen(req->user))) ||
        !vrpc_name_valid_argument(req->argument, strlen(req->argument)))
        return -EINVAL;
    req->ch = (unsigned)ch;
    req->peer_domid = (int)dom;
    return 0;
}

/* The words of the negative codes: exit_words[-1 - code]. */
static const char *const exit_words[] = {"aborted", "expired", "cancelled"};
#define N_EXIT_WORDS ((int)(sizeof(exit_words) / sizeof(exit_words[0])))

const char *vrpc_direct_format_exit(char *buf, size_t size, int code, bool refused)
{
    if (code > 255 || code < -N_EXIT_WORDS)
        snprintf(buf, size, "%s", "");
    else if (code < 0)
        snprintf(buf, size, "%s", exit_words[-1 - code]);
    else
        snprintf(buf, size, "%s%d", refused ? VRPC_DIRECT_REFUSED_PREFIX : "", code);
    return buf;
}

int vrpc_direct_parse_exit(const char *untrusted, bool *refused)
{
    const char *s = untrusted;
    size_t plen = strlen(VRPC_DIRECT_REFUSED_PREFIX);
    bool ref = false;
    uint64_t v;

    if (refused)
        *refused = false;
    if (!s)
        return -EINVAL;
    if (strncmp(s, VRPC_DIRECT_REFUSED_PREFIX, plen) == 0) {
        ref = true;
        s += plen;
    }
    for (int i = 0; !ref && i < N_EXIT_WORDS; i++)
        if (strcmp(s, exit_words[i]) == 0)
            return -1 - i;
    if (take_dec(&s, 255, &v) < 0 || *s)
        return -EINVAL;
    if (refused)
        *refused = ref;
    return (int)v;
}

const char *vrpc_direct_fallback_name(unsigned reason)
{
    switch (reason) {
    case VRPC_DIRECT_FB_CONNECT:
        return "connect-failed";
    case VRPC_DIRECT_FB_REFUSED:
        return "target-refused";
    case VRPC_DIRECT_FB_LOST:
        return "channel-lost";
    default:
        return "unknown";
    }
}
