/* SPDX-License-Identifier: MIT */
/*
 * The policy watch: inotify on the configuration folder and on its policy.d/
 * subfolder, exposed as one non-blocking fd and a dispatch call for the
 * daemon's event loop. Only complete files trigger a reload: a file written
 * and closed (IN_CLOSE_WRITE), renamed in (IN_MOVED_TO), removed or renamed
 * away, or policy.d itself appearing or going. Creating a file, writing to it,
 * or changing its attributes (touch) triggers nothing, and while a relevant
 * file has been written to but not yet closed the reload waits for its close:
 * a prefix of a file being written is never enforced. Hidden files, names
 * ending in '~', ".swp" or ".tmp" (editor and installer temporaries) and any
 * name the loader would not read are ignored. Bursts are debounced (one
 * reload WATCH_DEBOUNCE_MS after the last change, at most WATCH_MAX_DELAY_MS
 * after the first).
 *
 * The reload itself (reading and compiling up to the loader's size caps, a
 * few hundred milliseconds at worst) runs on a short-lived worker thread, so
 * that the daemon's loop keeps serving calls with the old snapshot meanwhile;
 * the holder swaps the new snapshot in under its lock. This is the one place
 * the library uses a thread: the alternative, parsing on the caller's loop,
 * would stall every call for the length of a parse. The fd the caller polls
 * is an epoll set of the inotify fd, the debounce timerfd and the eventfd
 * the worker signals on completion.
 */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "vrpc-policy.h"

#define WATCH_MASK                                                                      \
    (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

#define WATCH_DEBOUNCE_MS 100
#define WATCH_MAX_DELAY_MS 1000
/* Files tracked as being written at once; more are not tracked (and may be
 * read half-written): no real installer writes this many files in parallel. */
#define WATCH_WRITING_MAX 64

typedef struct Writing {
    int wd;
    char *name;
} Writing;

struct VrpcPolicyWatch {
    int fd; /* epoll set of the three below */
    int inotify_fd, timer_fd, done_fd;
    int wd_etc;
    int wd_policy; /* -1 while policy.d does not exist */
    VrpcPolicyHolder *holder;
    char *policy_dir;

    bool pending;            /* a change was seen and is not loaded yet */
    int64_t first_change_ms; /* of the pending changes */
    int64_t last_change_ms;
    Writing writing[WATCH_WRITING_MAX]; /* written to and not closed yet */
    size_t n_writing;

    bool running; /* the worker thread is loading */
    pthread_t thread;
    int thread_result;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* (Re)arm the watch on policy.d; its absence is not an error (fail closed
 * happens in the loader), the folder watch will tell when it appears. */
static void watch_arm_policy_dir(VrpcPolicyWatch *w)
{
    if (w->wd_policy < 0)
        w->wd_policy = inotify_add_watch(w->inotify_fd, w->policy_dir, WATCH_MASK);
}

static int epoll_add(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int vrpc_policy_watch_new(VrpcPolicyWatch **watchp, VrpcPolicyHolder *holder)
{
    const char *etc = vrpc_policy_holder_get_etc_dir(holder);
    VrpcPolicyWatch *w;
    int r;

    if (!watchp || !etc)
        return -EINVAL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->fd = w->inotify_fd = w->timer_fd = w->done_fd = -1;
    w->wd_etc = w->wd_policy = -1;
    w->holder = holder;
    if (asprintf(&w->policy_dir, "%s/policy.d", etc) < 0) {
        w->policy_dir = NULL;
        r = -ENOMEM;
        goto fail;
    }
    w->fd = epoll_create1(EPOLL_CLOEXEC);
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    w->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->fd < 0 || w->inotify_fd < 0 || w->timer_fd < 0 || w->done_fd < 0) {
        r = -errno;
        goto fail;
    }
    if ((r = epoll_add(w->fd, w->inotify_fd)) < 0 || (r = epoll_add(w->fd, w->timer_fd)) < 0 ||
        (r = epoll_add(w->fd, w->done_fd)) < 0)
        goto fail;
    w->wd_etc = inotify_add_watch(w->inotify_fd, etc, WATCH_MASK);
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

static void writing_clear(VrpcPolicyWatch *w, int wd)
{
    for (size_t i = 0; i < w->n_writing;) {
        if (wd < 0 || w->writing[i].wd == wd) {
            free(w->writing[i].name);
            w->writing[i] = w->writing[--w->n_writing];
        } else {
            i++;
        }
    }
}

VrpcPolicyWatch *vrpc_policy_watch_free(VrpcPolicyWatch *watch)
{
    if (!watch)
        return NULL;
    if (watch->running)
        pthread_join(watch->thread, NULL); /* shutdown only: wait for the load to end */
    writing_clear(watch, -1);
    if (watch->fd >= 0)
        close(watch->fd);
    if (watch->inotify_fd >= 0)
        close(watch->inotify_fd);
    if (watch->timer_fd >= 0)
        close(watch->timer_fd);
    if (watch->done_fd >= 0)
        close(watch->done_fd);
    free(watch->policy_dir);
    free(watch);
    return NULL;
}

int vrpc_policy_watch_get_fd(const VrpcPolicyWatch *watch)
{
    return watch ? watch->fd : -EINVAL;
}

bool vrpc_policy_watch_get_pending(const VrpcPolicyWatch *watch, const char **writingp)
{
    if (writingp)
        *writingp = watch && watch->n_writing > 0 ? watch->writing[0].name : NULL;
    return watch && (watch->pending || watch->running);
}

/* Names that can never change the policy: temporaries of editors and
 * installers, and anything the loader does not read. */
static bool name_is_temporary(const char *name)
{
    size_t len = strlen(name);

    return name[0] == '.' || (len > 0 && name[len - 1] == '~') ||
           (len >= 4 && strcmp(name + len - 4, ".swp") == 0) ||
           (len >= 4 && strcmp(name + len - 4, ".tmp") == 0);
}

static bool name_is_policy_file(const char *name)
{
    size_t len = strlen(name);

    return !name_is_temporary(name) && len > 5 && strcmp(name + len - 5, ".yaml") == 0;
}

static void writing_forget(VrpcPolicyWatch *w, int wd, const char *name)
{
    for (size_t i = 0; i < w->n_writing; i++) {
        if (w->writing[i].wd == wd && strcmp(w->writing[i].name, name) == 0) {
            free(w->writing[i].name);
            w->writing[i] = w->writing[--w->n_writing];
            return;
        }
    }
}

static void writing_note(VrpcPolicyWatch *w, int wd, const char *name)
{
    char *copy;

    for (size_t i = 0; i < w->n_writing; i++)
        if (w->writing[i].wd == wd && strcmp(w->writing[i].name, name) == 0)
            return;
    if (w->n_writing == WATCH_WRITING_MAX)
        return;
    copy = strdup(name);
    if (!copy)
        return; /* untracked: at worst a half-written file is read, and then re-read */
    w->writing[w->n_writing++] = (Writing){.wd = wd, .name = copy};
}

/* One event on a file that the loader reads (policy file or domains.yaml):
 * true when it completes a change. */
static bool file_event(VrpcPolicyWatch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_MODIFY) {
        writing_note(w, ev->wd, ev->name);
        return false;
    }
    if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM)) {
        writing_forget(w, ev->wd, ev->name);
        return true;
    }
    return false; /* IN_CREATE: the file is not written yet */
}

/* Classify one event; *rearmp is set when policy.d may now be another folder. */
static bool event_is_relevant(VrpcPolicyWatch *w, const struct inotify_event *ev, bool *rearmp)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        *rearmp = true;
        writing_clear(w, -1); /* unknown now */
        return true;          /* events were lost: reload to be safe */
    }
    if (ev->wd == w->wd_policy) {
        if (ev->mask & IN_IGNORED)
            w->wd_policy = -1;
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
            writing_clear(w, ev->wd);
            *rearmp = true;
            return true;
        }
        return ev->len > 0 && name_is_policy_file(ev->name) && file_event(w, ev);
    }
    if (ev->wd == w->wd_etc) {
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
            return true;
        if (ev->len > 0 && strcmp(ev->name, "policy.d") == 0) {
            /* A folder: created, removed or renamed, it is complete. */
            if (ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
                *rearmp = true;
                return true;
            }
            return false;
        }
        return ev->len > 0 && strcmp(ev->name, "domains.yaml") == 0 && file_event(w, ev);
    }
    return false;
}

static void *reload_main(void *userdata)
{
    VrpcPolicyWatch *w = userdata;
    uint64_t one = 1;

    w->thread_result = vrpc_policy_holder_reload(w->holder);
    /* Cannot fail short of a counter overflow; the loop would then still see
     * the fd readable from the earlier completion. */
    if (write(w->done_fd, &one, sizeof(one)) < 0)
        return NULL;
    return NULL;
}

static void drain_counter(int fd, bool *firedp)
{
    uint64_t count;

    while (read(fd, &count, sizeof(count)) == (ssize_t)sizeof(count))
        *firedp = true;
}

static int set_timer(VrpcPolicyWatch *w, int64_t delay_ms)
{
    struct itimerspec its = {0};

    if (delay_ms >= 0) {
        /* 0 would disarm: fire after at least 1 ms */
        if (delay_ms == 0)
            delay_ms = 1;
        its.it_value.tv_sec = delay_ms / 1000;
        its.it_value.tv_nsec = (delay_ms % 1000) * 1000000;
    }
    return timerfd_settime(w->timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
}

/* Start the worker if a change is due, else arm the timer for when it is.
 * Returns 0, 1 when it had to load on this thread, or -errno. */
static int schedule(VrpcPolicyWatch *w)
{
    int64_t now, due;

    if (!w->pending || w->running || w->n_writing > 0)
        return set_timer(w, -1); /* nothing to do, or a close / the worker will wake us */
    now = now_ms();
    due = w->last_change_ms + WATCH_DEBOUNCE_MS;
    if (due > w->first_change_ms + WATCH_MAX_DELAY_MS)
        due = w->first_change_ms + WATCH_MAX_DELAY_MS;
    if (now < due)
        return set_timer(w, due - now);
    w->pending = false;
    if (pthread_create(&w->thread, NULL, reload_main, w) == 0) {
        w->running = true;
        return set_timer(w, -1);
    }
    /* No thread (out of resources): load here rather than not at all. */
    w->thread_result = vrpc_policy_holder_reload(w->holder);
    return 1;
}

int vrpc_policy_watch_dispatch(VrpcPolicyWatch *watch)
{
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    bool rearm = false, fired = false, done = false;
    int result = 0, r;

    if (!watch)
        return -EINVAL;
    drain_counter(watch->timer_fd, &fired);
    drain_counter(watch->done_fd, &done);
    if (done && watch->running) {
        pthread_join(watch->thread, NULL);
        watch->running = false;
        result = watch->thread_result < 0 ? watch->thread_result : 1;
    }
    for (;;) {
        ssize_t n = read(watch->inotify_fd, buf, sizeof(buf));

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
            if (event_is_relevant(watch, ev, &rearm)) {
                watch->last_change_ms = now_ms();
                if (!watch->pending)
                    watch->first_change_ms = watch->last_change_ms;
                watch->pending = true;
            }
            off += step;
        }
    }
    if (rearm && watch->wd_policy >= 0) {
        inotify_rm_watch(watch->inotify_fd, watch->wd_policy);
        writing_clear(watch, watch->wd_policy);
        watch->wd_policy = -1;
    }
    watch_arm_policy_dir(watch);
    r = schedule(watch);
    if (r == 1)
        return watch->thread_result < 0 ? watch->thread_result : 1;
    return r < 0 && result == 0 ? r : result;
}
