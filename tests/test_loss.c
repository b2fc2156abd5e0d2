/* test_loss.c - softmax cross-entropy against PyTorch (data/cross_entropy.txt, float64 golden
 * values, including logits near 1000 where a naive exp overflows), against central differences
 * in double, and the accuracy count with ties. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/loss.h"

#define REF_N 5
#define REF_C 10

// Checks one case of the reference file; the section names are prefix + "per_sample" etc.
// (logits are "z" or "zbig"). Float32 logits: ~1e-5 relative agreement is expected.
static void check_reference_case(const char *logits_name, const char *prefix)
{
    struct ref *r = ref_load("data/cross_entropy.txt");
    char name[64];
    size_t n;
    float *z = ref_floats(r, logits_name, REF_N * REF_C);
    float *w = ref_floats(r, "w", REF_N);
    const double *yd = ref_get(r, "y", &n);
    cr_assert(eq(sz, n, REF_N));
    int32_t y[REF_N];
    for (size_t i = 0; i < REF_N; i++)
        y[i] = (int32_t)yd[i];

    // per-sample losses and their sum (the return value)
    float losses[REF_N];
    double sum = xent_forward(z, y, REF_N, REF_C, losses);
    snprintf(name, sizeof name, "%sper_sample", prefix);
    const double *want_c = ref_get(r, name, &n);
    cr_assert(eq(sz, n, REF_N));
    assert_close(name, losses, want_c, REF_N, 1e-6, 1e-5);

    // weighted sum L = sum_n w_n c_n
    double L = 0.0;
    for (size_t i = 0; i < REF_N; i++)
        L += (double)w[i] * (double)losses[i];
    snprintf(name, sizeof name, "%sweighted_sum", prefix);
    double want_L = ref_get(r, name, NULL)[0];
    cr_assert(epsilon_eq(dbl, L, want_L, 1e-5 * fabs(want_L)), "%s: %.9g vs %.9g", name, L, want_L);

    // mean = sum / N
    snprintf(name, sizeof name, "%smean", prefix);
    double want_mean = ref_get(r, name, NULL)[0];
    double mean = sum / REF_N;
    cr_assert(epsilon_eq(dbl, mean, want_mean, 1e-5 * fabs(want_mean)), "%s: %.9g vs %.9g", name,
              mean, want_mean);

    // dL/dz with dlosses = w, and d(mean)/dz with dlosses = NULL
    float dz[REF_N * REF_C];
    xent_backward(z, y, w, REF_N, REF_C, dz);
    snprintf(name, sizeof name, "%sdL_dz", prefix);
    assert_close(name, dz, ref_get(r, name, NULL), REF_N * REF_C, 1e-6, 1e-5);
    xent_backward(z, y, NULL, REF_N, REF_C, dz);
    snprintf(name, sizeof name, "%sdmean_dz", prefix);
    assert_close(name, dz, ref_get(r, name, NULL), REF_N * REF_C, 1e-6, 1e-5);

    free(z);
    free(w);
    ref_free(r);
}

Test(loss, matches_pytorch)
{
    check_reference_case("z", "");
}

// Logits of magnitude ~1000: exp(1000) overflows even in double, so only a max-shifted
// log-sum-exp gets finite losses (~255 to ~1860 here) and a near one-hot gradient.
Test(loss, matches_pytorch_large_logits)
{
    check_reference_case("zbig", "big_");
}

// L(z) = sum_n w_n c_n(z) with each c_n taken from the double return value of a one-sample
// forward (no float rounding of the loss), differentiated by central differences in double.
static double weighted_loss(const float *z, const int32_t *y, const float *w, size_t N, size_t C)
{
    double L = 0.0;
    float c;
    for (size_t n = 0; n < N; n++)
        L += (double)w[n] * xent_forward(z + n * C, y + n, 1, C, &c);
    return L;
}

Test(loss, gradient_matches_finite_differences)
{
    struct rng r;
    rng_seed(&r, 81);
    enum { N = 4, C = 7 };
    float z[N * C], w[N], dz[N * C];
    int32_t y[N];
    rng_fill_uniform(&r, z, N * C, -3.0f, 3.0f);
    rng_fill_uniform(&r, w, N, 0.2f, 2.0f);
    for (size_t n = 0; n < N; n++)
        y[n] = (int32_t)rng_below(&r, C);
    xent_backward(z, y, w, N, C, dz);

    // The loss is smooth: with h = 1e-3 the O(h^2) truncation error is ~1e-7, and evaluating in
    // double adds ~1e-13; the float result of backward is good to ~1e-7 relative.
    const double h = 1e-3;
    double fd[N * C];
    for (size_t i = 0; i < N * C; i++) {
        float keep = z[i];
        z[i] = (float)((double)keep + h);
        double hp = (double)z[i] - (double)keep; // the step float actually took
        double Lp = weighted_loss(z, y, w, N, C);
        z[i] = (float)((double)keep - h);
        double hm = (double)keep - (double)z[i];
        double Lm = weighted_loss(z, y, w, N, C);
        z[i] = keep;
        fd[i] = (Lp - Lm) / (hp + hm);
    }
    assert_close("xent dL/dz vs finite differences", dz, fd, N * C, 1e-5, 1e-5);
}

// Argmax ties go to the lowest index, so a tie counts as correct only for the first of the tied
// classes.
Test(loss, correct_counts_argmax_with_ties_to_lowest)
{
    const float z[] = {
        1.0f,  3.0f,  2.0f,  // argmax 1
        5.0f,  5.0f,  1.0f,  // tie 0/1 -> 0
        5.0f,  5.0f,  1.0f,  // tie 0/1 -> 0
        0.0f,  0.0f,  0.0f,  // three-way tie -> 0
        -1.0f, -2.0f, -0.5f, // argmax 2, all negative
    };
    const int32_t y[] = {1, 0, 1, 2, 2};
    cr_assert(eq(sz, xent_correct(z, y, 5, 3), 3)); // samples 0, 1 and 4
    const int32_t y_all_first[] = {1, 0, 0, 0, 2};
    cr_assert(eq(sz, xent_correct(z, y_all_first, 5, 3), 5));
    cr_assert(eq(sz, xent_correct(z, y, 0, 3), 0));
}

Test(loss, forward_rejects_label_out_of_range, .signal = SIGABRT)
{
    const float z[3] = {0.0f, 1.0f, 2.0f};
    const int32_t y[1] = {3};
    float c;
    xent_forward(z, y, 1, 3, &c);
}

Test(loss, backward_rejects_negative_label, .signal = SIGABRT)
{
    const float z[3] = {0.0f, 1.0f, 2.0f};
    const int32_t y[1] = {-1};
    float dz[3];
    xent_backward(z, y, NULL, 1, 3, dz);
}

Test(loss, correct_rejects_label_out_of_range, .signal = SIGABRT)
{
    const float z[3] = {0.0f, 1.0f, 2.0f};
    const int32_t y[1] = {7};
    xent_correct(z, y, 1, 3);
}

// xent_tangent against central differences of xent_backward and xent_forward along a random
// direction of the logits and of the per-sample weights, in double from float outputs.
Test(xent, tangent_matches_central_differences)
{
    enum { N = 5, C = 4 };
    struct rng r;
    rng_seed(&r, 3);
    float z[N * C], tz[N * C], w[N], tw[N];
    int32_t y[N] = {0, 3, 1, 2, 3};
    rng_fill_uniform(&r, z, N * C, -2.0f, 2.0f);
    rng_fill_uniform(&r, tz, N * C, -1.0f, 1.0f);
    rng_fill_uniform(&r, w, N, 0.1f, 1.0f);
    rng_fill_uniform(&r, tw, N, -1.0f, 1.0f);
    float tdz[N * C], tl[N];
    xent_tangent(z, y, w, tz, tw, N, C, tdz, tl);
    const double h = 1e-3;
    float zp[N * C], zm[N * C], wp[N], wm[N], dzp[N * C], dzm[N * C], lp[N], lm[N];
    double fd[N * C], fdl[N];
    for (size_t i = 0; i < N * C; i++) {
        zp[i] = (float)((double)z[i] + h * (double)tz[i]);
        zm[i] = (float)((double)z[i] - h * (double)tz[i]);
    }
    for (size_t i = 0; i < N; i++) {
        wp[i] = (float)((double)w[i] + h * (double)tw[i]);
        wm[i] = (float)((double)w[i] - h * (double)tw[i]);
    }
    xent_backward(zp, y, wp, N, C, dzp);
    xent_backward(zm, y, wm, N, C, dzm);
    xent_forward(zp, y, N, C, lp);
    xent_forward(zm, y, N, C, lm);
    for (size_t i = 0; i < N * C; i++) fd[i] = ((double)dzp[i] - (double)dzm[i]) / (2.0 * h);
    for (size_t i = 0; i < N; i++) fdl[i] = ((double)lp[i] - (double)lm[i]) / (2.0 * h);
    // float outputs differenced over 2e-3: ~1e-4 absolute
    assert_close("tangent of dlogits", tdz, fd, N * C, 3e-4, 1e-3);
    assert_close("tangent of the losses", tl, fdl, N, 3e-4, 1e-3);
    // dlosses NULL means 1/N each, with no weight tangent
    float tdz2[N * C];
    xent_tangent(z, y, NULL, tz, NULL, N, C, tdz2, NULL);
    for (size_t i = 0; i < N; i++) w[i] = 1.0f / N;
    xent_tangent(z, y, w, tz, NULL, N, C, tdz, NULL);
    assert_close_f("mean weights", tdz2, tdz, N * C, 1e-7, 1e-6);
}
