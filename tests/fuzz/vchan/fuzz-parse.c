/* SPDX-License-Identifier: MIT */
/*
 * fuzz-parse.c - libFuzzer harness for the strict XenStore number parsers: any accepted
 * input must be a canonical decimal that prints back to exactly the same bytes and lies
 * within the requested range; nothing else may be accepted.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vchan/parse.h"

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

static void roundtrip(const char *s, size_t len, uint32_t v)
{
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%u", v);

    CHECK(n > 0 && (size_t)n == len && memcmp(buf, s, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uint32_t v, lo, hi;

    if (vchan_parse_grant_ref(s, size, &v) == 0) {
        CHECK(v >= 1);
        roundtrip(s, size, v);
    }
    if (vchan_parse_port(s, size, &v) == 0) {
        CHECK(v >= 1 && v <= INT32_MAX);
        roundtrip(s, size, v);
    }
    if (vchan_parse_domid(s, size, &v) == 0) {
        CHECK(v < 0x7FF0);
        roundtrip(s, size, v);
    }
    /* arbitrary ranges: the first 8 bytes pick them, the rest is the text */
    if (size >= 8) {
        memcpy(&lo, data, 4);
        memcpy(&hi, data + 4, 4);
        if (vchan_parse_u32(s + 8, size - 8, lo, hi, &v) == 0) {
            CHECK(v >= lo && v <= hi);
            roundtrip(s + 8, size - 8, v);
        }
    }
    return 0;
}
