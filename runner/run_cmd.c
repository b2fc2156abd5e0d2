/* run_cmd.c - `evograd run` and `evograd check`: arguments, the run directory, progress on
 * stderr, signals, and the files written around the training loop (config.yaml before;
 * summary.csv, the shared runs.csv and DONE after). */
#include "commands.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "io/config.h"
#include "io/csv.h"
#include "run/run.h"

#define MAX_OVERRIDES 256

// Set by the signal handler: the signal that asked the run to stop. The runner's one global.
static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig)
{
    stop_signal = sig;
}

struct run_args {
    const char *config;
    const char *overrides[MAX_OVERRIDES];
    size_t noverrides;
    const char *out;
    bool resume, quiet;
    unsigned long long stop_after; // --stop-after STEPS: checkpoint and stop (0: never)
};

// Parses CONFIG, overrides and options; prints a usage error and returns false on bad usage.
static bool parse_args(int argc, char **argv, bool run, struct run_args *a)
{
    *a = (struct run_args){0};
    const char *cmd = run ? "run" : "check";
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (run && strcmp(s, "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "evograd %s: --out needs a directory\n", cmd);
                return false;
            }
            a->out = argv[++i];
        } else if (run && strcmp(s, "--resume") == 0) {
            a->resume = true;
        } else if (run && strcmp(s, "--quiet") == 0) {
            a->quiet = true;
        } else if (run && strcmp(s, "--stop-after") == 0) {
            char *end = NULL;
            errno = 0;
            a->stop_after = i + 1 < argc ? strtoull(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end != '\0' || errno == ERANGE ||
                a->stop_after == 0 || argv[i + 1][0] == '-') {
                fprintf(stderr, "evograd run: --stop-after needs a number of steps >= 1\n");
                return false;
            }
            i++;
        } else if (s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "evograd %s: unknown option '%s' (try evograd --help)\n", cmd, s);
            return false;
        } else if (a->config == NULL) {
            a->config = s;
        } else if (strchr(s, '=') != NULL) {
            if (a->noverrides == MAX_OVERRIDES) {
                fprintf(stderr, "evograd %s: more than %d overrides\n", cmd, MAX_OVERRIDES);
                return false;
            }
            a->overrides[a->noverrides++] = s;
        } else {
            fprintf(stderr, "evograd %s: '%s' is neither an option nor a key.path=value override\n",
                    cmd, s);
            return false;
        }
    }
    if (a->config == NULL) {
        fprintf(stderr, "usage: evograd %s CONFIG.yaml [key.path=value ...]%s\n", cmd,
                run ? " [--out DIR] [--resume] [--quiet] [--stop-after STEPS]" : "");
        return false;
    }
    return true;
}

// Loads and checks the config; prints the error and returns false when it is bad.
static bool load_config(const struct run_args *a, struct run_config *cfg)
{
    struct eg_error err;
    if (config_load(a->config, a->overrides, a->noverrides, cfg, &err) != EG_OK ||
        run_check(cfg, &err) != EG_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return false;
    }
    return true;
}

int cmd_check(int argc, char **argv)
{
    struct run_args a;
    if (!parse_args(argc, argv, false, &a)) return EXIT_USAGE;
    struct run_config cfg;
    if (!load_config(&a, &cfg)) return EXIT_FAILURE;
    config_write(&cfg, stdout);
    return EXIT_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// the run directory

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

// mkdir -p. Returns false and sets errno on failure.
static bool make_dirs(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return false;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return false;
        *p = '/';
    }
    return mkdir(tmp, 0755) == 0 || (errno == EEXIST && is_dir(tmp));
}

// dir for the n-th run of a base name: base, base-2, base-3, ... (truncated names are caught
// by the caller's length check of base).
static void numbered(char *out, size_t cap, const char *base, int n)
{
    int len = n == 1 ? snprintf(out, cap, "%s", base) : snprintf(out, cap, "%s-%d", base, n);
    EG_ASSERT(len > 0 && (size_t)len < cap);
}

// out = dir/name; run directories are at most PATH_MAX - 64 bytes (choose_dir), so it fits.
static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int len = snprintf(out, cap, "%s/%s", dir, name);
    EG_ASSERT(len > 0 && (size_t)len < cap);
}

static bool has_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    path_join(p, sizeof p, dir, name);
    return exists(p);
}

// Chooses the run directory: --out, else results/<name>/<method>-seed<seed>[-n] (a new n for a
// fresh run; for --resume the newest one with a checkpoint and no DONE).
static bool choose_dir(const struct run_args *a, const struct run_config *cfg, char *dir,
                       size_t cap)
{
    if (a->out != NULL) {
        if (strlen(a->out) + 64 > cap) {
            fprintf(stderr, "error: --out %s: path too long\n", a->out);
            return false;
        }
        snprintf(dir, cap, "%s", a->out);
        if (a->resume && !has_file(dir, "checkpoint.bin")) {
            fprintf(stderr, "error: %s/checkpoint.bin: no checkpoint to resume from\n", dir);
            return false;
        }
        if (!a->resume && (has_file(dir, "metrics.csv") || has_file(dir, "hypergrad.csv"))) {
            fprintf(stderr,
                    "error: %s already holds a run (%s); choose another --out, or add "
                    "--resume to continue it\n",
                    dir, has_file(dir, "metrics.csv") ? "metrics.csv" : "hypergrad.csv");
            return false;
        }
        return true;
    }
    char base[256]; // name and method are short (config limits), so this always fits
    snprintf(base, sizeof base, "results/%s/%s-seed%llu", cfg->name, cfg->method.name,
             (unsigned long long)cfg->seed);
    int last = 0;
    for (int n = 1; n < 100000; n++) {
        numbered(dir, cap, base, n);
        if (!exists(dir)) break;
        last = n;
    }
    if (a->resume) {
        for (int n = last; n >= 1; n--) {
            numbered(dir, cap, base, n);
            if (has_file(dir, "checkpoint.bin") && !has_file(dir, "DONE")) return true;
        }
        fprintf(stderr, "error: no unfinished run with a checkpoint under %s[-N] to resume\n",
                base);
        return false;
    }
    numbered(dir, cap, base, last + 1);
    return true;
}

static bool write_config(const char *dir, const struct run_config *cfg)
{
    char p[PATH_MAX];
    path_join(p, sizeof p, dir, "config.yaml");
    FILE *f = fopen(p, "w");
    if (f == NULL) {
        fprintf(stderr, "error: %s: %s\n", p, strerror(errno));
        return false;
    }
    config_write(cfg, f);
    if (ferror(f) | (fclose(f) != 0)) {
        fprintf(stderr, "error: %s: write failed\n", p);
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// progress

struct progress {
    bool tty, quiet;
    double last_print;
    unsigned long long stop_after; // raise the stop flag at this global step (0: never)
};

static void fmt_eta(char *buf, size_t cap, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "?");
    } else if (s >= 3600) {
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    } else {
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    }
}

static void on_progress(void *ctx, const struct run_progress *p, bool epoch_end)
{
    struct progress *pr = ctx;
    if (pr->stop_after > 0 && p->global_step >= pr->stop_after && stop_signal == 0) {
        stop_signal = -1; // --stop-after: stop as a signal would, without one
    }
    double total = (double)(p->epochs * p->steps_per_epoch);
    double rate = p->elapsed_s > 0 ? (double)p->global_step / p->elapsed_s : 0.0;
    char eta[32];
    fmt_eta(eta, sizeof eta, rate > 0 ? (total - (double)p->global_step) / rate : (double)NAN);
    if (epoch_end) {
        if (pr->tty && !pr->quiet) fputs("\r\033[K", stderr);
        fprintf(stderr, "epoch %zu/%zu  train_loss %.4f", p->epoch, p->epochs, p->train_loss);
        if (!isnan(p->val_acc)) fprintf(stderr, "  val_acc %.4f", p->val_acc);
        if (!isnan(p->test_acc)) fprintf(stderr, "  test_acc %.4f", p->test_acc);
        fprintf(stderr, "  %.1f s  (ETA %s)\n", p->elapsed_s, eta);
        return;
    }
    if (!pr->tty || pr->quiet) return;
    if (p->elapsed_s - pr->last_print < 0.2 && p->step != p->steps_per_epoch) return;
    pr->last_print = p->elapsed_s;
    fprintf(stderr, "\r\033[Kepoch %zu/%zu  step %zu/%zu  %.1f steps/s  ETA %s  loss %.4f",
            p->epoch, p->epochs, p->step, p->steps_per_epoch, rate, eta, p->train_loss);
    if (!isnan(p->test_acc)) fprintf(stderr, "  test_acc %.4f", p->test_acc);
    fflush(stderr);
}

// ---------------------------------------------------------------------------------------------
// results

static const char *const summary_columns[] = {
    "name", "task", "dataset", "backbone", "method", "candidates", "sigma", "temperature", "seed",
    "epochs", "batch_size", "lr", "final_test_acc", "test_acc_ci95", "best_test_acc", "angle_deg",
    "test_acc_back",
    "final_train_loss", "sec_per_step", "sec_per_epoch", "wall_s", "peak_rss_mb", "dir",
};
#define NSUMMARY (sizeof summary_columns / sizeof summary_columns[0])

static bool write_results(const char *dir, const struct run_config *cfg,
                          const struct run_result *r)
{
    const struct task_summary *t = &r->task;
    char cells[NSUMMARY][64], seed[32], epochs[32], bs[32], cand[32], sigma[32], tau[32];
    const char *row[NSUMMARY];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg->seed);
    snprintf(epochs, sizeof epochs, "%zu", r->epochs_done);
    snprintf(bs, sizeof bs, "%zu", t->batch_size);
    snprintf(cand, sizeof cand, "%zu", cfg->method.candidates);
    csv_fmt(sigma, cfg->method.sigma);
    csv_fmt(tau, cfg->method.temperature);
    const char *text[] = {cfg->name, cfg->task, t->dataset, t->backbone, cfg->method.name, cand,
                          sigma,     tau,       seed,       epochs,      bs};
    size_t i = 0;
    for (; i < sizeof text / sizeof text[0]; i++) row[i] = text[i];
    const double nums[] = {t->lr,           t->test_acc,         t->test_ci95,
                           t->best_acc,     t->angle_deg,        t->acc_back,
                           r->final_train_loss, r->sec_per_step, r->sec_per_epoch,
                           r->wall_s,       r->peak_rss_mb};
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++, i++) {
        row[i] = csv_fmt(cells[i], nums[k]);
    }
    row[i++] = dir;
    EG_ASSERT(i == NSUMMARY);

    struct eg_error err;
    char p[PATH_MAX], parent[PATH_MAX];
    path_join(p, sizeof p, dir, "summary.csv");
    struct csv *c = NULL;
    if (csv_create(p, summary_columns, NSUMMARY, &c, &err) != EG_OK ||
        csv_row(c, row, &err) != EG_OK || csv_close(c, &err) != EG_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return false;
    }
    // runs.csv beside the run directories: results/<name>/runs.csv
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash != NULL) {
        *slash = '\0';
    } else {
        snprintf(parent, sizeof parent, ".");
    }
    path_join(p, sizeof p, parent, "runs.csv");
    if (csv_append_locked(p, summary_columns, row, NSUMMARY, &err) != EG_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return false;
    }
    path_join(p, sizeof p, dir, "DONE");
    FILE *f = fopen(p, "w");
    if (f == NULL || fclose(f) != 0) {
        fprintf(stderr, "error: %s: %s\n", p, strerror(errno));
        return false;
    }
    return true;
}

int cmd_run(int argc, char **argv)
{
    struct run_args a;
    if (!parse_args(argc, argv, true, &a)) return EXIT_USAGE;
    struct run_config cfg;
    if (!load_config(&a, &cfg)) return EXIT_FAILURE;
    char dir[PATH_MAX];
    if (!choose_dir(&a, &cfg, dir, sizeof dir)) return EXIT_FAILURE;
    if (!make_dirs(dir)) {
        fprintf(stderr, "error: %s: cannot create the run directory: %s\n", dir, strerror(errno));
        return EXIT_FAILURE;
    }
    if (!a.resume && !write_config(dir, &cfg)) return EXIT_RUN_FAILED;

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct progress pr = {
        .tty = isatty(STDERR_FILENO) == 1, .quiet = a.quiet, .stop_after = a.stop_after};
    char what[256];
    run_describe(&cfg, what, sizeof what);
    fprintf(stderr, "%s %s: %s -> %s\n", a.resume ? "resuming" : "run", cfg.name, what, dir);
    struct run_options opts = {
        .dir = dir,
        .resume = a.resume,
        .stop = &stop_signal,
        .progress = on_progress,
        .progress_ctx = &pr,
    };
    struct run_result r;
    struct eg_error err;
    enum eg_status st = run_experiment(&cfg, &opts, &r, &err);
    if (pr.tty && !pr.quiet) fputs("\r\033[K", stderr);
    if (st != EG_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return st == EG_ERR_DIVERGED || st == EG_ERR_IO ? EXIT_RUN_FAILED : EXIT_FAILURE;
    }
    if (r.stopped) {
        int sig = (int)stop_signal;
        fprintf(stderr,
                "stopped by %s at global step %zu (%zu epochs complete); checkpoint written.\n"
                "continue with: evograd run %s --resume --out %s\n",
                sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "--stop-after",
                r.global_step, r.epochs_done, a.config, dir);
        return sig > 0 ? 128 + sig : EXIT_SUCCESS;
    }
    if (!write_results(dir, &cfg, &r)) return EXIT_RUN_FAILED;
    if (isnan(r.sec_per_step)) { // a whole-run task
        fprintf(stderr, "done: %s in %.3f s\n", r.task.result, r.wall_s);
    } else {
        fprintf(stderr, "done: %s, %.3f s per step, peak RSS %.0f MB\n", r.task.result,
                r.sec_per_step, r.peak_rss_mb);
    }
    printf("%s\n", dir); // the run directory, for scripts: dir=$(evograd run ...)
    return EXIT_SUCCESS;
}
