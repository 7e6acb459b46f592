/* SPDX-License-Identifier: MIT */
/*
 * tls.h - the dispatcher's TLS for cross-host links (OpenSSL 3): TLS 1.3 only, mutual
 * authentication against the configured CA, the peer's host name taken ONLY from its
 * certificate's subjectAltName DNS entries. A finished handshake becomes a librpc byte-stream
 * transport (rpc_conn_new_stream), so librpc stays free of OpenSSL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "librpc/rpc.h"

typedef struct TlsCtx TlsCtx;
typedef struct Tls Tls;

/* Load CA, certificate and key (PEM files). Returns 0 or -EINVAL with a reason in @err and in
 * *@whichp the file it is about: 0 the CA, 1 the certificate, 2 the key, -1 none. */
int tls_ctx_new(TlsCtx **ctxp, const char *ca, const char *cert, const char *key, int *whichp,
                char *err, size_t errsize);
TlsCtx *tls_ctx_free(TlsCtx *ctx);
/* Whether @name is one of the certificate's own subjectAltName DNS entries. */
bool tls_ctx_cert_has_name(const TlsCtx *ctx, const char *name);

/* A TLS session on connected TCP socket @fd (taken over: closed by tls_free). */
int tls_new(Tls **tp, TlsCtx *ctx, int fd, bool server);
/* Drive the handshake: 1 done, 0 in progress (poll for tls_want_events()), -1 failed
 * (reason in @err). */
int tls_handshake(Tls *t, char *err, size_t errsize);
unsigned tls_want_events(const Tls *t);
/*
 * The peer's host name: the first of @names (@n of them) that its verified certificate
 * names in a subjectAltName DNS entry. Returns the index, or -1 with the reason in @err
 * ("no certificate", "not signed by the configured CA: ...", "certificate names none of ...").
 */
int tls_peer_name(Tls *t, const char *const *names, size_t n, char *err, size_t errsize);
int tls_fd(const Tls *t);
void tls_free(Tls *t);

/* The librpc transport of a finished session (ctx: the Tls; its free is tls_free). */
extern const RpcTransportOps tls_transport_ops;
