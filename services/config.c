/* SPDX-License-Identifier: MIT */
/*
 * Per-service configuration, SERVICE.yaml. The file is tokenized by the
 * bounded YAML reader of common/yaml.h (no anchors, aliases or tags; depth
 * and node counts capped), read in one bounded slurp that never blocks on a
 * FIFO, and checked strictly: unknown keys, wrong types, duplicate keys,
 * non-mapping documents and extra documents are errors reported as
 * "FILE:LINE:COL: message". The settings only ever come from the trusted
 * services folder, but a typo in them must refuse calls clearly rather than
 * run a handler with half its settings (qrexec issue #9073 hung the call).
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/diag.h"
#include "common/escape.h"
#include "common/file.h"
#include "common/names.h"
#include "common/yaml.h"
#include "config.h"
#include "errbuf.h"

DEFINE_CLEANUP_FUNC(VrpcYamlNode, vrpc_yaml_node_free)
#define _cleanup_node_ __attribute__((cleanup(vrpc_yaml_node_freep)))

enum {
    KEY_USER,
    KEY_EXIT_ON_CLIENT_EOF,
    KEY_EXIT_ON_SERVICE_EOF,
    KEY_TIMEOUT,
    KEY_SKIP_SERVICE_DESCRIPTOR,
    KEY_COUNT,
};

static const char *const key_names[KEY_COUNT] = {
    [KEY_USER] = "user",
    [KEY_EXIT_ON_CLIENT_EOF] = "exit-on-client-eof",
    [KEY_EXIT_ON_SERVICE_EOF] = "exit-on-service-eof",
    [KEY_TIMEOUT] = "timeout",
    [KEY_SKIP_SERVICE_DESCRIPTOR] = "skip-service-descriptor",
};

typedef struct ConfigParser {
    const char *file;
    VrpcDiag diag;
    VrpcServiceConfig config;
    const VrpcYamlNode *seen[KEY_COUNT];
} ConfigParser;

#define node_error(p, node, ...) \
    vrpc_diag_add(&(p)->diag, (p)->file, (node)->line, (node)->col, __VA_ARGS__)

static int key_lookup(const VrpcYamlNode *key)
{
    if (key->kind != VRPC_YAML_SCALAR || strlen(key->value) != key->len)
        return -1;
    for (int i = 0; i < KEY_COUNT; i++)
        if (strcmp(key->value, key_names[i]) == 0)
            return i;
    return -1;
}

/* A YAML number for timeout: plain decimal digits with an optional fraction
 * and exponent; no sign, hex, inf or nan, which strtod() would take. */
static int parse_timeout(const VrpcYamlNode *value, double *secondsp)
{
    char *end = NULL;
    double v;

    if (value->kind != VRPC_YAML_SCALAR || !value->plain || value->len == 0 ||
        strlen(value->value) != value->len || value->len > 32)
        return -EINVAL;
    for (size_t i = 0; i < value->len; i++) {
        char c = value->value[i];

        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
            return -EINVAL;
    }
    if (value->value[0] < '0' || value->value[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtod(value->value, &end);
    if (errno != 0 || end != value->value + value->len || !isfinite(v))
        return -EINVAL;
    *secondsp = v;
    return 0;
}

static void set_value(ConfigParser *p, int key, const VrpcYamlNode *value)
{
    char q[VRPC_QUOTE_MAX];
    bool flag;

    switch (key) {
    case KEY_USER:
        if (value->kind != VRPC_YAML_SCALAR || vrpc_yaml_node_is_null(value) ||
            vrpc_yaml_node_get_bool(value, &flag) == 0) {
            node_error(p, value, "user: expected a string, got %s", vrpc_yaml_node_describe(value));
        } else if (!vrpc_name_valid_user(value->value, value->len)) {
            node_error(p, value,
                       "user: %s is not a user name ([A-Za-z0-9._-], 1 to %d characters, not "
                       "starting with '-')",
                       vrpc_quote(q, sizeof(q), value->value, value->len), VRPC_SERVICES_USER_MAX);
        } else {
            memcpy(p->config.user, value->value, value->len);
            p->config.user[value->len] = '\0';
        }
        return;
    case KEY_TIMEOUT: {
        double seconds = 0;

        if (parse_timeout(value, &seconds) < 0)
            node_error(p, value, "timeout: expected a number of seconds, got %s%s%s",
                       vrpc_yaml_node_describe(value), value->kind == VRPC_YAML_SCALAR ? " " : "",
                       value->kind == VRPC_YAML_SCALAR
                           ? vrpc_quote(q, sizeof(q), value->value, value->len)
                           : "");
        else if (!(seconds > 0) || seconds > VRPC_SERVICES_TIMEOUT_MAX)
            node_error(p, value, "timeout: must be more than 0 and at most %.0f seconds",
                       VRPC_SERVICES_TIMEOUT_MAX);
        else
            p->config.timeout = seconds;
        return;
    }
    default:
        if (vrpc_yaml_node_get_bool(value, &flag) < 0) {
            node_error(p, value, "%s: expected true or false, got %s", key_names[key],
                       vrpc_yaml_node_describe(value));
            return;
        }
        if (key == KEY_EXIT_ON_CLIENT_EOF)
            p->config.exit_on_client_eof = flag;
        else if (key == KEY_EXIT_ON_SERVICE_EOF)
            p->config.exit_on_service_eof = flag;
        else
            p->config.skip_service_descriptor = flag;
        return;
    }
}

static void parse_root(ConfigParser *p, const VrpcYamlNode *root)
{
    char q[VRPC_QUOTE_MAX];

    if (vrpc_yaml_node_is_null(root))
        return; /* "---" alone: an empty configuration */
    if (root->kind != VRPC_YAML_MAPPING) {
        node_error(p, root, "expected a mapping of settings, got %s",
                   vrpc_yaml_node_describe(root));
        return;
    }
    for (size_t i = 0; i + 1 < root->n_children; i += 2) {
        const VrpcYamlNode *key = root->children[i], *value = root->children[i + 1];
        int k = key_lookup(key);

        if (key->kind != VRPC_YAML_SCALAR) {
            node_error(p, key, "keys must be strings, got %s", vrpc_yaml_node_describe(key));
        } else if (k < 0) {
            node_error(p, key,
                       "unknown key %s (expected user, exit-on-client-eof, exit-on-service-eof, "
                       "timeout or skip-service-descriptor)",
                       vrpc_quote(q, sizeof(q), key->value, key->len));
        } else if (p->seen[k]) {
            node_error(p, key, "duplicate key \"%s\" (first at %u:%u)", key_names[k],
                       p->seen[k]->line, p->seen[k]->col);
        } else {
            p->seen[k] = key;
            set_value(p, k, value);
        }
    }
}

int service_config_parse(const char *file, const char *data, size_t size,
                         VrpcServiceConfig *configp, char *err)
{
    ConfigParser p = {.file = file};
    _cleanup_node_ VrpcYamlNode *root = NULL;
    int r;

    vrpc_diag_init(&p.diag);
    r = vrpc_yaml_read_document(file, data, size, &p.diag, &root);
    if (r == 0 && root)
        parse_root(&p, root);
    if (r == -ENOMEM) {
        services_err(err, "%s: out of memory", file);
    } else if (vrpc_diag_has_errors(&p.diag)) {
        /* The first error is the one to fix; the rest are often its echoes. */
        if (p.diag.n_lines > 0)
            services_err(err, "%s", p.diag.lines[0]);
        else
            services_err(err, "%s: invalid configuration (out of memory reporting why)", file);
        r = VRPC_SERVICES_E_CONFIG;
    } else if (r < 0) {
        services_err(err, "%s: cannot parse: %s", file, strerror(-r));
        r = VRPC_SERVICES_E_CONFIG;
    } else {
        *configp = p.config;
        r = 0;
    }
    vrpc_diag_deinit(&p.diag);
    return r;
}

/* Read NAME in DIRFD: -ENOENT when absent, VRPC_SERVICES_E_CONFIG with a
 * reason for anything but a readable regular file of bounded size. */
static int read_config(int dirfd, const char *path, const char *name, char **datap, size_t *sizep,
                       char *err)
{
    int r = vrpc_file_read(dirfd, name, VRPC_SERVICES_CONFIG_MAX, datap, sizep);

    if (r == 0 || r == -ENOENT || r == -ENOMEM)
        return r;
    if (r == VRPC_FILE_E_NOT_REGULAR)
        services_err(err, "%s: not a regular file", path);
    else if (r == VRPC_FILE_E_TOO_LARGE)
        services_err(err, "%s: file too large (over %d bytes)", path, VRPC_SERVICES_CONFIG_MAX);
    else
        services_err(err, "%s: cannot read: %s", path, strerror(-r));
    return VRPC_SERVICES_E_CONFIG;
}

int service_config_load(int dirfd, const char *dir, const char *entry, const char *service,
                        VrpcServiceConfig *configp, char **pathp, char *err)
{
    const char *bases[2] = {entry, service};
    size_t n_bases = strcmp(entry, service) == 0 ? 1 : 2;

    *configp = (VrpcServiceConfig){0};
    *pathp = NULL;
    for (size_t i = 0; i < n_bases; i++) {
        _cleanup_free_ char *name = NULL, *path = NULL, *data = NULL;
        size_t size = 0;
        int r;

        if (asprintf(&name, "%s.yaml", bases[i]) < 0) {
            name = NULL;
            return -ENOMEM;
        }
        if (asprintf(&path, "%s/%s", dir, name) < 0) {
            path = NULL;
            return -ENOMEM;
        }
        r = read_config(dirfd, path, name, &data, &size, err);
        if (r == -ENOENT)
            continue;
        if (r != 0)
            return r;
        r = service_config_parse(path, data, size, configp, err);
        if (r != 0)
            return r;
        *pathp = TAKE_PTR(path);
        return 0;
    }
    return 0;
}
