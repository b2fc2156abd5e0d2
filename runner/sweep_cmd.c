/* sweep_cmd.c - `evograd sweep`: a grid of runs from one config.
 *
 *   evograd sweep CONFIG [key=AXIS | key=value ...] [-j N | --slurm FILE [Slurm options]]
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
 * given, so the same sweep always has the same id), which its summary row records.
 *
 * --slurm FILE writes a bash script for `sbatch FILE` instead: a job array with one task per
 * run (--array-max M: at most M at once), TERM sent to the script --signal-before seconds (120)
 * before the job's --time limit, which forwards it to the run (the run checkpoints and stops),
 * --stop-after STEPS as each job's budget, and a run that stopped with a checkpoint requeued
 * (scontrol requeue; --max-requeues R, 100, bounds how often), so that the next job resumes it;
 * a task whose run is complete exits at once. --sbatch OPTION adds an #SBATCH line. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    // --slurm FILE: write an sbatch job-array script instead (NULL: not)
    const char *slurm;
    const char *sbatch[SWEEP_MAX_ARGS]; // --sbatch OPTION lines, as given
    size_t nsbatch;
    const char *time_limit;             // --time LIMIT (NULL: the cluster's default)
    unsigned long array_max;            // --array-max M (0: no limit)
    unsigned long signal_before;        // --signal-before SECONDS
    unsigned long stop_after;           // --stop-after STEPS, each job's budget (0: none)
    unsigned long max_requeues;         // --max-requeues R
    size_t slurm_options;               // how many of the options above were given
};

// The value v of option opt as a whole number in [lo, hi].
static bool number_value(const char *opt, const char *v, unsigned long lo, unsigned long hi,
                         unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || x < lo || x > hi) {
        fprintf(stderr, "evograd sweep: %s needs a whole number from %lu to %lu%s%s%s\n", opt, lo,
                hi, v[0] != '\0' ? " (not '" : "", v, v[0] != '\0' ? "')" : "");
        return false;
    }
    *out = x;
    return true;
}

// A Slurm time limit in seconds, in the forms sbatch --time takes: M, M:S, H:M:S, D-H, D-H:M and
// D-H:M:S. 0 for a malformed one (or a limit of zero, which Slurm reads as no limit).
static unsigned long slurm_seconds(const char *t)
{
    unsigned long f[4] = {0};
    int n = 0;
    bool days = false;
    const char *p = t;
    for (;;) {
        if (*p < '0' || *p > '9' || n == 4) return 0;
        char *end = NULL;
        errno = 0;
        f[n++] = strtoul(p, &end, 10);
        if (errno != 0 || f[n - 1] > 1000000) return 0;
        p = end;
        if (*p == '\0') break;
        if (*p == '-') {
            if (n != 1 || days) return 0;
            days = true;
        } else if (*p != ':') {
            return 0;
        }
        p++;
    }
    if (days) { // D-H, D-H:M, D-H:M:S
        return f[0] * 86400 + f[1] * 3600 + f[2] * 60 + f[3];
    }
    switch (n) {
    case 1: return f[0] * 60;                             // M
    case 2: return f[0] * 60 + f[1];                      // M:S
    case 3: return f[0] * 3600 + f[1] * 60 + f[2];        // H:M:S
    default: return 0;
    }
}

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

static void sweep_usage(FILE *f)
{
    fputs("usage: evograd sweep CONFIG.yaml [key=a,b,c | key=lo:hi:n | key=log(lo,hi,n) | "
          "key=i..j | key=value ...] [-j N | --slurm FILE [--time LIMIT] [--array-max M] "
          "[--signal-before SECONDS] [--stop-after STEPS] [--max-requeues R] [--sbatch OPTION "
          "...]]\n",
          f);
}

static void sweep_help(void)
{
    sweep_usage(stdout);
    fputs("The grid of runs over every key given an axis (the last varies fastest), each\n"
          "combination checked before anything runs. Prints one evograd run line per run,\n"
          "or runs them itself, or writes a Slurm job-array script.\n"
          "  -j, --jobs N            run the sweep here, N runs at a time\n"
          "      --slurm FILE        write an sbatch job-array script, one task per run\n"
          "      --time LIMIT        the jobs' Slurm time limit (90, 4:00:00, 1-12:00:00)\n"
          "      --array-max M       at most M array tasks at once\n"
          "      --signal-before S   Slurm sends TERM S seconds (120) before the limit: the\n"
          "                          run checkpoints and the task requeues itself\n"
          "      --stop-after STEPS  each job's budget of steps, then checkpoint and requeue\n"
          "      --max-requeues R    requeue a task at most R times (100)\n"
          "      --sbatch OPTION     one more #SBATCH line, e.g. --sbatch --partition=cpu\n"
          "  -h, --help              this help\n"
          "Options take their value as --opt VALUE or --opt=VALUE; -- ends the options.\n",
          stdout);
}

// Parses the sweep's arguments (getopt_long). ARGS_PARSED to go on; else the exit status: 0
// after --help, EXIT_USAGE after a usage error (printed).
static int parse_sweep(int argc, char **argv, struct sweep *s)
{
    *s = (struct sweep){.signal_before = 120, .max_requeues = 100};
    enum { O_SLURM = 256, O_SBATCH, O_TIME, O_ARRAY_MAX, O_SIGNAL, O_STOP_AFTER, O_REQUEUES };
    static const struct option opts[] = {
        {"jobs", required_argument, NULL, 'j'},
        {"slurm", required_argument, NULL, O_SLURM},
        {"sbatch", required_argument, NULL, O_SBATCH},
        {"time", required_argument, NULL, O_TIME},
        {"array-max", required_argument, NULL, O_ARRAY_MAX},
        {"signal-before", required_argument, NULL, O_SIGNAL},
        {"stop-after", required_argument, NULL, O_STOP_AFTER},
        {"max-requeues", required_argument, NULL, O_REQUEUES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char **av = getopt_vector(argc, argv, "evograd sweep");
    int ac = argc + 1, c;
    bool ok = true, help = false;
    opterr = 0;
    optind = 0; // glibc: a full reset
    while (ok && !help && (c = getopt_long(ac, av, ":j:h", opts, NULL)) != -1) {
        const char *opt = av[optind - 1];
        unsigned long x = 0;
        switch (c) {
        case 'h': help = true; break;
        case 'j':
            ok = number_value("-j", optarg, 1, 1024, &x);
            s->jobs = (int)x;
            break;
        case O_SLURM: s->slurm = optarg; break;
        case O_SBATCH:
            if (s->nsbatch == SWEEP_MAX_ARGS || optarg[0] != '-' || strchr(optarg, '\n') != NULL) {
                fprintf(stderr, "evograd sweep: --sbatch takes one sbatch option such as "
                                "--partition=cpu (at most %d)\n",
                        SWEEP_MAX_ARGS);
                ok = false;
                break;
            }
            s->sbatch[s->nsbatch++] = optarg;
            s->slurm_options++;
            break;
        case O_TIME:
            s->time_limit = optarg;
            s->slurm_options++;
            if (slurm_seconds(s->time_limit) == 0) {
                fprintf(stderr, "evograd sweep: --time '%s': a Slurm time limit such as 90, "
                                "4:00:00 or 1-12:00:00\n",
                        s->time_limit);
                ok = false;
            }
            break;
        case O_ARRAY_MAX:
            ok = number_value("--array-max", optarg, 1, 100000, &s->array_max);
            s->slurm_options++;
            break;
        case O_SIGNAL:
            ok = number_value("--signal-before", optarg, 1, 65535, &s->signal_before);
            s->slurm_options++;
            break;
        case O_STOP_AFTER:
            ok = number_value("--stop-after", optarg, 1, ULONG_MAX, &s->stop_after);
            s->slurm_options++;
            break;
        case O_REQUEUES:
            ok = number_value("--max-requeues", optarg, 0, 100000, &s->max_requeues);
            s->slurm_options++;
            break;
        default:
            option_error("sweep", c, opt);
            ok = false;
            break;
        }
    }
    // the config and the overrides (getopt moved them, in their order, behind the options)
    int first = optind;
    for (int i = first; ok && !help && i < ac; i++) {
        const char *a = av[i];
        if (s->config == NULL) {
            s->config = a;
        } else if (strchr(a, '=') != NULL && a[0] != '=') {
            if (s->nfixed + s->naxes == SWEEP_MAX_ARGS) {
                fprintf(stderr, "evograd sweep: more than %d overrides\n", SWEEP_MAX_ARGS);
                ok = false;
                break;
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
                if (bad) {
                    ok = false;
                    break;
                }
                s->fixed[s->nfixed++] = a;
            }
        } else {
            fprintf(stderr, "evograd sweep: '%s' is neither an option nor a key.path=value "
                            "override\n",
                    a);
            ok = false;
        }
    }
    // the id: FNV-1a (64-bit) of the config path and every override as given, in order; the
    // options only shape how the runs are run, so they are left out
    uint64_t h = 14695981039346656037ull;
    for (int i = first; i < ac; i++) {
        for (const unsigned char *p = (const unsigned char *)av[i];; p++) {
            h ^= *p;
            h *= 1099511628211ull;
            if (*p == '\0') break;
        }
    }
    free(av);
    if (help) {
        sweep_help();
        return EXIT_SUCCESS;
    }
    if (!ok) return EXIT_USAGE;
    snprintf(s->id, sizeof s->id, "%016llx", (unsigned long long)h);
    if (s->config == NULL) {
        sweep_usage(stderr);
        return EXIT_USAGE;
    }
    if (s->slurm != NULL && s->jobs > 0) {
        fprintf(stderr, "evograd sweep: -j runs the sweep here and --slurm writes a script for "
                        "Slurm to run it; choose one\n");
        return EXIT_USAGE;
    }
    if (s->slurm == NULL && s->slurm_options > 0) {
        fprintf(stderr, "evograd sweep: --time, --array-max, --signal-before, --stop-after, "
                        "--max-requeues and --sbatch shape the --slurm script; give --slurm "
                        "FILE too\n");
        return EXIT_USAGE;
    }
    if (s->time_limit != NULL && s->signal_before >= slurm_seconds(s->time_limit)) {
        fprintf(stderr, "evograd sweep: --signal-before %lu is not shorter than --time %s (%lu s): "
                        "Slurm would stop every job as it starts; give a longer --time or a "
                        "smaller --signal-before\n",
                s->signal_before, s->time_limit, slurm_seconds(s->time_limit));
        return EXIT_USAGE;
    }
    short_names(s);
    return ARGS_PARSED;
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

// Prints the command of run r: `self run ARGS --out DIR --runs FILE --sweep ID` (no newline).
static void print_command(FILE *f, const char *self, const struct sweep_run *r, const char *id)
{
    print_shell_word(f, self);
    fputs(" run", f);
    for (size_t i = 0; i < r->nargs; i++) {
        fputc(' ', f);
        print_shell_word(f, r->args[i]);
    }
    fputs(" --out ", f);
    print_shell_word(f, r->dir);
    fputs(" --runs ", f);
    print_shell_word(f, r->runs);
    fprintf(f, " --sweep %s", id);
}

// The job-array script's body after the case of the runs: skip a finished run, resume a
// checkpointed one, forward Slurm's TERM (sent --signal-before seconds before the time limit) to
// the run, which checkpoints and stops, and requeue this array task when the run stopped with
// a checkpoint (the signal, or its --stop-after budget) so that the next job continues it, or
// when Slurm signalled it before its first checkpoint (Slurm may signal up to a minute early):
// the next job starts it again.
static const char slurm_body[] =
    "if [ -f \"$dir/DONE\" ]; then\n"
    "    echo \"evograd sweep: $dir is complete (DONE); nothing to do\"\n"
    "    exit 0\n"
    "fi\n"
    "[ -f \"$dir/checkpoint.bin\" ] && run+=(--resume)\n"
    "echo \"evograd sweep: array task $task (job ${SLURM_JOB_ID:-?}, restart "
    "${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date '+%F %T'): ${run[*]}\"\n"
    "\"${run[@]}\" &\n"
    "child=$!\n"
    "[ -n \"$stop\" ] && kill -TERM \"$child\" # signalled while it started\n"
    "wait \"$child\"\n"
    "rc=$?\n"
    "while kill -0 \"$child\" 2>/dev/null; do # the trap interrupted wait: the run is checkpointing\n"
    "    wait \"$child\"\n"
    "    rc=$?\n"
    "done\n"
    "trap - TERM INT\n"
    "[ -f \"$dir/DONE\" ] && exit 0\n"
    "# a run that stopped with a checkpoint, or that Slurm signalled before its first one\n"
    "how=\"with a checkpoint\"\n"
    "[ -f \"$dir/checkpoint.bin\" ] || how=\"before its first checkpoint\"\n"
    "if { [ -f \"$dir/checkpoint.bin\" ] || [ -n \"$stop\" ]; } &&\n"
    "    { [ \"$rc\" -eq 0 ] || [ \"$rc\" -eq 143 ]; }; then\n"
    "    if [ \"${SLURM_RESTART_COUNT:-0}\" -ge \"$max_requeues\" ]; then\n"
    "        echo \"evograd sweep: $dir stopped $how after $max_requeues requeues; "
    "not requeueing again (resubmit this script to continue)\" >&2\n"
    "        exit 1\n"
    "    fi\n"
    "    echo \"evograd sweep: $dir stopped $how (exit status $rc) at $(date '+%F %T'); "
    "requeueing "
    "array task $task\"\n"
    "    scontrol requeue \"${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_$task\" && exit 0\n"
    "    echo \"evograd sweep: scontrol requeue failed; resubmit this script to continue\" "
    ">&2\n"
    "    exit 1\n"
    "fi\n"
    "exit \"$rc\"\n";

// Writes the sbatch script of --slurm (made executable, replaced atomically) and makes the
// folder its output files go to (Slurm does not make it).
static bool write_slurm_script(const struct sweep *s, const char *self,
                               const struct sweep_run *runs, size_t total)
{
    char cwd[PATH_MAX], logs[PATH_MAX], tmp[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        fprintf(stderr, "evograd sweep: the current folder: %s\n", strerror(errno));
        return false;
    }
    // results/<name>/runs.csv -> results/<name>/slurm
    snprintf(logs, sizeof logs, "%s", runs[0].runs);
    char *slash = strrchr(logs, '/');
    if (slash != NULL) *slash = '\0';
    if (strlen(logs) + sizeof "/slurm" > sizeof logs) return false;
    strcat(logs, "/slurm");
    if (!make_dirs(logs)) {
        fprintf(stderr, "evograd sweep: %s: %s\n", logs, strerror(errno));
        return false;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", s->slurm, (long)getpid()) >= (int)sizeof tmp) {
        fprintf(stderr, "evograd sweep: %s: path too long\n", s->slurm);
        return false;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "evograd sweep: %s: %s\n", tmp, strerror(errno));
        return false;
    }
    fprintf(f, "#!/bin/bash\n"
               "# Slurm job array of evograd sweep %s: %zu runs, one per array task.\n"
               "# Written by evograd sweep --slurm; submit with: sbatch %s\n"
               "# A task Slurm signals before its time limit, or whose run used its --stop-after\n"
               "# budget, checkpoints and requeues itself; the next job resumes the run. A task\n"
               "# whose run is complete exits at once, so resubmitting the script finishes what\n"
               "# is left.\n",
            s->id, total, s->slurm);
    // the job's name: evograd-<name> from results/<name>/slurm
    const char *name = logs + strlen("results/");
    fprintf(f, "#SBATCH --job-name=evograd-%.*s\n", (int)(strlen(name) - strlen("/slurm")), name);
    fprintf(f, "#SBATCH --array=1-%zu", total);
    if (s->array_max > 0) fprintf(f, "%%%lu", s->array_max);
    fprintf(f, "\n#SBATCH --output=%s/%s/%%A_%%a.out\n", cwd, logs);
    fprintf(f, "#SBATCH --open-mode=append\n#SBATCH --requeue\n");
    fprintf(f, "#SBATCH --signal=B:TERM@%lu\n", s->signal_before);
    if (s->time_limit != NULL) fprintf(f, "#SBATCH --time=%s\n", s->time_limit);
    for (size_t i = 0; i < s->nsbatch; i++) fprintf(f, "#SBATCH %s\n", s->sbatch[i]);
    fputs("set -u\n", f);
    // TERM from the first instant: Slurm's early signal may come before the run is started
    fputs("child=\nstop=\ntrap 'stop=1; [ -n \"$child\" ] && kill -TERM \"$child\" 2>/dev/null' "
          "TERM INT\n",
          f);
    fputs("cd ", f);
    print_shell_word(f, cwd);
    fputs(" || exit 1\n", f);
    fprintf(f, "max_requeues=%lu\n", s->max_requeues);
    fputs("task=${SLURM_ARRAY_TASK_ID:-}\ncase $task in\n", f);
    for (size_t r = 0; r < total; r++) {
        fprintf(f, "%zu)\n    dir=", r + 1);
        print_shell_word(f, runs[r].dir);
        fputs("\n    run=(", f);
        print_command(f, self, &runs[r], s->id);
        if (s->stop_after > 0) fprintf(f, " --stop-after %lu", s->stop_after);
        fputs(" --quiet)\n    ;;\n", f);
    }
    fprintf(f, "*)\n    echo \"evograd sweep: SLURM_ARRAY_TASK_ID is '$task', not 1 to %zu\" >&2\n"
               "    exit 2\n    ;;\nesac\n",
            total);
    fputs(slurm_body, f);
    const bool ok = fflush(f) == 0 && !ferror(f);
    if (fclose(f) != 0 || !ok || chmod(tmp, 0755) != 0 || rename(tmp, s->slurm) != 0) {
        fprintf(stderr, "evograd sweep: %s: %s\n", s->slurm, strerror(errno));
        unlink(tmp);
        return false;
    }
    fprintf(stderr, "wrote %s: %zu run%s as a Slurm job array (output in %s/); submit with: "
                    "sbatch %s\n",
            s->slurm, total, total == 1 ? "" : "s", logs, s->slurm);
    return true;
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
    int parsed = parse_sweep(argc, argv, &s);
    if (parsed != ARGS_PARSED) {
        sweep_free(&s);
        return parsed;
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
    if (status == EXIT_SUCCESS && s.jobs == 0 && s.slurm == NULL) {
        char self[PATH_MAX];
        self_path(self, sizeof self, argv0);
        for (size_t r = 0; r < total; r++) {
            print_command(stdout, self, &runs[r], s.id);
            putchar('\n');
        }
    } else if (status == EXIT_SUCCESS && s.slurm != NULL) {
        char self[PATH_MAX];
        self_path(self, sizeof self, argv0);
        if (!write_slurm_script(&s, self, runs, total)) status = EXIT_FAILURE;
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
