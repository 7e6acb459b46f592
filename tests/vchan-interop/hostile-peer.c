/* SPDX-License-Identifier: MIT */
/*
 * hostile-peer - the attacker of the hostile-peer interop test. It sets up a real vchan with
 * Debian's libxenvchan (as server it owns the control page; as client it maps the server's
 * grant refs read from XenStore), then, until SECONDS pass, one thread runs small
 * non-blocking traffic (reads and writes of at most 512 bytes, so libxenvchan's own unchecked
 * copies stay inside its rings) while another rewrites the control page at random: the four
 * producer/consumer indices, both ring orders, both live bytes and both notify bytes, with
 * random values, small offsets from the current value, off-by-one ring sizes and the valid
 * small values, and sends stray events. At the end it closes cleanly or dies without a
 * close (_exit), by the seed. The vrpc side under attack must end with EPROTO or EOF.
 *
 *   hostile-peer server|client DOMID PATH SECONDS SEED [--ring N]
 *
 * Prints "attacking" once connected and "writes N" (fields rewritten) at the end.
 * Exit 0, 1 on a setup failure, 2 on usage errors.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxenvchan.h>
#include <xenevtchn.h>

static struct libxenvchan *v;
static uint64_t deadline_ns;
static unsigned long long writes;
static unsigned seed;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift; the seed makes a failing run repeatable */
static uint32_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

static uint32_t pick_value(uint32_t cur)
{
    switch (rnd() % 6) {
    case 0:
        return rnd();
    case 1:
        return cur + rnd() % 4096;
    case 2:
        return cur - rnd() % 4096;
    case 3:
        return cur + (1u << (10 + rnd() % 11)) + (rnd() % 3) - 1; /* ring size +-1 */
    case 4:
        return rnd() % 3; /* 0, 1, 2: the valid live values */
    default:
        return cur ^ (1u << (rnd() % 32));
    }
}

static void scribble(void)
{
    struct vchan_interface *p = v->ring;
    uint32_t *idx[] = {&p->left.cons, &p->left.prod, &p->right.cons, &p->right.prod};
    uint16_t *ord[] = {&p->left_order, &p->right_order};
    uint8_t *bytes[] = {&p->cli_live, &p->srv_live, &p->cli_notify, &p->srv_notify};
    unsigned what = rnd() % 16;

    if (what < 8) {
        uint32_t *f = idx[what % 4];

        __atomic_store_n(f, pick_value(__atomic_load_n(f, __ATOMIC_RELAXED)), __ATOMIC_SEQ_CST);
    } else if (what < 10) {
        uint16_t *f = ord[what % 2];
        uint32_t val = rnd() % 2 ? 10 + rnd() % 11 : pick_value(*f);

        __atomic_store_n(f, (uint16_t)val, __ATOMIC_SEQ_CST);
    } else if (what < 14) {
        uint8_t *f = bytes[what % 4];
        uint32_t val = rnd() % 2 ? rnd() % 4 : rnd();

        /* the live bytes are rewritten rarely, so that traffic runs in between */
        if (what < 12 && rnd() % 4)
            return;
        __atomic_store_n(f, (uint8_t)val, __ATOMIC_SEQ_CST);
    } else {
        xenevtchn_notify(v->event, v->event_port);
        return;
    }
    writes++;
}

static void *scribbler(void *arg)
{
    (void)arg;
    while (now_ns() < deadline_ns) {
        struct timespec ts = {0, (long)(rnd() % 300) * 1000};

        if (rnd() % 8 == 0)
            scribble();
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int usage(FILE *f)
{
    fprintf(f, "usage: hostile-peer server|client DOMID PATH SECONDS SEED [--ring N]\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    static uint8_t buf[512];
    pthread_t thr;
    size_t ring = 65536;
    int domid, server, secs;
    bool clean_close;

    if (argc == 2 && strcmp(argv[1], "--help") == 0)
        return usage(stdout);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("hostile-peer 1\n");
        return 0;
    }
    if (argc != 6 && argc != 8)
        return usage(stderr);
    server = strcmp(argv[1], "server") == 0;
    if (!server && strcmp(argv[1], "client") != 0)
        return usage(stderr);
    if (argc == 8) {
        if (strcmp(argv[6], "--ring") != 0)
            return usage(stderr);
        ring = strtoull(argv[7], NULL, 0);
    }
    domid = atoi(argv[2]);
    secs = atoi(argv[4]);
    seed = (unsigned)strtoul(argv[5], NULL, 0) * 2654435761u + 1;
    clean_close = rnd() % 2;

    if (server) {
        v = libxenvchan_server_init(NULL, domid, argv[3], ring, ring);
        if (v) {
            v->blocking = 1;
            if (libxenvchan_wait(v) < 0) /* the client's connect event */
                return 1;
        }
    } else {
        for (int i = 0; i < 1000 && !v; i++) {
            v = libxenvchan_client_init(NULL, domid, argv[3]);
            if (!v)
                usleep(10000);
        }
    }
    if (!v) {
        fprintf(stderr, "hostile-peer: %s init failed: %s\n", argv[1], strerror(errno));
        return 1;
    }
    v->blocking = 0;
    printf("attacking\n");
    fflush(stdout);

    deadline_ns = now_ns() + (uint64_t)secs * 1000000000u;
    if (pthread_create(&thr, NULL, scribbler, NULL) != 0)
        return 1;
    while (now_ns() < deadline_ns) {
        struct pollfd pfd = {.fd = xenevtchn_fd(v->event), .events = POLLIN};

        libxenvchan_read(v, buf, 1 + rnd() % sizeof(buf));
        libxenvchan_write(v, buf, 1 + rnd() % sizeof(buf));
        if (poll(&pfd, 1, 1) > 0)
            libxenvchan_wait(v);
    }
    pthread_join(thr, NULL);
    printf("writes %llu\n", writes);
    fflush(stdout);
    if (!clean_close)
        _exit(0); /* the sim runs our unmap-notify, as Xen would for a killed process */
    libxenvchan_close(v);
    return 0;
}
