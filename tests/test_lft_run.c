/* test_lft_run.c - task lft end to end through the evograd binary: the built-in Fashion-MNIST
 * domains with each method (files, columns, what each method does to the FT layers), resume
 * after a stop equals an uninterrupted run, image-folder domains from generated PNGs, and the
 * configuration errors (a message naming the key, exit status 1, no metrics.csv). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

// A seconds-long run: a ResNet-10 at 4-32 channels, 2 epochs of 3 episode pairs (1-shot, 4
// queries), 4 validation and 30 test episodes.
static const char *const tiny =
    "name: lft-e2e\n"
    "seed: 3\n"
    "threads: 1\n"
    "task: lft\n"
    "data: {dataset: fashion_mnist}\n"
    "backbone: {name: resnet10, channels: 4}\n"
    "method: {name: evograd}\n"
    "train: {epochs: 2, optimizer: {name: adam, lr: 0.001}}\n"
    "meta: {optimizer: {name: adam, lr: 0.01}}\n"
    "eval: {every_epochs: 1}\n"
    "checkpoint: {every_epochs: 1}\n"
    "lft: {shot: 1, queries: 4, episodes: 3, aux_batch: 8, val_episodes: 4, test_episodes: 30,\n"
    "      test_queries: 5}\n";

static const char *const lft_header =
    "epoch,step,wall_s,train_loss,train_acc,aux_loss,aux_weight,val_loss,val_acc,test_acc,"
    "test_ci95,lr,peak_rss_mb,ps_domain,pu_domain,ft_gamma,ft_beta\n";

enum { C_VAL_LOSS = 7, C_VAL_ACC = 8, C_TEST = 9, C_CI = 10, C_GAMMA = 15, C_BETA = 16 };

static void need_fmnist(void)
{
    if (access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        cr_skip("Fashion-MNIST is not installed (" FMNIST_DIR ")");
    }
}

// Runs the tiny config with method m (and one more override unless NULL) into e2e_dir/out;
// returns metrics.csv (caller frees).
static char *tiny_run(const char *m, const char *out, const char *extra)
{
    e2e_write("lft.yaml", tiny);
    char meth[64];
    snprintf(meth, sizeof meth, "method.name=%s", m);
    const char *args[] = {"run", "lft.yaml", meth, "--out", out, "--quiet", extra, NULL};
    int rc = e2e_run(args, NULL);
    char *err = e2e_read("stderr.txt");
    cr_assert(rc == 0, "exit %d: %s", rc, err);
    free(err);
    char rel[128];
    snprintf(rel, sizeof rel, "%s/metrics.csv", out);
    char *text = e2e_read(rel);
    cr_assert(text != NULL);
    return text;
}

TestSuite(lft_run, .init = e2e_setup, .fini = e2e_teardown);

Test(lft_run, evograd_learns_the_ft_layers_and_reports_a_test_interval, .timeout = 600)
{
    need_fmnist();
    char *text = tiny_run("evograd", "evo", NULL);
    cr_assert(strncmp(text, lft_header, strlen(lft_header)) == 0, "%.200s", text);
    cr_assert(eq(sz, csv_data_rows(text), 2));
    // the meta-steps' validation loss and the validation accuracy every epoch
    for (size_t r = 1; r <= 2; r++) {
        cr_assert(isfinite(csv_cell(text, r, C_VAL_LOSS)) && csv_cell(text, r, C_VAL_ACC) >= 0.0);
    }
    // the test only after the last epoch: a 5-way accuracy and a positive interval
    cr_assert(isnan(csv_cell(text, 1, C_TEST)) && isnan(csv_cell(text, 1, C_CI)));
    double acc = csv_cell(text, 2, C_TEST), ci = csv_cell(text, 2, C_CI);
    cr_assert(acc > 0.0 && acc < 1.0 && ci > 0.0 && ci < 0.2, "acc %g ci %g", acc, ci);
    // evograd moved gamma and beta away from their initial 0.3 and 0.5
    cr_assert(csv_cell(text, 2, C_GAMMA) != 0.3 || csv_cell(text, 2, C_BETA) != 0.5);
    free(text);
    char *sum = e2e_read("evo/summary.csv");
    cr_assert(sum != NULL);
    cr_assert(strstr(sum, "final_test_acc,test_acc_ci95,best_test_acc") != NULL, "%s", sum);
    cr_assert(csv_cell(sum, 1, 12) == acc && csv_cell(sum, 1, 13) == ci);
    cr_assert(csv_cell(sum, 1, 10) == 25.0, "batch_size: the episode's 5 x (1 + 4) images");
    free(sum);
    // splits.csv: every class of every split of the five domains, with its role
    char *splits = e2e_read("evo/splits.csv");
    cr_assert(splits != NULL);
    cr_assert(strncmp(splits, "domain,role,split,class,orig_class,name,images\n", 47) == 0);
    cr_assert(eq(sz, csv_data_rows(splits), 5 * 40));
    cr_assert(strstr(splits, "fmnist-edges,unseen,novel,") != NULL);
    cr_assert(strstr(splits, "fmnist-plain,seen+aux,base,") != NULL);
    free(splits);
    char *done = e2e_read("evo/DONE");
    cr_assert(done != NULL);
    free(done);
}

Test(lft_run, none_keeps_the_ft_layers_and_has_no_meta_loss, .timeout = 600)
{
    need_fmnist();
    char *text = tiny_run("none", "none", NULL);
    for (size_t r = 1; r <= 2; r++) {
        cr_assert(isnan(csv_cell(text, r, C_VAL_LOSS)), "no meta-step, no val_loss");
        cr_assert(fabs(csv_cell(text, r, C_GAMMA) - 0.3) < 1e-7);
        cr_assert(fabs(csv_cell(text, r, C_BETA) - 0.5) < 1e-7);
    }
    cr_assert(isfinite(csv_cell(text, 2, C_TEST)));
    free(text);
    // without FT layers there is nothing to report for them
    char *plain = tiny_run("none", "noft", "lft.ft=false");
    cr_assert(isnan(csv_cell(plain, 2, C_GAMMA)) && isnan(csv_cell(plain, 2, C_BETA)));
    free(plain);
}

Test(lft_run, unrolled_runs_and_moves_the_ft_layers, .timeout = 600)
{
    need_fmnist();
    char *text = tiny_run("unrolled", "unr", NULL);
    cr_assert(isfinite(csv_cell(text, 2, C_VAL_LOSS)));
    cr_assert(csv_cell(text, 2, C_GAMMA) != 0.3 || csv_cell(text, 2, C_BETA) != 0.5);
    free(text);
}

Test(lft_run, resume_after_stop_equals_an_uninterrupted_run, .timeout = 600)
{
    need_fmnist();
    char *full = tiny_run("evograd", "full", NULL);
    const char *stop[] = {"run", "lft.yaml", "--out", "part", "--quiet", "--stop-after", "4", NULL};
    cr_assert(eq(int, e2e_run(stop, NULL), 0));
    char *d = e2e_read("part/DONE");
    cr_assert(d == NULL, "a stopped run is not done");
    const char *resume[] = {"run", "lft.yaml", "--out", "part", "--quiet", "--resume", NULL};
    int rc = e2e_run(resume, NULL);
    char *err = e2e_read("stderr.txt");
    cr_assert(rc == 0, "resume exit %d: %s", rc, err);
    free(err);
    char *part = e2e_read("part/metrics.csv");
    cr_assert(part != NULL);
    cr_assert(eq(sz, csv_data_rows(part), csv_data_rows(full)));
    // every number but wall_s (2) and peak_rss_mb (12); the domain names (13, 14) as text
    for (size_t r = 1; r <= csv_data_rows(full); r++) {
        for (size_t c = 0; c < 17; c++) {
            if (c == 2 || c == 12 || c == 13 || c == 14) continue;
            double a = csv_cell(full, r, c), b = csv_cell(part, r, c);
            cr_assert(a == b || (isnan(a) && isnan(b)), "row %zu col %zu: %.9g vs %.9g", r, c,
                      a, b);
        }
    }
    free(full);
    free(part);
}

// Three image-folder domains of 8 classes (4 base, 2 val, 2 novel by the rule), 6 images of
// 12 x 12 each, class k's images a bright square at a class-specific place.
static void make_folder_domains(void)
{
    static const char *const doms[] = {"alpha", "beta", "gamma"};
    char rel[128];
    e2e_mkdir("fs");
    for (size_t d = 0; d < 3; d++) {
        snprintf(rel, sizeof rel, "fs/%s", doms[d]);
        e2e_mkdir(rel);
        for (size_t k = 0; k < 8; k++) {
            snprintf(rel, sizeof rel, "fs/%s/c%zu", doms[d], k);
            e2e_mkdir(rel);
            for (size_t t = 0; t < 6; t++) {
                uint8_t pix[144];
                for (size_t i = 0; i < 144; i++) pix[i] = (uint8_t)(20 * d + 3 * t);
                for (size_t y = 0; y < 4; y++) {
                    for (size_t x = 0; x < 4; x++) {
                        pix[((k / 3) * 4 + y) * 12 + (k % 3) * 4 + x] = 250;
                    }
                }
                snprintf(rel, sizeof rel, "fs/%s/c%zu/i%zu.png", doms[d], k, t);
                png_write_grey(e2e_path(rel), 12, 12, pix);
            }
        }
    }
}

Test(lft_run, image_folder_domains_run_end_to_end, .timeout = 600)
{
    make_folder_domains();
    e2e_write("lft.yaml", tiny);
    const char *args[] = {"run", "lft.yaml", "data.dataset=imagefolder", "data.root=fs",
                          "data.image_c=3", "data.image_h=12", "data.image_w=12",
                          "lft.domains=[alpha,beta,gamma]", "lft.unseen=gamma", "lft.n_way=2",
                          "lft.queries=2", "lft.test_queries=2", "--out", "f", "--quiet", NULL};
    int rc = e2e_run(args, NULL);
    char *err = e2e_read("stderr.txt");
    cr_assert(rc == 0, "exit %d: %s", rc, err);
    free(err);
    char *splits = e2e_read("f/splits.csv");
    cr_assert(splits != NULL);
    cr_assert(eq(sz, csv_data_rows(splits), 3 * 8));
    cr_assert(strstr(splits, "gamma,unseen,novel,0,3,c3,6\n") != NULL, "%s", splits);
    cr_assert(strstr(splits, "alpha,seen+aux,base,0,0,c0,6\n") != NULL, "%s", splits);
    free(splits);
    char *m = e2e_read("f/metrics.csv");
    cr_assert(m != NULL);
    double acc = csv_cell(m, 2, C_TEST);
    cr_assert(acc >= 0.0 && acc <= 1.0);
    free(m);
}

Test(lft_run, bad_settings_are_errors_before_any_output, .timeout = 600)
{
    need_fmnist();
    e2e_write("lft.yaml", tiny);
    static const struct {
        const char *override, *message;
    } cases[] = {
        {"data.dataset=cifar10", "data.dataset: task lft reads its domains from fashion_mnist"},
        {"lft.domains=[fmnist-plain,fmnist-edges,cub]", "lft.domains: 'cub' is not a built-in"},
        {"backbone.name=lenet", "backbone.name: task lft needs resnet10"},
        {"lft.ft=false", "method.name: evograd learns the FT layers, but lft.ft is false"},
        {"lft.domains=[fmnist-plain,fmnist-edges]",
         "lft.domains: method evograd needs two seen domains"},
        {"lft.shot=400", "lft (training episodes): domain fmnist-plain, base classes: a 5-way"},
        {"lft.test_queries=400", "lft (test episodes): domain fmnist-edges, novel classes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"run", "lft.yaml", cases[i].override, "--out", "bad", NULL};
        int rc = e2e_run(args, NULL);
        char *err = e2e_read("stderr.txt");
        cr_assert(rc != 0, "%s: exit 0", cases[i].override);
        cr_assert(strstr(err, cases[i].message) != NULL, "%s: %s", cases[i].override, err);
        free(err);
        char *m = e2e_read("bad/metrics.csv");
        cr_assert(m == NULL, "%s: metrics.csv written", cases[i].override);
        char *done = e2e_read("bad/DONE");
        cr_assert(done == NULL);
    }
    // a missing domain folder names it
    const char *args[] = {"run",           "lft.yaml", "data.dataset=imagefolder",
                          "data.root=nowhere", "lft.domains=[a,b,c]", "lft.unseen=c",
                          "--out",         "bad2",     NULL};
    int rc = e2e_run(args, NULL);
    char *err = e2e_read("stderr.txt");
    cr_assert(rc != 0 && strstr(err, "nowhere/a") != NULL, "%s", err);
    free(err);
}

// SIGTERM during the final few-shot test (here 10^8 episodes: it would never end otherwise) is
// honoured: exit 143 with a checkpoint after the last step, no DONE, no row for the unfinished
// epoch. The signal is sent once the training's 3 steps are likely done; if it lands in one of
// them instead, the test says so and skips (that path has its own tests).
Test(lft_run, sigterm_during_the_final_test_stops_the_run, .timeout = 600)
{
    need_fmnist();
    e2e_write("lft.yaml", tiny);
    const char *args[] = {"run", "lft.yaml", "train.epochs=1", "lft.test_episodes=100000000",
                          "--out", "t", "--quiet", NULL};
    pid_t pid = e2e_spawn(args, "err.txt");
    const struct timespec pause = {0, 10000000}; // 10 ms
    for (int i = 0; i < 30000 && access(e2e_path("t/splits.csv"), F_OK) != 0; i++) {
        nanosleep(&pause, NULL);
    }
    const struct timespec settle = {3, 0};
    nanosleep(&settle, NULL);
    kill(pid, SIGTERM);
    int st = e2e_wait(pid);
    char *err = e2e_read("err.txt");
    cr_assert(eq(int, st, 143), "%s", err);
    if (strstr(err, "at global step 3 ") == NULL) cr_skip("SIGTERM landed in a step: %s", err);
    cr_assert(strstr(err, "stopped by SIGTERM at global step 3 (0 epochs complete)") != NULL,
              "%s", err);
    free(err);
    char *m = e2e_read("t/metrics.csv");
    cr_assert(m != NULL && csv_data_rows(m) == 0, "%s", m);
    free(m);
    cr_assert(e2e_read("t/DONE") == NULL && e2e_read("t/checkpoint.bin") != NULL);
}
