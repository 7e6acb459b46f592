/* SPDX-License-Identifier: MIT */
/*
 * xenops.h - private: the Xen library calls vchan makes, behind one table of function
 * pointers. Production uses the real libxenstore/libxenevtchn/libxengnttab; unit tests may
 * install an in-process fake to inject a failure at every init step and count leaks.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

struct xentoollog_logger;

typedef struct VchanXenOps {
    struct xs_handle *(*xs_open)(unsigned long flags);
    void (*xs_close)(struct xs_handle *xsh);
    void *(*xs_read)(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len);
    bool (*xs_write)(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
                     unsigned int len);
    bool (*xs_rm)(struct xs_handle *h, xs_transaction_t t, const char *path);
    bool (*xs_set_permissions)(struct xs_handle *h, xs_transaction_t t, const char *path,
                               struct xs_permissions *perms, unsigned int num_perms);
    xs_transaction_t (*xs_transaction_start)(struct xs_handle *h);
    bool (*xs_transaction_end)(struct xs_handle *h, xs_transaction_t t, bool abort);
    bool (*xs_watch)(struct xs_handle *h, const char *path, const char *token);
    int (*xs_fileno)(struct xs_handle *h);
    char **(*xs_check_watch)(struct xs_handle *h);
    bool (*xs_is_domain_introduced)(struct xs_handle *h, unsigned int domid);

    xenevtchn_handle *(*evtchn_open)(struct xentoollog_logger *logger, unsigned int flags);
    int (*evtchn_close)(xenevtchn_handle *xce);
    int (*evtchn_fd)(xenevtchn_handle *xce);
    int (*evtchn_notify)(xenevtchn_handle *xce, evtchn_port_t port);
    xenevtchn_port_or_error_t (*evtchn_bind_unbound_port)(xenevtchn_handle *xce, uint32_t domid);
    xenevtchn_port_or_error_t (*evtchn_bind_interdomain)(xenevtchn_handle *xce, uint32_t domid,
                                                         evtchn_port_t remote_port);
    int (*evtchn_unbind)(xenevtchn_handle *xce, evtchn_port_t port);
    xenevtchn_port_or_error_t (*evtchn_pending)(xenevtchn_handle *xce);
    int (*evtchn_unmask)(xenevtchn_handle *xce, evtchn_port_t port);

    xengntshr_handle *(*gntshr_open)(struct xentoollog_logger *logger, unsigned flags);
    int (*gntshr_close)(xengntshr_handle *xgs);
    void *(*gntshr_share_pages)(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs,
                                int writable);
    void *(*gntshr_share_page_notify)(xengntshr_handle *xgs, uint32_t domid, uint32_t *ref,
                                      int writable, uint32_t notify_offset,
                                      evtchn_port_t notify_port);
    int (*gntshr_unshare)(xengntshr_handle *xgs, void *start_address, uint32_t count);

    xengnttab_handle *(*gnttab_open)(struct xentoollog_logger *logger, unsigned open_flags);
    int (*gnttab_close)(xengnttab_handle *xgt);
    void *(*gnttab_map_grant_ref_notify)(xengnttab_handle *xgt, uint32_t domid, uint32_t ref,
                                         int prot, uint32_t notify_offset,
                                         evtchn_port_t notify_port);
    void *(*gnttab_map_domain_grant_refs)(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
                                          uint32_t *refs, int prot);
    int (*gnttab_unmap)(xengnttab_handle *xgt, void *start_address, uint32_t count);
} VchanXenOps;

/* The real libraries. */
extern const VchanXenOps vchan_xen_real_ops;

/* Replace the table (tests only; NULL restores the real one). Not thread-safe. */
void vchan_xen_set_ops(const VchanXenOps *ops);
