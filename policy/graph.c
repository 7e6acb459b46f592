/* SPDX-License-Identifier: MIT */
/*
 * `vrpc-policy graph`: rather than drawing rules (which would hide first-match
 * shadowing), the graph evaluates the compiled policy for every pair of known
 * domains, with "no target" as an extra target, and for one representative
 * call per distinct (service, argument) pattern in the rules. A pattern such
 * as "demo.*" is fed to the evaluator as a literal service name, so it stands
 * for "the demo.* services that no more specific rule decides"; denied calls
 * draw no edge. Domains only matched through @anyvm or "*" and never named in
 * the configuration cannot appear.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "graph.h"
#include "policy.h"
#include "strmap.h"

typedef struct GraphRep {
    char service[VRPC_POLICY_NAME_MAX + 2];
    char argument[VRPC_POLICY_NAME_MAX + 2];
    char label[2 * VRPC_POLICY_NAME_MAX + 8];
} GraphRep;

typedef struct GraphEdge {
    const char *source;
    char target[VRPC_POLICY_NAME_MAX + 1];
    VrpcPolicyAction action;
    char *labels; /* "a\\nb" */
} GraphEdge;

typedef struct Graph {
    PolicyStrMap *names_seen;
    const char **names;
    size_t n_names;
    GraphRep *reps;
    size_t n_reps;
    PolicyStrMap *reps_seen;
    GraphEdge *edges;
    size_t n_edges;
    PolicyStrMap *edges_seen;  /* key -> index + 1 */
    PolicyStrMap *labels_seen; /* key/label */
} Graph;

static int graph_add_name(Graph *g, const char *name)
{
    const char **names;
    int r;

    if (!name || policy_strmap_get(g->names_seen, name, strlen(name)))
        return 0;
    r = policy_strmap_put(g->names_seen, name, strlen(name), (void *)name);
    if (r < 0)
        return r;
    names = realloc(g->names, (g->n_names + 1) * sizeof(*names));
    if (!names)
        return -ENOMEM;
    g->names = names;
    g->names[g->n_names++] = name;
    return 0;
}

static const char *token_name(const PolicyToken *t)
{
    if (t->kind == POLICY_TOKEN_NAME)
        return t->value;
    return NULL;
}

static int graph_add_rep(Graph *g, const PolicyRule *r)
{
    GraphRep rep = {0};
    GraphRep *reps;
    char key[sizeof(rep.service) + sizeof(rep.argument) + 2];
    int n, e;

    snprintf(rep.service, sizeof(rep.service), "%s%s", r->service, r->service_prefix ? "*" : "");
    snprintf(rep.argument, sizeof(rep.argument), "%s", r->argument ? r->argument : "*");
    if (!r->argument)
        snprintf(rep.label, sizeof(rep.label), "%s", rep.service);
    else
        snprintf(rep.label, sizeof(rep.label), "%s+%s", rep.service, rep.argument);
    n = snprintf(key, sizeof(key), "%s/%s", rep.service, r->argument ? rep.argument : "\001");
    if (policy_strmap_get(g->reps_seen, key, (size_t)n))
        return 0;
    e = policy_strmap_put(g->reps_seen, key, (size_t)n, (void *)1);
    if (e < 0)
        return e;
    reps = realloc(g->reps, (g->n_reps + 1) * sizeof(*reps));
    if (!reps)
        return -ENOMEM;
    g->reps = reps;
    g->reps[g->n_reps++] = rep;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int graph_add_edge(Graph *g, const char *source, const VrpcPolicyDecision *d,
                          const char *label)
{
    char key[3 * VRPC_POLICY_NAME_MAX + 16];
    GraphEdge *e;
    size_t index;
    int n = snprintf(key, sizeof(key), "%s/%s/%d", source, d->target, (int)d->action);
    uintptr_t found = (uintptr_t)policy_strmap_get(g->edges_seen, key, (size_t)n);

    if (found) {
        char *labels;
        char lkey[sizeof(key) + 4 * VRPC_POLICY_NAME_MAX + 64];
        int m = snprintf(lkey, sizeof(lkey), "%s/%s", key, label);

        /* Labels repeat when several requested targets resolve alike. */
        if (policy_strmap_get(g->labels_seen, lkey, (size_t)m))
            return 0;
        if (policy_strmap_put(g->labels_seen, lkey, (size_t)m, (void *)1) < 0)
            return -ENOMEM;
        e = &g->edges[found - 1];
        if (asprintf(&labels, "%s\\n%s", e->labels, label) < 0)
            return -ENOMEM;
        free(e->labels);
        e->labels = labels;
        return 0;
    }
    e = realloc(g->edges, (g->n_edges + 1) * sizeof(*e));
    if (!e)
        return -ENOMEM;
    g->edges = e;
    index = g->n_edges;
    e = &g->edges[index];
    *e = (GraphEdge){.source = source, .action = d->action};
    snprintf(e->target, sizeof(e->target), "%s", d->target);
    e->labels = strdup(label);
    if (!e->labels)
        return -ENOMEM;
    g->n_edges++;
    {
        char lkey[sizeof(key) + 4 * VRPC_POLICY_NAME_MAX + 64];
        int m = snprintf(lkey, sizeof(lkey), "%s/%s", key, label);

        if (policy_strmap_put(g->labels_seen, lkey, (size_t)m, (void *)1) < 0)
            return -ENOMEM;
    }
    return policy_strmap_put(g->edges_seen, key, (size_t)n, (void *)(uintptr_t)(index + 1));
}

static void graph_deinit(Graph *g)
{
    for (size_t i = 0; i < g->n_edges; i++)
        free(g->edges[i].labels);
    free(g->edges);
    free(g->reps);
    free(g->names);
    policy_strmap_free(g->names_seen);
    policy_strmap_free(g->reps_seen);
    policy_strmap_free(g->edges_seen);
    policy_strmap_free(g->labels_seen);
}

static int graph_collect(Graph *g, const VrpcPolicy *policy)
{
    const PolicyDomains *domains = policy_get_domains(policy);
    size_t n_rules = policy_get_n_rules_internal(policy);
    int r = graph_add_name(g, "dom0");

    for (size_t i = 0; r >= 0 && i < policy_domains_get_n(domains); i++)
        r = graph_add_name(g, policy_domains_get(domains, i)->name);
    for (size_t i = 0; r >= 0 && i < n_rules; i++) {
        const PolicyRule *rule = policy_get_rule(policy, i);

        r = graph_add_name(g, token_name(&rule->source));
        if (r >= 0)
            r = graph_add_name(g, token_name(&rule->target));
        if (r >= 0)
            r = graph_add_name(g, rule->redirect);
        if (r >= 0)
            r = graph_add_name(g, rule->default_target);
        if (r >= 0)
            r = graph_add_rep(g, rule);
    }
    if (r < 0)
        return r;
    qsort(g->names, g->n_names, sizeof(*g->names), cmp_str);

    for (size_t s = 0; s < g->n_names; s++) {
        for (size_t t = 0; t <= g->n_names; t++) {
            const char *target = t < g->n_names ? g->names[t] : NULL;

            for (size_t k = 0; k < g->n_reps; k++) {
                const GraphRep *rep = &g->reps[k];
                VrpcPolicyDecision d;
                char label[sizeof(rep->label) + VRPC_POLICY_NAME_MAX + 32];

                policy_match(policy,
                             &(PolicyCall){
                                 .source = g->names[s],
                                 .target = target,
                                 .service = rep->service,
                                 .service_len = strlen(rep->service),
                                 .argument = rep->argument,
                             },
                             &d);
                if (d.action == VRPC_POLICY_DENY)
                    continue;
                if (!target)
                    snprintf(label, sizeof(label), "%s (no target named)", rep->label);
                else if (strcmp(target, d.target) != 0)
                    snprintf(label, sizeof(label), "%s (asked for %s)", rep->label, target);
                else
                    snprintf(label, sizeof(label), "%s", rep->label);
                r = graph_add_edge(g, g->names[s], &d, label);
                if (r < 0)
                    return r;
            }
        }
    }
    return 0;
}

int policy_graph_write(const VrpcPolicy *policy, FILE *out)
{
    Graph g = {0};
    int r;

    if (policy_strmap_new(&g.names_seen, NULL) < 0 || policy_strmap_new(&g.reps_seen, NULL) < 0 ||
        policy_strmap_new(&g.edges_seen, NULL) < 0 || policy_strmap_new(&g.labels_seen, NULL) < 0) {
        graph_deinit(&g);
        return -ENOMEM;
    }
    r = graph_collect(&g, policy);
    if (r < 0) {
        graph_deinit(&g);
        return r;
    }

    fprintf(out, "digraph vrpc_policy {\n");
    fprintf(out, "  rankdir=LR;\n");
    fprintf(out, "  node [shape=box, fontname=\"sans-serif\"];\n");
    fprintf(out, "  edge [fontname=\"sans-serif\", fontsize=10];\n");
    for (size_t i = 0; i < g.n_names; i++)
        fprintf(out, "  \"%s\";\n", g.names[i]);
    for (size_t i = 0; i < g.n_edges; i++) {
        if (strcmp(g.edges[i].target, "@default") == 0) {
            fprintf(out, "  \"@default\" [shape=ellipse, label=\"chosen when asked\"];\n");
            break;
        }
    }
    for (size_t i = 0; i < g.n_edges; i++) {
        const GraphEdge *e = &g.edges[i];

        fprintf(out, "  \"%s\" -> \"%s\" [label=\"%s\", color=\"%s\"%s];\n", e->source, e->target,
                e->labels, e->action == VRPC_POLICY_ALLOW ? "darkgreen" : "orange",
                e->action == VRPC_POLICY_ASK ? ", style=dashed" : "");
    }
    fprintf(out, "}\n");
    graph_deinit(&g);
    return ferror(out) ? -EIO : 0;
}
