/* SPDX-License-Identifier: MIT */
/*
 * Domain metadata. domains.yaml lives in dom0 and is trusted; it is the only
 * source of tags and types, which are never taken from a guest. The table is
 * part of each compiled policy snapshot, so one evaluation always sees the
 * rules and the metadata that were loaded together.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domains.h"
#include "common/array.h"
#include "strmap.h"

struct PolicyDomains {
    PolicyStrMap *by_name;
    PolicyDomain **list; /* in definition order */
    size_t n, cap;
};

PolicyDomain *policy_domain_new(const char *name, size_t len)
{
    PolicyDomain *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->name = strndup(name, len);
    if (!d->name) {
        free(d);
        return NULL;
    }
    return d;
}

PolicyDomain *policy_domain_free(PolicyDomain *domain)
{
    if (!domain)
        return NULL;
    for (size_t i = 0; i < domain->n_tags; i++)
        free(domain->tags[i]);
    free(domain->tags);
    free(domain->type);
    free(domain->name);
    free(domain);
    return NULL;
}

bool policy_domain_has_tag(const PolicyDomain *domain, const char *tag)
{
    if (!domain)
        return false;
    for (size_t i = 0; i < domain->n_tags; i++)
        if (strcmp(domain->tags[i], tag) == 0)
            return true;
    return false;
}

int policy_domain_add_tag(PolicyDomain *domain, const char *tag, size_t len)
{
    char **tags;
    char *copy = strndup(tag, len);

    if (!copy)
        return -ENOMEM;
    if (policy_domain_has_tag(domain, copy)) {
        free(copy);
        return 0;
    }
    tags = realloc(domain->tags, (domain->n_tags + 1) * sizeof(*tags));
    if (!tags) {
        free(copy);
        return -ENOMEM;
    }
    domain->tags = tags;
    domain->tags[domain->n_tags++] = copy;
    return 0;
}

int policy_domain_set_type(PolicyDomain *domain, const char *type, size_t len)
{
    char *copy = strndup(type, len);

    if (!copy)
        return -ENOMEM;
    free(domain->type);
    domain->type = copy;
    return 0;
}

int policy_domains_new(PolicyDomains **domainsp)
{
    PolicyDomains *d = calloc(1, sizeof(*d));

    if (!d || policy_strmap_new(&d->by_name, NULL) < 0) {
        free(d);
        return -ENOMEM;
    }
    *domainsp = d;
    return 0;
}

PolicyDomains *policy_domains_free(PolicyDomains *domains)
{
    if (!domains)
        return NULL;
    for (size_t i = 0; i < domains->n; i++)
        policy_domain_free(domains->list[i]);
    free(domains->list);
    policy_strmap_free(domains->by_name);
    free(domains);
    return NULL;
}

int policy_domains_add(PolicyDomains *domains, PolicyDomain *domain)
{
    int r;

    r = vrpc_array_reserve(&domains->list, domains->n, &domains->cap, sizeof(*domains->list), 8);
    if (r < 0)
        return r;
    r = policy_strmap_put(domains->by_name, domain->name, strlen(domain->name), domain);
    if (r < 0)
        return r;
    domains->list[domains->n++] = domain;
    return 0;
}

const PolicyDomain *policy_domains_lookup(const PolicyDomains *domains, const char *name)
{
    if (!domains || !name)
        return NULL;
    return policy_strmap_get(domains->by_name, name, strlen(name));
}

size_t policy_domains_get_n(const PolicyDomains *domains)
{
    return domains ? domains->n : 0;
}

const PolicyDomain *policy_domains_get(const PolicyDomains *domains, size_t index)
{
    return domains && index < domains->n ? domains->list[index] : NULL;
}
