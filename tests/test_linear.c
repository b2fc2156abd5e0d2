/* test_linear.c - the linear layer (against naive loops and finite differences) and flatten
 * (against torch.flatten of an NCHW tensor). Activations are CNHW (layer.h); a linear layer's
 * input and output are (features, N) matrices. */
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

// Runs ops->backward once with the given outputs (NULL allowed for either).
static void run_backward(struct layer *l, size_t n, const float *params, float *grads,
                         const float *x, const float *y, const float *dy, float *dx)
{
    struct layer_ctx ctx = {.n = n, .mode = LAYER_MODE_TRAIN, .params = params, .grads = grads};
    const float *const xs[1] = {x};
    float *const dxs[1] = {dx};
    l->ops->backward(l, &ctx, xs, y, dy, dxs);
}

static float *random_floats(struct rng *r, size_t n)
{
    float *v = eg_xmalloc_floats(n);
    rng_fill_uniform(r, v, n, -1.0f, 1.0f);
    return v;
}

// ---------------------------------------------------------------------------------------------
// linear

Test(linear, shape_params_and_flops)
{
    struct layer l;
    layer_linear(&l, (struct shape){.c = 12, .h = 1, .w = 1},
                 (struct linear_params){.out = 5, .bias = true});
    cr_assert(eq(sz, l.out_shape.c, 5));
    cr_assert(eq(sz, l.out_shape.h, 1));
    cr_assert(eq(sz, l.out_shape.w, 1));
    cr_assert(eq(sz, l.nparams, 5 * 12 + 5));
    cr_assert(eq(sz, l.nstats, 0));
    cr_assert(eq(dbl, l.ops->flops(&l, 7), 2.0 * 5 * 12 * 7));
    cr_assert(not(l.ops->backward_reads_y));
    layer_release(&l);

    layer_linear(&l, (struct shape){.c = 12, .h = 1, .w = 1},
                 (struct linear_params){.out = 5, .bias = false});
    cr_assert(eq(sz, l.nparams, 5 * 12));
    layer_release(&l);
}

Test(linear, rejects_spatial_input, .signal = SIGABRT)
{
    struct layer l;
    layer_linear(&l, (struct shape){.c = 3, .h = 2, .w = 2}, (struct linear_params){.out = 4});
}

// Y (out, N) = W X + b against a double triple loop, with and without bias.
Test(linear, matches_naive_matmul)
{
    struct rng r;
    rng_seed(&r, 1);
    const size_t IN = 37, OUT = 23, N = 11;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        struct layer l;
        layer_linear(&l, (struct shape){.c = IN, .h = 1, .w = 1},
                     (struct linear_params){.out = OUT, .bias = with_bias});
        float *params = random_floats(&r, l.nparams);
        float *x = random_floats(&r, IN * N);
        float *y = eg_xmalloc_floats(OUT * N);
        rng_fill_uniform(&r, y, OUT * N, 1e6f, 1e7f); // garbage that must not leak through
        const float *const xs[1] = {x};
        layer_run_forward(&l, N, LAYER_MODE_TRAIN, params, NULL, xs, y);

        double *want = eg_xmalloc_array(OUT * N, sizeof *want);
        for (size_t o = 0; o < OUT; o++) {
            for (size_t n = 0; n < N; n++) {
                double acc = with_bias ? (double)params[OUT * IN + o] : 0.0;
                for (size_t i = 0; i < IN; i++)
                    acc += (double)params[o * IN + i] * (double)x[i * N + n];
                want[o * N + n] = acc;
            }
        }
        assert_close(with_bias ? "linear forward (bias)" : "linear forward", y, want, OUT * N, 1e-5,
                     1e-5);
        free(want);
        free(params);
        free(x);
        free(y);
        layer_release(&l);
    }
}

// dW += dY X^T, db += row sums of dY, dX += W^T dY, against double loops, starting from
// non-zero gradients so that "adds" is checked too.
Test(linear, backward_matches_naive_and_adds)
{
    struct rng r;
    rng_seed(&r, 2);
    const size_t IN = 19, OUT = 13, N = 9;
    struct layer l;
    layer_linear(&l, (struct shape){.c = IN, .h = 1, .w = 1},
                 (struct linear_params){.out = OUT, .bias = true});
    float *params = random_floats(&r, l.nparams);
    float *x = random_floats(&r, IN * N);
    float *dy = random_floats(&r, OUT * N);
    float *grads = random_floats(&r, l.nparams);
    float *dx = random_floats(&r, IN * N);
    double *want_g = eg_xmalloc_array(l.nparams, sizeof *want_g);
    double *want_dx = eg_xmalloc_array(IN * N, sizeof *want_dx);
    for (size_t o = 0; o < OUT; o++) {
        double db = (double)grads[OUT * IN + o];
        for (size_t n = 0; n < N; n++)
            db += (double)dy[o * N + n];
        want_g[OUT * IN + o] = db;
        for (size_t i = 0; i < IN; i++) {
            double acc = (double)grads[o * IN + i];
            for (size_t n = 0; n < N; n++)
                acc += (double)dy[o * N + n] * (double)x[i * N + n];
            want_g[o * IN + i] = acc;
        }
    }
    for (size_t i = 0; i < IN; i++) {
        for (size_t n = 0; n < N; n++) {
            double acc = (double)dx[i * N + n];
            for (size_t o = 0; o < OUT; o++)
                acc += (double)params[o * IN + i] * (double)dy[o * N + n];
            want_dx[i * N + n] = acc;
        }
    }
    run_backward(&l, N, params, grads, x, NULL, dy, dx);
    assert_close("linear dW, db", grads, want_g, l.nparams, 1e-5, 1e-5);
    assert_close("linear dx", dx, want_dx, IN * N, 1e-5, 1e-5);
    free(params);
    free(x);
    free(dy);
    free(grads);
    free(dx);
    free(want_g);
    free(want_dx);
    layer_release(&l);
}

// Two backward calls into the same buffers give twice the gradients of one.
Test(linear, backward_accumulates)
{
    struct rng r;
    rng_seed(&r, 3);
    const size_t IN = 8, OUT = 6, N = 4;
    struct layer l;
    layer_linear(&l, (struct shape){.c = IN, .h = 1, .w = 1},
                 (struct linear_params){.out = OUT, .bias = true});
    float *params = random_floats(&r, l.nparams);
    float *x = random_floats(&r, IN * N);
    float *dy = random_floats(&r, OUT * N);
    float *g1 = eg_xcalloc_floats(l.nparams), *g2 = eg_xcalloc_floats(l.nparams);
    float *dx1 = eg_xcalloc_floats(IN * N), *dx2 = eg_xcalloc_floats(IN * N);
    run_backward(&l, N, params, g1, x, NULL, dy, dx1);
    run_backward(&l, N, params, g2, x, NULL, dy, dx2);
    run_backward(&l, N, params, g2, x, NULL, dy, dx2);
    for (size_t i = 0; i < l.nparams; i++)
        g1[i] *= 2.0f;
    for (size_t i = 0; i < IN * N; i++)
        dx1[i] *= 2.0f;
    assert_close_f("twice dW, db", g2, g1, l.nparams, 1e-6, 1e-6);
    assert_close_f("twice dx", dx2, dx1, IN * N, 1e-6, 1e-6);
    free(params);
    free(x);
    free(dy);
    free(g1);
    free(g2);
    free(dx1);
    free(dx2);
    layer_release(&l);
}

// NULL outputs are skipped; the wanted ones are the same as in a full call.
Test(linear, backward_skips_null_outputs)
{
    struct rng r;
    rng_seed(&r, 4);
    const size_t IN = 7, OUT = 5, N = 3;
    struct layer l;
    layer_linear(&l, (struct shape){.c = IN, .h = 1, .w = 1},
                 (struct linear_params){.out = OUT, .bias = true});
    float *params = random_floats(&r, l.nparams);
    float *x = random_floats(&r, IN * N);
    float *dy = random_floats(&r, OUT * N);
    float *g_full = eg_xcalloc_floats(l.nparams), *g_only = eg_xcalloc_floats(l.nparams);
    float *dx_full = eg_xcalloc_floats(IN * N), *dx_only = eg_xcalloc_floats(IN * N);
    run_backward(&l, N, params, g_full, x, NULL, dy, dx_full);
    run_backward(&l, N, params, g_only, x, NULL, dy, NULL);
    run_backward(&l, N, params, NULL, x, NULL, dy, dx_only);
    run_backward(&l, N, params, NULL, x, NULL, dy, NULL);
    assert_close_f("grads without dx", g_only, g_full, l.nparams, 0.0, 0.0);
    assert_close_f("dx without grads", dx_only, dx_full, IN * N, 0.0, 0.0);
    free(params);
    free(x);
    free(dy);
    free(g_full);
    free(g_only);
    free(dx_full);
    free(dx_only);
    layer_release(&l);
}

// The default init is nn.Linear's: weight and bias in U(-1/sqrt(in), 1/sqrt(in)).
Test(linear, default_init_is_torch_uniform_over_fan_in)
{
    struct rng r;
    rng_seed(&r, 5);
    const size_t IN = 64, OUT = 32;
    struct layer l;
    layer_linear(&l, (struct shape){.c = IN, .h = 1, .w = 1},
                 (struct linear_params){.out = OUT, .bias = true, .init = INIT_TORCH_DEFAULT});
    float *params = eg_xmalloc_floats(l.nparams);
    l.ops->init(&l, params, NULL, &r);
    float wmax = 0.0f, bmax = 0.0f;
    for (size_t i = 0; i < OUT * IN; i++)
        wmax = fmaxf(wmax, fabsf(params[i]));
    for (size_t i = 0; i < OUT; i++)
        bmax = fmaxf(bmax, fabsf(params[OUT * IN + i]));
    cr_assert(le(flt, wmax, 0.125f));
    cr_assert(gt(flt, wmax, 0.12f)); // 2048 draws reach close to the bound
    cr_assert(le(flt, bmax, 0.125f));
    cr_assert(gt(flt, bmax, 0.08f));
    free(params);
    layer_release(&l);
}

Test(linear, gradcheck_with_bias)
{
    struct layer l;
    layer_linear(&l, (struct shape){.c = 6, .h = 1, .w = 1},
                 (struct linear_params){.out = 4, .bias = true});
    gradcheck_layer("linear", &l,
                    &(struct gradcheck_opts){.n = 3, .h = 1e-2, .tol = 1e-3, .seed = 10});
    layer_release(&l);
}

Test(linear, gradcheck_without_bias)
{
    struct layer l;
    layer_linear(&l, (struct shape){.c = 5, .h = 1, .w = 1},
                 (struct linear_params){.out = 7, .bias = false, .init = INIT_KAIMING_FAN_IN});
    gradcheck_layer("linear (no bias)", &l,
                    &(struct gradcheck_opts){.n = 4, .h = 1e-2, .tol = 1e-3, .seed = 11});
    layer_release(&l);
}

// ---------------------------------------------------------------------------------------------
// flatten

// y (C*H*W, N) must be torch.flatten(x, 1) of the NCHW tensor, transposed: y[f, n] = x[n, f].
Test(flatten, equals_torch_flatten_of_nchw)
{
    const size_t N = 3;
    const struct shape s = {.c = 4, .h = 3, .w = 5};
    const size_t F = shape_numel(s);
    float *nchw = eg_xmalloc_floats(N * F), *cnhw = eg_xmalloc_floats(N * F);
    float *y = eg_xmalloc_floats(N * F);
    for (size_t i = 0; i < N * F; i++)
        nchw[i] = (float)i; // distinct, exact
    layout_nchw_to_cnhw(nchw, cnhw, N, s);
    struct layer l;
    layer_flatten(&l, s);
    cr_assert(eq(sz, l.out_shape.c, F));
    cr_assert(eq(sz, l.out_shape.h, 1));
    cr_assert(eq(sz, l.out_shape.w, 1));
    cr_assert(eq(sz, l.nparams, 0));
    const float *const xs[1] = {cnhw};
    layer_run_forward(&l, N, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    for (size_t f = 0; f < F; f++) {
        for (size_t n = 0; n < N; n++) {
            cr_assert(eq(flt, y[f * N + n], nchw[n * F + f]), "f=%zu n=%zu", f, n);
        }
    }

    // backward is the inverse permutation: dy = y gives dx = the CNHW input, added to zeros
    float *dx = eg_xcalloc_floats(N * F);
    run_backward(&l, N, NULL, NULL, cnhw, y, y, dx);
    assert_close_f("flatten backward", dx, cnhw, N * F, 0.0, 0.0);
    free(nchw);
    free(cnhw);
    free(y);
    free(dx);
    layer_release(&l);
}

Test(flatten, is_identity_when_spatial_size_is_one)
{
    struct rng r;
    rng_seed(&r, 6);
    const size_t N = 5, C = 7;
    struct layer l;
    layer_flatten(&l, (struct shape){.c = C, .h = 1, .w = 1});
    float *x = random_floats(&r, C * N), *y = eg_xmalloc_floats(C * N);
    const float *const xs[1] = {x};
    layer_run_forward(&l, N, LAYER_MODE_TRAIN, NULL, NULL, xs, y);
    assert_close_f("flatten of (c, 1, 1)", y, x, C * N, 0.0, 0.0);
    free(x);
    free(y);
    layer_release(&l);
}

Test(flatten, gradcheck)
{
    struct layer l;
    layer_flatten(&l, (struct shape){.c = 3, .h = 2, .w = 4});
    gradcheck_layer("flatten", &l,
                    &(struct gradcheck_opts){.n = 2, .h = 1e-2, .tol = 1e-4, .seed = 12});
    layer_release(&l);
}
