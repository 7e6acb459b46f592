/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Scope-bound cleanup helpers (policy, services). A variable
 * declared with one of these attributes is released when it goes out of
 * scope; hand ownership out with the keep-on-success pattern:
 *     *objp = obj; obj = NULL; return 0;
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
    free(*(void **)p);
}

static inline void cleanup_closep(int *fdp)
{
    if (*fdp >= 0) {
        int saved = errno;
        close(*fdp);
        errno = saved;
    }
}

static inline void cleanup_fclosep(FILE **fp)
{
    if (*fp)
        fclose(*fp);
}

static inline void cleanup_closedirp(DIR **dp)
{
    if (*dp)
        closedir(*dp);
}

/* _cleanup_(fn): run fn(&var) when var goes out of scope. */
#define _cleanup_(fn) __attribute__((cleanup(fn)))
#define _cleanup_free_ __attribute__((cleanup(cleanup_freep)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(cleanup_fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(cleanup_closedirp)))

/* Declare a cleanup function for TYPE * that calls FUNC (which accepts NULL). */
#define DEFINE_CLEANUP_FUNC(type, func)  \
    static inline void func##p(type **p) \
    {                                    \
        if (*p)                          \
            func(*p);                    \
    }

/* Take a pointer out of a cleanup variable, leaving NULL behind. */
#define TAKE_PTR(ptr)                   \
    ({                                  \
        __typeof__(ptr) taken_ = (ptr); \
        (ptr) = NULL;                   \
        taken_;                         \
    })
