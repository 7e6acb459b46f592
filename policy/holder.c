/* SPDX-License-Identifier: MIT */
/*
 * The policy holder: owns the current compiled snapshot of one configuration
 * folder and replaces it on reload. Loading happens outside the lock; only
 * the pointer swap and the reference taken by readers are serialized, so a
 * call always evaluates against exactly one complete policy, and a reload
 * never waits for calls (they keep the snapshot they took until they unref
 * it). A folder that fails to load replaces the snapshot with the deny-all
 * policy: the old rules do not outlive an edit that broke them.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vrpc-policy.h"

struct VrpcPolicyHolder {
    pthread_mutex_t lock;
    VrpcPolicy *current;
    char *etc_dir;
};

int vrpc_policy_holder_new(VrpcPolicyHolder **holderp, const char *etc_dir)
{
    VrpcPolicyHolder *h;
    int r;

    if (!holderp || !etc_dir || !*etc_dir)
        return -EINVAL;
    h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->etc_dir = strdup(etc_dir);
    if (!h->etc_dir) {
        free(h);
        return -ENOMEM;
    }
    r = vrpc_policy_load(h->etc_dir, &h->current);
    if (r < 0) {
        free(h->etc_dir);
        free(h);
        return r;
    }
    pthread_mutex_init(&h->lock, NULL);
    *holderp = h;
    return r;
}

VrpcPolicyHolder *vrpc_policy_holder_free(VrpcPolicyHolder *holder)
{
    if (!holder)
        return NULL;
    vrpc_policy_unref(holder->current);
    pthread_mutex_destroy(&holder->lock);
    free(holder->etc_dir);
    free(holder);
    return NULL;
}

VrpcPolicy *vrpc_policy_holder_get(VrpcPolicyHolder *holder)
{
    VrpcPolicy *p;

    pthread_mutex_lock(&holder->lock);
    p = vrpc_policy_ref(holder->current);
    pthread_mutex_unlock(&holder->lock);
    return p;
}

int vrpc_policy_holder_reload(VrpcPolicyHolder *holder)
{
    VrpcPolicy *fresh = NULL, *old;
    int r;

    r = vrpc_policy_load(holder->etc_dir, &fresh);
    if (r < 0)
        return r;
    pthread_mutex_lock(&holder->lock);
    old = holder->current;
    holder->current = fresh;
    pthread_mutex_unlock(&holder->lock);
    vrpc_policy_unref(old);
    return r;
}

const char *vrpc_policy_holder_get_etc_dir(const VrpcPolicyHolder *holder)
{
    return holder ? holder->etc_dir : NULL;
}
