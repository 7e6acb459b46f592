/* SPDX-License-Identifier: MIT */
/*
 * cleanup.h - private: __attribute__((cleanup)) helpers for the keep-on-success pattern
 * (`*objp = obj; obj = NULL; return 0;`).
 */
#pragma once

#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(fn) __attribute__((cleanup(fn)))
#define _cleanup_free_ _cleanup_(rpc_freep_void)

static inline void rpc_freep_void(void *p)
{
    free(*(void **)p);
}

/* Take ownership out of a cleanup variable. */
#define RPC_TAKE(p)                                                                        \
    ({                                                                                     \
        __typeof__(p) _took = (p);                                                         \
        (p) = NULL;                                                                        \
        _took;                                                                             \
    })
