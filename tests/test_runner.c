/* test_runner.c - the evograd command end to end on tiny synthetic experiments: outputs,
 * re-running from the written config, resume after a stop (and after SIGTERM), divergence,
 * refused checkpoints, bad configs, concurrent runs sharing runs.csv, and the run folder's
 * rules: one run at a time holds it, a complete run is never resumed or rerun, a run stopped
 * before its first checkpoint restarts in place, leftovers of killed runs are removed, and
 * paths that CSV must quote. The binary's path comes from EVOGRAD_BIN (set by `make test`). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>
#include <unistd.h>

#include "core/alloc.h"
#include "helpers.h"
#include "meta/hyper.h"
#include "run/task.h"

TestSuite(runner, .init = e2e_setup, .fini = e2e_teardown);

// Whether e2e_dir/rel exists.
static bool exists(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", e2e_dir, rel);
    return access(p, F_OK) == 0;
}

static bool missing(const char *rel)
{
    return exists(rel) == false;
}

// A tiny experiment: an MLP on a synthetic 3x8x8 set, 3 epochs of 4 steps.
static const char tiny_config[] = "name: tiny\n"
                                  "seed: 3\n"
                                  "threads: 1\n"
                                  "data:\n"
                                  "  dataset: synthetic\n"
                                  "  image_c: 3\n"
                                  "  image_h: 8\n"
                                  "  image_w: 8\n"
                                  "  classes: 4\n"
                                  "  synthetic_train: 200\n"
                                  "  synthetic_test: 64\n"
                                  "  crop_pad: 2\n"
                                  "  hflip: true\n"
                                  "backbone: {name: mlp, hidden: [32]}\n"
                                  "train:\n"
                                  "  epochs: 3\n"
                                  "  batch_size: 50\n"
                                  "  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}\n"
                                  "eval: {every_epochs: 1, batch_size: 32}\n"
                                  "checkpoint: {every_epochs: 1}\n";

static void write_tiny(void)
{
    e2e_write("tiny.yaml", tiny_config);
}

Test(runner, run_writes_every_output_and_rerun_from_its_config_matches)
{
    write_tiny();
    const char *a1[] = {"run", "tiny.yaml", "--out", "r1", "--runs", "runs.csv", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a1, NULL), 0), "%s", e2e_read("stderr.txt"));
    const char *files[] = {"r1/config.yaml", "r1/metrics.csv", "r1/summary.csv", "r1/DONE",
                           "r1/checkpoint.bin"};
    for (size_t i = 0; i < 5; i++) cr_assert(exists(files[i]), "%s", files[i]);
    cr_assert(exists("runs.csv"));
    char *m = e2e_metrics_without_clock("r1");
    size_t lines = 0;
    for (char *c = m; *c; c++) lines += *c == '\n';
    cr_assert(eq(sz, lines, 4), "%s", m); // header + 3 epochs
    cr_assert(strncmp(m, "epoch,step,,train_loss,val_loss,test_acc", 40) == 0, "%s", m);

    const char *a2[] = {"run", "r1/config.yaml", "--out", "r2", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a2, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *m2 = e2e_metrics_without_clock("r2");
    cr_assert(strcmp(m, m2) == 0, "first:\n%s\nsecond:\n%s", m, m2);
    free(m);
    free(m2);
}

// Resumes the run in part/ and checks that its metrics equal those of the uninterrupted run in
// full/ (clock columns aside).
static void resume_part_and_compare(void)
{
    const char *resume[] = {"run", "tiny.yaml", "--out", "part", "--quiet", "--resume", NULL};
    cr_assert(eq(int, e2e_run(resume, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *a = e2e_metrics_without_clock("full"), *b = e2e_metrics_without_clock("part");
    cr_assert(strcmp(a, b) == 0, "uninterrupted:\n%s\nresumed:\n%s", a, b);
    free(a);
    free(b);
}

Test(runner, resume_after_stop_equals_an_uninterrupted_run)
{
    write_tiny();
    const char *full[] = {"run", "tiny.yaml", "--out", "full", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(full, NULL), 0), "%s", e2e_read("stderr.txt"));
    // stop mid-epoch 2 (steps 4 per epoch), then resume
    const char *part[] = {"run", "tiny.yaml", "--out", "part", "--quiet", "--stop-after", "6",
                          NULL};
    cr_assert(eq(int, e2e_run(part, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(exists("part/checkpoint.bin") && exists("part/DONE") == false);
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "--resume") != NULL, "%s", err);
    free(err);
    resume_part_and_compare();
}

Test(runner, sigterm_checkpoints_and_resume_completes_identically)
{
    write_tiny();
    e2e_write("tiny.yaml",
              "name: tiny\nthreads: 1\ndata: {dataset: synthetic, image_c: 3, image_h: 8, "
              "image_w: 8, classes: 4, synthetic_train: 1000, synthetic_test: 64}\n"
              "backbone: {name: mlp, hidden: [64]}\ntrain: {epochs: 20, batch_size: 10}\n");
    const char *full[] = {"run", "tiny.yaml", "--out", "full", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(full, NULL), 0), "%s", e2e_read("stderr.txt"));
    // e2e_run tests kill_when from the test's working directory: an absolute path
    char p[256];
    snprintf(p, sizeof p, "%s/part/metrics.csv", e2e_dir);
    const char *part[] = {"run", "tiny.yaml", "--out", "part", "--quiet", NULL};
    int st = e2e_run(part, p);
    if (st == 0) cr_skip_test("the run finished before SIGTERM arrived");
    cr_assert(eq(int, st, 143), "%s", e2e_read("stderr.txt"));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "SIGTERM") != NULL && strstr(err, "--resume") != NULL, "%s", err);
    free(err);
    resume_part_and_compare();
}

Test(runner, resume_refuses_a_checkpoint_of_another_config)
{
    write_tiny();
    const char *part[] = {"run", "tiny.yaml", "--out", "part", "--quiet", "--stop-after", "2",
                          NULL};
    cr_assert(eq(int, e2e_run(part, NULL), 0), "%s", e2e_read("stderr.txt"));
    const char *other[] = {"run", "tiny.yaml", "seed=4", "--out", "part", "--resume", NULL};
    cr_assert(eq(int, e2e_run(other, NULL), 1));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "checkpoint.bin") != NULL && strstr(err, "different config") != NULL,
              "%s", err);
    free(err);
}

Test(runner, divergence_exits_3_and_keeps_metrics)
{
    write_tiny();
    const char *a[] = {"run", "tiny.yaml", "train.optimizer.lr=1e30", "--out", "nan", "--quiet",
                       NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 3));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "diverged") != NULL && strstr(err, "epoch 1") != NULL, "%s", err);
    free(err);
    cr_assert(exists("nan/metrics.csv") && exists("nan/DONE") == false);
}

Test(runner, bad_config_exits_1_with_location_before_any_output)
{
    write_tiny();
    e2e_write("bad.yaml", "name: bad\ntrain:\n  epochs: 2\n  optimzer: {lr: 0.1}\n");
    const char *a[] = {"run", "bad.yaml", "--out", "bad", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 1));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "bad.yaml:4:3: train.optimzer") != NULL, "%s", err);
    free(err);
    cr_assert(exists("bad") == false, "a run folder was created");
    const char *b[] = {"run", "tiny.yaml", "train.epochs=zero", NULL};
    cr_assert(eq(int, e2e_run(b, NULL), 1));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "train.epochs") != NULL && strstr(err, "zero") != NULL, "%s", err);
    free(err);
    const char *c[] = {"run", "tiny.yaml", "--frobnicate", NULL};
    cr_assert(eq(int, e2e_run(c, NULL), 2));
    const char *d[] = {"check", "tiny.yaml", "backbone.name=lenet", NULL};
    cr_assert(eq(int, e2e_run(d, NULL), 1)); // lenet cannot take 8x8 images
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "backbone.name") != NULL && strstr(err, "12x12") != NULL, "%s", err);
    free(err);
}

// Two runs under one name finishing together both land in results/<name>/runs.csv.
Test(runner, concurrent_runs_share_runs_csv)
{
    write_tiny();
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        cr_assert(kids[k] >= 0);
        if (kids[k] == 0) {
            if (chdir(e2e_dir) != 0) _exit(99);
            char seed[16];
            snprintf(seed, sizeof seed, "seed=%d", 20 + k);
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0) _exit(98);
            execl(e2e_bin(), e2e_bin(), "run", "tiny.yaml", seed, "--quiet", (char *)NULL);
            _exit(97);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status = 0;
        cr_assert(waitpid(kids[k], &status, 0) == kids[k]);
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        cr_assert(ok, "run %d failed (status %d)", k, status);
    }
    char *text = e2e_read("results/tiny/runs.csv");
    cr_assert(text != NULL);
    size_t lines = 0;
    for (char *c = text; *c; c++) lines += *c == '\n';
    cr_assert(eq(sz, lines, 3), "%s", text);
    cr_assert(strstr(text, ",20,") != NULL && strstr(text, ",21,") != NULL, "%s", text);
    free(text);
}

// A run folder whose path is longer than a config path (1024 bytes) but within the runner's
// limit: every file is written under it in full (not truncated, not refused).
Test(runner, a_run_folder_path_of_1700_bytes_holds_every_file)
{
    write_tiny();
    char rel[1800] = "long";
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(rel);
        rel[n] = '/';
        memset(rel + n + 1, 'a' + i, 240);
        rel[n + 241] = '\0';
    }
    cr_assert(strlen(rel) > 1024 + 600);
    const char *args[] = {"run", "tiny.yaml", "--out", rel, "--quiet", NULL};
    cr_assert(eq(int, e2e_run(args, NULL), 0), "%s", e2e_read("stderr.txt"));
    const char *files[] = {"config.yaml", "metrics.csv", "summary.csv", "DONE", "checkpoint.bin"};
    for (size_t i = 0; i < 5; i++) {
        char p[2048 + 64];
        snprintf(p, sizeof p, "%s/%s/%s", e2e_dir, rel, files[i]);
        cr_assert(access(p, F_OK) == 0, "missing %s under the long folder", files[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// the run folder

// Four runs started together on one --out: one runs, the others exit 1 saying the folder is
// taken (by a live run, or by the complete run it left), and the folder holds one whole run.
Test(runner, runs_started_together_on_one_folder_leave_one_run)
{
    write_tiny();
    const char *args[] = {"run", "tiny.yaml", "--out", "same", "--runs", "runs.csv", "--quiet",
                          NULL};
    enum { N = 4 };
    pid_t kids[N];
    char names[N][32];
    for (int k = 0; k < N; k++) {
        snprintf(names[k], sizeof names[k], "err%d.txt", k);
        kids[k] = e2e_spawn(args, names[k]);
    }
    int winners = 0;
    for (int k = 0; k < N; k++) {
        int st = e2e_wait(kids[k]);
        char *err = e2e_read(names[k]);
        if (st == 0) {
            winners++;
        } else {
            cr_assert(eq(int, st, 1), "run %d: status %d\n%s", k, st, err);
            bool taken = strstr(err, "in use by another evograd run") != NULL ||
                         strstr(err, "holds a complete run") != NULL;
            cr_assert(taken, "%s", err);
        }
        free(err);
    }
    cr_assert(eq(int, winners, 1));
    char *m = e2e_read_bytes("same/metrics.csv", NULL);
    cr_assert(eq(sz, csv_data_rows(m), 3), "%s", m);
    free(m);
    char *runs = e2e_read_bytes("runs.csv", NULL);
    cr_assert(eq(sz, csv_data_rows(runs), 1), "%s", runs);
    free(runs);
}

// Four runs of one name, method and seed without --out, started together: four folders, four
// rows, each row naming its own folder.
Test(runner, default_folders_of_runs_started_together_never_collide)
{
    write_tiny();
    const char *args[] = {"run", "tiny.yaml", "--quiet", NULL};
    enum { N = 4 };
    pid_t kids[N];
    for (int k = 0; k < N; k++) kids[k] = e2e_spawn(args, "/dev/null");
    for (int k = 0; k < N; k++) cr_assert(eq(int, e2e_wait(kids[k]), 0), "run %d", k);
    char *runs = e2e_read_bytes("results/tiny/runs.csv", NULL);
    cr_assert(eq(sz, csv_text_records(runs), N + 1), "%s", runs);
    for (size_t r = 1; r <= N; r++) {
        char *dir = csv_text_cell(runs, r, 23);
        cr_assert(dir != NULL && strncmp(dir, "results/tiny/none-seed3", 23) == 0, "%s", runs);
        for (size_t q = 1; q < r; q++) {
            char *other = csv_text_cell(runs, q, 23);
            cr_assert(strcmp(dir, other) != 0, "two rows name %s", dir);
            free(other);
        }
        char done[256];
        snprintf(done, sizeof done, "%s/DONE", dir);
        cr_assert(exists(done), "%s", done);
        free(dir);
    }
    free(runs);
}

// While this process holds the folder's lock, a run there exits 1 naming this process.
Test(runner, a_folder_in_use_is_refused_naming_the_process)
{
    write_tiny();
    e2e_mkdir("busy");
    int fd = open(e2e_path("busy/.evograd.lock"), O_RDWR | O_CREAT, 0644);
    cr_assert(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    cr_assert(fcntl(fd, F_SETLK, &fl) == 0);
    const char *a[] = {"run", "tiny.yaml", "--out", "busy", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 1));
    char *err = e2e_read("stderr.txt"), pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)getpid());
    cr_assert(strstr(err, "busy is in use") != NULL && strstr(err, pid) != NULL, "%s", err);
    free(err);
    cr_assert(missing("busy/config.yaml") && missing("busy/metrics.csv"));
    close(fd);
}

// A complete run is resumed on no path: --resume --out and a plain rerun exit 1 and change
// nothing (no second runs.csv row, summary.csv as it was).
Test(runner, a_complete_run_is_never_resumed_or_rerun)
{
    write_tiny();
    const char *a[] = {"run", "tiny.yaml", "--out", "r", "--runs", "runs.csv", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *summary = e2e_read_bytes("r/summary.csv", NULL), *runs = e2e_read_bytes("runs.csv", NULL);
    const char *again[][9] = {
        {"run", "tiny.yaml", "--out", "r", "--runs", "runs.csv", "--resume", NULL},
        {"run", "tiny.yaml", "--out", "r", "--runs", "runs.csv", NULL},
    };
    for (size_t i = 0; i < 2; i++) {
        cr_assert(eq(int, e2e_run(again[i], NULL), 1), "%s", e2e_read("stderr.txt"));
        char *err = e2e_read("stderr.txt");
        cr_assert(strstr(err, "holds a complete run") != NULL, "%s", err);
        free(err);
        char *s2 = e2e_read_bytes("r/summary.csv", NULL), *r2 = e2e_read_bytes("runs.csv", NULL);
        cr_assert(strcmp(summary, s2) == 0 && strcmp(runs, r2) == 0);
        free(s2);
        free(r2);
    }
    free(summary);
    free(runs);
}

// A run that died before its first checkpoint (here: its config.yaml and a metrics.csv with one
// row, as a SIGKILL with checkpoint.every_epochs 0 leaves them) restarts in place with the same
// config; a different config or --resume is refused with what to do. A folder whose run never
// got to a row (its data was missing, say) takes any config.
Test(runner, a_run_killed_before_its_first_checkpoint_restarts_in_place)
{
    write_tiny();
    const char *check[] = {"check", "tiny.yaml", NULL};
    cr_assert(eq(int, e2e_run(check, NULL), 0));
    e2e_mkdir("k");
    char *resolved = e2e_read("stdout.txt");
    // as an older version wrote it: every key, a key this task never reads among them, at its
    // default and in another notation; the same config all the same
    char *older = eg_xcalloc(strlen(resolved) + 64, 1);
    sprintf(older, "%srotation:\n  degrees: 3e+01\n", resolved);
    e2e_write("k/config.yaml", older);
    free(older);
    free(resolved);
    e2e_write("k/metrics.csv", "epoch,step\n1,4\n");
    const char *resume[] = {"run", "tiny.yaml", "--out", "k", "--resume", NULL};
    cr_assert(eq(int, e2e_run(resume, NULL), 1));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "before its first checkpoint") != NULL &&
              strstr(err, "without --resume") != NULL, "%s", err);
    free(err);
    const char *other[] = {"run", "tiny.yaml", "seed=9", "--out", "k", NULL};
    cr_assert(eq(int, e2e_run(other, NULL), 1));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "another config (its config.yaml: seed is 3 there, 9 here)") != NULL,
              "%s", err);
    free(err);
    const char *same[] = {"run", "tiny.yaml", "--out", "k", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(same, NULL), 0), "%s", e2e_read("stderr.txt"));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "restarting") != NULL, "%s", err);
    free(err);
    char *m = e2e_read_bytes("k/metrics.csv", NULL);
    cr_assert(eq(sz, csv_data_rows(m), 3), "%s", m);
    free(m);
    cr_assert(exists("k/DONE"));

    const char *no_data[] = {"run", "tiny.yaml", "data.dataset=mnist", "data.root=nowhere",
                             "backbone.name=lenet", "--out", "f", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(no_data, NULL), 1), "%s", e2e_read("stderr.txt"));
    cr_assert(exists("f/config.yaml"));
    const char *fixed[] = {"run", "tiny.yaml", "--out", "f", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(fixed, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(exists("f/DONE"));
}

// checkpoint.bin.tmp.<pid> left by a run killed while writing its checkpoint is removed by the
// next run of the folder.
Test(runner, a_stale_checkpoint_temporary_is_removed_on_resume)
{
    write_tiny();
    const char *part[] = {"run", "tiny.yaml", "--out", "p", "--quiet", "--stop-after", "2", NULL};
    cr_assert(eq(int, e2e_run(part, NULL), 0), "%s", e2e_read("stderr.txt"));
    e2e_write("p/checkpoint.bin.tmp.4194999", "half a checkpoint");
    const char *resume[] = {"run", "tiny.yaml", "--out", "p", "--quiet", "--resume", NULL};
    cr_assert(eq(int, e2e_run(resume, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(missing("p/checkpoint.bin.tmp.4194999"));
    cr_assert(exists("p/DONE"));
}

// --stop-after counts this invocation's steps: 5, then 5 more on resume, then the rest.
Test(runner, stop_after_is_a_budget_per_invocation)
{
    write_tiny();
    const char *first[] = {"run", "tiny.yaml", "--out", "b", "--quiet", "--stop-after", "5", NULL};
    cr_assert(eq(int, e2e_run(first, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "at global step 5 ") != NULL, "%s", err);
    free(err);
    const char *more[] = {"run", "tiny.yaml", "--out", "b", "--quiet", "--resume",
                          "--stop-after", "5", NULL};
    cr_assert(eq(int, e2e_run(more, NULL), 0), "%s", e2e_read("stderr.txt"));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "at global step 10 ") != NULL, "%s", err);
    free(err);
    cr_assert(eq(int, e2e_run(more, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(exists("b/DONE"));
}

// --quiet prints nothing but the final line (and errors); the hint printed when a run stops is a
// command that continues it, even when the run had overrides and its own runs table.
Test(runner, quiet_prints_only_the_final_line_and_the_stop_hint_resumes)
{
    write_tiny();
    const char *first[] = {"run", "tiny.yaml", "train.epochs=2", "seed=5", "--out", "q",
                           "--runs", "q-runs.csv", "--quiet", "--stop-after", "3", NULL};
    cr_assert(eq(int, e2e_run(first, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *err = e2e_read("stderr.txt");
    const char *want = "stopped by --stop-after at global step 3 (0 epochs complete); checkpoint "
                       "written.\ncontinue with: evograd run ";
    cr_assert(strncmp(err, want, strlen(want)) == 0, "more than the stop lines:\n%s", err);
    // the hint, split into words (no spaces in these paths), run as printed
    char *hint = strstr(err, "continue with: evograd ") + strlen("continue with: evograd ");
    hint[strcspn(hint, "\n")] = '\0';
    const char *args[16];
    size_t n = 0;
    for (char *w = strtok(hint, " "); w != NULL && n < 14; w = strtok(NULL, " ")) args[n++] = w;
    cr_assert(n > 1 && strcmp(args[1], "q/config.yaml") == 0, "hint: %s", args[n > 1 ? 1 : 0]);
    args[n++] = "--quiet";
    args[n] = NULL;
    cr_assert(eq(int, e2e_run(args, NULL), 0), "%s", e2e_read("stderr.txt"));
    free(err);
    err = e2e_read("stderr.txt");
    cr_assert(strncmp(err, "done: ", 6) == 0 && strchr(err, '\n') == err + strlen(err) - 1,
              "more than the final line:\n%s", err);
    cr_assert(exists("q/DONE"));
    char *runs = e2e_read("q-runs.csv");
    cr_assert(runs != NULL && strchr(runs, '\n') != strrchr(runs, '\n'), "no row in q-runs.csv");
    free(runs);
    // the same numbers as the run made in one go
    const char *whole[] = {"run", "tiny.yaml", "train.epochs=2", "seed=5", "--out", "w",
                           "--quiet", NULL};
    cr_assert(eq(int, e2e_run(whole, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *x = e2e_metrics_without_clock("w"), *y = e2e_metrics_without_clock("q");
    cr_assert(strcmp(x, y) == 0, "in one go:\n%s\nresumed from the hint:\n%s", x, y);
    free(x);
    free(y);
    free(err);
}

// A comma and a quote in the folder's path are quoted in summary.csv and runs.csv (RFC 4180);
// a newline is refused before anything is written.
Test(runner, a_folder_path_with_a_comma_or_quote_is_quoted_and_a_newline_refused)
{
    write_tiny();
    const char *a[] = {"run", "tiny.yaml", "--out", "lr=0.1,\"wd\"", "--runs", "runs.csv",
                       "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *runs = e2e_read_bytes("runs.csv", NULL);
    cr_assert(eq(sz, csv_text_records(runs), 2), "%s", runs);
    char *dir = csv_text_cell(runs, 1, 23);
    cr_assert(strcmp(dir, "lr=0.1,\"wd\"") == 0, "%s", runs);
    free(dir);
    free(runs);
    const char *b[] = {"run", "tiny.yaml", "--out", "two\nlines", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(b, NULL), 1));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "control character") != NULL, "%s", err);
    free(err);
    cr_assert(missing("two\nlines"));
}

// With --out and no --runs, no runs.csv is written anywhere (not into --out's parent).
Test(runner, out_without_runs_writes_no_runs_table)
{
    write_tiny();
    e2e_mkdir("shared");
    const char *a[] = {"run", "tiny.yaml", "--out", "shared/r", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(missing("shared/runs.csv") && missing("runs.csv") && exists("shared/r/DONE"));
    const char *b[] = {"run", "tiny.yaml", "--out", "x", "--runs", "no/such/runs.csv", NULL};
    cr_assert(eq(int, e2e_run(b, NULL), 1));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "no/such/runs.csv") != NULL, "%s", err);
    free(err);
    cr_assert(missing("x"));
}

// Data that is missing is bad input (exit 1), as is a resume whose metrics.csv is gone.
Test(runner, missing_data_and_a_missing_metrics_file_exit_1)
{
    write_tiny();
    e2e_mkdir("empty");
    const char *a[] = {"run", "tiny.yaml", "data.dataset=mnist", "data.root=empty",
                       "backbone.name=lenet", "--out", "m", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 1), "%s", e2e_read("stderr.txt"));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "empty") != NULL, "%s", err);
    free(err);
    const char *part[] = {"run", "tiny.yaml", "--out", "p", "--quiet", "--stop-after", "2", NULL};
    cr_assert(eq(int, e2e_run(part, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(unlink(e2e_path("p/metrics.csv")) == 0);
    const char *resume[] = {"run", "tiny.yaml", "--out", "p", "--quiet", "--resume", NULL};
    cr_assert(eq(int, e2e_run(resume, NULL), 1), "%s", e2e_read("stderr.txt"));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "metrics.csv") != NULL, "%s", err);
    free(err);
}

// A checkpoint whose CRC is intact but whose loop counters are impossible (epoch 2^40, as a
// crafted file might say) is refused with the value; nothing of the run changes.
Test(runner, a_checkpoint_with_an_impossible_epoch_is_refused)
{
    write_tiny();
    const char *part[] = {"run", "tiny.yaml", "--out", "p", "--quiet", "--stop-after", "2", NULL};
    cr_assert(eq(int, e2e_run(part, NULL), 0), "%s", e2e_read("stderr.txt"));
    size_t n = 0;
    unsigned char *ck = e2e_read_bytes("p/checkpoint.bin", &n);
    // header: magic (8), version (4), config hash (8), count (4); then the first section, the
    // loop's: name (32), size (8), and its first field, the epochs completed (uint64)
    const size_t name_at = 8 + 4 + 8 + 4, epoch_at = name_at + 32 + 8;
    cr_assert(n > epoch_at + 8 && memcmp(ck + name_at, "loop", 5) == 0);
    const uint64_t epoch = (uint64_t)1 << 40;
    memcpy(ck + epoch_at, &epoch, sizeof epoch);
    const uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), ck, (uInt)(n - 4));
    memcpy(ck + n - 4, &crc, sizeof crc);
    e2e_write_bytes("p/checkpoint.bin", ck, n);
    free(ck);
    char *before = e2e_read_bytes("p/metrics.csv", NULL);
    const char *resume[] = {"run", "tiny.yaml", "--out", "p", "--quiet", "--resume", NULL};
    cr_assert(eq(int, e2e_run(resume, NULL), 1), "%s", e2e_read("stderr.txt"));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "section 'loop'") != NULL && strstr(err, "1099511627776") != NULL,
              "%s", err);
    free(err);
    char *after = e2e_read_bytes("p/metrics.csv", NULL);
    cr_assert(strcmp(before, after) == 0 && missing("p/DONE"));
    free(before);
    free(after);
}

// A loss that blows up but stays finite (lr 300: the first epoch's mean is ~1e11) is divergence
// by train.diverge_factor: exit 3, the blown-up epoch's row kept, no DONE. With the rule off the
// same run goes on to its end.
Test(runner, a_finite_blow_up_of_the_loss_exits_3_unless_the_rule_is_off)
{
    write_tiny();
    const char *a[] = {"run", "tiny.yaml", "train.optimizer.lr=300", "--out", "up", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 3), "%s", e2e_read("stderr.txt"));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "diverged: epoch 1's mean training loss") != NULL &&
              strstr(err, "train.diverge_factor (100)") != NULL, "%s", err);
    free(err);
    char *m = e2e_read_bytes("up/metrics.csv", NULL);
    cr_assert(eq(sz, csv_data_rows(m), 1), "%s", m);
    cr_assert(csv_cell(m, 1, 3) > 1e6, "%s", m);
    free(m);
    cr_assert(missing("up/DONE"));
    const char *off[] = {"run", "tiny.yaml", "train.optimizer.lr=300", "train.diverge_factor=0",
                         "--out", "off", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(off, NULL), 0), "%s", e2e_read("stderr.txt"));
}

// A full disk, for real where this machine lets the test mount a small tmpfs (else skipped; the
// CSV tests inject the same failure with RLIMIT_FSIZE): the runs table on it is nearly full, so
// the finished run's row does not fit. The run exits 3 without DONE and the table is byte for
// byte what it was.
Test(runner, a_full_disk_leaves_the_runs_table_whole_and_no_done)
{
    write_tiny();
    e2e_mkdir("full");
    if (mount("tmpfs", e2e_path("full"), "tmpfs", 0, "size=64k") != 0) {
        cr_skip_test("cannot mount a tmpfs here (%s)", strerror(errno));
    }
    // the header and rows of this build's table (from a run of the same config) up to just
    // under a page, then filler until the disk is full
    const char *pre[] = {"run", "tiny.yaml", "--out", "pre", "--runs", "pre.csv", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(pre, NULL), 0));
    char *made = e2e_read("pre.csv");
    cr_assert(made != NULL);
    char *nl = strchr(made, '\n');
    cr_assert(nl != NULL);
    char header[4096], rowbuf[4096];
    snprintf(header, sizeof header, "%.*s", (int)(nl + 1 - made), made);
    snprintf(rowbuf, sizeof rowbuf, "%s", nl + 1);
    free(made);
    const char *row = rowbuf;
    char table[4096];
    size_t n = (size_t)snprintf(table, sizeof table, "%s", header);
    while (n + strlen(row) < sizeof table - 40) n += (size_t)snprintf(table + n, sizeof table - n, "%s", row);
    e2e_write("full/runs.csv", table);
    FILE *f = fopen(e2e_path("full/filler"), "w");
    cr_assert(f != NULL);
    static char block[1024];
    while (fwrite(block, 1, sizeof block, f) == sizeof block && fflush(f) == 0) {}
    fclose(f);
    const char *a[] = {"run", "tiny.yaml", "--out", "r", "--runs", "full/runs.csv", "--quiet",
                       NULL};
    int st = e2e_run(a, NULL);
    char *err = e2e_read("stderr.txt"), *after = e2e_read("full/runs.csv");
    umount2(e2e_path("full"), MNT_DETACH);
    cr_assert(eq(int, st, 3), "%s", err);
    cr_assert(strstr(err, "full/runs.csv") != NULL, "%s", err);
    cr_assert(strcmp(after, table) == 0, "the table changed:\n%s", after);
    cr_assert(missing("r/DONE") && exists("r/summary.csv"));
    free(err);
    free(after);
}

// A read-only filesystem (a tmpfs mounted read-only, where the test may mount one): a new folder
// on it and the existing folder itself are both bad input, exit 1, before any training.
Test(runner, a_read_only_filesystem_is_bad_input_for_new_and_existing_folders)
{
    write_tiny();
    e2e_mkdir("ro");
    if (mount("tmpfs", e2e_path("ro"), "tmpfs", MS_RDONLY, "size=64k") != 0) {
        cr_skip_test("cannot mount a tmpfs here (%s)", strerror(errno));
    }
    const char *fresh[] = {"run", "tiny.yaml", "--out", "ro/new", "--quiet", NULL};
    const char *existing[] = {"run", "tiny.yaml", "--out", "ro", "--quiet", NULL};
    int a = e2e_run(fresh, NULL);
    char *ea = e2e_read("stderr.txt");
    int b = e2e_run(existing, NULL);
    char *eb = e2e_read("stderr.txt");
    umount2(e2e_path("ro"), MNT_DETACH);
    cr_assert(eq(int, a, 1), "%s", ea);
    cr_assert(eq(int, b, 1), "%s", eb);
    cr_assert(strstr(ea, "ro/new") != NULL && strstr(eb, "ro") != NULL, "%s\n%s", ea, eb);
    free(ea);
    free(eb);
}

// evograd list tasks|methods names every registered task and method (with its line), list with
// no topic shows them all, and an unknown topic is a usage error naming the topics.
Test(runner, list_names_every_task_and_method)
{
    const char *tasks[] = {"list", "tasks", NULL};
    cr_assert(eq(int, e2e_run(tasks, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *out = e2e_read("stdout.txt");
    for (size_t i = 0; i < task_count(); i++) {
        char line[256];
        snprintf(line, sizeof line, "  %-11s %s\n", task_at(i)->name, task_at(i)->about);
        cr_assert(strstr(out, line) != NULL, "no '%s' in\n%s", line, out);
    }
    free(out);
    const char *methods[] = {"list", "methods", NULL};
    cr_assert(eq(int, e2e_run(methods, NULL), 0), "%s", e2e_read("stderr.txt"));
    out = e2e_read("stdout.txt");
    for (size_t m = 0; m < HYPER__COUNT; m++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %-12s ", hyper_method_name((enum hyper_method)m));
        cr_assert(strstr(out, line) != NULL, "no '%s' in\n%s", line, out);
    }
    free(out);
    const char *all[] = {"list", NULL};
    cr_assert(eq(int, e2e_run(all, NULL), 0), "%s", e2e_read("stderr.txt"));
    out = e2e_read("stdout.txt");
    const char *sections[] = {"tasks (", "hypergradient methods (", "backbones (", "optimizers ("};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        cr_assert(strstr(out, sections[i]) != NULL, "no '%s' in\n%s", sections[i], out);
    free(out);
    const char *help[] = {"list", "--help", NULL};
    cr_assert(eq(int, e2e_run(help, NULL), 0), "%s", e2e_read("stderr.txt"));
    out = e2e_read("stdout.txt");
    cr_assert(strncmp(out, "usage: evograd list ", 20) == 0, "%s", out);
    free(out);
    const char *bad[] = {"list", "nope", NULL};
    cr_assert(eq(int, e2e_run(bad, NULL), 2));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "unknown topic 'nope' (tasks, methods, backbones, optimizers, config") !=
                  NULL,
              "%s", err);
    free(err);
}

// run and check parse options as GNU programs do: -h/--help, --opt VALUE and --opt=VALUE, short
// forms, -- ends the options, and a missing value is a usage error (never a folder named after
// the next option).
Test(runner, run_and_check_options_follow_gnu_conventions)
{
    write_tiny();
    struct {
        const char *args[8];
        int status;
        const char *out, *err; // expected in stdout / stderr (NULL: not checked)
    } cases[] = {
        {{"run", "--help"}, 0, "usage: evograd run CONFIG.yaml", NULL},
        {{"run", "-h"}, 0, "  -o, --out DIR ", NULL},
        {{"check", "--help"}, 0, "usage: evograd check CONFIG.yaml", NULL},
        {{"--version"}, 0, "evograd ", NULL},
        {{"-V"}, 0, "evograd ", NULL},
        {{"run", "tiny.yaml", "--out", "--resume"}, 2, NULL,
         "--out needs a directory, not the option '--resume'"},
        {{"run", "tiny.yaml", "--out"}, 2, NULL, "evograd run: --out needs a value"},
        {{"run", "tiny.yaml", "--runs"}, 2, NULL, "evograd run: --runs needs a value"},
        {{"run", "tiny.yaml", "--bogus"}, 2, NULL, "unknown option '--bogus' (try evograd run --help)"},
        {{"run", "tiny.yaml", "-qx"}, 2, NULL, "unknown option '-x'"},
        {{"run", "tiny.yaml", "--stop-after=0"}, 2, NULL, "--stop-after needs a number of steps"},
        {{"check", "tiny.yaml", "--out", "x"}, 2, NULL, "evograd check: unknown option '--out'"},
        {{"run", "--", "tiny.yaml", "--out", "x"}, 2, NULL,
         "'--out' is neither an option nor a key.path=value override"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert(eq(int, e2e_run(cases[i].args, NULL), cases[i].status), "case %zu: %s", i,
                  e2e_read("stderr.txt"));
        char *out = e2e_read("stdout.txt"), *err = e2e_read("stderr.txt");
        if (cases[i].out != NULL)
            cr_assert(strstr(out, cases[i].out) != NULL, "case %zu: %s", i, out);
        if (cases[i].err != NULL)
            cr_assert(strstr(err, cases[i].err) != NULL, "case %zu: %s", i, err);
        free(out);
        free(err);
    }
    const bool made = exists("--resume") || exists("x");
    cr_assert(made == false, "a usage error made a folder");
    // --out=DIR, a short option, options before the config and after the overrides
    const char *ok[] = {"run", "-q", "tiny.yaml", "--out=eq", "train.epochs=1", "--stop-after=2",
                        NULL};
    cr_assert(eq(int, e2e_run(ok, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *err = e2e_read("stderr.txt");
    cr_assert(strncmp(err, "stopped by --stop-after at global step 2 ", 41) == 0, "%s", err);
    free(err);
    const char *more[] = {"run", "eq/config.yaml", "-r", "-o", "eq", "-q", NULL};
    cr_assert(eq(int, e2e_run(more, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(exists("eq/DONE"));
}
