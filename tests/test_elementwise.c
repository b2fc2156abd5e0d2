/* test_elementwise.c - ReLU, the residual add and the option-A shortcut: exact values, in-place
 * forward against out-of-place, accumulating backward passes, finite differences, contracts. */
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

static struct layer_ctx ctx_for(size_t n)
{
    return (struct layer_ctx){.n = n, .mode = LAYER_MODE_TRAIN};
}

static void assert_bits_equal(const char *what, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert(memcmp(&a[i], &b[i], sizeof(float)) == 0, "%s: differs at i=%zu: %.9g vs %.9g",
                  what, i, (double)a[i], (double)b[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// relu

// 19 values: a 16-value block and a scalar tail; out of place and in place.
Test(relu, forward_clamps_negatives_and_keeps_nan)
{
    struct layer l;
    layer_relu(&l, (struct shape){19, 1, 1});
    const float x[19] = {-2.0f,    -0.5f,   0.0f,   0.25f, 3.0f,  NAN,  -INFINITY,
                         INFINITY, -1e-30f, 1e-30f, 7.0f,  -7.0f, 0.5f, -0.25f,
                         1.0f,     -1.0f,   2.0f,   NAN,   -3.0f};
    float y[19];
    const float *const xs[1] = {x};
    layer_run_forward(&l, 1, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    float v[19];
    memcpy(v, x, sizeof v);
    const float *const vs[1] = {v};
    layer_run_forward(&l, 1, LAYER_MODE_TRAIN, NULL, NULL, vs, v); // in place
    for (size_t i = 0; i < 19; i++) {
        if (isnan(x[i])) {
            cr_assert(isnan(y[i]) && isnan(v[i]), "NaN at %zu must stay NaN (torch.relu)", i);
        } else {
            float want = x[i] > 0.0f ? x[i] : 0.0f;
            cr_assert(y[i] == want && v[i] == want, "y[%zu] = %g, in place %g, want %g", i,
                      (double)y[i], (double)v[i], (double)want);
        }
    }
    layer_release(&l);
}

Test(relu, in_place_forward_matches_out_of_place)
{
    const size_t n = 3;
    struct shape s = {3, 5, 7};
    const size_t m = n * shape_numel(s);
    struct layer l;
    layer_relu(&l, s);
    cr_assert(l.ops->can_run_in_place && l.ops->backward_reads_y);
    struct rng r;
    rng_seed(&r, 1);
    float *x = eg_xmalloc_floats(m), *y = eg_xmalloc_floats(m), *v = eg_xmalloc_floats(m);
    rng_fill_uniform(&r, x, m, -1.0f, 1.0f);
    memcpy(v, x, m * sizeof(float));
    struct layer_ctx ctx = ctx_for(n);
    const float *const xs[1] = {x};
    l.ops->forward(&l, &ctx, xs, y);
    const float *const vs[1] = {v};
    l.ops->forward(&l, &ctx, vs, v); // y == x[0]
    assert_bits_equal("relu in place", v, y, m);
    free(x);
    free(y);
    free(v);
    layer_release(&l);
}

// Backward reads y and dy only (x[0] is passed as garbage), adds, and skips a NULL dx.
Test(relu, backward_passes_dy_where_output_positive_and_accumulates)
{
    struct layer l;
    layer_relu(&l, (struct shape){1, 1, 18});
    float y[18], dy[18], dx[18] = {0}, garbage[18];
    for (size_t i = 0; i < 18; i++) {
        y[i] = i % 3 == 0 ? 0.0f : (float)i * 0.5f; // zeros where x was <= 0
        dy[i] = (float)i - 9.0f;
        garbage[i] = NAN;
    }
    struct layer_ctx ctx = ctx_for(1);
    const float *const xs[1] = {garbage};
    float *const dxs[1] = {dx};
    for (int rep = 1; rep <= 2; rep++) {
        l.ops->backward(&l, &ctx, xs, y, dy, dxs);
        for (size_t i = 0; i < 18; i++) {
            float want = i % 3 == 0 ? 0.0f : (float)rep * dy[i];
            cr_assert(dx[i] == want, "rep %d: dx[%zu] = %g, want %g", rep, i, (double)dx[i],
                      (double)want);
        }
    }
    float *const none[1] = {NULL};
    l.ops->backward(&l, &ctx, xs, y, dy, none);
    layer_release(&l);
}

// Inputs kept at |x| >= 0.1 so the +-h = 1e-2 steps never cross the kink at 0.
Test(relu, gradcheck_away_from_kink)
{
    const size_t n = 3;
    struct shape s = {2, 3, 5};
    const size_t m = n * shape_numel(s);
    struct rng r;
    rng_seed(&r, 2);
    float *x = eg_xmalloc_floats(m);
    for (size_t i = 0; i < m; i++) {
        float mag = 0.1f + 0.9f * (float)rng_uniform(&r);
        x[i] = rng_rademacher(&r) * mag;
    }
    struct layer l;
    layer_relu(&l, s);
    const float *const xs[1] = {x};
    struct gradcheck_opts o = {
        .n = n, .mode = LAYER_MODE_TRAIN, .h = 1e-2, .tol = 1e-3, .seed = 4, .x = xs};
    gradcheck_layer("relu", &l, &o);
    free(x);
    layer_release(&l);
}

// ---------------------------------------------------------------------------------------------
// add

Test(add, forward_in_place_matches_out_of_place)
{
    const size_t n = 2;
    struct shape s = {3, 4, 5};
    const size_t m = n * shape_numel(s);
    struct layer l;
    layer_add(&l, s);
    cr_assert(eq(sz, l.nin, 2));
    cr_assert(shape_eq(l.in_shape[0], s) && shape_eq(l.in_shape[1], s));
    cr_assert(l.ops->can_run_in_place && l.ops->backward_reads_y == false);
    struct rng r;
    rng_seed(&r, 6);
    float *a = eg_xmalloc_floats(m), *b = eg_xmalloc_floats(m), *y = eg_xmalloc_floats(m);
    float *v = eg_xmalloc_floats(m);
    rng_fill_uniform(&r, a, m, -1.0f, 1.0f);
    rng_fill_uniform(&r, b, m, -1.0f, 1.0f);
    struct layer_ctx ctx = ctx_for(n);

    const float *const ab[2] = {a, b};
    l.ops->forward(&l, &ctx, ab, y);
    for (size_t i = 0; i < m; i++)
        cr_assert(y[i] == a[i] + b[i], "i=%zu", i);

    memcpy(v, a, m * sizeof(float)); // y == x[0], the net's in-place case
    const float *const vb[2] = {v, b};
    l.ops->forward(&l, &ctx, vb, v);
    assert_bits_equal("add in place on x0", v, y, m);

    memcpy(v, b, m * sizeof(float)); // y == x[1]
    const float *const av[2] = {a, v};
    l.ops->forward(&l, &ctx, av, v);
    assert_bits_equal("add in place on x1", v, y, m);

    memcpy(v, a, m * sizeof(float)); // a node added to itself, in place
    const float *const vv[2] = {v, v};
    l.ops->forward(&l, &ctx, vv, v);
    for (size_t i = 0; i < m; i++)
        cr_assert(v[i] == 2.0f * a[i], "i=%zu", i);

    free(a);
    free(b);
    free(y);
    free(v);
    layer_release(&l);
}

Test(add, backward_adds_dy_to_each_input_and_skips_null)
{
    const size_t m = 21;
    struct layer l;
    layer_add(&l, (struct shape){1, 3, 7});
    float dy[21], d0[21] = {0}, d1[21] = {0};
    for (size_t i = 0; i < m; i++)
        dy[i] = 0.25f * (float)i - 2.0f;
    struct layer_ctx ctx = ctx_for(1);
    const float *const xs[2] = {NULL, NULL}; // add reads neither input
    float *const both[2] = {d0, d1};
    l.ops->backward(&l, &ctx, xs, NULL, dy, both);
    l.ops->backward(&l, &ctx, xs, NULL, dy, both);
    for (size_t i = 0; i < m; i++) {
        cr_assert(d0[i] == 2.0f * dy[i] && d1[i] == 2.0f * dy[i], "i=%zu", i);
    }
    float *const first_only[2] = {d0, NULL};
    l.ops->backward(&l, &ctx, xs, NULL, dy, first_only);
    float *const second_only[2] = {NULL, d1};
    l.ops->backward(&l, &ctx, xs, NULL, dy, second_only);
    for (size_t i = 0; i < m; i++) {
        cr_assert(d0[i] == 3.0f * dy[i] && d1[i] == 3.0f * dy[i], "i=%zu", i);
    }
    layer_release(&l);
}

Test(add, gradcheck_both_inputs)
{
    struct layer l;
    layer_add(&l, (struct shape){2, 3, 3});
    struct gradcheck_opts o = {.n = 3, .mode = LAYER_MODE_TRAIN, .h = 1e-2, .tol = 1e-3, .seed = 8};
    gradcheck_layer("add", &l, &o);
    layer_release(&l);
}

// ---------------------------------------------------------------------------------------------
// shortcut_a

// in (2, 3, 3), N = 2, c_out = 4, stride 2: out (4, 2, 2), one zero channel on each side.
// x value at CNHW (c, n, i, j) = 100c + 10n + 3i + j.
Test(shortcut_a, forward_subsamples_and_zero_pads_channels)
{
    struct layer l;
    layer_shortcut_a(&l, (struct shape){2, 3, 3}, 4, 2);
    cr_assert(shape_eq(l.out_shape, (struct shape){4, 2, 2}));
    float x[36], y[32];
    for (size_t c = 0; c < 2; c++) {
        for (size_t n = 0; n < 2; n++) {
            for (size_t i = 0; i < 3; i++) {
                for (size_t j = 0; j < 3; j++) {
                    x[((c * 2 + n) * 3 + i) * 3 + j] = (float)(100 * c + 10 * n + 3 * i + j);
                }
            }
        }
    }
    memset(y, 0xff, sizeof y); // NaN garbage: every output must be written
    const float *const xs[1] = {x};
    layer_run_forward(&l, 2, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    const float want[32] = {
        0,   0,   0,   0,   0,   0,   0,   0,   // channel 0: zeros (n = 0, 1)
        0,   2,   6,   8,   10,  12,  16,  18,  // channel 1 = input channel 0 at (0|2, 0|2)
        100, 102, 106, 108, 110, 112, 116, 118, // channel 2 = input channel 1
        0,   0,   0,   0,   0,   0,   0,   0,   // channel 3: zeros
    };
    for (size_t i = 0; i < 32; i++) {
        cr_assert(y[i] == want[i], "y[%zu] = %g, want %g", i, (double)y[i], (double)want[i]);
    }
    layer_release(&l);
}

// Same geometry; dy[k] = k + 1. Each input plane receives its output plane at (0|2, 0|2).
Test(shortcut_a, backward_routes_dy_to_sampled_positions_and_accumulates)
{
    struct layer l;
    layer_shortcut_a(&l, (struct shape){2, 3, 3}, 4, 2);
    float dy[32], dx[36] = {0};
    for (size_t k = 0; k < 32; k++)
        dy[k] = (float)(k + 1);
    const float want[36] = {
        9,  0, 10, 0, 0, 0, 11, 0, 12, // (c0, n0) <- out (c1, n0): dy 9..12
        13, 0, 14, 0, 0, 0, 15, 0, 16, // (c0, n1) <- out (c1, n1)
        17, 0, 18, 0, 0, 0, 19, 0, 20, // (c1, n0) <- out (c2, n0)
        21, 0, 22, 0, 0, 0, 23, 0, 24, // (c1, n1) <- out (c2, n1)
    };
    struct layer_ctx ctx = ctx_for(2);
    const float *const xs[1] = {NULL};
    float *const dxs[1] = {dx};
    for (int rep = 1; rep <= 2; rep++) {
        l.ops->backward(&l, &ctx, xs, NULL, dy, dxs);
        for (size_t i = 0; i < 36; i++) {
            cr_assert(dx[i] == (float)rep * want[i], "rep %d: dx[%zu] = %g", rep, i, (double)dx[i]);
        }
    }
    layer_release(&l);
}

// The CIFAR ResNet-32 case (16 -> 32 channels, 32x32 -> 16x16) and odd sizes (ceil).
Test(shortcut_a, output_shape_is_ceil_of_input_over_stride)
{
    struct layer l;
    layer_shortcut_a(&l, (struct shape){16, 32, 32}, 32, 2);
    cr_assert(shape_eq(l.out_shape, (struct shape){32, 16, 16}));
    cr_assert(l.ops->can_run_in_place == false && l.ops->backward_reads_y == false);
    layer_release(&l);
    layer_shortcut_a(&l, (struct shape){3, 5, 7}, 5, 3);
    cr_assert(shape_eq(l.out_shape, (struct shape){5, 2, 3}));
    layer_release(&l);
}

Test(shortcut_a, stride_one_same_channels_is_identity)
{
    const size_t n = 2, m = n * 3 * 4 * 5;
    struct layer l;
    layer_shortcut_a(&l, (struct shape){3, 4, 5}, 3, 1);
    struct rng r;
    rng_seed(&r, 12);
    float *x = eg_xmalloc_floats(m), *y = eg_xmalloc_floats(m), *dx = eg_xcalloc_floats(m);
    rng_fill_uniform(&r, x, m, -1.0f, 1.0f);
    const float *const xs[1] = {x};
    layer_run_forward(&l, n, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    assert_bits_equal("identity forward", y, x, m);
    struct layer_ctx ctx = ctx_for(n);
    float *const dxs[1] = {dx};
    l.ops->backward(&l, &ctx, xs, y, x, dxs);
    assert_bits_equal("identity backward", dx, x, m);
    free(x);
    free(y);
    free(dx);
    layer_release(&l);
}

Test(shortcut_a, gradcheck_stride2_4_to_8_channels_odd_size)
{
    struct layer l;
    layer_shortcut_a(&l, (struct shape){4, 5, 5}, 8, 2);
    struct gradcheck_opts o = {.n = 2, .mode = LAYER_MODE_TRAIN, .h = 1e-2, .tol = 1e-3, .seed = 9};
    gradcheck_layer("shortcut_a", &l, &o);
    layer_release(&l);
}

Test(shortcut_a, odd_channel_difference_aborts, .signal = SIGABRT)
{
    struct layer l;
    layer_shortcut_a(&l, (struct shape){3, 4, 4}, 4, 2);
}

Test(shortcut_a, fewer_output_channels_aborts, .signal = SIGABRT)
{
    struct layer l;
    layer_shortcut_a(&l, (struct shape){8, 4, 4}, 4, 2);
}
