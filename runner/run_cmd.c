/* run_cmd.c - `evograd run` and `evograd check`: arguments, the run directory, progress on
 * stderr, signals, and the files written around the training loop (config.yaml before;
 * summary.csv, the shared runs.csv and DONE after). */
#include "commands.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
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
    const char *runs;              // --runs FILE: the table the summary row is appended to
    const char *sweep;             // --sweep ID: the sweep the run belongs to ("" for none)
};

static void usage(FILE *f, bool run)
{
    if (run) {
        fputs("usage: evograd run CONFIG.yaml [key.path=value ...] [--out DIR] [--runs FILE] "
              "[--resume] [--quiet] [--stop-after STEPS] [--sweep ID]\n",
              f);
    } else {
        fputs("usage: evograd check CONFIG.yaml [key.path=value ...]\n", f);
    }
}

static void help(bool run)
{
    usage(stdout, run);
    if (run) {
        fputs("Trains as the config says, with the overrides applied (evograd list config: every\n"
              "key). Results go to results/<name>/<method>-seed<seed>[-N]/, or DIR.\n"
              "  -o, --out DIR         the run folder (then a runs table only with --runs)\n"
              "      --runs FILE       append the summary row to this runs table\n"
              "  -r, --resume          continue the folder's checkpointed run exactly\n"
              "  -q, --quiet           print only errors and the final line\n"
              "      --stop-after N    checkpoint and stop after N steps of this invocation\n"
              "      --sweep ID        the sweep id the summary row records (evograd sweep)\n"
              "  -h, --help            this help\n"
              "Options take their value as --opt VALUE or --opt=VALUE; -- ends the options.\n",
              stdout);
    } else {
        fputs("Loads and checks the config with the overrides applied and prints it resolved:\n"
              "every key the task reads, defaults filled in (a run's config.yaml is the same\n"
              "text). A key the task never reads, set to another value than its default, is an\n"
              "error naming the key, the task and the tasks that read it.\n"
              "  -h, --help            this help\n",
              stdout);
    }
}

// An option's value that is another option is a missing value, not a folder named --resume.
static bool value_ok(const char *cmd, const char *opt, const char *v, const char *what)
{
    if (v[0] == '-' && v[1] == '-') {
        fprintf(stderr, "evograd %s: %s needs %s, not the option '%s'\n", cmd, opt, what, v);
        return false;
    }
    return true;
}

// Parses CONFIG, overrides and options (getopt_long: --opt VALUE, --opt=VALUE, -- ends them).
// ARGS_PARSED to go on; else the exit status: 0 after --help, EXIT_USAGE after a usage error (printed).
static int parse_args(int argc, char **argv, bool run, struct run_args *a)
{
    *a = (struct run_args){0};
    const char *cmd = run ? "run" : "check";
    enum { OPT_RUNS = 256, OPT_SWEEP, OPT_STOP_AFTER };
    static const struct option run_opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"runs", required_argument, NULL, OPT_RUNS},
        {"sweep", required_argument, NULL, OPT_SWEEP},
        {"resume", no_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},
        {"stop-after", required_argument, NULL, OPT_STOP_AFTER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const struct option check_opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char **av = getopt_vector(argc, argv, run ? "evograd run" : "evograd check");
    int ac = argc + 1, status = ARGS_PARSED, c;
    opterr = 0;
    optind = 0; // glibc: a full reset (the tests parse more than once in one process)
    while (status == ARGS_PARSED &&
           (c = getopt_long(ac, av, run ? ":o:rqh" : ":h", run ? run_opts : check_opts, NULL)) !=
               -1) {
        const char *opt = av[optind - 1];
        switch (c) {
        case 'h':
            help(run);
            status = EXIT_SUCCESS;
            break;
        case 'o':
            if (!value_ok(cmd, "--out", optarg, "a directory")) status = EXIT_USAGE;
            a->out = optarg;
            break;
        case OPT_RUNS:
            if (!value_ok(cmd, "--runs", optarg, "a file")) status = EXIT_USAGE;
            a->runs = optarg;
            break;
        case OPT_SWEEP:
            if (optarg[0] == '\0' || optarg[0] == '-' || strpbrk(optarg, ",\"\n\r") != NULL) {
                fprintf(stderr, "evograd run: --sweep needs an id (no comma, quote or newline)\n");
                status = EXIT_USAGE;
            }
            a->sweep = optarg;
            break;
        case 'r': a->resume = true; break;
        case 'q': a->quiet = true; break;
        case OPT_STOP_AFTER: {
            char *end = NULL;
            errno = 0;
            a->stop_after = strtoull(optarg, &end, 10);
            if (end == optarg || *end != '\0' || errno == ERANGE || a->stop_after == 0 ||
                optarg[0] == '-') {
                fprintf(stderr, "evograd run: --stop-after needs a number of steps >= 1\n");
                status = EXIT_USAGE;
            }
            break;
        }
        default:
            option_error(cmd, c, opt);
            status = EXIT_USAGE;
            break;
        }
    }
    for (int i = optind; status == ARGS_PARSED && i < ac; i++) {
        const char *s = av[i];
        if (a->config == NULL) {
            a->config = s;
        } else if (strchr(s, '=') != NULL) {
            if (a->noverrides == MAX_OVERRIDES) {
                fprintf(stderr, "evograd %s: more than %d overrides\n", cmd, MAX_OVERRIDES);
                status = EXIT_USAGE;
            } else {
                a->overrides[a->noverrides++] = s;
            }
        } else {
            fprintf(stderr, "evograd %s: '%s' is neither an option nor a key.path=value override\n",
                    cmd, s);
            status = EXIT_USAGE;
        }
    }
    free(av);
    if (status == ARGS_PARSED && a->config == NULL) {
        usage(stderr, run);
        status = EXIT_USAGE;
    }
    return status;
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
    int st = parse_args(argc, argv, false, &a);
    if (st != ARGS_PARSED) return st;
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

// mkdir -p (commands.h).
bool make_dirs(const char *path)
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

// out = dir/name; run directories are at most PATH_MAX - 64 bytes (open_dir), so it fits.
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

// ---------------------------------------------------------------------------------------------
// claiming a run directory
//
// A run holds an exclusive lock on DIR/.evograd.lock (fcntl, so the holder's pid can be named)
// from before it looks at the folder until it exits; the kernel drops the lock when the process
// ends, however it ends. While holding it, a run is the only writer of the folder, so leftovers
// of dead runs (checkpoint.bin.tmp.<pid>) are removed.

#define LOCK_NAME ".evograd.lock"

// Takes the lock of dir (kept until exit: the descriptor is never closed). Prints the error and
// returns false when another process holds it or the file cannot be made.
static bool claim_dir(const char *dir)
{
    char p[PATH_MAX];
    path_join(p, sizeof p, dir, LOCK_NAME);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "error: %s: cannot use the run directory: %s\n", dir, strerror(errno));
        return false;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) == 0) return true;
    int e = errno;
    struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    bool named = (e == EACCES || e == EAGAIN) && fcntl(fd, F_GETLK, &who) == 0 &&
                 who.l_type != F_UNLCK;
    close(fd);
    if (e != EACCES && e != EAGAIN) {
        fprintf(stderr, "error: %s: cannot lock the run directory: %s\n", dir, strerror(e));
    } else if (named) {
        fprintf(stderr,
                "error: %s is in use by another evograd run (process %ld); wait for it to end "
                "or choose another --out\n",
                dir, (long)who.l_pid);
    } else {
        fprintf(stderr, "error: %s is in use by another evograd run; wait for it to end or "
                        "choose another --out\n", dir);
    }
    return false;
}

// Removes checkpoint.bin.tmp.<pid> files left in dir by killed runs (the caller holds the lock).
static void remove_stale_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    static const char prefix[] = "checkpoint.bin.tmp.";
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, prefix, sizeof prefix - 1) != 0) continue;
        char p[PATH_MAX];
        path_join(p, sizeof p, dir, e->d_name);
        if (unlink(p) == 0) fprintf(stderr, "removed %s (left by a killed run)\n", p);
    }
    closedir(d);
}

// Whether dir/config.yaml holds another config than cfg: 0 the same (the same keys resolve to
// the same values, however the file is written), -1 there is no config.yaml, 1 another, with
// how in why ("train.epochs is 5 there, 3 here", or why the file does not load).
static int config_differs(const char *dir, const struct run_config *cfg, char *why, size_t cap)
{
    char p[PATH_MAX];
    path_join(p, sizeof p, dir, "config.yaml");
    if (!exists(p)) return -1;
    struct run_config there;
    struct eg_error err;
    if (config_load(p, NULL, 0, &there, &err) != EG_OK) {
        snprintf(why, cap, "it does not load: %s", err.msg);
        return 1;
    }
    char key[160], va[256], vb[256]; // a long value (data.root) is shown cut short
    if (!config_first_difference(&there, cfg, key, sizeof key, va, vb, sizeof va)) return 0;
    snprintf(why, cap, "%s is %s there, %s here", key, va, vb);
    return 1;
}

// Files of an unfinished run that mark the folder as holding one; removed when it restarts.
static const char *const run_files[] = {"metrics.csv", "hypergrad.csv", "summary.csv"};

// Whether the unfinished run in dir got as far as results: a metrics.csv row, or a toy1d or
// summary file. One that did not (its start failed or it was killed before its first epoch's
// row) holds nothing of value, whatever its config.
static bool trained(const char *dir)
{
    if (has_file(dir, "hypergrad.csv") || has_file(dir, "summary.csv")) return true;
    char p[PATH_MAX];
    path_join(p, sizeof p, dir, "metrics.csv");
    FILE *f = fopen(p, "r");
    if (f == NULL) return false;
    int lines = 0;
    for (int ch; lines < 2 && (ch = fgetc(f)) != EOF;) lines += ch == '\n';
    fclose(f);
    return lines >= 2;
}

// What dir holds. Called with the lock held.
enum dir_state { DIR_EMPTY, DIR_UNFINISHED, DIR_RESUMABLE, DIR_COMPLETE };

static enum dir_state dir_state_of(const char *dir)
{
    if (has_file(dir, "DONE")) return DIR_COMPLETE;
    if (has_file(dir, "checkpoint.bin")) return DIR_RESUMABLE;
    for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
        if (has_file(dir, run_files[i])) return DIR_UNFINISHED;
    }
    return has_file(dir, "config.yaml") ? DIR_UNFINISHED : DIR_EMPTY;
}

// Decides whether this run may use the claimed folder dir: a fresh run needs it empty, or
// holding an unfinished run that never wrote a checkpoint (nothing of it was complete: it
// restarts in place) of the same config, or of any config if it has no results yet; --resume
// needs a checkpoint and no DONE.
static bool may_use(const char *dir, const struct run_config *cfg, bool resume)
{
    enum dir_state s = dir_state_of(dir);
    if (s == DIR_COMPLETE) {
        fprintf(stderr, "error: %s holds a complete run (DONE)%s; choose another --out\n", dir,
                resume ? ": there is nothing to resume" : "");
        return false;
    }
    if (resume) {
        if (s == DIR_RESUMABLE) return true;
        if (s == DIR_UNFINISHED) {
            fprintf(stderr,
                    "error: %s: the run there stopped before its first checkpoint, so there is "
                    "nothing to resume; run it again without --resume to restart it in place\n",
                    dir);
        } else {
            fprintf(stderr, "error: %s/checkpoint.bin: no checkpoint to resume from\n", dir);
        }
        return false;
    }
    if (s == DIR_RESUMABLE) {
        fprintf(stderr,
                "error: %s already holds a run with a checkpoint; add --resume to continue it, "
                "or choose another --out\n",
                dir);
        return false;
    }
    if (s == DIR_EMPTY) return true;
    char why[sizeof ((struct eg_error *)0)->msg + 64];
    int differs = config_differs(dir, cfg, why, sizeof why);
    if (differs != 0 && !trained(dir)) differs = 0; // it failed or was killed before its first step
    if (differs != 0) {
        if (differs < 0) {
            fprintf(stderr, "error: %s holds files of a run but no config.yaml; choose another "
                            "--out\n", dir);
        } else {
            fprintf(stderr,
                    "error: %s holds an unfinished run of another config (its config.yaml: %s); "
                    "choose another --out, or delete the folder\n",
                    dir, why);
        }
        return false;
    }
    for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
        char p[PATH_MAX];
        path_join(p, sizeof p, dir, run_files[i]);
        if (unlink(p) != 0 && errno != ENOENT) {
            fprintf(stderr, "error: %s: %s\n", p, strerror(errno));
            return false;
        }
    }
    fprintf(stderr, "restarting the unfinished run in %s (it stopped before its first "
                    "checkpoint; nothing of it was complete)\n", dir);
    return true;
}

// Claims a folder that may hold an earlier run: the lock, then the leftovers of killed runs
// removed, then whether this run may use it (may_use).
static bool claim_existing(const char *dir, const struct run_config *cfg, bool resume)
{
    if (!claim_dir(dir)) return false;
    remove_stale_temporaries(dir);
    return may_use(dir, cfg, resume);
}

// A path that a CSV cell and a shell line can carry: no control characters.
static bool plain_path(const char *opt, const char *path)
{
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if (*c < 32 || *c == 127) {
            fprintf(stderr,
                    "error: %s: the path holds a control character (byte %u at offset %zu); "
                    "choose another\n",
                    opt, (unsigned)*c, (size_t)(c - (const unsigned char *)path));
            return false;
        }
    }
    return true;
}

// Chooses, creates and claims the run directory: --out, else results/<name>/<method>-seed<seed>
// [-N] (for a fresh run a new N, made with an exclusive mkdir so that runs started together
// never share one; for --resume the newest one with a checkpoint and no DONE). dir is at most
// PATH_MAX - 64 bytes.
static bool open_dir(const struct run_args *a, const struct run_config *cfg, char *dir,
                     size_t cap)
{
    if (a->out != NULL) {
        if (strlen(a->out) + 64 > cap) {
            fprintf(stderr, "error: --out %s: path too long\n", a->out);
            return false;
        }
        if (!plain_path("--out", a->out)) return false;
        snprintf(dir, cap, "%s", a->out);
        if (a->resume && !is_dir(dir)) {
            fprintf(stderr, "error: %s/checkpoint.bin: no checkpoint to resume from\n", dir);
            return false;
        }
        if (!make_dirs(dir)) {
            fprintf(stderr, "error: %s: cannot create the run directory: %s\n", dir,
                    strerror(errno));
            return false;
        }
        return claim_existing(dir, cfg, a->resume);
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
            if (has_file(dir, "checkpoint.bin") && !has_file(dir, "DONE")) {
                return claim_existing(dir, cfg, true);
            }
        }
        fprintf(stderr, "error: no unfinished run with a checkpoint under %s[-N] to resume\n",
                base);
        return false;
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "results/%s", cfg->name);
    if (!make_dirs(parent)) {
        fprintf(stderr, "error: %s: cannot create the folder: %s\n", parent, strerror(errno));
        return false;
    }
    for (int n = last + 1; n < 100000; n++) { // mkdir is the claim: one winner per name
        numbered(dir, cap, base, n);
        if (mkdir(dir, 0755) == 0) return claim_dir(dir);
        if (errno != EEXIST) {
            fprintf(stderr, "error: %s: cannot create the run directory: %s\n", dir,
                    strerror(errno));
            return false;
        }
    }
    fprintf(stderr, "error: %s: no free run number below 100000\n", base);
    return false;
}

// The runs table a finished run appends its row to: --runs FILE; else, for a default run folder,
// results/<name>/runs.csv beside it; else (--out without --runs) none, so that a run never
// writes into a folder the user did not name. runs is "" for none. The file's folder must exist,
// unless it holds the run's own folder (--out results/x/run --runs results/x/runs.csv, as
// `evograd sweep` writes them): then it is made, as the run folder's parents are.
static bool runs_path(const struct run_args *a, const struct run_config *cfg, char *runs,
                      size_t cap)
{
    runs[0] = '\0';
    if (a->runs == NULL) {
        if (a->out == NULL) snprintf(runs, cap, "results/%s/runs.csv", cfg->name);
        return true;
    }
    if (strlen(a->runs) + 1 > cap) {
        fprintf(stderr, "error: --runs %s: path too long\n", a->runs);
        return false;
    }
    if (!plain_path("--runs", a->runs)) return false;
    snprintf(runs, cap, "%s", a->runs);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", runs);
    char *slash = strrchr(parent, '/');
    if (slash == NULL) {
        snprintf(parent, sizeof parent, ".");
    } else {
        slash[slash == parent ? 1 : 0] = '\0';
    }
    const size_t plen = strlen(parent);
    if (!is_dir(parent) && a->out != NULL && slash != NULL && strncmp(a->out, parent, plen) == 0 &&
        a->out[plen] == '/' && !make_dirs(parent)) {
        fprintf(stderr, "error: --runs %s: cannot make its folder: %s\n", runs, strerror(errno));
        return false;
    }
    if (is_dir(runs) || !is_dir(parent) || access(parent, W_OK) != 0) {
        fprintf(stderr, "error: --runs %s: %s\n", runs,
                is_dir(runs) ? "is a folder, expected a CSV file"
                             : "its folder does not exist or is not writable");
        return false;
    }
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

// A copy of a command's arguments for getopt, which wants the program's name first and
// permutes the vector: name, argv[0..argc-1], NULL. Caller frees (the vector, not the strings).
char **getopt_vector(int argc, char **argv, const char *name)
{
    char **av = eg_xmalloc(((size_t)argc + 2) * sizeof *av);
    av[0] = (char *)name;
    for (int i = 0; i < argc; i++) av[i + 1] = argv[i];
    av[argc + 1] = NULL;
    return av;
}

void option_error(const char *cmd, int c, const char *opt)
{
    if (c == ':') {
        fprintf(stderr, "evograd %s: %s needs a value\n", cmd, opt);
    } else if (optopt > 0 && optopt < 256 && opt[1] != '-') { // a letter, maybe in a cluster (-qx)
        fprintf(stderr, "evograd %s: unknown option '-%c' (try evograd %s --help)\n", cmd, optopt,
                cmd);
    } else {
        fprintf(stderr, "evograd %s: unknown option '%s' (try evograd %s --help)\n", cmd, opt, cmd);
    }
}

// Prints an argument for a POSIX shell: as it is when it needs no quoting, else single-quoted.
void print_shell_word(FILE *f, const char *w)
{
    bool plain = w[0] != '\0';
    for (const char *p = w; *p != '\0'; p++) {
        plain = plain && strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "._-/=:,+@%",
                                *p) != NULL;
    }
    if (plain) {
        fputs(w, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = w; *p != '\0'; p++) {
        if (*p == '\'') {
            fputs("'\\''", f);
        } else {
            fputc(*p, f);
        }
    }
    fputc('\'', f);
}

// ---------------------------------------------------------------------------------------------
// progress

struct progress {
    bool tty, quiet;
    double last_print;
    unsigned long long stop_after; // raise the stop flag after this many steps of this
                                   // invocation (0: never)
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
    if (pr->stop_after > 0 && p->session_steps >= pr->stop_after && stop_signal == 0) {
        stop_signal = -1; // --stop-after: stop as a signal would, without one
    }
    double total = (double)(p->epochs * p->steps_per_epoch);
    double rate = p->elapsed_s > 0 ? (double)p->global_step / p->elapsed_s : 0.0;
    char eta[32];
    fmt_eta(eta, sizeof eta, rate > 0 ? (total - (double)p->global_step) / rate : (double)NAN);
    if (pr->quiet) return; // --quiet: errors and the final line only
    if (epoch_end) {
        if (pr->tty) fputs("\r\033[K", stderr);
        fprintf(stderr, "epoch %zu/%zu  train_loss %.4f", p->epoch, p->epochs, p->train_loss);
        if (!isnan(p->val_acc)) fprintf(stderr, "  val_acc %.4f", p->val_acc);
        if (!isnan(p->test_acc)) fprintf(stderr, "  test_acc %.4f", p->test_acc);
        fprintf(stderr, "  %.1f s  (ETA %s)\n", p->elapsed_s, eta);
        return;
    }
    if (!pr->tty) return;
    if (p->elapsed_s - pr->last_print < 0.2 && p->step != p->steps_per_epoch) return;
    pr->last_print = p->elapsed_s;
    fprintf(stderr, "\r\033[Kepoch %zu/%zu  step %zu/%zu  %.1f steps/s  ETA %s  loss %.4f",
            p->epoch, p->epochs, p->step, p->steps_per_epoch, rate, eta, p->train_loss);
    if (!isnan(p->test_acc)) fprintf(stderr, "  test_acc %.4f", p->test_acc);
    fflush(stderr);
}

// ---------------------------------------------------------------------------------------------
// results

// The figures of a run; after them, its sweep id and every config key (results/README.md).
static const char *const summary_columns[] = {
    "name", "task", "dataset", "backbone", "method", "candidates", "sigma", "temperature", "seed",
    "epochs", "batch_size", "lr", "final_test_acc", "test_acc_ci95", "best_test_acc", "angle_deg",
    "test_acc_back", "diag_cosine_mean",
    "final_train_loss", "sec_per_step", "sec_per_epoch", "wall_s", "peak_rss_mb", "dir",
};
#define NSUMMARY (sizeof summary_columns / sizeof summary_columns[0])

// The whole row: the figures' columns and cells, "sweep", then each config key by its dotted
// name and value (name, task and seed are figures' columns already).
#define SUMMARY_MAX (NSUMMARY + 1 + 256)
struct summary_row {
    const char *columns[SUMMARY_MAX];
    const char *cells[SUMMARY_MAX];
    char *owned[2 * 256]; // the config keys' names and values
    size_t n, nowned;
};

static void add_config_cell(void *ctx, const char *path, const char *value)
{
    struct summary_row *r = ctx;
    if (strcmp(path, "name") == 0 || strcmp(path, "task") == 0 || strcmp(path, "seed") == 0) {
        return;
    }
    EG_ASSERT(r->n < SUMMARY_MAX && r->nowned + 2 <= sizeof r->owned / sizeof r->owned[0]);
    // an empty string (YAML "") is an empty cell
    const bool empty = strcmp(value, "\"\"") == 0 || strcmp(value, "''") == 0;
    char *name = eg_xstrdup(path), *cell = eg_xstrdup(empty ? "" : value);
    r->owned[r->nowned++] = name;
    r->owned[r->nowned++] = cell;
    r->columns[r->n] = name;
    r->cells[r->n++] = cell;
}

static void summary_row_free(struct summary_row *r)
{
    for (size_t i = 0; i < r->nowned; i++) free(r->owned[i]);
}

// The summary's columns for cfg (cells unset).
static void summary_columns_of(const struct run_config *cfg, struct summary_row *r)
{
    *r = (struct summary_row){0};
    for (size_t k = 0; k < NSUMMARY; k++) r->columns[k] = summary_columns[k];
    r->n = NSUMMARY;
    r->columns[r->n++] = "sweep";
    config_each_value(cfg, add_config_cell, r);
}

// Before the run: an existing runs table must have this run's columns (its row is appended at
// the end, after hours of training perhaps). One from an earlier evograd has fewer.
static bool runs_table_fits(const char *runs, const struct run_config *cfg)
{
    if (runs[0] == '\0') return true;
    struct summary_row r;
    summary_columns_of(cfg, &r);
    struct eg_error err;
    const enum eg_status st = csv_check_header(runs, r.columns, r.n, &err);
    summary_row_free(&r);
    if (st == EG_ERR_FORMAT) {
        fprintf(stderr,
                "error: %s: its columns are not this run's (a table from an earlier evograd, "
                "which had fewer, or a damaged one): move it aside (mv %s %s.old) or give "
                "--runs another file\n",
                runs, runs, runs);
    } else if (st != EG_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
    }
    return st == EG_OK;
}

// summary.csv, the runs table's row (runs: its path, "" for none) and DONE, in this order.
static bool write_results(const char *dir, const char *runs, const char *sweep,
                          const struct run_config *cfg, const struct run_result *r)
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
                           t->diag_cosine,  r->final_train_loss, r->sec_per_step, r->sec_per_epoch,
                           r->wall_s,       r->peak_rss_mb};
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++, i++) {
        row[i] = csv_fmt(cells[i], nums[k]);
    }
    row[i++] = dir;
    EG_ASSERT(i == NSUMMARY);
    struct summary_row all;
    summary_columns_of(cfg, &all);
    for (size_t k = 0; k < NSUMMARY; k++) all.cells[k] = row[k];
    all.cells[NSUMMARY] = sweep != NULL ? sweep : "";
    // (summary_columns_of filled the config keys' columns and cells)

    struct eg_error err;
    char p[PATH_MAX];
    path_join(p, sizeof p, dir, "summary.csv");
    struct csv *c = NULL;
    bool ok = csv_create(p, all.columns, all.n, &c, &err) == EG_OK &&
              csv_row(c, all.cells, &err) == EG_OK && csv_close(c, &err) == EG_OK;
    if (ok && runs[0] != '\0') {
        ok = csv_append_locked(runs, all.columns, all.cells, all.n, &err) == EG_OK;
    }
    summary_row_free(&all);
    if (!ok) {
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
    int parsed = parse_args(argc, argv, true, &a);
    if (parsed != ARGS_PARSED) return parsed;
    struct run_config cfg;
    if (!load_config(&a, &cfg)) return EXIT_FAILURE;
    char dir[PATH_MAX], runs[PATH_MAX];
    if (!runs_path(&a, &cfg, runs, sizeof runs) || !runs_table_fits(runs, &cfg)) return EXIT_FAILURE;
    if (!open_dir(&a, &cfg, dir, sizeof dir)) return EXIT_FAILURE;
    if (!a.resume && !write_config(dir, &cfg)) return EXIT_FAILURE;

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct progress pr = {
        .tty = isatty(STDERR_FILENO) == 1, .quiet = a.quiet, .stop_after = a.stop_after};
    char what[256];
    run_describe(&cfg, what, sizeof what);
    if (!a.quiet) {
        fprintf(stderr, "%s %s: %s -> %s\n", a.resume ? "resuming" : "run", cfg.name, what, dir);
    }
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
    if (st != EG_OK) { // before the first step it is the input's fault (README: exit status)
        fprintf(stderr, "error: %s\n", err.msg);
        return r.started ? EXIT_RUN_FAILED : EXIT_FAILURE;
    }
    if (r.stopped) {
        int sig = (int)stop_signal;
        // the hint resumes from the folder's own config.yaml: the resolved config, overrides
        // included, so it works whatever the command line was
        char saved[PATH_MAX];
        path_join(saved, sizeof saved, dir, "config.yaml");
        fprintf(stderr,
                "stopped by %s at global step %zu (%zu epochs complete); checkpoint written.\n"
                "continue with: evograd run ",
                sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "--stop-after",
                r.global_step, r.epochs_done);
        print_shell_word(stderr, saved);
        fputs(" --resume --out ", stderr);
        print_shell_word(stderr, dir);
        if (runs[0] != '\0') {
            fputs(" --runs ", stderr);
            print_shell_word(stderr, runs);
        }
        if (a.sweep != NULL && a.sweep[0] != '\0') {
            fputs(" --sweep ", stderr);
            print_shell_word(stderr, a.sweep);
        }
        fputc('\n', stderr);
        return sig > 0 ? 128 + sig : EXIT_SUCCESS;
    }
    if (!write_results(dir, runs, a.sweep, &cfg, &r)) return EXIT_RUN_FAILED;
    if (isnan(r.sec_per_step)) { // a whole-run task
        fprintf(stderr, "done: %s in %.3f s\n", r.task.result, r.wall_s);
    } else {
        fprintf(stderr, "done: %s, %.3f s per step, peak RSS %.0f MB\n", r.task.result,
                r.sec_per_step, r.peak_rss_mb);
    }
    printf("%s\n", dir); // the run directory, for scripts: dir=$(evograd run ...)
    return EXIT_SUCCESS;
}
