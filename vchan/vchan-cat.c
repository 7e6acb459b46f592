/* SPDX-License-Identifier: MIT */
/*
 * vchan-cat - connect stdin/stdout to a vchan (the job of Xen's vchan-node2 and MirageOS's
 * node_cli), or with --uppercase run the capitalising echo server of MirageOS's vchan demo.
 * The vchan protocol has no half-close, so after stdin reaches EOF the tool keeps copying
 * the vchan to stdout until the peer closes or nothing has arrived for --linger ms (default
 * 1000; 0 closes at once, -1 waits for the peer's close), then closes. Data it wrote stays
 * readable by the peer after the close. Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/escape.h"
#include "parse.h"
#include "vchan.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

#define BUF_SIZE 65536
#define LINGER_DEFAULT_MS 1000

typedef struct Args {
    bool server;
    int domid;
    const char *path;
    size_t read_min;
    size_t write_min;
    bool read_min_set, write_min_set;
    bool uppercase;
    bool persist;
    int wait_ms;
    bool wait_set;
    int linger_ms;
    bool verbose;
} Args;

static volatile sig_atomic_t stop_requested;
static bool verbose;
static char last_error[512];

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Library log sink: everything with -v; otherwise remember the last error, which becomes the
 * reason in our one failure line. */
static void log_sink(int level, const char *msg, void *userdata)
{
    static const char *const names[] = {"emerg",   "alert",  "crit", "error",
                                        "warning", "notice", "info", "debug"};
    const char *detail = msg;

    (void)userdata;
    if (verbose)
        fprintf(stderr, "vchan-cat: %s: %s\n", names[level & 7], msg);
    if (level <= LOG_ERR) {
        /* "vchan domN PATH: detail" -> "detail": domain and path are in our own line */
        if (strncmp(msg, "vchan ", 6) == 0) {
            const char *sep = strstr(msg, ": ");

            if (sep)
                detail = sep + 2;
        }
        snprintf(last_error, sizeof(last_error), "%s", detail);
    }
}

static const char *reason(int rc)
{
    return last_error[0] ? last_error : strerror(rc < 0 ? -rc : rc);
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vchan-cat server|client DOMID PATH [OPTIONS]\n"
            "Connect stdin/stdout to a vchan to or from domain DOMID at XenStore PATH.\n"
            "\n"
            "  --read-min N    server: minimum read ring size in bytes (K/M suffix, <= 1M)\n"
            "  --write-min N   server: minimum write ring size in bytes\n"
            "  --uppercase     server: echo back whatever is read, uppercased\n"
            "  --persist       with --uppercase: serve clients one after another\n"
            "  --wait MS       client: wait up to MS ms for the server (-1: forever; default 0)\n"
            "  --linger MS     after stdin EOF, keep copying to stdout until the peer closes or\n"
            "                  MS ms pass without data (default %d; 0: close at once;\n"
            "                  -1: until the peer closes)\n"
            "  -v, --verbose   log library events to stderr\n"
            "  -h, --help      show this help\n"
            "  -V, --version   show the version\n"
            "\n"
            "Exit status: 0 ok, 1 failure, 2 bad usage.\n",
            LINGER_DEFAULT_MS);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("vchan-cat: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (try --help)\n", stderr);
    return 2;
}

/* Decimal with an optional K or M (binary) suffix, at most 1 MiB. */
static int parse_size(const char *s, size_t *sizep)
{
    size_t len = strlen(s), mult = 1;
    uint32_t val;

    if (len > 0 && (s[len - 1] == 'K' || s[len - 1] == 'k')) {
        mult = 1024;
        len--;
    } else if (len > 0 && (s[len - 1] == 'M' || s[len - 1] == 'm')) {
        mult = 1024 * 1024;
        len--;
    }
    if (vchan_parse_u32(s, len, 0, VCHAN_RING_SIZE_MAX, &val) < 0)
        return -EINVAL;
    if ((size_t)val * mult > VCHAN_RING_SIZE_MAX)
        return -ERANGE;
    *sizep = (size_t)val * mult;
    return 0;
}

/* Milliseconds: -1 or 0..INT_MAX. */
static int parse_ms(const char *s, int *msp)
{
    uint32_t val;

    if (strcmp(s, "-1") == 0) {
        *msp = -1;
        return 0;
    }
    if (vchan_parse_u32(s, strlen(s), 0, INT_MAX, &val) < 0)
        return -EINVAL;
    *msp = (int)val;
    return 0;
}

static int parse_args(int argc, char **argv, Args *a)
{
    enum { OPT_READ_MIN = 256, OPT_WRITE_MIN, OPT_UPPER, OPT_PERSIST, OPT_WAIT, OPT_LINGER };
    static const struct option opts[] = {
        {"read-min", required_argument, NULL, OPT_READ_MIN},
        {"write-min", required_argument, NULL, OPT_WRITE_MIN},
        {"uppercase", no_argument, NULL, OPT_UPPER},
        {"persist", no_argument, NULL, OPT_PERSIST},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"linger", required_argument, NULL, OPT_LINGER},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {},
    };
    uint32_t domid;
    int opt;

    *a = (Args){.linger_ms = LINGER_DEFAULT_MS};
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "vhV", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_READ_MIN:
        case OPT_WRITE_MIN: {
            size_t *dst = opt == OPT_READ_MIN ? &a->read_min : &a->write_min;
            const char *name = opt == OPT_READ_MIN ? "--read-min" : "--write-min";
            int rc = parse_size(optarg, dst);

            if (rc == -ERANGE)
                return usage_error("%s: '%s' is over the 1M maximum", name, VRPC_ESC(optarg));
            if (rc < 0)
                return usage_error("%s: '%s' is not a size (bytes, K or M suffix)", name,
                                   VRPC_ESC(optarg));
            *(opt == OPT_READ_MIN ? &a->read_min_set : &a->write_min_set) = true;
            break;
        }
        case OPT_UPPER:
            a->uppercase = true;
            break;
        case OPT_PERSIST:
            a->persist = true;
            break;
        case OPT_WAIT:
            if (parse_ms(optarg, &a->wait_ms) < 0)
                return usage_error("--wait: '%s' is not a time in ms (or -1)", VRPC_ESC(optarg));
            a->wait_set = true;
            break;
        case OPT_LINGER:
            if (parse_ms(optarg, &a->linger_ms) < 0)
                return usage_error("--linger: '%s' is not a time in ms (or -1)", VRPC_ESC(optarg));
            break;
        case 'v':
            a->verbose = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("vchan-cat (vrpc) %s\n", VRPC_VERSION);
            exit(0);
        default:
            return usage_error("unknown option or missing value: '%s'", VRPC_ESC(argv[optind - 1]));
        }
    }

    if (argc - optind != 3)
        return usage_error("expected 3 arguments: server|client DOMID PATH, got %d", argc - optind);
    if (strcmp(argv[optind], "server") == 0)
        a->server = true;
    else if (strcmp(argv[optind], "client") != 0)
        return usage_error("role must be 'server' or 'client', not '%s'", VRPC_ESC(argv[optind]));
    if (vchan_parse_domid(argv[optind + 1], strlen(argv[optind + 1]), &domid) < 0)
        return usage_error("DOMID must be a domain id 0..%d, not '%s'",
                           VCHAN_DOMID_FIRST_RESERVED - 1, VRPC_ESC(argv[optind + 1]));
    a->domid = (int)domid;
    a->path = argv[optind + 2];
    if (!*a->path)
        return usage_error("PATH must not be empty");

    if (!a->server && (a->read_min_set || a->write_min_set))
        return usage_error("--read-min/--write-min apply to the server only");
    if (!a->server && a->uppercase)
        return usage_error("--uppercase applies to the server only");
    if (a->persist && !a->uppercase)
        return usage_error("--persist needs --uppercase");
    if (a->server && a->wait_set)
        return usage_error("--wait applies to the client only");
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fail_io(const Args *a, const char *what, int rc)
{
    fprintf(stderr, "vchan-cat: domain %d at %s: %s: %s\n", a->domid, VRPC_ESC(a->path), what,
            strerror(-rc));
}

/* Copy stdin -> vchan and vchan -> stdout until the peer closes (or linger expires). */
static int run_cat(const Args *a, Vchan *c)
{
    static uint8_t inbuf[BUF_SIZE], outbuf[BUF_SIZE];
    size_t in_len = 0, in_off = 0;
    bool stdin_eof = false;
    uint64_t last_data = now_ms();

    for (;;) {
        struct pollfd pfd[2];
        int nfds = 0, timeout = -1, rc;
        ssize_t n;

        if (stop_requested) {
            fprintf(stderr, "vchan-cat: domain %d at %s: interrupted\n", a->domid,
                    VRPC_ESC(a->path));
            return 1;
        }

        /* vchan -> stdout, until it would block */
        for (;;) {
            n = vchan_read(c, outbuf, sizeof(outbuf));
            if (n == -EAGAIN)
                break;
            if (n == 0)
                return 0; /* peer closed and everything it sent is out */
            if (n < 0) {
                fail_io(a, "read", (int)n);
                return 1;
            }
            rc = write_all(STDOUT_FILENO, outbuf, (size_t)n);
            if (rc < 0) {
                fprintf(stderr, "vchan-cat: stdout: %s\n", strerror(-rc));
                return 1;
            }
            last_data = now_ms();
        }

        /* pending stdin data -> vchan */
        if (in_off < in_len) {
            n = vchan_write(c, inbuf + in_off, in_len - in_off);
            if (n > 0)
                in_off += (size_t)n;
            else if (n == -EPIPE)
                in_off = in_len; /* peer gone: the read side reports EOF next */
            else if (n != -EAGAIN) {
                fail_io(a, "write", (int)n);
                return 1;
            }
            if (in_off == in_len) {
                in_off = in_len = 0;
            } else {
                /* The ring took part of it (or nothing): have the reader's next read wake
                 * us (a partial write arms nothing), unless there is room already. */
                n = vchan_buffer_space_notify(c, 1);
                if (n > 0)
                    continue;
                if (n < 0) { /* -EPROTO: the peer broke the ring */
                    fail_io(a, "write", (int)n);
                    return 1;
                }
            }
        }

        if (stdin_eof && in_len == 0) {
            VchanState st = vchan_is_open(c);

            /* a server waits for its client before the linger clock runs */
            if (st == VCHAN_STATE_WAITING) {
                last_data = now_ms();
            } else if (a->linger_ms >= 0) {
                uint64_t idle = now_ms() - last_data;

                if (idle >= (uint64_t)a->linger_ms)
                    return 0;
                timeout = (int)((uint64_t)a->linger_ms - idle);
            }
        }

        pfd[nfds++] = (struct pollfd){.fd = vchan_fd(c), .events = POLLIN};
        if (!stdin_eof && in_len == 0)
            pfd[nfds++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        rc = poll(pfd, (nfds_t)nfds, timeout);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fail_io(a, "poll", -errno);
            return 1;
        }
        if (pfd[0].revents) {
            rc = vchan_dispatch(c);
            if (rc < 0) {
                fail_io(a, "event channel", rc);
                return 1;
            }
        }
        if (nfds > 1 && pfd[1].revents) {
            n = read(STDIN_FILENO, inbuf, sizeof(inbuf));
            if (n < 0 && errno != EINTR && errno != EAGAIN) {
                fprintf(stderr, "vchan-cat: stdin: %s\n", strerror(errno));
                return 1;
            }
            if (n == 0)
                stdin_eof = true;
            else if (n > 0)
                in_len = (size_t)n;
        }
    }
}

/* Echo one client's bytes back uppercased until it leaves. 0: client gone, 1: failure. */
static int serve_uppercase(const Args *a, Vchan *c)
{
    static uint8_t buf[BUF_SIZE];

    for (;;) {
        struct pollfd pfd = {.fd = vchan_fd(c), .events = POLLIN};
        ssize_t n;
        int rc;

        if (stop_requested)
            return 0;
        n = vchan_read(c, buf, sizeof(buf));
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                buf[i] = (uint8_t)toupper(buf[i]);
            rc = vchan_write_full(c, buf, (size_t)n, NULL, -1);
            if (rc == -EPIPE || rc == -EINTR)
                continue; /* client gone: the read reports EOF; or stop requested */
            if (rc == -EPROTO) {
                fprintf(stderr, "vchan-cat: domain %d at %s: client violated the protocol\n",
                        a->domid, a->path);
                return 0; /* that connection only */
            }
            if (rc < 0) {
                fail_io(a, "write", rc);
                return 1;
            }
            continue;
        }
        if (n == 0)
            return 0;
        if (n == -EPROTO) {
            fprintf(stderr, "vchan-cat: domain %d at %s: client violated the protocol\n", a->domid,
                    a->path);
            return 0;
        }
        if (n != -EAGAIN) {
            fail_io(a, "read", (int)n);
            return 1;
        }
        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail_io(a, "poll", -errno);
            return 1;
        }
        rc = vchan_dispatch(c);
        if (rc < 0) {
            fail_io(a, "event channel", rc);
            return 1;
        }
    }
}

static int open_channel(const Args *a, Vchan **cp)
{
    int rc;

    last_error[0] = '\0';
    if (a->server)
        rc = vchan_server_new(cp, a->domid, a->path, a->read_min, a->write_min);
    else
        rc = vchan_client_new_wait(cp, a->domid, a->path, a->wait_ms);
    if (rc < 0)
        fprintf(stderr, "vchan-cat: cannot %s domain %d at %s: %s\n",
                a->server ? "serve" : "connect to", a->domid, a->path, reason(rc));
    return rc;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns */
    Vchan *c = NULL;
    Args a;
    int rc;

    rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    verbose = a.verbose;
    vchan_set_log(log_sink, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (!a.uppercase) {
        if (open_channel(&a, &c) < 0)
            return 1;
        rc = run_cat(&a, c);
        vchan_free(c);
        return rc;
    }

    do {
        if (open_channel(&a, &c) < 0)
            return 1;
        rc = serve_uppercase(&a, c);
        c = vchan_free(c);
    } while (a.persist && rc == 0 && !stop_requested);
    return rc;
}
