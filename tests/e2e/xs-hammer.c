/* SPDX-License-Identifier: MIT */
/*
 * xs-hammer: a hostile process of a guest for the e2e tests. It writes the xenstore node
 * PATH (relative to its own domain's folder) COUNT times, as fast as xenstored answers,
 * cycling through the VALUEs given. Exits 0 after the last write, 1 when a write fails.
 *
 *   xs-hammer PATH COUNT VALUE...
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf(
            "Usage: xs-hammer PATH COUNT VALUE...\n"
            "Writes to xenstore PATH COUNT times, cycling through the VALUEs (a test helper).\n");
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "xs-hammer: expected PATH COUNT VALUE... (try --help)\n");
        return 2;
    }
    char *end;
    long count = strtol(argv[2], &end, 10);
    if (*end || count < 1) {
        fprintf(stderr, "xs-hammer: bad COUNT '%s'\n", argv[2]);
        return 2;
    }
    struct xs_handle *xs = xs_open(0);
    if (!xs) {
        fprintf(stderr, "xs-hammer: cannot open xenstore: %s\n", strerror(errno));
        return 1;
    }
    int n_values = argc - 3;
    for (long i = 0; i < count; i++) {
        const char *v = argv[3 + i % n_values];
        if (!xs_write(xs, XBT_NULL, argv[1], v, (unsigned)strlen(v))) {
            fprintf(stderr, "xs-hammer: write %ld of %s: %s\n", i, argv[1], strerror(errno));
            xs_close(xs);
            return 1;
        }
    }
    xs_close(xs);
    return 0;
}
