/* SPDX-License-Identifier: MIT */
/*
 * config.c - dispatcher.yaml: a mapping with the optional keys max-calls-per-guest,
 * max-buffer-per-guest, keepalive-interval, audit-log, log-level, ask-program, ask-timeout
 * and notify-program. The file is read with
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

#include "common/diag.h"
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
    N_KEYS,
};

static const char *const key_names[N_KEYS] = {
    "max-calls-per-guest", "max-buffer-per-guest", "keepalive-interval", "audit-log",
    "log-level",           "ask-program",          "ask-timeout",        "notify-program",
};

void dispatcher_config_init(DispatcherConfig *cfg)
{
    *cfg = (DispatcherConfig){
        .max_calls_per_guest = DISPATCHER_MAX_CALLS_DEFAULT,
        .keepalive_ms = -1,
        .log_level = -1,
        .ask_timeout_ms = DISPATCHER_ASK_TIMEOUT_DEFAULT_MS,
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

static int set_value(DispatcherConfig *cfg, int k, const VrpcYamlNode *v, const char *file,
                     char *err)
{
    uint64_t u;
    double secs;
    int r;

    switch (k) {
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
            : k == KEY_KEEPALIVE   ? "seconds 0..86400 (0 = off)"
            : k == KEY_ASK_TIMEOUT ? "seconds 0.1..86400"
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
        const VrpcYamlNode *key = root->children[i], *value = root->children[i + 1];
        int k = -1;
        int r;

        if (key->kind == VRPC_YAML_SCALAR)
            for (int j = 0; j < N_KEYS; j++)
                if (strlen(key->value) == key->len && strcmp(key->value, key_names[j]) == 0)
                    k = j;
        if (k < 0) {
            set_err(err,
                    "%s:%u:%u: unknown key (expected max-calls-per-guest, "
                    "max-buffer-per-guest, keepalive-interval, audit-log, log-level, "
                    "ask-program, ask-timeout or notify-program)",
                    file, key->line, key->col);
            return -EINVAL;
        }
        if (seen[k]) {
            set_err(err, "%s:%u:%u: duplicate key %s (first at %u:%u)", file, key->line, key->col,
                    key_names[k], seen[k]->line, seen[k]->col);
            return -EINVAL;
        }
        seen[k] = key;
        r = set_value(cfg, k, value, file, err);
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
