/* test_runner.c - the evograd command end to end on tiny synthetic experiments: outputs,
 * re-running from the written config, resume after a stop (and after SIGTERM), divergence,
 * refused checkpoints, bad configs, and concurrent runs sharing runs.csv. The binary's path comes
 * from EVOGRAD_BIN (set by `make test`). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "helpers.h"

TestSuite(runner, .init = e2e_setup, .fini = e2e_teardown);

// Whether e2e_dir/rel exists.
static bool exists(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", e2e_dir, rel);
    return access(p, F_OK) == 0;
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

// metrics.csv of a run with the wall_s and peak_rss_mb columns (3 and 9) blanked.
static char *metrics_without_clock(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/metrics.csv", dir);
    char *text = e2e_read(p);
    cr_assert(text != NULL, "%s", p);
    char *out = eg_xmalloc(strlen(text) + 1);
    size_t o = 0, col = 1;
    for (const char *c = text; *c; c++) {
        if (*c == ',' || *c == '\n') {
            out[o++] = *c;
            col = *c == '\n' ? 1 : col + 1;
        } else if (col != 3 && col != 9) {
            out[o++] = *c;
        }
    }
    out[o] = '\0';
    free(text);
    return out;
}

Test(runner, run_writes_every_output_and_rerun_from_its_config_matches)
{
    write_tiny();
    const char *a1[] = {"run", "tiny.yaml", "--out", "r1", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a1, NULL), 0), "%s", e2e_read("stderr.txt"));
    const char *files[] = {"r1/config.yaml", "r1/metrics.csv", "r1/summary.csv", "r1/DONE",
                           "r1/checkpoint.bin"};
    for (size_t i = 0; i < 5; i++) cr_assert(exists(files[i]), "%s", files[i]);
    cr_assert(exists("runs.csv"));
    char *m = metrics_without_clock("r1");
    size_t lines = 0;
    for (char *c = m; *c; c++) lines += *c == '\n';
    cr_assert(eq(sz, lines, 4), "%s", m); // header + 3 epochs
    cr_assert(strncmp(m, "epoch,step,,train_loss,val_loss,test_acc", 40) == 0, "%s", m);

    const char *a2[] = {"run", "r1/config.yaml", "--out", "r2", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a2, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *m2 = metrics_without_clock("r2");
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
    char *a = metrics_without_clock("full"), *b = metrics_without_clock("part");
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
