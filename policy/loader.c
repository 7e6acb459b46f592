/* SPDX-License-Identifier: MIT */
/*
 * Policy loading: the only code that turns configuration text into a
 * compiled policy. It reads ETC/domains.yaml and ETC/policy.d/NAME.yaml (in
 * strcmp() order of the file names), checks every key, type, token and
 * cross-key constraint, and records each problem as FILE:LINE:COL: message.
 * Any problem makes the whole policy invalid, and an invalid policy denies
 * every call (fail closed); the rules of valid files are still compiled so
 * that tools can show them. The policy list in a file is streamed rule by
 * rule, so memory stays proportional to the compiled result.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "loader.h"
#include "names.h"
#include "policy.h"
#include "common/yaml.h"

typedef struct Loader {
    VrpcYaml y;
    VrpcDiag *diag;
    VrpcPolicy *policy;     /* when parsing policy files */
    PolicyDomains *domains; /* when parsing domains.yaml */
    const char *file;
} Loader;

typedef int (*ItemFn)(Loader *l, const VrpcYamlNode *key, const VrpcYamlNode *value);

DEFINE_CLEANUP_FUNC(VrpcYamlNode, vrpc_yaml_node_free)
#define _cleanup_node_ __attribute__((cleanup(vrpc_yaml_node_freep)))

#define node_error(l, node, ...) \
    vrpc_diag_add((l)->diag, (l)->file, (node)->line, (node)->col, __VA_ARGS__)

static char *quote(char buf[VRPC_QUOTE_MAX], const VrpcYamlNode *node)
{
    return vrpc_quote(buf, VRPC_QUOTE_MAX, node->value, node->len);
}

/*
 * The string held by VALUE for key NAME, or NULL after reporting why there is
 * none: not a scalar, YAML null, a YAML boolean, or a string with a NUL byte.
 * Plain numbers are accepted as the strings they are written as.
 */
static const char *node_string(Loader *l, const char *name, const VrpcYamlNode *value)
{
    bool ignored;

    if (value->kind != VRPC_YAML_SCALAR || vrpc_yaml_node_is_null(value) ||
        vrpc_yaml_node_get_bool(value, &ignored) == 0) {
        node_error(l, value, "%s: expected a string, got %s", name, vrpc_yaml_node_describe(value));
        return NULL;
    }
    if (strlen(value->value) != value->len) {
        node_error(l, value, "%s: string contains a NUL byte", name);
        return NULL;
    }
    return value->value;
}

/* Walk the items of the sequence or mapping whose start is the current event. */
static int parse_collection(Loader *l, yaml_event_type_t end, ItemFn fn)
{
    for (;;) {
        _cleanup_node_ VrpcYamlNode *key = NULL;
        _cleanup_node_ VrpcYamlNode *value = NULL;
        int r;

        r = vrpc_yaml_next(&l->y);
        if (r < 0)
            return r;
        if (vrpc_yaml_type(&l->y) == end)
            return 0;
        if (end == YAML_MAPPING_END_EVENT) {
            r = vrpc_yaml_read_node(&l->y, &key);
            if (r < 0)
                return r;
            r = vrpc_yaml_next(&l->y);
            if (r < 0)
                return r;
        }
        r = vrpc_yaml_read_node(&l->y, &value);
        if (r < 0)
            return r;
        r = fn(l, key, value);
        if (r < 0)
            return r;
    }
}

/* Skip the value that starts at the current event. */
static int skip_value(Loader *l)
{
    _cleanup_node_ VrpcYamlNode *value = NULL;

    return vrpc_yaml_read_node(&l->y, &value);
}

/*
 * A file is one YAML document: a mapping whose only key is TOP_KEY, holding a
 * collection (START: sequence or mapping) whose items go to FN one by one.
 */
static int parse_document(Loader *l, const char *top_key, yaml_event_type_t start, const char *what,
                          ItemFn fn)
{
    yaml_event_type_t end = start == YAML_SEQUENCE_START_EVENT ? YAML_SEQUENCE_END_EVENT
                                                               : YAML_MAPPING_END_EVENT;
    char q[VRPC_QUOTE_MAX];
    bool seen = false;
    unsigned root_line, root_col, top_line = 0, top_col = 0;
    int r;

    r = vrpc_yaml_next(&l->y); /* stream start */
    if (r < 0)
        return r;
    r = vrpc_yaml_next(&l->y);
    if (r < 0)
        return r;
    if (vrpc_yaml_type(&l->y) == YAML_STREAM_END_EVENT) {
        vrpc_diag_add(l->diag, l->file, 1, 1, "empty file (expected a \"%s:\" key)", top_key);
        return 0;
    }
    r = vrpc_yaml_next(&l->y); /* the root node */
    if (r < 0)
        return r;
    root_line = vrpc_yaml_line(&l->y);
    root_col = vrpc_yaml_col(&l->y);

    if (vrpc_yaml_type(&l->y) != YAML_MAPPING_START_EVENT) {
        _cleanup_node_ VrpcYamlNode *root = NULL;

        r = vrpc_yaml_read_node(&l->y, &root);
        if (r < 0)
            return r;
        if (vrpc_yaml_node_is_null(root))
            vrpc_diag_add(l->diag, l->file, 1, 1, "empty file (expected a \"%s:\" key)", top_key);
        else
            node_error(l, root, "expected a mapping with a \"%s:\" key, got %s", top_key,
                       vrpc_yaml_node_describe(root));
    } else {
        for (;;) {
            _cleanup_node_ VrpcYamlNode *key = NULL;

            r = vrpc_yaml_next(&l->y);
            if (r < 0)
                return r;
            if (vrpc_yaml_type(&l->y) == YAML_MAPPING_END_EVENT)
                break;
            r = vrpc_yaml_read_node(&l->y, &key);
            if (r < 0)
                return r;
            r = vrpc_yaml_next(&l->y);
            if (r < 0)
                return r;
            if (key->kind != VRPC_YAML_SCALAR) {
                node_error(l, key, "keys must be strings, got %s", vrpc_yaml_node_describe(key));
                r = skip_value(l);
            } else if (strcmp(key->value, top_key) != 0 || strlen(key->value) != key->len) {
                node_error(l, key, "unknown key %s (expected \"%s\")", quote(q, key), top_key);
                r = skip_value(l);
            } else if (seen) {
                node_error(l, key, "duplicate key \"%s\" (first at %u:%u)", top_key, top_line,
                           top_col);
                r = skip_value(l);
            } else if (vrpc_yaml_type(&l->y) == start) {
                seen = true;
                top_line = key->line;
                top_col = key->col;
                r = parse_collection(l, end, fn);
            } else {
                _cleanup_node_ VrpcYamlNode *value = NULL;

                seen = true;
                top_line = key->line;
                top_col = key->col;
                r = vrpc_yaml_read_node(&l->y, &value);
                if (r >= 0)
                    node_error(l, value, "%s: expected %s, got %s", top_key, what,
                               vrpc_yaml_node_describe(value));
            }
            if (r < 0)
                return r;
        }
        if (!seen)
            vrpc_diag_add(l->diag, l->file, root_line, root_col, "missing required key \"%s\"",
                          top_key);
    }

    r = vrpc_yaml_next(&l->y); /* document end */
    if (r < 0)
        return r;
    r = vrpc_yaml_next(&l->y);
    if (r < 0)
        return r;
    if (vrpc_yaml_type(&l->y) == YAML_DOCUMENT_START_EVENT)
        vrpc_diag_add(l->diag, l->file, vrpc_yaml_line(&l->y), vrpc_yaml_col(&l->y),
                      "only one YAML document is allowed per file");
    return 0;
}

/*
 * Run a parse. A syntax error (-EBADMSG, already reported) is the one thing
 * said about the file: errors found in the part read before it are dropped,
 * since a rule cut short by bad syntax would otherwise also be reported as
 * missing its keys.
 */
static int run_parse(Loader *l, const char *data, size_t size, const char *top_key,
                     yaml_event_type_t start, const char *what, ItemFn fn)
{
    size_t n_lines = l->diag->n_lines, n_errors = l->diag->n_errors;
    int r = vrpc_yaml_init(&l->y, l->file, data, size, l->diag);

    if (r < 0)
        return r;
    r = parse_document(l, top_key, start, what, fn);
    vrpc_yaml_deinit(&l->y);
    if (r != -EBADMSG)
        return r;
    vrpc_diag_keep_last(l->diag, n_lines, n_errors);
    return 0;
}

/* ---- policy files ---- */

typedef enum RuleKey {
    KEY_SERVICE,
    KEY_ARGUMENT,
    KEY_SOURCE,
    KEY_TARGET,
    KEY_ACTION,
    KEY_REDIRECT,
    KEY_DEFAULT_TARGET,
    KEY_USER,
    KEY_NOTIFY,
    KEY_MAX,
} RuleKey;

static const char *const rule_key_names[KEY_MAX] = {
    [KEY_SERVICE] = "service",
    [KEY_ARGUMENT] = "argument",
    [KEY_SOURCE] = "source",
    [KEY_TARGET] = "target",
    [KEY_ACTION] = "action",
    [KEY_REDIRECT] = "redirect",
    [KEY_DEFAULT_TARGET] = "default_target",
    [KEY_USER] = "user",
    [KEY_NOTIFY] = "notify",
};

static int rule_key_lookup(const VrpcYamlNode *key)
{
    for (int i = 0; i < KEY_MAX; i++)
        if (strlen(rule_key_names[i]) == key->len && strcmp(rule_key_names[i], key->value) == 0)
            return i;
    return -1;
}

/* A domain token for KEY, restricted to a single domain (redirect, default_target). */
static const char *parse_single_domain(Loader *l, RuleKey key, const VrpcYamlNode *value)
{
    const char *s = node_string(l, rule_key_names[key], value);
    const char *err = NULL;
    PolicyToken t;
    char q[VRPC_QUOTE_MAX];

    if (!s)
        return NULL;
    if (policy_token_parse(s, value->len, &t, &err) < 0) {
        node_error(l, value, "%s: %s: %s", rule_key_names[key], err, quote(q, value));
        return NULL;
    }
    if (t.kind == POLICY_TOKEN_ADMINVM)
        return "dom0";
    if (t.kind != POLICY_TOKEN_NAME) {
        node_error(l, value, "%s: expected a domain name, NAME@HOST or @adminvm, got %s",
                   rule_key_names[key], quote(q, value));
        return NULL;
    }
    return s;
}

static int compile_rule(Loader *l, const VrpcYamlNode *unused_key, const VrpcYamlNode *m)
{
    static const RuleKey required[] = {KEY_SERVICE, KEY_SOURCE, KEY_TARGET, KEY_ACTION};
    const VrpcYamlNode *keys[KEY_MAX] = {0};
    const VrpcYamlNode *vals[KEY_MAX] = {0};
    PolicyRuleSpec spec = {.notify = -1, .line = m->line};
    size_t errors_before = l->diag->n_errors;
    bool have_action = false;
    char q[VRPC_QUOTE_MAX];
    const char *s, *err;

    if (m->kind != VRPC_YAML_MAPPING) {
        node_error(l, m, "a rule must be a mapping, got %s", vrpc_yaml_node_describe(m));
        return 0;
    }
    for (size_t i = 0; i + 1 < m->n_children; i += 2) {
        const VrpcYamlNode *k = m->children[i];
        int key;

        if (k->kind != VRPC_YAML_SCALAR) {
            node_error(l, k, "keys must be strings, got %s", vrpc_yaml_node_describe(k));
            continue;
        }
        key = rule_key_lookup(k);
        if (key < 0) {
            node_error(l, k,
                       "unknown key %s (expected service, argument, source, target, action, "
                       "redirect, default_target, user or notify)",
                       quote(q, k));
            continue;
        }
        if (keys[key]) {
            node_error(l, k, "duplicate key \"%s\" (first at %u:%u)", rule_key_names[key],
                       keys[key]->line, keys[key]->col);
            continue;
        }
        keys[key] = k;
        vals[key] = m->children[i + 1];
    }
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!vals[required[i]])
            node_error(l, m, "rule is missing required key \"%s\"", rule_key_names[required[i]]);

    if (vals[KEY_SERVICE] && (s = node_string(l, "service", vals[KEY_SERVICE]))) {
        spec.service = s;
        if (policy_service_pattern_parse(s, vals[KEY_SERVICE]->len, &spec.service_len,
                                         &spec.service_prefix, &err) < 0)
            node_error(l, vals[KEY_SERVICE], "service: %s: %s", err, quote(q, vals[KEY_SERVICE]));
    }
    if (vals[KEY_ARGUMENT] && (s = node_string(l, "argument", vals[KEY_ARGUMENT]))) {
        size_t len = vals[KEY_ARGUMENT]->len;

        if (strcmp(s, "*") != 0) {
            spec.argument = s;
            spec.argument_len = len;
            if (!vrpc_name_valid_argument(s, len))
                node_error(l, vals[KEY_ARGUMENT],
                           "argument: invalid argument %s (expected \"*\", \"\" or "
                           "[A-Za-z0-9._+-], up to 64 characters)",
                           quote(q, vals[KEY_ARGUMENT]));
        }
    }
    if (vals[KEY_SOURCE] && (s = node_string(l, "source", vals[KEY_SOURCE]))) {
        if (policy_token_parse(s, vals[KEY_SOURCE]->len, &spec.source, &err) < 0)
            node_error(l, vals[KEY_SOURCE], "source: %s: %s", err, quote(q, vals[KEY_SOURCE]));
        else if (spec.source.kind == POLICY_TOKEN_DEFAULT)
            node_error(l, vals[KEY_SOURCE], "source: @default is only valid as a target");
    }
    if (vals[KEY_TARGET] && (s = node_string(l, "target", vals[KEY_TARGET]))) {
        if (policy_token_parse(s, vals[KEY_TARGET]->len, &spec.target, &err) < 0)
            node_error(l, vals[KEY_TARGET], "target: %s: %s", err, quote(q, vals[KEY_TARGET]));
    }
    if (vals[KEY_ACTION] && (s = node_string(l, "action", vals[KEY_ACTION]))) {
        have_action = true;
        if (strcmp(s, "allow") == 0) {
            spec.action = VRPC_POLICY_ALLOW;
        } else if (strcmp(s, "deny") == 0) {
            spec.action = VRPC_POLICY_DENY;
        } else if (strcmp(s, "ask") == 0) {
            spec.action = VRPC_POLICY_ASK;
        } else {
            have_action = false;
            node_error(l, vals[KEY_ACTION], "unknown action %s (expected allow, deny or ask)",
                       quote(q, vals[KEY_ACTION]));
        }
    }
    if (vals[KEY_REDIRECT])
        spec.redirect = parse_single_domain(l, KEY_REDIRECT, vals[KEY_REDIRECT]);
    if (vals[KEY_DEFAULT_TARGET])
        spec.default_target = parse_single_domain(l, KEY_DEFAULT_TARGET, vals[KEY_DEFAULT_TARGET]);
    if (vals[KEY_USER] && (s = node_string(l, "user", vals[KEY_USER]))) {
        spec.user = s;
        if (!vrpc_name_valid_user(s, vals[KEY_USER]->len))
            node_error(l, vals[KEY_USER],
                       "user: invalid user name %s (expected [A-Za-z0-9._-], 1 to 32 "
                       "characters, not starting with '-')",
                       quote(q, vals[KEY_USER]));
    }
    if (vals[KEY_NOTIFY]) {
        bool notify;

        if (vrpc_yaml_node_get_bool(vals[KEY_NOTIFY], &notify) < 0)
            node_error(l, vals[KEY_NOTIFY], "notify: expected true or false, got %s",
                       vals[KEY_NOTIFY]->kind == VRPC_YAML_SCALAR
                           ? quote(q, vals[KEY_NOTIFY])
                           : vrpc_yaml_node_describe(vals[KEY_NOTIFY]));
        else
            spec.notify = notify;
    }

    /* Constraints between keys, once the action is known. */
    if (have_action && spec.action == VRPC_POLICY_DENY) {
        if (keys[KEY_REDIRECT])
            node_error(l, keys[KEY_REDIRECT], "redirect is not allowed with action deny");
        if (keys[KEY_USER])
            node_error(l, keys[KEY_USER], "user is not allowed with action deny");
    }
    if (have_action && spec.action != VRPC_POLICY_ASK && keys[KEY_DEFAULT_TARGET])
        node_error(l, keys[KEY_DEFAULT_TARGET], "default_target is only allowed with action ask");
    if (have_action && spec.action == VRPC_POLICY_ALLOW && vals[KEY_TARGET] &&
        spec.target.kind == POLICY_TOKEN_DEFAULT && !keys[KEY_REDIRECT])
        node_error(l, vals[KEY_TARGET], "an allow rule with target @default needs a redirect");

    if (l->diag->n_errors != errors_before)
        return 0;
    return policy_add_rule(l->policy, l->file, &spec);
}

int policy_loader_parse_policy(VrpcPolicy *policy, const char *file, const char *data, size_t size)
{
    Loader l = {.diag = policy_get_diag(policy), .policy = policy, .file = file};

    return run_parse(&l, data, size, "rules", YAML_SEQUENCE_START_EVENT, "a list of rules",
                     compile_rule);
}

/* ---- domains.yaml ---- */

static int compile_tags(Loader *l, PolicyDomain *d, const VrpcYamlNode *tags)
{
    char q[VRPC_QUOTE_MAX];

    if (tags->kind != VRPC_YAML_SEQUENCE) {
        node_error(l, tags, "tags: expected a list of tag names, got %s",
                   vrpc_yaml_node_describe(tags));
        return 0;
    }
    for (size_t i = 0; i < tags->n_children; i++) {
        const VrpcYamlNode *t = tags->children[i];
        const char *s = node_string(l, "tags", t);

        if (!s)
            continue;
        if (!vrpc_name_valid_label(s, t->len)) {
            node_error(l, t,
                       "tags: invalid tag name %s (expected [A-Za-z0-9._-], 1 to 64 "
                       "characters)",
                       quote(q, t));
            continue;
        }
        if (policy_domain_add_tag(d, s, t->len) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int compile_domain(Loader *l, const VrpcYamlNode *key, const VrpcYamlNode *value)
{
    PolicyDomain *d = NULL;
    const PolicyDomain *first;
    const VrpcYamlNode *seen_tags = NULL, *seen_type = NULL;
    size_t errors_before = l->diag->n_errors;
    char q[VRPC_QUOTE_MAX];
    int r = 0;

    if (key->kind != VRPC_YAML_SCALAR || strlen(key->value) != key->len) {
        node_error(l, key, "domain names must be strings, got %s", vrpc_yaml_node_describe(key));
        return 0;
    }
    if (!vrpc_name_valid_domain(key->value, key->len)) {
        node_error(l, key,
                   "invalid domain name %s (expected [A-Za-z0-9._-], 1 to 64 "
                   "characters, starting with a letter or digit)",
                   quote(q, key));
        return 0;
    }
    first = policy_domains_lookup(l->domains, key->value);
    if (first) {
        node_error(l, key, "duplicate domain %s (first at %u:%u)", quote(q, key), first->line,
                   first->col);
        return 0;
    }
    if (value->kind != VRPC_YAML_MAPPING) {
        node_error(l, value, "%s: expected a mapping with tags and/or type, got %s", key->value,
                   vrpc_yaml_node_describe(value));
        return 0;
    }
    d = policy_domain_new(key->value, key->len);
    if (!d)
        return -ENOMEM;
    d->line = key->line;
    d->col = key->col;
    for (size_t i = 0; i + 1 < value->n_children && r >= 0; i += 2) {
        const VrpcYamlNode *k = value->children[i], *v = value->children[i + 1];
        const char *s;

        if (k->kind == VRPC_YAML_SCALAR && strcmp(k->value, "tags") == 0 && k->len == 4) {
            if (seen_tags) {
                node_error(l, k, "duplicate key \"tags\" (first at %u:%u)", seen_tags->line,
                           seen_tags->col);
                continue;
            }
            seen_tags = k;
            r = compile_tags(l, d, v);
        } else if (k->kind == VRPC_YAML_SCALAR && strcmp(k->value, "type") == 0 && k->len == 4) {
            if (seen_type) {
                node_error(l, k, "duplicate key \"type\" (first at %u:%u)", seen_type->line,
                           seen_type->col);
                continue;
            }
            seen_type = k;
            s = node_string(l, "type", v);
            if (s && !vrpc_name_valid_label(s, v->len))
                node_error(l, v,
                           "type: invalid type name %s (expected [A-Za-z0-9._-], 1 to 64 "
                           "characters)",
                           quote(q, v));
            else if (s)
                r = policy_domain_set_type(d, s, v->len);
        } else if (k->kind != VRPC_YAML_SCALAR) {
            node_error(l, k, "keys must be strings, got %s", vrpc_yaml_node_describe(k));
        } else {
            node_error(l, k, "unknown key %s (expected tags or type)", quote(q, k));
        }
    }
    if (r >= 0 && l->diag->n_errors == errors_before) {
        r = policy_domains_add(l->domains, d);
        if (r >= 0)
            return 0;
    }
    policy_domain_free(d);
    return r == -EEXIST ? 0 : r;
}

int policy_loader_parse_domains(PolicyDomains *domains, VrpcDiag *diag, const char *file,
                                const char *data, size_t size)
{
    Loader l = {.diag = diag, .domains = domains, .file = file};

    return run_parse(&l, data, size, "domains", YAML_MAPPING_START_EVENT,
                     "a mapping of domain names", compile_domain);
}

/* ---- files and folders ---- */

/* The error for a file of SIZE bytes (at least) when only LEFT bytes of the
 * total are left; false when it fits. */
static bool over_caps(VrpcDiag *diag, const char *path, unsigned long long size, size_t left)
{
    if (size > POLICY_LOAD_FILE_MAX) {
        vrpc_diag_add(diag, path, 0, 0, "file too large (over %u bytes, the limit per file)",
                      POLICY_LOAD_FILE_MAX);
        return true;
    }
    if (size > left) {
        vrpc_diag_add(diag, path, 0, 0,
                      "policy too large: with this file the files read come "
                      "to over %u bytes (the limit for all files together)",
                      POLICY_LOAD_TOTAL_MAX);
        return true;
    }
    return false;
}

/* Read PATH whole, at most POLICY_LOAD_FILE_MAX bytes and *LEFTP (what is left
 * of POLICY_LOAD_TOTAL_MAX, reduced by the size read). Returns 0, -ENOENT when
 * it does not exist and MISSING_OK (nothing reported), -EIO for any other
 * problem, a file over a cap included (reported) or -ENOMEM. */
static int read_file(const char *path, bool missing_ok, VrpcDiag *diag, size_t *leftp, char **datap,
                     size_t *sizep)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *data = NULL;
    struct stat st;
    size_t size = 0, cap;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return -ENOENT;
        vrpc_diag_add(diag, path, 0, 0, "cannot open: %s", strerror(errno));
        return -EIO;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        vrpc_diag_add(diag, path, 0, 0, "not a regular file");
        return -EIO;
    }
    if (over_caps(diag, path, (unsigned long long)st.st_size, *leftp))
        return -EIO;
    cap = (size_t)st.st_size + 1;
    data = malloc(cap);
    if (!data)
        return -ENOMEM;
    for (;;) {
        ssize_t n;

        if (size == cap) {
            char *bigger;

            /* The file grew while we read it; follow it up to the caps. */
            if (over_caps(diag, path, size, *leftp))
                return -EIO;
            bigger = realloc(data, cap * 2);
            if (!bigger)
                return -ENOMEM;
            data = bigger;
            cap *= 2;
        }
        n = read(fd, data + size, cap - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            vrpc_diag_add(diag, path, 0, 0, "cannot read: %s", strerror(errno));
            return -EIO;
        }
        if (n == 0)
            break;
        size += (size_t)n;
    }
    if (over_caps(diag, path, size, *leftp))
        return -EIO;
    *leftp -= size;
    *datap = TAKE_PTR(data);
    *sizep = size;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_policy_file_name(const char *name)
{
    size_t len = strlen(name);

    return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".yaml") == 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The policy file names in DIR, sorted. Returns 0, -EIO (reported) or -ENOMEM. */
static int list_policy_files(const char *dir, VrpcDiag *diag, char ***namesp, size_t *np)
{
    _cleanup_closedir_ DIR *d = NULL;
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;

    d = opendir(dir);
    if (!d) {
        vrpc_diag_add(diag, dir, 0, 0, "cannot open folder: %s", strerror(errno));
        return -EIO;
    }
    while ((errno = 0, de = readdir(d))) {
        char **bigger;

        if (!is_policy_file_name(de->d_name))
            continue;
        bigger = realloc(names, (n + 1) * sizeof(*names));
        if (!bigger)
            goto oom;
        names = bigger;
        names[n] = strdup(de->d_name);
        if (!names[n])
            goto oom;
        n++;
    }
    if (errno != 0) {
        vrpc_diag_add(diag, dir, 0, 0, "cannot list folder: %s", strerror(errno));
        free_names(names, n);
        return -EIO;
    }
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    *namesp = names;
    *np = n;
    return 0;
oom:
    free_names(names, n);
    return -ENOMEM;
}

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir);
    char *path = NULL;

    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (asprintf(&path, "%.*s/%s", (int)len, dir, name) < 0)
        return NULL;
    return path;
}

/* The start of a load: a new policy and its domain table, or -ENOMEM with neither. */
static int start(VrpcPolicy **policyp, PolicyDomains **domainsp)
{
    int r = policy_new(policyp);

    if (r < 0)
        return r;
    r = policy_domains_new(domainsp);
    if (r < 0) {
        vrpc_policy_unref(*policyp);
        *policyp = NULL;
    }
    return r;
}

/* A load that ran out of memory: drop what it built. */
static int give_up(VrpcPolicy *policy, PolicyDomains *domains)
{
    policy_domains_free(domains);
    vrpc_policy_unref(policy);
    return -ENOMEM;
}

static int finish(VrpcPolicy *policy, PolicyDomains *domains, VrpcPolicy **policyp)
{
    int r;

    policy_set_domains(policy, domains);
    r = policy_seal(policy);
    if (r < 0) {
        vrpc_policy_unref(policy);
        return r;
    }
    *policyp = policy;
    return vrpc_policy_is_valid(policy) ? 0 : VRPC_POLICY_E_INVALID;
}

int vrpc_policy_load(const char *etc_dir, VrpcPolicy **policyp)
{
    VrpcPolicy *policy = NULL;
    PolicyDomains *domains = NULL;
    _cleanup_free_ char *domains_path = NULL;
    _cleanup_free_ char *policy_dir = NULL;
    _cleanup_free_ char *data = NULL;
    char **names = NULL;
    size_t n_names = 0, size = 0, left = POLICY_LOAD_TOTAL_MAX;
    VrpcDiag *diag;
    int r;

    if (!etc_dir || !*etc_dir || !policyp)
        return -EINVAL;
    domains_path = path_join(etc_dir, "domains.yaml");
    policy_dir = path_join(etc_dir, "policy.d");
    if (!domains_path || !policy_dir)
        return -ENOMEM;
    r = start(&policy, &domains);
    if (r < 0)
        return r;
    diag = policy_get_diag(policy);

    r = read_file(domains_path, true, diag, &left, &data, &size);
    if (r == 0) {
        r = policy_loader_parse_domains(domains, diag, domains_path, data, size);
        free(TAKE_PTR(data));
    }
    if (r == -ENOMEM)
        goto fail;

    r = list_policy_files(policy_dir, diag, &names, &n_names);
    if (r == -ENOMEM)
        goto fail;
    for (size_t i = 0; i < n_names; i++) {
        _cleanup_free_ char *path = path_join(policy_dir, names[i]);
        const char *file;

        r = path ? policy_add_file(policy, path, &file) : -ENOMEM;
        if (r < 0)
            goto fail;
        r = read_file(file, false, diag, &left, &data, &size);
        if (r == 0) {
            r = policy_loader_parse_policy(policy, file, data, size);
            free(TAKE_PTR(data));
        }
        if (r == -ENOMEM)
            goto fail;
    }
    free_names(names, n_names);
    return finish(policy, domains, policyp);

fail:
    free_names(names, n_names);
    return give_up(policy, domains);
}

int vrpc_policy_load_texts(const VrpcPolicyText *files, size_t n_files,
                           const VrpcPolicyText *domains_text, VrpcPolicy **policyp)
{
    VrpcPolicy *policy = NULL;
    PolicyDomains *domains = NULL;
    int r;

    if (!policyp || (n_files > 0 && !files))
        return -EINVAL;
    for (size_t i = 0; i < n_files; i++)
        if (!files[i].name || (!files[i].data && files[i].size > 0))
            return -EINVAL;
    if (domains_text && (!domains_text->name || (!domains_text->data && domains_text->size)))
        return -EINVAL;
    r = start(&policy, &domains);
    if (r < 0)
        return r;
    if (domains_text) {
        if (domains_text->size > POLICY_FILE_MAX)
            vrpc_diag_add(policy_get_diag(policy), domains_text->name, 0, 0,
                          "file too large (over %u bytes)", POLICY_FILE_MAX);
        else if (policy_loader_parse_domains(domains, policy_get_diag(policy), domains_text->name,
                                             domains_text->data ? domains_text->data : "",
                                             domains_text->size) < 0)
            goto fail;
    }
    for (size_t i = 0; i < n_files; i++) {
        const char *file;

        if (policy_add_file(policy, files[i].name, &file) < 0)
            goto fail;
        if (files[i].size > POLICY_FILE_MAX)
            vrpc_diag_add(policy_get_diag(policy), file, 0, 0, "file too large (over %u bytes)",
                          POLICY_FILE_MAX);
        else if (policy_loader_parse_policy(policy, file, files[i].data ? files[i].data : "",
                                            files[i].size) < 0)
            goto fail;
    }
    return finish(policy, domains, policyp);

fail:
    return give_up(policy, domains);
}
