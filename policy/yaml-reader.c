/* SPDX-License-Identifier: MIT */
/*
 * The one place where policy YAML text is tokenized. It wraps libyaml's event
 * API so that the loader reads a file as a stream of small trees, converts
 * libyaml's 0-based marks to the 1-based FILE:LINE:COL users see, and turns
 * every libyaml failure into exactly one diagnostic. Trees are bounded in
 * depth (recursion) and size (memory), so a hostile or corrupted file cannot
 * exhaust the dispatcher.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "yaml-reader.h"

#define YAML_MAX_DEPTH 32
#define YAML_MAX_NODES 20000

int policy_yaml_init(PolicyYaml *y, const char *file, const char *data, size_t size,
                     PolicyDiag *diag) {
    *y = (PolicyYaml){.file = file, .data = data, .size = size, .diag = diag};
    if (!yaml_parser_initialize(&y->parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&y->parser, (const unsigned char *)data, size);
    return 0;
}

void policy_yaml_deinit(PolicyYaml *y) {
    if (y->have_event)
        yaml_event_delete(&y->event);
    yaml_parser_delete(&y->parser);
    y->have_event = false;
}

/* 1-based line and column of byte OFFSET, for reader errors that only carry an
 * offset. Columns count bytes here, which is close enough for bad encodings. */
static void offset_to_position(const PolicyYaml *y, size_t offset, unsigned *linep,
                               unsigned *colp) {
    unsigned line = 1, col = 1;

    for (size_t i = 0; i < offset && i < y->size; i++) {
        if (y->data[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    *linep = line;
    *colp = col;
}

static int report_parser_error(PolicyYaml *y) {
    const yaml_parser_t *p = &y->parser;
    const char *problem = p->problem ? p->problem : "syntax error";
    unsigned line, col;

    if (p->error == YAML_MEMORY_ERROR) {
        policy_diag_add(y->diag, y->file, 0, 0, "out of memory while parsing");
        y->failed = true;
        return -ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        offset_to_position(y, p->problem_offset, &line, &col);
    } else {
        line = (unsigned)p->problem_mark.line + 1;
        col = (unsigned)p->problem_mark.column + 1;
    }
    if (p->context)
        policy_diag_add(y->diag, y->file, line, col, "invalid YAML: %s %s", problem, p->context);
    else
        policy_diag_add(y->diag, y->file, line, col, "invalid YAML: %s", problem);
    y->failed = true;
    return -EBADMSG;
}

/* Refuse what a policy never needs; reported once, then the file is done. */
static int check_event_features(PolicyYaml *y) {
    const yaml_event_t *e = &y->event;
    const unsigned char *anchor = NULL, *tag = NULL;

    switch (e->type) {
    case YAML_ALIAS_EVENT:
        policy_diag_add(y->diag, y->file, policy_yaml_line(y), policy_yaml_col(y),
                        "YAML aliases are not supported");
        y->failed = true;
        return -EBADMSG;
    case YAML_SCALAR_EVENT:
        anchor = e->data.scalar.anchor;
        tag = e->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = e->data.sequence_start.anchor;
        tag = e->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = e->data.mapping_start.anchor;
        tag = e->data.mapping_start.tag;
        break;
    default:
        return 0;
    }
    if (anchor || tag) {
        policy_diag_add(y->diag, y->file, policy_yaml_line(y), policy_yaml_col(y),
                        anchor ? "YAML anchors are not supported" : "YAML tags are not supported");
        y->failed = true;
        return -EBADMSG;
    }
    return 0;
}

int policy_yaml_next(PolicyYaml *y) {
    if (y->failed)
        return -EBADMSG;
    if (y->have_event) {
        yaml_event_delete(&y->event);
        y->have_event = false;
    }
    if (!yaml_parser_parse(&y->parser, &y->event))
        return report_parser_error(y);
    y->have_event = true;
    return check_event_features(y);
}

PolicyNode *policy_node_free(PolicyNode *node) {
    if (!node)
        return NULL;
    for (size_t i = 0; i < node->n_children; i++)
        policy_node_free(node->children[i]);
    free(node->children);
    free(node->value);
    free(node);
    return NULL;
}

static int node_append(PolicyNode *parent, PolicyNode *child) {
    PolicyNode **c = realloc(parent->children, (parent->n_children + 1) * sizeof(*c));

    if (!c)
        return -ENOMEM;
    parent->children = c;
    parent->children[parent->n_children++] = child;
    return 0;
}

static int read_node(PolicyYaml *y, unsigned depth, PolicyNode **nodep) {
    PolicyNode *node;
    yaml_event_type_t end;
    int r;

    if (depth > YAML_MAX_DEPTH || y->budget == 0) {
        policy_diag_add(y->diag, y->file, policy_yaml_line(y), policy_yaml_col(y),
                        depth > YAML_MAX_DEPTH ? "value nested too deeply"
                                               : "value too large (too many nodes)");
        y->failed = true;
        return -EBADMSG;
    }
    y->budget--;
    node = calloc(1, sizeof(*node));
    if (!node)
        return -ENOMEM;
    node->line = policy_yaml_line(y);
    node->col = policy_yaml_col(y);

    switch (policy_yaml_type(y)) {
    case YAML_SCALAR_EVENT:
        node->kind = POLICY_NODE_SCALAR;
        node->plain = y->event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        node->len = y->event.data.scalar.length;
        node->value = malloc(node->len + 1);
        if (!node->value) {
            policy_node_free(node);
            return -ENOMEM;
        }
        memcpy(node->value, y->event.data.scalar.value, node->len);
        node->value[node->len] = 0;
        *nodep = node;
        return 0;
    case YAML_SEQUENCE_START_EVENT:
        node->kind = POLICY_NODE_SEQUENCE;
        end = YAML_SEQUENCE_END_EVENT;
        break;
    case YAML_MAPPING_START_EVENT:
        node->kind = POLICY_NODE_MAPPING;
        end = YAML_MAPPING_END_EVENT;
        break;
    default:
        /* The parser only yields node events here; anything else is a bug. */
        policy_diag_add(y->diag, y->file, node->line, node->col, "unexpected YAML event");
        policy_node_free(node);
        y->failed = true;
        return -EBADMSG;
    }

    for (;;) {
        PolicyNode *child = NULL;

        r = policy_yaml_next(y);
        if (r < 0)
            break;
        if (policy_yaml_type(y) == end) {
            *nodep = node;
            return 0;
        }
        r = read_node(y, depth + 1, &child);
        if (r < 0)
            break;
        r = node_append(node, child);
        if (r < 0) {
            policy_node_free(child);
            break;
        }
    }
    policy_node_free(node);
    return r;
}

int policy_yaml_read_node(PolicyYaml *y, PolicyNode **nodep) {
    y->budget = YAML_MAX_NODES;
    return read_node(y, 0, nodep);
}

bool policy_node_is_null(const PolicyNode *node) {
    return node->kind == POLICY_NODE_SCALAR && node->plain &&
           (node->len == 0 || strcmp(node->value, "~") == 0 || strcmp(node->value, "null") == 0 ||
            strcmp(node->value, "Null") == 0 || strcmp(node->value, "NULL") == 0);
}

int policy_node_get_bool(const PolicyNode *node, bool *valuep) {
    static const char *const truths[] = {"true", "True", "TRUE"};
    static const char *const lies[] = {"false", "False", "FALSE"};

    if (node->kind != POLICY_NODE_SCALAR || !node->plain)
        return -EINVAL;
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(node->value, truths[i]) == 0) {
            *valuep = true;
            return 0;
        }
        if (strcmp(node->value, lies[i]) == 0) {
            *valuep = false;
            return 0;
        }
    }
    return -EINVAL;
}

const char *policy_node_describe(const PolicyNode *node) {
    bool ignored;

    switch (node->kind) {
    case POLICY_NODE_SEQUENCE:
        return "a list";
    case POLICY_NODE_MAPPING:
        return "a mapping";
    case POLICY_NODE_SCALAR:
        break;
    }
    if (policy_node_is_null(node))
        return "null";
    if (policy_node_get_bool(node, &ignored) == 0)
        return "a boolean";
    return "a string";
}
