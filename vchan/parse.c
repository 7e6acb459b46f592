/* SPDX-License-Identifier: MIT */
/*
 * parse.c - strict decimal parsing for values read from XenStore (grant refs, ports, domain
 * ids). Anything but a canonical decimal number in range is rejected: signs, whitespace,
 * junk, leading zeros, embedded NULs, overflow and empty strings. libxenvchan's atoi() would
 * turn "12abc" into 12 and "-1" into a huge ref.
 */
#include "parse.h"

#include <errno.h>
#include <stdint.h>

#include "vchan.h"

int vchan_parse_u32(const char *untrusted, size_t len, uint32_t min, uint32_t max, uint32_t *valp)
{
    uint64_t val = 0;

    if (!untrusted || len == 0 || len > 10)
        return -EPROTO;
    if (len > 1 && untrusted[0] == '0')
        return -EPROTO;
    for (size_t i = 0; i < len; i++) {
        char ch = untrusted[i];

        if (ch < '0' || ch > '9')
            return -EPROTO;
        val = val * 10 + (uint64_t)(ch - '0'); /* 10 digits cannot overflow 64 bits */
    }
    if (val < min || val > max)
        return -EPROTO;
    *valp = (uint32_t)val;
    return 0;
}

int vchan_parse_grant_ref(const char *untrusted, size_t len, uint32_t *refp)
{
    return vchan_parse_u32(untrusted, len, 1, UINT32_MAX, refp);
}

int vchan_parse_port(const char *untrusted, size_t len, uint32_t *portp)
{
    return vchan_parse_u32(untrusted, len, 1, INT32_MAX, portp);
}

int vchan_parse_domid(const char *untrusted, size_t len, uint32_t *domidp)
{
    return vchan_parse_u32(untrusted, len, 0, VCHAN_DOMID_FIRST_RESERVED - 1, domidp);
}
