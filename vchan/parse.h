/* SPDX-License-Identifier: MIT */
/*
 * parse.h - private: strict parsing of the decimal numbers vchan reads from XenStore.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Parse @untrusted (exactly @len bytes, as returned by xs_read) as a canonical unsigned
 * decimal: 1 to 10 ASCII digits, no sign, no spaces, no leading zero (except "0" itself),
 * no embedded NUL, value within [@min, @max]. Returns 0 and sets *@valp, or -EPROTO.
 */
int vchan_parse_u32(const char *untrusted, size_t len, uint32_t min, uint32_t max, uint32_t *valp);

/* A grant reference (1 .. 2^32-1). */
int vchan_parse_grant_ref(const char *untrusted, size_t len, uint32_t *refp);

/* An event-channel port (1 .. INT32_MAX, what the event-channel API can represent). */
int vchan_parse_port(const char *untrusted, size_t len, uint32_t *portp);

/* A real domain id (0 .. DOMID_FIRST_RESERVED-1). */
int vchan_parse_domid(const char *untrusted, size_t len, uint32_t *domidp);
