/* test_toy1d.c - the 1-D illustration (lib/tasks/toy1d.c): the problem's gradients and the exact
 * hypergradient against central differences, the unrolled method on it against its closed form,
 * and the task end to end through the evograd binary (EVOGRAD_BIN, set by `make test`): the
 * files, their columns and row counts, determinism, method none, and the config errors. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "helpers.h"
#include "meta/hyper.h"
#include "tasks/toy1d.h"

// ---------------------------------------------------------------------------------------------
// the problem

Test(toy1d, losses_and_gradients_match_central_differences)
{
    struct meta_problem p;
    toy1d_problem_init(&p);
    cr_assert(eq(sz, p.P, 1));
    cr_assert(eq(sz, p.H, 1));
    const float xs[] = {-1.8f, -0.3f, 0.0f, 0.5f, 1.7f};
    const float lams[] = {0.1f, 0.9f, 2.0f};
    for (size_t i = 0; i < 5; i++) {
        for (size_t j = 0; j < 3; j++) {
            float x = xs[i], lam = lams[j], dx = NAN, dlam = NAN, dv = NAN;
            double lt = p.ops->train_loss(&p, &x, &lam, &dx, &dlam);
            double lv = p.ops->val_loss(&p, &x, &dv);
            double xd = x, ld = lam;
            cr_assert(epsilon_eq(dbl, lt, (xd - 1) * (xd - 1) + ld * xd * xd, 1e-12));
            cr_assert(epsilon_eq(dbl, lv, (xd - 0.5) * (xd - 0.5), 1e-12));
            // central differences in double (the losses are evaluated in double from floats)
            const float h = 1e-2f;
            float xp = x + h, xm = x - h, lp = lam + h, lm = lam - h;
            double fd_x = (p.ops->train_loss(&p, &xp, &lam, NULL, NULL) -
                           p.ops->train_loss(&p, &xm, &lam, NULL, NULL)) /
                          ((double)xp - (double)xm);
            double fd_l = (p.ops->train_loss(&p, &x, &lp, NULL, NULL) -
                           p.ops->train_loss(&p, &x, &lm, NULL, NULL)) /
                          ((double)lp - (double)lm);
            double fd_v = (p.ops->val_loss(&p, &xp, NULL) - p.ops->val_loss(&p, &xm, NULL)) /
                          ((double)xp - (double)xm);
            cr_assert(epsilon_eq(dbl, dx, fd_x, 1e-4), "x=%g lambda=%g: %g vs %g", xd, ld,
                      (double)dx, fd_x);
            cr_assert(epsilon_eq(dbl, dlam, fd_l, 1e-4), "x=%g lambda=%g", xd, ld);
            cr_assert(epsilon_eq(dbl, dv, fd_v, 1e-4), "x=%g", xd);
        }
    }
}

// l_V(x*(lambda)), x* = argmin_x l_T = 1 / (1 + lambda)
static double val_at_optimum(double lam)
{
    return toy1d_val_loss(1.0 / (1.0 + lam));
}

Test(toy1d, exact_hypergradient_matches_a_central_difference)
{
    for (double lam = 0.05; lam <= 3.0; lam += 0.15) {
        const double h = 1e-5;
        double fd = (val_at_optimum(lam + h) - val_at_optimum(lam - h)) / (2 * h);
        cr_assert(epsilon_eq(dbl, toy1d_exact(lam), fd, 1e-8), "lambda=%g: %g vs %g", lam,
                  toy1d_exact(lam), fd);
    }
    cr_assert(eq(dbl, toy1d_exact(1.0), 0.0)); // the validation optimum x* = 0.5
}

// The unrolled look-ahead on the toy in closed form: x' = x - a dl_T/dx,
// h = -a (d^2 l_T / dlambda dx) dl_V/dx(x') = -a (2x) (2 (x' - 0.5)).
Test(toy1d, unrolled_method_matches_its_closed_form)
{
    struct meta_problem p;
    toy1d_problem_init(&p);
    const double a = 0.1;
    struct hyper_params hp = {.method = HYPER_UNROLLED, .candidates = 2, .sigma = 1.0,
                              .temperature = 0.5, .lookahead_lr = a};
    struct hyper *h = hyper_new(&hp, 1, 1);
    struct rng rng;
    rng_seed(&rng, 5);
    const float xs[] = {-1.8f, -0.4f, 0.3f, 1.2f};
    for (size_t i = 0; i < 4; i++) {
        float x = xs[i], lam = 0.7f, hg = NAN;
        hyper_grad(h, &p, &x, &lam, &rng, &hg, NULL);
        double xd = x, xp = xd - a * (2 * (xd - 1) + 2 * (double)lam * xd);
        double want = -a * (2 * xd) * (2 * (xp - 0.5));
        cr_assert(epsilon_eq(dbl, hg, want, 1e-4 + 1e-3 * fabs(want)), "x=%g: %g vs %g", xd,
                  (double)hg, want);
    }
    hyper_free(h);
}

// ---------------------------------------------------------------------------------------------
// end to end through the runner

TestSuite(toy1d_run, .init = e2e_setup, .fini = e2e_teardown);

// A small toy1d config: 7 lambdas on [0.2, 1.4], 20 trials, 3 steps.
static const char small_config[] = "name: toy\n"
                                   "seed: 4\n"
                                   "task: toy1d\n"
                                   "method: {name: evograd, candidates: 10, sigma: 1,\n"
                                   "         temperature: 0.5, noise: gaussian}\n"
                                   "meta:\n"
                                   "  optimizer: {name: sgd, lr: 0.1, momentum: 0,\n"
                                   "              nesterov: false, weight_decay: 0}\n"
                                   "toy1d: {trials: 20, grid_points: 7, lambda_min: 0.2,\n"
                                   "        lambda_max: 1.4, steps: 3, lr: 0.1}\n";

// Splits a CSV text into lines (in place); returns the count, header included.
static size_t split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;
    for (char *s = strtok(text, "\n"); s != NULL && n < max; s = strtok(NULL, "\n")) {
        lines[n++] = s;
    }
    return n;
}

// Parses a row of numbers (comma-separated); returns the count.
static size_t parse_row(const char *line, double *v, size_t max)
{
    size_t n = 0;
    const char *p = line;
    while (n < max) {
        char *end = NULL;
        v[n++] = strtod(p, &end);
        cr_assert(end != p, "bad number in '%s'", line);
        if (*end != ',') break;
        p = end + 1;
    }
    return n;
}

Test(toy1d_run, writes_hypergrad_and_trajectories_with_the_right_shape)
{
    e2e_write("toy.yaml", small_config);
    const char *args[] = {"run", "toy.yaml", "--out", "r", "--runs", "runs.csv", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(args, NULL), 0), "%s", e2e_read("stderr.txt"));
    const char *files[] = {"r/config.yaml", "r/summary.csv", "r/DONE", "runs.csv"};
    for (size_t i = 0; i < 4; i++) {
        char *t = e2e_read(files[i]);
        cr_assert(t != NULL, "%s missing", files[i]);
        free(t);
    }
    char *none = e2e_read("r/metrics.csv");
    cr_assert(none == NULL, "toy1d writes no metrics.csv");

    // hypergrad.csv: header + 7 lambdas from 0.2 to 1.4; exact is the closed form
    char *text = e2e_read("r/hypergrad.csv");
    cr_assert(text != NULL);
    char *lines[64];
    size_t n = split_lines(text, lines, 64);
    cr_assert(eq(sz, n, 8), "%zu lines", n);
    cr_assert(strcmp(lines[0], "lambda,mean,std,exact") == 0, "%s", lines[0]);
    for (size_t i = 1; i < n; i++) {
        double v[4];
        cr_assert(eq(sz, parse_row(lines[i], v, 4), 4), "%s", lines[i]);
        double lam = 0.2 + (double)(i - 1) * (1.2 / 6.0);
        cr_assert(epsilon_eq(dbl, v[0], lam, 1e-8), "%s", lines[i]);
        cr_assert(epsilon_eq(dbl, v[3], toy1d_exact(v[0]), 1e-8), "%s", lines[i]);
        cr_assert(isfinite(v[1]) && v[2] > 0.0, "%s", lines[i]); // random x: a spread
        cr_assert(v[1] > -1.0 && v[1] < 1.0, "%s", lines[i]);
    }
    cr_assert(epsilon_eq(dbl, strtod(lines[n - 1], NULL), 1.4, 1e-12)); // the last is lambda_max
    free(text);

    // trajectories: header + 5 starts x (steps + 1) rows; step 0 is the paper's start
    const char *trajs[] = {"r/trajectory.csv", "r/trajectory_exact.csv"};
    for (size_t f = 0; f < 2; f++) {
        text = e2e_read(trajs[f]);
        cr_assert(text != NULL, "%s", trajs[f]);
        n = split_lines(text, lines, 64);
        cr_assert(eq(sz, n, 1 + TOY1D_NSTARTS * 4), "%s: %zu lines", trajs[f], n);
        cr_assert(strcmp(lines[0], "start,step,x,lambda,val_loss") == 0, "%s", lines[0]);
        double prev_lam = 0.0;
        for (size_t i = 1; i < n; i++) {
            double v[5];
            cr_assert(eq(sz, parse_row(lines[i], v, 5), 5), "%s", lines[i]);
            size_t s = (i - 1) / 4, k = (i - 1) % 4;
            cr_assert(eq(dbl, v[0], (double)s));
            cr_assert(eq(dbl, v[1], (double)k));
            cr_assert(epsilon_eq(dbl, v[4], toy1d_val_loss(v[2]), 1e-6), "%s", lines[i]);
            if (k == 0) {
                // %.9g of the float starting point
                cr_assert(eq(flt, (float)v[2], toy1d_starts[s][0]), "%s", lines[i]);
                cr_assert(eq(flt, (float)v[3], toy1d_starts[s][1]), "%s", lines[i]);
            } else if (f == 1) {
                // plain GD with the exact hypergradient at the previous lambda
                cr_assert(epsilon_eq(dbl, v[3], prev_lam - 0.1 * toy1d_exact(prev_lam), 1e-6),
                          "%s", lines[i]);
            }
            prev_lam = v[3];
        }
        free(text);
    }

    char *summary = e2e_read("r/summary.csv");
    cr_assert(strstr(summary, "\ntoy,toy1d,none,none,evograd,10,1,0.5,4,") != NULL, "%s", summary);
    // no accuracy, interval, angle: final_test_acc to test_acc_back all nan
    cr_assert(strstr(summary, ",nan,nan,nan,nan,nan,") != NULL, "%s", summary);
    free(summary);
}

Test(toy1d_run, same_seed_same_files_and_method_none_gives_zero)
{
    e2e_write("toy.yaml", small_config);
    const char *a1[] = {"run", "toy.yaml", "--out", "a", "--quiet", NULL};
    const char *a2[] = {"run", "a/config.yaml", "--out", "b", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a1, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(eq(int, e2e_run(a2, NULL), 0), "%s", e2e_read("stderr.txt"));
    const char *names[] = {"hypergrad.csv", "trajectory.csv", "trajectory_exact.csv"};
    for (size_t i = 0; i < 3; i++) {
        char pa[64], pb[64];
        snprintf(pa, sizeof pa, "a/%s", names[i]);
        snprintf(pb, sizeof pb, "b/%s", names[i]);
        char *ta = e2e_read(pa), *tb = e2e_read(pb);
        cr_assert(ta != NULL && tb != NULL);
        cr_assert(strcmp(ta, tb) == 0, "%s differs between runs", names[i]);
        free(ta);
        free(tb);
    }
    // a second run into the same --out is refused
    cr_assert(eq(int, e2e_run(a1, NULL), 1));

    const char *a3[] = {"run", "toy.yaml", "method.name=none", "--out", "c", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a3, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *text = e2e_read("c/hypergrad.csv");
    char *lines[64];
    size_t n = split_lines(text, lines, 64);
    for (size_t i = 1; i < n; i++) {
        double v[4];
        parse_row(lines[i], v, 4);
        cr_assert(eq(dbl, v[1], 0.0), "%s", lines[i]);
        cr_assert(eq(dbl, v[2], 0.0), "%s", lines[i]);
    }
    free(text);
}

Test(toy1d_run, bad_configs_exit_1_with_the_key)
{
    e2e_write("toy.yaml", small_config);
    const char *a1[] = {"run", "toy.yaml", "toy1d.lambda_max=0.2", "--out", "x", NULL};
    cr_assert(eq(int, e2e_run(a1, NULL), 1));
    char *e = e2e_read("stderr.txt");
    cr_assert(strstr(e, "override 'toy1d.lambda_max=0.2': toy1d.lambda_max: 0.2 must be greater "
                        "than toy1d.lambda_min = 0.2") != NULL,
              "%s", e);
    free(e);

    e2e_write("sup.yaml", "name: sup\nmethod: {name: evograd}\n");
    const char *a2[] = {"check", "sup.yaml", NULL};
    cr_assert(eq(int, e2e_run(a2, NULL), 1));
    e = e2e_read("stderr.txt");
    cr_assert(strstr(e, "error: method.name: evograd needs a task with hyperparameters (toy1d, "
                        "rotation, mwn, lft)") != NULL,
              "%s", e);
    free(e);

    const char *a3[] = {"check", "toy.yaml", "meta.optimizer.momentum=0",
                        "meta.optimizer.nesterov=true", NULL};
    cr_assert(eq(int, e2e_run(a3, NULL), 1));
    e = e2e_read("stderr.txt");
    cr_assert(strstr(e, "meta.optimizer.nesterov: true requires meta.optimizer.momentum > 0") !=
                  NULL,
              "%s", e);
    free(e);
    char *out = e2e_read("x/hypergrad.csv");
    cr_assert(out == NULL, "nothing is written for a bad config");
}
