/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ring.c - libFuzzer harness for the vchan ring reader and writer. The input is a
 * program: the geometry and role of our endpoint, then a sequence of operations that either
 * act as the hostile peer (set its indices, live and notify bytes, rewrite orders or any
 * header byte) or call our stream/packet reads and writes, readv/writev, data_ready and
 * buffer_space. Rings are exact-size heap blocks so ASan flags any out-of-bounds access;
 * the harness also checks every result against an oracle: counts within bounds, read bytes
 * equal to the ring bytes at our consumer position, written bytes landing at our producer
 * position, and a violation staying latched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vchan/ring.h"

typedef struct Input {
    const uint8_t *p;
    size_t n;
} Input;

static uint8_t take8(Input *in)
{
    uint8_t v = 0;

    if (in->n) {
        v = *in->p++;
        in->n--;
    }
    return v;
}

static uint16_t take16(Input *in)
{
    return (uint16_t)(take8(in) | take8(in) << 8);
}

static uint32_t take32(Input *in)
{
    return (uint32_t)take16(in) | (uint32_t)take16(in) << 16;
}

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

static uint8_t scratch[1 << 17];
static uint8_t src[1 << 17];

static void check_read(VchanRing *r, uint32_t cons0, const struct iovec *iov, int iovcnt,
                       ssize_t got, size_t want, size_t min, int err0)
{
    size_t k = 0;

    if (err0) {
        CHECK(got == err0);
        return;
    }
    if (got < 0) {
        CHECK(got == -EPROTO || got == -ECONNRESET || got == -EAGAIN);
        CHECK(r->rcons == cons0);
        return;
    }
    CHECK((size_t)got <= want && (size_t)got <= r->rsize);
    CHECK(got == 0 || (size_t)got >= min);
    CHECK(r->rcons == cons0 + (uint32_t)got);
    for (int i = 0; i < iovcnt && k < (size_t)got; i++) {
        const uint8_t *b = iov[i].iov_base;

        for (size_t j = 0; j < iov[i].iov_len && k < (size_t)got; j++, k++)
            CHECK(b[j] == r->rbuf[(cons0 + k) & (r->rsize - 1)]);
    }
}

static void check_write(VchanRing *r, uint32_t prod0, const uint8_t *data, ssize_t got, size_t want,
                        size_t min, int err0)
{
    if (err0) {
        CHECK(got == err0);
        return;
    }
    if (got < 0) {
        CHECK(got == -EAGAIN || got == -EPIPE || got == -EPROTO);
        CHECK(r->wprod == prod0);
        return;
    }
    CHECK((size_t)got <= want && (size_t)got <= r->wsize && (size_t)got >= min);
    CHECK(r->wprod == prod0 + (uint32_t)got);
    for (size_t k = 0; k < (size_t)got; k++)
        CHECK(r->wbuf[(prod0 + k) & (r->wsize - 1)] == data[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Input in = {data, size};
    uint8_t g = take8(&in);
    bool is_server = g & 0x80;
    unsigned lo = 10 + (g & 7), ro = 10 + ((g >> 3) & 7); /* orders 10..17 */
    uint32_t rstart = take32(&in), wstart = take32(&in);
    uint8_t *page = calloc(1, 4096);
    uint8_t *lbuf = calloc(1, (size_t)1 << lo), *rbuf = calloc(1, (size_t)1 << ro);
    VchanCtrl *ctrl = (VchanCtrl *)page;
    VchanRing r;
    int ops = 0;

    for (size_t i = 0; i < (size_t)1 << lo; i++)
        lbuf[i] = (uint8_t)(i * 31 ^ 0x5A);
    for (size_t i = 0; i < (size_t)1 << ro; i++)
        rbuf[i] = (uint8_t)(i * 17 ^ 0xA5);
    vchan_ctrl_server_init(ctrl, lo, ro);
    vchan_ctrl_client_connect(ctrl);
    vchan_ring_init(&r, ctrl, is_server, lbuf, 1u << lo, rbuf, 1u << ro, rstart, wstart);
    /* a consistent starting point: our own indices published, the peer's equal to them */
    atomic_store(r.r_cons, rstart);
    atomic_store(r.r_prod, rstart);
    atomic_store(r.w_prod, wstart);
    atomic_store(r.w_cons, wstart);

    while (in.n > 0 && ops++ < 4096) {
        uint8_t op = take8(&in);
        int err0 = r.error; /* once latched, every I/O returns it */
        bool kick;

        switch (op % 18) {
        case 0: /* peer: absolute producer index */
            atomic_store(r.r_prod, take32(&in));
            break;
        case 1: /* peer: producer relative to our consumer, mostly plausible */
            atomic_store(r.r_prod, r.rcons + (uint32_t)(int16_t)take16(&in));
            break;
        case 2:
            atomic_store(r.w_cons, take32(&in));
            break;
        case 3:
            atomic_store(r.w_cons, r.wprod - (uint32_t)(int16_t)take16(&in));
            break;
        case 4:
            atomic_store(r.peer_live, take8(&in));
            break;
        case 5:
            atomic_store(r.own_notify, take8(&in));
            break;
        case 6:
        case 7: { /* read / recv */
            size_t n = take16(&in) % (sizeof(scratch) / 2);
            size_t min = op % 18 == 7 ? n : 1;
            struct iovec iov = {scratch, n};
            uint32_t cons0 = r.rcons;
            ssize_t got;

            if (n == 0)
                break;
            got = vchan_ring_readv(&r, &iov, 1, min, &kick);
            check_read(&r, cons0, &iov, 1, got, n, min, err0);
            break;
        }
        case 8:
        case 9: { /* write / send */
            size_t n = take16(&in) % (sizeof(src) / 2);
            size_t min = op % 18 == 9 ? n : 1;
            struct iovec iov = {src, n};
            uint32_t prod0 = r.wprod;
            ssize_t got;

            if (n == 0)
                break;
            for (size_t i = 0; i < n; i++)
                src[i] = (uint8_t)(prod0 + i * 7);
            got = vchan_ring_writev(&r, &iov, 1, min, &kick);
            check_write(&r, prod0, src, got, n, min, err0);
            break;
        }
        case 10: { /* readv with up to 4 pieces */
            struct iovec iov[4];
            int cnt = 1 + take8(&in) % 4;
            size_t off = 0, want = 0;
            uint32_t cons0 = r.rcons;
            ssize_t got;

            for (int i = 0; i < cnt; i++) {
                size_t len = take16(&in) % 4096;

                iov[i] = (struct iovec){scratch + off, len};
                off += len;
                want += len;
            }
            if (want == 0)
                break;
            got = vchan_ring_readv(&r, iov, cnt, 1, &kick);
            check_read(&r, cons0, iov, cnt, got, want, 1, err0);
            break;
        }
        case 11: { /* writev, pieces taken consecutively from src */
            struct iovec iov[4];
            int cnt = 1 + take8(&in) % 4;
            size_t off = 0;
            uint32_t prod0 = r.wprod;
            ssize_t got;

            for (int i = 0; i < cnt; i++) {
                size_t len = take16(&in) % 4096;

                iov[i] = (struct iovec){src + off, len};
                off += len;
            }
            if (off == 0)
                break;
            for (size_t i = 0; i < off; i++)
                src[i] = (uint8_t)(i * 13 + prod0);
            {
                size_t min = take8(&in) & 1 ? off : 1;

                got = vchan_ring_writev(&r, iov, cnt, min, &kick);
                check_write(&r, prod0, src, got, off, min, err0);
            }
            break;
        }
        case 12: {
            ssize_t a = vchan_ring_data_ready(&r), b = vchan_ring_buffer_space(&r);

            CHECK(a == -EPROTO || (a >= 0 && (size_t)a <= r.rsize));
            CHECK(b == -EPROTO || (b >= 0 && (size_t)b <= r.wsize));
            break;
        }
        case 13: /* any header byte, or a grant slot */
            page[take8(&in) % 64] = take8(&in);
            break;
        case 14: /* orders rewritten after connect: must not matter */
            atomic_store(&ctrl->left_order, take16(&in));
            atomic_store(&ctrl->right_order, take16(&in));
            break;
        case 15: {
            VchanPeer st = vchan_ring_peer_state(&r);

            CHECK(st <= VCHAN_PEER_BROKEN);
            break;
        }
        case 16:
            vchan_ring_request_notify(&r, take8(&in) & 3);
            break;
        case 17:
            atomic_store(r.peer_notify, take8(&in));
            break;
        }
        /* a violation is latched for good */
        if (err0)
            CHECK(r.error == err0);
        /* geometry never changes */
        CHECK(r.rsize == 1u << (is_server ? lo : ro) && r.wsize == 1u << (is_server ? ro : lo));
    }

    free(lbuf);
    free(rbuf);
    free(page);
    return 0;
}
