/* SPDX-License-Identifier: MIT */
/* memory.c - the daemons' allocator settings (memory.h). */
#include "memory.h"

#include <malloc.h>

#define KEEP_FREED_BYTES (32 * 1024 * 1024)
#define HEAP_BLOCK_MAX (4 * 1024 * 1024)

int vrpc_daemon_keep_freed_memory(void)
{
#ifdef __GLIBC__
    /* Setting either value also turns off glibc's dynamic threshold, which would otherwise
     * move them back and forth with the frame sizes it sees. */
    if (mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES) != 1)
        return -1;
    if (mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_MAX) != 1)
        return -1;
#endif
    return 0;
}
