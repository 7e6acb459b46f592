/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * PolicyDomains: the trusted domain metadata from domains.yaml (tags and a
 * type per domain), looked up by name while evaluating @tag: and @type:.
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct PolicyDomain {
    char *name;
    char *type; /* NULL: no type */
    char **tags;
    size_t n_tags;
    unsigned line, col; /* where domains.yaml defines it */
} PolicyDomain;

typedef struct PolicyDomains PolicyDomains;

/* policy_domain_new() - an empty domain called NAME (LEN bytes). NULL on ENOMEM. */
PolicyDomain *policy_domain_new(const char *name, size_t len);
PolicyDomain *policy_domain_free(PolicyDomain *domain);
/* policy_domain_add_tag() / _set_type() - return 0 or -ENOMEM. A repeated tag is kept once. */
int policy_domain_add_tag(PolicyDomain *domain, const char *tag, size_t len);
int policy_domain_set_type(PolicyDomain *domain, const char *type, size_t len);
bool policy_domain_has_tag(const PolicyDomain *domain, const char *tag);

/* policy_domains_new() - returns 0 or -ENOMEM. */
int policy_domains_new(PolicyDomains **domainsp);
PolicyDomains *policy_domains_free(PolicyDomains *domains);
/* policy_domains_add() - takes DOMAIN on success. Returns 0, -EEXIST or -ENOMEM. */
int policy_domains_add(PolicyDomains *domains, PolicyDomain *domain);
/* policy_domains_lookup() - the domain called NAME, or NULL. DOMAINS may be NULL. */
const PolicyDomain *policy_domains_lookup(const PolicyDomains *domains, const char *name);
size_t policy_domains_get_n(const PolicyDomains *domains);
const PolicyDomain *policy_domains_get(const PolicyDomains *domains, size_t index);
