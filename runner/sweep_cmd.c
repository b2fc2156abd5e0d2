/* sweep_cmd.c - `evograd sweep`: a grid of runs from one config.
 *
 *   evograd sweep CONFIG [key=AXIS | key=value ...] [-j N]
 *
 * An override whose value is an axis makes the key vary: a,b,c (the listed values), lo:hi:n (n
 * evenly spaced numbers from lo to hi), log(lo,hi,n) (n log-spaced numbers), i..j (the integers
 * i to j). A list key's commas are its items, not an axis (lft.domains=a,b,c is one value). The
 * grid is every combination, the last axis varying fastest. Each combination is loaded and
 * checked like `evograd check` before anything runs; the first bad one is an error naming its
 * values. Without -j the sweep prints one `evograd run` line per combination (for xargs -P, GNU
 * parallel or a scheduler); with -j N it runs them itself, N at a time (each with --quiet), and
 * reports each run's exit status. Every run goes to results/<name>/<label> with the summary row
 * in results/<name>/runs.csv; the label is the method, each varied key's last name part and
 * value, and the seed (evograd-sigma0.001-candidates2-seed1), made unique. Every run gets
 * --sweep ID, the sweep's id (16 hex digits of a hash of the config path and the overrides as
 * given, so the same sweep always has the same id), which its summary row records. */
#include "commands.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "io/config.h"
#include "run/run.h"

#define SWEEP_MAX_ARGS 256
#define SWEEP_MAX_RUNS 100000
#define SWEEP_VALUE_MAX 64

struct axis {
    char key[128];
    char (*values)[SWEEP_VALUE_MAX];
    size_t n;
    char short_name[128]; // the key's name in labels
};

struct sweep {
    const char *config;
    const char *fixed[SWEEP_MAX_ARGS];
    size_t nfixed;
    struct axis axes[SWEEP_MAX_ARGS];
    size_t naxes;
    int jobs; // 0: print the commands
    char id[20]; // the sweep's id
};

// Appends a value to an axis.
static void axis_push(struct axis *a, const char *v, size_t len)
{
    a->values = eg_xrealloc(a->values, (a->n + 1) * sizeof *a->values);
    snprintf(a->values[a->n], SWEEP_VALUE_MAX, "%.*s", (int)len, v);
    a->n++;
}

static void axis_push_number(struct axis *a, double v)
{
    char buf[SWEEP_VALUE_MAX];
    snprintf(buf, sizeof buf, "%.6g", v);
    axis_push(a, buf, strlen(buf));
}

// Parses the value of key into an axis (true), or leaves it a fixed override (false). A
// malformed range is a usage error (*bad set, the message printed).
static bool parse_axis(const char *key, const char *v, struct axis *a, bool *bad)
{
    *bad = false;
    double lo, hi;
    size_t n;
    long long i0, i1;
    int used = -1;
    const size_t len = strlen(v);
    if (sscanf(v, "log(%lf,%lf,%zu)%n", &lo, &hi, &n, &used) == 3 && used == (int)len) {
        if (!(lo > 0.0 && hi > 0.0 && isfinite(lo) && isfinite(hi)) || n < 2 ||
            n > SWEEP_MAX_RUNS) {
            fprintf(stderr, "evograd sweep: %s=%s: log(lo,hi,n) needs lo, hi > 0 and n >= 2\n",
                    key, v);
            *bad = true;
            return false;
        }
        for (size_t k = 0; k < n; k++)
            axis_push_number(a, lo * pow(hi / lo, (double)k / (double)(n - 1)));
        return true;
    }
    used = -1;
    if (sscanf(v, "%lld..%lld%n", &i0, &i1, &used) == 2 && used == (int)len) {
        if (i1 < i0 || i1 - i0 >= SWEEP_MAX_RUNS) {
            fprintf(stderr, "evograd sweep: %s=%s: i..j needs i <= j (at most %d values)\n", key,
                    v, SWEEP_MAX_RUNS);
            *bad = true;
            return false;
        }
        for (long long k = i0; k <= i1; k++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", k);
            axis_push(a, buf, strlen(buf));
        }
        return true;
    }
    used = -1;
    if (sscanf(v, "%lf:%lf:%zu%n", &lo, &hi, &n, &used) == 3 && used == (int)len) {
        if (!(isfinite(lo) && isfinite(hi)) || n < 2 || n > SWEEP_MAX_RUNS) {
            fprintf(stderr, "evograd sweep: %s=%s: lo:hi:n needs finite lo, hi and n >= 2\n", key,
                    v);
            *bad = true;
            return false;
        }
        for (size_t k = 0; k < n; k++)
            axis_push_number(a, lo + (hi - lo) * (double)k / (double)(n - 1));
        return true;
    }
    if (strchr(v, ',') == NULL || config_key_kind(key) == CONFIG_KEY_LIST) return false;
    for (const char *p = v;;) {
        const char *c = strchr(p, ',');
        const size_t l = c != NULL ? (size_t)(c - p) : strlen(p);
        if (l == 0 || l >= SWEEP_VALUE_MAX) {
            fprintf(stderr, "evograd sweep: %s=%s: %s\n", key, v,
                    l == 0 ? "an empty value in the list" : "a value longer than 63 characters");
            *bad = true;
            return false;
        }
        axis_push(a, p, l);
        if (c == NULL) break;
        p = c + 1;
    }
    return true;
}

// The last part of a dotted key; the whole key (dots as '-') when another axis shares it.
static void short_names(struct sweep *s)
{
    for (size_t i = 0; i < s->naxes; i++) {
        const char *dot = strrchr(s->axes[i].key, '.');
        snprintf(s->axes[i].short_name, sizeof s->axes[i].short_name, "%s",
                 dot != NULL ? dot + 1 : s->axes[i].key);
    }
    bool clash[SWEEP_MAX_ARGS] = {false};
    for (size_t i = 0; i < s->naxes; i++) {
        for (size_t j = 0; j < s->naxes; j++) {
            clash[i] = clash[i] ||
                       (i != j && strcmp(s->axes[i].short_name, s->axes[j].short_name) == 0);
        }
    }
    for (size_t i = 0; i < s->naxes; i++) {
        if (!clash[i]) continue;
        snprintf(s->axes[i].short_name, sizeof s->axes[i].short_name, "%s", s->axes[i].key);
        for (char *p = s->axes[i].short_name; *p != '\0'; p++) {
            if (*p == '.') *p = '-';
        }
    }
}

static bool parse_sweep(int argc, char **argv, struct sweep *s)
{
    *s = (struct sweep){0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-j") == 0) {
            char *end = NULL;
            long j = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end != '\0' || j < 1 || j > 1024) {
                fprintf(stderr, "evograd sweep: -j needs a number of parallel runs, 1 to 1024\n");
                return false;
            }
            s->jobs = (int)j;
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "evograd sweep: unknown option '%s' (try evograd --help)\n", a);
            return false;
        } else if (s->config == NULL) {
            s->config = a;
        } else if (strchr(a, '=') != NULL && a[0] != '=') {
            if (s->nfixed + s->naxes == SWEEP_MAX_ARGS) {
                fprintf(stderr, "evograd sweep: more than %d overrides\n", SWEEP_MAX_ARGS);
                return false;
            }
            const char *eq = strchr(a, '=');
            struct axis *ax = &s->axes[s->naxes];
            *ax = (struct axis){0};
            snprintf(ax->key, sizeof ax->key, "%.*s", (int)(eq - a), a);
            bool bad = false;
            if (parse_axis(ax->key, eq + 1, ax, &bad)) {
                s->naxes++;
            } else {
                free(ax->values);
                *ax = (struct axis){0};
                if (bad) return false;
                s->fixed[s->nfixed++] = a;
            }
        } else {
            fprintf(stderr, "evograd sweep: '%s' is neither an option nor a key.path=value "
                            "override\n",
                    a);
            return false;
        }
    }
    // the id: FNV-1a (64-bit) of the config path and every override as given
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-j") == 0) {
            i++;
            continue;
        }
        for (const unsigned char *p = (const unsigned char *)argv[i];; p++) {
            h ^= *p;
            h *= 1099511628211ull;
            if (*p == '\0') break;
        }
    }
    snprintf(s->id, sizeof s->id, "%016llx", (unsigned long long)h);
    if (s->config == NULL) {
        fprintf(stderr, "usage: evograd sweep CONFIG.yaml [key=a,b,c | key=lo:hi:n | "
                        "key=log(lo,hi,n) | key=i..j | key=value ...] [-j N]\n");
        return false;
    }
    short_names(s);
    return true;
}

static void sweep_free(struct sweep *s)
{
    for (size_t i = 0; i < s->naxes; i++) free(s->axes[i].values);
}

// One combination: the index of each axis's value, from the run's number (last axis fastest).
static void combination(const struct sweep *s, size_t r, size_t *idx)
{
    for (size_t i = s->naxes; i-- > 0;) {
        idx[i] = r % s->axes[i].n;
        r /= s->axes[i].n;
    }
}

// A label part: characters a folder name keeps ([A-Za-z0-9.+-]), others as '_'.
static void append_safe(char *out, size_t cap, const char *text)
{
    size_t used = strlen(out);
    for (const char *p = text; *p != '\0' && used + 1 < cap; p++) {
        const char c = *p;
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-';
        out[used++] = keep ? c : '_';
    }
    out[used] = '\0';
}

struct sweep_run {
    char *args[SWEEP_MAX_ARGS + 8]; // after "run": config, overrides, --out, dir, --runs, file
    size_t nargs;
    char label[256];
    char dir[PATH_MAX];
    char runs[PATH_MAX];
};

// The run r: its overrides (the fixed ones, then the axes' values), its config checked, its label
// and folders. False with the error printed when the combination's config is bad.
static bool make_run(const struct sweep *s, size_t r, struct sweep_run *out)
{
    size_t idx[SWEEP_MAX_ARGS];
    combination(s, r, idx);
    const char *ovs[SWEEP_MAX_ARGS];
    size_t n = 0;
    *out = (struct sweep_run){0};
    out->args[out->nargs++] = eg_xstrdup(s->config);
    for (size_t i = 0; i < s->nfixed; i++) {
        ovs[n++] = s->fixed[i];
        out->args[out->nargs++] = eg_xstrdup(s->fixed[i]);
    }
    char values[512] = "";
    for (size_t i = 0; i < s->naxes; i++) {
        char ov[256];
        snprintf(ov, sizeof ov, "%s=%s", s->axes[i].key, s->axes[i].values[idx[i]]);
        out->args[out->nargs] = eg_xstrdup(ov);
        ovs[n++] = out->args[out->nargs++];
        size_t used = strlen(values);
        snprintf(values + used, sizeof values - used, "%s%s", used ? ", " : "", ov);
    }
    struct run_config cfg;
    struct eg_error err;
    if (config_load(s->config, ovs, n, &cfg, &err) != EG_OK || run_check(&cfg, &err) != EG_OK) {
        fprintf(stderr, "error: sweep run %zu (%s): %s\n", r + 1, values[0] ? values : "no axes",
                err.msg);
        return false;
    }
    // the label: the method, every varied key but the method and the seed, then the seed
    snprintf(out->label, sizeof out->label, "%s", cfg.method.name);
    for (size_t i = 0; i < s->naxes; i++) {
        if (strcmp(s->axes[i].key, "method.name") == 0 || strcmp(s->axes[i].key, "seed") == 0) {
            continue;
        }
        append_safe(out->label, sizeof out->label, "-");
        append_safe(out->label, sizeof out->label, s->axes[i].short_name);
        append_safe(out->label, sizeof out->label, s->axes[i].values[idx[i]]);
    }
    char seed[32];
    snprintf(seed, sizeof seed, "-seed%llu", (unsigned long long)cfg.seed);
    append_safe(out->label, sizeof out->label, seed);
    snprintf(out->dir, sizeof out->dir, "results/%s/%s", cfg.name, out->label);
    snprintf(out->runs, sizeof out->runs, "results/%s/runs.csv", cfg.name);
    return true;
}

static void run_free(struct sweep_run *r)
{
    for (size_t i = 0; i < r->nargs; i++) free(r->args[i]);
}

// Prints an argument for a POSIX shell: as it is when it needs no quoting, else single-quoted.
static void print_word(const char *w)
{
    bool plain = w[0] != '\0';
    for (const char *p = w; *p != '\0'; p++) {
        plain = plain && strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "._-/=:,+@%",
                                *p) != NULL;
    }
    if (plain) {
        fputs(w, stdout);
        return;
    }
    putchar('\'');
    for (const char *p = w; *p != '\0'; p++) {
        if (*p == '\'') {
            fputs("'\\''", stdout);
        } else {
            putchar(*p);
        }
    }
    putchar('\'');
}

// The path of this program, for the runs (the one that made the sweep).
static void self_path(char *out, size_t cap, const char *argv0)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n > 0) {
        out[n] = '\0';
    } else {
        snprintf(out, cap, "%s", argv0);
    }
}

// Starts the run: `self run ARGS --out dir --runs runs --sweep id --quiet`. Returns the child's
// pid.
static pid_t start_run(const char *self, const struct sweep_run *r, const char *id)
{
    const char *argv[SWEEP_MAX_ARGS + 16];
    size_t n = 0;
    argv[n++] = self;
    argv[n++] = "run";
    for (size_t i = 0; i < r->nargs; i++) argv[n++] = r->args[i];
    argv[n++] = "--out";
    argv[n++] = r->dir;
    argv[n++] = "--runs";
    argv[n++] = r->runs;
    argv[n++] = "--sweep";
    argv[n++] = id;
    argv[n++] = "--quiet";
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        execv(self, (char *const *)argv);
        fprintf(stderr, "evograd sweep: cannot start %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    return pid;
}

int cmd_sweep(int argc, char **argv, const char *argv0)
{
    struct sweep s;
    if (!parse_sweep(argc, argv, &s)) {
        sweep_free(&s);
        return EXIT_USAGE;
    }
    size_t total = 1;
    for (size_t i = 0; i < s.naxes; i++) {
        if (total > SWEEP_MAX_RUNS / s.axes[i].n) {
            fprintf(stderr, "evograd sweep: more than %d runs\n", SWEEP_MAX_RUNS);
            sweep_free(&s);
            return EXIT_USAGE;
        }
        total *= s.axes[i].n;
    }
    struct sweep_run *runs = eg_xcalloc(total, sizeof *runs);
    int status = EXIT_SUCCESS;
    size_t made = 0;
    for (; made < total; made++) {
        if (!make_run(&s, made, &runs[made])) {
            run_free(&runs[made]);
            status = EXIT_FAILURE;
            break;
        }
        // unique folders: a label that sanitising made equal to an earlier one gets -N
        for (size_t q = 0, k = 2; q < made; q++) {
            if (strcmp(runs[q].dir, runs[made].dir) != 0) continue;
            char suffix[24];
            snprintf(suffix, sizeof suffix, "-%zu", k++);
            const size_t used = strlen(runs[made].dir);
            if (used + strlen(suffix) < sizeof runs[made].dir) strcat(runs[made].dir, suffix);
            q = (size_t)-1; // check again from the start
        }
    }
    if (status == EXIT_SUCCESS && s.jobs == 0) {
        char self[PATH_MAX];
        self_path(self, sizeof self, argv0);
        for (size_t r = 0; r < total; r++) {
            print_word(self);
            fputs(" run", stdout);
            for (size_t i = 0; i < runs[r].nargs; i++) {
                putchar(' ');
                print_word(runs[r].args[i]);
            }
            fputs(" --out ", stdout);
            print_word(runs[r].dir);
            fputs(" --runs ", stdout);
            print_word(runs[r].runs);
            printf(" --sweep %s\n", s.id);
        }
    } else if (status == EXIT_SUCCESS) {
        char self[PATH_MAX];
        self_path(self, sizeof self, argv0);
        pid_t *pids = eg_xcalloc(total, sizeof *pids);
        size_t next = 0, running = 0, done = 0, failed = 0;
        while (done < total) {
            while (running < (size_t)s.jobs && next < total) {
                pids[next] = start_run(self, &runs[next], s.id);
                if (pids[next] < 0) {
                    fprintf(stderr, "evograd sweep: fork: %s\n", strerror(errno));
                    pids[next] = 0;
                    failed++;
                    done++;
                } else {
                    running++;
                }
                next++;
            }
            if (running == 0) break;
            int st = 0;
            pid_t pid = wait(&st);
            if (pid < 0) break;
            for (size_t r = 0; r < next; r++) {
                if (pids[r] != pid) continue;
                running--;
                done++;
                const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                if (code != 0) failed++;
                fprintf(stderr, "sweep [%zu/%zu] %s: %s", done, total, runs[r].dir,
                        code == 0 ? "done\n" : "failed, exit status ");
                if (code != 0) fprintf(stderr, "%d (rerun it alone to see why)\n", code);
            }
        }
        fprintf(stderr, "sweep: %zu runs, %zu done, %zu failed\n", total, total - failed, failed);
        free(pids);
        if (failed > 0) status = EXIT_RUN_FAILED;
    }
    for (size_t r = 0; r < made; r++) run_free(&runs[r]);
    free(runs);
    sweep_free(&s);
    return status;
}
