/* SPDX-License-Identifier: MIT */
/*
 * peer-stream.h - the deterministic byte stream and the FNV-1a checksum that the vchan test
 * peers (xvchan-peer over Debian's libxenvchan, ovchan-peer over ours) both use, so that a
 * sender of one kind and a receiver of the other print the same checksum. Header-only: the
 * peers are standalone programs.
 */
#ifndef VRPC_TESTS_PEER_STREAM_H
#define VRPC_TESTS_PEER_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define PEER_FNV_INIT 0xcbf29ce484222325ull

/* Fold @n bytes into the FNV-1a hash @h. */
static inline uint64_t peer_fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The next @n bytes of the stream whose generator state is *@state (an LCG). */
static inline void peer_fill(uint8_t *buf, size_t n, uint64_t *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(*state >> 56);
    }
}

#endif
