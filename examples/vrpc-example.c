/* SPDX-License-Identifier: MIT */
/*
 * vrpc-example - a small program on libvrpc (vrpc/vrpc.h). Build it against an installed
 * vrpc with:
 *
 *     cc -o vrpc-example vrpc-example.c $(pkg-config --cflags --libs vrpc)
 *
 * and run it in a domain where vrpc-agent runs (or in dom0, next to vrpc-dispatcher):
 *
 *     vrpc-example TARGET SERVICE[+ARG] [TEXT]
 *         one blocking call with vrpc_call_buffer(), TEXT as its stdin; prints the
 *         handler's stdout and "exit=CODE"
 *     vrpc-example --many N TARGET SERVICE[+ARG] [TEXT]
 *         N calls at once on one connection with the streaming API and a poll(2) loop;
 *         prints "N calls, K exit 0, identical outputs: yes|no" and one output
 *
 * Exits 0 when every call could be made (whatever the handlers' codes), 1 otherwise,
 * 2 on a usage error.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vrpc/vrpc.h>

static int one_call(const char *target, const char *service, const char *text)
{
    char *out = NULL;
    size_t len = 0;
    int code = 0;
    int r = vrpc_call_buffer(target, service, text, strlen(text), &out, &len, &code);
    if (r < 0) {
        fprintf(stderr, "vrpc-example: no call made: %s\n", strerror(-r));
        return 1;
    }
    fwrite(out, 1, len, stdout);
    printf("exit=%d\n", code);
    free(out);
    return 0;
}

/* One call of --many: what it has read so far. */
typedef struct Job {
    VrpcCall *call;
    char out[4096];
    size_t len;
    size_t sent;
    int code; /* -1 while running */
} Job;

/* Notify callback: runs from vrpc_client_dispatch() when the call has news. */
static void on_news(VrpcCall *call, void *userdata)
{
    Job *j = userdata;
    ssize_t n;
    while ((n = vrpc_call_read(call, VRPC_STDOUT, j->out + j->len, sizeof j->out - 1 - j->len)) > 0)
        j->len += (size_t)n;
    char discard[512]; /* stderr is not shown */
    while (vrpc_call_read(call, VRPC_STDERR, discard, sizeof discard) > 0)
        ;
    /* finished: exit code known and stdout read to its EOF (n == 0) */
    if (n == 0 && j->code < 0 && vrpc_call_exit_code(call, &j->code) == 0)
        j->out[j->len] = '\0';
}

static int many_calls(int n, const char *target, const char *service, const char *text)
{
    VrpcClient *client;
    int r = vrpc_client_new(&client, NULL); /* $VRPC_SOCKET or the default socket */
    if (r < 0) {
        fprintf(stderr, "vrpc-example: cannot connect: %s\n", strerror(-r));
        return 1;
    }
    Job *jobs = calloc((size_t)n, sizeof *jobs);
    if (!jobs) {
        vrpc_client_free(client);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        jobs[i].code = -1;
        r = vrpc_call_open(client, target, service, &jobs[i].call);
        if (r < 0) {
            fprintf(stderr, "vrpc-example: cannot open call %d: %s\n", i, strerror(-r));
            n = i;
            break;
        }
        vrpc_call_set_notify(jobs[i].call, on_news, &jobs[i]);
    }
    size_t tlen = strlen(text);
    for (int left = n; left > 0;) {
        /* feed stdin where there is room; close it once all of TEXT went */
        for (int i = 0; i < n; i++) {
            Job *j = &jobs[i];
            while (j->sent < tlen) {
                ssize_t w = vrpc_call_write(j->call, text + j->sent, tlen - j->sent);
                if (w <= 0) {
                    if (w != -EAGAIN) /* the handler does not read: stop */
                        j->sent = tlen;
                    break;
                }
                j->sent += (size_t)w;
            }
            if (j->sent == tlen)
                vrpc_call_close_stdin(j->call); /* idempotent */
        }
        /* any event loop works: here poll(2) on the one fd */
        struct pollfd p = {.fd = vrpc_client_fd(client), .events = POLLIN};
        if (poll(&p, 1, vrpc_client_timeout_ms(client)) < 0 && errno != EINTR)
            break;
        if (vrpc_client_dispatch(client) == -ENOTCONN)
            fprintf(stderr, "vrpc-example: the vrpc daemon went away\n");
        left = 0;
        for (int i = 0; i < n; i++)
            left += jobs[i].code < 0 && !vrpc_call_done(jobs[i].call);
    }
    int ok = 0, same = 1;
    for (int i = 0; i < n; i++) {
        int code = 0;
        vrpc_call_exit_code(jobs[i].call, &code);
        ok += code == 0;
        same &= strcmp(jobs[i].out, jobs[0].out) == 0;
        if (code != 0 && vrpc_call_reason(jobs[i].call))
            fprintf(stderr, "vrpc-example: call %d: %s\n", i, vrpc_call_reason(jobs[i].call));
        vrpc_call_free(jobs[i].call);
    }
    printf("%d calls, %d exit 0, identical outputs: %s\n", n, ok, same ? "yes" : "no");
    if (n > 0)
        fputs(jobs[0].out, stdout);
    free(jobs);
    vrpc_client_free(client);
    return 0;
}

int main(int argc, char **argv)
{
    int many = 0;
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "--version") == 0)) {
        if (argv[1][2] == 'h')
            printf("Usage: vrpc-example [--many N] TARGET SERVICE[+ARG] [TEXT]\n"
                   "Calls SERVICE in TARGET with TEXT as its input through libvrpc and prints\n"
                   "its output; --many N makes N calls at once on one connection.\n");
        else
            printf("vrpc-example (vrpc) %s\n", vrpc_version());
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "--many") == 0) {
        many = atoi(argv[2]);
        argv += 2;
        argc -= 2;
        if (many <= 0) {
            fprintf(stderr, "vrpc-example: --many needs a positive count (try --help)\n");
            return 2;
        }
    }
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "vrpc-example: expected TARGET SERVICE[+ARG] [TEXT] (try --help)\n");
        return 2;
    }
    const char *text = argc > 3 ? argv[3] : "";
    return many ? many_calls(many, argv[1], argv[2], text) : one_call(argv[1], argv[2], text);
}
