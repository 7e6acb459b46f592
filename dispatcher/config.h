/* SPDX-License-Identifier: MIT */
/*
 * config.h - the dispatcher's own settings, ETC/dispatcher.yaml (optional; strict keys).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DISPATCHER_CONFIG_FILE "dispatcher.yaml"
#define DISPATCHER_MAX_CALLS_DEFAULT 1024u
#define DISPATCHER_MAX_CALLS_LIMIT (1u << 20)
#define DISPATCHER_BUFFER_MIN ((uint64_t)256 << 10)
#define DISPATCHER_BUFFER_MAX ((uint64_t)1 << 30)
#define DISPATCHER_CONFIG_SIZE_MAX (64 * 1024)
#define DISPATCHER_CONFIG_ERROR_MAX 512
#define DISPATCHER_ASK_TIMEOUT_DEFAULT_MS 60000
/* direct-idle-timeout: a direct guest<->guest channel closes after this long without calls. */
#define DISPATCHER_DIRECT_IDLE_DEFAULT_MS 30000
/* direct-report-timeout: once one agent reported the end of a direct call, how long the
 * dispatcher waits for the other's report before it closes the call with what it has. */
#define DISPATCHER_DIRECT_REPORT_DEFAULT_MS 5000

#define DISPATCHER_PEERS_MAX 64
#define DISPATCHER_ADDR_MAX 255 /* the host part of "address:port" */

/* "address:port": a host name or IPv4 address, or [IPv6], and a port 1..65535. */
typedef struct HostAddr {
    char host[DISPATCHER_ADDR_MAX + 1];
    char port[6];
} HostAddr;

typedef struct HostPeerConfig {
    char name[64]; /* VRPC_HOST_MAX + 1 */
    HostAddr addr;
} HostPeerConfig;

/* The host: section (cross-host links, docs/cross-host.md). enabled false: no section. */
typedef struct HostConfig {
    bool enabled;
    char name[64];
    HostAddr listen;
    char *ca, *cert, *key;
    /* where they are given, for messages: the configuration file and each value's line and
     * column (ca, cert, key in that order) */
    char *file;
    unsigned tls_line[3], tls_col[3];
    HostPeerConfig peers[DISPATCHER_PEERS_MAX];
    size_t n_peers;
} HostConfig;

typedef struct DispatcherConfig {
    unsigned max_calls_per_guest;  /* calls in flight per connection */
    uint64_t max_buffer_per_guest; /* 0: librpc's defaults; else conn window and tx bound */
    int64_t keepalive_ms;          /* -1: librpc's default; 0: off */
    char *audit_log;               /* NULL: audit lines go to the log at info */
    int log_level;                 /* syslog level; -1: not set */
    char *ask_program;             /* NULL: ask means deny */
    int64_t ask_timeout_ms;        /* how long a prompt may take */
    char *notify_program;          /* NULL: notify: true does nothing */
    HostConfig host;               /* host: (cross-host links) */
    int64_t direct_idle_ms;        /* direct channels close after this idle; 0: no direct */
    int64_t direct_report_ms;      /* wait for the second end report of a direct call */
} DispatcherConfig;

/* Parse "address:port" (untrusted text, @len bytes). 0 or -EINVAL. */
int dispatcher_parse_addr(const char *s, size_t len, HostAddr *out);

void dispatcher_config_init(DispatcherConfig *cfg);
void dispatcher_config_deinit(DispatcherConfig *cfg);

/*
 * Parse a dispatcher.yaml text (@file names it in messages) into @cfg (defaults first).
 * Returns 0, or -EINVAL with "FILE:LINE:COL: message" in @err
 * (DISPATCHER_CONFIG_ERROR_MAX bytes), or -ENOMEM.
 */
int dispatcher_config_parse(DispatcherConfig *cfg, const char *file, const char *data, size_t size,
                            char *err);

/* Load @etc_dir/dispatcher.yaml if it exists (a missing file gives the defaults).
 * Returns 0, -EINVAL (invalid; reason in @err), or -errno reading it (reason in @err). */
int dispatcher_config_load(DispatcherConfig *cfg, const char *etc_dir, char *err);
