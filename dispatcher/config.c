/* SPDX-License-Identifier: MIT */
/*
 * config.c - dispatcher.yaml: a mapping with the optional keys max-calls-per-guest,
 * max-buffer-per-guest, keepalive-interval, audit-log, log-level, ask-program, ask-timeout
 * notify-program, direct-idle-timeout, direct-report-timeout and host (cross-host links: name, listen, tls {ca, cert, key}, peers). The file is read with
 * the bounded single-document YAML reader of common/yaml.h (no anchors, aliases or tags) and checked strictly:
 * an unknown or duplicate key, a wrong type or an out-of-range value is an error that stops
 * the dispatcher at start, naming the file, line and column.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/diag.h"
#include "common/names.h"
#include "common/file.h"
#include "common/yaml.h"
#include "log.h"

enum {
    KEY_MAX_CALLS,
    KEY_MAX_BUFFER,
    KEY_KEEPALIVE,
    KEY_AUDIT_LOG,
    KEY_LOG_LEVEL,
    KEY_ASK_PROGRAM,
    KEY_ASK_TIMEOUT,
    KEY_NOTIFY_PROGRAM,
    KEY_HOST,
    KEY_DIRECT_IDLE,
    KEY_DIRECT_REPORT,
    N_KEYS,
};

static const char *const key_names[N_KEYS] = {
    "max-calls-per-guest", "max-buffer-per-guest", "keepalive-interval", "audit-log", "log-level",
    "ask-program",         "ask-timeout",          "notify-program",     "host",
    "direct-idle-timeout", "direct-report-timeout",
};

void dispatcher_config_init(DispatcherConfig *cfg)
{
    *cfg = (DispatcherConfig){
        .max_calls_per_guest = DISPATCHER_MAX_CALLS_DEFAULT,
        .keepalive_ms = -1,
        .log_level = -1,
        .ask_timeout_ms = DISPATCHER_ASK_TIMEOUT_DEFAULT_MS,
        .direct_idle_ms = DISPATCHER_DIRECT_IDLE_DEFAULT_MS,
        .direct_report_ms = DISPATCHER_DIRECT_REPORT_DEFAULT_MS,
    };
}

void dispatcher_config_deinit(DispatcherConfig *cfg)
{
    if (!cfg)
        return;
    free(cfg->audit_log);
    cfg->audit_log = NULL;
    free(cfg->ask_program);
    cfg->ask_program = NULL;
    free(cfg->notify_program);
    cfg->notify_program = NULL;
    free(cfg->host.ca);
    free(cfg->host.cert);
    free(cfg->host.key);
    free(cfg->host.file);
    cfg->host = (HostConfig){0};
}

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(err, DISPATCHER_CONFIG_ERROR_MAX, fmt, ap);
    va_end(ap);
}

/* A plain decimal integer scalar in [min, max]. */
static int node_uint(const VrpcYamlNode *n, uint64_t min, uint64_t max, uint64_t *vp)
{
    char *end;
    unsigned long long v;

    if (n->kind != VRPC_YAML_SCALAR || !n->plain || n->len == 0 || n->len > 20 ||
        strlen(n->value) != n->len || n->value[0] < '0' || n->value[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(n->value, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *vp = v;
    return 0;
}

static int node_seconds(const VrpcYamlNode *n, double *vp)
{
    char *end;
    double v;

    if (n->kind != VRPC_YAML_SCALAR || !n->plain || n->len == 0 || strlen(n->value) != n->len ||
        n->value[0] < '0' || n->value[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtod(n->value, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v > 86400)
        return -EINVAL;
    *vp = v;
    return 0;
}

/* An absolute path scalar, copied into *dstp (replacing what was there). */
static int node_path(const VrpcYamlNode *v, char **dstp)
{
    if (v->kind != VRPC_YAML_SCALAR || v->len == 0 || strlen(v->value) != v->len ||
        v->value[0] != '/')
        return -EINVAL;
    free(*dstp);
    *dstp = strdup(v->value);
    return *dstp ? 0 : -ENOMEM;
}

int dispatcher_parse_addr(const char *s, size_t len, HostAddr *out)
{
    const char *colon, *hs = s;
    size_t hl;

    if (!s || len == 0 || len > DISPATCHER_ADDR_MAX + 7 || strlen(s) != len)
        return -EINVAL;
    colon = strrchr(s, ':');
    if (!colon)
        return -EINVAL;
    hl = (size_t)(colon - s);
    if (s[0] == '[') { /* [IPv6]:port */
        if (hl < 3 || s[hl - 1] != ']')
            return -EINVAL;
        hs = s + 1;
        hl -= 2;
        for (size_t i = 0; i < hl; i++)
            if (!strchr("0123456789abcdefABCDEF:.", hs[i]))
                return -EINVAL;
    } else {
        if (hl == 0 || memchr(s, ':', hl))
            return -EINVAL;
        for (size_t i = 0; i < hl; i++)
            if (!((hs[i] >= 'a' && hs[i] <= 'z') || (hs[i] >= 'A' && hs[i] <= 'Z') ||
                  (hs[i] >= '0' && hs[i] <= '9') || hs[i] == '.' || hs[i] == '-'))
                return -EINVAL;
        if (hs[0] == '-' || hs[0] == '.')
            return -EINVAL;
    }
    if (hl > DISPATCHER_ADDR_MAX)
        return -EINVAL;
    const char *ps = colon + 1;
    size_t pl = strlen(ps);
    if (pl == 0 || pl > 5 || ps[0] == '0')
        return -EINVAL;
    unsigned port = 0;
    for (size_t i = 0; i < pl; i++) {
        if (ps[i] < '0' || ps[i] > '9')
            return -EINVAL;
        port = port * 10 + (unsigned)(ps[i] - '0');
    }
    if (port < 1 || port > 65535)
        return -EINVAL;
    memcpy(out->host, hs, hl);
    out->host[hl] = '\0';
    memcpy(out->port, ps, pl + 1);
    return 0;
}

static bool scalar_is(const VrpcYamlNode *n, const char *s)
{
    return n->kind == VRPC_YAML_SCALAR && strlen(n->value) == n->len && strcmp(n->value, s) == 0;
}

static bool node_text(const VrpcYamlNode *n)
{
    return n->kind == VRPC_YAML_SCALAR && n->len > 0 && strlen(n->value) == n->len;
}

/*
 * The index of KEY among the N key NAMES of a mapping, marked in SEEN. An
 * unknown or repeated key is an error located at KEY, prefixed with WHERE
 * ("host", "host.tls"; "" at the top level) and naming the EXPECTED keys.
 * Returns the index or -EINVAL.
 */
static int mapping_key(const VrpcYamlNode *key, const char *const *names, int n,
                       const VrpcYamlNode **seen, const char *where, const char *expected,
                       const char *file, char *err)
{
    const char *sep = where[0] ? ": " : "";
    int k = -1;

    for (int j = 0; j < n && k < 0; j++)
        if (scalar_is(key, names[j]))
            k = j;
    if (k < 0) {
        set_err(err, "%s:%u:%u: %s%sunknown key (expected %s)", file, key->line, key->col, where,
                sep, expected);
        return -EINVAL;
    }
    if (seen[k]) {
        set_err(err, "%s:%u:%u: %s%sduplicate key %s (first at %u:%u)", file, key->line, key->col,
                where, sep, names[k], seen[k]->line, seen[k]->col);
        return -EINVAL;
    }
    seen[k] = key;
    return k;
}

/* tls: {ca: PATH, cert: PATH, key: PATH}, every file readable now. */
static int parse_tls(HostConfig *h, const VrpcYamlNode *m, const char *file, char *err)
{
    static const char *const names[3] = {"ca", "cert", "key"};
    char **dst[3] = {&h->ca, &h->cert, &h->key};
    const VrpcYamlNode *seen[3] = {0};

    if (m->kind != VRPC_YAML_MAPPING) {
        set_err(err, "%s:%u:%u: host.tls: expected a mapping {ca, cert, key}, got %s", file,
                m->line, m->col, vrpc_yaml_node_describe(m));
        return -EINVAL;
    }
    for (size_t i = 0; i + 1 < m->n_children; i += 2) {
        const VrpcYamlNode *v = m->children[i + 1];
        int k = mapping_key(m->children[i], names, 3, seen, "host.tls", "ca, cert or key", file,
                            err);
        if (k < 0)
            return k;
        int r = node_path(v, dst[k]);
        if (r == -EINVAL) {
            set_err(err, "%s:%u:%u: host.tls.%s: expected an absolute path", file, v->line, v->col,
                    names[k]);
            return r;
        }
        if (r < 0)
            return r;
        h->tls_line[k] = v->line;
        h->tls_col[k] = v->col;
        if (access(*dst[k], R_OK) < 0) {
            set_err(err, "%s:%u:%u: host.tls.%s: %s: %s", file, v->line, v->col, names[k], *dst[k],
                    strerror(errno));
            return -EINVAL;
        }
    }
    for (int j = 0; j < 3; j++)
        if (!seen[j]) {
            set_err(err, "%s:%u:%u: host.tls: missing %s", file, m->line, m->col, names[j]);
            return -EINVAL;
        }
    return 0;
}

static int parse_peers(HostConfig *h, const VrpcYamlNode *m, const char *file, char *err)
{
    if (m->kind != VRPC_YAML_MAPPING) {
        set_err(err, "%s:%u:%u: host.peers: expected a mapping of NAME: \"address:port\", got %s",
                file, m->line, m->col, vrpc_yaml_node_describe(m));
        return -EINVAL;
    }
    for (size_t i = 0; i + 1 < m->n_children; i += 2) {
        const VrpcYamlNode *key = m->children[i], *v = m->children[i + 1];
        if (!node_text(key) || !vrpc_name_valid_host(key->value, key->len)) {
            set_err(err,
                    "%s:%u:%u: host.peers: invalid host name (letters, digits, '-' and "
                    "'.', at most %d characters)",
                    file, key->line, key->col, VRPC_HOST_MAX);
            return -EINVAL;
        }
        if (strcmp(key->value, h->name) == 0) {
            set_err(err, "%s:%u:%u: host.peers: %s is this host's own name", file, key->line,
                    key->col, key->value);
            return -EINVAL;
        }
        for (size_t j = 0; j < h->n_peers; j++)
            if (strcmp(h->peers[j].name, key->value) == 0) {
                set_err(err, "%s:%u:%u: host.peers: duplicate peer %s", file, key->line, key->col,
                        key->value);
                return -EINVAL;
            }
        if (h->n_peers >= DISPATCHER_PEERS_MAX) {
            set_err(err, "%s:%u:%u: host.peers: more than %d peers", file, key->line, key->col,
                    DISPATCHER_PEERS_MAX);
            return -EINVAL;
        }
        HostPeerConfig *p = &h->peers[h->n_peers];
        if (!node_text(v) || dispatcher_parse_addr(v->value, v->len, &p->addr) < 0) {
            set_err(err,
                    "%s:%u:%u: host.peers.%s: invalid address (expected \"address:port\", "
                    "port 1..65535)",
                    file, v->line, v->col, key->value);
            return -EINVAL;
        }
        snprintf(p->name, sizeof(p->name), "%s", key->value);
        h->n_peers++;
    }
    return 0;
}

/* host: {name, listen, tls, peers}; name first checked so that peers can refuse it. */
static int parse_host(HostConfig *h, const VrpcYamlNode *m, const char *file, char *err)
{
    static const char *const names[4] = {"name", "listen", "tls", "peers"};
    const VrpcYamlNode *seen[4] = {0}, *vals[4] = {0};

    if (m->kind != VRPC_YAML_MAPPING) {
        set_err(err, "%s:%u:%u: host: expected a mapping (name, listen, tls, peers), got %s", file,
                m->line, m->col, vrpc_yaml_node_describe(m));
        return -EINVAL;
    }
    for (size_t i = 0; i + 1 < m->n_children; i += 2) {
        int k = mapping_key(m->children[i], names, 4, seen, "host", "name, listen, tls or peers",
                            file, err);
        if (k < 0)
            return k;
        vals[k] = m->children[i + 1];
    }
    /* In file order as far as possible: the name first, then what is missing. */
    const VrpcYamlNode *v = vals[0];
    if (v && (!node_text(v) || !vrpc_name_valid_host(v->value, v->len))) {
        set_err(err,
                "%s:%u:%u: host.name: invalid host name (letters, digits, '-' and '.', "
                "at most %d characters)",
                file, v->line, v->col, VRPC_HOST_MAX);
        return -EINVAL;
    }
    for (int j = 0; j < 3; j++)
        if (!seen[j]) {
            set_err(err, "%s:%u:%u: host: missing %s", file, m->line, m->col, names[j]);
            return -EINVAL;
        }
    snprintf(h->name, sizeof(h->name), "%s", v->value);
    v = vals[1];
    if (!node_text(v) || dispatcher_parse_addr(v->value, v->len, &h->listen) < 0) {
        set_err(err,
                "%s:%u:%u: host.listen: invalid address (expected \"address:port\", port "
                "1..65535)",
                file, v->line, v->col);
        return -EINVAL;
    }
    int r = parse_tls(h, vals[2], file, err);
    if (r < 0)
        return r;
    if (!(h->file = strdup(file)))
        return -ENOMEM;
    if (vals[3] && !vrpc_yaml_node_is_null(vals[3])) {
        r = parse_peers(h, vals[3], file, err);
        if (r < 0)
            return r;
    }
    h->enabled = true;
    return 0;
}

static int set_value(DispatcherConfig *cfg, int k, const VrpcYamlNode *v, const char *file,
                     char *err)
{
    uint64_t u;
    double secs;
    int r;

    switch (k) {
    case KEY_HOST:
        return parse_host(&cfg->host, v, file, err);
    case KEY_MAX_CALLS:
        if (node_uint(v, 1, DISPATCHER_MAX_CALLS_LIMIT, &u) < 0)
            goto bad;
        cfg->max_calls_per_guest = (unsigned)u;
        return 0;
    case KEY_MAX_BUFFER:
        if (node_uint(v, DISPATCHER_BUFFER_MIN, DISPATCHER_BUFFER_MAX, &u) < 0)
            goto bad;
        cfg->max_buffer_per_guest = u;
        return 0;
    case KEY_KEEPALIVE:
        if (node_seconds(v, &secs) < 0)
            goto bad;
        cfg->keepalive_ms = (int64_t)llround(secs * 1000.0);
        return 0;
    case KEY_AUDIT_LOG:
    case KEY_ASK_PROGRAM:
    case KEY_NOTIFY_PROGRAM:
        r = node_path(v, k == KEY_AUDIT_LOG     ? &cfg->audit_log
                         : k == KEY_ASK_PROGRAM ? &cfg->ask_program
                                                : &cfg->notify_program);
        if (r == -EINVAL)
            goto bad;
        return r;
    case KEY_DIRECT_IDLE:
        if (node_seconds(v, &secs) < 0)
            goto bad;
        cfg->direct_idle_ms = (int64_t)llround(secs * 1000.0);
        return 0;
    case KEY_DIRECT_REPORT:
        /* Never 0: the second report of a call always gets a chance to arrive. */
        if (node_seconds(v, &secs) < 0 || secs < 0.1)
            goto bad;
        cfg->direct_report_ms = (int64_t)llround(secs * 1000.0);
        return 0;
    case KEY_ASK_TIMEOUT:
        /* A prompt needs a human: at least a tenth of a second, at most a day. */
        if (node_seconds(v, &secs) < 0 || secs < 0.1)
            goto bad;
        cfg->ask_timeout_ms = (int64_t)llround(secs * 1000.0);
        return 0;
    case KEY_LOG_LEVEL: {
        int level = v->kind == VRPC_YAML_SCALAR ? dlog_level_from_string(v->value) : -EINVAL;
        if (level < 0)
            goto bad;
        cfg->log_level = level;
        return 0;
    }
    default:
        break;
    }
bad:
    set_err(err, "%s:%u:%u: invalid value for %s (expected %s)", file, v->line, v->col,
            key_names[k],
            k == KEY_MAX_CALLS     ? "an integer 1..1048576"
            : k == KEY_MAX_BUFFER  ? "a byte count 262144..1073741824"
            : k == KEY_KEEPALIVE || k == KEY_DIRECT_IDLE ? "seconds 0..86400 (0 = off)"
            : k == KEY_ASK_TIMEOUT || k == KEY_DIRECT_REPORT ? "seconds 0.1..86400"
            : k == KEY_LOG_LEVEL   ? "error, warning, info or debug"
                                   : "an absolute path");
    return -EINVAL;
}

static int parse_root(DispatcherConfig *cfg, const VrpcYamlNode *root, const char *file, char *err)
{
    const VrpcYamlNode *seen[N_KEYS] = {0};

    if (vrpc_yaml_node_is_null(root))
        return 0;
    if (root->kind != VRPC_YAML_MAPPING) {
        set_err(err, "%s:%u:%u: expected a mapping of settings, got %s", file, root->line,
                root->col, vrpc_yaml_node_describe(root));
        return -EINVAL;
    }
    for (size_t i = 0; i + 1 < root->n_children; i += 2) {
        int k = mapping_key(root->children[i], key_names, N_KEYS, seen, "",
                            "max-calls-per-guest, max-buffer-per-guest, keepalive-interval, "
                            "audit-log, log-level, ask-program, ask-timeout, notify-program, "
                            "direct-idle-timeout, direct-report-timeout or host",
                            file, err);
        int r;

        if (k < 0)
            return k;
        r = set_value(cfg, k, root->children[i + 1], file, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int dispatcher_config_parse(DispatcherConfig *cfg, const char *file, const char *data, size_t size,
                            char *err)
{
    VrpcDiag diag;
    VrpcYamlNode *root = NULL;
    int r;

    dispatcher_config_deinit(cfg);
    dispatcher_config_init(cfg);
    vrpc_diag_init(&diag);
    r = vrpc_yaml_read_document(file, data, size, &diag, &root);
    if (r == 0 && root)
        r = parse_root(cfg, root, file, err);
    vrpc_yaml_node_free(root);
    if (r == -EBADMSG) {
        set_err(err, "%s", diag.n_lines ? diag.lines[0] : "invalid YAML");
        r = -EINVAL;
    } else if (r == -ENOMEM) {
        set_err(err, "%s: out of memory", file);
    }
    vrpc_diag_deinit(&diag);
    if (r < 0) {
        dispatcher_config_deinit(cfg);
        dispatcher_config_init(cfg);
    }
    return r;
}

int dispatcher_config_load(DispatcherConfig *cfg, const char *etc_dir, char *err)
{
    char path[4096];
    char *data = NULL;
    size_t size = 0;
    int r;

    dispatcher_config_init(cfg);
    snprintf(path, sizeof(path), "%s/%s", etc_dir, DISPATCHER_CONFIG_FILE);
    r = vrpc_file_read(AT_FDCWD, path, DISPATCHER_CONFIG_SIZE_MAX, &data, &size);
    if (r == -ENOENT)
        return 0;
    if (r == VRPC_FILE_E_NOT_REGULAR) {
        set_err(err, "%s: not a regular file of at most %d bytes", path,
                DISPATCHER_CONFIG_SIZE_MAX);
        return -EINVAL;
    }
    if (r == VRPC_FILE_E_TOO_LARGE) {
        set_err(err, "%s: larger than %d bytes", path, DISPATCHER_CONFIG_SIZE_MAX);
        return -EINVAL;
    }
    if (r < 0) {
        set_err(err, "%s: %s", path, strerror(-r));
        return r;
    }
    r = dispatcher_config_parse(cfg, path, data, size, err);
    free(data);
    return r;
}
