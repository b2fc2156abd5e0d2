/* linear.c - the fully connected layer (nn.Linear) and flatten.
 * Inside a net a feature batch is a (features, N) matrix (CNHW with H = W = 1, layer.h), so
 * linear is one GEMM per pass with no transposes of the activations: Y = W X + b.
 * Flatten turns (c, h, w) planes into feature rows in torch.flatten order on NCHW.
 * Both keep only their settings in l->state (plain malloc, freed with free()). */
#include "layers.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/blas.h"
#include "core/status.h"

// ---------------------------------------------------------------------------------------------
// linear

struct linear_state {
    size_t in, out; // in_features = c*h*w of the input, out_features
    bool bias;
    enum init_kind init;
};

// Y (out, N) = W (out, in) X (in, N) + b (out) broadcast over the columns; b NULL: no bias.
// accumulate: Y += W X (b ignored) instead of writing Y.
static void linear_apply(const struct linear_state *s, size_t N, const float *x, const float *W,
                         const float *b, bool accumulate, float *y)
{
    float beta = accumulate ? 1.0f : 0.0f;
    if (b != NULL && !accumulate) {
        // Fill Y with the bias first and let the GEMM add W X on top (beta = 1).
        for (size_t o = 0; o < s->out; o++) {
            for (size_t n = 0; n < N; n++)
                y[o * N + n] = b[o];
        }
        beta = 1.0f;
    }
    eg_sgemm(false, false, s->out, N, s->in, 1.0f, W, s->in, x, N, beta, y, N);
}

// dW (out, in) += dY (out, N) X^T unless dW is NULL;  db (out) += sum_n dY[:, n] unless NULL;
// dX (in, N) += W^T dY unless NULL.
static void linear_apply_back(const struct linear_state *s, size_t N, const float *x,
                              const float *W, const float *dy, float *dX, float *dW, float *db)
{
    if (dW != NULL) eg_sgemm(false, true, s->out, s->in, N, 1.0f, dy, N, x, N, 1.0f, dW, s->in);
    if (db != NULL) {
        for (size_t o = 0; o < s->out; o++) {
            double acc = 0.0; // a batch-long sum: double keeps it order-independent enough
            for (size_t n = 0; n < N; n++)
                acc += (double)dy[o * N + n];
            db[o] += (float)acc;
        }
    }
    if (dX != NULL) eg_sgemm(true, false, s->in, N, s->out, 1.0f, W, s->in, dy, N, 1.0f, dX, N);
}

static const float *linear_bias_of(const struct linear_state *s, const float *p)
{
    return s->bias ? p + s->out * s->in : NULL;
}

static float *linear_dbias_of(const struct linear_state *s, float *g)
{
    return s->bias && g != NULL ? g + s->out * s->in : NULL;
}

static void linear_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                           float *y)
{
    const struct linear_state *s = l->state;
    linear_apply(s, ctx->n, x[0], ctx->params, linear_bias_of(s, ctx->params), false, y);
}

static void linear_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            const float *y, const float *dy, float *const *dx)
{
    (void)y;
    const struct linear_state *s = l->state;
    linear_apply_back(s, ctx->n, x[0], ctx->params, dy, dx[0], ctx->grads,
                      linear_dbias_of(s, ctx->grads));
}

// Bilinear in (x, W), affine in b:  ty = tW x + tb + W tx.
static void linear_tforward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            const float *const *tx, const float *y, float *ty)
{
    (void)y;
    const struct linear_state *s = l->state;
    linear_apply(s, ctx->n, x[0], ctx->tparams, linear_bias_of(s, ctx->tparams), false, ty);
    if (tx[0] != NULL) linear_apply(s, ctx->n, tx[0], ctx->params, NULL, true, ty);
}

// tdX = W^T tdy + tW^T dy;  tdW = tdy x^T + dy tx^T;  tdb = sum_n tdy.
static void linear_tbackward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                             const float *const *tx, const float *y, const float *dy,
                             const float *tdy, float *const *tdx)
{
    (void)y;
    const struct linear_state *s = l->state;
    linear_apply_back(s, ctx->n, x[0], ctx->params, tdy, tdx[0], ctx->tgrads,
                      linear_dbias_of(s, ctx->tgrads));
    linear_apply_back(s, ctx->n, tx[0], ctx->tparams, dy, tdx[0],
                      tx[0] != NULL ? ctx->tgrads : NULL, NULL);
}

// nn.Linear.reset_parameters (or the kaiming variants): weight from fan_in = in, fan_out = out.
static void linear_init(const struct layer *l, float *params, float *stats, struct rng *rng)
{
    (void)stats;
    const struct linear_state *s = l->state;
    layer_init_weight(params, s->out * s->in, s->in, s->out, s->init, rng);
    if (s->bias) layer_init_bias(params + s->out * s->in, s->out, s->in, rng);
}

static double linear_flops(const struct layer *l, size_t n)
{
    const struct linear_state *s = l->state;
    return 2.0 * (double)s->out * (double)s->in * (double)n;
}

static const struct layer_ops linear_ops = {
    .name = "linear",
    .forward = linear_forward,
    .backward = linear_backward,
    .tforward = linear_tforward,
    .tbackward = linear_tbackward,
    .init = linear_init,
    .flops = linear_flops,
    .can_run_in_place = false,
    .backward_reads_y = false, // reads x (for dW), never y
};

// Fills l for a linear layer on (in.c*in.h*in.w, n) inputs; params weight (out, in) then bias
// (out). Requires in.h == in.w == 1 (flatten first), in.c >= 1 and p.out >= 1 (EG_ASSERT).
// l->state is a malloc'd struct linear_state, freed with free().
void layer_linear(struct layer *l, struct shape in, struct linear_params p)
{
    EG_ASSERT(in.h == 1 && in.w == 1);
    EG_ASSERT(in.c >= 1 && p.out >= 1);
    struct linear_state *s = eg_xmalloc(sizeof *s);
    *s = (struct linear_state){.in = in.c, .out = p.out, .bias = p.bias, .init = p.init};
    memset(l, 0, sizeof *l);
    l->ops = &linear_ops;
    l->nin = 1;
    l->in_shape[0] = in;
    l->out_shape = (struct shape){.c = p.out, .h = 1, .w = 1};
    l->nparams = p.out * in.c + (p.bias ? p.out : 0);
    l->nstats = 0;
    l->state = s;
}

// ---------------------------------------------------------------------------------------------
// flatten

// Per-sample input shape; the output is (c*h*w, 1, 1).
struct flatten_state {
    struct shape in;
};

// x: (C, N, H, W) CNHW;  y: (C*H*W, N). Row f = (c*H + i)*W + j, column n takes
// x[((c*N + n)*H + i)*W + j]: torch.flatten(x_nchw, 1) transposed to features x N.
static void flatten_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            float *y)
{
    const struct flatten_state *s = l->state;
    size_t N = ctx->n, C = s->in.c, HW = s->in.h * s->in.w;
    if (HW == 1) {
        memcpy(y, x[0], C * N * sizeof(float)); // (C, N, 1, 1) already is (C, N)
        return;
    }
    // Walk y in order (contiguous writes); each (c, n) plane is read with stride N.
    for (size_t c = 0; c < C; c++) {
        for (size_t p = 0; p < HW; p++) {
            float *yrow = y + (c * HW + p) * N;
            const float *xp = x[0] + c * N * HW + p;
            for (size_t n = 0; n < N; n++)
                yrow[n] = xp[n * HW];
        }
    }
}

// dy: (C*H*W, N);  dx: (C, N, H, W) += the inverse permutation of dy.
static void flatten_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                             const float *y, const float *dy, float *const *dx)
{
    (void)x;
    (void)y;
    if (dx[0] == NULL) return;
    const struct flatten_state *s = l->state;
    size_t N = ctx->n, C = s->in.c, HW = s->in.h * s->in.w;
    for (size_t c = 0; c < C; c++) {
        for (size_t p = 0; p < HW; p++) {
            const float *dyrow = dy + (c * HW + p) * N;
            float *dxp = dx[0] + c * N * HW + p;
            for (size_t n = 0; n < N; n++)
                dxp[n * HW] += dyrow[n];
        }
    }
}

static const struct layer_ops flatten_ops = {
    .name = "flatten",
    .forward = flatten_forward,
    .backward = flatten_backward,
    .tforward = layer_linear_tforward,
    .tbackward = layer_linear_tbackward,
    .can_run_in_place = false,
    .backward_reads_y = false,
};

// Fills l for flatten: (c, h, w) -> (c*h*w, 1, 1). No parameters. l->state is malloc'd, free().
void layer_flatten(struct layer *l, struct shape in)
{
    EG_ASSERT(shape_numel(in) >= 1);
    struct flatten_state *s = eg_xmalloc(sizeof *s);
    s->in = in;
    memset(l, 0, sizeof *l);
    l->ops = &flatten_ops;
    l->nin = 1;
    l->in_shape[0] = in;
    l->out_shape = (struct shape){.c = shape_numel(in), .h = 1, .w = 1};
    l->state = s;
}
