/* SPDX-License-Identifier: MIT */
/*
 * names.h - the one set of name rules of vrpc: service, argument, domain, tag/type label,
 * user and call-target names, their length limits, and the "SERVICE[+ARG]" split. The codec
 * (librpc), the policy engine and the services library all check names with these, so that a
 * name one layer accepts is never refused by another for a different reason.
 *
 * Every check takes an explicit length, so that text holding NUL bytes (a YAML scalar, a
 * protobuf string) is refused rather than silently cut. None allocates; all are pure.
 */
#ifndef VRPC_COMMON_NAMES_H
#define VRPC_COMMON_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Longest service name, argument, domain name, tag or type name and call target, in bytes. */
#define VRPC_NAME_MAX 64
/* Longest user name, in bytes. */
#define VRPC_USER_MAX 32
/* Longest host name (the HOST of DOMAIN@HOST), in bytes. */
#define VRPC_HOST_MAX 63

/* Outcomes of vrpc_name_split_call(). */
enum {
    VRPC_NAME_E_SERVICE = 1,  /* the part before '+' is not a service name */
    VRPC_NAME_E_ARGUMENT = 2, /* the part after '+' is not an argument */
};

/* Service name: [A-Za-z0-9._-]{1,64}. */
bool vrpc_name_valid_service(const char *s, size_t len);
/* Argument: [A-Za-z0-9._+-]{0,64} (empty: no argument). */
bool vrpc_name_valid_argument(const char *s, size_t len);
/* Whether a valid service name (@argument false) or argument (true) can name an entry of a
 * services folder: never a configuration file (ending in ".yaml") and, a name, never a
 * hidden one (starting with '.'). An argument may start with '.': it always follows
 * "NAME+". */
bool vrpc_name_can_name_service(const char *s, size_t len, bool argument);
/* Domain name: [A-Za-z0-9._-]{1,64} starting with a letter or digit, so that it never looks
 * like an option, a hidden file or a policy token. */
bool vrpc_name_valid_domain(const char *s, size_t len);
/* Tag or type name (@tag:T, @type:T): [A-Za-z0-9._-]{1,64}. */
bool vrpc_name_valid_label(const char *s, size_t len);
/* User name: [A-Za-z0-9._-]{1,32} not starting with '-'. */
bool vrpc_name_valid_user(const char *s, size_t len);
/* Host name: a lowercase DNS name, labels of [a-z0-9-] (1 to 63 characters, not starting or
 * ending with '-') separated by single '.', 1 to VRPC_HOST_MAX characters in all. */
bool vrpc_name_valid_host(const char *s, size_t len);
/* Qualified domain name: a domain name (vrpc_name_valid_domain), or DOMAIN@HOST naming domain
 * DOMAIN on host HOST (dom0@hostb is host hostb's dom0). At most VRPC_NAME_MAX bytes in all. */
bool vrpc_name_valid_qualified(const char *s, size_t len);
/* Call target as a caller names it (empty: none named), at most VRPC_NAME_MAX bytes: a token
 * "@" [A-Za-z0-9._:-]* such as @default, @adminvm or @dispvm:NAME (never with a second '@'),
 * a name of [A-Za-z0-9._:-], or a qualified DOMAIN@HOST (vrpc_name_valid_qualified). Which
 * tokens mean something is the policy's business. */
bool vrpc_name_valid_target(const char *s, size_t len);

/*
 * vrpc_name_split_call() - split an untrusted "SERVICE[+ARG]" at the first '+' into
 * @servicep and @argumentp after validating both; "SERVICE+" and "SERVICE" both give an
 * empty argument. Never reads more than 2 * VRPC_NAME_MAX + 2 bytes of @untrusted_call.
 * Returns 0, or VRPC_NAME_E_SERVICE / VRPC_NAME_E_ARGUMENT (NULL @untrusted_call: _SERVICE),
 * in which case both buffers are "".
 */
int vrpc_name_split_call(const char *untrusted_call, char servicep[VRPC_NAME_MAX + 1],
                         char argumentp[VRPC_NAME_MAX + 1]);

/*
 * vrpc_name_split_qualified() - split an untrusted qualified name at its '@' into @domain and
 * @host after validating it (vrpc_name_valid_qualified). Never reads more than
 * VRPC_NAME_MAX + 1 bytes of @untrusted. Returns 0 for a plain domain name (@host is then ""),
 * 1 for DOMAIN@HOST, or -EINVAL (NULL or invalid; both buffers are then "").
 */
int vrpc_name_split_qualified(const char *untrusted, char domain[VRPC_NAME_MAX + 1],
                              char host[VRPC_HOST_MAX + 1]);

/*
 * vrpc_name_join_qualified() - write "DOMAIN@HOST" into @out, or just DOMAIN when @host is NULL
 * or "". Returns 0; -EINVAL when @domain or @host is not a valid domain / host name;
 * -ENAMETOOLONG when the joined name is longer than VRPC_NAME_MAX. On error @out is "".
 */
int vrpc_name_join_qualified(char out[VRPC_NAME_MAX + 1], const char *domain, const char *host);

#endif
