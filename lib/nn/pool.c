/* pool.c - max, average and global average pooling (nn.MaxPool2d, nn.AvgPool2d, floor mode).
 * Activations are CNHW (layer.h): each of the C*N (c, n) planes is an ordinary H x W image and is
 * pooled on its own, so every kernel is a loop over planes around a plain 2-D pooling loop.
 * Windows start at o*stride - pad; padded positions are skipped (max: padding never wins) or
 * count as zeros (avg: count_include_pad=True, the divisor is always k*k).
 * Max-pool backward recomputes each window's argmax from x, so nothing is cached per batch.
 * l->state holds the settings only (plain malloc, freed with free()). */
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/status.h"

struct pool_state {
    size_t k, stride, pad;
    size_t H, W;   // input plane
    size_t Ho, Wo; // output plane
};

// Clipped input range [*lo, *hi) of the window of output index o along an axis of length len.
// Floor mode with pad <= k/2 never yields an empty window (the constructor checks both).
static inline void window(const struct pool_state *s, size_t o, size_t len, size_t *lo, size_t *hi)
{
    size_t start = o * s->stride; // window start + pad, kept unsigned
    *lo = start > s->pad ? start - s->pad : 0;
    size_t end = start + s->k - s->pad; // exclusive, unpadded coordinates
    *hi = end < len ? end : len;
}

// ---------------------------------------------------------------------------------------------
// max pooling

// Flat index (within the plane) of the max of the window at (oh, ow): the first maximum in
// row-major window order; a NaN wins, as in PyTorch's CPU kernel (val > max || isnan(val)).
static inline size_t window_argmax(const struct pool_state *s, const float *plane, size_t oh,
                                   size_t ow)
{
    size_t h0, h1, w0, w1;
    window(s, oh, s->H, &h0, &h1);
    window(s, ow, s->W, &w0, &w1);
    size_t best = h0 * s->W + w0;
    float m = -INFINITY;
    for (size_t i = h0; i < h1; i++) {
        const float *row = plane + i * s->W;
        for (size_t j = w0; j < w1; j++) {
            if (!(row[j] <= m)) { // row[j] > m, or row[j] is NaN: one comparison for both
                m = row[j];
                best = i * s->W + j;
                if (isnan(m)) return best;
            }
        }
    }
    return best;
}

// The value of the maximum of the 2x2 window at row pointers r0, r1 and column j (the k =
// stride = 2, pad = 0 fast path, where no window is clipped): a NaN in the window is the result,
// as in PyTorch. The plain maxima compile to branch-free maxss; the (predictable) NaN test
// restores PyTorch's rule. Random data would make per-element branches mispredict half the time.
static inline float max_2x2(const float *r0, const float *r1, size_t j)
{
    float a = r0[j], b = r0[j + 1], c = r1[j], d = r1[j + 1];
    float ab = b > a ? b : a, cd = d > c ? d : c;
    float m = cd > ab ? cd : ab;
    if (isnan(a) | isnan(b) | isnan(c) | isnan(d)) m = NAN;
    return m;
}

// Its position 0..3 in row-major order under window_argmax's rule: the first element equal to
// the maximum, or the first NaN.
static inline size_t argmax_2x2(const float *r0, const float *r1, size_t j)
{
    const float v[4] = {r0[j], r0[j + 1], r1[j], r1[j + 1]};
    float m = max_2x2(r0, r1, j);
    if (isnan(m)) return isnan(v[0]) ? 0 : isnan(v[1]) ? 1 : isnan(v[2]) ? 2 : 3;
    // selects from the last candidate to the first: branch-free, and the first match wins
    size_t best = 3;
    best = v[2] == m ? 2 : best;
    best = v[1] == m ? 1 : best;
    best = v[0] == m ? 0 : best;
    return best;
}

static bool is_2x2(const struct pool_state *s)
{
    return s->k == 2 && s->stride == 2 && s->pad == 0;
}

// Offset of window element b (0..3, row-major) of the 2x2 window at (oh, ow) in a W-wide plane.
static inline size_t offset_2x2(size_t oh, size_t ow, size_t b, size_t W)
{
    return (2 * oh + b / 2) * W + 2 * ow + b % 2;
}

// x: (C, N, H, W) CNHW;  y: (C, N, Ho, Wo) written with the window maxima.
static void maxpool_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            float *y)
{
    const struct pool_state *s = l->state;
    size_t planes = l->in_shape[0].c * ctx->n;
    if (is_2x2(s)) {
#pragma omp parallel for schedule(static) if (planes * s->H * s->W >= EG_PAR_FLOATS)
        for (size_t p = 0; p < planes; p++) {
            const float *xp = x[0] + p * s->H * s->W;
            float *yp = y + p * s->Ho * s->Wo;
            for (size_t oh = 0; oh < s->Ho; oh++) {
                const float *r0 = xp + 2 * oh * s->W, *r1 = r0 + s->W;
                for (size_t ow = 0; ow < s->Wo; ow++) {
                    yp[oh * s->Wo + ow] = max_2x2(r0, r1, 2 * ow);
                }
            }
        }
        return;
    }
#pragma omp parallel for schedule(static) if (planes * s->H * s->W >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x[0] + p * s->H * s->W;
        float *yp = y + p * s->Ho * s->Wo;
        for (size_t oh = 0; oh < s->Ho; oh++) {
            for (size_t ow = 0; ow < s->Wo; ow++) {
                yp[oh * s->Wo + ow] = xp[window_argmax(s, xp, oh, ow)];
            }
        }
    }
}

// dx (C, N, H, W) += dy (C, N, Ho, Wo) routed to each window's argmax (recomputed from x).
static void maxpool_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                             const float *y, const float *dy, float *const *dx)
{
    (void)y;
    if (dx[0] == NULL) return;
    const struct pool_state *s = l->state;
    size_t planes = l->in_shape[0].c * ctx->n;
    bool fast = is_2x2(s);
#pragma omp parallel for schedule(static) if (planes * s->H * s->W >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x[0] + p * s->H * s->W;
        const float *dyp = dy + p * s->Ho * s->Wo;
        float *dxp = dx[0] + p * s->H * s->W;
        for (size_t oh = 0; oh < s->Ho; oh++) {
            const float *r0 = xp + 2 * oh * s->W, *r1 = r0 + s->W;
            for (size_t ow = 0; ow < s->Wo; ow++) {
                size_t at = fast ? offset_2x2(oh, ow, argmax_2x2(r0, r1, 2 * ow), s->W)
                                 : window_argmax(s, xp, oh, ow);
                dxp[at] += dyp[oh * s->Wo + ow];
            }
        }
    }
}

// ty (C, N, Ho, Wo) = tx at each window's argmax (recomputed from x, as backward does).
static void maxpool_tforward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                             const float *const *tx, const float *y, float *ty)
{
    (void)y;
    const struct pool_state *s = l->state;
    size_t planes = l->in_shape[0].c * ctx->n;
    if (tx[0] == NULL) {
        memset(ty, 0, planes * s->Ho * s->Wo * sizeof(float));
        return;
    }
    bool fast = is_2x2(s);
#pragma omp parallel for schedule(static) if (planes * s->H * s->W >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x[0] + p * s->H * s->W, *txp = tx[0] + p * s->H * s->W;
        float *typ = ty + p * s->Ho * s->Wo;
        for (size_t oh = 0; oh < s->Ho; oh++) {
            const float *r0 = xp + 2 * oh * s->W, *r1 = r0 + s->W;
            for (size_t ow = 0; ow < s->Wo; ow++) {
                size_t at = fast ? offset_2x2(oh, ow, argmax_2x2(r0, r1, 2 * ow), s->W)
                                 : window_argmax(s, xp, oh, ow);
                typ[oh * s->Wo + ow] = txp[at];
            }
        }
    }
}

static const struct layer_ops maxpool_ops = {
    .name = "maxpool",
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .tforward = maxpool_tforward,
    .tbackward = layer_linear_tbackward, // linear in dy for the argmaxes of x
    .can_run_in_place = false, // backward reads x
    .backward_reads_y = false,
};

// ---------------------------------------------------------------------------------------------
// average pooling

// x: (C, N, H, W);  y: (C, N, Ho, Wo) written with window sums / (k*k) (padding counts as 0).
static void avgpool_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            float *y)
{
    const struct pool_state *s = l->state;
    size_t planes = l->in_shape[0].c * ctx->n;
    float inv = 1.0f / (float)(s->k * s->k);
#pragma omp parallel for schedule(static) if (planes * s->H * s->W >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x[0] + p * s->H * s->W;
        float *yp = y + p * s->Ho * s->Wo;
        for (size_t oh = 0; oh < s->Ho; oh++) {
            size_t h0, h1;
            window(s, oh, s->H, &h0, &h1);
            for (size_t ow = 0; ow < s->Wo; ow++) {
                size_t w0, w1;
                window(s, ow, s->W, &w0, &w1);
                float sum = 0.0f;
                for (size_t i = h0; i < h1; i++) {
                    for (size_t j = w0; j < w1; j++)
                        sum += xp[i * s->W + j];
                }
                yp[oh * s->Wo + ow] = sum * inv;
            }
        }
    }
}

// dx (C, N, H, W) += dy / (k*k) spread over each window's unpadded part.
static void avgpool_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                             const float *y, const float *dy, float *const *dx)
{
    (void)x;
    (void)y;
    if (dx[0] == NULL) return;
    const struct pool_state *s = l->state;
    size_t planes = l->in_shape[0].c * ctx->n;
    float inv = 1.0f / (float)(s->k * s->k);
#pragma omp parallel for schedule(static) if (planes * s->H * s->W >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        const float *dyp = dy + p * s->Ho * s->Wo;
        float *dxp = dx[0] + p * s->H * s->W;
        for (size_t oh = 0; oh < s->Ho; oh++) {
            size_t h0, h1;
            window(s, oh, s->H, &h0, &h1);
            for (size_t ow = 0; ow < s->Wo; ow++) {
                size_t w0, w1;
                window(s, ow, s->W, &w0, &w1);
                float g = dyp[oh * s->Wo + ow] * inv;
                for (size_t i = h0; i < h1; i++) {
                    for (size_t j = w0; j < w1; j++)
                        dxp[i * s->W + j] += g;
                }
            }
        }
    }
}

static const struct layer_ops avgpool_ops = {
    .name = "avgpool",
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .tforward = layer_linear_tforward,
    .tbackward = layer_linear_tbackward,
    .can_run_in_place = false, // an output can overwrite inputs of a later window
    .backward_reads_y = false,
};

// Shared by both constructors. out = floor((in + 2*pad - k)/stride) + 1 per axis.
static void pool_make(struct layer *l, struct shape in, struct pool_params p,
                      const struct layer_ops *ops)
{
    // PyTorch's own limits: a positive window and stride, pad at most half the window (so
    // every window overlaps the image), and a window that fits the padded image.
    EG_ASSERT(p.k >= 1 && p.stride >= 1);
    EG_ASSERT(p.pad <= p.k / 2);
    EG_ASSERT(in.c >= 1 && in.h + 2 * p.pad >= p.k && in.w + 2 * p.pad >= p.k);
    struct pool_state *s = eg_xmalloc(sizeof *s);
    *s = (struct pool_state){
        .k = p.k,
        .stride = p.stride,
        .pad = p.pad,
        .H = in.h,
        .W = in.w,
        .Ho = (in.h + 2 * p.pad - p.k) / p.stride + 1,
        .Wo = (in.w + 2 * p.pad - p.k) / p.stride + 1,
    };
    memset(l, 0, sizeof *l);
    l->ops = ops;
    l->nin = 1;
    l->in_shape[0] = in;
    l->out_shape = (struct shape){.c = in.c, .h = s->Ho, .w = s->Wo};
    l->state = s;
}

// Fills l for nn.MaxPool2d(k, stride, pad) in floor mode. No parameters; l->state: free().
void layer_maxpool(struct layer *l, struct shape in, struct pool_params p)
{
    pool_make(l, in, p, &maxpool_ops);
}

// Fills l for nn.AvgPool2d(k, stride, pad), floor mode, count_include_pad=True.
void layer_avgpool(struct layer *l, struct shape in, struct pool_params p)
{
    pool_make(l, in, p, &avgpool_ops);
}

// ---------------------------------------------------------------------------------------------
// global average pooling

// x: (C, N, H, W);  y: (C, N) written with each plane's mean. Plane p is read before y[p] is
// written and y[p] (index p <= p*H*W) never lies in a later plane, so y may equal x[0].
static void gap_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                        float *y)
{
    struct shape in = l->in_shape[0];
    size_t planes = in.c * ctx->n, HW = in.h * in.w;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x[0] + p * HW;
        double sum = 0.0;
        for (size_t i = 0; i < HW; i++)
            sum += (double)xp[i];
        y[p] = (float)(sum / (double)HW);
    }
}

// dx (C, N, H, W) += dy (C, N) / (H*W) broadcast over each plane. Reads neither x nor y.
static void gap_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                         const float *y, const float *dy, float *const *dx)
{
    (void)x;
    (void)y;
    if (dx[0] == NULL) return;
    struct shape in = l->in_shape[0];
    size_t planes = in.c * ctx->n, HW = in.h * in.w;
    float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static) if (planes * HW >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        float *dxp = dx[0] + p * HW;
        float g = dy[p] * inv;
        for (size_t i = 0; i < HW; i++)
            dxp[i] += g;
    }
}

static const struct layer_ops gap_ops = {
    .name = "global_avgpool",
    .forward = gap_forward,
    .backward = gap_backward,
    .tforward = layer_linear_tforward,
    .tbackward = layer_linear_tbackward,
    .can_run_in_place = true,
    .backward_reads_y = false,
};

// Fills l for the mean over h, w: (c, h, w) -> (c, 1, 1). No parameters and no state.
void layer_global_avgpool(struct layer *l, struct shape in)
{
    EG_ASSERT(shape_numel(in) >= 1);
    memset(l, 0, sizeof *l);
    l->ops = &gap_ops;
    l->nin = 1;
    l->in_shape[0] = in;
    l->out_shape = (struct shape){.c = in.c, .h = 1, .w = 1};
}
