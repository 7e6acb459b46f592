/* SPDX-License-Identifier: MIT */
/*
 * tls.c - TLS 1.3 with mutual authentication for the cross-host links, through OpenSSL 3.
 * Everything cryptographic is OpenSSL's: certificate chain verification against the one
 * configured CA (no system store), host name matching with X509_check_host() on
 * subjectAltName DNS entries only (never the subject CN, never a name the peer sends).
 * Non-blocking throughout: the handshake is driven from the link's loop source, and after it
 * the session is a librpc transport whose pending() reports the decrypted bytes OpenSSL
 * holds (poll cannot see them). Its writer batches: the frames of one librpc flush are
 * copied into one buffer and handed to SSL_write_ex together at the end of the flush (or when
 * the buffer is full), so that small frames share records and a frame's header does not
 * cost a record of its own; the bytes are librpc's no longer once copied (wpending()), so a
 * retried SSL_write always gets exactly the bytes of the first try.
 */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct TlsCtx {
    SSL_CTX *ssl;
    X509 *own; /* our certificate (borrowed from ssl) */
};

/* The write batch: big enough for several full TLS records (16 KiB each) per SSL_write_ex. */
#define TLS_WBUF_SIZE (256u * 1024u)

struct Tls {
    SSL *ssl;
    int fd;
    unsigned want;
    uint8_t *wbuf;     /* the batch, TLS_WBUF_SIZE bytes once the first frame is written */
    size_t wlen, woff; /* bytes in the batch; of them, taken by SSL_write_ex so far */
    bool wblocked;     /* SSL_write_ex wants a retry with wbuf + woff (the socket was full) */
};

static void ssl_reason(char *err, size_t errsize, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "unknown error");
    snprintf(err, errsize, "%s: %s", what, buf);
    ERR_clear_error();
}

int tls_ctx_new(TlsCtx **ctxp, const char *ca, const char *cert, const char *key, char *err,
                size_t errsize)
{
    TlsCtx *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->ssl = SSL_CTX_new(TLS_method());
    if (!c->ssl) {
        ssl_reason(err, errsize, "TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(c->ssl, TLS1_3_VERSION);
    SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* No session tickets: every link authenticates with its certificate. */
    SSL_CTX_set_num_tickets(c->ssl, 0);
    SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (SSL_CTX_load_verify_locations(c->ssl, ca, NULL) != 1) {
        ssl_reason(err, errsize, ca);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
        ssl_reason(err, errsize, cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1) {
        ssl_reason(err, errsize, key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        ssl_reason(err, errsize, "key does not match the certificate");
        goto fail;
    }
    c->own = SSL_CTX_get0_certificate(c->ssl);
    *ctxp = c;
    return 0;
fail:
    tls_ctx_free(c);
    return -EINVAL;
}

TlsCtx *tls_ctx_free(TlsCtx *c)
{
    if (c) {
        SSL_CTX_free(c->ssl);
        free(c);
    }
    return NULL;
}

bool tls_ctx_cert_has_name(const TlsCtx *c, const char *name)
{
    return c->own &&
           X509_check_host(c->own, name, strlen(name),
                           X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS,
                           NULL) == 1;
}

int tls_new(Tls **tp, TlsCtx *ctx, int fd, bool server)
{
    Tls *t = calloc(1, sizeof(*t));

    if (!t) {
        close(fd);
        return -ENOMEM;
    }
    t->fd = fd;
    t->ssl = SSL_new(ctx->ssl);
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
        tls_free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    t->want = EPOLLIN | EPOLLOUT;
    *tp = t;
    return 0;
}

int tls_handshake(Tls *t, char *err, size_t errsize)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->want = EPOLLIN;
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        t->want = EPOLLIN;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        t->want = EPOLLOUT;
        return 0;
    }
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK)
        snprintf(err, errsize, "certificate not accepted: %s", X509_verify_cert_error_string(v));
    else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(err, errsize, "TLS handshake: connection closed by the peer");
    else
        ssl_reason(err, errsize, "TLS handshake");
    ERR_clear_error();
    return -1;
}

unsigned tls_want_events(const Tls *t)
{
    return t->want;
}

int tls_peer_name(Tls *t, const char *const *names, size_t n, char *err, size_t errsize)
{
    X509 *cert = SSL_get0_peer_certificate(t->ssl);

    if (!cert) {
        snprintf(err, errsize, "the peer sent no certificate");
        return -1;
    }
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        snprintf(err, errsize, "certificate not signed by the configured CA: %s",
                 X509_verify_cert_error_string(v));
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (X509_check_host(cert, names[i], strlen(names[i]),
                            X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS,
                            NULL) == 1)
            return (int)i;
    snprintf(err, errsize,
             n == 1 ? "certificate does not name host %s (subjectAltName DNS)"
                    : "certificate names no configured peer host (subjectAltName DNS)",
             n ? names[0] : "");
    return -1;
}

int tls_fd(const Tls *t)
{
    return t->fd;
}

void tls_free(Tls *t)
{
    if (!t)
        return;
    if (t->ssl) {
        /* Best effort close_notify; never waits. */
        if (SSL_is_init_finished(t->ssl))
            SSL_shutdown(t->ssl);
        SSL_free(t->ssl);
    }
    ERR_clear_error();
    if (t->fd >= 0)
        close(t->fd);
    free(t->wbuf);
    free(t);
}

/* ---- librpc transport ------------------------------------------------------------------- */

static ssize_t io_result(Tls *t, int r, size_t done)
{
    int e = SSL_get_error(t->ssl, r);
    ERR_clear_error();
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        return errno ? -errno : -ECONNRESET;
    default:
        return -EPROTO;
    }
}

static ssize_t t_read(void *ctx, void *buf, size_t n)
{
    Tls *t = ctx;
    size_t got = 0;

    if (SSL_read_ex(t->ssl, buf, n, &got) == 1)
        return (ssize_t)got;
    return io_result(t, 0, 0);
}

/* Hand the batch to OpenSSL: 0 when all of it went out, -EAGAIN when the socket is full
 * (retried with the same bytes), or -errno. */
static ssize_t wbuf_push(Tls *t)
{
    while (t->woff < t->wlen) {
        size_t done = 0;
        if (SSL_write_ex(t->ssl, t->wbuf + t->woff, t->wlen - t->woff, &done) != 1) {
            ssize_t r = io_result(t, 0, 0);
            t->wblocked = r == -EAGAIN;
            return r == 0 ? -EPIPE : r;
        }
        t->wblocked = false;
        t->woff += done;
    }
    t->wlen = t->woff = 0;
    return 0;
}

/* librpc's writev: copy @iov into the batch (what fits) and report it written; @cnt 0 (the
 * end of librpc's flush) pushes the batch. A full batch is pushed first; while OpenSSL waits
 * for the socket nothing new is taken. */
static ssize_t t_writev(void *ctx, const struct iovec *iov, int cnt)
{
    Tls *t = ctx;
    size_t total = 0;
    ssize_t r;

    if (cnt == 0)
        return wbuf_push(t);
    if (t->wblocked || t->wlen == TLS_WBUF_SIZE) {
        r = wbuf_push(t);
        if (r < 0)
            return r;
    }
    if (!t->wbuf && !(t->wbuf = malloc(TLS_WBUF_SIZE)))
        return -ENOMEM;
    for (int i = 0; i < cnt && t->wlen < TLS_WBUF_SIZE; i++) {
        size_t room = TLS_WBUF_SIZE - t->wlen;
        size_t n = iov[i].iov_len < room ? iov[i].iov_len : room;
        memcpy(t->wbuf + t->wlen, iov[i].iov_base, n);
        t->wlen += n;
        total += n;
    }
    return (ssize_t)total;
}

static size_t t_pending(void *ctx)
{
    Tls *t = ctx;
    return (size_t)SSL_pending(t->ssl);
}

static size_t t_wpending(void *ctx)
{
    Tls *t = ctx;
    return t->wlen - t->woff;
}

static void t_free(void *ctx)
{
    tls_free(ctx);
}

const RpcTransportOps tls_transport_ops = {
    .read = t_read,
    .writev = t_writev,
    .pending = t_pending,
    .free = t_free,
    .wpending = t_wpending,
};
