/* test_diagnostics.c - hypergradient diagnostics (diagnostics.every_steps, run.c and
 * meta/hyper.h) end to end through the evograd binary: hypergrad_diag.csv's rows and columns, a
 * run's own numbers unchanged by them, the exact method's cosine against itself, the draws,
 * resume, the summary's mean cosine, and the config errors. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

TestSuite(diagnostics, .init = e2e_setup, .fini = e2e_teardown, .timeout = 600);

// A rotation run on synthetic data: 3 steps an epoch (60 images, batches of 20), 2 epochs.
static const char tiny[] = "name: diag\n"
                           "seed: 3\n"
                           "threads: 1\n"
                           "task: rotation\n"
                           "data: {dataset: synthetic, image_c: 1, image_h: 28, image_w: 28,\n"
                           "       classes: 3, synthetic_train: 120, synthetic_test: 40}\n"
                           "backbone: {name: lenet}\n"
                           "method: {name: evograd, candidates: 2, sigma: 0.001, "
                           "temperature: 0.05}\n"
                           "train: {epochs: 2, batch_size: 20,\n"
                           "        optimizer: {name: adam, lr: 0.001, weight_decay: 0}}\n"
                           "meta: {batch_size: 16, optimizer: {name: adam, lr: 0.01}}\n"
                           "eval: {every_epochs: 1, batch_size: 16}\n"
                           "checkpoint: {every_epochs: 1}\n"
                           "rotation: {train_end: 60, val_begin: 70, val_end: 120}\n";

static const char diag_header[] = "step,epoch,method,candidates,method_norm,exact_norm,cosine,"
                                  "norm_ratio,sign_agree,draws,draws_cosine,extra_s\n";

// metrics.csv of two runs equal in every column but wall_s (2) and peak_rss_mb (8).
static void same_metrics(const char *a, const char *b)
{
    char *ma = e2e_read(a), *mb = e2e_read(b);
    cr_assert(ma != NULL && mb != NULL);
    cr_assert(eq(sz, csv_data_rows(ma), csv_data_rows(mb)));
    for (size_t r = 1; r <= csv_data_rows(ma); r++) {
        for (size_t c = 0; c < 11; c++) {
            if (c == 2 || c == 8) continue;
            cr_assert(eq(dbl, csv_cell(ma, r, c), csv_cell(mb, r, c)), "%s vs %s: row %zu col %zu",
                      a, b, r, c);
        }
    }
    free(ma);
    free(mb);
}

Test(diagnostics, rows_every_n_steps_and_the_run_unchanged)
{
    e2e_write("d.yaml", tiny);
    const char *off[] = {"run", "d.yaml", "--out", "off", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(off, NULL), 0));
    const char *on[] = {"run", "d.yaml", "diagnostics.every_steps=2", "diagnostics.draws=3",
                        "--out", "on", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(on, NULL), 0));
    same_metrics("off/metrics.csv", "on/metrics.csv");
    char *noff = e2e_read("off/hypergrad_diag.csv");
    cr_assert(noff == NULL, "no diagnostics file when off");

    char *d = e2e_read("on/hypergrad_diag.csv");
    cr_assert(d != NULL);
    cr_assert(strncmp(d, diag_header, strlen(diag_header)) == 0, "%s", d);
    // 6 steps, every 2nd: steps 2, 4, 6 in epochs 1, 2, 2
    cr_assert(eq(sz, csv_data_rows(d), 3));
    const double step[] = {2, 4, 6}, epoch[] = {1, 2, 2};
    for (size_t r = 1; r <= 3; r++) {
        cr_assert(eq(dbl, csv_cell(d, r, 0), step[r - 1]));
        cr_assert(eq(dbl, csv_cell(d, r, 1), epoch[r - 1]));
        cr_assert(eq(dbl, csv_cell(d, r, 3), 2.0));
        const double mn = csv_cell(d, r, 4), en = csv_cell(d, r, 5), cs = csv_cell(d, r, 6);
        cr_assert(mn >= 0.0 && en > 0.0, "norms %g %g", mn, en);
        // one hyperparameter (the angle): the cosine is the sign agreement, +-1
        cr_assert(fabs(fabs(cs) - 1.0) < 1e-9, "cosine %g", cs);
        cr_assert(eq(dbl, csv_cell(d, r, 8), cs > 0.0 ? 1.0 : 0.0));
        cr_assert(fabs(csv_cell(d, r, 7) - mn / en) <= 1e-6 * (mn / en), "ratio %g", mn / en);
        cr_assert(eq(dbl, csv_cell(d, r, 9), 3.0));
        cr_assert(fabs(fabs(csv_cell(d, r, 10)) - 1.0) < 1e-9);
        cr_assert(csv_cell(d, r, 11) > 0.0);
    }
    // the summary's mean cosine is the rows' mean
    char *s = e2e_read("on/summary.csv");
    cr_assert(s != NULL);
    char *h = csv_text_cell(s, 0, 17);
    cr_assert(h != NULL && strcmp(h, "diag_cosine_mean") == 0, "%s", h);
    const double mean = (csv_cell(d, 1, 6) + csv_cell(d, 2, 6) + csv_cell(d, 3, 6)) / 3.0;
    cr_assert(fabs(csv_cell(s, 1, 17) - mean) < 1e-8, "%g vs %g", csv_cell(s, 1, 17), mean);
    char *s0 = e2e_read("off/summary.csv");
    cr_assert(s0 != NULL && isnan(csv_cell(s0, 1, 17)), "no cosine without diagnostics");
    free(h);
    free(s);
    free(s0);
    free(d);
}

Test(diagnostics, the_exact_method_agrees_with_itself)
{
    e2e_write("d.yaml", tiny);
    const char *a[] = {"run", "d.yaml", "method.name=unrolled", "diagnostics.every_steps=1",
                       "--out", "u", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0));
    const char *b[] = {"run", "d.yaml", "method.name=unrolled", "--out", "u0", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(b, NULL), 0));
    same_metrics("u0/metrics.csv", "u/metrics.csv");
    char *d = e2e_read("u/hypergrad_diag.csv");
    cr_assert(d != NULL && csv_data_rows(d) == 6);
    for (size_t r = 1; r <= 6; r++) {
        cr_assert(fabs(csv_cell(d, r, 6) - 1.0) < 1e-6, "row %zu cosine %.9g", r,
                  csv_cell(d, r, 6));
        cr_assert(fabs(csv_cell(d, r, 7) - 1.0) < 1e-6, "row %zu ratio %.9g", r,
                  csv_cell(d, r, 7));
        cr_assert(isnan(csv_cell(d, r, 10)), "no draws");
    }
    free(d);
    // the finite-difference method is compared with the exact one too
    const char *c[] = {"run", "d.yaml", "method.name=unrolled_fd", "diagnostics.every_steps=3",
                       "--out", "fd", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(c, NULL), 0));
    d = e2e_read("fd/hypergrad_diag.csv");
    cr_assert(d != NULL && csv_data_rows(d) == 2);
    cr_assert(isfinite(csv_cell(d, 1, 6)) && isfinite(csv_cell(d, 1, 7)));
    free(d);
}

Test(diagnostics, a_resumed_run_continues_the_file_exactly)
{
    e2e_write("d.yaml", tiny);
    const char *full[] = {"run", "d.yaml", "diagnostics.every_steps=1", "--out", "full",
                          "--quiet", NULL};
    cr_assert(eq(int, e2e_run(full, NULL), 0));
    const char *part[] = {"run",   "d.yaml",       "diagnostics.every_steps=1",
                          "--out", "part",         "--quiet",
                          "--stop-after", "4",     NULL};
    cr_assert(eq(int, e2e_run(part, NULL), 0));
    char *d = e2e_read("part/hypergrad_diag.csv");
    cr_assert(d != NULL && csv_data_rows(d) == 4, "%s", d);
    free(d);
    const char *res[] = {"run", "d.yaml", "diagnostics.every_steps=1", "--out", "part",
                         "--resume", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(res, NULL), 0));
    char *a = e2e_read("full/hypergrad_diag.csv"), *b = e2e_read("part/hypergrad_diag.csv");
    cr_assert(a != NULL && b != NULL);
    cr_assert(eq(sz, csv_data_rows(a), 6));
    cr_assert(eq(sz, csv_data_rows(b), 6));
    for (size_t r = 1; r <= 6; r++) {
        for (size_t c = 0; c < 11; c++) {
            if (c == 2) continue; // the method's name
            const double x = csv_cell(a, r, c), y = csv_cell(b, r, c);
            cr_assert(x == y || (isnan(x) && isnan(y)), "row %zu col %zu: %g vs %g", r, c, x, y);
        }
    }
    free(a);
    free(b);
    same_metrics("full/metrics.csv", "part/metrics.csv");
}

// A non-zero exit, the message naming the key, and no metrics, for config (text) with the
// overrides o (NULL-terminated).
static void refused_config(const char *config, const char *const *o, const char *want)
{
    e2e_write("d.yaml", config);
    const char *a[12] = {"run", "d.yaml"};
    size_t n = 2;
    while (*o != NULL) a[n++] = *o++;
    a[n++] = "--out";
    a[n++] = "bad";
    a[n++] = "--quiet";
    a[n] = NULL;
    int st = e2e_run(a, NULL);
    char *err = e2e_read("stderr.txt");
    cr_assert(err != NULL);
    cr_assert(ne(int, st, 0), "accepted: %s", err);
    cr_assert(strstr(err, want) != NULL, "want '%s' in: %s", want, err);
    char *m = e2e_read("bad/metrics.csv");
    cr_assert(m == NULL);
    free(err);
}

static void refused(const char *const *o, const char *want)
{
    refused_config(tiny, o, want);
}

Test(diagnostics, bad_settings_are_config_errors)
{
    refused((const char *[]){"diagnostics.draws=4", NULL},
            "diagnostics.draws: 4 needs diagnostics.every_steps > 0");
    refused((const char *[]){"diagnostics.every_steps=2", "method.name=none", NULL},
            "diagnostics.every_steps: compares a method's hypergradient with the exact one; "
            "method.name is none");
    refused((const char *[]){"diagnostics.every_steps=2", "diagnostics.draws=2",
                             "method.name=unrolled", NULL},
            "diagnostics.draws: averages EvoGrad draws; method.name is unrolled");
    refused_config("task: toy1d\ndiagnostics: {every_steps: 2}\n", (const char *[]){NULL},
                   "diagnostics.every_steps: task toy1d has no meta-steps to diagnose");
    refused((const char *[]){"diagnostics.every_steps=-1", NULL}, "diagnostics.every_steps");
}
