/* SPDX-License-Identifier: MIT */
/*
 * log.c - librpc's log sink: one formatted line per event, handed to the function installed
 * with rpc_set_log(); silent by default. Lines are cut at 512 bytes.
 */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "rpc.h"

static RpcLogFn log_fn;
static void *log_userdata;

void rpc_set_log(RpcLogFn fn, void *userdata)
{
    log_fn = fn;
    log_userdata = userdata;
}

void rpc_log(int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (!log_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_fn(level, line, log_userdata);
}
