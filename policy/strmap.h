/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * PolicyStrMap: an insert-only open-addressing hash map from byte-string keys
 * to pointers, built at load time and read without locks or allocation on the
 * evaluation path. Keys are copied; values are owned by the caller unless a
 * free function is given.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct PolicyStrMap PolicyStrMap;
typedef void (*PolicyStrMapFreeFn)(void *value);

/* policy_strmap_new() - returns 0 or -ENOMEM. FREE_VALUE may be NULL. */
int policy_strmap_new(PolicyStrMap **mapp, PolicyStrMapFreeFn free_value);
/* policy_strmap_free() - frees keys and (with a free function) values; NULL ok. */
PolicyStrMap *policy_strmap_free(PolicyStrMap *map);
/* policy_strmap_put() - returns 0, -EEXIST (key present, map unchanged) or -ENOMEM. */
int policy_strmap_put(PolicyStrMap *map, const char *key, size_t len, void *value);
/* policy_strmap_get() - the value for KEY, or NULL. */
void *policy_strmap_get(const PolicyStrMap *map, const char *key, size_t len);
