/* SPDX-License-Identifier: MIT */
/*
 * The one place where YAML text is tokenized (policy, SERVICE.yaml,
 * dispatcher.yaml). It wraps libyaml's event API so that a loader reads a
 * file as a stream of small trees (or one tree per small file), converts
 * libyaml's 0-based marks to the 1-based FILE:LINE:COL users see, and turns
 * every libyaml failure into exactly one diagnostic. Trees are bounded in
 * depth (recursion) and size (memory), so a hostile or corrupted file cannot
 * exhaust the dispatcher.
 */

#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "common/yaml.h"

#define YAML_MAX_DEPTH 32
#define YAML_MAX_NODES 20000

int vrpc_yaml_init(VrpcYaml *y, const char *file, const char *data, size_t size, VrpcDiag *diag)
{
    *y = (VrpcYaml){.file = file, .data = data, .size = size, .diag = diag};
    if (!yaml_parser_initialize(&y->parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&y->parser, (const unsigned char *)data, size);
    return 0;
}

void vrpc_yaml_deinit(VrpcYaml *y)
{
    if (y->have_event)
        yaml_event_delete(&y->event);
    yaml_parser_delete(&y->parser);
    y->have_event = false;
}

/* 1-based line and column of byte OFFSET, for reader errors that only carry an
 * offset. Columns count bytes here, which is close enough for bad encodings. */
static void offset_to_position(const VrpcYaml *y, size_t offset, unsigned *linep, unsigned *colp)
{
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

/* The byte a libyaml mark points at: its index counts characters, not bytes, so walk to the
 * mark's line and then over its column's characters (UTF-8). SIZE_MAX if past the end. */
static size_t mark_byte(const VrpcYaml *y, const yaml_mark_t *m)
{
    size_t i = 0, line = 0, col = 0;

    while (i < y->size && line < m->line)
        if (y->data[i++] == '\n')
            line++;
    while (i < y->size && col < m->column && y->data[i] != '\n') {
        i++;
        while (i < y->size && ((unsigned char)y->data[i] & 0xc0) == 0x80)
            i++; /* continuation bytes */
        col++;
    }
    return i < y->size ? i : SIZE_MAX;
}

static int report_parser_error(VrpcYaml *y)
{
    const yaml_parser_t *p = &y->parser;
    const char *problem = p->problem ? p->problem : "syntax error";
    unsigned line, col;

    if (p->error == YAML_MEMORY_ERROR) {
        vrpc_diag_add(y->diag, y->file, 0, 0, "out of memory while parsing");
        y->failed = true;
        return -ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        offset_to_position(y, p->problem_offset, &line, &col);
    } else {
        line = (unsigned)p->problem_mark.line + 1;
        col = (unsigned)p->problem_mark.column + 1;
    }
    /* An unquoted @anyvm or * is the usual cause: '@' and '`' cannot start a plain value,
     * '*' starts an alias. Say so. */
    const char *hint = "";
    if (p->error == YAML_SCANNER_ERROR) {
        size_t at[2] = {mark_byte(y, &p->problem_mark), mark_byte(y, &p->context_mark)};
        for (int i = 0; i < 2 && !*hint; i++)
            if (at[i] < y->size && y->data[at[i]] && strchr("@`*", y->data[at[i]]))
                hint = " (quote a value that starts with @ or *: \"@anyvm\", \"*\")";
    }
    if (p->context)
        vrpc_diag_add(y->diag, y->file, line, col, "invalid YAML: %s %s%s", problem, p->context,
                      hint);
    else
        vrpc_diag_add(y->diag, y->file, line, col, "invalid YAML: %s%s", problem, hint);
    y->failed = true;
    return -EBADMSG;
}

/* Refuse what no vrpc file needs; reported once, then the file is done. */
static int check_event_features(VrpcYaml *y)
{
    const yaml_event_t *e = &y->event;
    const unsigned char *anchor = NULL, *tag = NULL;

    switch (e->type) {
    case YAML_ALIAS_EVENT:
        vrpc_diag_add(y->diag, y->file, vrpc_yaml_line(y), vrpc_yaml_col(y),
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
        vrpc_diag_add(y->diag, y->file, vrpc_yaml_line(y), vrpc_yaml_col(y),
                      anchor ? "YAML anchors are not supported" : "YAML tags are not supported");
        y->failed = true;
        return -EBADMSG;
    }
    return 0;
}

int vrpc_yaml_next(VrpcYaml *y)
{
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

VrpcYamlNode *vrpc_yaml_node_free(VrpcYamlNode *node)
{
    if (!node)
        return NULL;
    for (size_t i = 0; i < node->n_children; i++)
        vrpc_yaml_node_free(node->children[i]);
    free(node->children);
    free(node->value);
    free(node);
    return NULL;
}

static int node_append(VrpcYamlNode *parent, VrpcYamlNode *child)
{
    VrpcYamlNode **c = realloc(parent->children, (parent->n_children + 1) * sizeof(*c));

    if (!c)
        return -ENOMEM;
    parent->children = c;
    parent->children[parent->n_children++] = child;
    return 0;
}

static int read_node(VrpcYaml *y, unsigned depth, VrpcYamlNode **nodep)
{
    VrpcYamlNode *node;
    yaml_event_type_t end;
    int r;

    if (depth > YAML_MAX_DEPTH || y->budget == 0) {
        vrpc_diag_add(y->diag, y->file, vrpc_yaml_line(y), vrpc_yaml_col(y),
                      depth > YAML_MAX_DEPTH ? "value nested too deeply"
                                             : "value too large (too many nodes)");
        y->failed = true;
        return -EBADMSG;
    }
    y->budget--;
    node = calloc(1, sizeof(*node));
    if (!node)
        return -ENOMEM;
    node->line = vrpc_yaml_line(y);
    node->col = vrpc_yaml_col(y);

    switch (vrpc_yaml_type(y)) {
    case YAML_SCALAR_EVENT:
        node->kind = VRPC_YAML_SCALAR;
        node->plain = y->event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        node->len = y->event.data.scalar.length;
        node->value = malloc(node->len + 1);
        if (!node->value) {
            vrpc_yaml_node_free(node);
            return -ENOMEM;
        }
        memcpy(node->value, y->event.data.scalar.value, node->len);
        node->value[node->len] = 0;
        *nodep = node;
        return 0;
    case YAML_SEQUENCE_START_EVENT:
        node->kind = VRPC_YAML_SEQUENCE;
        end = YAML_SEQUENCE_END_EVENT;
        break;
    case YAML_MAPPING_START_EVENT:
        node->kind = VRPC_YAML_MAPPING;
        end = YAML_MAPPING_END_EVENT;
        break;
    default:
        /* The parser only yields node events here; anything else is a bug. */
        vrpc_diag_add(y->diag, y->file, node->line, node->col, "unexpected YAML event");
        vrpc_yaml_node_free(node);
        y->failed = true;
        return -EBADMSG;
    }

    for (;;) {
        VrpcYamlNode *child = NULL;

        r = vrpc_yaml_next(y);
        if (r < 0)
            break;
        if (vrpc_yaml_type(y) == end) {
            *nodep = node;
            return 0;
        }
        r = read_node(y, depth + 1, &child);
        if (r < 0)
            break;
        r = node_append(node, child);
        if (r < 0) {
            vrpc_yaml_node_free(child);
            break;
        }
    }
    vrpc_yaml_node_free(node);
    return r;
}

int vrpc_yaml_read_node(VrpcYaml *y, VrpcYamlNode **nodep)
{
    y->budget = YAML_MAX_NODES;
    return read_node(y, 0, nodep);
}

bool vrpc_yaml_node_is_null(const VrpcYamlNode *node)
{
    return node->kind == VRPC_YAML_SCALAR && node->plain &&
           (node->len == 0 || strcmp(node->value, "~") == 0 || strcmp(node->value, "null") == 0 ||
            strcmp(node->value, "Null") == 0 || strcmp(node->value, "NULL") == 0);
}

int vrpc_yaml_node_get_bool(const VrpcYamlNode *node, bool *valuep)
{
    static const char *const truths[] = {"true", "True", "TRUE"};
    static const char *const lies[] = {"false", "False", "FALSE"};

    if (node->kind != VRPC_YAML_SCALAR || !node->plain)
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

const char *vrpc_yaml_node_describe(const VrpcYamlNode *node)
{
    bool ignored;

    switch (node->kind) {
    case VRPC_YAML_SEQUENCE:
        return "a list";
    case VRPC_YAML_MAPPING:
        return "a mapping";
    case VRPC_YAML_SCALAR:
        break;
    }
    if (vrpc_yaml_node_is_null(node))
        return "null";
    if (vrpc_yaml_node_get_bool(node, &ignored) == 0)
        return "a boolean";
    return "a string";
}

int vrpc_yaml_read_document(const char *file, const char *data, size_t size, VrpcDiag *diag,
                            VrpcYamlNode **rootp)
{
    VrpcYaml y;
    VrpcYamlNode *root = NULL;
    int r;

    *rootp = NULL;
    r = vrpc_yaml_init(&y, file, data, size, diag);
    if (r < 0)
        return r;
    r = vrpc_yaml_next(&y); /* stream start */
    if (r == 0)
        r = vrpc_yaml_next(&y); /* document start, or stream end: an empty file */
    if (r == 0 && vrpc_yaml_type(&y) != YAML_STREAM_END_EVENT) {
        r = vrpc_yaml_next(&y); /* the root node */
        if (r == 0)
            r = vrpc_yaml_read_node(&y, &root);
        if (r == 0)
            r = vrpc_yaml_next(&y); /* document end */
        if (r == 0)
            r = vrpc_yaml_next(&y);
        if (r == 0 && vrpc_yaml_type(&y) == YAML_DOCUMENT_START_EVENT) {
            vrpc_diag_add(diag, file, vrpc_yaml_line(&y), vrpc_yaml_col(&y),
                          "only one YAML document is allowed per file");
            r = -EBADMSG;
        }
    }
    vrpc_yaml_deinit(&y);
    if (r < 0) {
        vrpc_yaml_node_free(root);
        return r;
    }
    *rootp = root;
    return 0;
}
