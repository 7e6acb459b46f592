/* SPDX-License-Identifier: MIT */
/*
 * link.h - the dispatcher's links to other hosts (dispatcher.yaml host:, docs/cross-host.md):
 * a TLS listener on host.listen, a dialer per configured peer with backoff, exactly one link
 * per pair of hosts, a periodic ping for the round-trip time. An up link is a Peer of kind
 * PEER_HOST whose librpc connection runs over TLS (tls.c).
 */
#pragma once

#include <stdio.h>

#include "dispatcher.h"
#include "tls.h"

typedef struct Links Links;

/* The TLS context of host @h (*@tlsp NULL if it is not enabled): CA, certificate and key
 * loaded, the certificate naming the host; a key others may read is warned about. At start,
 * before anything else: a bad value is refused with FILE:LINE:COL. Returns 0, or -errno with
 * a reason in @err. */
int links_load_tls(const HostConfig *h, TlsCtx **tlsp, char *err, size_t errsize);
/* Start listening and dialling per d->config.host with @tls from links_load_tls() (taken,
 * also on failure; nothing if it is not enabled). Returns 0, or -errno with a reason in
 * @err. */
int links_new(Links **lsp, Dispatcher *d, TlsCtx *tls, char *err, size_t errsize);
Links *links_free(Links *ls);

/* The up link to host @name, or NULL. */
Peer *links_find(Links *ls, const char *name);
/* Whether @name is a configured peer host. */
bool links_is_peer(const Links *ls, const char *name);
/* One line per peer for vrpc-ctl status: "host NAME state STATE rtt-us N calls-in-flight N". */
void links_status(const Links *ls, FILE *f);
