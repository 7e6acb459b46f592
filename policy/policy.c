/* SPDX-License-Identifier: MIT */
/*
 * The compiled policy and its evaluator. Rules keep their global order (the
 * index of the rule over all files, in file-name order); the first matching
 * rule wins. To avoid scanning every rule, each rule is filed in exactly one
 * of four ordered candidate lists, by whether its service is an exact name
 * and whether its source is one exact domain:
 *
 *   by_service_source  "SERVICE/SOURCE" -> exact service, exact source
 *   by_service         "SERVICE"        -> exact service, any other source token
 *   by_source          "SOURCE"         -> prefix or "*" service, exact source
 *   generic                             -> prefix or "*" service, other source
 *
 * A call looks up at most one list of each kind and walks them merged by rule
 * index, fully testing each candidate; the first full match is the answer,
 * exactly as if every rule had been tested in order. A snapshot is immutable
 * once sealed and is shared by reference count, so evaluation needs neither
 * locks nor allocation.
 */

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "common/array.h"
#include "strmap.h"

#define ARENA_CHUNK 65536

typedef struct ArenaChunk ArenaChunk;
struct ArenaChunk {
    ArenaChunk *next;
    size_t used, size;
    char data[];
};

typedef struct PolicyIdList {
    uint32_t *ids;
    size_t n, cap;
} PolicyIdList;

struct VrpcPolicy {
    atomic_ulong refcount;
    bool sealed;
    bool valid;
    PolicyRule *rules;
    size_t n_rules, cap_rules;
    char **files;
    size_t n_files;
    PolicyDomains *domains;
    VrpcDiag diag;
    ArenaChunk *arena;
    PolicyStrMap *by_service_source;
    PolicyStrMap *by_service;
    PolicyStrMap *by_source;
    PolicyIdList generic;
};

static char *arena_alloc(VrpcPolicy *p, size_t size)
{
    ArenaChunk *c = p->arena;

    if (!c || c->size - c->used < size) {
        size_t chunk = size > ARENA_CHUNK ? size : ARENA_CHUNK;

        c = malloc(sizeof(*c) + chunk);
        if (!c)
            return NULL;
        c->next = p->arena;
        c->used = 0;
        c->size = chunk;
        p->arena = c;
    }
    c->used += size;
    return c->data + c->used - size;
}

static const char *arena_strndup(VrpcPolicy *p, const char *s, size_t len)
{
    char *copy = arena_alloc(p, len + 1);

    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = 0;
    return copy;
}

static void id_list_free(void *value)
{
    PolicyIdList *l = value;

    if (l)
        free(l->ids);
    free(l);
}

static int id_list_append(PolicyIdList *l, uint32_t id)
{
    if (vrpc_array_reserve(&l->ids, l->n, &l->cap, sizeof(*l->ids), 4) < 0)
        return -ENOMEM;
    l->ids[l->n++] = id;
    return 0;
}

/* Append ID to the list under KEY, creating the list on first use. */
static int index_add(PolicyStrMap *map, const char *key, size_t len, uint32_t id)
{
    PolicyIdList *l = policy_strmap_get(map, key, len);
    int r;

    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l)
            return -ENOMEM;
        r = policy_strmap_put(map, key, len, l);
        if (r < 0) {
            free(l);
            return r;
        }
    }
    return id_list_append(l, id);
}

int policy_new(VrpcPolicy **policyp)
{
    VrpcPolicy *p = calloc(1, sizeof(*p));

    if (!p)
        return -ENOMEM;
    atomic_init(&p->refcount, 1);
    vrpc_diag_init(&p->diag);
    if (policy_strmap_new(&p->by_service_source, id_list_free) < 0 ||
        policy_strmap_new(&p->by_service, id_list_free) < 0 ||
        policy_strmap_new(&p->by_source, id_list_free) < 0) {
        vrpc_policy_unref(p);
        return -ENOMEM;
    }
    *policyp = p;
    return 0;
}

static void policy_free(VrpcPolicy *p)
{
    policy_strmap_free(p->by_service_source);
    policy_strmap_free(p->by_service);
    policy_strmap_free(p->by_source);
    free(p->generic.ids);
    while (p->arena) {
        ArenaChunk *next = p->arena->next;

        free(p->arena);
        p->arena = next;
    }
    for (size_t i = 0; i < p->n_files; i++)
        free(p->files[i]);
    free(p->files);
    free(p->rules);
    policy_domains_free(p->domains);
    vrpc_diag_deinit(&p->diag);
    free(p);
}

VrpcPolicy *vrpc_policy_ref(VrpcPolicy *policy)
{
    if (policy)
        atomic_fetch_add_explicit(&policy->refcount, 1, memory_order_relaxed);
    return policy;
}

VrpcPolicy *vrpc_policy_unref(VrpcPolicy *policy)
{
    if (policy && atomic_fetch_sub_explicit(&policy->refcount, 1, memory_order_acq_rel) == 1)
        policy_free(policy);
    return NULL;
}

VrpcDiag *policy_get_diag(VrpcPolicy *policy)
{
    return &policy->diag;
}

int policy_add_file(VrpcPolicy *policy, const char *path, const char **pathp)
{
    char **files = realloc(policy->files, (policy->n_files + 1) * sizeof(*files));
    char *copy;

    if (!files)
        return -ENOMEM;
    policy->files = files;
    copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    policy->files[policy->n_files++] = copy;
    *pathp = copy;
    return 0;
}

static int copy_token(VrpcPolicy *p, PolicyToken *dst, const PolicyToken *src)
{
    *dst = *src;
    if (src->value) {
        dst->value = arena_strndup(p, src->value, src->len);
        if (!dst->value)
            return -ENOMEM;
    }
    return 0;
}

static int copy_opt_string(VrpcPolicy *p, const char **dst, const char *src)
{
    *dst = NULL;
    if (src) {
        *dst = arena_strndup(p, src, strlen(src));
        if (!*dst)
            return -ENOMEM;
    }
    return 0;
}

int policy_add_rule(VrpcPolicy *policy, const char *file, const PolicyRuleSpec *spec)
{
    PolicyRule r = {0};

    if (policy->n_rules >= UINT32_MAX - 1)
        return -ENOMEM;
    if (vrpc_array_reserve(&policy->rules, policy->n_rules, &policy->cap_rules,
                           sizeof(*policy->rules), 64) < 0)
        return -ENOMEM;
    r.service = arena_strndup(policy, spec->service, spec->service_len);
    r.service_len = spec->service_len;
    r.service_prefix = spec->service_prefix;
    if (!r.service)
        return -ENOMEM;
    if (spec->argument) {
        r.argument = arena_strndup(policy, spec->argument, spec->argument_len);
        if (!r.argument)
            return -ENOMEM;
    }
    if (copy_token(policy, &r.source, &spec->source) < 0 ||
        copy_token(policy, &r.target, &spec->target) < 0 ||
        copy_opt_string(policy, &r.redirect, spec->redirect) < 0 ||
        copy_opt_string(policy, &r.default_target, spec->default_target) < 0 ||
        copy_opt_string(policy, &r.user, spec->user) < 0)
        return -ENOMEM;
    r.action = spec->action;
    r.notify = spec->notify;
    r.file = file;
    r.line = spec->line;
    policy->rules[policy->n_rules++] = r;
    return 0;
}

void policy_set_domains(VrpcPolicy *policy, PolicyDomains *domains)
{
    policy_domains_free(policy->domains);
    policy->domains = domains;
}

/* The exact source a rule is keyed by, or NULL when it needs a full test. */
static const char *rule_exact_source(const PolicyRule *r)
{
    if (r->source.kind == POLICY_TOKEN_NAME)
        return r->source.value;
    if (r->source.kind == POLICY_TOKEN_ADMINVM)
        return "dom0";
    return NULL;
}

int policy_seal(VrpcPolicy *policy)
{
    char key[2 * VRPC_POLICY_NAME_MAX + 8];
    int r = 0;

    for (size_t i = 0; i < policy->n_rules && r >= 0; i++) {
        const PolicyRule *rule = &policy->rules[i];
        const char *src = rule_exact_source(rule);
        uint32_t id = (uint32_t)i;

        if (!rule->service_prefix && src) {
            int n = snprintf(key, sizeof(key), "%s/%s", rule->service, src);

            r = index_add(policy->by_service_source, key, (size_t)n, id);
        } else if (!rule->service_prefix) {
            r = index_add(policy->by_service, rule->service, rule->service_len, id);
        } else if (src) {
            r = index_add(policy->by_source, src, strlen(src), id);
        } else {
            r = id_list_append(&policy->generic, id);
        }
    }
    if (r < 0)
        return r;
    policy->sealed = true;
    policy->valid = !vrpc_diag_has_errors(&policy->diag) && !policy->diag.oom;
    return 0;
}

size_t policy_get_n_rules_internal(const VrpcPolicy *policy)
{
    return policy->n_rules;
}

const PolicyRule *policy_get_rule(const VrpcPolicy *policy, size_t index)
{
    return index < policy->n_rules ? &policy->rules[index] : NULL;
}

const PolicyDomains *policy_get_domains(const VrpcPolicy *policy)
{
    return policy->domains;
}

bool vrpc_policy_is_valid(const VrpcPolicy *policy)
{
    return policy && policy->sealed && policy->valid;
}

size_t vrpc_policy_get_n_errors(const VrpcPolicy *policy)
{
    return policy ? policy->diag.n_lines : 0;
}

const char *vrpc_policy_get_error(const VrpcPolicy *policy, size_t index)
{
    return policy && index < policy->diag.n_lines ? policy->diag.lines[index] : NULL;
}

size_t vrpc_policy_get_n_rules(const VrpcPolicy *policy)
{
    return policy ? policy->n_rules : 0;
}

size_t vrpc_policy_get_n_files(const VrpcPolicy *policy)
{
    return policy ? policy->n_files : 0;
}

const char *vrpc_policy_action_to_string(VrpcPolicyAction action)
{
    switch (action) {
    case VRPC_POLICY_ALLOW:
        return "allow";
    case VRPC_POLICY_DENY:
        return "deny";
    case VRPC_POLICY_ASK:
        return "ask";
    }
    return "invalid";
}

/* Domain metadata is looked up at most once per side and call. HOST is the part
 * after '@' of a remote (qualified) name, NULL for a local one. */
typedef struct LazyDomain {
    const char *name;
    const char *host;
    const PolicyDomain *domain;
    bool looked_up;
} LazyDomain;

static LazyDomain lazy_domain_init(const char *name, size_t len)
{
    const char *at = name ? memchr(name, '@', len) : NULL;

    return (LazyDomain){.name = name, .host = at ? at + 1 : NULL};
}

static const PolicyDomain *lazy_domain_get(const VrpcPolicy *p, LazyDomain *l)
{
    if (!l->looked_up) {
        l->domain = policy_domains_lookup(p->domains, l->name);
        l->looked_up = true;
    }
    return l->domain;
}

/*
 * Does token T match domain L->name (NULL: the caller named no target)?
 * Like qrexec, "*" and @anyvm also match a call that named no target, which
 * lets "@anyvm @anyvm ask" cover it; an allow rule reached that way without a
 * redirect denies (see decide()). A remote name (DOMAIN@HOST) is matched only
 * by *@*, *@HOST and its own exact name: "*", @anyvm, @adminvm, tags and types
 * never match it, so that no existing policy opens a host to the network.
 */
static bool token_matches(const VrpcPolicy *p, const PolicyToken *t, LazyDomain *l)
{
    const PolicyDomain *d;

    switch (t->kind) {
    case POLICY_TOKEN_ANY:
        return !l->host;
    case POLICY_TOKEN_ANYVM:
        return !l->host && !policy_is_dom0(l->name);
    case POLICY_TOKEN_ADMINVM:
        return policy_is_dom0(l->name);
    case POLICY_TOKEN_NAME:
        return l->name && strcmp(t->value, l->name) == 0;
    case POLICY_TOKEN_TAG:
        d = l->name && !l->host ? lazy_domain_get(p, l) : NULL;
        return d && policy_domain_has_tag(d, t->value);
    case POLICY_TOKEN_TYPE:
        d = l->name && !l->host ? lazy_domain_get(p, l) : NULL;
        return d && d->type && strcmp(d->type, t->value) == 0;
    case POLICY_TOKEN_DEFAULT:
        return !l->name;
    case POLICY_TOKEN_REMOTE_ANY:
        return l->host != NULL;
    case POLICY_TOKEN_REMOTE_HOST:
        return l->host && strcmp(t->value, l->host) == 0;
    }
    return false;
}

static bool rule_matches(const VrpcPolicy *p, const PolicyRule *r, const PolicyCall *call,
                         LazyDomain *src, LazyDomain *tgt)
{
    if (r->service_prefix) {
        if (call->service_len < r->service_len ||
            memcmp(call->service, r->service, r->service_len) != 0)
            return false;
    } else if (call->service_len != r->service_len ||
               memcmp(call->service, r->service, r->service_len) != 0) {
        return false;
    }
    if (r->argument && strcmp(r->argument, call->argument) != 0)
        return false;
    return token_matches(p, &r->source, src) && token_matches(p, &r->target, tgt);
}

static void set_target(VrpcPolicyDecision *d, const char *name)
{
    snprintf(d->target, sizeof(d->target), "%s", name);
}

static void decide(const VrpcPolicy *p, const PolicyRule *r, const PolicyCall *call,
                   VrpcPolicyDecision *d)
{
    const char *target = r->redirect ? r->redirect : call->target;

    d->rule_file = r->file;
    d->rule_line = r->line;
    d->rule_index = (size_t)(r - p->rules) + 1;
    d->user = r->user;
    d->default_target = r->default_target;
    switch (r->action) {
    case VRPC_POLICY_ALLOW:
        if (!target) {
            /* Reachable through "*" or @anyvm: allow needs somewhere to go. */
            d->action = VRPC_POLICY_DENY;
            d->reason = "allow rule matched a call naming no target, and has no redirect";
            d->notify = r->notify != 0;
            d->user = NULL;
            return;
        }
        d->action = VRPC_POLICY_ALLOW;
        d->reason = "allowed by rule";
        set_target(d, target);
        d->notify = r->notify == 1;
        return;
    case VRPC_POLICY_ASK:
        d->action = VRPC_POLICY_ASK;
        d->reason = "ask rule: needs an answer";
        set_target(d, target ? target : "@default");
        d->notify = r->notify == 1;
        return;
    case VRPC_POLICY_DENY:
        break;
    }
    d->action = VRPC_POLICY_DENY;
    d->reason = "denied by rule";
    d->notify = r->notify != 0;
}

static const PolicyIdList *index_get(const PolicyStrMap *map, const char *key, size_t len)
{
    return policy_strmap_get(map, key, len);
}

static void decision_deny(VrpcPolicyDecision *d, const char *reason)
{
    *d = (VrpcPolicyDecision){
        .action = VRPC_POLICY_DENY,
        .notify = true,
        .reason = reason,
    };
}

void policy_match(const VrpcPolicy *policy, const PolicyCall *call, VrpcPolicyDecision *decision)
{
    char key[2 * VRPC_POLICY_NAME_MAX + 8];
    const PolicyIdList *lists[4] = {0};
    size_t pos[4] = {0};
    size_t source_len = strlen(call->source);
    LazyDomain src = lazy_domain_init(call->source, source_len);
    LazyDomain tgt = lazy_domain_init(call->target, call->target ? strlen(call->target) : 0);

    decision_deny(decision, "no matching rule");
    /* "SERVICE/SOURCE", built without snprintf: this is the hot path. */
    if (call->service_len + 1 + source_len < sizeof(key)) {
        memcpy(key, call->service, call->service_len);
        key[call->service_len] = '/';
        memcpy(key + call->service_len + 1, call->source, source_len);
        lists[0] = index_get(policy->by_service_source, key, call->service_len + 1 + source_len);
    }
    lists[1] = index_get(policy->by_service, call->service, call->service_len);
    lists[2] = index_get(policy->by_source, call->source, source_len);
    lists[3] = &policy->generic;

    for (;;) {
        uint32_t best = UINT32_MAX;
        int which = -1;

        for (int i = 0; i < 4; i++) {
            if (lists[i] && pos[i] < lists[i]->n && lists[i]->ids[pos[i]] < best) {
                best = lists[i]->ids[pos[i]];
                which = i;
            }
        }
        if (which < 0)
            return;
        pos[which]++;
        if (rule_matches(policy, &policy->rules[best], call, &src, &tgt)) {
            decide(policy, &policy->rules[best], call, decision);
            return;
        }
    }
}

int vrpc_policy_evaluate(const VrpcPolicy *policy, const VrpcPolicyRequest *request,
                         VrpcPolicyDecision *decisionp)
{
    const char *source, *target, *service, *argument;

    decision_deny(decisionp, "invalid request");
    if (!policy || !request)
        return -EINVAL;

    /* Validate everything the caller supplied, in one place, before any of
     * it is used: names must fit their character sets and length limits. A
     * name may be qualified (DOMAIN@HOST, a domain of another host); the
     * dispatcher has already made NAME@THISHOST plain. */
    source = request->source;
    if (source && strcmp(source, "@adminvm") == 0)
        source = "dom0";
    if (!vrpc_policy_qualified_domain_is_valid(source)) {
        decisionp->reason = "invalid source";
        return VRPC_POLICY_E_SOURCE;
    }
    target = request->untrusted_target;
    if (!target || strcmp(target, "@default") == 0)
        target = NULL;
    else if (strcmp(target, "@adminvm") == 0)
        target = "dom0";
    else if (!vrpc_policy_qualified_domain_is_valid(target)) {
        decisionp->reason = "invalid target";
        return VRPC_POLICY_E_TARGET;
    }
    service = request->untrusted_service;
    if (!vrpc_policy_service_is_valid(service)) {
        decisionp->reason = "invalid service name";
        return VRPC_POLICY_E_SERVICE;
    }
    argument = request->untrusted_argument ? request->untrusted_argument : "";
    if (!vrpc_policy_argument_is_valid(argument)) {
        decisionp->reason = "invalid argument";
        return VRPC_POLICY_E_ARGUMENT;
    }

    if (!vrpc_policy_is_valid(policy)) {
        decision_deny(decisionp, "invalid policy");
        return 0;
    }
    policy_match(policy,
                 &(PolicyCall){
                     .source = source,
                     .target = target,
                     .service = service,
                     .service_len = strlen(service),
                     .argument = argument,
                 },
                 decisionp);
    return 0;
}

bool vrpc_policy_decision_resolve_ask(VrpcPolicyDecision *decision, const char *ask_program)
{
    if (!decision || decision->action != VRPC_POLICY_ASK)
        return false;
    if (ask_program && *ask_program)
        return true;
    decision->action = VRPC_POLICY_DENY;
    decision->reason = "ask: no ask program configured";
    decision->target[0] = 0;
    decision->user = NULL;
    decision->default_target = NULL;
    decision->notify = true;
    return false;
}

int vrpc_policy_decision_check_target(const VrpcPolicy *policy, const VrpcPolicyDecision *decision,
                                      const char *untrusted_name,
                                      char targetp[VRPC_POLICY_NAME_MAX + 1])
{
    const PolicyRule *r;
    const char *name;
    LazyDomain target;

    if (targetp)
        targetp[0] = 0;
    if (!policy || !decision || !targetp || decision->action != VRPC_POLICY_ASK ||
        decision->rule_index == 0 || decision->rule_index > policy->n_rules)
        return -EINVAL;
    r = &policy->rules[decision->rule_index - 1];
    if (r->action != VRPC_POLICY_ASK || r->file != decision->rule_file ||
        r->line != decision->rule_line)
        return -EINVAL;
    /* Validate the name before using it: a domain name, a domain of another
     * host (DOMAIN@HOST), or dom0 under either name. */
    name = untrusted_name;
    if (name && strcmp(name, "@adminvm") == 0)
        name = "dom0";
    if (!name || !vrpc_policy_qualified_domain_is_valid(name))
        return VRPC_POLICY_E_TARGET;
    target = lazy_domain_init(name, strlen(name));
    if (!token_matches(policy, &r->target, &target) &&
        !(r->default_target && strcmp(r->default_target, name) == 0))
        return VRPC_POLICY_E_TARGET;
    snprintf(targetp, VRPC_POLICY_NAME_MAX + 1, "%s", name);
    return 0;
}

int vrpc_policy_decision_format(const VrpcPolicyDecision *decision, char *buf, size_t size)
{
    char rule[4096], reason[256] = "";
    bool default_notify = decision->action == VRPC_POLICY_DENY;

    if (decision->rule_file)
        snprintf(rule, sizeof(rule), "%s:%u", decision->rule_file, decision->rule_line);
    else
        snprintf(rule, sizeof(rule), "default");
    /* A deny says why unless the rule or the lack of one says it already. */
    if (decision->action == VRPC_POLICY_DENY && decision->reason &&
        strcmp(decision->reason, "denied by rule") != 0 &&
        strcmp(decision->reason, "no matching rule") != 0)
        snprintf(reason, sizeof(reason), " reason=\"%s\"", decision->reason);
    return snprintf(
        buf, size, "%s%s%s rule=%s%s%s%s%s%s%s", vrpc_policy_action_to_string(decision->action),
        decision->target[0] ? " target=" : "", decision->target, rule,
        decision->user ? " user=" : "", decision->user ? decision->user : "",
        decision->default_target ? " default_target=" : "",
        decision->default_target ? decision->default_target : "",
        decision->notify != default_notify ? (decision->notify ? " notify=yes" : " notify=no") : "",
        reason);
}
