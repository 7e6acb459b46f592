/* SPDX-License-Identifier: MIT */
/*
 * A small string-keyed hash map with linear probing, used for the rule index
 * and the domain table. It only grows (the compiled policy is immutable), so
 * there are no tombstones. Lookups hash with FNV-1a: keys come from the
 * trusted configuration, and an attacker who picks lookup strings cannot make
 * probe chains longer than the configuration made them.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

typedef struct PolicyStrMapSlot {
    char *key; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    void *value;
} PolicyStrMapSlot;

struct PolicyStrMap {
    PolicyStrMapSlot *slots;
    size_t n_slots; /* a power of two */
    size_t n_used;
    PolicyStrMapFreeFn free_value;
};

static uint64_t strmap_hash(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int policy_strmap_new(PolicyStrMap **mapp, PolicyStrMapFreeFn free_value)
{
    PolicyStrMap *map = calloc(1, sizeof(*map));

    if (!map)
        return -ENOMEM;
    map->n_slots = 16;
    map->slots = calloc(map->n_slots, sizeof(*map->slots));
    if (!map->slots) {
        free(map);
        return -ENOMEM;
    }
    map->free_value = free_value;
    *mapp = map;
    return 0;
}

PolicyStrMap *policy_strmap_free(PolicyStrMap *map)
{
    if (!map)
        return NULL;
    for (size_t i = 0; i < map->n_slots; i++) {
        if (!map->slots[i].key)
            continue;
        free(map->slots[i].key);
        if (map->free_value)
            map->free_value(map->slots[i].value);
    }
    free(map->slots);
    free(map);
    return NULL;
}

static PolicyStrMapSlot *strmap_find(const PolicyStrMapSlot *slots, size_t n_slots, const char *key,
                                     size_t len, uint64_t hash)
{
    size_t mask = n_slots - 1;

    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        const PolicyStrMapSlot *s = &slots[i];

        if (!s->key || (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0))
            return (PolicyStrMapSlot *)s;
    }
}

static int strmap_grow(PolicyStrMap *map)
{
    size_t n = map->n_slots * 2;
    PolicyStrMapSlot *slots = calloc(n, sizeof(*slots));

    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < map->n_slots; i++) {
        const PolicyStrMapSlot *s = &map->slots[i];

        if (s->key)
            *strmap_find(slots, n, s->key, s->len, s->hash) = *s;
    }
    free(map->slots);
    map->slots = slots;
    map->n_slots = n;
    return 0;
}

int policy_strmap_put(PolicyStrMap *map, const char *key, size_t len, void *value)
{
    uint64_t hash = strmap_hash(key, len);
    PolicyStrMapSlot *s;
    char *copy;

    /* Keep the load factor at or under one half so probes stay short. */
    if ((map->n_used + 1) * 2 > map->n_slots && strmap_grow(map) < 0)
        return -ENOMEM;
    s = strmap_find(map->slots, map->n_slots, key, len, hash);
    if (s->key)
        return -EEXIST;
    copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, key, len);
    copy[len] = 0;
    *s = (PolicyStrMapSlot){.key = copy, .len = len, .hash = hash, .value = value};
    map->n_used++;
    return 0;
}

void *policy_strmap_get(const PolicyStrMap *map, const char *key, size_t len)
{
    const PolicyStrMapSlot *s;

    if (!map)
        return NULL;
    s = strmap_find(map->slots, map->n_slots, key, len, strmap_hash(key, len));
    return s->key ? s->value : NULL;
}
