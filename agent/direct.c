/* SPDX-License-Identifier: MIT */
/*
 * direct.c - vrpc-agent's ends of direct guest<->guest channels (direct.h).
 *
 * TARGET (serves): on vrpc-direct.serve from the dispatcher, offer a vchan to the source
 * domain at /local/domain/OURS/vrpc-direct/CH (dom0 created that directory, owned by us and
 * readable by the source only), once per channel, and remember the call's single-use token
 * with what it was issued for (source, service, argument, user, call id). A CALL on the
 * channel is run only if its call_id is a token we hold for that channel's source and its
 * service and argument match; the token is then spent. Anything else is refused with
 * VRPC_DIRECT_REDIRECT_CODE (the source may fall back through dom0, where the policy decides
 * again). When the call ends we tell the dispatcher its exit status (vrpc-direct.exit) for
 * the audit log; an unused token expires after VRPC_DIRECT_TOKEN_TTL_MS and is reported too.
 *
 * SOURCE (connects): when the dispatcher answers a local call with the redirect, connect to
 * the channel (or reuse the connection to it: many calls share one channel), open the call
 * there with the token, and relay the local caller to it; if the channel cannot be reached
 * or the target refuses, re-issue the call through dom0 with VRPC_CALL_F_NO_DIRECT. When the
 * call ends on the channel, report that end to the dispatcher as well (vrpc-direct.exit, as
 * our caller saw it): it closes its record when either side reported and the other did not
 * within its bound, so a target that never reports cannot pin it.
 */
#include "direct.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/direct.h"
#include "common/list.h"
#include "librpc/relay.h"
#include "local.h"
#include "vchan/vchan.h"
#include "vrpc-services.h"

typedef struct Token Token;
struct Token {
    Token *next;
    uint64_t token, call_id;
    int64_t expires_ms;
    char source[RPC_DOMAIN_MAX + 1];
    char service[RPC_SERVICE_MAX + 1];
    char argument[RPC_ARG_MAX + 1];
    char user[RPC_USER_MAX + 1];
};

/* A channel we serve (target side). */
typedef struct Served Served;
struct Served {
    AgentDirect *ad;
    Served *prev, *next;
    unsigned ch;
    int peer_domid;
    RpcConn *conn;
    Token *tokens;
};

/* A channel we connected to (source side). */
typedef struct Link Link;
struct Link {
    AgentDirect *ad;
    Link *prev, *next;
    int target_domid;
    unsigned ch;
    RpcConn *conn;
};

struct AgentDirect {
    Agent *a;
    Served *served;
    Link *links;
    unsigned n_served, n_tokens;
    RpcLoopSource *expiry; /* the earliest token expiry */
};

/* Tell dom0 how call @call_id ended: @code as vrpc_direct_parse_exit() gives it back. */
static void report(Agent *a, uint64_t call_id, int code, bool refused)
{
    char what[VRPC_DIRECT_EXIT_WORD_MAX];
    RpcCall call = {.service = VRPC_DIRECT_SVC_EXIT,
                    .argument = what,
                    .call_id = call_id,
                    .flags = VRPC_CALL_F_CONTROL};
    RpcStream *s = NULL;

    vrpc_direct_format_exit(what, sizeof(what), code, refused);
    if (!a->dom0 || !rpc_conn_is_ready(a->dom0) || rpc_stream_open(a->dom0, &call, &s) < 0) {
        logmsg(LOG_INFO, "direct call %" PRIu64 ": cannot report its end (%s) to dom0", call_id,
               what);
        return;
    }
    (void)rpc_stream_close_write(s, RPC_CH_STDIN); /* its answer goes nowhere: nothing waits */
}

/* ---- tokens ----------------------------------------------------------------------------------- */

static void expiry_arm(AgentDirect *ad)
{
    int64_t first = -1;

    for (Served *sv = ad->served; sv; sv = sv->next)
        for (Token *t = sv->tokens; t; t = t->next)
            if (first < 0 || t->expires_ms < first)
                first = t->expires_ms;
    if (first < 0) {
        rpc_loop_timer_set(ad->expiry, -1);
        return;
    }
    int64_t now = rpc_loop_now_ms();
    rpc_loop_timer_set(ad->expiry, first > now ? first - now : 0);
}

/* Unlink *@tp; report it unused when @report_it. */
static void token_drop(AgentDirect *ad, Token **tp, bool report_it)
{
    Token *t = *tp;

    *tp = t->next;
    ad->n_tokens--;
    if (report_it)
        report(ad->a, t->call_id, VRPC_DIRECT_EXIT_EXPIRED, false);
    free(t);
}

static void on_expiry(RpcLoopSource *src, void *userdata)
{
    AgentDirect *ad = userdata;
    int64_t now = rpc_loop_now_ms();

    for (Served *sv = ad->served; sv; sv = sv->next)
        for (Token **tp = &sv->tokens; *tp;)
            if ((*tp)->expires_ms <= now)
                token_drop(ad, tp, true);
            else
                tp = &(*tp)->next;
    expiry_arm(ad);
}

/* ---- target: serving a channel ------------------------------------------------------------ */

static void served_free(Served *sv)
{
    AgentDirect *ad = sv->ad;

    VRPC_LIST_UNLINK(&ad->served, sv);
    ad->n_served--;
    while (sv->tokens)
        token_drop(ad, &sv->tokens, true);
    rpc_conn_free(sv->conn); /* deferred when inside its dispatch; removes the ring nodes */
    free(sv);
    expiry_arm(ad);
}

typedef struct Ran {
    Agent *a;
    uint64_t call_id;
} Ran;

static void ran_done(VrpcHandler *h, const VrpcHandlerResult *res, void *userdata)
{
    Ran *rn = userdata;

    report(rn->a, rn->call_id,
           res->aborted ? VRPC_DIRECT_EXIT_ABORTED
                        : (res->exit_code < 0 ? 125 : res->exit_code & 0xff),
           false);
    free(rn);
}

static void served_on_call(RpcConn *conn, RpcStream *s, const RpcCall *untrusted_call,
                           void *userdata)
{
    Served *sv = userdata;
    AgentDirect *ad = sv->ad;
    Agent *a = ad->a;
    const char *untrusted_arg = untrusted_call->argument ? untrusted_call->argument : "";
    Token **tp, *t = NULL;

    /* librpc validated the names; the token must be one we hold for this channel (whose
     * peer is the one source domain the dispatcher bound it to), for this very call. */
    for (tp = &sv->tokens; *tp; tp = &(*tp)->next)
        if ((*tp)->token == untrusted_call->call_id) {
            t = *tp;
            break;
        }
    if (!t || strcmp(t->service, untrusted_call->service) != 0 ||
        strcmp(t->argument, untrusted_arg) != 0) {
        logmsg(LOG_WARNING, "direct channel %u (domain %d): call %s with %s token refused",
               sv->ch, sv->peer_domid, untrusted_call->service, t ? "a mismatched" : "an unknown");
        (void)rpc_stream_refuse(s, VRPC_DIRECT_REDIRECT_CODE, "vrpc: direct call refused");
        return;
    }
    *tp = t->next; /* spent */
    ad->n_tokens--;
    expiry_arm(ad);

    Ran *rn = calloc(1, sizeof(*rn));
    if (!rn) {
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: out of memory");
        report(a, t->call_id, VRPC_SERVICES_EXIT_FRAMEWORK, false);
        free(t);
        return;
    }
    rn->a = a;
    rn->call_id = t->call_id;
    VrpcHandlerRequest req = {
        .services_dir = a->services_dir,
        .service = t->service,
        .argument = t->argument,
        /* worded as on the relay (offer.c): the target the caller named */
        .where = untrusted_call->target && untrusted_call->target[0] ? untrusted_call->target
                                                                     : "this domain",
        .call = {.source = t->source,
                 .requested_target = untrusted_call->target,
                 .user = t->user[0] ? t->user : NULL,
                 .daemon_socket = a->socket_path},
    };
    VrpcHandlerRefusal why;
    VrpcHandler *h = NULL;
    if (vrpc_handler_serve(a->handlers, s, &req, ran_done, rn, &h, NULL, &why) == 0) {
        logmsg(LOG_DEBUG, "direct call %s from %s started", vrpc_handler_service(h), t->source);
    } else {
        logmsg(LOG_INFO, "direct call %s from %s: %d %s", t->service, t->source, why.code,
               why.detail);
        report(a, t->call_id, why.code & 0xff, true);
        free(rn);
    }
    free(t);
}

static void served_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    Served *sv = userdata;

    logmsg(LOG_DEBUG, "direct channel %u (domain %d) closed (%s)", sv->ch, sv->peer_domid,
           rpc_error_name(error));
    served_free(sv);
}

static const RpcCallbacks served_callbacks = {
    .on_call = served_on_call,
    .on_close = served_on_close,
};

static Served *served_find(AgentDirect *ad, unsigned ch)
{
    for (Served *sv = ad->served; sv; sv = sv->next)
        if (sv->ch == ch)
            return sv;
    return NULL;
}

/* vrpc-direct.serve: returns NULL or why not. */
static const char *serve(Agent *a, const VrpcDirectServe *req)
{
    AgentDirect *ad = a->direct;
    Served *sv = served_find(ad, req->ch);
    char path[96];
    int r;

    if (sv && sv->peer_domid != req->peer_domid)
        return "channel serves another domain";
    if (ad->n_tokens >= VRPC_DIRECT_TOKENS_MAX)
        return "too many tokens";
    if (!sv) {
        Vchan *vc = NULL;
        RpcConnConfig cfg;

        if (ad->n_served >= VRPC_DIRECT_CHANNELS_MAX)
            return "too many channels";
        if (vrpc_direct_path(path, sizeof(path), a->domid, req->ch) < 0)
            return "path too long";
        sv = calloc(1, sizeof(*sv));
        if (!sv)
            return "out of memory";
        r = vchan_server_new(&vc, req->peer_domid, path, a->ring_size, a->ring_size);
        if (r < 0) {
            logmsg(LOG_WARNING, "direct channel %s: cannot offer it: %s", path, strerror(-r));
            free(sv);
            return "cannot offer the vchan";
        }
        rpc_conn_config_init(&cfg);
        cfg.role = RPC_ROLE_ACCEPTOR;
        cfg.hello_timeout_ms = 0; /* the source connects when its first call comes */
        r = rpc_conn_new_vchan(&sv->conn, vc, true, &cfg, &served_callbacks, sv);
        if (r == 0)
            r = rpc_conn_attach(sv->conn, a->loop);
        if (r < 0) {
            rpc_conn_free(sv->conn);
            free(sv);
            return "cannot serve the vchan";
        }
        char name[48];
        snprintf(name, sizeof(name), "direct %u (domain %d)", req->ch, req->peer_domid);
        rpc_conn_set_name(sv->conn, name);
        sv->ad = ad;
        sv->ch = req->ch;
        sv->peer_domid = req->peer_domid;
        sv->next = ad->served;
        if (ad->served)
            ad->served->prev = sv;
        ad->served = sv;
        ad->n_served++;
        logmsg(LOG_DEBUG, "serving direct channel %s to domain %d", path, req->peer_domid);
    }
    Token *t = calloc(1, sizeof(*t));
    if (!t)
        return "out of memory";
    t->token = req->token;
    t->call_id = req->call_id;
    t->expires_ms = rpc_loop_now_ms() + VRPC_DIRECT_TOKEN_TTL_MS;
    snprintf(t->source, sizeof(t->source), "%s", req->source);
    snprintf(t->service, sizeof(t->service), "%s", req->service);
    snprintf(t->argument, sizeof(t->argument), "%s", req->argument);
    snprintf(t->user, sizeof(t->user), "%s", req->user);
    t->next = sv->tokens;
    sv->tokens = t;
    ad->n_tokens++;
    expiry_arm(ad);
    return NULL;
}

/* ---- control calls from the dispatcher ---------------------------------------------------- */

typedef struct Ctl {
    Agent *a;
    size_t len;
    bool overflow;
    char buf[256];
} Ctl;

static void ctl_answer(RpcStream *s, const char *why_not)
{
    if (!why_not) {
        if (rpc_stream_accept(s) == 0)
            (void)rpc_stream_exit(s, 0, NULL);
    } else {
        char reason[160];
        snprintf(reason, sizeof(reason), "vrpc: %s", why_not);
        (void)rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, reason);
    }
}

static size_t ctl_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                          void *userdata)
{
    Ctl *c = userdata;

    if (c->len + len >= sizeof(c->buf))
        c->overflow = true;
    else {
        memcpy(c->buf + c->len, data, len);
        c->len += len;
    }
    return len;
}

static void ctl_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    Ctl *c = userdata;
    VrpcDirectServe req;

    if (c->overflow || vrpc_direct_parse_serve(c->buf, c->len, &req) < 0) {
        ctl_answer(s, "malformed serve request");
        return;
    }
    ctl_answer(s, serve(c->a, &req));
}

static void ctl_on_stream_free(RpcStream *s, void *userdata)
{
    rpc_stream_set_ops(s, NULL, NULL);
    free(userdata);
}

static const RpcStreamOps ctl_ops = {
    .on_data = ctl_on_data,
    .on_eof = ctl_on_eof,
    .on_stream_free = ctl_on_stream_free,
};

static const char *revoke(Agent *a, const char *arg, uint64_t call_id)
{
    AgentDirect *ad = a->direct;
    char want[20];

    for (Served *sv = ad->served; sv; sv = sv->next)
        for (Token **tp = &sv->tokens; *tp; tp = &(*tp)->next) {
            snprintf(want, sizeof(want), "%016" PRIx64, (*tp)->token);
            if ((*tp)->call_id == call_id && strcmp(want, arg) == 0) {
                token_drop(ad, tp, false);
                expiry_arm(ad);
                return NULL;
            }
        }
    return "no such token (used already?)";
}

void direct_control_call(Agent *a, RpcStream *s, const RpcCall *call)
{
    const char *arg = call->argument ? call->argument : "";

    if (!a->direct) {
        ctl_answer(s, "direct channels are disabled (--no-direct)");
    } else if (strcmp(call->service, VRPC_DIRECT_SVC_SERVE) == 0) {
        Ctl *c = calloc(1, sizeof(*c));
        if (!c) {
            ctl_answer(s, "out of memory");
            return;
        }
        c->a = a;
        rpc_stream_set_ops(s, &ctl_ops, c); /* answered at its stdin's EOF */
    } else if (strcmp(call->service, VRPC_DIRECT_SVC_CLOSE) == 0) {
        char *end;
        unsigned long ch = strtoul(arg, &end, 10);
        Served *sv = arg[0] && !*end ? served_find(a->direct, (unsigned)ch) : NULL;
        if (sv) {
            rpc_conn_close(sv->conn, "direct channel closed by dom0");
            if (served_find(a->direct, (unsigned)ch) == sv)
                served_free(sv); /* close did not call on_close */
        }
        ctl_answer(s, NULL);
    } else if (strcmp(call->service, VRPC_DIRECT_SVC_REVOKE) == 0) {
        ctl_answer(s, revoke(a, arg, call->call_id));
    } else {
        ctl_answer(s, "unknown control call");
    }
}

/* ---- source: calls redirected to a channel ----------------------------------------------- */

static void link_free(Link *l)
{
    VRPC_LIST_UNLINK(&l->ad->links, l);
    rpc_conn_free(l->conn);
    free(l);
}

static void link_on_close(RpcConn *conn, int error, const char *reason, void *userdata)
{
    Link *l = userdata;

    logmsg(LOG_DEBUG, "direct link to domain %d channel %u closed (%s)", l->target_domid, l->ch,
           rpc_error_name(error));
    link_free(l);
}

static const RpcCallbacks link_callbacks = {
    .on_close = link_on_close,
};

static Link *link_get(AgentDirect *ad, int target_domid, unsigned ch, int *errp)
{
    char path[96];
    Vchan *vc = NULL;
    RpcConnConfig cfg;
    Link *l;
    int r;

    for (l = ad->links; l; l = l->next)
        if (l->target_domid == target_domid && l->ch == ch && !rpc_conn_is_closed(l->conn))
            return l;
    if (vrpc_direct_path(path, sizeof(path), target_domid, ch) < 0) {
        *errp = -ENAMETOOLONG;
        return NULL;
    }
    r = vchan_client_new(&vc, target_domid, path);
    if (r < 0) {
        *errp = r;
        return NULL;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        vchan_free(vc);
        *errp = -ENOMEM;
        return NULL;
    }
    rpc_conn_config_init(&cfg);
    cfg.role = RPC_ROLE_INITIATOR;
    r = rpc_conn_new_vchan(&l->conn, vc, true, &cfg, &link_callbacks, l);
    if (r == 0)
        r = rpc_conn_attach(l->conn, ad->a->loop);
    if (r < 0) {
        rpc_conn_free(l->conn);
        free(l);
        *errp = r;
        return NULL;
    }
    char name[48];
    snprintf(name, sizeof(name), "direct to %d/%u", target_domid, ch);
    rpc_conn_set_name(l->conn, name);
    l->ad = ad;
    l->target_domid = target_domid;
    l->ch = ch;
    l->next = ad->links;
    if (ad->links)
        ad->links->prev = l;
    ad->links = l;
    return l;
}

typedef struct Hop {
    Agent *a;
    uint64_t call_id; /* the dispatcher's, for a fallback */
    int target_domid;
} Hop;

static void hop_abort_reason(RpcRelay *r, bool reset, uint32_t code, const char *reason,
                             char *buf, size_t size, void *userdata)
{
    Hop *h = userdata;

    if (!reset || code == RPC_RESET_CONN_CLOSED)
        snprintf(buf, size, "vrpc: direct channel to domain %d lost", h->target_domid);
    else
        snprintf(buf, size, "vrpc: call reset by domain %d (%s)", h->target_domid,
                 rpc_reset_code_name(code));
}

static void hop_redirect(RpcRelay *r, RpcStream *down, bool down_eof, const char *reason,
                         void *userdata)
{
    Hop *h = userdata;

    /* The target would not take it on the channel: through dom0, where the policy decides
     * again. */
    logmsg(LOG_INFO, "direct call %" PRIu64 " refused by domain %d; relaying through dom0",
           h->call_id, h->target_domid);
    local_forward(h->a, down, down_eof,
                  VRPC_CALL_F_NO_DIRECT | VRPC_DIRECT_FB_REFUSED << VRPC_CALL_FALLBACK_SHIFT,
                  h->call_id);
}

/* The call ended on the channel as our caller saw it: tell dom0 too, so that a target that
 * never reports cannot keep the dispatcher's record of it (and our calls quota) open. */
static void hop_ended(RpcRelay *r, RpcRelayEnd end, int32_t code, const char *reason,
                      void *userdata)
{
    Hop *h = userdata;

    if ((end == RPC_RELAY_END_EXIT || end == RPC_RELAY_END_REFUSED) && code >= 0 && code <= 255)
        report(h->a, h->call_id, (int)code, end == RPC_RELAY_END_REFUSED);
    else if (end == RPC_RELAY_END_CANCELLED && !h->a->quitting)
        report(h->a, h->call_id, VRPC_DIRECT_EXIT_CANCELLED, false); /* our caller went away */
    else
        report(h->a, h->call_id, VRPC_DIRECT_EXIT_ABORTED, false); /* reset, lost, stopping */
}

static void hop_free(RpcRelay *r, void *userdata)
{
    free(userdata);
}

static const RpcRelayOps hop_ops = {
    .abort_code = VRPC_SERVICES_EXIT_FRAMEWORK,
    .cancel_reason = "caller went away",
    .abort_reason = hop_abort_reason,
    .on_end = hop_ended,
    .on_free = hop_free,
    .hold_until_accept = true,
    .redirect_code = VRPC_DIRECT_REDIRECT_CODE,
    .on_redirect = hop_redirect,
};

void direct_redirect(Agent *a, RpcStream *down, bool down_eof, const char *reason)
{
    int target_domid = 0;
    unsigned ch = 0;
    uint64_t token = 0, call_id = 0;
    const RpcCall *orig = rpc_stream_call(down);
    RpcStream *up = NULL;
    Link *l = NULL;
    Hop *h = NULL;
    int e = -EPROTO;

    /* From dom0 (trusted), but parsed strictly all the same. */
    if (!a->direct || vrpc_direct_parse_redirect(reason, &target_domid, &ch, &token, &call_id) < 0) {
        (void)rpc_stream_refuse(down, VRPC_SERVICES_EXIT_FRAMEWORK,
                                "vrpc: unexpected redirect from dom0");
        return;
    }
    l = link_get(a->direct, target_domid, ch, &e);
    if (l) {
        RpcCall call = {.service = orig->service,
                        .argument = orig->argument,
                        .target = orig->target,
                        .source = "",
                        .user = "",
                        .call_id = token};
        h = calloc(1, sizeof(*h));
        e = h ? rpc_stream_open(l->conn, &call, &up) : -ENOMEM;
    }
    if (e == 0) {
        h->a = a;
        h->call_id = call_id;
        h->target_domid = target_domid;
        RpcRelay *r = NULL;
        e = rpc_relay_new(&r, down, up, &hop_ops, h);
        if (e == 0 && down_eof)
            rpc_relay_note_down_eof(r);
        if (e == 0 && rpc_stream_is_paused(down))
            (void)rpc_stream_resume(down); /* held stdin: to the relay, which holds it on */
    }
    if (e < 0) {
        logmsg(LOG_INFO, "direct call %" PRIu64 ": cannot use channel %u of domain %d (%s); "
                         "relaying through dom0",
               call_id, ch, target_domid, strerror(-e));
        if (up)
            (void)rpc_stream_reset(up, RPC_RESET_CANCEL, "vrpc: cannot relay");
        free(h);
        local_forward(a, down, down_eof,
                      VRPC_CALL_F_NO_DIRECT | VRPC_DIRECT_FB_CONNECT << VRPC_CALL_FALLBACK_SHIFT,
                      call_id);
        return;
    }
    logmsg(LOG_DEBUG, "local call %s -> direct channel %u of domain %d, stream %u", orig->service,
           ch, target_domid, rpc_stream_id(up));
}

/* ---- lifetime ----------------------------------------------------------------------------- */

int direct_init(Agent *a)
{
    AgentDirect *ad = calloc(1, sizeof(*ad));
    int r;

    if (!ad)
        return -ENOMEM;
    ad->a = a;
    r = rpc_loop_add_timer(a->loop, -1, on_expiry, ad, &ad->expiry);
    if (r < 0) {
        free(ad);
        return r;
    }
    a->direct = ad;
    return 0;
}

void direct_close_all(Agent *a)
{
    AgentDirect *ad = a->direct;

    if (!ad)
        return;
    while (ad->served)
        served_free(ad->served);
    while (ad->links)
        link_free(ad->links);
}

void direct_free(Agent *a)
{
    AgentDirect *ad = a->direct;

    if (!ad)
        return;
    direct_close_all(a);
    rpc_loop_source_free(ad->expiry);
    free(ad);
    a->direct = NULL;
}
