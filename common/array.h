/* SPDX-License-Identifier: MIT */
/*
 * array.h - the one growth rule of the growable arrays (items, n, cap): when full, double
 * the capacity (or start at @first) with one realloc.
 */
#ifndef VRPC_COMMON_ARRAY_H
#define VRPC_COMMON_ARRAY_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * vrpc_array_reserve() - make room for one more item in the array at *@itemsp (the address
 * of a T *) holding @n items of @size bytes in *@capp slots. Returns 0, or -ENOMEM with the
 * array and *@capp unchanged.
 */
static inline int vrpc_array_reserve(void *itemsp, size_t n, size_t *capp, size_t size,
                                     size_t first)
{
    size_t cap;
    void *items, *bigger;

    if (n < *capp)
        return 0;
    cap = *capp ? *capp * 2 : first;
    if (cap > SIZE_MAX / size)
        return -ENOMEM;
    memcpy(&items, itemsp, sizeof(items)); /* T * and void * share their representation */
    bigger = realloc(items, cap * size);
    if (!bigger)
        return -ENOMEM;
    memcpy(itemsp, &bigger, sizeof(bigger));
    *capp = cap;
    return 0;
}

#endif
