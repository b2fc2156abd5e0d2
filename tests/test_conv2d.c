/* test_conv2d.c - the conv2d layer, on both backends (oneDNN and im2col + sgemm): PyTorch golden
 * values (tests/data/conv2d.txt), a naive direct convolution in double on many shapes (kernels
 * 1..7, strides 1..3, paddings 0..3, non-square inputs, batches that cross either backend's chunk
 * boundary), finite-difference gradient checks, accumulation in backward; oneDNN against im2col
 * on every convolution of every backbone; shapes, parameter counts and initialisation. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <oneapi/dnnl/dnnl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/backbones.h"
#include "nn/layer.h"
#include "nn/layers.h"
#include "nn/layout.h"
#include "nn/net.h"

// Every backend, the default first. The checks below run once per backend; a message names it.
// On an AVX-512 CPU CONV2D_DNNL runs the 3x3 stride-1 cases on Winograd.
static const enum conv2d_backend backends[] = {CONV2D_DNNL, CONV2D_DNNL_DIRECT, CONV2D_IM2COL};
#define NBACKENDS (sizeof backends / sizeof backends[0])

static void use_im2col(void)
{
    conv2d_set_backend(CONV2D_IM2COL);
}

// ---------------------------------------------------------------------------------------------
// running the layer

// A scratch block of the size the layer asks for, filled with NaN so that any read of stale
// scratch shows up in the outputs.
static float *nan_scratch(const struct layer *l, size_t n)
{
    size_t s = l->ops->scratch_floats(l, n);
    float *scratch = eg_xmalloc_floats(s);
    for (size_t i = 0; i < s; i++)
        scratch[i] = NAN;
    return scratch;
}

// y: (out_shape, n) CNHW written (filled with NaN first: forward must not read it).
static void run_forward(struct layer *l, size_t n, const float *params, const float *x, float *y)
{
    size_t ny = shape_numel(l->out_shape) * n;
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN;
    float *scratch = nan_scratch(l, n);
    struct layer_ctx ctx = {.n = n, .mode = LAYER_MODE_TRAIN, .params = params, .scratch = scratch};
    const float *const xs[1] = {x};
    l->ops->forward(l, &ctx, xs, y);
    free(scratch);
}

// Adds dL/dx into dx and dL/dparams into grads (either may be NULL) for dy = dL/dy.
static void run_backward(struct layer *l, size_t n, const float *params, float *grads,
                         const float *x, const float *y, const float *dy, float *dx)
{
    float *scratch = nan_scratch(l, n);
    struct layer_ctx ctx = {
        .n = n, .mode = LAYER_MODE_TRAIN, .params = params, .grads = grads, .scratch = scratch};
    const float *const xs[1] = {x};
    float *const dxs[1] = {dx};
    l->ops->backward(l, &ctx, xs, y, dy, dxs);
    free(scratch);
}

static double max_abs(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(v[i]) > m) m = fabs(v[i]);
    }
    return m;
}

// got vs want with a tolerance of rel times the largest |want| (float32 layer, double reference).
static void check_scaled(const char *what, const float *got, const double *want, size_t n,
                         double rel)
{
    assert_close(what, got, want, n, rel * max_abs(want, n), 0.0);
}

// ---------------------------------------------------------------------------------------------
// PyTorch golden values

// One case of conv2d.txt: x (2, 3, 6, 5) NCHW with weight/bias/dy sections w<tag>, b<tag>,
// g<tag>; compares out<tag>, dL_dx<tag>, dL_dw<tag>, dL_db<tag>.
static void check_pytorch_case_one(const char *tag, struct conv2d_params p)
{
    struct ref *r = ref_load("data/conv2d.txt");
    const size_t N = 2;
    const struct shape in = {.c = 3, .h = 6, .w = 5};
    struct layer l = {0};
    layer_conv2d(&l, in, p);
    const size_t nx = shape_numel(in) * N, ny = shape_numel(l.out_shape) * N;
    const size_t nw = p.c_out * in.c * p.k * p.k;
    cr_assert(eq(sz, l.nparams, nw + p.c_out));

    char name[32];
    float *x_nchw = ref_floats(r, "x", nx);
    snprintf(name, sizeof name, "w%s", tag);
    float *w = ref_floats(r, name, nw);
    snprintf(name, sizeof name, "b%s", tag);
    float *b = ref_floats(r, name, p.c_out);
    snprintf(name, sizeof name, "g%s", tag);
    float *g_nchw = ref_floats(r, name, ny);

    float *params = eg_xmalloc_floats(l.nparams);
    memcpy(params, w, nw * sizeof(float));
    memcpy(params + nw, b, p.c_out * sizeof(float));
    float *x = eg_xmalloc_floats(nx), *dy = eg_xmalloc_floats(ny);
    layout_nchw_to_cnhw(x_nchw, x, N, in);
    layout_nchw_to_cnhw(g_nchw, dy, N, l.out_shape);

    float *y = eg_xmalloc_floats(ny), *y_nchw = eg_xmalloc_floats(ny);
    run_forward(&l, N, params, x, y);
    layout_cnhw_to_nchw(y, y_nchw, N, l.out_shape);
    size_t got_n = 0;
    snprintf(name, sizeof name, "out%s", tag);
    const double *want = ref_get(r, name, &got_n);
    cr_assert(eq(sz, got_n, ny));
    check_scaled(name, y_nchw, want, ny, 1e-5);

    float *dx = eg_xcalloc_floats(nx), *dx_nchw = eg_xmalloc_floats(nx);
    float *grads = eg_xcalloc_floats(l.nparams);
    run_backward(&l, N, params, grads, x, y, dy, dx);
    layout_cnhw_to_nchw(dx, dx_nchw, N, in);
    snprintf(name, sizeof name, "dL_dx%s", tag);
    want = ref_get(r, name, &got_n);
    cr_assert(eq(sz, got_n, nx));
    check_scaled(name, dx_nchw, want, nx, 1e-5);
    snprintf(name, sizeof name, "dL_dw%s", tag);
    want = ref_get(r, name, &got_n);
    cr_assert(eq(sz, got_n, nw));
    check_scaled(name, grads, want, nw, 1e-5);
    snprintf(name, sizeof name, "dL_db%s", tag);
    want = ref_get(r, name, &got_n);
    cr_assert(eq(sz, got_n, p.c_out));
    check_scaled(name, grads + nw, want, p.c_out, 1e-5);

    free(x_nchw);
    free(w);
    free(b);
    free(g_nchw);
    free(params);
    free(x);
    free(dy);
    free(y);
    free(y_nchw);
    free(dx);
    free(dx_nchw);
    free(grads);
    layer_release(&l);
    ref_free(r);
}

static void check_pytorch_case(const char *tag, struct conv2d_params p)
{
    for (size_t b = 0; b < NBACKENDS; b++) {
        conv2d_set_backend(backends[b]);
        cr_log_info("backend %s", conv2d_backend_name(backends[b]));
        check_pytorch_case_one(tag, p);
    }
}

Test(conv2d, matches_pytorch_3x3_stride2_pad1_with_bias)
{
    check_pytorch_case(
        "A", (struct conv2d_params){.c_out = 4, .k = 3, .stride = 2, .pad = 1, .bias = true});
}

Test(conv2d, matches_pytorch_1x1_stride1)
{
    check_pytorch_case(
        "B", (struct conv2d_params){.c_out = 3, .k = 1, .stride = 1, .pad = 0, .bias = true});
}

// ---------------------------------------------------------------------------------------------
// naive direct convolution (CNHW, double accumulation)

struct conv_case {
    size_t n, c_in, h, w, c_out, k, stride, pad;
    bool bias;
};

// Input row/column index of output index o at kernel offset r, or -1 in the padding.
static long in_index(size_t o, size_t r, const struct conv_case *cc, size_t size)
{
    long v = (long)(o * cc->stride + r) - (long)cc->pad;
    return v >= 0 && v < (long)size ? v : -1;
}

// y: (c_out, n, ho, wo) written; x: (c_in, n, h, w); wt: (c_out, c_in, k, k); b: (c_out) or NULL
static void naive_forward(const struct conv_case *cc, size_t ho, size_t wo, const float *x,
                          const float *wt, const float *b, double *y)
{
    const size_t N = cc->n, k = cc->k;
    for (size_t o = 0; o < cc->c_out; o++) {
        for (size_t n = 0; n < N; n++) {
            for (size_t p = 0; p < ho; p++) {
                for (size_t q = 0; q < wo; q++) {
                    double acc = b != NULL ? (double)b[o] : 0.0;
                    for (size_t c = 0; c < cc->c_in; c++) {
                        for (size_t i = 0; i < k; i++) {
                            long hh = in_index(p, i, cc, cc->h);
                            if (hh < 0) continue;
                            for (size_t j = 0; j < k; j++) {
                                long ww = in_index(q, j, cc, cc->w);
                                if (ww < 0) continue;
                                size_t xi = ((c * N + n) * cc->h + (size_t)hh) * cc->w + (size_t)ww;
                                size_t wi = ((o * cc->c_in + c) * k + i) * k + j;
                                acc += (double)wt[wi] * (double)x[xi];
                            }
                        }
                    }
                    y[((o * N + n) * ho + p) * wo + q] = acc;
                }
            }
        }
    }
}

// dx: (c_in, n, h, w), dw: (c_out, c_in, k, k), db: (c_out), all written; dw_abs: (c_out,
// c_in, k, k) written with the sums of |each term| of dw (the scale of its rounding error);
// dy: (c_out, n, ho, wo)
static void naive_backward(const struct conv_case *cc, size_t ho, size_t wo, const float *x,
                           const float *wt, const float *dy, double *dx, double *dw, double *db,
                           double *dw_abs)
{
    const size_t N = cc->n, k = cc->k;
    memset(dx, 0, cc->c_in * N * cc->h * cc->w * sizeof(double));
    memset(dw, 0, cc->c_out * cc->c_in * k * k * sizeof(double));
    memset(dw_abs, 0, cc->c_out * cc->c_in * k * k * sizeof(double));
    memset(db, 0, cc->c_out * sizeof(double));
    for (size_t o = 0; o < cc->c_out; o++) {
        for (size_t n = 0; n < N; n++) {
            for (size_t p = 0; p < ho; p++) {
                for (size_t q = 0; q < wo; q++) {
                    double g = (double)dy[((o * N + n) * ho + p) * wo + q];
                    db[o] += g;
                    for (size_t c = 0; c < cc->c_in; c++) {
                        for (size_t i = 0; i < k; i++) {
                            long hh = in_index(p, i, cc, cc->h);
                            if (hh < 0) continue;
                            for (size_t j = 0; j < k; j++) {
                                long ww = in_index(q, j, cc, cc->w);
                                if (ww < 0) continue;
                                size_t xi = ((c * N + n) * cc->h + (size_t)hh) * cc->w + (size_t)ww;
                                size_t wi = ((o * cc->c_in + c) * k + i) * k + j;
                                dw[wi] += g * (double)x[xi];
                                dw_abs[wi] += fabs(g * (double)x[xi]);
                                dx[xi] += g * (double)wt[wi];
                            }
                        }
                    }
                }
            }
        }
    }
}

// Forward and the three kinds of backward call (both outputs, dx only, grads only) against the
// naive convolution, for random x, parameters and dy.
static void check_against_naive_one(const struct conv_case *cc, unsigned long seed)
{
    struct layer l = {0};
    layer_conv2d(&l, (struct shape){cc->c_in, cc->h, cc->w},
                 (struct conv2d_params){.c_out = cc->c_out,
                                        .k = cc->k,
                                        .stride = cc->stride,
                                        .pad = cc->pad,
                                        .bias = cc->bias,
                                        .init = INIT_TORCH_DEFAULT});
    const size_t ho = l.out_shape.h, wo = l.out_shape.w, N = cc->n;
    cr_assert(eq(sz, ho, (cc->h + 2 * cc->pad - cc->k) / cc->stride + 1));
    cr_assert(eq(sz, wo, (cc->w + 2 * cc->pad - cc->k) / cc->stride + 1));
    const size_t nx = cc->c_in * cc->h * cc->w * N, ny = cc->c_out * ho * wo * N;
    const size_t nw = cc->c_out * cc->c_in * cc->k * cc->k;

    struct rng rng;
    rng_seed(&rng, seed);
    float *x = eg_xmalloc_floats(nx), *dy = eg_xmalloc_floats(ny);
    float *params = eg_xmalloc_floats(l.nparams);
    rng_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    rng_fill_uniform(&rng, dy, ny, -1.0f, 1.0f);
    rng_fill_uniform(&rng, params, l.nparams, -1.0f, 1.0f);
    const float *b = cc->bias ? params + nw : NULL;

    char what[160];
    snprintf(what, sizeof what,
             "%s: n=%zu c_in=%zu %zux%zu c_out=%zu k=%zu stride=%zu pad=%zu bias=%d",
             conv2d_backend_name(conv2d_layer_backend(&l)), N, cc->c_in, cc->h, cc->w, cc->c_out,
             cc->k, cc->stride, cc->pad, (int)cc->bias);
    char tag[200];

    float *y = eg_xmalloc_floats(ny);
    double *y_ref = eg_xmalloc_array(ny, sizeof(double));
    run_forward(&l, N, params, x, y);
    naive_forward(cc, ho, wo, x, params, b, y_ref);
    snprintf(tag, sizeof tag, "%s: y", what);
    check_scaled(tag, y, y_ref, ny, 1e-5);

    double *dx_ref = eg_xmalloc_array(nx, sizeof(double));
    double *dw_ref = eg_xmalloc_array(l.nparams, sizeof(double));
    double *db_ref = eg_xmalloc_array(cc->c_out, sizeof(double));
    double *dw_abs = eg_xmalloc_array(nw, sizeof(double));
    naive_backward(cc, ho, wo, x, params, dy, dx_ref, dw_ref, db_ref, dw_abs);
    // dw sums m = n*ho*wo products per weight: any float32 summation order that is blocked or
    // pairwise (BLAS's, oneDNN's) stays within ~log2(m) units of rounding of the sum of |terms|,
    // which at tens of thousands of terms per weight exceeds 1e-5 of the largest |dw|
    const double m_terms = (double)(N * ho * wo);
    const double dw_atol = fmax(1e-5 * max_abs(dw_ref, nw),
                                log2(m_terms) * 0x1p-24 * max_abs(dw_abs, nw));
    if (cc->bias) memcpy(dw_ref + nw, db_ref, cc->c_out * sizeof(double));

    float *dx = eg_xcalloc_floats(nx), *grads = eg_xcalloc_floats(l.nparams);
    run_backward(&l, N, params, grads, x, y, dy, dx);
    snprintf(tag, sizeof tag, "%s: dx", what);
    check_scaled(tag, dx, dx_ref, nx, 1e-5);
    snprintf(tag, sizeof tag, "%s: dw", what);
    assert_close(tag, grads, dw_ref, nw, dw_atol, 0.0);
    if (cc->bias) {
        snprintf(tag, sizeof tag, "%s: db", what);
        check_scaled(tag, grads + nw, db_ref, cc->c_out, 1e-5);
    }

    // dx only: grads == NULL
    memset(dx, 0, nx * sizeof(float));
    run_backward(&l, N, params, NULL, x, y, dy, dx);
    snprintf(tag, sizeof tag, "%s: dx without grads", what);
    check_scaled(tag, dx, dx_ref, nx, 1e-5);

    // grads only: dx == NULL
    memset(grads, 0, l.nparams * sizeof(float));
    run_backward(&l, N, params, grads, x, y, dy, NULL);
    snprintf(tag, sizeof tag, "%s: grads without dx", what);
    assert_close(tag, grads, dw_ref, nw, dw_atol, 0.0);
    if (cc->bias) check_scaled(tag, grads + nw, db_ref, cc->c_out, 1e-5);

    free(x);
    free(dy);
    free(params);
    free(y);
    free(y_ref);
    free(dx_ref);
    free(dw_ref);
    free(db_ref);
    free(dw_abs);
    free(dx);
    free(grads);
    layer_release(&l);
}

static void check_against_naive(const struct conv_case *cc, unsigned long seed)
{
    for (size_t b = 0; b < NBACKENDS; b++) {
        conv2d_set_backend(backends[b]);
        check_against_naive_one(cc, seed);
    }
}

Test(conv2d, matches_naive_on_small_shapes_for_kernels_strides_and_paddings)
{
    const struct conv_case cases[] = {
        // n, c_in, h, w, c_out, k, stride, pad, bias
        {3, 2, 7, 9, 3, 1, 1, 0, true},    // pointwise fast path
        {2, 3, 7, 5, 4, 1, 2, 0, false},   // 1x1 stride 2 (ResNet shortcut)
        {2, 2, 5, 6, 3, 1, 1, 1, true},    // 1x1 with padding: a zero border
        {2, 3, 8, 11, 5, 3, 1, 1, true},   // 3x3 "same"
        {3, 2, 9, 7, 2, 3, 3, 2, false},   // stride 3, pad 2
        {2, 3, 10, 13, 4, 5, 2, 2, true},  // 5x5 stride 2
        {2, 2, 12, 9, 3, 7, 2, 3, true},   // 7x7/2 pad 3 (ResNet stem)
        {1, 2, 7, 8, 3, 7, 1, 0, false},   // kernel as tall as the input
        {2, 1, 5, 6, 2, 3, 1, 3, true},    // pad 3 > k/2: some outputs see only padding
        {2, 2, 4, 4, 2, 5, 3, 1, false},   // 5x5 stride 3 on 4x4
        {2, 3, 6, 5, 4, 3, 2, 1, true},    // the PyTorch case A geometry
        {1, 4, 3, 17, 2, 3, 2, 0, true},   // very wide
        {3, 2, 16, 2, 3, 3, 3, 1, false},  // very tall
        {2, 3, 11, 11, 2, 5, 1, 2, true},  // 5x5 stride 1
        {2, 2, 13, 10, 3, 7, 3, 3, true},  // 7x7 stride 3 pad 3
        {2, 2, 9, 8, 3, 7, 1, 3, false},   // 7x7 "same" (stride 1, pad 3)
        {3, 2, 3, 2, 3, 5, 1, 2, true},    // 5x5 "same" on a 3x2 input: gaps wider than rows
        {2, 3, 1, 1, 2, 3, 1, 1, true},    // 1x1 input, 3x3 "same": only the centre tap reads x
        {2, 3, 8, 8, 4, 3, 2, 1, true},    // 3x3/2 pad 1 on an even input (ResNet transition)
        {2, 3, 9, 9, 2, 3, 2, 0, false},   // stride 2 with phase rows longer than the output
        {2, 2, 5, 4, 3, 3, 2, 3, true},    // stride 2, pad 3: output rows longer than phases
        {2, 2, 11, 10, 3, 2, 3, 1, false}, // 2x2 kernel, stride 3: strided reads
        {2, 2, 7, 8, 3, 1, 3, 1, true},    // 1x1 stride 3 pad 1
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_against_naive(&cases[i], 100 + i);
    }
}

// Images per im2col chunk, read back from the scratch sizes: the column buffer grows by one
// image's columns per image, the rest (phase planes) is fixed. The layer must have no bias,
// so that nparams = c_out * K.
static size_t chunk_images(const struct layer *l)
{
    const struct shape out = l->out_shape;
    size_t per_image = l->nparams / out.c * out.h * out.w; // K * ho * wo
    size_t big = l->ops->scratch_floats(l, 100000), one = l->ops->scratch_floats(l, 1);
    cr_assert(eq(sz, (big - one) % per_image, 0));
    return (big - one) / per_image + 1;
}

// Batches just over one im2col chunk, and uneven ones, so the second chunk starts mid-batch and
// the last chunk is short; and a layer whose one-image column buffer exceeds the budget.
Test(conv2d, matches_naive_when_the_batch_spans_several_chunks, .init = use_im2col)
{
    const struct conv_case shapes[] = {
        {0, 16, 32, 32, 8, 3, 1, 1, false}, // ResNet-32 16->16 (8 output channels for speed)
        {0, 16, 40, 36, 4, 5, 2, 2, false}, // stride 2 (phase planes in the scratch too)
        {0, 64, 64, 64, 2, 3, 1, 1, false}, // one image's columns (9 MiB) exceed any budget
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct conv_case cc = shapes[s];
        struct layer l = {0};
        layer_conv2d(&l, (struct shape){cc.c_in, cc.h, cc.w},
                     (struct conv2d_params){
                         .c_out = cc.c_out, .k = cc.k, .stride = cc.stride, .pad = cc.pad});
        size_t chunk = chunk_images(&l);
        layer_release(&l);
        cr_assert(ge(sz, chunk, 1));
        cr_assert(le(sz, chunk, 40), "chunk %zu too large for this test", chunk);
        size_t batches[3] = {chunk + 1, 2 * chunk + 1, chunk == 1 ? 3 : chunk + chunk / 2};
        for (size_t t = 0; t < 3; t++) {
            cc.n = batches[t];
            cc.bias = t % 2 == 0;
            check_against_naive_one(&cc, 1000 + 10 * s + t);
        }
    }
}

// oneDNN's chunks: a chunk takes the images whose channel-blocked input and output (channels
// rounded up to 16) fit 2^23 floats. 16 channels of 128x128 in and (2 -> 16) out: 2^19 floats per
// image, 16 images per chunk; batches of 17 and 35 run as 9 + 8 and 12 + 12 + 11. Stride 2
// quarters the output: 25 images per chunk, and 27 run as 14 + 13.
Test(conv2d, dnnl_matches_naive_when_the_batch_spans_several_chunks)
{
    const struct conv_case shapes[] = {
        {17, 16, 128, 128, 2, 3, 1, 1, true},
        {35, 16, 128, 128, 2, 3, 1, 1, false},
        {27, 16, 128, 128, 2, 3, 2, 1, true},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct layer l = {0};
        const struct conv_case *cc = &shapes[s];
        layer_conv2d(&l, (struct shape){cc->c_in, cc->h, cc->w},
                     (struct conv2d_params){
                         .c_out = cc->c_out, .k = cc->k, .stride = cc->stride, .pad = cc->pad});
        cr_assert(conv2d_layer_backend(&l) == CONV2D_DNNL, "case %zu did not use oneDNN", s);
        // the scratch stops growing at one chunk: the batch really spans several
        cr_assert(eq(sz, l.ops->scratch_floats(&l, cc->n), l.ops->scratch_floats(&l, 100)));
        cr_assert(lt(sz, l.ops->scratch_floats(&l, 8), l.ops->scratch_floats(&l, cc->n)));
        layer_release(&l);
        check_against_naive_one(cc, 2000 + s);
    }
}

// ---------------------------------------------------------------------------------------------
// finite differences

static void gradcheck_conv(const char *what, struct shape in, struct conv2d_params p, size_t n)
{
    for (size_t b = 0; b < NBACKENDS; b++) {
        conv2d_set_backend(backends[b]);
        struct layer l = {0};
        layer_conv2d(&l, in, p);
        char tag[96];
        snprintf(tag, sizeof tag, "%s (%s)", what, conv2d_backend_name(conv2d_layer_backend(&l)));
        struct gradcheck_opts o = {
            .n = n, .mode = LAYER_MODE_TRAIN, .h = 1e-2, .tol = 1e-3, .seed = 5};
        gradcheck_layer(tag, &l, &o);
        layer_release(&l);
    }
}

Test(conv2d, gradients_match_finite_differences_3x3_stride2_pad1)
{
    gradcheck_conv("3x3/2 pad 1", (struct shape){2, 5, 4},
                   (struct conv2d_params){.c_out = 3, .k = 3, .stride = 2, .pad = 1, .bias = true},
                   2);
}

Test(conv2d, gradients_match_finite_differences_1x1)
{
    gradcheck_conv("1x1", (struct shape){2, 5, 4},
                   (struct conv2d_params){.c_out = 3, .k = 1, .stride = 1, .pad = 0, .bias = true},
                   2);
    gradcheck_conv("1x1/2", (struct shape){2, 5, 4},
                   (struct conv2d_params){.c_out = 3, .k = 1, .stride = 2, .pad = 0}, 2);
}

Test(conv2d, gradients_match_finite_differences_5x5_stride3_pad2)
{
    gradcheck_conv("5x5/3 pad 2", (struct shape){2, 7, 6},
                   (struct conv2d_params){.c_out = 3, .k = 5, .stride = 3, .pad = 2, .bias = true},
                   2);
}

// ---------------------------------------------------------------------------------------------
// accumulation

// Backward adds: a second call with the same dy doubles dx, dW and db.
static void check_backward_accumulates_one(struct shape in, struct conv2d_params p, size_t n)
{
    struct layer l = {0};
    layer_conv2d(&l, in, p);
    const size_t nx = shape_numel(in) * n, ny = shape_numel(l.out_shape) * n;
    struct rng rng;
    rng_seed(&rng, 9);
    float *x = eg_xmalloc_floats(nx), *dy = eg_xmalloc_floats(ny), *y = eg_xmalloc_floats(ny);
    float *params = eg_xmalloc_floats(l.nparams);
    rng_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    rng_fill_uniform(&rng, dy, ny, -1.0f, 1.0f);
    l.ops->init(&l, params, NULL, &rng);
    run_forward(&l, n, params, x, y);

    float *dx = eg_xcalloc_floats(nx), *grads = eg_xcalloc_floats(l.nparams);
    run_backward(&l, n, params, grads, x, y, dy, dx);
    double *dx2 = eg_xmalloc_array(nx, sizeof(double));
    double *grads2 = eg_xmalloc_array(l.nparams, sizeof(double));
    for (size_t i = 0; i < nx; i++)
        dx2[i] = 2.0 * (double)dx[i];
    for (size_t i = 0; i < l.nparams; i++)
        grads2[i] = 2.0 * (double)grads[i];
    run_backward(&l, n, params, grads, x, y, dy, dx);
    check_scaled("dx after two calls", dx, dx2, nx, 1e-6);
    check_scaled("grads after two calls", grads, grads2, l.nparams, 1e-6);

    free(x);
    free(dy);
    free(y);
    free(params);
    free(dx);
    free(grads);
    free(dx2);
    free(grads2);
    layer_release(&l);
}

static void check_backward_accumulates(struct shape in, struct conv2d_params p, size_t n)
{
    for (size_t b = 0; b < NBACKENDS; b++) {
        conv2d_set_backend(backends[b]);
        check_backward_accumulates_one(in, p, n);
    }
}

Test(conv2d, backward_adds_into_dx_and_grads)
{
    check_backward_accumulates(
        (struct shape){3, 9, 8},
        (struct conv2d_params){.c_out = 4, .k = 3, .stride = 2, .pad = 1, .bias = true}, 3);
    check_backward_accumulates(
        (struct shape){3, 9, 8},
        (struct conv2d_params){.c_out = 4, .k = 3, .stride = 1, .pad = 1, .bias = true}, 3);
    check_backward_accumulates(
        (struct shape){3, 9, 8},
        (struct conv2d_params){.c_out = 4, .k = 1, .stride = 1, .pad = 0, .bias = true}, 3);
}

// ---------------------------------------------------------------------------------------------
// shapes, counts, init

static void check_geometry(struct shape in, struct conv2d_params p, struct shape want_out,
                           size_t want_params)
{
    struct layer l = {0};
    layer_conv2d(&l, in, p);
    cr_assert(strcmp(l.ops->name, "conv2d") == 0);
    cr_assert(eq(sz, l.nin, 1));
    cr_assert(shape_eq(l.in_shape[0], in));
    cr_assert(shape_eq(l.out_shape, want_out), "out %zux%zux%zu, want %zux%zux%zu", l.out_shape.c,
              l.out_shape.h, l.out_shape.w, want_out.c, want_out.h, want_out.w);
    cr_assert(eq(sz, l.nparams, want_params));
    cr_assert(eq(sz, l.nstats, 0));
    cr_assert(l.ops->can_run_in_place == false);
    cr_assert(l.ops->backward_reads_y == false);
    // forward FLOPs: 2 per multiply-add (+1 per output for the bias)
    double macs = (double)(p.c_out * in.c * p.k * p.k * want_out.h * want_out.w) * 7.0;
    double bias_adds = p.bias ? (double)(p.c_out * want_out.h * want_out.w) * 7.0 : 0.0;
    cr_assert(ieee_ulp_eq(dbl, l.ops->flops(&l, 7), 2.0 * macs + bias_adds, 4));
    layer_release(&l);
}

Test(conv2d, out_shape_and_parameter_count)
{
    check_geometry((struct shape){3, 32, 32},
                   (struct conv2d_params){.c_out = 16, .k = 3, .stride = 1, .pad = 1},
                   (struct shape){16, 32, 32}, 16 * 3 * 9);
    check_geometry((struct shape){16, 32, 32},
                   (struct conv2d_params){.c_out = 32, .k = 3, .stride = 2, .pad = 1, .bias = true},
                   (struct shape){32, 16, 16}, 32 * 16 * 9 + 32);
    check_geometry((struct shape){3, 224, 224},
                   (struct conv2d_params){.c_out = 64, .k = 7, .stride = 2, .pad = 3},
                   (struct shape){64, 112, 112}, 64 * 3 * 49);
    check_geometry((struct shape){64, 56, 56},
                   (struct conv2d_params){.c_out = 128, .k = 1, .stride = 2, .pad = 0},
                   (struct shape){128, 28, 28}, 128 * 64);
    check_geometry((struct shape){3, 6, 5},
                   (struct conv2d_params){.c_out = 4, .k = 3, .stride = 2, .pad = 1, .bias = true},
                   (struct shape){4, 3, 3}, 4 * 27 + 4);
    // non-square, floor division: h = (7 - 5)/3 + 1 = 1, w = (10 - 5)/3 + 1 = 2
    check_geometry((struct shape){2, 7, 10},
                   (struct conv2d_params){.c_out = 5, .k = 5, .stride = 3, .pad = 0, .bias = true},
                   (struct shape){5, 1, 2}, 5 * 2 * 25 + 5);
}

Test(conv2d, scratch_holds_at_least_one_image_and_pointwise_needs_none, .init = use_im2col)
{
    struct layer l = {0};
    layer_conv2d(&l, (struct shape){3, 224, 224},
                 (struct conv2d_params){.c_out = 64, .k = 7, .stride = 2, .pad = 3});
    // one image's columns, plus one input plane of work space for each of up to 8 threads
    const size_t per_image = 3 * 49 * 112 * 112;
    size_t s1 = l.ops->scratch_floats(&l, 1), s85 = l.ops->scratch_floats(&l, 85);
    cr_assert(ge(sz, s1, per_image));
    cr_assert(le(sz, s1 - per_image, 8 * 224 * 224));
    cr_assert(eq(sz, (s85 - s1) % per_image, 0));
    layer_release(&l);

    layer_conv2d(&l, (struct shape){64, 8, 8},
                 (struct conv2d_params){.c_out = 64, .k = 1, .stride = 1, .pad = 0});
    cr_assert(eq(sz, l.ops->scratch_floats(&l, 100), 0));
    layer_release(&l);
}

// The net sizes the shared scratch for its largest batch and reuses it for smaller ones.
Test(conv2d, scratch_never_shrinks_as_the_batch_grows)
{
    const struct {
        struct shape in;
        struct conv2d_params p;
    } layers[] = {
        {{16, 32, 32}, {.c_out = 16, .k = 3, .stride = 1, .pad = 1}},
        {{32, 16, 16}, {.c_out = 64, .k = 3, .stride = 2, .pad = 1}},
        {{512, 7, 7}, {.c_out = 512, .k = 3, .stride = 1, .pad = 1}},
        {{64, 56, 56}, {.c_out = 128, .k = 1, .stride = 2, .pad = 0}},
        {{3, 224, 224}, {.c_out = 64, .k = 7, .stride = 2, .pad = 3}},
    };
    for (size_t i = 0; i < NBACKENDS * sizeof layers / sizeof layers[0]; i++) {
        conv2d_set_backend(backends[i % NBACKENDS]);
        struct layer l = {0};
        layer_conv2d(&l, layers[i / NBACKENDS].in, layers[i / NBACKENDS].p);
        size_t prev = l.ops->scratch_floats(&l, 1);
        for (size_t n = 2; n <= 300; n++) {
            size_t cur = l.ops->scratch_floats(&l, n);
            cr_assert(ge(sz, cur, prev), "%s layer %zu: scratch(%zu) = %zu < scratch(%zu) = %zu",
                      conv2d_backend_name(backends[i % NBACKENDS]), i / NBACKENDS, n, cur, n - 1,
                      prev);
            prev = cur;
        }
        layer_release(&l);
    }
}

// Sample mean and standard deviation of v[0..n).
static void moments(const float *v, size_t n, double *mean, double *sd)
{
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += (double)v[i];
        s2 += (double)v[i] * (double)v[i];
    }
    *mean = s / (double)n;
    *sd = sqrt(s2 / (double)n - *mean * *mean);
}

Test(conv2d, init_statistics_follow_the_requested_scheme)
{
    const struct shape in = {64, 8, 8};
    const size_t c_out = 128, fan_in = 64 * 9, fan_out = 128 * 9, nw = c_out * fan_in;
    struct rng rng;
    rng_seed(&rng, 17);
    const enum init_kind kinds[] = {INIT_KAIMING_FAN_IN, INIT_KAIMING_FAN_OUT, INIT_TORCH_DEFAULT};
    // U(-b, b) has sd b/sqrt(3); PyTorch's default has b = 1/sqrt(fan_in)
    const double want_sd[] = {sqrt(2.0 / (double)fan_in), sqrt(2.0 / (double)fan_out),
                              1.0 / sqrt(3.0 * (double)fan_in)};
    for (size_t t = 0; t < 3; t++) {
        struct layer l = {0};
        struct conv2d_params p = {.c_out = c_out, .k = 3, .stride = 1, .pad = 1, .bias = true};
        p.init = kinds[t];
        layer_conv2d(&l, in, p);
        float *params = eg_xmalloc_floats(l.nparams);
        l.ops->init(&l, params, NULL, &rng);
        double mean, sd;
        moments(params, nw, &mean, &sd);
        // n = 73728 draws: the mean's sd is want_sd/271; the sd is within ~0.3% (5 sigma ~1.5%)
        cr_assert(lt(dbl, fabs(mean), 5.0 * want_sd[t] / sqrt((double)nw)), "kind %zu mean %g", t,
                  mean);
        cr_assert(lt(dbl, fabs(sd / want_sd[t] - 1.0), 0.02), "kind %zu sd %g want %g", t, sd,
                  want_sd[t]);
        // bias: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not all equal
        const float bound = (float)(1.0 / sqrt((double)fan_in));
        const float *b = params + nw;
        bool differ = false;
        for (size_t o = 0; o < c_out; o++) {
            cr_assert(b[o] >= -bound && b[o] <= bound, "bias %zu = %g", o, (double)b[o]);
            differ = differ || b[o] != b[0];
        }
        cr_assert(differ);
        free(params);
        layer_release(&l);
    }
}

Test(conv2d, rejects_kernel_larger_than_padded_input, .signal = SIGABRT)
{
    struct layer l = {0};
    layer_conv2d(&l, (struct shape){1, 4, 4},
                 (struct conv2d_params){.c_out = 1, .k = 7, .stride = 1, .pad = 1});
}

// ---------------------------------------------------------------------------------------------
// oneDNN against im2col on the backbones

// The backbones with their default inputs (the paper's sizes: 224x224 for resnet10/18/34).
static const enum backbone_kind conv_backbones[] = {
    BACKBONE_LENET,    BACKBONE_CONV4,    BACKBONE_RESNET32,
    BACKBONE_RESNET10, BACKBONE_RESNET18, BACKBONE_RESNET34,
};

static struct net *skeleton(enum backbone_kind kind, enum conv2d_backend b)
{
    conv2d_set_backend(b);
    struct backbone_spec spec = backbone_defaults(kind);
    return backbone_build(&spec, backbone_default_input(kind), 10);
}

// Layer i of a and of b are the same convolution on different backends: forward and both
// backward products agree to float32 rounding on a batch of n random images.
static void compare_backends(struct layer *a, struct layer *b, size_t n, const char *what)
{
    const size_t nx = shape_numel(a->in_shape[0]) * n, ny = shape_numel(a->out_shape) * n;
    struct rng rng;
    rng_seed(&rng, 31);
    float *x = eg_xmalloc_floats(nx), *dy = eg_xmalloc_floats(ny);
    float *params = eg_xmalloc_floats(a->nparams);
    rng_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    rng_fill_uniform(&rng, dy, ny, -1.0f, 1.0f);
    rng_fill_uniform(&rng, params, a->nparams, -1.0f, 1.0f);
    float *ya = eg_xmalloc_floats(ny), *yb = eg_xmalloc_floats(ny);
    float *dxa = eg_xcalloc_floats(nx), *dxb = eg_xcalloc_floats(nx);
    float *ga = eg_xcalloc_floats(a->nparams), *gb = eg_xcalloc_floats(a->nparams);
    run_forward(a, n, params, x, ya);
    run_forward(b, n, params, x, yb);
    run_backward(a, n, params, ga, x, ya, dy, dxa);
    run_backward(b, n, params, gb, x, yb, dy, dxb);
    double *want = eg_xmalloc_array(nx > a->nparams ? (nx > ny ? nx : ny) : a->nparams,
                                    sizeof(double));
    char tag[160];
    for (size_t i = 0; i < ny; i++) want[i] = (double)yb[i];
    snprintf(tag, sizeof tag, "%s: y", what);
    check_scaled(tag, ya, want, ny, 1e-5);
    for (size_t i = 0; i < nx; i++) want[i] = (double)dxb[i];
    snprintf(tag, sizeof tag, "%s: dx", what);
    check_scaled(tag, dxa, want, nx, 1e-5);
    for (size_t i = 0; i < a->nparams; i++) want[i] = (double)gb[i];
    snprintf(tag, sizeof tag, "%s: dw", what);
    check_scaled(tag, ga, want, a->nparams, 1e-5);
    free(want);
    free(x);
    free(dy);
    free(params);
    free(ya);
    free(yb);
    free(dxa);
    free(dxb);
    free(ga);
    free(gb);
}

// Every distinct convolution (input, output, parameter count) of every backbone, batch 3, on
// oneDNN (Winograd where the CPU has it) and on oneDNN direct.
static void check_dnnl_against_im2col(enum conv2d_backend backend)
{
    struct layer seen[64];
    size_t nseen = 0, compared = 0;
    for (size_t k = 0; k < sizeof conv_backbones / sizeof conv_backbones[0]; k++) {
        struct net *a = skeleton(conv_backbones[k], backend);
        struct net *b = skeleton(conv_backbones[k], CONV2D_IM2COL);
        cr_assert(eq(sz, a->nlayers, b->nlayers));
        for (size_t i = 0; i < a->nlayers; i++) {
            struct layer *la = &a->layers[i], *lb = &b->layers[i];
            if (strcmp(la->ops->name, "conv2d") != 0) continue;
            bool dup = false;
            for (size_t j = 0; j < nseen && !dup; j++) {
                dup = shape_eq(seen[j].in_shape[0], la->in_shape[0]) &&
                      shape_eq(seen[j].out_shape, la->out_shape) &&
                      seen[j].nparams == la->nparams;
            }
            if (dup) continue;
            cr_assert(lt(sz, nseen, sizeof seen / sizeof seen[0]));
            seen[nseen++] = *la;
            cr_assert(conv2d_layer_backend(lb) == CONV2D_IM2COL);
            char what[128];
            snprintf(what, sizeof what, "%s layer %zu (%s%s) %zux%zux%zu -> %zux%zux%zu",
                     backbone_name(conv_backbones[k]), i,
                     conv2d_backend_name(conv2d_layer_backend(la)),
                     conv2d_layer_winograd(la) ? ", Winograd" : "", la->in_shape[0].c,
                     la->in_shape[0].h, la->in_shape[0].w, la->out_shape.c, la->out_shape.h,
                     la->out_shape.w);
            compare_backends(la, lb, 3, what);
            // forward, backward with and without dx: all on oneDNN (on every CPU we target)
            cr_assert(eq(sz, conv2d_layer_fallbacks(la), 0), "%s: %zu calls fell back to im2col",
                      what, conv2d_layer_fallbacks(la));
            compared++;
        }
        net_free(a);
        net_free(b);
    }
    cr_assert(ge(sz, compared, 20), "only %zu distinct convolutions", compared);
}

Test(conv2d, dnnl_matches_im2col_on_every_backbone_convolution)
{
    check_dnnl_against_im2col(CONV2D_DNNL);
}

Test(conv2d, dnnl_direct_matches_im2col_on_every_backbone_convolution)
{
    check_dnnl_against_im2col(CONV2D_DNNL_DIRECT);
}

// Where oneDNN has Winograd kernels (AVX-512), the default backend runs every 3x3 stride-1
// backbone convolution on them (so the comparisons above test Winograd), and nothing else;
// dnnl_direct never does.
Test(conv2d, the_default_runs_3x3_stride1_convolutions_on_winograd_with_avx512)
{
    // what oneDNN uses: the CPU's, unless ONEDNN_MAX_CPU_ISA (or valgrind's CPUID) caps it
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core) != dnnl_cpu_isa_avx512_core) {
        cr_skip_test("oneDNN runs without AVX-512 here");
    }
    size_t wino = 0;
    for (size_t k = 0; k < sizeof conv_backbones / sizeof conv_backbones[0]; k++) {
        struct net *a = skeleton(conv_backbones[k], CONV2D_DNNL);
        struct net *b = skeleton(conv_backbones[k], CONV2D_DNNL_DIRECT);
        for (size_t i = 0; i < a->nlayers; i++) {
            const struct layer *l = &a->layers[i];
            if (strcmp(l->ops->name, "conv2d") != 0) continue;
            // 3x3 (with or without bias) and stride 1 (the backbones pad to keep the size)
            const size_t ci = l->in_shape[0].c, co = l->out_shape.c, w9 = 9 * ci * co;
            const bool want = (l->nparams == w9 || l->nparams == w9 + co) &&
                              l->out_shape.h == l->in_shape[0].h;
            cr_assert(conv2d_layer_winograd(l) == want, "%s layer %zu (%zu -> %zu channels, "
                      "%zu parameters, %zux%zu -> %zux%zu) %s",
                      backbone_name(conv_backbones[k]), i, ci, co, l->nparams, l->in_shape[0].h,
                      l->in_shape[0].w, l->out_shape.h, l->out_shape.w,
                      want ? "not on Winograd" : "on Winograd");
            cr_assert(conv2d_layer_winograd(&b->layers[i]) == false);
            wino += want;
        }
        net_free(a);
        net_free(b);
    }
    cr_assert(ge(sz, wino, 30), "only %zu Winograd layers", wino);
}

// On a CPU with AVX2 (every machine evograd targets) oneDNN has a kernel for every backbone
// convolution: none silently falls back to im2col.
Test(conv2d, dnnl_runs_every_backbone_convolution_on_an_avx2_cpu)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) cr_skip_test("this CPU has no AVX2");
    for (size_t k = 0; k < sizeof conv_backbones / sizeof conv_backbones[0]; k++) {
        struct net *a = skeleton(conv_backbones[k], CONV2D_DNNL);
        for (size_t i = 0; i < a->nlayers; i++) {
            const struct layer *l = &a->layers[i];
            if (strcmp(l->ops->name, "conv2d") != 0) continue;
            cr_assert(conv2d_layer_backend(l) == CONV2D_DNNL, "%s layer %zu fell back to im2col",
                      backbone_name(conv_backbones[k]), i);
        }
        net_free(a);
    }
}

Test(conv2d, backend_names_round_trip)
{
    enum conv2d_backend b;
    cr_assert(conv2d_backend_find("dnnl", &b) && b == CONV2D_DNNL);
    cr_assert(conv2d_backend_find("dnnl_direct", &b) && b == CONV2D_DNNL_DIRECT);
    cr_assert(conv2d_backend_find("im2col", &b) && b == CONV2D_IM2COL);
    cr_assert(conv2d_backend_find("DNNL", &b) == false);
    cr_assert(conv2d_backend_find("", &b) == false);
    cr_assert(conv2d_backend() == CONV2D_DNNL, "the default is oneDNN");
}
