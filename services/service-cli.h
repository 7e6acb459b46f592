/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * --help and --version for the shipped services. A service's argv[1] is the
 * caller's argument (untrusted, and "--help" is a valid argument), so options
 * are honoured only when the program is run by hand: outside vrpc, where
 * VRPC_SERVICE_NAME is not set. Under vrpc, argv[1] is never an option.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

/* Handle --help / --version when run by hand; returns only otherwise. */
static inline void service_cli(int argc, char **argv, const char *name, const char *usage)
{
    if (getenv("VRPC_SERVICE_NAME") || argc != 2)
        return;
    if (strcmp(argv[1], "--help") == 0) {
        printf("Usage: %s [ARGUMENT]\n%s\n"
               "vrpc runs this service with the caller's argument as ARGUMENT; options are\n"
               "only recognised when VRPC_SERVICE_NAME is unset. See docs/services.md.\n",
               name, usage);
        exit(0);
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s (vrpc) %s\n", name, VRPC_VERSION);
        exit(0);
    }
}
