/* test_pool.c - max, average and global average pooling against naive loops written here
 * (random shapes, padding, stride != k), handmade padding and tie cases, and finite
 * differences. Activations are CNHW: C*N independent H x W planes. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/layers.h"

static void run_backward(struct layer *l, size_t n, const float *x, const float *y, const float *dy,
                         float *dx)
{
    struct layer_ctx ctx = {.n = n, .mode = LAYER_MODE_TRAIN};
    const float *const xs[1] = {x};
    float *const dxs[1] = {dx};
    l->ops->backward(l, &ctx, xs, y, dy, dxs);
}

static size_t pool_out(size_t len, struct pool_params p)
{
    return (len + 2 * p.pad - p.k) / p.stride + 1;
}

// The naive references: for every plane and output, scan the full k x k window in padded
// coordinates and skip what falls outside the image. Max: first strict maximum in row-major
// order (PyTorch's tie rule), dx routed there. Avg: sum in double / (k*k).
//   x: (planes, H, W);  y: (planes, Ho, Wo) written;  dy like y;  dx like x, added to.
static void naive_pool(bool is_max, const float *x, size_t planes, size_t H, size_t W,
                       struct pool_params p, float *y, const float *dy, float *dx)
{
    size_t Ho = pool_out(H, p), Wo = pool_out(W, p);
    for (size_t q = 0; q < planes; q++) {
        const float *xp = x + q * H * W;
        for (size_t oh = 0; oh < Ho; oh++) {
            for (size_t ow = 0; ow < Wo; ow++) {
                double sum = 0.0;
                float m = -INFINITY;
                size_t arg = SIZE_MAX;
                for (size_t a = 0; a < p.k; a++) {
                    for (size_t b = 0; b < p.k; b++) {
                        long ih = (long)(oh * p.stride + a) - (long)p.pad;
                        long iw = (long)(ow * p.stride + b) - (long)p.pad;
                        if (ih < 0 || iw < 0 || ih >= (long)H || iw >= (long)W) continue;
                        size_t idx = (size_t)ih * W + (size_t)iw;
                        sum += (double)xp[idx];
                        if (arg == SIZE_MAX || xp[idx] > m) {
                            m = xp[idx];
                            arg = idx;
                        }
                    }
                }
                size_t o = (q * Ho + oh) * Wo + ow;
                cr_assert(arg != SIZE_MAX, "empty window");
                if (is_max) {
                    y[o] = m;
                    dx[q * H * W + arg] += dy[o];
                } else {
                    y[o] = (float)(sum / (double)(p.k * p.k));
                    for (size_t a = 0; a < p.k; a++) {
                        for (size_t b = 0; b < p.k; b++) {
                            long ih = (long)(oh * p.stride + a) - (long)p.pad;
                            long iw = (long)(ow * p.stride + b) - (long)p.pad;
                            if (ih < 0 || iw < 0 || ih >= (long)H || iw >= (long)W) continue;
                            dx[q * H * W + (size_t)ih * W + (size_t)iw] +=
                                (float)((double)dy[o] / (double)(p.k * p.k));
                        }
                    }
                }
            }
        }
    }
}

// Forward and backward of a max or avg pool layer against naive_pool on one configuration.
static void check_against_naive(bool is_max, struct rng *r, size_t C, size_t N, size_t H, size_t W,
                                struct pool_params p, float lo, float hi)
{
    struct layer l;
    struct shape in = {.c = C, .h = H, .w = W};
    if (is_max) {
        layer_maxpool(&l, in, p);
    } else {
        layer_avgpool(&l, in, p);
    }
    size_t Ho = pool_out(H, p), Wo = pool_out(W, p);
    cr_assert(l.out_shape.c == C && l.out_shape.h == Ho && l.out_shape.w == Wo,
              "out shape %zux%zux%zu", l.out_shape.c, l.out_shape.h, l.out_shape.w);
    size_t nx = C * N * H * W, ny = C * N * Ho * Wo;
    float *x = eg_xmalloc_floats(nx), *dy = eg_xmalloc_floats(ny);
    float *y = eg_xmalloc_floats(ny), *y_ref = eg_xmalloc_floats(ny);
    float *dx = eg_xcalloc_floats(nx), *dx_ref = eg_xcalloc_floats(nx);
    rng_fill_uniform(r, x, nx, lo, hi);
    rng_fill_uniform(r, dy, ny, -1.0f, 1.0f);
    const float *const xs[1] = {x};
    layer_run_forward(&l, N, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    run_backward(&l, N, x, y, dy, dx);
    naive_pool(is_max, x, C * N, H, W, p, y_ref, dy, dx_ref);
    char what[160];
    snprintf(what, sizeof what, "%s C=%zu N=%zu H=%zu W=%zu k=%zu s=%zu pad=%zu",
             is_max ? "maxpool" : "avgpool", C, N, H, W, p.k, p.stride, p.pad);
    // the max is exact; window sums may round in a different order
    assert_close_f(what, y, y_ref, ny, is_max ? 0.0 : 1e-6, is_max ? 0.0 : 1e-6);
    assert_close_f(what, dx, dx_ref, nx, 1e-6, 1e-6);
    free(x);
    free(dy);
    free(y);
    free(y_ref);
    free(dx);
    free(dx_ref);
    layer_release(&l);
}

// The usual configurations (LeNet 2x2/2, ResNet stem 3x3/2 pad 1, ...) and random ones.
static void check_random_shapes(bool is_max, unsigned long seed)
{
    struct rng r;
    rng_seed(&r, seed);
    static const size_t fixed[][5] = {
        // H, W, k, stride, pad
        {28, 28, 2, 2, 0}, {10, 10, 2, 2, 0}, {5, 5, 2, 2, 0}, {7, 7, 3, 2, 1}, {32, 32, 3, 2, 1},
        {6, 9, 3, 1, 1},   {8, 8, 3, 3, 1},   {4, 4, 4, 1, 2}, {1, 1, 1, 1, 0}, {3, 5, 3, 2, 0},
    };
    for (size_t t = 0; t < sizeof fixed / sizeof fixed[0]; t++) {
        struct pool_params p = {.k = fixed[t][2], .stride = fixed[t][3], .pad = fixed[t][4]};
        check_against_naive(is_max, &r, 2, 3, fixed[t][0], fixed[t][1], p, -1.0f, 1.0f);
    }
    for (int t = 0; t < 60; t++) {
        struct pool_params p;
        p.k = 1 + (size_t)rng_below(&r, 4);
        p.stride = 1 + (size_t)rng_below(&r, 3);
        p.pad = (size_t)rng_below(&r, p.k / 2 + 1);
        size_t min_len = p.k > 2 * p.pad ? p.k - 2 * p.pad : 1;
        size_t H = min_len + (size_t)rng_below(&r, 9), W = min_len + (size_t)rng_below(&r, 9);
        size_t C = 1 + (size_t)rng_below(&r, 3), N = 1 + (size_t)rng_below(&r, 3);
        check_against_naive(is_max, &r, C, N, H, W, p, -1.0f, 1.0f);
    }
}

// ---------------------------------------------------------------------------------------------
// max pooling

Test(maxpool, output_size_is_floor_mode)
{
    struct layer l;
    layer_maxpool(&l, (struct shape){.c = 6, .h = 28, .w = 28},
                  (struct pool_params){.k = 2, .stride = 2});
    cr_assert(l.out_shape.c == 6 && l.out_shape.h == 14 && l.out_shape.w == 14);
    cr_assert(eq(sz, l.nparams, 0));
    layer_release(&l);
    layer_maxpool(&l, (struct shape){.c = 3, .h = 5, .w = 7},
                  (struct pool_params){.k = 2, .stride = 2});
    cr_assert(l.out_shape.h == 2 && l.out_shape.w == 3); // floor(3/2)+1, floor(5/2)+1
    layer_release(&l);
    layer_maxpool(&l, (struct shape){.c = 64, .h = 112, .w = 112},
                  (struct pool_params){.k = 3, .stride = 2, .pad = 1});
    cr_assert(l.out_shape.h == 56 && l.out_shape.w == 56);
    layer_release(&l);
}

Test(maxpool, rejects_pad_over_half_the_window, .signal = SIGABRT)
{
    struct layer l;
    layer_maxpool(&l, (struct shape){.c = 1, .h = 4, .w = 4},
                  (struct pool_params){.k = 2, .stride = 2, .pad = 2});
}

Test(maxpool, matches_naive_loops_on_random_shapes)
{
    check_random_shapes(true, 21);
}

// 2x2 input, k=2 stride 1 pad 1: the border windows hold one or two real values, all negative.
// A zero-padded max would return 0 there.
Test(maxpool, padding_never_wins_with_negative_inputs)
{
    struct layer l;
    layer_maxpool(&l, (struct shape){.c = 1, .h = 2, .w = 2},
                  (struct pool_params){.k = 2, .stride = 1, .pad = 1});
    cr_assert(l.out_shape.h == 3 && l.out_shape.w == 3);
    const float x[4] = {-1.0f, -2.0f, -3.0f, -4.0f};
    const float want[9] = {-1.0f, -1.0f, -2.0f, -1.0f, -1.0f, -2.0f, -3.0f, -3.0f, -4.0f};
    float y[9];
    const float *const xs[1] = {x};
    layer_run_forward(&l, 1, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    assert_close_f("maxpool of negatives with pad", y, want, 9, 0.0, 0.0);
    layer_release(&l);

    // and at random: all outputs stay negative, and agree with the naive loops
    struct rng r;
    rng_seed(&r, 22);
    check_against_naive(true, &r, 3, 2, 9, 8, (struct pool_params){.k = 3, .stride = 2, .pad = 1},
                        -2.0f, -0.5f);
    layer_maxpool(&l, (struct shape){.c = 2, .h = 7, .w = 7},
                  (struct pool_params){.k = 3, .stride = 2, .pad = 1});
    float xn[2 * 7 * 7], yn[2 * 4 * 4];
    rng_fill_uniform(&r, xn, 2 * 7 * 7, -2.0f, -0.5f);
    const float *const xns[1] = {xn};
    layer_run_forward(&l, 1, LAYER_MODE_TRAIN, NULL, NULL, xns, yn);
    for (size_t i = 0; i < 2 * 4 * 4; i++)
        cr_assert(lt(flt, yn[i], -0.49f), "i=%zu", i);
    layer_release(&l);
}

// Equal values in one window: the first in row-major order is the max and gets the gradient.
Test(maxpool, ties_go_to_the_first_in_row_major_order)
{
    struct layer l;
    layer_maxpool(&l, (struct shape){.c = 1, .h = 2, .w = 2},
                  (struct pool_params){.k = 2, .stride = 2});
    // three planes (N = 3): all equal; a tie on the anti-diagonal; a tie in the bottom row
    const float x[12] = {1, 1, 1, 1, 0, 2, 2, 0, -1, -3, 5, 5};
    const float dy[3] = {1.0f, 2.0f, 3.0f};
    const float want_y[3] = {1, 2, 5};
    const float want_dx[12] = {1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0};
    float y[3], dx[12] = {0};
    const float *const xs[1] = {x};
    layer_run_forward(&l, 3, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    run_backward(&l, 3, x, y, dy, dx);
    assert_close_f("maxpool tie forward", y, want_y, 3, 0.0, 0.0);
    assert_close_f("maxpool tie backward", dx, want_dx, 12, 0.0, 0.0);
    layer_release(&l);
}

// A NaN in a window wins the max (PyTorch's CPU kernel: val > max || isnan(val)), so a
// diverged activation is not hidden by pooling.
Test(maxpool, nan_propagates)
{
    struct layer l;
    layer_maxpool(&l, (struct shape){.c = 1, .h = 2, .w = 4},
                  (struct pool_params){.k = 2, .stride = 2});
    const float x[8] = {1.0f, NAN, 0.0f, 3.0f, 2.0f, 0.5f, -1.0f, 0.0f};
    float y[2];
    const float *const xs[1] = {x};
    layer_run_forward(&l, 1, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    cr_assert(isnan(y[0]));
    cr_assert(eq(flt, y[1], 3.0f));
    layer_release(&l);
}

// Inputs a random permutation of (i - nx/2) * 0.05: every two values differ by >= 0.05. The
// central difference moves one value by +-h = 0.01 while the others stay put, so no two values
// of a window swap order, the argmax of every window is unchanged on [x - h, x + h] and L is
// linear there: the difference quotient is exact up to float rounding. (-inf padding is never
// near anything.)
static void maxpool_gradcheck(struct shape in, size_t N, struct pool_params p, unsigned long seed)
{
    struct rng r;
    rng_seed(&r, seed);
    size_t nx = shape_numel(in) * N;
    size_t *perm = eg_xmalloc_array(nx, sizeof *perm);
    float *x = eg_xmalloc_floats(nx);
    rng_permutation(&r, perm, nx);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)(((double)perm[i] - (double)nx / 2.0) * 0.05);
    struct layer l;
    layer_maxpool(&l, in, p);
    const float *const xs[1] = {x};
    gradcheck_layer(
        "maxpool", &l,
        &(struct gradcheck_opts){.n = N, .h = 1e-2, .tol = 1e-3, .seed = seed, .x = xs});
    layer_release(&l);
    free(perm);
    free(x);
}

Test(maxpool, gradcheck)
{
    maxpool_gradcheck((struct shape){.c = 2, .h = 7, .w = 6}, 2,
                      (struct pool_params){.k = 3, .stride = 2, .pad = 1}, 31);
    maxpool_gradcheck((struct shape){.c = 2, .h = 4, .w = 6}, 2,
                      (struct pool_params){.k = 2, .stride = 2}, 32);
    maxpool_gradcheck((struct shape){.c = 1, .h = 5, .w = 5}, 3,
                      (struct pool_params){.k = 3, .stride = 1, .pad = 1}, 33);
}

// ---------------------------------------------------------------------------------------------
// average pooling

Test(avgpool, matches_naive_loops_on_random_shapes)
{
    check_random_shapes(false, 41);
}

// count_include_pad=True: a corner window of a 3x3/1 pad 1 pool over ones is 4/9, not 1.
Test(avgpool, padding_counts_as_zeros)
{
    struct layer l;
    layer_avgpool(&l, (struct shape){.c = 1, .h = 3, .w = 3},
                  (struct pool_params){.k = 3, .stride = 1, .pad = 1});
    const float x[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const double want[9] = {4.0 / 9, 6.0 / 9, 4.0 / 9, 6.0 / 9, 1.0,
                            6.0 / 9, 4.0 / 9, 6.0 / 9, 4.0 / 9};
    float y[9];
    const float *const xs[1] = {x};
    layer_run_forward(&l, 1, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    assert_close("avgpool of ones with pad", y, want, 9, 1e-7, 1e-6);
    layer_release(&l);
}

Test(avgpool, gradcheck_with_padding)
{
    static const struct pool_params ps[] = {
        {.k = 3, .stride = 2, .pad = 1},
        {.k = 3, .stride = 1, .pad = 1},
        {.k = 2, .stride = 2, .pad = 0},
        {.k = 4, .stride = 3, .pad = 2},
    };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        struct layer l;
        layer_avgpool(&l, (struct shape){.c = 2, .h = 6, .w = 5}, ps[i]);
        gradcheck_layer("avgpool", &l,
                        &(struct gradcheck_opts){.n = 2, .h = 1e-2, .tol = 1e-3, .seed = 50 + i});
        layer_release(&l);
    }
}

// Two backward calls into the same dx give twice the gradient of one (max and avg).
Test(pool, backward_accumulates)
{
    struct rng r;
    rng_seed(&r, 61);
    const struct shape in = {.c = 3, .h = 7, .w = 7};
    const size_t N = 2, nx = shape_numel(in) * N;
    for (int is_max = 0; is_max < 2; is_max++) {
        struct layer l;
        struct pool_params p = {.k = 3, .stride = 2, .pad = 1}; // overlapping windows
        if (is_max) {
            layer_maxpool(&l, in, p);
        } else {
            layer_avgpool(&l, in, p);
        }
        size_t ny = shape_numel(l.out_shape) * N;
        float *x = eg_xmalloc_floats(nx), *y = eg_xmalloc_floats(ny);
        float *dy = eg_xmalloc_floats(ny);
        float *dx1 = eg_xcalloc_floats(nx), *dx2 = eg_xcalloc_floats(nx);
        rng_fill_uniform(&r, x, nx, -1.0f, 1.0f);
        rng_fill_uniform(&r, dy, ny, -1.0f, 1.0f);
        const float *const xs[1] = {x};
        layer_run_forward(&l, N, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
        run_backward(&l, N, x, y, dy, dx1);
        run_backward(&l, N, x, y, dy, dx2);
        run_backward(&l, N, x, y, dy, dx2);
        for (size_t i = 0; i < nx; i++)
            dx1[i] *= 2.0f;
        assert_close_f(is_max ? "maxpool twice" : "avgpool twice", dx2, dx1, nx, 1e-6, 1e-6);
        run_backward(&l, N, x, y, dy, NULL); // dx NULL: nothing to do, nothing written
        free(x);
        free(y);
        free(dy);
        free(dx1);
        free(dx2);
        layer_release(&l);
    }
}

// ---------------------------------------------------------------------------------------------
// global average pooling

Test(global_avgpool, matches_plane_means_and_runs_in_place)
{
    struct rng r;
    rng_seed(&r, 71);
    const struct shape in = {.c = 5, .h = 4, .w = 3};
    const size_t N = 3, HW = 12, nx = shape_numel(in) * N;
    struct layer l;
    layer_global_avgpool(&l, in);
    cr_assert(l.out_shape.c == 5 && l.out_shape.h == 1 && l.out_shape.w == 1);
    cr_assert(eq(sz, l.nparams, 0));
    float *x = eg_xmalloc_floats(nx), *y = eg_xmalloc_floats(5 * N);
    rng_fill_uniform(&r, x, nx, -1.0f, 1.0f);
    double want[15];
    for (size_t p = 0; p < 5 * N; p++) { // plane p = c*N + n is output row c, column n
        double s = 0.0;
        for (size_t i = 0; i < HW; i++)
            s += (double)x[p * HW + i];
        want[p] = s / (double)HW;
    }
    const float *const xs[1] = {x};
    layer_run_forward(&l, N, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    assert_close("global avgpool", y, want, 5 * N, 1e-7, 1e-6);

    cr_assert(l.ops->can_run_in_place);
    layer_run_forward(&l, N, LAYER_MODE_TRAIN, NULL, NULL, xs, x); // y == x[0]
    assert_close("global avgpool in place", x, want, 5 * N, 1e-7, 1e-6);
    free(x);
    free(y);
    layer_release(&l);
}

Test(global_avgpool, gradcheck)
{
    struct layer l;
    layer_global_avgpool(&l, (struct shape){.c = 3, .h = 3, .w = 4});
    gradcheck_layer("global avgpool", &l,
                    &(struct gradcheck_opts){.n = 2, .h = 1e-2, .tol = 1e-3, .seed = 72});
    layer_release(&l);
}
