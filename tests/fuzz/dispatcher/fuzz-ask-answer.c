/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ask-answer.c - libFuzzer harness for the parser of the ask program's answer line
 * (ask_parse_line()): bytes a prompt program relays from whoever answers. Checks: no crash,
 * only "allow" and "allow NAME" with a valid NAME (NAME@HOST too) ever allow, the recorded text is the input
 * up to its first NUL, and a deny always carries a reason.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    AskAnswer a;

    if (size > ASK_LINE_MAX + 8)
        return 0;
    ask_parse_line((const char *)data, size, &a);
    switch (a.verdict) {
    case ASK_VERDICT_ALLOW:
        assert(size == 5 && memcmp(data, "allow", 5) == 0);
        break;
    case ASK_VERDICT_ALLOW_NAME:
        assert(size > 6 && memcmp(data, "allow ", 6) == 0 && strlen(a.name) == size - 6);
        assert(vrpc_policy_qualified_domain_is_valid(a.name) || strcmp(a.name, "@adminvm") == 0);
        break;
    case ASK_VERDICT_DENY:
        assert(a.reason[0] != '\0');
        break;
    }
    assert(strlen(a.text) <= ASK_LINE_MAX);
    return 0;
}
