/* SPDX-License-Identifier: MIT */
/*
 * tls.c - TLS 1.3 with mutual authentication for the cross-host links, through OpenSSL 3.
 * Everything cryptographic is OpenSSL's: certificate chain verification against the one
 * configured CA (no system store), host name matching with X509_check_host() on
 * subjectAltName DNS entries only (never the subject CN, never a name the peer sends).
 * Non-blocking throughout: the handshake is driven from the link's loop source, and after it
 * the session is a librpc transport.
 *
 * Reading: OpenSSL reads ahead (one read(2) takes up to TLS_RBUF_SIZE of records, not a
 * 5-byte header and then one record), and t_read() takes as many records as fit in librpc's
 * buffer; pending() tells librpc when decrypted or read-ahead bytes may be left that poll
 * cannot see.
 * Writing: the frames of one librpc flush are copied into one plaintext batch and handed to
 * SSL_write_ex together at the end of the flush (or when the batch is full), so that small
 * frames share records and a frame's header does not cost a record of its own. The records
 * go to our own buffer (a BIO of ours replaces the socket as OpenSSL's writer once the
 * handshake is done), and that buffer goes to the socket in one send(2), not one per 16 KiB
 * record. The bytes are librpc's no longer once copied (wpending()). Both buffers are bounded:
 * at most one plaintext batch and the records of one batch (plus a few bytes of TLS's own
 * messages) are held; more breaks the link.
 */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
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
/* The records of one batch: its plaintext, a header and tag per 16 KiB record (22 bytes each
 * for AES-GCM in TLS 1.3), and room for TLS's own short messages (alerts, KeyUpdate). More
 * than this in the record buffer is refused (the write fails and the link with it). */
#define TLS_OBUF_MAX (TLS_WBUF_SIZE + TLS_WBUF_SIZE / 256u + 16u * 1024u)
/* OpenSSL's read-ahead buffer: one read(2) takes up to this many bytes of records. */
#define TLS_RBUF_SIZE (256u * 1024u)
/* Records one t_read() takes at most (16 full ones fill TLS_RBUF_SIZE). */
#define TLS_READ_RECORDS 64u

struct Tls {
    SSL *ssl;
    int fd;
    unsigned want;
    uint8_t *wbuf;     /* the batch, TLS_WBUF_SIZE bytes once the first frame is written */
    size_t wlen, woff; /* bytes in the batch; of them, taken by SSL_write_ex so far */
    bool wblocked;     /* SSL_write_ex wants a retry with wbuf + woff */
    uint8_t *obuf;     /* records OpenSSL wrote (TLS_OBUF_MAX bytes), not yet on the socket */
    size_t olen, ooff; /* bytes of records in obuf; of them, written to the socket so far */
    bool wbio_ours;    /* OpenSSL writes into obuf (after the handshake) */
    bool rmore;        /* the last read filled the caller's buffer: records may be left */
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

int tls_ctx_new(TlsCtx **ctxp, const char *ca, const char *cert, const char *key, int *whichp,
                char *err, size_t errsize)
{
    TlsCtx *c = calloc(1, sizeof(*c));

    *whichp = -1;
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
    /* Both ends are vrpc dispatchers: AES-128-GCM first (the fastest with AES-NI; OpenSSL's
     * default list starts with AES-256-GCM). */
    if (SSL_CTX_set_ciphersuites(
            c->ssl, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") !=
        1) {
        ssl_reason(err, errsize, "TLS cipher suites");
        goto fail;
    }
    SSL_CTX_set_read_ahead(c->ssl, 1);
    SSL_CTX_set_default_read_buffer_len(c->ssl, TLS_RBUF_SIZE);
    /* No session tickets: every link authenticates with its certificate. */
    SSL_CTX_set_num_tickets(c->ssl, 0);
    SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    *whichp = 0;
    if (SSL_CTX_load_verify_locations(c->ssl, ca, NULL) != 1) {
        ssl_reason(err, errsize, ca);
        goto fail;
    }
    *whichp = 1;
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
        ssl_reason(err, errsize, cert);
        goto fail;
    }
    *whichp = 2;
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1) {
        ssl_reason(err, errsize, key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        ssl_reason(err, errsize, "key does not match the certificate");
        goto fail;
    }
    *whichp = -1;
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

/* ---- OpenSSL's writer after the handshake: records into obuf ------------------------------ */

static int obio_write(BIO *b, const char *data, int len)
{
    Tls *t = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (t->ooff == t->olen)
        t->olen = t->ooff = 0;
    if ((size_t)len > TLS_OBUF_MAX - t->olen && t->ooff) {
        memmove(t->obuf, t->obuf + t->ooff, t->olen - t->ooff);
        t->olen -= t->ooff;
        t->ooff = 0;
    }
    if ((size_t)len > TLS_OBUF_MAX - t->olen) {
        errno = ENOBUFS; /* more than one batch's records: never happens with a sane peer */
        return -1;
    }
    if (!t->obuf && !(t->obuf = malloc(TLS_OBUF_MAX))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(t->obuf + t->olen, data, (size_t)len);
    t->olen += (size_t)len;
    return len;
}

static long obio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    Tls *t = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* obuf goes to the socket from the transport (obuf_drain) */
    case BIO_CTRL_WPENDING:
        return (long)(t->olen - t->ooff);
    default:
        return 0;
    }
}

/* The method, made once per process (the dispatcher is single-threaded). */
static BIO_METHOD *obio_method(void)
{
    static BIO_METHOD *m;

    if (!m) {
        m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vrpc TLS records");
        if (m && (BIO_meth_set_write(m, obio_write) != 1 || BIO_meth_set_ctrl(m, obio_ctrl) != 1)) {
            BIO_meth_free(m);
            m = NULL;
        }
    }
    return m;
}

/* From now on OpenSSL writes records into obuf (the socket BIO stays its reader). */
static int obio_install(Tls *t)
{
    BIO_METHOD *m = obio_method();
    BIO *b = m ? BIO_new(m) : NULL;

    if (!b)
        return -ENOMEM;
    BIO_set_data(b, t);
    BIO_set_init(b, 1);
    SSL_set0_wbio(t->ssl, b); /* takes b; drops its reference to the socket BIO */
    t->wbio_ours = true;
    return 0;
}

/* Put obuf on the socket: 0 when all of it went, -EAGAIN when the socket is full, -errno. */
static ssize_t obuf_drain(Tls *t)
{
    while (t->ooff < t->olen) {
        ssize_t n = send(t->fd, t->obuf + t->ooff, t->olen - t->ooff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
        t->ooff += (size_t)n;
    }
    t->olen = t->ooff = 0;
    return 0;
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
    if (t->wbio_ours)
        return 1;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        if (obio_install(t) < 0) {
            snprintf(err, errsize, "TLS handshake: out of memory");
            return -1;
        }
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
        if (SSL_is_init_finished(t->ssl)) {
            SSL_shutdown(t->ssl);
            if (t->wbio_ours)
                (void)obuf_drain(t);
        }
        SSL_free(t->ssl);
    }
    ERR_clear_error();
    if (t->fd >= 0)
        close(t->fd);
    free(t->wbuf);
    free(t->obuf);
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

/* As many records as fit in @buf (one SSL_read_ex returns one record at most), and at most
 * TLS_READ_RECORDS of them, so that a peer's tiny records cost a bounded amount per call. */
static ssize_t t_read(void *ctx, void *buf, size_t n)
{
    Tls *t = ctx;
    size_t total = 0;

    t->rmore = false;
    for (unsigned i = 0; total < n; i++) {
        size_t got = 0;
        if (i == TLS_READ_RECORDS)
            break;
        if (SSL_read_ex(t->ssl, (uint8_t *)buf + total, n - total, &got) != 1) {
            if (total) {
                ERR_clear_error(); /* an error comes back on the next read */
                return (ssize_t)total;
            }
            return io_result(t, 0, 0);
        }
        total += got;
    }
    t->rmore = true; /* stopped early: OpenSSL may hold more (decrypted or read ahead) */
    return (ssize_t)total;
}

/* Records out: obuf to the socket, then the whole batch through SSL_write_ex into obuf (one
 * call per record: partial writes are on) and that to the socket in one go. 0 when all of it
 * went out, -EAGAIN when the socket is full (the rest is kept: obuf's records, or the batch
 * from woff, retried with the same bytes), or -errno. */
static ssize_t wbuf_push(Tls *t)
{
    for (;;) {
        ssize_t r = obuf_drain(t);
        if (r < 0)
            return r;
        if (t->woff == t->wlen)
            break;
        while (t->woff < t->wlen) {
            size_t done = 0;
            if (SSL_write_ex(t->ssl, t->wbuf + t->woff, t->wlen - t->woff, &done) != 1) {
                r = io_result(t, 0, 0);
                t->wblocked = r == -EAGAIN;
                return r == 0 ? -EPIPE : r;
            }
            t->wblocked = false;
            t->woff += done;
        }
    }
    t->wlen = t->woff = 0;
    return 0;
}

/* librpc's writev: copy @iov into the batch (what fits) and report it written; @cnt 0 (the
 * end of librpc's flush) pushes the batch. A full batch is pushed first; while the socket
 * cannot take the records of the batch before, nothing new is taken once the batch is full. */
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
    /* Read-ahead bytes short of a record are not counted (poll sees the rest arrive); after
     * a read that filled librpc's buffer, one more read finds out. */
    return (size_t)SSL_pending(t->ssl) + (t->rmore ? 1u : 0u);
}

static size_t t_wpending(void *ctx)
{
    Tls *t = ctx;
    return (t->wlen - t->woff) + (t->olen - t->ooff);
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
