/* SPDX-License-Identifier: MIT */
/*
 * route.c - the life of one call in the dispatcher.
 *
 * The source is the peer the CALL arrived on (its domain name, or dom0 for the local
 * socket), never a message field: a guest's CALL that carries a non-empty source is a
 * protocol violation and drops that guest's connection (docs/man/vrpc-dispatcher.8). The
 * per-peer calls-in-flight quota is checked, then the compiled policy snapshot decides. An
 * ask runs the ask program (ask.c) without waiting for it: the call keeps its snapshot and
 * holds the caller's stdin until the answer comes (ask_done), then goes on as if it had
 * just been decided; with no program configured ask is deny. A denial and a target that is
 * unknown, not connected or gone give the same REFUSE 126 text, so a caller learns nothing
 * about what exists; the audit line says which it was. An allowed
 * call to dom0 resolves the service in ETC/services and hands the stream to vrpc_handler;
 * an allowed call to a guest (the caller itself included: loopback) opens a stream on that
 * guest's connection and joins the two with librpc's RpcRelay (credit and backpressure cross
 * the dispatcher; EOFs, the exit status, refusals and resets are mapped across), whose
 * callbacks give the audit its timings and outcome. Every call ends with one audit record.
 */
#include "route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ask.h"
#include "audit.h"
#include "common/direct.h"
#include "common/escape.h"
#include "direct.h"
#include "handler.h"
#include "librpc/relay.h"
#include "link.h"
#include "log.h"
#include "peer.h"
#include "vrpc-policy.h"
#include "vrpc-services.h"
#include "common/list.h"

/* One agent's report of how a direct call ended (vrpc_direct_parse_exit()). */
typedef struct DirectEnd {
    bool has;
    bool refused;
    int code; /* >= 0, VRPC_DIRECT_EXIT_ABORTED or VRPC_DIRECT_EXIT_EXPIRED */
} DirectEnd;

struct Call {
    Dispatcher *d;
    Call *prev, *next;
    uint64_t id;
    Peer *src; /* NULL once freed */
    Peer *dst;
    RpcStream *in;   /* the caller's stream while the prompt is pending */
    RpcRelay *relay; /* the call relayed to a guest, until both its streams are gone */
    VrpcHandler *handler;
    Ask *ask;             /* the prompt, while it is pending */
    VrpcPolicy *snapshot; /* held while the prompt is pending (dec points into it) */
    VrpcPolicyDecision dec;
    bool in_eof;   /* the caller's stdin EOF arrived while the prompt was pending */
    bool answered; /* EXIT or REFUSE sent on in (or in aborted) */
    bool finished; /* audit written, counters released */
    /* Direct guest<->guest path (direct.c): */
    DirectReq *dreq;      /* the channel and token being set up (the caller's stdin held) */
    DirectChan *chan;     /* redirected: the channel this call holds until its exit report */
    uint64_t token;       /* its token */
    uint32_t flags;       /* the CALL's flags (VRPC_CALL_F_*) */
    bool direct;          /* redirected to the direct channel: the target reports the end */
    bool fell_back;       /* the source re-issued it through dom0 (VRPC_CALL_F_NO_DIRECT) */
    bool revoking;        /* asking the target to drop the unused token */
    bool quiet;           /* finish without an audit line (the fallback call has one) */
    /* The end of a direct call as each agent reported it (route_control): the record closes
     * when both did, or direct-report-timeout after the first (the other may be hostile). */
    DirectEnd end_target, end_source;
    bool source_done;          /* the source's side is over: its report, its fallback to the
                                * relay, or its connection gone */
    RpcLoopSource *report_due; /* armed at the first end report */
    const char *reported_by;   /* audit: whose report the line rests on (direct calls) */
    const char *path;     /* audit: "relay" or "direct" for calls to guests, else NULL */
    const char *fallback; /* audit: why a call that could have gone direct was relayed */
    char source[RPC_DOMAIN_MAX + 1];
    char target[RPC_DOMAIN_MAX + 1];
    char resolved[RPC_DOMAIN_MAX + 1];
    char service[RPC_SERVICE_MAX + 1];
    char argument[RPC_ARG_MAX + 1];
    char user[RPC_USER_MAX + 1];
    const char *policy_action; /* what the policy said: allow, deny, ask, none */
    const char *decision;      /* what was done: allow or deny */
    char rule[320];
    char answer[ASK_LINE_MAX + 1];
    char reason[RPC_REASON_MAX + 16];
    int64_t wall_us, start_us, policy_us, ask_us, handler_us, spawn_us, first_byte_us;
};

/* Microseconds of CLOCK_MONOTONIC (stage timings) and CLOCK_REALTIME (the call's start, for
 * the audit line): finer than rpc_loop_now_ms(). */
static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void call_link(Dispatcher *d, Call *c)
{
    c->next = d->calls;
    if (d->calls)
        d->calls->prev = c;
    d->calls = c;
}

static void call_unlink(Call *c)
{
    Dispatcher *d = c->d;

    VRPC_LIST_UNLINK(&d->calls, c);
    c->prev = c->next = NULL;
}

static void call_free(Call *c)
{
    call_unlink(c);
    rpc_loop_source_free(c->report_due);
    vrpc_policy_unref(c->snapshot);
    free(c);
}

/* Free the record once nothing refers to it any more. */
static void call_maybe_free(Call *c)
{
    if (c->finished && !c->in && !c->relay && !c->handler && !c->dreq && !c->revoking)
        call_free(c);
}

static void set_reason(Call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(Call *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
}

/* The outcome is known: write the audit line and release the quota. @exit_code < 0: the
 * caller was given no exit status (AUDIT_END_CANCELLED). */
static void call_finish(Call *c, AuditEnd end, int exit_code)
{
    Dispatcher *d = c->d;
    int64_t now = now_us();

    if (c->finished)
        return;
    c->finished = true;
    if (c->ask) {
        ask_cancel(c->ask); /* the caller went away while the prompt was pending */
        c->ask = NULL;
        c->ask_us = now - c->start_us;
    }
    if (c->src && c->src->calls_in_flight)
        c->src->calls_in_flight--;
    if (c->dst && c->dst->kind == PEER_HOST && c->dst->calls_out)
        c->dst->calls_out--;
    if (d->calls_in_flight)
        d->calls_in_flight--;
    if (end == AUDIT_END_CANCELLED && d->stopping &&
        !(c->direct && c->end_source.has && c->end_source.code == VRPC_DIRECT_EXIT_CANCELLED)) {
        /* We cut it, not the caller: it gets 125 (its connection to us lost). */
        end = AUDIT_END_ABORTED;
        exit_code = VRPC_SERVICES_EXIT_FRAMEWORK;
        set_reason(c, "vrpc-dispatcher stopped");
    }
    if (end == AUDIT_END_CANCELLED && !c->reason[0])
        set_reason(c, "the caller went away");
    AuditRecord rec = {
        .time_us = c->wall_us,
        .source = c->source,
        .target = c->target,
        .resolved_target = c->resolved,
        .service = c->service,
        .argument = c->argument,
        .policy = c->policy_action,
        .answer = c->answer,
        .decision = c->decision,
        .reason = c->reason,
        .rule = c->rule,
        .end = end,
        .exit_code = end == AUDIT_END_CANCELLED ? -1 : exit_code,
        .duration_us = now - c->start_us,
        .policy_us = c->policy_us,
        .ask_us = c->ask_us,
        .spawn_us = c->spawn_us,
        .first_byte_us = c->first_byte_us,
        .path = c->path,
        .fallback = c->fallback,
        .reported_by = c->reported_by,
    };
    direct_chan_release(c->chan);
    c->chan = NULL;
    if (!c->quiet)
        audit_write(d->audit, &rec);
    dlog(LOG_DEBUG, "call %llu: %s -> %s %s%s%s: %s, %s %d%s%s", (unsigned long long)c->id,
         c->source, c->resolved[0] ? c->resolved : c->target, c->service, c->argument[0] ? "+" : "",
         c->argument, c->decision, audit_end_name(end), exit_code, c->reason[0] ? ": " : "",
         c->reason);
}

/* Answer the caller with REFUSE (no stream of ours is attached to @s). */
static void call_refuse(Call *c, RpcStream *s, int code, const char *text)
{
    if (code == VRPC_SERVICES_EXIT_REFUSED)
        c->d->refused_total++;
    rpc_stream_refuse(s, code, text);
    c->answered = true;
    call_finish(c, AUDIT_END_REFUSED, code);
}

/* Refuse with 126 and the one text every refusal of this call gets, whatever the cause
 * (@why, for the audit line only): a caller cannot tell a denial from a missing target. */
static void call_deny(Call *c, RpcStream *s, const char *why)
{
    char text[RPC_REASON_MAX + 1];

    c->decision = "deny";
    c->resolved[0] = '\0';
    if (why != c->reason)
        set_reason(c, "%s", why);
    snprintf(text, sizeof(text), "vrpc: %s%s%s to %s refused", c->service,
             c->argument[0] ? "+" : "", c->argument, c->target);
    call_refuse(c, s, VRPC_SERVICES_EXIT_REFUSED, text);
}

/* ---- dom0 services ---------------------------------------------------------------------- */

static void handler_done(VrpcHandler *h, const VrpcHandlerResult *res, void *userdata)
{
    Call *c = userdata;

    /* The handler measures from its start; the audit, from the call's arrival. */
    if (res->spawn_us >= 0)
        c->spawn_us = c->handler_us + res->spawn_us;
    if (res->first_byte_us >= 0)
        c->first_byte_us = c->handler_us + res->first_byte_us;
    c->handler = NULL;
    if (res->aborted)
        call_finish(c, AUDIT_END_CANCELLED, -1);
    else if (res->timed_out) {
        set_reason(c, "the service timed out");
        call_finish(c, AUDIT_END_TIMEOUT, res->exit_code);
    } else
        call_finish(c, AUDIT_END_EXIT, res->exit_code);
    call_maybe_free(c);
}

static void route_dom0(Call *c, RpcStream *s)
{
    VrpcHandlerRequest req = {
        .services_dir = c->d->services_dir,
        .service = c->service,
        .argument = c->argument,
        .where = c->target,
        .call = {.source = c->source,
                 .requested_target = c->target,
                 .user = c->user[0] ? c->user : NULL,
                 .daemon_socket = c->d->socket_path},
    };
    VrpcHandlerRefusal why;
    int64_t resolve_us = 0;
    int64_t t0 = now_us() - c->start_us;
    int r;

    r = vrpc_handler_serve(c->d->handlers, s, &req, handler_done, c, &c->handler, &resolve_us,
                           &why);
    c->handler_us = t0 + resolve_us; /* the handler's clock starts after the resolve */
    if (r == 0)
        return;
    c->handler = NULL;
    if (why.started) {
        dlog(LOG_WARNING, "call %llu: cannot start %s: %s", (unsigned long long)c->id, why.entry,
             why.detail);
        set_reason(c, "cannot start the service: %s", why.detail);
    } else {
        dlog(LOG_INFO, "call %llu: %s: %s", (unsigned long long)c->id, c->service, why.detail);
        set_reason(c, "%s",
                   why.code == VRPC_SERVICES_EXIT_NOT_FOUND ? "service not found" : why.detail);
    }
    /* the stream is refused already */
    c->answered = true;
    call_finish(c, AUDIT_END_REFUSED, why.code);
}

/* ---- relay to a guest ------------------------------------------------------------------- */

static void relay_accepted(RpcRelay *r, void *userdata)
{
    Call *c = userdata;

    c->spawn_us = now_us() - c->start_us;
}

static void relay_first_byte(RpcRelay *r, void *userdata)
{
    Call *c = userdata;

    c->first_byte_us = now_us() - c->start_us;
}

/* The target side failed: the caller gets a framework error with the reason. */
static void relay_abort_reason(RpcRelay *r, bool reset, uint32_t code, const char *reason,
                               char *buf, size_t size, void *userdata)
{
    Call *c = userdata;

    if (!reset)
        snprintf(buf, size, "vrpc: call aborted");
    else if (code == RPC_RESET_CONN_CLOSED && c->dst && c->dst->kind == PEER_HOST)
        snprintf(buf, size, "vrpc: link to %s lost", c->dst->name);
    else
        snprintf(buf, size, "vrpc: call to %s aborted (%s)", c->resolved,
                 code == RPC_RESET_CONN_CLOSED ? "connection lost" : rpc_reset_code_name(code));
}

/* The target refused the call (relayed or direct): counted like a local refusal. */
static void call_finish_refused(Call *c, int code)
{
    if (code == VRPC_SERVICES_EXIT_REFUSED)
        c->d->refused_total++;
    call_finish(c, AUDIT_END_REFUSED, code);
}

static void relay_ended(RpcRelay *r, RpcRelayEnd end, int32_t code, const char *reason,
                        void *userdata)
{
    Call *c = userdata;

    c->answered = true;
    switch (end) {
    case RPC_RELAY_END_EXIT:
        /* An exit with words (the target's 125 for a timeout or a broken service): its own
         * words, marked as such, as for a refusal. */
        if (reason && reason[0])
            set_reason(c, "target: %s", reason);
        call_finish(c, AUDIT_END_EXIT, code);
        break;
    case RPC_RELAY_END_REFUSED:
        /* The target's own words (untrusted; the audit escapes them), marked as such. */
        set_reason(c, "target: %s", reason ? reason : "");
        call_finish_refused(c, code);
        break;
    case RPC_RELAY_END_ABORTED:
        set_reason(c, "%s", reason + strlen("vrpc: "));
        call_finish(c, AUDIT_END_ABORTED, code);
        break;
    case RPC_RELAY_END_CANCELLED:
        if (c->src && c->src->kind == PEER_HOST && rpc_conn_is_closed(c->src->conn)) {
            /* The calling host's link went: the caller there gets 125 from its dispatcher. */
            set_reason(c, "link to %s lost", c->src->name);
            call_finish(c, AUDIT_END_ABORTED, VRPC_SERVICES_EXIT_FRAMEWORK);
        } else {
            call_finish(c, AUDIT_END_CANCELLED, -1);
        }
        break;
    }
}

static void relay_freed(RpcRelay *r, void *userdata)
{
    Call *c = userdata;

    c->relay = NULL;
    call_maybe_free(c);
}

static const RpcRelayOps route_relay_ops = {
    .abort_code = VRPC_SERVICES_EXIT_FRAMEWORK,
    .cancel_reason = "vrpc: the caller went away",
    .on_accept = relay_accepted,
    .on_first_byte = relay_first_byte,
    .abort_reason = relay_abort_reason,
    .on_end = relay_ended,
    .on_free = relay_freed,
};

static void route_guest(Call *c, RpcStream *s, Peer *dst, const char *remote_target)
{
    RpcCall oc = {
        .service = c->service,
        .argument = c->argument,
        .target = remote_target ? remote_target : c->target,
        .source = c->source,
        .user = c->user,
        .call_id = c->id,
    };
    RpcStream *out = NULL;
    char reason[RPC_REASON_MAX + 1];
    int r;

    r = rpc_stream_open(dst->conn, &oc, &out);
    if (r == 0) {
        r = rpc_relay_new(&c->relay, s, out, &route_relay_ops, c);
        if (r < 0)
            rpc_stream_reset(out, RPC_RESET_CANCEL, "vrpc: out of memory");
    }
    if (r < 0) {
        snprintf(reason, sizeof(reason), "vrpc: cannot reach %s: %s", dst->name,
                 r == -EBUSY ? "too many calls" : strerror(-r));
        set_reason(c, "%s", reason + strlen("vrpc: "));
        call_refuse(c, s, VRPC_SERVICES_EXIT_FRAMEWORK, reason);
        return;
    }
    c->dst = dst;
    if (dst->kind == PEER_HOST)
        dst->calls_out++;
    else
        c->path = "relay";
}

/* ---- direct guest<->guest path (direct.c) ---------------------------------------------- */

static const RpcStreamOps ask_stream_ops;
static void held_hand_over(Call *c, RpcStream *s);

/* The channel could not be set up: relay the call (its stdin was held meanwhile). */
static void direct_fall_back(Call *c, RpcStream *s, const char *why)
{
    Peer *dst = rpc_valid_domain(c->resolved) ? peer_find_guest(c->d, c->resolved) : NULL;

    c->fallback = why;
    rpc_stream_set_ops(s, NULL, NULL);
    c->in = NULL;
    if (dst)
        route_guest(c, s, dst, NULL);
    else
        call_deny(c, s, peer_absent_reason(c->d, c->resolved));
    held_hand_over(c, s);
}

static void direct_served(void *userdata, int err, const char *why, DirectChan *chan,
                          int target_domid, unsigned ch, uint64_t token)
{
    Call *c = userdata;
    RpcStream *s = c->in;
    char text[RPC_REASON_MAX + 1];

    c->dreq = NULL;
    if (c->finished || !s) {
        direct_chan_release(chan); /* the caller went away meanwhile */
        call_maybe_free(c);
        return;
    }
    if (err < 0) {
        dlog(LOG_INFO, "call %llu: direct channel: %s; relaying", (unsigned long long)c->id, why);
        direct_fall_back(c, s, "setup-failed");
        return;
    }
    c->chan = chan;
    c->token = token;
    c->direct = true;
    c->path = "direct";
    c->spawn_us = now_us() - c->start_us; /* the redirect: the source's agent goes on */
    vrpc_direct_format_redirect(text, sizeof(text), target_domid, ch, token, c->id);
    rpc_stream_set_ops(s, NULL, NULL);
    c->in = NULL;
    c->answered = true;
    rpc_stream_refuse(s, VRPC_DIRECT_REDIRECT_CODE, text);
    call_maybe_free(c);
}

/* Both agents can: the target's agent gets a token for this call on the channel of the
 * pair, then the caller's agent is told to go there. Holds the caller's stdin meanwhile. */
static void route_direct(Call *c, RpcStream *s, Peer *dst)
{
    DirectCallInfo info = {.call_id = c->id,
                           .source = c->source,
                           .service = c->service,
                           .argument = c->argument,
                           .user = c->user};
    int r;

    c->dst = dst;
    c->in = s;
    rpc_stream_set_ops(s, &ask_stream_ops, c);
    r = direct_request(c->d, c->src, dst, &info, direct_served, c, &c->dreq);
    if (r < 0) {
        dlog(LOG_INFO, "call %llu: direct channel: %s; relaying", (unsigned long long)c->id,
             strerror(-r));
        direct_fall_back(c, s, "setup-failed");
    }
}

static void direct_end_noted(Call *c);

static void revoke_done(void *userdata, bool dropped)
{
    Call *c = userdata;

    c->revoking = false;
    if (dropped && !c->finished) {
        c->quiet = true; /* never ran: the relayed call's audit line tells it */
        call_finish(c, AUDIT_END_CANCELLED, -1);
    }
    call_maybe_free(c);
}

/* The source agent re-issued call @old_id through dom0: drop the direct attempt. */
static void direct_note_fallback(Peer *src, uint64_t old_id)
{
    for (Call *c = src->d->calls; c; c = c->next) {
        if (c->id != old_id || c->src != src || !c->direct || c->finished || c->fell_back)
            continue;
        c->fell_back = true;
        c->source_done = true; /* the source's report of the direct attempt */
        if (direct_revoke(c->chan, c->id, c->token, revoke_done, c) == 0)
            c->revoking = true;
        direct_end_noted(c);
        return;
    }
}

/* The target's end report decides the audit line (it ran the handler): as on the relay. */
static void direct_finish_reported(Call *c, const DirectEnd *e)
{
    if (e->code >= 0 && e->refused) {
        /* as on the relay (relay_ended): the handler never ran */
        set_reason(c, "target refused the call (%d)", e->code);
        call_finish_refused(c, e->code);
    } else if (e->code >= 0) {
        call_finish(c, AUDIT_END_EXIT, e->code);
    } else if (e->code == VRPC_DIRECT_EXIT_ABORTED) {
        set_reason(c, "direct call aborted");
        call_finish(c, AUDIT_END_ABORTED, VRPC_SERVICES_EXIT_FRAMEWORK);
    } else {
        c->quiet = c->fell_back;
        set_reason(c, "direct token never used");
        call_finish(c, AUDIT_END_ABORTED, VRPC_SERVICES_EXIT_FRAMEWORK);
    }
}

/* An end report as the protocol writes it, for a reason text. */
static const char *direct_end_word(const DirectEnd *e, char *buf, size_t size)
{
    return vrpc_direct_format_exit(buf, size, e->code, e->refused);
}

/* The exit code the source's agent says its caller was given (-1: none, it went away). */
static int direct_end_exit(const DirectEnd *e)
{
    if (e->code == VRPC_DIRECT_EXIT_CANCELLED)
        return -1;
    return e->code >= 0 ? e->code : VRPC_SERVICES_EXIT_FRAMEWORK;
}

/* Close a direct call with the reports that came: both (agreeing or not), the target's only,
 * the source's only (unconfirmed), or none. */
static void direct_conclude(Call *c)
{
    const DirectEnd *t = &c->end_target, *s = &c->end_source;
    char tw[24], sw[24];

    if (c->finished)
        return;
    if (c->report_due)
        rpc_loop_timer_set(c->report_due, -1);
    c->reported_by = t->has && s->has ? "both" : t->has ? "target" : s->has ? "source" : "none";
    if (s->has && s->code == VRPC_DIRECT_EXIT_CANCELLED &&
        (!t->has || t->code == VRPC_DIRECT_EXIT_ABORTED)) {
        /* The caller gave up or went away, and the target saw its stream reset (or said
         * nothing): no exit status was given. */
        if (!t->has && c->dst)
            set_reason(c, "the caller went away; the target agent did not report the end");
        call_finish(c, AUDIT_END_CANCELLED, -1);
    } else if (t->has && s->has && (t->code != s->code || t->refused != s->refused)) {
        set_reason(c, "the agents' reports differ: target %s, source %s",
                   direct_end_word(t, tw, sizeof(tw)), direct_end_word(s, sw, sizeof(sw)));
        call_finish(c, AUDIT_END_MISMATCH, direct_end_exit(s));
    } else if (t->has) {
        direct_finish_reported(c, t);
    } else if (!c->dst && !s->has) {
        /* The target's agent went away: its exit report never comes. */
        set_reason(c, "target agent went away");
        call_finish(c, AUDIT_END_ABORTED, VRPC_SERVICES_EXIT_FRAMEWORK);
    } else if (s->has) {
        set_reason(c, "%s; the source reported %s",
                   c->dst ? "the target agent did not report the end" : "target agent went away",
                   direct_end_word(s, sw, sizeof(sw)));
        call_finish(c, AUDIT_END_UNCONFIRMED, direct_end_exit(s));
    } else {
        set_reason(c, "%s; the target agent did not report the end",
                   c->fell_back ? "the source fell back to the relay" : "source agent went away");
        call_finish(c, AUDIT_END_UNCONFIRMED, -1);
    }
}

static void direct_report_due(RpcLoopSource *src, void *userdata)
{
    Call *c = userdata;

    direct_conclude(c);
    call_maybe_free(c);
}

/* One side of a direct call is over: close it when both are, else give the other side
 * direct-report-timeout to say so (a legitimate report follows the first within
 * milliseconds; a hostile or dead agent's never comes, and must not pin the record or the
 * source's calls quota). Not a bound on the call itself: that may run for hours. */
static void direct_end_noted(Call *c)
{
    if (c->finished)
        return;
    if ((c->end_target.has && c->source_done) || !c->dst) {
        direct_conclude(c);
        return;
    }
    if (c->report_due)
        return; /* the first report armed it */
    if (rpc_loop_add_timer(c->d->loop, c->d->config.direct_report_ms, direct_report_due, c,
                           &c->report_due) < 0)
        direct_conclude(c);
}

/* A control call from a guest agent: only the end report of a direct call, from its target
 * (it served it) or its source (it relayed its caller to it). */
static void route_control(Peer *src, RpcStream *s, const RpcCall *untrusted_call)
{
    int code = -EINVAL;
    bool refused = false;
    Call *c = NULL;

    if (src->kind == PEER_GUEST && strcmp(untrusted_call->service, VRPC_DIRECT_SVC_EXIT) == 0) {
        code = vrpc_direct_parse_exit(untrusted_call->argument, &refused);
        for (c = src->d->calls; c; c = c->next)
            if (c->id == untrusted_call->call_id && c->direct && !c->finished &&
                (c->dst == src || c->src == src))
                break;
    }
    /* Only the source's agent knows whether its caller went away. */
    if (!c || code == -EINVAL || (code == VRPC_DIRECT_EXIT_CANCELLED && c->src != src)) {
        rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: unknown control call");
        return;
    }
    DirectEnd *e = c->dst == src ? &c->end_target : &c->end_source;
    if (e->has) {
        rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: end reported already");
        return;
    }
    if (rpc_stream_accept(s) == 0)
        rpc_stream_exit(s, 0, NULL);
    *e = (DirectEnd){.has = true, .refused = refused, .code = code};
    if (e == &c->end_source)
        c->source_done = true;
    direct_end_noted(c);
    call_maybe_free(c);
}

/* ---- a decided call ----------------------------------------------------------------------- */

/* The policy (and the prompt, if any) decided: @why_denied NULL means allowed, to
 * c->resolved. Refuses, runs the dom0 service, or relays to the target guest. */
static void route_decided(Call *c, RpcStream *s, const char *why_denied)
{
    Peer *dst;

    if (why_denied) {
        call_deny(c, s, why_denied);
        return;
    }
    c->decision = "allow";
    if (strcmp(c->resolved, "dom0") == 0) {
        route_dom0(c, s);
        return;
    }
    char domain[VRPC_NAME_MAX + 1], host[VRPC_HOST_MAX + 1];
    if (vrpc_name_split_qualified(c->resolved, domain, host) == 1) {
        /* NAME@PEER: over that host's link, where its own policy decides again (inbound). A
         * call that came from a host never goes on to a third one. */
        dst = c->src && c->src->kind != PEER_HOST ? links_find(c->d->links, host) : NULL;
        if (dst)
            route_guest(c, s, dst, domain);
        else
            call_deny(c, s,
                      links_is_peer(c->d->links, host) ? "host not connected" : "unknown host");
        return;
    }
    dst = rpc_valid_domain(c->resolved) ? peer_find_guest(c->d, c->resolved) : NULL;
    if (dst && (c->flags & VRPC_CALL_F_DIRECT_OK) && !(c->flags & VRPC_CALL_F_NO_DIRECT)) {
        const char *why_not = NULL;
        if (direct_possible(c->d, c->src, dst, &why_not)) {
            route_direct(c, s, dst);
            return;
        }
        c->fallback = why_not;
    }
    if (dst)
        route_guest(c, s, dst, NULL);
    else
        call_deny(c, s, peer_absent_reason(c->d, c->resolved));
}

/* Run the notify program when the rule asks for it, with the final decision. */
static void route_notify(Call *c, bool notify)
{
    char call[RPC_SERVICE_MAX + RPC_ARG_MAX + 2];

    if (!notify)
        return;
    snprintf(call, sizeof(call), "%s%s%s", c->service, c->argument[0] ? "+" : "", c->argument);
    ask_notify(c->d->asks,
               &(AskArgs){
                   .source = c->source,
                   .call = call,
                   .target = c->decision[0] == 'a' && c->resolved[0] ? c->resolved
                             : c->dec.target[0]                      ? c->dec.target
                                                                     : c->target,
                   .default_target = c->dec.default_target,
               },
               c->decision);
}

/* ---- ask ---------------------------------------------------------------------------------- */

static void ask_done(const AskAnswer *ans, void *userdata)
{
    Call *c = userdata;
    RpcStream *s = c->in;
    char target[VRPC_POLICY_NAME_MAX + 1];
    const char *why = NULL;

    c->ask = NULL;
    c->ask_us = now_us() - c->start_us;
    snprintf(c->answer, sizeof(c->answer), "%s", ans->text);
    if (ask_decide(ans, c->snapshot, &c->dec, target, &why)) {
        snprintf(c->resolved, sizeof(c->resolved), "%s", target);
        if (c->dec.user)
            snprintf(c->user, sizeof(c->user), "%s", c->dec.user);
    }
    dlog(LOG_INFO, "call %llu: ask: %s -> %s %s%s%s: answer \"%s\": %s", (unsigned long long)c->id,
         c->source, c->dec.target, c->service, c->argument[0] ? "+" : "", c->argument,
         VRPC_ESC(ans->text), why ? why : c->resolved); /* escaped: any line may come */
    /* Hand the stream over as if the call had just arrived. */
    rpc_stream_set_ops(s, NULL, NULL);
    c->in = NULL;
    route_decided(c, s, why);
    route_notify(c, c->dec.notify);
    c->snapshot = vrpc_policy_unref(c->snapshot);
    c->dec.user = c->dec.default_target = c->dec.rule_file = NULL;

    held_hand_over(c, s);
}

/* @s was held (ask_stream_ops) and has its new owner now, if any: pass on the stdin the
 * caller sent meanwhile (ask_on_data returned 0), or its EOF. */
static void held_hand_over(Call *c, RpcStream *s)
{
    if (c->in && c->in == s)
        return; /* held again (a direct channel being set up) */
    if (c->in_eof) {
        /* and its EOF, to the stream's new owner (the relay or the handler holds @s) */
        const RpcStreamOps *owner = c->relay || c->handler ? rpc_stream_get_ops(s) : NULL;
        if (owner && owner->on_eof)
            owner->on_eof(s, RPC_CH_STDIN, rpc_stream_get_userdata(s));
        call_maybe_free(c);
    } else {
        call_maybe_free(c);
        rpc_stream_resume(s); /* to the new owner, or discarded after a refusal */
    }
}

/* The caller's stream while the prompt is pending. */
static size_t ask_on_data(RpcStream *s, RpcChannel ch, const uint8_t *data, size_t len,
                          void *userdata)
{
    return 0; /* held (delivery pauses) until the prompt is answered */
}

static void ask_on_eof(RpcStream *s, RpcChannel ch, void *userdata)
{
    Call *c = userdata;

    c->in_eof = true; /* passed on when the prompt is answered */
}

static void ask_on_reset(RpcStream *s, uint32_t code, bool local, const char *reason,
                         void *userdata)
{
    Call *c = userdata;

    /* The caller went away (or broke the stream). */
    c->answered = true;
    call_finish(c, AUDIT_END_CANCELLED, -1);
}

static void ask_on_stream_free(RpcStream *s, void *userdata)
{
    Call *c = userdata;

    rpc_stream_set_ops(s, NULL, NULL);
    c->in = NULL;
    if (!c->finished && !c->answered)
        call_finish(c, AUDIT_END_CANCELLED, -1); /* freed without a reset seen */
    call_maybe_free(c);
}

static const RpcStreamOps ask_stream_ops = {
    .on_data = ask_on_data,
    .on_eof = ask_on_eof,
    .on_reset = ask_on_reset,
    .on_stream_free = ask_on_stream_free,
};

/* An ask decision with a program configured: start the prompt and keep @snapshot. Returns
 * false (nothing kept) when the program cannot be started. */
static bool route_ask(Call *c, RpcStream *s, VrpcPolicy *snapshot)
{
    char call[RPC_SERVICE_MAX + RPC_ARG_MAX + 2];
    int r;

    snprintf(call, sizeof(call), "%s%s%s", c->service, c->argument[0] ? "+" : "", c->argument);
    r = ask_start(c->d->asks,
                  &(AskArgs){
                      .source = c->source,
                      .call = call,
                      .target = c->dec.target,
                      .default_target = c->dec.default_target,
                  },
                  ask_done, c, &c->ask);
    if (r < 0) {
        dlog(LOG_WARNING, "call %llu: cannot run the ask program: %s", (unsigned long long)c->id,
             strerror(-r));
        set_reason(c, "ask: cannot run the ask program: %s", strerror(-r));
        return false;
    }
    c->snapshot = vrpc_policy_ref(snapshot);
    c->in = s;
    rpc_stream_set_ops(s, &ask_stream_ops, c);
    return true;
}

/* ---- a new call --------------------------------------------------------------------------- */

void route_call(Peer *src, RpcStream *s, const RpcCall *untrusted_call)
{
    Dispatcher *d = src->d;
    VrpcPolicy *snapshot;
    const char *why = NULL;
    Call *c;
    int r;

    /* librpc has checked every field's charset and length. The source field is for the
     * dispatcher -> agent direction only: a guest that sets it is trying to impersonate. */
    if (src->kind == PEER_GUEST && untrusted_call->source && untrusted_call->source[0]) {
        dlog(LOG_WARNING, "guest %s (domid %d): protocol violation: CALL with a source field",
             src->name, src->domid);
        peer_drop(src, "protocol violation: CALL with a source field");
        return;
    }
    /* From a host: its dispatcher vouches for the domain part only, one of its own domains
     * (plain); the @HOST part is the link's certificate's. */
    if (src->kind == PEER_HOST && (!untrusted_call->source || !untrusted_call->source[0] ||
                                   !rpc_valid_domain(untrusted_call->source))) {
        dlog(LOG_WARNING, "host %s: protocol violation: CALL without a plain source domain",
             src->name);
        peer_drop(src, "protocol violation: CALL without a plain source domain");
        return;
    }
    if (untrusted_call->flags & VRPC_CALL_F_CONTROL) {
        route_control(src, s, untrusted_call);
        return;
    }
    /* A call (not an agent's control message, such as a direct call's end report). */
    d->calls_total++;
    src->calls_total++;
    c = calloc(1, sizeof(*c));
    if (!c) {
        rpc_stream_refuse(s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: out of memory");
        return;
    }
    c->d = d;
    if (src->kind == PEER_GUEST && (untrusted_call->flags & VRPC_CALL_F_DIRECT_OK))
        c->flags |= VRPC_CALL_F_DIRECT_OK;
    /* Only a guest's agent asks for the relay (and says why): from it, the call it falls
     * back from is the direct attempt it names. */
    if (src->kind == PEER_GUEST && (untrusted_call->flags & VRPC_CALL_F_NO_DIRECT)) {
        unsigned fb = (untrusted_call->flags & VRPC_CALL_FALLBACK_MASK) >> VRPC_CALL_FALLBACK_SHIFT;
        c->flags |= VRPC_CALL_F_NO_DIRECT;
        c->fallback = vrpc_direct_fallback_name(fb);
        direct_note_fallback(src, untrusted_call->call_id);
    }
    c->id = ++d->next_call_id;
    c->src = src;
    c->wall_us = wall_us();
    c->start_us = now_us();
    c->policy_us = c->ask_us = c->spawn_us = c->first_byte_us = -1;
    c->policy_action = "none";
    c->decision = "deny";
    snprintf(c->rule, sizeof(c->rule), "none");
    if (src->kind == PEER_HOST) {
        if (vrpc_name_join_qualified(c->source, untrusted_call->source, src->name) < 0)
            snprintf(c->source, sizeof(c->source), "%s", "-invalid-");
    } else {
        snprintf(c->source, sizeof(c->source), "%s", src->name);
    }
    snprintf(c->target, sizeof(c->target), "%s",
             untrusted_call->target && untrusted_call->target[0] ? untrusted_call->target
                                                                 : "@default");
    /* NAME@THISHOST is local: normalized before the policy sees it. */
    {
        char domain[VRPC_NAME_MAX + 1], host[VRPC_HOST_MAX + 1];
        const HostConfig *hc = &d->config.host;
        if (hc->enabled && vrpc_name_split_qualified(c->target, domain, host) == 1 &&
            strcmp(host, hc->name) == 0)
            snprintf(c->target, sizeof(c->target), "%s", domain);
    }
    snprintf(c->service, sizeof(c->service), "%s", untrusted_call->service);
    snprintf(c->argument, sizeof(c->argument), "%s",
             untrusted_call->argument ? untrusted_call->argument : "");
    call_link(d, c);
    src->calls_in_flight++;
    d->calls_in_flight++;

    /* Pending prompts count too: a guest cannot queue more than its quota of them. */
    if (src->calls_in_flight > d->config.max_calls_per_guest) {
        set_reason(c, "too many calls");
        call_refuse(c, s, VRPC_SERVICES_EXIT_FRAMEWORK, "vrpc: too many calls");
        call_maybe_free(c);
        return;
    }

    snapshot = vrpc_policy_holder_get(d->policy);
    VrpcPolicyRequest req = {
        .source = c->source,
        .untrusted_target = c->target,
        .untrusted_service = c->service,
        .untrusted_argument = c->argument,
    };
    r = vrpc_policy_evaluate(snapshot, &req, &c->dec);
    c->policy_us = now_us() - c->start_us;
    if (r != 0) {
        c->dec.action = VRPC_POLICY_DENY; /* malformed: the policy was not consulted */
    } else {
        c->policy_action = vrpc_policy_action_to_string(c->dec.action);
        if (c->dec.rule_file)
            snprintf(c->rule, sizeof(c->rule), "%s:%u", c->dec.rule_file, c->dec.rule_line);
        else
            snprintf(c->rule, sizeof(c->rule), "default");
    }
    if (c->dec.action == VRPC_POLICY_ASK) {
        if (!ask_set_has_program(d->asks))
            vrpc_policy_decision_resolve_ask(&c->dec, NULL); /* ask means deny */
        else if (route_ask(c, s, snapshot)) {
            vrpc_policy_unref(snapshot);
            return; /* ask_done() goes on */
        } else
            c->dec.action = VRPC_POLICY_DENY; /* the reason is set */
    }
    if (c->dec.action == VRPC_POLICY_ALLOW) {
        snprintf(c->resolved, sizeof(c->resolved), "%s", c->dec.target);
        if (c->dec.user)
            snprintf(c->user, sizeof(c->user), "%s", c->dec.user);
    } else {
        why = c->reason[0] ? c->reason : c->dec.reason ? c->dec.reason : "denied";
        dlog(LOG_DEBUG, "call %llu: denied: %s", (unsigned long long)c->id, why);
    }
    route_decided(c, s, why);
    route_notify(c, c->dec.notify);
    c->dec.user = c->dec.default_target = c->dec.rule_file = NULL;
    vrpc_policy_unref(snapshot);
    call_maybe_free(c);
}

void route_peer_gone(Peer *p)
{
    Call *next;

    for (Call *c = p->d->calls; c; c = next) {
        next = c->next;
        bool was_end = c->direct && (c->src == p || c->dst == p);
        if (c->src == p) {
            c->src = NULL;
            c->source_done = true; /* its channels close: the call is over on its side */
        }
        if (c->dst == p)
            c->dst = NULL; /* its report never comes */
        if (was_end && !c->finished) {
            direct_end_noted(c);
            call_maybe_free(c);
        }
    }
    direct_peer_gone(p);
}

void route_free_all(Dispatcher *d)
{
    while (d->calls) {
        Call *c = d->calls;
        c->finished = true;
        direct_req_cancel(c->dreq);
        c->chan = NULL; /* freed with the channels */
        call_free(c);
    }
}
