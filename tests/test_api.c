/* test_api.c - the public API (evograd/evograd.h) through that header alone, as a user's
 * program sees it: hypergradients of problems with closed-form answers (EvoGrad's formula over
 * every possible draw, the one-step look-ahead of a quadratic), the backbones' loss and its
 * gradient, the dataset loader on fixture files, a whole run from a config, and every error
 * path with its message. tests/install.sh checks the installed library and its symbols. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evograd/evograd.h"
#include "helpers.h"

TestSuite(api, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

// The 1-D problem of the paper's illustration: l_T = (x - 1)^2 + lambda x^2, l_V = (x - 0.5)^2.
static double toy_train(void *ctx, const float *theta, const float *lambda, float *dtheta,
                        float *dlambda)
{
    int *calls = ctx;
    if (calls != NULL) (*calls)++;
    const double x = theta[0], l = lambda[0];
    if (dtheta != NULL) dtheta[0] = (float)(2 * (x - 1) + 2 * l * x);
    if (dlambda != NULL) dlambda[0] = (float)(x * x);
    return (x - 1) * (x - 1) + l * x * x;
}

static double toy_val(void *ctx, const float *theta, float *dtheta)
{
    (void)ctx;
    const double x = theta[0];
    if (dtheta != NULL) dtheta[0] = (float)(2 * (x - 0.5));
    return (x - 0.5) * (x - 0.5);
}

// EvoGrad's hypergradient for P = H = 1 with the K = 2 perturbations e1, e2 (paper-spec 1.3):
// w = softmax(-l / tau), x* = sum w_k (x + e_k), h = -(1/tau) sum_k w_k s_k d_k with
// s_k = l_V'(x*) (e_k - sum_j w_j e_j), d_k = dl_T/dlambda at x + e_k.
static double evograd_by_hand(double x, double lambda, double e1, double e2, double tau)
{
    const double x1 = x + e1, x2 = x + e2;
    const double l1 = (x1 - 1) * (x1 - 1) + lambda * x1 * x1;
    const double l2 = (x2 - 1) * (x2 - 1) + lambda * x2 * x2;
    const double m = fmin(l1, l2);
    const double a = exp(-(l1 - m) / tau), b = exp(-(l2 - m) / tau);
    const double w1 = a / (a + b), w2 = b / (a + b);
    const double xs = w1 * x1 + w2 * x2, gv = 2 * (xs - 0.5), eb = w1 * e1 + w2 * e2;
    return -(w1 * gv * (e1 - eb) * x1 * x1 + w2 * gv * (e2 - eb) * x2 * x2) / tau;
}

Test(api, evograd_is_its_formula_for_one_of_the_possible_draws_and_reproducible)
{
    struct eg_hyper_options o;
    eg_hyper_options_default(&o);
    cr_assert(strcmp(o.method, "evograd") == 0 && o.candidates == 2 && o.sigma == 0.001 &&
              o.temperature == 0.05 && !o.gaussian);
    o.sigma = 0.3;
    o.temperature = 0.5;
    struct eg_hyper *h, *again;
    struct eg_error err;
    cr_assert(eg_hyper_new(&o, 1, 1, &h, &err) == EG_OK, "%s", err.msg);
    cr_assert(eg_hyper_new(&o, 1, 1, &again, &err) == EG_OK, "%s", err.msg);
    int calls = 0;
    const struct eg_problem p = {
        .P = 1, .H = 1, .train_loss = toy_train, .val_loss = toy_val, .ctx = &calls};
    const float x = 0.2f, lambda = 0.7f;
    bool seen[4] = {false};
    for (int t = 0; t < 40; t++) {
        float hgf, hg2;
        const double vl = eg_hypergrad(h, &p, &x, &lambda, &hgf);
        eg_hypergrad(again, &p, &x, &lambda, &hg2);
        const double hg = hgf;
        cr_assert(hgf == hg2, "draw %d: the same seed gave %g and %g", t, hg, (double)hg2);
        // Rademacher draws: each e_k is +-0.3; the result must be the formula for one of them
        int match = -1;
        for (int d = 0; d < 4; d++) {
            const double e1 = d & 1 ? 0.3 : -0.3, e2 = d & 2 ? 0.3 : -0.3;
            const double want = evograd_by_hand((double)x, (double)lambda, e1, e2, 0.5);
            if (fabs(hg - want) <= 1e-5 * (1 + fabs(want))) match = d;
        }
        cr_assert(match >= 0, "draw %d: %.9g is EvoGrad's formula for none of the draws", t, hg);
        seen[match] = true;
        cr_assert(isfinite(vl) && vl >= 0);
    }
    cr_assert(seen[1] || seen[2], "40 draws never drew two different signs");
    cr_assert(calls >= 40 * 2, "the training loss was called %d times", calls);
    eg_hyper_free(h);
    eg_hyper_free(again);
}

// unrolled_fd on the quadratic: x' = x - alpha dl_T/dx, h = l_V'(x') dx'/dlambda with
// dx'/dlambda = -alpha 2x (closed form; the central difference is exact up to rounding).
Test(api, unrolled_fd_is_the_closed_form_one_step_look_ahead_and_none_is_zero)
{
    struct eg_hyper_options o;
    eg_hyper_options_default(&o);
    o.method = "unrolled_fd";
    o.lookahead_lr = 0.1;
    struct eg_hyper *h;
    struct eg_error err;
    cr_assert(eg_hyper_new(&o, 1, 1, &h, &err) == EG_OK, "%s", err.msg);
    const struct eg_problem p = {.P = 1, .H = 1, .train_loss = toy_train, .val_loss = toy_val};
    const float xs[] = {-1.5f, 0.2f, 0.9f, 2.0f}, lambdas[] = {0.1f, 1.0f, 1.7f};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 3; j++) {
            const double x = xs[i], l = lambdas[j];
            const double x1 = x - 0.1 * (2 * (x - 1) + 2 * l * x);
            const double want = 2 * (x1 - 0.5) * (-0.1 * 2 * x);
            float hgf;
            const double vl = eg_hypergrad(h, &p, &xs[i], &lambdas[j], &hgf);
            const double hg = hgf;
            cr_assert(fabs(hg - want) <= 1e-3 * fabs(want) + 1e-6,
                      "x %g lambda %g: %.9g, want %.9g", x, l, hg, want);
            cr_assert(fabs(vl - (x1 - 0.5) * (x1 - 0.5)) < 1e-5, "l_V at x' %g", vl);
        }
    }
    eg_hyper_free(h);

    o.method = "none";
    cr_assert(eg_hyper_new(&o, 1, 1, &h, &err) == EG_OK, "%s", err.msg);
    float hg = 1;
    eg_hypergrad(h, &p, &xs[1], &lambdas[1], &hg);
    cr_assert(hg == 0.0f);
    eg_hyper_free(h);
    eg_hyper_free(NULL);
}

// Each bad option: EG_ERR_ARG, *out NULL, the message naming it.
static void hyper_refused(struct eg_hyper_options o, size_t P, size_t H, const char *want)
{
    struct eg_hyper *const sentinel = (struct eg_hyper *)&o, *h = sentinel;
    struct eg_error err = {0};
    cr_assert(eg_hyper_new(&o, P, H, &h, &err) == EG_ERR_ARG, "accepted (want '%s')", want);
    cr_assert(h == sentinel, "*out was written");
    cr_assert(strstr(err.msg, want) != NULL, "want '%s' in: %s", want, err.msg);
}

Test(api, bad_hypergradient_options_are_refused_with_the_value)
{
    struct eg_hyper_options o;
    eg_hyper_options_default(&o);
    struct eg_hyper_options b = o;
    b.method = "evograd2";
    hyper_refused(b, 1, 1, "method: 'evograd2' is not a method (evograd, unrolled_fd or none)");
    b.method = "unrolled";
    hyper_refused(b, 1, 1, "method: unrolled needs exact second-order products");
    b = o;
    b.candidates = 0;
    hyper_refused(b, 1, 1, "candidates: 0; expected 1 to 100000");
    b = o;
    b.sigma = -1;
    hyper_refused(b, 1, 1, "sigma: -1; expected a number > 0");
    b = o;
    b.temperature = NAN;
    hyper_refused(b, 1, 1, "temperature: nan; expected a number > 0");
    b = o;
    b.method = "unrolled_fd";
    b.lookahead_lr = 0;
    hyper_refused(b, 1, 1, "lookahead_lr: 0; expected a number > 0");
    hyper_refused(o, 0, 1, "sizes: P = 0 and H = 1");
}

// ---------------------------------------------------------------------------------------------
// backbones

Test(api, a_backbones_loss_gradient_matches_central_differences_at_any_theta)
{
    struct eg_net *net;
    struct eg_error err;
    cr_assert(eg_net_new("mlp", 1, 4, 4, 3, 7, &net, &err) == EG_OK, "%s", err.msg);
    const size_t P = eg_net_nparams(net), n = 5;
    cr_assert(P == 16 * 256 + 256 + 256 * 256 + 256 + 256 * 3 + 3, "P = %zu", P);
    float x[5 * 16];
    const int32_t y[5] = {0, 1, 2, 1, 0};
    for (size_t i = 0; i < n * 16; i++)
        x[i] = (float)sin(0.7 * (double)i);
    float *own = eg_net_params(net), *keep = malloc(P * sizeof *keep);
    memcpy(keep, own, P * sizeof *keep);
    float *theta = malloc(P * sizeof *theta), *g = malloc(P * sizeof *g);
    float *u = malloc(P * sizeof *u), *t = malloc(P * sizeof *t);
    for (size_t i = 0; i < P; i++) {
        theta[i] = own[i] * 1.5f;
        u[i] = (float)cos(1.3 * (double)i);
    }
    size_t correct = 99;
    const double l = eg_net_loss(net, theta, x, y, n, false, g, &correct);
    cr_assert(correct <= n && isfinite(l) && l > 0);
    cr_assert(memcmp(own, keep, P * sizeof *own) == 0, "the loss at theta changed the weights");
    // the directional derivative along u against a central difference (float, step 1e-3)
    double gu = 0, un = 0;
    for (size_t i = 0; i < P; i++) {
        gu += (double)g[i] * (double)u[i];
        un += (double)u[i] * (double)u[i];
    }
    const double e = 1e-3 / sqrt(un);
    for (size_t i = 0; i < P; i++)
        t[i] = theta[i] + (float)e * u[i];
    const double lp = eg_net_loss(net, t, x, y, n, false, NULL, NULL);
    for (size_t i = 0; i < P; i++)
        t[i] = theta[i] - (float)e * u[i];
    const double lm = eg_net_loss(net, t, x, y, n, false, NULL, NULL);
    const double fd = (lp - lm) / (2 * e);
    cr_assert(fabs(fd - gu) <= 2e-2 * fabs(gu) + 1e-4, "gradient . u %.6g, central difference %.6g",
              gu, fd);
    // NULL theta is the own weights
    cr_assert(eg_net_loss(net, NULL, x, y, n, false, NULL, NULL) ==
              eg_net_loss(net, keep, x, y, n, false, NULL, NULL));
    free(keep);
    free(theta);
    free(g);
    free(u);
    free(t);
    eg_net_free(net);
    eg_net_free(NULL);
}

static int err_sentinel; // its address stands for "not written" in *out

Test(api, bad_backbones_are_refused_with_the_reason)
{
    struct eg_net *const sentinel = (struct eg_net *)&err_sentinel, *net = sentinel;
    struct eg_error err;
    cr_assert(eg_net_new("lenet5", 1, 28, 28, 10, 1, &net, &err) == EG_ERR_ARG);
    cr_assert(net == sentinel, "*out was written");
    cr_assert(strstr(err.msg, "backbone: 'lenet5' is not a backbone (mlp, lenet,") != NULL, "%s",
              err.msg);
    cr_assert(eg_net_new("lenet", 1, 4, 4, 10, 1, &net, &err) == EG_ERR_ARG);
    cr_assert(strstr(err.msg, "lenet: ") == err.msg, "%s", err.msg);
    cr_assert(eg_net_new("mlp", 1, 4, 4, 1, 1, &net, &err) == EG_ERR_ARG);
    cr_assert(strstr(err.msg, "at least 2 classes") != NULL, "%s", err.msg);
}

// ---------------------------------------------------------------------------------------------
// datasets

// An IDX file of n items of shape dims[1..ndims) (ndims 1: labels), bytes from f(i).
static void write_idx(const char *rel, unsigned magic, const unsigned *dims, size_t ndims,
                      size_t bytes, uint8_t (*f)(size_t))
{
    size_t len = 4 + 4 * ndims + bytes;
    uint8_t *b = calloc(len, 1);
    b[2] = (uint8_t)(magic >> 8);
    b[3] = (uint8_t)magic;
    for (size_t d = 0; d < ndims; d++) {
        for (int k = 0; k < 4; k++)
            b[4 + 4 * d + (size_t)k] = (uint8_t)(dims[d] >> (24 - 8 * k));
    }
    for (size_t i = 0; i < bytes; i++)
        b[4 + 4 * ndims + i] = f(i);
    e2e_write_bytes(rel, b, len);
    free(b);
}

static uint8_t pixel(size_t i)
{
    return (uint8_t)(i * 37 % 256);
}

static uint8_t label(size_t i)
{
    return (uint8_t)(i % 10);
}

Test(api, datasets_load_by_name_with_pixels_in_0_1_and_a_missing_file_is_named)
{
    e2e_mkdir("mn");
    const unsigned train_img[] = {6, 28, 28}, train_lab[] = {6}, test_img[] = {4, 28, 28},
                   test_lab[] = {4};
    write_idx("mn/train-images-idx3-ubyte", 0x0803, train_img, 3, 6 * 784, pixel);
    write_idx("mn/train-labels-idx1-ubyte", 0x0801, train_lab, 1, 6, label);
    write_idx("mn/t10k-images-idx3-ubyte", 0x0803, test_img, 3, 4 * 784, pixel);
    write_idx("mn/t10k-labels-idx1-ubyte", 0x0801, test_lab, 1, 4, label);
    struct eg_dataset *d;
    struct eg_error err;
    cr_assert(eg_dataset_load("mnist", e2e_path("mn"), true, &d, &err) == EG_OK, "%s", err.msg);
    size_t c, h, w;
    eg_dataset_shape(d, &c, &h, &w);
    cr_assert(eg_dataset_size(d) == 6 && c == 1 && h == 28 && w == 28 &&
              eg_dataset_classes(d) == 10);
    float x[2 * 784];
    int32_t y[2];
    eg_dataset_get(d, 3, 2, x, y);
    cr_assert(y[0] == 3 && y[1] == 4);
    cr_assert(x[0] == (float)pixel(3 * 784) / 255.0f &&
              x[785] == (float)pixel(4 * 784 + 1) / 255.0f);
    eg_dataset_free(d);
    cr_assert(eg_dataset_load("mnist", e2e_path("mn"), false, &d, &err) == EG_OK, "%s", err.msg);
    cr_assert(eg_dataset_size(d) == 4);
    eg_dataset_free(d);
    eg_dataset_free(NULL);

    struct eg_dataset *const sentinel = (struct eg_dataset *)&err_sentinel;
    d = sentinel;
    cr_assert(eg_dataset_load("mnist", e2e_path("nothing"), true, &d, &err) == EG_ERR_IO);
    cr_assert(d == sentinel, "*out was written");
    cr_assert(strstr(err.msg, "nothing/train-images-idx3-ubyte") != NULL, "%s", err.msg);
    cr_assert(eg_dataset_load("imagenet", NULL, true, &d, &err) == EG_ERR_ARG);
    cr_assert(strstr(err.msg, "dataset: 'imagenet' is not one of mnist, fashion_mnist") != NULL,
              "%s", err.msg);
}

// ---------------------------------------------------------------------------------------------
// runs

Test(api, a_config_runs_into_a_directory_and_a_bad_one_writes_nothing)
{
    e2e_write("toy.yaml", "name: toy\ntask: toy1d\n"
                          "method: {name: evograd, candidates: 2, sigma: 0.5, temperature: 0.5}\n"
                          "toy1d: {trials: 5, grid_points: 3, steps: 2}\n");
    const char *ov[] = {"seed=3"};
    struct eg_run_summary s;
    struct eg_error err;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", e2e_path("run"));
    cr_assert(eg_run_config(e2e_path("toy.yaml"), ov, 1, dir, &s, &err) == EG_OK, "%s", err.msg);
    char *cfg = e2e_read("run/config.yaml"), *hg = e2e_read("run/hypergrad.csv");
    cr_assert(cfg != NULL && strstr(cfg, "\nseed: 3\n") != NULL &&
              strstr(cfg, "task: toy1d") != NULL);
    cr_assert(hg != NULL && strncmp(hg, "lambda,mean,std,exact\n", 22) == 0 &&
                  csv_data_rows(hg) == 3,
              "%s", hg);
    cr_assert(isfinite(s.wall_s) && isnan(s.test_acc));
    free(cfg);
    free(hg);
    // the same directory again: it holds a run
    cr_assert(eg_run_config(e2e_path("toy.yaml"), NULL, 0, dir, &s, &err) == EG_ERR_IO);
    cr_assert(strstr(err.msg, "holds a run") != NULL, "%s", err.msg);
    // a bad override: the located message, and no directory
    const char *bad[] = {"toy1d.trials=0"};
    snprintf(dir, sizeof dir, "%s", e2e_path("bad"));
    cr_assert(eg_run_config(e2e_path("toy.yaml"), bad, 1, dir, NULL, &err) == EG_ERR_CONFIG);
    cr_assert(strstr(err.msg, "override 'toy1d.trials=0': toy1d.trials:") == err.msg, "%s",
              err.msg);
    cr_assert(e2e_read("bad/config.yaml") == NULL);
    // missing data: the run never started, so nothing is left (not even the directory)
    e2e_write("sup.yaml", "name: s\ndata: {dataset: mnist, root: nowhere}\n");
    cr_assert(eg_run_config(e2e_path("sup.yaml"), NULL, 0, dir, &s, &err) == EG_ERR_IO);
    cr_assert(strstr(err.msg, "nowhere/train-images-idx3-ubyte") != NULL, "%s", err.msg);
    struct stat sb;
    cr_assert(stat(dir, &sb) != 0, "%s is left after a run that never started", dir);
    // a key the task never reads
    const char *unread[] = {"rotation.degrees=45"};
    cr_assert(eg_run_config(e2e_path("toy.yaml"), unread, 1, dir, NULL, &err) == EG_ERR_CONFIG);
    cr_assert(strstr(err.msg, "task toy1d never reads this key") != NULL, "%s", err.msg);
    cr_assert(strcmp(eg_version(), EVOGRAD_VERSION) == 0);
    cr_assert(strcmp(eg_status_name(EG_ERR_CONFIG), "config") == 0);
}
