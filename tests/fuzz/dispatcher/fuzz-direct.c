/* SPDX-License-Identifier: MIT */
/*
 * fuzz-direct.c - libFuzzer harness for the parsers of the direct data path's messages
 * (common/direct.c), all untrusted text from agents: the redirect a source agent gets,
 * the serve request a target agent gets, and the exit reports both agents send to the
 * dispatcher. The first byte picks the parser, the rest is the text. Checks: no crash; what
 * parses is canonical (formatting the parsed values gives back exactly the input); the names
 * of a serve request follow their rules; an exit report is a code 0..255, "refused-CODE",
 * aborted or expired, and nothing else.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/direct.h"
#include "common/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void redirect(const char *text)
{
    int dom;
    unsigned ch;
    uint64_t token, id;
    char again[128];

    if (vrpc_direct_parse_redirect(text, &dom, &ch, &token, &id) != 0)
        return;
    assert(dom > 0 && dom <= 0x7fff);
    int n = vrpc_direct_format_redirect(again, sizeof(again), dom, ch, token, id);
    assert(n > 0 && strcmp(again, text) == 0);
}

static void serve(const char *text, size_t len)
{
    VrpcDirectServe req;
    char again[512];

    if (vrpc_direct_parse_serve(text, len, &req) != 0)
        return;
    assert(req.peer_domid > 0 && req.peer_domid <= 0x7fff);
    assert(vrpc_name_valid_domain(req.source, strlen(req.source)));
    assert(vrpc_name_valid_service(req.service, strlen(req.service)));
    assert(vrpc_name_valid_argument(req.argument, strlen(req.argument)));
    assert(!req.user[0] || vrpc_name_valid_user(req.user, strlen(req.user)));
    int n = vrpc_direct_format_serve(again, sizeof(again), &req);
    assert(n > 0 && (size_t)n == len && memcmp(again, text, len) == 0);
}

static void exit_report(const char *text)
{
    bool refused = true;
    char again[32];
    int r = vrpc_direct_parse_exit(text, &refused);

    if (r == -EINVAL) {
        assert(!refused);
        return;
    }
    /* a word (never refused) or a code 0..255, and the text is exactly its report */
    assert(r >= VRPC_DIRECT_EXIT_CANCELLED && r <= 255);
    assert(r >= 0 || !refused);
    assert(strcmp(vrpc_direct_format_exit(again, sizeof(again), r, refused), text) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[512];

    if (size < 1 || size - 1 >= sizeof(text))
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        redirect(text);
        break;
    case 1:
        serve(text, size - 1); /* by length: an embedded NUL must be refused */
        break;
    default:
        exit_report(text);
        break;
    }
    return 0;
}
