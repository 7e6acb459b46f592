/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Process-wide allocator settings for the long-running daemons (never called by a
 * library on an application's behalf).
 */

/* vrpc_daemon_keep_freed_memory() - tells glibc's malloc to keep up to 32 MiB of freed memory
 * at the top of the heap and to serve blocks under 4 MiB from the heap, instead of giving
 * memory back to the kernel after every burst. A relay buffers each frame it cannot pass on
 * yet (librpc's hold queue: one malloc and one free per frame, 64 KiB and up); with glibc's
 * defaults each of those frees trimmed the heap (brk) or unmapped the block, and the next
 * frame faulted the pages in again: about 40% of a streaming dispatcher's time. Returns 0, or
 * -1 if the allocator refused a setting (the defaults then stay; nothing else changes). */
int vrpc_daemon_keep_freed_memory(void);
