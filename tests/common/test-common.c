/* SPDX-License-Identifier: MIT */
/*
 * common/: the one set of name rules and the layers that wrap it (the codec's rpc_valid_*(),
 * the policy's vrpc_policy_*_is_valid()), which must agree on every non-empty name -- before
 * issue 10 they disagreed on a domain starting with '.' or '-' and on a user starting with
 * '-'; the bounded file read and the single-document YAML reader that SERVICE.yaml and
 * dispatcher.yaml use; VrpcDiag's cap; vrpc_quote().
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/diag.h"
#include "common/direct.h"
#include "common/escape.h"
#include "common/file.h"
#include "common/names.h"
#include "common/yaml.h"
#include "librpc/rpc.h"
#include "vrpc-policy.h"

#define S32 "abcdefghijklmnopqrstuvwxyzabcdef"
#define S64 S32 S32
#define S65 S64 "x"

static bool valid(bool (*fn)(const char *, size_t), const char *s)
{
    return fn(s, s ? strlen(s) : 0);
}

START_TEST(rules_at_limits)
{
    ck_assert(valid(vrpc_name_valid_service, S64));
    ck_assert(!valid(vrpc_name_valid_service, S65));
    ck_assert(!valid(vrpc_name_valid_service, ""));
    ck_assert(!valid(vrpc_name_valid_service, "a+b"));
    ck_assert(valid(vrpc_name_valid_argument, ""));
    ck_assert(valid(vrpc_name_valid_argument, "+a+b"));
    ck_assert(!valid(vrpc_name_valid_argument, S65));
    /* what can name an entry of a services folder (services/lookup.c and libvrpc) */
    ck_assert(vrpc_name_can_name_service("demo.Echo", 9, false));
    ck_assert(!vrpc_name_can_name_service(".hidden", 7, false));
    ck_assert(vrpc_name_can_name_service(".hidden", 7, true)); /* an argument may */
    ck_assert(!vrpc_name_can_name_service("svc.yaml", 8, false));
    ck_assert(!vrpc_name_can_name_service("x.yaml", 6, true));
    ck_assert(vrpc_name_can_name_service("t.yaml2", 7, false));
    ck_assert(vrpc_name_can_name_service("", 0, true));
    ck_assert(valid(vrpc_name_valid_domain, "9lives"));
    ck_assert(!valid(vrpc_name_valid_domain, ""));
    ck_assert(!valid(vrpc_name_valid_domain, ".work"));
    ck_assert(!valid(vrpc_name_valid_domain, "-work"));
    ck_assert(!valid(vrpc_name_valid_domain, "_work"));
    ck_assert(valid(vrpc_name_valid_label, ".hidden-tag")); /* labels may start with any */
    ck_assert(valid(vrpc_name_valid_user, S32));
    ck_assert(!valid(vrpc_name_valid_user, S32 "x"));
    ck_assert(!valid(vrpc_name_valid_user, ""));
    ck_assert(!valid(vrpc_name_valid_user, "-root"));
    ck_assert(valid(vrpc_name_valid_user, "r-oot"));
    ck_assert(valid(vrpc_name_valid_target, "@dispvm:work"));
    ck_assert(!valid(vrpc_name_valid_target, "a/b"));
    /* The length, not a NUL, ends the text: a NUL inside is refused. */
    ck_assert(!vrpc_name_valid_service("a\0b", 3));
    ck_assert(!vrpc_name_valid_argument("a\0b", 3));
    ck_assert(!vrpc_name_valid_target("a\0b", 3));
    ck_assert(!vrpc_name_valid_service(NULL, 0));
}
END_TEST

/* Names on which the codec and the policy used to disagree, and ordinary ones. */
static const char *const agree_names[] = {
    "work",     "dom0", "sys-net", "9lives", "a.b_c",       S64, S65,     ".work", "-work", "_work",
    "@adminvm", "a:b",  "a b",     "a+b",    "caf\xc3\xa9", S32, S32 "x", "-root", "r-oot",
};

START_TEST(layers_agree)
{
    const char *s = agree_names[_i];
    size_t n = strlen(s);

    /* Non-empty names: the codec, the policy and the rules say the same. */
    ck_assert_msg(rpc_valid_domain(s) == vrpc_name_valid_domain(s, n), "domain %s", s);
    ck_assert_msg(vrpc_policy_domain_is_valid(s) == vrpc_name_valid_domain(s, n), "domain %s", s);
    ck_assert_msg(rpc_valid_service(s) == vrpc_name_valid_service(s, n), "service %s", s);
    ck_assert_msg(vrpc_policy_service_is_valid(s) == vrpc_name_valid_service(s, n), "service %s",
                  s);
    ck_assert_msg(rpc_valid_argument(s) == vrpc_name_valid_argument(s, n), "argument %s", s);
    ck_assert_msg(vrpc_policy_argument_is_valid(s) == vrpc_name_valid_argument(s, n), "argument %s",
                  s);
    ck_assert_msg(rpc_valid_user(s) == vrpc_name_valid_user(s, n), "user %s", s);
    ck_assert_msg(rpc_valid_target(s) == vrpc_name_valid_target(s, n), "target %s", s);
}
END_TEST

START_TEST(codec_optional_fields)
{
    /* In the codec an empty (or absent) optional field means "none". */
    ck_assert(rpc_valid_domain(""));
    ck_assert(rpc_valid_domain(NULL));
    ck_assert(rpc_valid_user(""));
    ck_assert(rpc_valid_user(NULL));
    ck_assert(!rpc_valid_service(""));
}
END_TEST

START_TEST(split_call)
{
    char service[VRPC_NAME_MAX + 1], argument[VRPC_NAME_MAX + 1];

    ck_assert_int_eq(vrpc_name_split_call("demo.Echo+a+b", service, argument), 0);
    ck_assert_str_eq(service, "demo.Echo");
    ck_assert_str_eq(argument, "a+b");
    ck_assert_int_eq(vrpc_name_split_call(S64 "+" S64, service, argument), 0);
    ck_assert_int_eq(vrpc_name_split_call(S65, service, argument), VRPC_NAME_E_SERVICE);
    ck_assert_str_eq(service, "");
    ck_assert_int_eq(vrpc_name_split_call("svc+" S65, service, argument), VRPC_NAME_E_ARGUMENT);
    ck_assert_str_eq(service, "");
    ck_assert_str_eq(argument, "");
    ck_assert_int_eq(vrpc_name_split_call(NULL, service, argument), VRPC_NAME_E_SERVICE);
}
END_TEST

#define L63 S32 "abcdefghijklmnopqrstuvwxyzabcde" /* one 63-character label */

/* Host, qualified and target rules for DOMAIN@HOST names, at their boundaries. */
START_TEST(qualified_names)
{
    static const struct {
        const char *s;
        bool host, qualified, target;
    } rows[] = {
        {"hosta", true, true, true},
        {"host-b.example.org", true, true, true},
        {L63, true, true, true},
        {L63 "x", false, true, true},        /* a 64-character label: no host, still a domain */
        {"a." L63 "x", false, false, false}, /* 66 bytes */
        {"Hosta", false, true, true},
        {"-b", false, false, true}, /* a target name, as before */
        {"b-", false, true, true},
        {"a..b", false, true, true},
        {".a", false, false, true},
        {"a.", false, true, true},
        {"a_b", false, true, true},
        {"work@hosta", false, true, true},
        {"dom0@hostb", false, true, true},
        {"work@Hosta", false, false, false},
        {"work@host_a", false, false, false},
        {"a@", false, false, false},
        {"@b", false, false, true}, /* a token, as @default is */
        {"a@b@c", false, false, false},
        {"a@-b", false, false, false},
        {"a@b-", false, false, false},
        {"a@b..c", false, false, false},
        {"-a@b", false, false, false},
        {"@adminvm", false, false, true},
        {"@adminvm@x", false, false, false},
        {"@dispvm:work", false, false, true},
        {"a:b@c", false, false, false},
        {"", false, false, true},
    };
    char q64[VRPC_NAME_MAX + 2];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *s = rows[i].s;
        size_t n = strlen(s);

        ck_assert_msg(vrpc_name_valid_host(s, n) == rows[i].host, "host %s", s);
        ck_assert_msg(vrpc_name_valid_qualified(s, n) == rows[i].qualified, "qualified %s", s);
        ck_assert_msg(vrpc_name_valid_target(s, n) == rows[i].target, "target %s", s);
        ck_assert_msg(vrpc_policy_qualified_domain_is_valid(s) == rows[i].qualified, "policy %s",
                      s);
        ck_assert_msg(rpc_valid_domain(s) == (rows[i].qualified || !s[0]), "codec %s", s);
    }
    /* 64 bytes in all is the limit, whatever the split. */
    memset(q64, 'h', sizeof(q64));
    memcpy(q64, "work@", 5);
    q64[VRPC_NAME_MAX] = 0;
    ck_assert(vrpc_name_valid_qualified(q64, VRPC_NAME_MAX));
    ck_assert(vrpc_name_valid_target(q64, VRPC_NAME_MAX));
    q64[VRPC_NAME_MAX] = 'h';
    q64[VRPC_NAME_MAX + 1] = 0;
    ck_assert(!vrpc_name_valid_qualified(q64, VRPC_NAME_MAX + 1));
    ck_assert(!vrpc_name_valid_target(q64, VRPC_NAME_MAX + 1));
    ck_assert(!rpc_valid_domain(q64));
    ck_assert(!vrpc_name_valid_host(S64, 64));
    ck_assert(!vrpc_name_valid_host("a\0b", 3));
    ck_assert(!vrpc_name_valid_qualified("a@b\0", 4));
    ck_assert(!vrpc_name_valid_host(NULL, 0));
    ck_assert(!vrpc_name_valid_qualified(NULL, 0));
}
END_TEST

START_TEST(split_join_qualified)
{
    char domain[VRPC_NAME_MAX + 1], host[VRPC_HOST_MAX + 1], out[VRPC_NAME_MAX + 1];
    char long_host[VRPC_HOST_MAX + 1];

    ck_assert_int_eq(vrpc_name_split_qualified("work@hosta", domain, host), 1);
    ck_assert_str_eq(domain, "work");
    ck_assert_str_eq(host, "hosta");
    ck_assert_int_eq(vrpc_name_split_qualified("work", domain, host), 0);
    ck_assert_str_eq(domain, "work");
    ck_assert_str_eq(host, "");
    ck_assert_int_eq(vrpc_name_split_qualified(S64, domain, host), 0);
    ck_assert_int_eq(vrpc_name_split_qualified(S65, domain, host), -EINVAL);
    ck_assert_str_eq(domain, "");
    ck_assert_int_eq(vrpc_name_split_qualified("a@b@c", domain, host), -EINVAL);
    ck_assert_str_eq(domain, "");
    ck_assert_str_eq(host, "");
    ck_assert_int_eq(vrpc_name_split_qualified("a@", domain, host), -EINVAL);
    ck_assert_int_eq(vrpc_name_split_qualified("@b", domain, host), -EINVAL);
    ck_assert_int_eq(vrpc_name_split_qualified(NULL, domain, host), -EINVAL);

    ck_assert_int_eq(vrpc_name_join_qualified(out, "dom0", "hostb"), 0);
    ck_assert_str_eq(out, "dom0@hostb");
    ck_assert_int_eq(vrpc_name_join_qualified(out, "work", ""), 0);
    ck_assert_str_eq(out, "work");
    ck_assert_int_eq(vrpc_name_join_qualified(out, "work", NULL), 0);
    ck_assert_str_eq(out, "work");
    ck_assert_int_eq(vrpc_name_join_qualified(out, "work", "Hostb"), -EINVAL);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(vrpc_name_join_qualified(out, "-work", "hostb"), -EINVAL);
    ck_assert_int_eq(vrpc_name_join_qualified(out, NULL, "hostb"), -EINVAL);
    memset(long_host, 'h', VRPC_HOST_MAX);
    long_host[VRPC_HOST_MAX] = 0;
    ck_assert_int_eq(vrpc_name_join_qualified(out, "w", long_host), -ENAMETOOLONG);
    ck_assert_str_eq(out, "");
    long_host[VRPC_NAME_MAX - 2] = 0; /* "w@" + 62 = 64 bytes */
    ck_assert_int_eq(vrpc_name_join_qualified(out, "w", long_host), 0);
    ck_assert_int_eq(strlen(out), VRPC_NAME_MAX);
    ck_assert_int_eq(vrpc_name_split_qualified(out, domain, host), 1);
    ck_assert_str_eq(domain, "w");
    ck_assert_str_eq(host, long_host);
}
END_TEST

/* vrpc_yaml_read_document() on @text: the return, and the first diagnostic (or ""). */
static int read_doc(const char *text, VrpcYamlNode **rootp, char *first, size_t size)
{
    VrpcDiag diag;
    int r;

    vrpc_diag_init(&diag);
    r = vrpc_yaml_read_document("t.yaml", text, strlen(text), &diag, rootp);
    snprintf(first, size, "%s", diag.n_lines ? diag.lines[0] : "");
    vrpc_diag_deinit(&diag);
    return r;
}

START_TEST(yaml_one_document)
{
    VrpcYamlNode *root = NULL;
    char first[256];

    ck_assert_int_eq(read_doc("", &root, first, sizeof(first)), 0);
    ck_assert_ptr_null(root);
    ck_assert_int_eq(read_doc("# only a comment\n", &root, first, sizeof(first)), 0);
    ck_assert_ptr_null(root);

    ck_assert_int_eq(read_doc("a: 1\nb: [x, y]\n", &root, first, sizeof(first)), 0);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(root->kind, VRPC_YAML_MAPPING);
    ck_assert_uint_eq(root->n_children, 4);
    ck_assert_str_eq(root->children[0]->value, "a");
    ck_assert_int_eq(root->children[3]->kind, VRPC_YAML_SEQUENCE);
    root = vrpc_yaml_node_free(root);

    ck_assert_int_eq(read_doc("---\n...\n", &root, first, sizeof(first)), 0);
    ck_assert_ptr_nonnull(root);
    ck_assert(vrpc_yaml_node_is_null(root));
    root = vrpc_yaml_node_free(root);

    /* A second document: refused at its position, nothing returned. */
    ck_assert_int_eq(read_doc("a: 1\n---\nb: 2\n", &root, first, sizeof(first)), -EBADMSG);
    ck_assert_ptr_null(root);
    ck_assert_str_eq(first, "t.yaml:2:1: only one YAML document is allowed per file");

    /* Syntax errors and aliases are reported once, with their position. */
    ck_assert_int_eq(read_doc("a: [1, 2\n", &root, first, sizeof(first)), -EBADMSG);
    ck_assert_ptr_null(root);
    ck_assert(strncmp(first, "t.yaml:", 7) == 0);
    ck_assert_int_eq(read_doc("a: &x 1\nb: *x\n", &root, first, sizeof(first)), -EBADMSG);
    ck_assert_ptr_null(root);
    ck_assert_ptr_nonnull(strstr(first, "anchors are not supported"));
}
END_TEST

static void write_file(int dirfd, const char *name, size_t size)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *buf = malloc(size + 1);

    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'y', size);
    ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
    free(buf);
    close(fd);
}

START_TEST(file_read_bounded)
{
    char dir[] = "/tmp/vrpc-common-XXXXXX";
    char *data = NULL;
    size_t size = 99;
    int dirfd;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dirfd, 0);

    ck_assert_int_eq(vrpc_file_read(dirfd, "absent", 16, &data, &size), -ENOENT);
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(size, 0);

    write_file(dirfd, "at", 16); /* exactly at the cap: read whole, NUL-terminated */
    ck_assert_int_eq(vrpc_file_read(dirfd, "at", 16, &data, &size), 0);
    ck_assert_uint_eq(size, 16);
    ck_assert_uint_eq(strlen(data), 16);
    free(data);
    data = NULL;

    write_file(dirfd, "empty", 0);
    ck_assert_int_eq(vrpc_file_read(dirfd, "empty", 16, &data, &size), 0);
    ck_assert_uint_eq(size, 0);
    ck_assert_str_eq(data, "");
    free(data);
    data = NULL;

    write_file(dirfd, "over", 17);
    ck_assert_int_eq(vrpc_file_read(dirfd, "over", 16, &data, &size), VRPC_FILE_E_TOO_LARGE);
    ck_assert_ptr_null(data);

    /* Not regular: refused without blocking (a FIFO with no writer would hang open()). */
    ck_assert_int_eq(mkfifoat(dirfd, "fifo", 0600), 0);
    ck_assert_int_eq(vrpc_file_read(dirfd, "fifo", 16, &data, &size), VRPC_FILE_E_NOT_REGULAR);
    ck_assert_int_eq(mkdirat(dirfd, "sub", 0700), 0);
    ck_assert_int_eq(vrpc_file_read(dirfd, "sub", 16, &data, &size), VRPC_FILE_E_NOT_REGULAR);
    ck_assert_ptr_null(data);

    /* AT_FDCWD with an absolute path. */
    char path[64];
    snprintf(path, sizeof(path), "%s/at", dir);
    ck_assert_int_eq(vrpc_file_read(AT_FDCWD, path, 16, &data, &size), 0);
    free(data);

    const char *names[] = {"at", "empty", "over", "fifo"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(unlinkat(dirfd, names[i], 0), 0);
    ck_assert_int_eq(unlinkat(dirfd, "sub", AT_REMOVEDIR), 0);
    close(dirfd);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(diag_cap)
{
    VrpcDiag diag;

    vrpc_diag_init(&diag);
    for (int i = 0; i < VRPC_DIAG_MAX + 50; i++)
        vrpc_diag_add(&diag, "f", (unsigned)i + 1, 1, "error %d", i);
    ck_assert_uint_eq(diag.n_errors, VRPC_DIAG_MAX + 50);
    ck_assert_uint_eq(diag.n_lines, VRPC_DIAG_MAX + 1);
    ck_assert_str_eq(diag.lines[0], "f:1:1: error 0");
    ck_assert_str_eq(diag.lines[VRPC_DIAG_MAX], "f: too many errors, not reporting any more");
    vrpc_diag_deinit(&diag);
    vrpc_diag_deinit(NULL);
}
END_TEST

START_TEST(quote)
{
    char q[VRPC_QUOTE_MAX];

    ck_assert_str_eq(vrpc_quote(q, sizeof(q), "a\"b\\c\x1b", 6), "\"a\\\"b\\\\c\\x1b\"");
    ck_assert_str_eq(vrpc_quote(q, sizeof(q), "a\0b", 3), "\"a\\x00b\"");
    ck_assert_str_eq(vrpc_quote(q, sizeof(q), S64, 64), "\"" S32 "abcdefghijklm...\"");
    ck_assert_str_eq(vrpc_quote(q, 8, "abc", 3), "");
}
END_TEST

/* The direct path's texts: formatted and parsed back; anything but the exact form refused. */
START_TEST(direct_texts)
{
    char buf[256];
    int dom;
    unsigned ch;
    uint64_t token, id;

    ck_assert_int_gt(vrpc_direct_format_redirect(buf, sizeof(buf), 7, 3, 0x0123456789abcdefull, 42), 0);
    ck_assert_str_eq(buf, "direct 7 3 0123456789abcdef 42");
    ck_assert_int_eq(vrpc_direct_parse_redirect(buf, &dom, &ch, &token, &id), 0);
    ck_assert_int_eq(dom, 7);
    ck_assert_uint_eq(ch, 3);
    ck_assert(token == 0x0123456789abcdefull && id == 42);
    static const char *const bad_redirect[] = {
        "", "direct", "direct 7 3 0123456789abcdef", "direct 0 3 0123456789abcdef 42",
        "direct 07 3 0123456789abcdef 42", "direct 7 3 0123456789ABCDEF 42",
        "direct 7 3 0123456789abcde 42", "direct 7 3 0123456789abcdef 42 ",
        "direct 7  3 0123456789abcdef 42", "direct -7 3 0123456789abcdef 42",
        "direct 99999 3 0123456789abcdef 42", "direct 7 4294967296 0123456789abcdef 42",
        "direct 7 3 0123456789abcdef 18446744073709551616", "Direct 7 3 0123456789abcdef 42",
    };
    for (size_t i = 0; i < sizeof(bad_redirect) / sizeof(bad_redirect[0]); i++)
        ck_assert_msg(vrpc_direct_parse_redirect(bad_redirect[i], &dom, &ch, &token, &id) ==
                          -EINVAL,
                      "accepted '%s'", bad_redirect[i]);

    VrpcDirectServe sv = {.ch = 9, .peer_domid = 4, .token = 1, .call_id = 5}, back;
    snprintf(sv.source, sizeof(sv.source), "work");
    snprintf(sv.service, sizeof(sv.service), "demo.Echo");
    ck_assert_int_gt(vrpc_direct_format_serve(buf, sizeof(buf), &sv), 0);
    ck_assert_str_eq(buf, "9 4 work 0000000000000001 5 demo.Echo - -\n");
    ck_assert_int_eq(vrpc_direct_parse_serve(buf, strlen(buf), &back), 0);
    ck_assert(back.ch == 9 && back.peer_domid == 4 && back.token == 1 && back.call_id == 5);
    ck_assert_str_eq(back.source, "work");
    ck_assert_str_eq(back.argument, "");
    ck_assert_str_eq(back.user, "");
    snprintf(sv.argument, sizeof(sv.argument), "a+b");
    snprintf(sv.user, sizeof(sv.user), "user");
    ck_assert_int_gt(vrpc_direct_format_serve(buf, sizeof(buf), &sv), 0);
    ck_assert_int_eq(vrpc_direct_parse_serve(buf, strlen(buf), &back), 0);
    ck_assert_str_eq(back.argument, "a+b");
    ck_assert_str_eq(back.user, "user");
    static const char *const bad_serve[] = {
        "9 4 work 0000000000000001 5 demo.Echo - -",    /* no newline */
        "9 4 work 0000000000000001 5 demo.Echo - - \n", /* trailing */
        "9 0 work 0000000000000001 5 demo.Echo - -\n",
        "9 4 -work 0000000000000001 5 demo.Echo - -\n",
        "9 4 work 0000000000000001 5 demo/Echo - -\n",
        "9 4 work 0000000000000001 5 demo.Echo a/b -\n",
        "9 4 work 0000000000000001 5 demo.Echo - -bad\n",
    };
    for (size_t i = 0; i < sizeof(bad_serve) / sizeof(bad_serve[0]); i++)
        ck_assert_msg(vrpc_direct_parse_serve(bad_serve[i], strlen(bad_serve[i]), &back) == -EINVAL,
                      "accepted '%s'", bad_serve[i]);
    ck_assert_int_eq(vrpc_direct_parse_serve("9 4\0x", 5, &back), -EINVAL);

    bool refused = true;
    ck_assert_int_eq(vrpc_direct_parse_exit("0", &refused), 0);
    ck_assert(!refused);
    ck_assert_int_eq(vrpc_direct_parse_exit("refused-127", &refused), 127);
    /* a report travels as a CALL argument: it must pass the argument rule */
    ck_assert(vrpc_name_valid_argument("refused-127", strlen("refused-127")));
    ck_assert(refused);
    ck_assert_int_eq(vrpc_direct_parse_exit("refused-", NULL), -EINVAL);
    ck_assert_int_eq(vrpc_direct_parse_exit("refused-aborted", NULL), -EINVAL);
    ck_assert_int_eq(vrpc_direct_parse_exit("refused-256", NULL), -EINVAL);
    ck_assert_int_eq(vrpc_direct_parse_exit("255", NULL), 255);
    ck_assert_int_eq(vrpc_direct_parse_exit("aborted", NULL), VRPC_DIRECT_EXIT_ABORTED);
    ck_assert_int_eq(vrpc_direct_parse_exit("expired", NULL), VRPC_DIRECT_EXIT_EXPIRED);
    ck_assert_int_eq(vrpc_direct_parse_exit("cancelled", NULL), VRPC_DIRECT_EXIT_CANCELLED);
    /* the reports the agents write: each parses back to what it was made from */
    {
        static const struct {
            int code;
            bool refused;
            const char *text;
        } reports[] = {{0, false, "0"},
                       {255, false, "255"},
                       {127, true, "refused-127"},
                       {VRPC_DIRECT_EXIT_ABORTED, false, "aborted"},
                       {VRPC_DIRECT_EXIT_EXPIRED, false, "expired"},
                       {VRPC_DIRECT_EXIT_CANCELLED, false, "cancelled"}};
        char w[VRPC_DIRECT_EXIT_WORD_MAX];
        for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
            ck_assert_str_eq(
                vrpc_direct_format_exit(w, sizeof(w), reports[i].code, reports[i].refused),
                reports[i].text);
            ck_assert_int_eq(vrpc_direct_parse_exit(w, &refused), reports[i].code);
            ck_assert(refused == reports[i].refused);
        }
        ck_assert_str_eq(vrpc_direct_format_exit(w, sizeof(w), -4, false), "");
        ck_assert_str_eq(vrpc_direct_format_exit(w, sizeof(w), 256, false), "");
    }
    ck_assert_int_eq(vrpc_direct_parse_exit("refused-cancelled", NULL), -EINVAL);
    ck_assert_int_eq(vrpc_direct_parse_exit("256", NULL), -EINVAL);
    ck_assert_int_eq(vrpc_direct_parse_exit("01", NULL), -EINVAL);
    ck_assert_int_eq(vrpc_direct_parse_exit("", NULL), -EINVAL);
    ck_assert_int_eq(vrpc_direct_parse_exit(NULL, NULL), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("common");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, rules_at_limits);
    tcase_add_loop_test(tc, layers_agree, 0, sizeof(agree_names) / sizeof(agree_names[0]));
    tcase_add_test(tc, codec_optional_fields);
    tcase_add_test(tc, split_call);
    tcase_add_test(tc, qualified_names);
    tcase_add_test(tc, split_join_qualified);
    tcase_add_test(tc, yaml_one_document);
    tcase_add_test(tc, file_read_bounded);
    tcase_add_test(tc, diag_cap);
    tcase_add_test(tc, quote);
    tcase_add_test(tc, direct_texts);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
