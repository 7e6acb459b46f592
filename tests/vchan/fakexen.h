/* SPDX-License-Identifier: MIT */
/*
 * fakexen.h - an in-process fake of the Xen libraries vchan uses (XenStore with
 * transactions, permissions and watches; event channels; grant sharing and mapping with
 * unmap-notify, backed by memfd so that read-only mappings are really read-only), with
 * per-thread "current domain", failure injection at the N-th fallible call, and resource
 * counters for leak checks. Not the sim: it only exists inside one test process.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xenstore.h>

typedef struct FakeXenCounts {
    int xs_handles;
    int evtchn_handles;
    int gnt_handles;
    int ports;
    int grants;
    int maps;
} FakeXenCounts;

/* Fresh world, fake installed as vchan's Xen ops. */
void fake_xen_reset(void);
/* The calling thread acts as domain @domid from now on. */
void fake_xen_as(int domid);
/* Create /local/domain/<domid>/domid. */
void fake_xen_add_domain(int domid);
/* Destroy a domain without any unmap-notify: it is no longer "introduced" and its
 * /local/domain/<domid> subtree goes. */
void fake_xen_kill_domain(int domid);
/* XS_IS_DOMAIN_INTRODUCED refused with EACCES (an unprivileged guest). */
void fake_xen_set_unprivileged(bool on);
/* Fail the @n-th fallible call from now (1-based) with @err; 0 disables. */
void fake_xen_fail_at(int n, int err);
/* Fallible calls made since the last fake_xen_fail_at()/reset. */
int fake_xen_calls(void);
/* The next @n transaction commits fail with EAGAIN. */
void fake_xen_commit_eagain(int n);
void fake_xen_counts(FakeXenCounts *countsp);
/* Run the unmap-notify of every mapping and share of @domid as the kernel would when the
 * process dies (byte zeroed, event sent), but keep the memory mapped. */
void fake_xen_fire_unmap_notify(int domid);

/* XenStore inspection and tampering (no permission checks). */
char *fake_xs_get(const char *path, unsigned *lenp); /* malloc'd copy or NULL */
void fake_xs_set(const char *path, const char *val, size_t len, int owner, int reader);
int fake_xs_count_under(const char *prefix);
void fake_xs_rm(const char *prefix);
bool fake_xs_perms(const char *path, struct xs_permissions *perms, unsigned *nump);
unsigned fake_xs_txn_of(const char *path); /* transaction that wrote it, 0 if none */

/* Grant/mapping inspection. */
int fake_map_prot(const void *addr); /* prot of the mapping holding addr, -1 if none */
/* Which share call (1, 2, ... in order) and which page within it a grant ref is. */
bool fake_grant_origin(uint32_t ref, int *sharep, int *pagep);
