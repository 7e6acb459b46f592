/* SPDX-License-Identifier: MIT */
/*
 * The policy watch: inotify on the configuration folder and on its policy.d/
 * subfolder, exposed as one non-blocking fd and a dispatch call for the
 * daemon's event loop (the library never blocks or owns a loop). Any change
 * that can affect the policy (a file written and closed, created, removed,
 * renamed, or its permissions changed; policy.d itself appearing or going)
 * triggers one reload per dispatch, however many events were queued. Writers
 * should install files by rename() so that a half-written file is never seen;
 * IN_MODIFY is ignored for the same reason.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "vrpc-policy.h"

#define WATCH_DIR_MASK                                                                            \
    (IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |           \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct VrpcPolicyWatch {
    int fd;
    int wd_etc;
    int wd_policy; /* -1 while policy.d does not exist */
    VrpcPolicyHolder *holder;
    char *policy_dir;
};

/* (Re)arm the watch on policy.d; its absence is not an error (fail closed
 * happens in the loader), the folder watch will tell when it appears. */
static void watch_arm_policy_dir(VrpcPolicyWatch *w) {
    if (w->wd_policy < 0)
        w->wd_policy = inotify_add_watch(w->fd, w->policy_dir, WATCH_DIR_MASK);
}

int vrpc_policy_watch_new(VrpcPolicyWatch **watchp, VrpcPolicyHolder *holder) {
    const char *etc = vrpc_policy_holder_get_etc_dir(holder);
    VrpcPolicyWatch *w;
    int r;

    if (!watchp || !etc)
        return -EINVAL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->wd_etc = w->wd_policy = -1;
    w->holder = holder;
    if (asprintf(&w->policy_dir, "%s/policy.d", etc) < 0) {
        w->policy_dir = NULL;
        r = -ENOMEM;
        goto fail;
    }
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        r = -errno;
        goto fail;
    }
    w->wd_etc = inotify_add_watch(w->fd, etc, WATCH_DIR_MASK);
    if (w->wd_etc < 0) {
        r = -errno;
        goto fail;
    }
    watch_arm_policy_dir(w);
    *watchp = w;
    return 0;
fail:
    vrpc_policy_watch_free(w);
    return r;
}

VrpcPolicyWatch *vrpc_policy_watch_free(VrpcPolicyWatch *watch) {
    if (!watch)
        return NULL;
    if (watch->fd >= 0)
        close(watch->fd);
    free(watch->policy_dir);
    free(watch);
    return NULL;
}

int vrpc_policy_watch_get_fd(const VrpcPolicyWatch *watch) {
    return watch ? watch->fd : -EINVAL;
}

/* Classify one event; *rearmp is set when policy.d may now be another folder. */
static bool event_is_relevant(VrpcPolicyWatch *w, const struct inotify_event *ev, bool *rearmp) {
    if (ev->mask & IN_Q_OVERFLOW) {
        *rearmp = true;
        return true; /* events were lost: reload to be safe */
    }
    if (ev->wd == w->wd_policy) {
        if (ev->mask & IN_IGNORED)
            w->wd_policy = -1;
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
            *rearmp = true;
            return true;
        }
        /* Hidden files (editor swap files, rename temporaries) cannot change
         * the policy: the loader ignores them. */
        return ev->len > 0 && ev->name[0] != '.';
    }
    if (ev->wd == w->wd_etc) {
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
            return true;
        if (ev->len > 0 && strcmp(ev->name, "policy.d") == 0) {
            *rearmp = true;
            return true;
        }
        return ev->len > 0 && strcmp(ev->name, "domains.yaml") == 0;
    }
    return false;
}

int vrpc_policy_watch_dispatch(VrpcPolicyWatch *watch) {
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    bool relevant = false, rearm = false;
    int r;

    if (!watch)
        return -EINVAL;
    for (;;) {
        ssize_t n = read(watch->fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        /* The kernel only hands out whole events; still, never step past n. */
        for (size_t off = 0; (size_t)n - off >= sizeof(struct inotify_event);) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            size_t step = sizeof(*ev) + ev->len;

            if (step > (size_t)n - off)
                break;
            if (event_is_relevant(watch, ev, &rearm))
                relevant = true;
            off += step;
        }
    }
    if (rearm && watch->wd_policy >= 0) {
        inotify_rm_watch(watch->fd, watch->wd_policy);
        watch->wd_policy = -1;
    }
    watch_arm_policy_dir(watch);
    if (!relevant)
        return 0;
    r = vrpc_policy_holder_reload(watch->holder);
    return r < 0 ? r : 1;
}
