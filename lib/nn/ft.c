/* ft.c - the feature-wise transformation layer of learned feature-wise transformations (Tseng et
 * al., ICLR 2020; paper-spec 3.3), groundwork for the cross-domain few-shot task (layers.h).
 *
 * Parameters: gamma (C) then beta (C), initialised 0.3 and 0.5. In the training modes
 * (LAYER_MODE_TRAIN, LAYER_MODE_TRAIN_FROZEN), per forward call, n_gamma, n_beta ~ N(0, 1) are
 * drawn per channel from ctx->rng (all of n_gamma, then all of n_beta, as two [1, C, 1, 1]
 * tensors) and shared over the batch and space:
 *   y = (1 + n_gamma sp(gamma)) x + n_beta sp(beta),
 *   sp(u) = PyTorch's softplus(u, beta = 100, threshold = 20): u when 100 u > 20, else
 *           log1p(exp(100 u)) / 100; sp'(u) = 1, else sigmoid(100 u).
 * In LAYER_MODE_EVAL the layer is the identity. State: the last drawn noise (2C floats), or noise
 * held fixed by layer_ft_hold_noise (gradient checks, replayed candidates). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/status.h"
#include "layers.h"

struct ft_state {
    float *noise; // (2C): n_gamma then n_beta of the last training forward
    bool hold;    // forward reuses noise instead of drawing
};

double ft_softplus(double u)
{
    const double b = 100.0;
    return b * u > 20.0 ? u : log1p(exp(b * u)) / b;
}

double ft_softplus_grad(double u)
{
    const double b = 100.0;
    if (b * u > 20.0) return 1.0;
    return 1.0 / (1.0 + exp(-b * u));
}

// sp''(u): 0 where sp is the identity, else 100 sigmoid(100 u) (1 - sigmoid(100 u)).
static double ft_softplus_grad2(double u)
{
    const double b = 100.0;
    if (b * u > 20.0) return 0.0;
    double sg = 1.0 / (1.0 + exp(-b * u));
    return b * sg * (1.0 - sg);
}

static bool ft_active(enum layer_mode mode)
{
    return mode != LAYER_MODE_EVAL;
}

static void ft_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                       float *y)
{
    struct ft_state *s = l->state;
    const size_t C = l->in_shape[0].c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    if (!ft_active(ctx->mode)) {
        if (y != x[0]) memcpy(y, x[0], C * m * sizeof(float));
        return;
    }
    if (!s->hold) {
        EG_ASSERT(ctx->rng != NULL);
        for (size_t k = 0; k < 2 * C; k++) s->noise[k] = (float)rng_gaussian(ctx->rng);
    }
    const float *gamma = ctx->params, *beta = ctx->params + C;
#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float a = (float)(1.0 + (double)s->noise[c] * ft_softplus((double)gamma[c]));
        const float b = (float)((double)s->noise[C + c] * ft_softplus((double)beta[c]));
        const float *xc = x[0] + c * m;
        float *yc = y + c * m;
        for (size_t i = 0; i < m; i++) yc[i] = a * xc[i] + b;
    }
}

static void ft_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                        const float *y, const float *dy, float *const *dx)
{
    (void)y;
    struct ft_state *s = l->state;
    const size_t C = l->in_shape[0].c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    const bool on = ft_active(ctx->mode);
    const float *gamma = ctx->params, *beta = ctx->params + C;
#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float *dyc = dy + c * m;
        const float a =
            on ? (float)(1.0 + (double)s->noise[c] * ft_softplus((double)gamma[c])) : 1.0f;
        if (dx[0] != NULL) {
            float *dxc = dx[0] + c * m;
            for (size_t i = 0; i < m; i++) dxc[i] += a * dyc[i];
        }
        if (!on || ctx->grads == NULL) continue;
        const float *xc = x[0] + c * m;
        double sxy = 0.0, sy = 0.0;
        for (size_t i = 0; i < m; i++) {
            sxy += (double)xc[i] * (double)dyc[i];
            sy += (double)dyc[i];
        }
        ctx->grads[c] += (float)((double)s->noise[c] * ft_softplus_grad((double)gamma[c]) * sxy);
        ctx->grads[C + c] +=
            (float)((double)s->noise[C + c] * ft_softplus_grad((double)beta[c]) * sy);
    }
}

// With the noise of the last forward held: y = a x + b, a = 1 + n_g sp(gamma), b = n_b sp(beta),
//   ty = a tx + n_g sp'(gamma) tgamma x + n_b sp'(beta) tbeta;   the identity in LAYER_MODE_EVAL.
static void ft_tforward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                        const float *const *tx, const float *y, float *ty)
{
    (void)y;
    struct ft_state *s = l->state;
    const size_t C = l->in_shape[0].c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    if (!ft_active(ctx->mode)) {
        if (tx[0] == NULL) {
            memset(ty, 0, C * m * sizeof(float));
        } else if (ty != tx[0]) {
            memcpy(ty, tx[0], C * m * sizeof(float));
        }
        return;
    }
    const float *gamma = ctx->params, *beta = ctx->params + C;
    const float *tgamma = ctx->tparams, *tbeta = ctx->tparams + C;
#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float a = (float)(1.0 + (double)s->noise[c] * ft_softplus((double)gamma[c]));
        const float ta =
            (float)((double)s->noise[c] * ft_softplus_grad((double)gamma[c]) * (double)tgamma[c]);
        const float tb =
            (float)((double)s->noise[C + c] * ft_softplus_grad((double)beta[c]) * (double)tbeta[c]);
        const float *xc = x[0] + c * m, *txc = tx[0] != NULL ? tx[0] + c * m : NULL;
        float *tyc = ty + c * m;
        if (txc != NULL) {
            for (size_t i = 0; i < m; i++) tyc[i] = a * txc[i] + ta * xc[i] + tb;
        } else {
            for (size_t i = 0; i < m; i++) tyc[i] = ta * xc[i] + tb;
        }
    }
}

// Backward: dx = a dy, dgamma = n_g sp'(gamma) sum(x dy), dbeta = n_b sp'(beta) sum(dy). Tangents:
//   tdx = a tdy + ta dy   (ta = n_g sp'(gamma) tgamma),
//   tdgamma = n_g (sp''(gamma) tgamma sum(x dy) + sp'(gamma) sum(tx dy + x tdy)),
//   tdbeta = n_b (sp''(beta) tbeta sum(dy) + sp'(beta) sum(tdy)).
static void ft_tbackward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                         const float *const *tx, const float *y, const float *dy,
                         const float *tdy, float *const *tdx)
{
    (void)y;
    struct ft_state *s = l->state;
    const size_t C = l->in_shape[0].c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    const bool on = ft_active(ctx->mode);
    const float *gamma = ctx->params, *beta = ctx->params + C;
    const float *tgamma = ctx->tparams, *tbeta = ctx->tparams + C;
#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float *dyc = dy + c * m, *tdyc = tdy + c * m;
        const double ng = on ? (double)s->noise[c] : 0.0, nb = on ? (double)s->noise[C + c] : 0.0;
        const float a = (float)(1.0 + ng * ft_softplus((double)gamma[c]));
        const float ta = (float)(ng * ft_softplus_grad((double)gamma[c]) * (double)tgamma[c]);
        if (tdx[0] != NULL) {
            float *tdxc = tdx[0] + c * m;
            for (size_t i = 0; i < m; i++) tdxc[i] += a * tdyc[i] + ta * dyc[i];
        }
        if (!on || ctx->tgrads == NULL) continue;
        const float *xc = x[0] + c * m, *txc = tx[0] != NULL ? tx[0] + c * m : NULL;
        double sxdy = 0.0, sdy = 0.0, stdy = 0.0, smix = 0.0;
        for (size_t i = 0; i < m; i++) {
            sxdy += (double)xc[i] * (double)dyc[i];
            sdy += (double)dyc[i];
            stdy += (double)tdyc[i];
            smix += (double)xc[i] * (double)tdyc[i];
            if (txc != NULL) smix += (double)txc[i] * (double)dyc[i];
        }
        const double g = (double)gamma[c], b = (double)beta[c];
        ctx->tgrads[c] += (float)(ng * (ft_softplus_grad2(g) * (double)tgamma[c] * sxdy +
                                        ft_softplus_grad(g) * smix));
        ctx->tgrads[C + c] += (float)(nb * (ft_softplus_grad2(b) * (double)tbeta[c] * sdy +
                                            ft_softplus_grad(b) * stdy));
    }
}

static void ft_init(const struct layer *l, float *params, float *stats, struct rng *rng)
{
    (void)stats;
    (void)rng;
    const size_t C = l->in_shape[0].c;
    for (size_t c = 0; c < C; c++) {
        params[c] = 0.3f;
        params[C + c] = 0.5f;
    }
}

static double ft_flops(const struct layer *l, size_t n)
{
    return 2.0 * (double)(shape_numel(l->in_shape[0]) * n);
}

static void ft_destroy(struct layer *l)
{
    struct ft_state *s = l->state;
    if (s != NULL) free(s->noise);
    free(s);
}

static const struct layer_ops ft_ops = {
    .name = "ft",
    .forward = ft_forward,
    .backward = ft_backward,
    .tforward = ft_tforward,
    .tbackward = ft_tbackward,
    .init = ft_init,
    .flops = ft_flops,
    .destroy = ft_destroy,
    .can_run_in_place = false, // backward reads x for dgamma
    .backward_reads_y = false,
    .hyper = true, // LFT meta-learns gamma and beta
};

void layer_ft(struct layer *l, struct shape in)
{
    EG_ASSERT(l != NULL && shape_numel(in) > 0);
    struct ft_state *s = eg_xcalloc(1, sizeof *s);
    s->noise = eg_xcalloc_floats(2 * in.c);
    *l = (struct layer){.ops = &ft_ops,
                        .nin = 1,
                        .in_shape = {in},
                        .out_shape = in,
                        .nparams = 2 * in.c,
                        .state = s};
}

void layer_ft_hold_noise(struct layer *l, const float *n_gamma, const float *n_beta)
{
    EG_ASSERT(l != NULL && l->ops == &ft_ops);
    struct ft_state *s = l->state;
    const size_t C = l->in_shape[0].c;
    if (n_gamma == NULL || n_beta == NULL) {
        s->hold = false;
        return;
    }
    memcpy(s->noise, n_gamma, C * sizeof(float));
    memcpy(s->noise + C, n_beta, C * sizeof(float));
    s->hold = true;
}
