/* SPDX-License-Identifier: MIT */
/*
 * vrpc.Ping: the health check. Prints "pong" (and " ARG" when called as
 * vrpc.Ping+ARG) and a newline at once, then exits 0 without reading stdin,
 * so a call measures the framework and not the handler.
 */

#include <stdio.h>

#include "service-cli.h"

int main(int argc, char **argv)
{
    service_cli(argc, argv, "vrpc.Ping", "Print \"pong\" and the argument, if any, then exit.");
    if (argc > 1 && argv[1][0])
        printf("pong %s\n", argv[1]);
    else
        printf("pong\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
