/* elementwise.c - the layers that move or combine values without parameters: ReLU, the residual
 * addition and the option-A ResNet shortcut, on CNHW activations (layer.h).
 *
 * ReLU and add run in place when the net allows it (y == x[0]); their backward passes never read
 * x[0]. Gradient buffers are distinct from dy (backward adds dy into dx). Loops run in blocks of
 * EW_BLOCK values with restrict pointers: GCC's -O2 cost model vectorises only loops whose trip
 * count is a known multiple of the vector length and that need no run-time alias check. The
 * in-place forms get their own single-pointer loops (restrict would be a lie there). From
 * EG_PAR_FLOATS values on, ew_run splits a buffer into pieces of EW_PIECE values (a multiple of
 * EW_BLOCK, so each piece is computed exactly as in one pass) over the threads.
 *
 * State: none for relu and add; shortcut_a owns a small struct of settings (freed with free). */
#include "layers.h"

#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/status.h"

#define EW_BLOCK 16
#define EW_PIECE 8192 // values per piece of a split loop (32 KiB)

// ---------------------------------------------------------------------------------------------
// kernels; every buffer is (m)

// v = max(v, 0). Written as v < 0 ? 0 : v so that NaN stays NaN, as in torch.relu (a diverged
// net is then still noticed downstream).
static void relu_in_place(float *v, size_t m)
{
    size_t i = 0;
    for (; i + EW_BLOCK <= m; i += EW_BLOCK) {
        for (size_t j = 0; j < EW_BLOCK; j++)
            v[i + j] = v[i + j] < 0.0f ? 0.0f : v[i + j];
    }
    for (; i < m; i++)
        v[i] = v[i] < 0.0f ? 0.0f : v[i];
}

// y = max(x, 0), NaN kept.
static void relu_copy(float *restrict y, const float *restrict x, size_t m)
{
    size_t i = 0;
    for (; i + EW_BLOCK <= m; i += EW_BLOCK) {
        for (size_t j = 0; j < EW_BLOCK; j++)
            y[i + j] = x[i + j] < 0.0f ? 0.0f : x[i + j];
    }
    for (; i < m; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

// dx += dy where y > 0. At y == 0 the derivative is taken as 0, as PyTorch does. dy is loaded
// unconditionally so the select has no control flow and vectorises.
static void relu_grad(float *restrict dx, const float *restrict y, const float *restrict dy,
                      size_t m)
{
    size_t i = 0;
    for (; i + EW_BLOCK <= m; i += EW_BLOCK) {
        for (size_t j = 0; j < EW_BLOCK; j++) {
            float g = dy[i + j];
            dx[i + j] += y[i + j] > 0.0f ? g : 0.0f;
        }
    }
    for (; i < m; i++)
        dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

// d = b where a > 0, else 0 (d may be b: the tangent of ReLU in place, a = y).
static void relu_mask(float *d, const float *a, const float *b, size_t m)
{
    size_t i = 0;
    for (; i + EW_BLOCK <= m; i += EW_BLOCK) {
        for (size_t j = 0; j < EW_BLOCK; j++)
            d[i + j] = a[i + j] > 0.0f ? b[i + j] : 0.0f;
    }
    for (; i < m; i++)
        d[i] = a[i] > 0.0f ? b[i] : 0.0f;
}

// acc += v.
static void add_into(float *restrict acc, const float *restrict v, size_t m)
{
    size_t i = 0;
    for (; i + EW_BLOCK <= m; i += EW_BLOCK) {
        for (size_t j = 0; j < EW_BLOCK; j++)
            acc[i + j] += v[i + j];
    }
    for (; i < m; i++)
        acc[i] += v[i];
}

// y = a + b (a and b may be the same buffer: both are only read).
static void add_to(float *restrict y, const float *restrict a, const float *restrict b, size_t m)
{
    size_t i = 0;
    for (; i + EW_BLOCK <= m; i += EW_BLOCK) {
        for (size_t j = 0; j < EW_BLOCK; j++)
            y[i + j] = a[i + j] + b[i + j];
    }
    for (; i < m; i++)
        y[i] = a[i] + b[i];
}

enum ew_op { EW_RELU_IN_PLACE, EW_RELU, EW_RELU_GRAD, EW_RELU_MASK, EW_ADD_INTO, EW_ADD };

// One kernel over (m) buffers: d is the one written (relu_in_place's v, relu_copy's y,
// relu_grad's dx, add_into's acc, add_to's y), a and b the inputs in the kernel's order (NULL
// where it takes fewer).
static void ew_run(enum ew_op op, float *d, const float *a, const float *b, size_t m)
{
    const size_t pieces = m >= EG_PAR_FLOATS ? (m + EW_PIECE - 1) / EW_PIECE : 1;
#pragma omp parallel for schedule(static) if (pieces > 1)
    for (size_t p = 0; p < pieces; p++) {
        const size_t lo = p * EW_PIECE, len = pieces == 1 ? m : (m - lo < EW_PIECE ? m - lo : EW_PIECE);
        const float *ap = a != NULL ? a + lo : NULL, *bp = b != NULL ? b + lo : NULL;
        switch (op) {
        case EW_RELU_IN_PLACE:
            relu_in_place(d + lo, len);
            break;
        case EW_RELU:
            relu_copy(d + lo, ap, len);
            break;
        case EW_RELU_GRAD:
            relu_grad(d + lo, ap, bp, len);
            break;
        case EW_RELU_MASK:
            relu_mask(d + lo, ap, bp, len);
            break;
        case EW_ADD_INTO:
            add_into(d + lo, ap, len);
            break;
        case EW_ADD:
            add_to(d + lo, ap, bp, len);
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// relu

// x[0], y: (in_shape, n) CNHW; y may equal x[0].
static void relu_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                         float *y)
{
    size_t m = shape_numel(l->in_shape[0]) * ctx->n;
    if (y == x[0]) {
        ew_run(EW_RELU_IN_PLACE, y, NULL, NULL, m);
    } else {
        ew_run(EW_RELU, y, x[0], NULL, m);
    }
}

// Reads only y and dy (x[0] may have been overwritten in place): y > 0 exactly where x > 0.
static void relu_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                          const float *y, const float *dy, float *const *dx)
{
    (void)x;
    if (dx[0] == NULL) return;
    EG_ASSERT(dx[0] != dy && dx[0] != y);
    ew_run(EW_RELU_GRAD, dx[0], y, dy, shape_numel(l->in_shape[0]) * ctx->n);
}

// ty = tx where y > 0, else 0 (the derivative is 0 at y == 0, as in backward); ty may be tx.
static void relu_tforward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                          const float *const *tx, const float *y, float *ty)
{
    (void)x;
    const size_t m = shape_numel(l->in_shape[0]) * ctx->n;
    if (tx[0] == NULL) {
        memset(ty, 0, m * sizeof(float));
        return;
    }
    ew_run(EW_RELU_MASK, ty, y, tx[0], m);
}

// One comparison per element.
static double elementwise_flops(const struct layer *l, size_t n)
{
    return (double)shape_numel(l->out_shape) * (double)n;
}

static const struct layer_ops relu_ops = {
    .name = "relu",
    .forward = relu_forward,
    .backward = relu_backward,
    .tforward = relu_tforward,
    .tbackward = layer_linear_tbackward, // ReLU's backward is linear in dy (its mask is y's)
    .flops = elementwise_flops,
    .can_run_in_place = true,
    .backward_reads_y = true,
};

void layer_relu(struct layer *l, struct shape in)
{
    EG_ASSERT(l != NULL);
    EG_ASSERT(shape_numel(in) > 0);
    *l = (struct layer){.ops = &relu_ops, .nin = 1, .in_shape = {in}, .out_shape = in};
}

// ---------------------------------------------------------------------------------------------
// add

// x[0], x[1], y: (in_shape, n) CNHW; y may equal x[0] (the net's in-place case) or x[1].
static void add_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                        float *y)
{
    size_t m = shape_numel(l->out_shape) * ctx->n;
    if (y == x[0] && y == x[1]) { // a node added to itself: rare, not worth a fast path
        for (size_t i = 0; i < m; i++)
            y[i] += y[i];
    } else if (y == x[0]) {
        ew_run(EW_ADD_INTO, y, x[1], NULL, m);
    } else if (y == x[1]) {
        ew_run(EW_ADD_INTO, y, x[0], NULL, m);
    } else {
        ew_run(EW_ADD, y, x[0], x[1], m);
    }
}

// dx[0] += dy, dx[1] += dy (each skipped when NULL; they may be the same buffer, which then
// receives 2*dy). Reads neither x nor y.
static void add_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                         const float *y, const float *dy, float *const *dx)
{
    (void)x;
    (void)y;
    size_t m = shape_numel(l->out_shape) * ctx->n;
    for (size_t i = 0; i < 2; i++) {
        if (dx[i] == NULL) continue;
        EG_ASSERT(dx[i] != dy);
        ew_run(EW_ADD_INTO, dx[i], dy, NULL, m);
    }
}

static const struct layer_ops add_ops = {
    .name = "add",
    .forward = add_forward,
    .backward = add_backward,
    .tforward = layer_linear_tforward,
    .tbackward = layer_linear_tbackward,
    .flops = elementwise_flops,
    .can_run_in_place = true,
    .backward_reads_y = false,
};

void layer_add(struct layer *l, struct shape in)
{
    EG_ASSERT(l != NULL);
    EG_ASSERT(shape_numel(in) > 0);
    *l = (struct layer){.ops = &add_ops, .nin = 2, .in_shape = {in, in}, .out_shape = in};
}

// ---------------------------------------------------------------------------------------------
// shortcut_a

struct shortcut_state {
    size_t stride; // spatial subsampling step
    size_t pad;    // zero channels before (and after) the input's channels
};

// x[0]: (c, n, h, w) CNHW;  y: (c_out, n, ceil(h/stride), ceil(w/stride)) CNHW. In CNHW the
// pad*n leading and trailing planes of y are each one contiguous run of zeros.
static void shortcut_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                             float *y)
{
    const struct shortcut_state *s = l->state;
    const struct shape in = l->in_shape[0], out = l->out_shape;
    const size_t planes = in.c * ctx->n, in_hw = in.h * in.w, out_hw = out.h * out.w;
    const size_t zeros = s->pad * ctx->n * out_hw;
    EG_ASSERT(y != x[0]);
    memset(y, 0, zeros * sizeof(float));
    memset(y + zeros + planes * out_hw, 0, zeros * sizeof(float));
    float *ym = y + zeros;
    if (s->stride == 1) {
        memcpy(ym, x[0], planes * in_hw * sizeof(float));
        return;
    }
#pragma omp parallel for schedule(static) if (planes * in_hw >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        const float *src = x[0] + p * in_hw;
        float *dst = ym + p * out_hw;
        for (size_t i = 0; i < out.h; i++) {
            const float *row = src + i * s->stride * in.w;
            for (size_t j = 0; j < out.w; j++)
                dst[i * out.w + j] = row[j * s->stride];
        }
    }
}

// dx[0][(c, n), i*stride, j*stride] += dy[(c + pad, n), i, j]; the zero channels have no input.
static void shortcut_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                              const float *y, const float *dy, float *const *dx)
{
    (void)x;
    (void)y;
    if (dx[0] == NULL) return;
    const struct shortcut_state *s = l->state;
    const struct shape in = l->in_shape[0], out = l->out_shape;
    const size_t planes = in.c * ctx->n, in_hw = in.h * in.w, out_hw = out.h * out.w;
    const float *dym = dy + s->pad * ctx->n * out_hw;
    EG_ASSERT(dx[0] != dy);
    if (s->stride == 1) {
        ew_run(EW_ADD_INTO, dx[0], dym, NULL, planes * in_hw);
        return;
    }
#pragma omp parallel for schedule(static) if (planes * in_hw >= EG_PAR_FLOATS)
    for (size_t p = 0; p < planes; p++) {
        float *dst = dx[0] + p * in_hw;
        const float *src = dym + p * out_hw;
        for (size_t i = 0; i < out.h; i++) {
            float *row = dst + i * s->stride * in.w;
            for (size_t j = 0; j < out.w; j++)
                row[j * s->stride] += src[i * out.w + j];
        }
    }
}

static const struct layer_ops shortcut_a_ops = {
    .name = "shortcut_a",
    .forward = shortcut_forward,
    .backward = shortcut_backward,
    .tforward = layer_linear_tforward,
    .tbackward = layer_linear_tbackward,
    .flops = NULL, // a strided copy: no arithmetic
    .can_run_in_place = false,
    .backward_reads_y = false,
};

void layer_shortcut_a(struct layer *l, struct shape in, size_t c_out, size_t stride)
{
    EG_ASSERT(l != NULL);
    EG_ASSERT(shape_numel(in) > 0);
    EG_ASSERT(stride >= 1);
    EG_ASSERT(c_out >= in.c && (c_out - in.c) % 2 == 0);
    struct shortcut_state *s = eg_xmalloc(sizeof *s);
    s->stride = stride;
    s->pad = (c_out - in.c) / 2;
    // x[:, :, ::stride, ::stride] keeps indices 0, stride, ...: ceil(h / stride) of them
    struct shape out = {c_out, (in.h + stride - 1) / stride, (in.w + stride - 1) / stride};
    *l = (struct layer){
        .ops = &shortcut_a_ops, .nin = 1, .in_shape = {in}, .out_shape = out, .state = s};
}
