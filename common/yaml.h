/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * VrpcYaml: a thin pull reader over libyaml's event parser that builds
 * small trees (VrpcYamlNode) for one value at a time, with 1-based positions.
 * Streaming keeps memory proportional to one rule, not to the file (the policy
 * loader); vrpc_yaml_read_document() reads a small file's one document whole
 * (SERVICE.yaml, dispatcher.yaml). Anchors, aliases and explicit tags are
 * refused (no vrpc file has a use for them, and aliases are how YAML
 * documents explode); nesting and node counts are capped.
 * Every syntax error is reported once to the VrpcDiag, after which the
 * reader refuses to go on (-EBADMSG).
 */

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "common/diag.h"

typedef enum VrpcYamlNodeKind {
    VRPC_YAML_SCALAR,
    VRPC_YAML_SEQUENCE,
    VRPC_YAML_MAPPING,
} VrpcYamlNodeKind;

typedef struct VrpcYamlNode VrpcYamlNode;
struct VrpcYamlNode {
    VrpcYamlNodeKind kind;
    unsigned line, col; /* 1-based */
    bool plain;         /* scalar written without quotes */
    char *value;        /* scalar bytes, NUL-terminated (may also hold NULs) */
    size_t len;
    VrpcYamlNode **children; /* sequence items, or key, value, key, value, ... */
    size_t n_children;
};

typedef struct VrpcYaml {
    yaml_parser_t parser;
    yaml_event_t event;
    bool have_event;
    bool failed;
    const char *file;
    const char *data;
    size_t size;
    VrpcDiag *diag;
    size_t budget; /* nodes left for the tree being read */
} VrpcYaml;

/* vrpc_yaml_init() - returns 0 or -ENOMEM. DATA must outlive the reader. */
int vrpc_yaml_init(VrpcYaml *y, const char *file, const char *data, size_t size, VrpcDiag *diag);
void vrpc_yaml_deinit(VrpcYaml *y);

/* vrpc_yaml_next() - advance to the next event. Returns 0, -EBADMSG after
 * reporting a syntax error (also on every later call) or -ENOMEM. */
int vrpc_yaml_next(VrpcYaml *y);

static inline yaml_event_type_t vrpc_yaml_type(const VrpcYaml *y)
{
    return y->event.type;
}
static inline unsigned vrpc_yaml_line(const VrpcYaml *y)
{
    return (unsigned)y->event.start_mark.line + 1;
}
static inline unsigned vrpc_yaml_col(const VrpcYaml *y)
{
    return (unsigned)y->event.start_mark.column + 1;
}

/* vrpc_yaml_read_node() - build the value that starts at the current event;
 * afterwards the current event is its last one (scalar or end). Returns 0,
 * -EBADMSG (reported) or -ENOMEM. */
int vrpc_yaml_read_node(VrpcYaml *y, VrpcYamlNode **nodep);

VrpcYamlNode *vrpc_yaml_node_free(VrpcYamlNode *node);

/*
 * vrpc_yaml_read_document() - parse @data (@size bytes, named @file in messages; the caller
 * has already capped @size) as a stream of at most one document and build its root in
 * *@rootp: NULL for an empty stream (nothing, or only comments). A second document is an
 * error "FILE:LINE:COL: only one YAML document is allowed per file". Returns 0, -EBADMSG
 * with the reason(s) in @diag (*@rootp is then NULL) or -ENOMEM.
 */
int vrpc_yaml_read_document(const char *file, const char *data, size_t size, VrpcDiag *diag,
                            VrpcYamlNode **rootp);

/* True for an empty plain scalar, ~ and null: YAML's null. */
bool vrpc_yaml_node_is_null(const VrpcYamlNode *node);
/* Stores a plain true/false in *valuep; -EINVAL for anything else. */
int vrpc_yaml_node_get_bool(const VrpcYamlNode *node, bool *valuep);
/* "a string", "a list", "a mapping", "null" or "a boolean", for messages. */
const char *vrpc_yaml_node_describe(const VrpcYamlNode *node);
