/* SPDX-License-Identifier: MIT */
/*
 * `vrpc-bench policy`: how long one policy decision takes as the rule count
 * grows. For each size it generates a policy in memory (exact service names,
 * about eight rules per service, sources and targets spread over names,
 * @tag:, @type:, @anyvm and @adminvm, a few prefix rules and a final "*"
 * deny), loads it through the public loader, then times vrpc_policy_evaluate()
 * call by call with clock_gettime() over a fixed set of random calls. Each
 * round reports its p50 and p99; the table shows the median over rounds.
 * This is a benchmark, not a test: it asserts nothing about time.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench-policy.h"
#include "bench-util.h"
#include "vrpc-policy.h"

#ifndef VRPC_VERSION
#define VRPC_VERSION "0"
#endif

#define BENCH_DOMAINS 64
#define BENCH_TAGS 8
#define BENCH_QUERIES 4096
#define BENCH_MAX_SIZES 8

typedef struct BenchCall {
    char source[16];
    char target[16];
    char service[32];
    char argument[8];
} BenchCall;

/* xorshift64*: reproducible across runs, good enough to spread calls. */
static uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t n_services(size_t n_rules)
{
    return n_rules / 8 > 0 ? n_rules / 8 : 1;
}

static char *generate_domains(size_t *sizep)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, sizep);

    if (!f)
        return NULL;
    fprintf(f, "domains:\n");
    for (int i = 0; i < BENCH_DOMAINS; i++)
        fprintf(f, "  vm%d: {tags: [t%d], type: %s}\n", i, i % BENCH_TAGS,
                i % 4 == 0 ? "template" : "app");
    return fclose(f) == 0 ? text : (free(text), NULL);
}

static char *generate_rules(size_t n_rules, size_t *sizep)
{
    static const char *const actions[] = {"allow", "deny", "allow", "ask"};
    size_t services = n_services(n_rules);
    size_t wildcards = n_rules / 10 < 10 ? n_rules / 10 : 10;
    char *text = NULL;
    FILE *f = open_memstream(&text, sizep);

    if (!f)
        return NULL;
    fprintf(f, "rules:\n");
    for (size_t i = 0; i + wildcards < n_rules; i++) {
        fprintf(f, "  - service: bench.Svc%zu\n", i % services);
        if (i % 5 == 0)
            fprintf(f, "    argument: arg%zu\n", i % 3);
        switch (i % 4) {
        case 0:
            fprintf(f, "    source: vm%zu\n", (i / 4) % BENCH_DOMAINS);
            break;
        case 1:
            fprintf(f, "    source: \"@tag:t%zu\"\n", i % BENCH_TAGS);
            break;
        case 2:
            fprintf(f, "    source: \"@anyvm\"\n");
            break;
        default:
            fprintf(f, "    source: \"@type:app\"\n");
            break;
        }
        switch (i % 3) {
        case 0:
            fprintf(f, "    target: \"@adminvm\"\n");
            break;
        case 1:
            fprintf(f, "    target: vm%zu\n", (i * 7) % BENCH_DOMAINS);
            break;
        default:
            fprintf(f, "    target: \"@tag:t%zu\"\n", (i + 3) % BENCH_TAGS);
            break;
        }
        fprintf(f, "    action: %s\n", actions[i % 4]);
    }
    for (size_t i = 0; i < wildcards; i++) {
        if (i + 1 == wildcards)
            fprintf(f, "  - {service: \"*\", source: \"*\", target: \"*\", action: deny}\n");
        else
            fprintf(f,
                    "  - {service: \"bench.Svc%zu*\", source: \"@anyvm\", target: "
                    "\"@adminvm\", action: allow}\n",
                    i);
    }
    return fclose(f) == 0 ? text : (free(text), NULL);
}

static void generate_calls(BenchCall *calls, size_t n_rules)
{
    static const char *const args[] = {"", "arg0", "arg1", "argX"};
    uint64_t state = 0x9E3779B97F4A7C15ULL ^ n_rules;
    size_t services = n_services(n_rules);

    for (size_t i = 0; i < BENCH_QUERIES; i++) {
        BenchCall *c = &calls[i];
        uint64_t r = bench_rand(&state);

        if (r % 10 == 0)
            snprintf(c->source, sizeof(c->source), "dom0");
        else
            snprintf(c->source, sizeof(c->source), "vm%u", (unsigned)(r >> 8) % BENCH_DOMAINS);
        r = bench_rand(&state);
        if (r % 20 == 0)
            snprintf(c->target, sizeof(c->target), "@default");
        else if (r % 3 == 0)
            snprintf(c->target, sizeof(c->target), "dom0");
        else
            snprintf(c->target, sizeof(c->target), "vm%u", (unsigned)(r >> 8) % BENCH_DOMAINS);
        r = bench_rand(&state);
        snprintf(c->service, sizeof(c->service), "bench.Svc%u", (unsigned)(r % services));
        snprintf(c->argument, sizeof(c->argument), "%s", args[(r >> 32) % 4]);
    }
}

typedef struct BenchResult {
    double load_ms;
    double p50_ns, p99_ns;
    double share[3]; /* deny, allow, ask */
} BenchResult;

static int bench_one(size_t n_rules, size_t n_calls, unsigned rounds, BenchResult *res)
{
    VrpcPolicyText file = {.name = "bench.yaml"}, domains = {.name = "domains.yaml"};
    char *rules_text = NULL, *domains_text = NULL;
    BenchCall *calls = NULL;
    uint64_t *samples = NULL;
    double p50[64], p99[64];
    size_t counts[3] = {0};
    VrpcPolicy *policy = NULL;
    uint64_t t0;
    int r = -ENOMEM;

    rules_text = generate_rules(n_rules, &file.size);
    domains_text = generate_domains(&domains.size);
    calls = calloc(BENCH_QUERIES, sizeof(*calls));
    samples = calloc(n_calls, sizeof(*samples));
    if (!rules_text || !domains_text || !calls || !samples)
        goto out;
    file.data = rules_text;
    domains.data = domains_text;

    t0 = bench_now_ns();
    r = vrpc_policy_load_texts(&file, 1, &domains, &policy);
    res->load_ms = (double)(bench_now_ns() - t0) / 1e6;
    if (r != 0) {
        fprintf(stderr, "vrpc-bench policy: generated policy is invalid: %s\n",
                r > 0 ? vrpc_policy_get_error(policy, 0) : strerror(-r));
        r = -EINVAL;
        goto out;
    }
    generate_calls(calls, n_rules);

    for (unsigned round = 0; round < rounds; round++) {
        for (size_t i = 0; i < n_calls; i++) {
            const BenchCall *c = &calls[i % BENCH_QUERIES];
            VrpcPolicyDecision d;
            uint64_t start = bench_now_ns();

            vrpc_policy_evaluate(policy,
                                 &(VrpcPolicyRequest){
                                     .source = c->source,
                                     .untrusted_target = c->target,
                                     .untrusted_service = c->service,
                                     .untrusted_argument = c->argument,
                                 },
                                 &d);
            samples[i] = bench_now_ns() - start;
            if (round == 0)
                counts[d.action]++;
        }
        qsort(samples, n_calls, sizeof(*samples), bench_cmp_u64);
        p50[round] = (double)samples[n_calls / 2];
        p99[round] = (double)samples[(n_calls * 99) / 100];
    }
    qsort(p50, rounds, sizeof(double), bench_cmp_double);
    qsort(p99, rounds, sizeof(double), bench_cmp_double);
    res->p50_ns = p50[rounds / 2];
    res->p99_ns = p99[rounds / 2];
    for (int i = 0; i < 3; i++)
        res->share[i] = 100.0 * (double)counts[i] / (double)n_calls;
    r = 0;
out:
    vrpc_policy_unref(policy);
    free(samples);
    free(calls);
    free(domains_text);
    free(rules_text);
    return r;
}

/* ---- --reload: what reloading a policy at the loader's caps costs a daemon ---- */

#define RELOAD_FILES 4
#define RELOAD_FILE_BYTES \
    (1024 * 1024 - 4096) /* under the 1 MiB cap, 4 of them + domains
                                                  under the 4 MiB total */

static int write_text(const char *dir, const char *name, const char *text, size_t size)
{
    char tmp[600], path[600];
    int fd;
    bool ok;

    snprintf(tmp, sizeof(tmp), "%s/.bench.tmp", dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    ok = write(fd, text, size) == (ssize_t)size;
    if (close(fd) < 0 || !ok)
        return -EIO;
    return rename(tmp, path) < 0 ? -errno : 0;
}

static void remove_tree(const char *dir)
{
    char path[600];

    for (int i = 0; i < RELOAD_FILES; i++) {
        snprintf(path, sizeof(path), "%s/policy.d/%d0.yaml", dir, i + 1);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/policy.d", dir);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/domains.yaml", dir);
    unlink(path);
    rmdir(dir);
}

/* One loop tick as the dispatcher has it: wait for the watch (1 ms at most),
 * then decide one call against the current snapshot. Returns dispatch's result. */
static int reload_tick(VrpcPolicyHolder *holder, VrpcPolicyWatch *watch)
{
    struct pollfd p = {.fd = vrpc_policy_watch_get_fd(watch), .events = POLLIN};
    VrpcPolicy *policy;
    VrpcPolicyDecision d;
    int r = 0;

    if (poll(&p, 1, 1) == 1)
        r = vrpc_policy_watch_dispatch(watch);
    policy = vrpc_policy_holder_get(holder);
    vrpc_policy_evaluate(policy,
                         &(VrpcPolicyRequest){.source = "vm1",
                                              .untrusted_target = "dom0",
                                              .untrusted_service = "bench.Svc1"},
                         &d);
    vrpc_policy_unref(policy);
    return r;
}

static int bench_reload(unsigned rounds)
{
    const char *tmp = getenv("TMPDIR");
    char dir[512], sub[600], name[32];
    char *rules = NULL, *domains = NULL, *edit;
    size_t rules_size = 0, domains_size = 0, total;
    VrpcPolicyHolder *holder = NULL;
    VrpcPolicyWatch *watch = NULL;
    VrpcPolicy *policy = NULL;
    uint64_t t0;
    double sync_ms;
    int r = -ENOMEM, undo;

    if ((size_t)snprintf(dir, sizeof(dir), "%s/vrpc-bench-policy.XXXXXX",
                         tmp && *tmp ? tmp : "/tmp") >= sizeof(dir))
        return -ENAMETOOLONG;
    if (!mkdtemp(dir))
        return -errno;
    /* a run killed mid-reload (^C) leaves no folder behind */
    undo = bench_undo_add((const char *const[]){"/bin/rm", "-rf", dir, NULL});
    snprintf(sub, sizeof(sub), "%s/policy.d", dir);
    rules = generate_rules(20000, &rules_size);
    domains = generate_domains(&domains_size);
    if (!rules || !domains || rules_size <= RELOAD_FILE_BYTES || mkdir(sub, 0755) < 0)
        goto out;
    /* cut before the first rule that does not fit */
    rules_size = 0;
    for (char *at = rules; (at = memmem(at, (size_t)(rules + RELOAD_FILE_BYTES - at), "\n  - ", 5));
         at++)
        rules_size = (size_t)(at - rules) + 1;
    edit = memmem(rules, rules_size, "Svc0", 4);
    if (rules_size == 0 || !edit)
        goto out;
    total = RELOAD_FILES * rules_size + domains_size;
    for (int i = 0; i < RELOAD_FILES; i++) {
        snprintf(name, sizeof(name), "%d0.yaml", i + 1);
        if ((r = write_text(sub, name, rules, rules_size)) < 0)
            goto out;
    }
    if ((r = write_text(dir, "domains.yaml", domains, domains_size)) < 0)
        goto out;

    t0 = bench_now_ns();
    r = vrpc_policy_load(dir, &policy);
    sync_ms = (double)(bench_now_ns() - t0) / 1e6;
    if (r != 0) {
        fprintf(stderr, "vrpc-bench policy: generated policy is invalid: %s\n",
                r > 0 ? vrpc_policy_get_error(policy, 0) : strerror(-r));
        r = -EINVAL;
        goto out;
    }
    printf("policy of %zu bytes (%d files of %zu bytes, %zu rules, and domains.yaml)\n", total,
           RELOAD_FILES, rules_size, vrpc_policy_get_n_rules(policy));
    printf("loading it on the caller's thread: %.1f ms\n", sync_ms);
    t0 = bench_now_ns();
    policy = vrpc_policy_unref(policy);
    printf("freeing it (the last reference to an old snapshot, e.g. a call that ends): %.1f "
           "ms\n",
           (double)(bench_now_ns() - t0) / 1e6);
    r = vrpc_policy_holder_new(&holder, dir);
    if (r == 0)
        r = vrpc_policy_watch_new(&watch, holder);
    if (r != 0)
        goto out;
    {
        /* the same loop with nothing to reload: the machine's own tick jitter */
        uint64_t start = bench_now_ns(), last = start, gap = 0, t;

        while ((t = bench_now_ns()) - start < 400000000u) {
            if (t - last > gap)
                gap = t - last;
            last = t;
            if (reload_tick(holder, watch) != 0)
                break;
        }
        printf("longest loop tick without a reload (400 ms): %.2f ms\n", (double)gap / 1e6);
    }
    printf("%8s %12s %16s\n", "round", "reload ms", "max tick gap ms");
    for (unsigned round = 0; round < rounds; round++) {
        uint64_t start, last, gap = 0;
        int done = 0;

        /* a new version of one file, installed by rename */
        edit[2] = round % 2 ? 'c' : 'd'; /* bench.Svc0 <-> bench.Svd0 */
        if ((r = write_text(sub, "10.yaml", rules, rules_size)) < 0)
            goto out;
        start = last = bench_now_ns();
        while (!done) {
            uint64_t t;

            done = reload_tick(holder, watch);
            if (done < 0) {
                r = done;
                goto out;
            }
            t = bench_now_ns();
            if (t - last > gap)
                gap = t - last;
            last = t;
        }
        printf("%8u %12.1f %16.2f\n", round + 1, (double)(last - start) / 1e6, (double)gap / 1e6);
        fflush(stdout);
    }
    r = 0;
out:
    vrpc_policy_watch_free(watch);
    vrpc_policy_holder_free(holder);
    vrpc_policy_unref(policy);
    free(rules);
    free(domains);
    remove_tree(dir);
    bench_undo_drop(undo);
    return r;
}

static double timer_overhead_ns(void)
{
    uint64_t samples[10001];

    for (size_t i = 0; i < 10001; i++) {
        uint64_t a = bench_now_ns();

        samples[i] = bench_now_ns() - a;
    }
    qsort(samples, 10001, sizeof(*samples), bench_cmp_u64);
    return (double)samples[5000];
}

static int parse_sizes(const char *arg, size_t *sizes, size_t *np)
{
    char *copy = strdup(arg), *save = NULL;
    size_t n = 0;

    if (!copy)
        return -ENOMEM;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(tok, &end, 10);
        if (errno || *end || v < 1 || v > 10000000 || n == BENCH_MAX_SIZES) {
            free(copy);
            return -EINVAL;
        }
        sizes[n++] = (size_t)v;
    }
    free(copy);
    *np = n;
    return n ? 0 : -EINVAL;
}

int bench_policy_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"rules", required_argument, NULL, 'r'},
        {"calls", required_argument, NULL, 'c'},
        {"rounds", required_argument, NULL, 'R'},
        {"reload", no_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    size_t sizes[BENCH_MAX_SIZES] = {10, 1000, 100000};
    size_t n_sizes = 3, n_calls = 200000;
    unsigned rounds = 5;
    bool reload = false;
    char *end;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":r:c:R:LhV", options, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (parse_sizes(optarg, sizes, &n_sizes) < 0) {
                fprintf(stderr,
                        "vrpc-bench policy: bad --rules '%s' (want N[,N...], 1 to "
                        "10000000, at most 8 sizes)\n",
                        optarg);
                return 2;
            }
            break;
        case 'c':
            n_calls = strtoul(optarg, &end, 10);
            if (*end || n_calls < 100 || n_calls > 100000000) {
                fprintf(stderr, "vrpc-bench policy: bad --calls '%s' (100 to 100000000)\n", optarg);
                return 2;
            }
            break;
        case 'R':
            rounds = (unsigned)strtoul(optarg, &end, 10);
            if (*end || rounds < 1 || rounds > 63) {
                fprintf(stderr, "vrpc-bench policy: bad --rounds '%s' (1 to 63)\n", optarg);
                return 2;
            }
            break;
        case 'L':
            reload = true;
            break;
        case 'h':
            printf("Usage: vrpc-bench policy [--rules N[,N...]] [--calls N] [--rounds N]\n"
                   "       vrpc-bench policy --reload [--rounds N]\n"
                   "Policy evaluation latency (p50/p99 per call, median of rounds).\n"
                   "Defaults: --rules 10,1000,100000 --calls 200000 --rounds 5\n"
                   "--reload: a policy at the loader's size caps reloaded through the watch\n"
                   "while a loop decides calls: reload time and the longest loop tick.\n");
            return 0;
        case 'V':
            printf("vrpc-bench (vrpc) %s\n", VRPC_VERSION);
            return 0;
        default:
            fprintf(stderr, "vrpc-bench policy: bad option %s (try --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "vrpc-bench policy: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }

    if (reload) {
        int r = bench_reload(rounds);

        if (r < 0)
            fprintf(stderr, "vrpc-bench policy: --reload failed: %s\n", strerror(-r));
        return r < 0 ? 1 : 0;
    }
    printf("policy evaluation: %zu calls x %u rounds per size, median of per-round "
           "percentiles\n",
           n_calls, rounds);
    printf("timer overhead (clock_gettime pair, included below): %.0f ns\n", timer_overhead_ns());
    printf("%10s %10s %10s %10s %8s %8s %8s\n", "rules", "load ms", "p50 ns", "p99 ns", "allow%",
           "deny%", "ask%");
    for (size_t i = 0; i < n_sizes; i++) {
        BenchResult res = {0};

        if (bench_one(sizes[i], n_calls, rounds, &res) < 0) {
            fprintf(stderr, "vrpc-bench policy: run with %zu rules failed\n", sizes[i]);
            return 1;
        }
        printf("%10zu %10.1f %10.0f %10.0f %8.1f %8.1f %8.1f\n", sizes[i], res.load_ms, res.p50_ns,
               res.p99_ns, res.share[VRPC_POLICY_ALLOW], res.share[VRPC_POLICY_DENY],
               res.share[VRPC_POLICY_ASK]);
        fflush(stdout);
    }
    return 0;
}
