/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one-line reasons that go with VRPC_SERVICES_E_* returns (private to the
 * services library). Callers may pass a NULL buffer when they only want the
 * code.
 */

#include <stdarg.h>
#include <stdio.h>

#include "vrpc-services.h"

__attribute__((format(printf, 2, 3))) static inline void services_err(char *err, const char *fmt,
                                                                      ...)
{
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(err, VRPC_SERVICES_ERROR_MAX, fmt, ap);
    va_end(ap);
}
