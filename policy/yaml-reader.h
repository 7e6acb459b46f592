/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * PolicyYaml: a thin pull reader over libyaml's event parser that builds
 * small trees (PolicyNode) for one value at a time, with 1-based positions.
 * Streaming keeps memory proportional to one rule, not to the file. Anchors,
 * aliases and explicit tags are refused (a policy has no use for them, and
 * aliases are how YAML documents explode); nesting and node counts are capped.
 * Every syntax error is reported once to the PolicyDiag, after which the
 * reader refuses to go on (-EBADMSG).
 */

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "diag.h"

typedef enum PolicyNodeKind {
    POLICY_NODE_SCALAR,
    POLICY_NODE_SEQUENCE,
    POLICY_NODE_MAPPING,
} PolicyNodeKind;

typedef struct PolicyNode PolicyNode;
struct PolicyNode {
    PolicyNodeKind kind;
    unsigned line, col; /* 1-based */
    bool plain;         /* scalar written without quotes */
    char *value;        /* scalar bytes, NUL-terminated (may also hold NULs) */
    size_t len;
    PolicyNode **children; /* sequence items, or key, value, key, value, ... */
    size_t n_children;
};

typedef struct PolicyYaml {
    yaml_parser_t parser;
    yaml_event_t event;
    bool have_event;
    bool failed;
    const char *file;
    const char *data;
    size_t size;
    PolicyDiag *diag;
    size_t budget; /* nodes left for the tree being read */
} PolicyYaml;

/* policy_yaml_init() - returns 0 or -ENOMEM. DATA must outlive the reader. */
int policy_yaml_init(PolicyYaml *y, const char *file, const char *data, size_t size,
                     PolicyDiag *diag);
void policy_yaml_deinit(PolicyYaml *y);

/* policy_yaml_next() - advance to the next event. Returns 0, -EBADMSG after
 * reporting a syntax error (also on every later call) or -ENOMEM. */
int policy_yaml_next(PolicyYaml *y);

static inline yaml_event_type_t policy_yaml_type(const PolicyYaml *y) {
    return y->event.type;
}
static inline unsigned policy_yaml_line(const PolicyYaml *y) {
    return (unsigned)y->event.start_mark.line + 1;
}
static inline unsigned policy_yaml_col(const PolicyYaml *y) {
    return (unsigned)y->event.start_mark.column + 1;
}

/* policy_yaml_read_node() - build the value that starts at the current event;
 * afterwards the current event is its last one (scalar or end). Returns 0,
 * -EBADMSG (reported) or -ENOMEM. */
int policy_yaml_read_node(PolicyYaml *y, PolicyNode **nodep);

PolicyNode *policy_node_free(PolicyNode *node);

/* True for an empty plain scalar, ~ and null: YAML's null. */
bool policy_node_is_null(const PolicyNode *node);
/* Stores a plain true/false in *valuep; -EINVAL for anything else. */
int policy_node_get_bool(const PolicyNode *node, bool *valuep);
/* "a string", "a list", "a mapping", "null" or "a boolean", for messages. */
const char *policy_node_describe(const PolicyNode *node);
