/* test_batchnorm.c - layer_batchnorm against PyTorch's float64 golden values
 * (data/batchnorm_train.txt: train and eval mode, 4x3x5x5 NCHW), a naive double-precision
 * reference, finite differences in every mode, the running-statistics rules and the contracts. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/layers.h"
#include "nn/layout.h"

static const struct batchnorm_params torch_bn = {
    .eps = 1e-5f, .momentum = 0.1f, .track_running_stats = true};

// ---------------------------------------------------------------------------------------------
// helpers

// Compares got (n) with a reference section to 1e-5 of the section's largest magnitude: the
// layer is float32, the reference float64.
static void check_section(const char *what, const float *got, const struct ref *r, const char *name,
                          size_t n)
{
    size_t got_n = 0;
    const double *want = ref_get(r, name, &got_n);
    cr_assert(eq(sz, got_n, n), "section %s", name);
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    assert_close(what, got, want, n, 1e-5 * scale, 0.0);
}

// One forward, then one backward with dy, through fresh zeroed dx and grads.
//   x, dy, y, dx: (l->in_shape, n) CNHW;  params, grads: (l->nparams);  stats: (l->nstats) or NULL.
// dx and grads are ADDED to (callers zero them).
static void run_bn(struct layer *l, size_t n, enum layer_mode mode, const float *params,
                   float *stats, const float *x, const float *dy, float *y, float *dx, float *grads)
{
    struct layer_ctx ctx = {.n = n, .mode = mode, .params = params, .grads = grads, .stats = stats};
    const float *const xs[1] = {x};
    float *const dxs[1] = {dx};
    l->ops->forward(l, &ctx, xs, y);
    l->ops->backward(l, &ctx, xs, y, dy, dxs);
}

// The golden file's problem, converted to the network's CNHW layout.
struct golden {
    struct ref *r;
    size_t N, numel; // batch and total element count
    struct shape s;
    float *x, *g;    // (3, 4, 5, 5) CNHW
    float params[6]; // gamma (3), beta (3)
    float *y, *dx;   // (3, 4, 5, 5) CNHW, zeroed
    float *nchw;     // (4, 3, 5, 5) scratch for comparisons
    float grads[6];
};

static void golden_load(struct golden *gd)
{
    memset(gd, 0, sizeof *gd);
    gd->r = ref_load("data/batchnorm_train.txt");
    gd->N = 4;
    gd->s = (struct shape){3, 5, 5};
    gd->numel = gd->N * shape_numel(gd->s);
    float *x = ref_floats(gd->r, "x", gd->numel), *g = ref_floats(gd->r, "g", gd->numel);
    gd->x = eg_xmalloc_floats(gd->numel);
    gd->g = eg_xmalloc_floats(gd->numel);
    layout_nchw_to_cnhw(x, gd->x, gd->N, gd->s);
    layout_nchw_to_cnhw(g, gd->g, gd->N, gd->s);
    free(x);
    free(g);
    float *gamma = ref_floats(gd->r, "gamma", 3), *beta = ref_floats(gd->r, "beta", 3);
    memcpy(gd->params, gamma, 3 * sizeof(float));
    memcpy(gd->params + 3, beta, 3 * sizeof(float));
    free(gamma);
    free(beta);
    gd->y = eg_xcalloc_floats(gd->numel);
    gd->dx = eg_xcalloc_floats(gd->numel);
    gd->nchw = eg_xmalloc_floats(gd->numel);
}

static void golden_free(struct golden *gd)
{
    ref_free(gd->r);
    free(gd->x);
    free(gd->g);
    free(gd->y);
    free(gd->dx);
    free(gd->nchw);
}

// Compares a CNHW activation with an NCHW reference section.
static void check_activation(struct golden *gd, const char *what, const float *cnhw,
                             const char *name)
{
    layout_cnhw_to_nchw(cnhw, gd->nchw, gd->N, gd->s);
    check_section(what, gd->nchw, gd->r, name, gd->numel);
}

static double weighted_sum(const float *y, const float *g, size_t n)
{
    double L = 0.0;
    for (size_t i = 0; i < n; i++)
        L += (double)y[i] * (double)g[i];
    return L;
}

// ---------------------------------------------------------------------------------------------
// PyTorch golden values

Test(batchnorm, train_mode_matches_pytorch)
{
    struct golden gd;
    golden_load(&gd);
    struct layer l;
    layer_batchnorm(&l, gd.s, torch_bn);
    float stats[6] = {0, 0, 0, 1, 1, 1}; // PyTorch's fresh running statistics
    run_bn(&l, gd.N, LAYER_MODE_TRAIN, gd.params, stats, gd.x, gd.g, gd.y, gd.dx, gd.grads);

    check_activation(&gd, "train out", gd.y, "out");
    check_section("running_mean", stats, gd.r, "running_mean", 3);
    check_section("running_var", stats + 3, gd.r, "running_var", 3);
    const double *loss = ref_get(gd.r, "loss", NULL);
    double L = weighted_sum(gd.y, gd.g, gd.numel);
    cr_assert(fabs(L - loss[0]) <= 1e-5 * fabs(loss[0]), "loss %.9g want %.9g", L, loss[0]);
    check_activation(&gd, "train dL/dx", gd.dx, "dL_dx");
    check_section("train dL/dgamma", gd.grads, gd.r, "dL_dgamma", 3);
    check_section("train dL/dbeta", gd.grads + 3, gd.r, "dL_dbeta", 3);

    layer_release(&l);
    golden_free(&gd);
}

// With momentum 1 the running statistics become the batch mean and the unbiased variance, which
// exposes the statistics the layer computed.
Test(batchnorm, train_batch_statistics_match_pytorch)
{
    struct golden gd;
    golden_load(&gd);
    struct layer l;
    layer_batchnorm(&l, gd.s, (struct batchnorm_params){1e-5f, 1.0f, true});
    float stats[6] = {0, 0, 0, 1, 1, 1};
    run_bn(&l, gd.N, LAYER_MODE_TRAIN, gd.params, stats, gd.x, gd.g, gd.y, gd.dx, gd.grads);

    check_section("batch mean", stats, gd.r, "batch_mean", 3);
    check_section("unbiased batch var", stats + 3, gd.r, "batch_var_unbiased", 3);
    const size_t m = gd.N * 25;
    float biased[3];
    for (size_t c = 0; c < 3; c++) {
        biased[c] = (float)((double)stats[3 + c] * (double)(m - 1) / (double)m);
    }
    check_section("biased batch var", biased, gd.r, "batch_var_biased", 3);
    layer_release(&l);
    golden_free(&gd);
}

Test(batchnorm, eval_mode_matches_pytorch_and_leaves_stats_alone)
{
    struct golden gd;
    golden_load(&gd);
    struct layer l;
    layer_batchnorm(&l, gd.s, torch_bn);
    float *rm = ref_floats(gd.r, "rm_eval", 3), *rv = ref_floats(gd.r, "rv_eval", 3);
    float stats[6], before[6];
    memcpy(stats, rm, sizeof rm[0] * 3);
    memcpy(stats + 3, rv, sizeof rv[0] * 3);
    memcpy(before, stats, sizeof stats);
    run_bn(&l, gd.N, LAYER_MODE_EVAL, gd.params, stats, gd.x, gd.g, gd.y, gd.dx, gd.grads);

    check_activation(&gd, "eval out", gd.y, "out_eval");
    const double *loss = ref_get(gd.r, "loss_eval", NULL);
    double L = weighted_sum(gd.y, gd.g, gd.numel);
    cr_assert(fabs(L - loss[0]) <= 1e-5 * fabs(loss[0]), "loss %.9g want %.9g", L, loss[0]);
    check_activation(&gd, "eval dL/dx", gd.dx, "dLeval_dx");
    check_section("eval dL/dgamma", gd.grads, gd.r, "dLeval_dgamma", 3);
    check_section("eval dL/dbeta", gd.grads + 3, gd.r, "dLeval_dbeta", 3);
    cr_assert(memcmp(stats, before, sizeof stats) == 0, "eval mode changed the running stats");

    free(rm);
    free(rv);
    layer_release(&l);
    golden_free(&gd);
}

// ---------------------------------------------------------------------------------------------
// modes and running statistics

Test(batchnorm, frozen_uses_batch_stats_and_leaves_running_stats_bit_identical)
{
    struct golden gd;
    golden_load(&gd);
    struct layer l;
    layer_batchnorm(&l, gd.s, torch_bn);
    float stats[6] = {0.3f, -0.2f, 0.1f, 0.7f, 1.9f, 1.3f}, before[6];
    memcpy(before, stats, sizeof stats);
    run_bn(&l, gd.N, LAYER_MODE_TRAIN_FROZEN, gd.params, stats, gd.x, gd.g, gd.y, gd.dx, gd.grads);

    cr_assert(memcmp(stats, before, sizeof stats) == 0, "TRAIN_FROZEN changed running stats");
    // same output and gradients as train mode: batch statistics, differentiated
    check_activation(&gd, "frozen out", gd.y, "out");
    check_activation(&gd, "frozen dL/dx", gd.dx, "dL_dx");
    check_section("frozen dL/dgamma", gd.grads, gd.r, "dL_dgamma", 3);
    check_section("frozen dL/dbeta", gd.grads + 3, gd.r, "dL_dbeta", 3);
    layer_release(&l);
    golden_free(&gd);
}

// Two channels of m = 2 values; eps = 0 so every number is exact. Channel 0: {1, 3}, mean 2,
// biased var 1, unbiased 2. Channel 1: {0, 4}, mean 2, biased var 4, unbiased 8.
Test(batchnorm, train_updates_running_stats_with_unbiased_variance)
{
    struct layer l;
    layer_batchnorm(&l, (struct shape){2, 1, 1}, (struct batchnorm_params){0.0f, 0.25f, true});
    const float x[4] = {1, 3, 0, 4}; // CNHW, N = 2
    const float params[4] = {1, 1, 0, 0};
    float stats[4] = {1.0f, -1.0f, 2.0f, 0.5f}; // rm (2), rv (2)
    float y[4];
    const float *const xs[1] = {x};
    layer_run_forward(&l, 2, LAYER_MODE_TRAIN, params, stats, xs, y);

    // rm = 0.75*rm + 0.25*mean;  rv = 0.75*rv + 0.25*unbiased
    const float want_stats[4] = {1.25f, -0.25f, 2.0f, 2.375f};
    for (size_t i = 0; i < 4; i++) {
        cr_assert(epsilon_eq(flt, stats[i], want_stats[i], 1e-6f), "stats[%zu] = %g", i,
                  (double)stats[i]);
    }
    // the output uses the biased variance: (x - 2)/1 and (x - 2)/2
    const float want_y[4] = {-1, 1, -1, 1};
    for (size_t i = 0; i < 4; i++) {
        cr_assert(epsilon_eq(flt, y[i], want_y[i], 1e-6f), "y[%zu] = %g", i, (double)y[i]);
    }
    layer_release(&l);
}

// track_running_stats = false (the relation module's BN): no stats, batch statistics in every
// mode, ctx->stats may be NULL.
Test(batchnorm, untracked_uses_batch_statistics_in_every_mode)
{
    struct golden gd;
    golden_load(&gd);
    struct layer l;
    layer_batchnorm(&l, gd.s, (struct batchnorm_params){1e-5f, 0.1f, false});
    cr_assert(eq(sz, l.nstats, 0));
    enum layer_mode modes[3] = {LAYER_MODE_EVAL, LAYER_MODE_TRAIN, LAYER_MODE_TRAIN_FROZEN};
    for (size_t k = 0; k < 3; k++) {
        memset(gd.dx, 0, gd.numel * sizeof(float));
        memset(gd.grads, 0, sizeof gd.grads);
        run_bn(&l, gd.N, modes[k], gd.params, NULL, gd.x, gd.g, gd.y, gd.dx, gd.grads);
        check_activation(&gd, "untracked out", gd.y, "out");
        check_activation(&gd, "untracked dL/dx", gd.dx, "dL_dx");
        check_section("untracked dL/dgamma", gd.grads, gd.r, "dL_dgamma", 3);
        check_section("untracked dL/dbeta", gd.grads + 3, gd.r, "dL_dbeta", 3);
    }
    layer_release(&l);
    golden_free(&gd);
}

// PyTorch raises "Expected more than 1 value per channel when training"; here it is a bug.
Test(batchnorm, one_value_per_channel_in_train_mode_aborts, .signal = SIGABRT)
{
    struct layer l;
    layer_batchnorm(&l, (struct shape){2, 1, 1}, torch_bn);
    const float x[2] = {0.5f, -0.5f}, params[4] = {1, 1, 0, 0};
    float stats[4] = {0, 0, 1, 1}, y[2];
    const float *const xs[1] = {x};
    layer_run_forward(&l, 1, LAYER_MODE_TRAIN, params, stats, xs, y);
}

Test(batchnorm, one_value_per_channel_in_eval_mode_uses_running_stats)
{
    struct layer l;
    layer_batchnorm(&l, (struct shape){2, 1, 1}, (struct batchnorm_params){0.0f, 0.1f, true});
    const float x[2] = {3.0f, -1.0f}, params[4] = {2, 1, 0.5f, 0};
    float stats[4] = {1, 1, 4, 1}, y[2];
    const float *const xs[1] = {x};
    layer_run_forward(&l, 1, LAYER_MODE_EVAL, params, stats, xs, y);
    cr_assert(epsilon_eq(flt, y[0], 2.0f * (3.0f - 1.0f) / 2.0f + 0.5f, 1e-6f));
    cr_assert(epsilon_eq(flt, y[1], (-1.0f - 1.0f) / 1.0f, 1e-6f));
    layer_release(&l);
}

// ---------------------------------------------------------------------------------------------
// numerics

// Naive double-precision nn.BatchNorm2d train mode, straight from the definitions.
//   x, dy: (C, m) CNHW; y, dx: (C, m) written; dgamma, dbeta: (C) written.
static void naive_bn_train(const float *x, const float *dy, const float *gamma, const float *beta,
                           size_t C, size_t m, double eps, double *y, double *dx, double *dgamma,
                           double *dbeta)
{
    for (size_t c = 0; c < C; c++) {
        const float *xc = x + c * m, *dyc = dy + c * m;
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < m; i++)
            mean += (double)xc[i];
        mean /= (double)m;
        for (size_t i = 0; i < m; i++)
            var += ((double)xc[i] - mean) * ((double)xc[i] - mean);
        var /= (double)m;
        double is = 1.0 / sqrt(var + eps), sdxh = 0.0, sdxhxh = 0.0;
        dgamma[c] = dbeta[c] = 0.0;
        for (size_t i = 0; i < m; i++) {
            double xh = ((double)xc[i] - mean) * is, dxh = (double)dyc[i] * (double)gamma[c];
            y[c * m + i] = (double)gamma[c] * xh + (double)beta[c];
            sdxh += dxh;
            sdxhxh += dxh * xh;
            dgamma[c] += (double)dyc[i] * xh;
            dbeta[c] += (double)dyc[i];
        }
        for (size_t i = 0; i < m; i++) {
            double xh = ((double)xc[i] - mean) * is, dxh = (double)dyc[i] * (double)gamma[c];
            dx[c * m + i] = is / (double)m * ((double)m * dxh - sdxh - xh * sdxhxh);
        }
    }
}

// m = 7*5*9 = 315 covers a full 256-value chunk, whole blocks after it and a scalar tail.
Test(batchnorm, train_mode_matches_naive_double_reference)
{
    const size_t C = 3, N = 7, m = N * 5 * 9;
    struct rng r;
    rng_seed(&r, 5);
    float *x = eg_xmalloc_floats(C * m), *dy = eg_xmalloc_floats(C * m);
    float *y = eg_xmalloc_floats(C * m), *dx = eg_xcalloc_floats(C * m);
    for (size_t c = 0; c < C; c++) {
        rng_fill_gaussian(&r, x + c * m, m, 2.0f * (float)c - 1.5f, 0.5f + (float)c);
    }
    rng_fill_uniform(&r, dy, C * m, -1.0f, 1.0f);
    const float params[6] = {1.3f, -0.6f, 0.9f, 0.2f, -0.1f, 0.05f};
    float stats[6] = {0, 0, 0, 1, 1, 1}, grads[6] = {0};
    struct layer l;
    layer_batchnorm(&l, (struct shape){C, 5, 9}, torch_bn);
    run_bn(&l, N, LAYER_MODE_TRAIN, params, stats, x, dy, y, dx, grads);

    double *ry = eg_xmalloc_array(C * m, sizeof(double));
    double *rdx = eg_xmalloc_array(C * m, sizeof(double));
    double rdg[3], rdb[3];
    naive_bn_train(x, dy, params, params + 3, C, m, 1e-5, ry, rdx, rdg, rdb);
    assert_close("y", y, ry, C * m, 1e-5, 1e-5);
    assert_close("dx", dx, rdx, C * m, 1e-5, 1e-4);
    assert_close("dgamma", grads, rdg, 3, 1e-4, 1e-5);
    assert_close("dbeta", grads + 3, rdb, 3, 1e-4, 1e-5);

    free(x);
    free(dy);
    free(y);
    free(dx);
    free(ry);
    free(rdx);
    layer_release(&l);
}

// A channel with |mean| >> std: E[x^2] - E[x]^2 in float would lose every digit of the variance
// (1e6 - 1e6); the two-pass computation keeps it to float precision.
Test(batchnorm, variance_is_accurate_when_mean_dwarfs_std)
{
    const size_t N = 64, m = N * 8 * 8;
    struct rng r;
    rng_seed(&r, 9);
    float *x = eg_xmalloc_floats(m), *y = eg_xmalloc_floats(m);
    rng_fill_uniform(&r, x, m, 999.0f, 1001.0f);
    double mean = 0.0, var = 0.0;
    for (size_t i = 0; i < m; i++)
        mean += (double)x[i];
    mean /= (double)m;
    for (size_t i = 0; i < m; i++)
        var += ((double)x[i] - mean) * ((double)x[i] - mean);
    var /= (double)(m - 1);

    struct layer l;
    layer_batchnorm(&l, (struct shape){1, 8, 8}, (struct batchnorm_params){0.0f, 1.0f, true});
    const float params[2] = {1, 0};
    float stats[2] = {0, 1};
    const float *const xs[1] = {x};
    layer_run_forward(&l, N, LAYER_MODE_TRAIN, params, stats, xs, y);
    cr_assert(fabs((double)stats[0] - mean) <= 1e-7 * mean, "mean %.9g want %.9g", (double)stats[0],
              mean);
    cr_assert(fabs((double)stats[1] - var) <= 1e-5 * var, "var %.9g want %.9g", (double)stats[1],
              var);
    // the output is standardised: mean 0, biased variance 1
    double ym = 0.0, yv = 0.0;
    for (size_t i = 0; i < m; i++)
        ym += (double)y[i];
    ym /= (double)m;
    for (size_t i = 0; i < m; i++)
        yv += ((double)y[i] - ym) * ((double)y[i] - ym);
    yv /= (double)m;
    cr_assert(fabs(ym) < 1e-4 && fabs(yv - 1.0) < 1e-4, "output mean %g var %g", ym, yv);
    free(x);
    free(y);
    layer_release(&l);
}

// ---------------------------------------------------------------------------------------------
// finite differences

// Non-trivial gamma and beta so the parameter gradients are checked at a general point.
static const float gc_params[4] = {1.3f, -0.7f, 0.2f, -0.1f};

static void gradcheck_bn(const char *what, enum layer_mode mode, bool track, size_t n,
                         struct shape s)
{
    struct layer l;
    layer_batchnorm(&l, s, (struct batchnorm_params){1e-5f, 0.1f, track});
    struct gradcheck_opts o = {
        .n = n, .mode = mode, .h = 1e-2, .tol = 1e-3, .seed = 17, .params = gc_params};
    gradcheck_layer(what, &l, &o);
    layer_release(&l);
}

// m = 11*5*6 = 330: a full chunk, blocks and a tail; with m = 6 only the scalar tail.
Test(batchnorm, gradcheck_train_mode)
{
    gradcheck_bn("bn train", LAYER_MODE_TRAIN, true, 11, (struct shape){2, 5, 6});
    gradcheck_bn("bn train small", LAYER_MODE_TRAIN, true, 3, (struct shape){2, 1, 2});
}

Test(batchnorm, gradcheck_train_frozen_mode)
{
    gradcheck_bn("bn frozen", LAYER_MODE_TRAIN_FROZEN, true, 11, (struct shape){2, 5, 6});
}

Test(batchnorm, gradcheck_eval_mode)
{
    gradcheck_bn("bn eval", LAYER_MODE_EVAL, true, 11, (struct shape){2, 5, 6});
}

Test(batchnorm, gradcheck_without_running_stats)
{
    gradcheck_bn("bn untracked eval", LAYER_MODE_EVAL, false, 11, (struct shape){2, 5, 6});
    gradcheck_bn("bn untracked train", LAYER_MODE_TRAIN, false, 4, (struct shape){2, 3, 3});
}

// ---------------------------------------------------------------------------------------------
// backward contract

Test(batchnorm, backward_accumulates_and_skips_null_outputs)
{
    const size_t C = 2, N = 5, m = N * 3 * 4;
    struct rng r;
    rng_seed(&r, 3);
    float *x = eg_xmalloc_floats(C * m), *dy = eg_xmalloc_floats(C * m);
    float *y = eg_xmalloc_floats(C * m), *dx = eg_xcalloc_floats(C * m);
    float *dx1 = eg_xmalloc_floats(C * m);
    rng_fill_uniform(&r, x, C * m, -1.0f, 1.0f);
    rng_fill_uniform(&r, dy, C * m, -1.0f, 1.0f);
    struct layer l;
    layer_batchnorm(&l, (struct shape){C, 3, 4}, torch_bn);
    float stats[4] = {0, 0, 1, 1}, grads[4] = {0}, grads1[4];
    enum layer_mode modes[2] = {LAYER_MODE_TRAIN, LAYER_MODE_EVAL};
    for (size_t k = 0; k < 2; k++) {
        struct layer_ctx ctx = {
            .n = N, .mode = modes[k], .params = gc_params, .grads = grads, .stats = stats};
        const float *const xs[1] = {x};
        float *const dxs[1] = {dx};
        memset(dx, 0, C * m * sizeof(float));
        memset(grads, 0, sizeof grads);
        l.ops->forward(&l, &ctx, xs, y);
        l.ops->backward(&l, &ctx, xs, y, dy, dxs);
        memcpy(dx1, dx, C * m * sizeof(float));
        memcpy(grads1, grads, sizeof grads);
        l.ops->backward(&l, &ctx, xs, y, dy, dxs); // adds the same again: exactly twice
        for (size_t i = 0; i < C * m; i++)
            cr_assert(dx[i] == 2.0f * dx1[i], "dx[%zu]", i);
        for (size_t i = 0; i < 4; i++)
            cr_assert(grads[i] == 2.0f * grads1[i], "g[%zu]", i);

        // without dx, the same parameter gradients; without grads, the same dx
        float *const nodx[1] = {NULL};
        memset(grads, 0, sizeof grads);
        l.ops->backward(&l, &ctx, xs, y, dy, nodx);
        cr_assert(memcmp(grads, grads1, sizeof grads) == 0);
        struct layer_ctx nograds = ctx;
        nograds.grads = NULL;
        memset(dx, 0, C * m * sizeof(float));
        l.ops->backward(&l, &nograds, xs, y, dy, dxs);
        cr_assert(memcmp(dx, dx1, C * m * sizeof(float)) == 0);
    }
    free(x);
    free(dy);
    free(y);
    free(dx);
    free(dx1);
    layer_release(&l);
}

// ---------------------------------------------------------------------------------------------
// constructor

Test(batchnorm, constructor_sets_counts_flags_and_initial_values)
{
    struct layer l;
    struct shape s = {4, 3, 2};
    layer_batchnorm(&l, s, torch_bn);
    cr_assert(strcmp(l.ops->name, "batchnorm") == 0);
    cr_assert(eq(sz, l.nin, 1));
    cr_assert(shape_eq(l.in_shape[0], s) && shape_eq(l.out_shape, s));
    cr_assert(eq(sz, l.nparams, 8));
    cr_assert(eq(sz, l.nstats, 8));
    cr_assert(l.ops->can_run_in_place == false && l.ops->backward_reads_y == false);
    cr_assert(l.ops->flops(&l, 10) > 0.0);
    float params[8], stats[8];
    l.ops->init(&l, params, stats, NULL);
    for (size_t c = 0; c < 4; c++) {
        cr_assert(params[c] == 1.0f && params[4 + c] == 0.0f);
        cr_assert(stats[c] == 0.0f && stats[4 + c] == 1.0f);
    }
    layer_release(&l);

    layer_batchnorm(&l, s, (struct batchnorm_params){1e-5f, 0.1f, false});
    cr_assert(eq(sz, l.nparams, 8));
    cr_assert(eq(sz, l.nstats, 0));
    layer_release(&l);
}
