/* SPDX-License-Identifier: MIT */
/*
 * cleanup.h - private: __attribute__((cleanup)) helpers for the keep-on-success pattern
 * (`*objp = obj; obj = NULL; return 0;`).
 */
#pragma once

#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(fn) __attribute__((cleanup(fn)))
#define _cleanup_free_ _cleanup_(vchan_freep_void)
#define _cleanup_close_ _cleanup_(vchan_closep)

static inline void vchan_freep_void(void *p)
{
    free(*(void **)p);
}

static inline void vchan_closep(int *fdp)
{
    if (*fdp >= 0)
        close(*fdp);
}

/* Take ownership out of a cleanup variable. */
#define VCHAN_TAKE(p)                                                                      \
    ({                                                                                     \
        __typeof__(p) _took = (p);                                                         \
        (p) = NULL;                                                                        \
        _took;                                                                             \
    })
