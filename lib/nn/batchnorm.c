/* batchnorm.c - nn.BatchNorm2d on CNHW activations (layer.h), PyTorch's conventions
 * (https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html): per channel, over the
 * m = N*H*W values of the batch, y = gamma * (x - mean) / sqrt(var + eps) + beta, with the biased
 * batch variance in train modes and the running statistics in LAYER_MODE_EVAL; LAYER_MODE_TRAIN
 * also updates running_var with the unbiased variance var * m/(m-1).
 *
 * Speed. In CNHW a channel is one contiguous run of m floats, and each kernel below is one
 * straight pass over it: reductions in explicit 4-float vectors, element-wise passes in
 * fixed-length blocks, both vectorised at -O2 without -ffast-math. A channel is finished before
 * the next, so its later passes find it in cache: forward reads it three times (sum, squared
 * deviations, output), backward twice (sums of dy and dy*(x - mean), then dx). On the 2-core
 * EPYC a 16 x (100*32*32) activation takes ~0.75 ms forward + ~1.0 ms backward (memory-bound).
 *
 * State: the per-channel mean and 1/sqrt(var + eps) used by the last forward (owned, freed by
 * batchnorm_destroy); backward reads them with x (not y). */
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/status.h"

// Reductions use GCC/Clang generic vectors of 4 floats (one SSE register on the x86-64
// baseline; every target has the shape). Plain-C reduction loops are not vectorised without
// -ffast-math, and GCC's basic-block vectoriser drops hand-unrolled lanes once the kernel is
// inlined (measured: 3x slower), so the lanes are explicit. Each kernel keeps independent float
// partial sums over blocks of BN_BLOCK values and flushes them into a double every BN_CHUNK
// values: a lane adds at most 16 terms in float (relative error <= 1e-6, ~1e-7 typically), the
// chunks add up in double, and the error does not grow with m.
typedef float bn_v4 __attribute__((vector_size(16)));
#define BN_BLOCK 16  // values per step: 4 independent vectors of 4
#define BN_CHUNK 256 // values per float partial sum

struct bn_state {
    size_t c;
    float eps, momentum;
    bool track;     // running statistics exist (nstats = 2c)
    float *mean;    // (c) mean subtracted by the last forward, owned
    float *invstd;  // (c) 1/sqrt(var + eps) of the last forward, owned
    size_t fwd_n;   // batch size of the last forward (0: none yet)
    bool fwd_batch; // the last forward used batch statistics (so backward differentiates them)
};

// ---------------------------------------------------------------------------------------------
// per-channel kernels; x, dy, y, dx: (m), one channel's run

// p: (4) floats, any alignment (compiles to one unaligned load).
static inline bn_v4 v4_load(const float *p)
{
    bn_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline double v4_sum(bn_v4 v)
{
    return ((double)v[0] + (double)v[1]) + ((double)v[2] + (double)v[3]);
}

// End of the chunk starting at i.
static inline size_t chunk_end(size_t i, size_t m)
{
    return m - i > BN_CHUNK ? i + BN_CHUNK : m;
}

// sum_i x[i].
static double channel_sum(const float *x, size_t m)
{
    double s = 0.0;
    size_t i = 0;
    while (i + BN_BLOCK <= m) {
        bn_v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (size_t end = chunk_end(i, m); i + BN_BLOCK <= end; i += BN_BLOCK) {
            a0 += v4_load(x + i);
            a1 += v4_load(x + i + 4);
            a2 += v4_load(x + i + 8);
            a3 += v4_load(x + i + 12);
        }
        s += (v4_sum(a0) + v4_sum(a1)) + (v4_sum(a2) + v4_sum(a3));
    }
    for (; i < m; i++)
        s += (double)x[i];
    return s;
}

// sum_i (x[i] - mu)^2. The deviation and its square are float: every term is positive, so their
// rounding errors (<= 6e-8 relative each) do not grow in the sum.
static double channel_sq_dev(const float *x, size_t m, float mu)
{
    double s = 0.0;
    size_t i = 0;
    while (i + BN_BLOCK <= m) {
        bn_v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (size_t end = chunk_end(i, m); i + BN_BLOCK <= end; i += BN_BLOCK) {
            bn_v4 d0 = v4_load(x + i) - mu, d1 = v4_load(x + i + 4) - mu;
            bn_v4 d2 = v4_load(x + i + 8) - mu, d3 = v4_load(x + i + 12) - mu;
            a0 += d0 * d0;
            a1 += d1 * d1;
            a2 += d2 * d2;
            a3 += d3 * d3;
        }
        s += (v4_sum(a0) + v4_sum(a1)) + (v4_sum(a2) + v4_sum(a3));
    }
    for (; i < m; i++) {
        float d = x[i] - mu;
        s += (double)(d * d);
    }
    return s;
}

// *sdy = sum_i dy[i], *sdyd = sum_i dy[i] * (x[i] - mu): one pass over x and dy.
static void channel_grad_sums(const float *x, const float *dy, size_t m, float mu, double *sdy,
                              double *sdyd)
{
    double t1 = 0.0, t2 = 0.0;
    size_t i = 0;
    while (i + BN_BLOCK <= m) {
        bn_v4 g0 = {0}, g1 = {0}, g2 = {0}, g3 = {0}; // dy
        bn_v4 p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0}; // dy * (x - mu)
        for (size_t end = chunk_end(i, m); i + BN_BLOCK <= end; i += BN_BLOCK) {
            bn_v4 e0 = v4_load(dy + i), e1 = v4_load(dy + i + 4);
            bn_v4 e2 = v4_load(dy + i + 8), e3 = v4_load(dy + i + 12);
            g0 += e0;
            g1 += e1;
            g2 += e2;
            g3 += e3;
            p0 += e0 * (v4_load(x + i) - mu);
            p1 += e1 * (v4_load(x + i + 4) - mu);
            p2 += e2 * (v4_load(x + i + 8) - mu);
            p3 += e3 * (v4_load(x + i + 12) - mu);
        }
        t1 += (v4_sum(g0) + v4_sum(g1)) + (v4_sum(g2) + v4_sum(g3));
        t2 += (v4_sum(p0) + v4_sum(p1)) + (v4_sum(p2) + v4_sum(p3));
    }
    for (; i < m; i++) {
        t1 += (double)dy[i];
        t2 += (double)(dy[i] * (x[i] - mu));
    }
    *sdy = t1;
    *sdyd = t2;
}

// The element-wise passes are plain C in blocks of a constant length: GCC's -O2 cost model
// vectorises only loops whose trip count is a known multiple of the vector length.

// y = (x - mu) * k + beta. Subtracting first keeps precision when |mean| >> std.
static void channel_normalise(float *restrict y, const float *restrict x, size_t m, float mu,
                              float k, float beta)
{
    size_t i = 0;
    for (; i + BN_BLOCK <= m; i += BN_BLOCK) {
        for (size_t j = 0; j < BN_BLOCK; j++)
            y[i + j] = (x[i + j] - mu) * k + beta;
    }
    for (; i < m; i++)
        y[i] = (x[i] - mu) * k + beta;
}

// dx += k * (dy - a - (x - mu) * b): the train-mode input gradient (see batchnorm_backward).
static void channel_dx_batch(float *restrict dx, const float *restrict x, const float *restrict dy,
                             size_t m, float mu, float k, float a, float b)
{
    size_t i = 0;
    for (; i + BN_BLOCK <= m; i += BN_BLOCK) {
        for (size_t j = 0; j < BN_BLOCK; j++) {
            dx[i + j] += k * (dy[i + j] - a - (x[i + j] - mu) * b);
        }
    }
    for (; i < m; i++)
        dx[i] += k * (dy[i] - a - (x[i] - mu) * b);
}

// dx += k * dy: the eval-mode input gradient (statistics are constants).
static void channel_dx_const(float *restrict dx, const float *restrict dy, size_t m, float k)
{
    size_t i = 0;
    for (; i + BN_BLOCK <= m; i += BN_BLOCK) {
        for (size_t j = 0; j < BN_BLOCK; j++)
            dx[i + j] += k * dy[i + j];
    }
    for (; i < m; i++)
        dx[i] += k * dy[i];
}

// ---------------------------------------------------------------------------------------------
// layer ops

// Batch statistics are used in both train modes, and in every mode without running statistics
// (PyTorch's bn_training = training or running_mean is None).
static bool uses_batch_stats(const struct bn_state *s, enum layer_mode mode)
{
    return mode != LAYER_MODE_EVAL || !s->track;
}

// x[0], y: (c, n, h, w) CNHW; params: gamma (c), beta (c); stats: running_mean (c),
// running_var (c) when tracked, written in LAYER_MODE_TRAIN only. Saves mean and invstd.
static void batchnorm_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                              float *y)
{
    struct bn_state *s = l->state;
    const size_t C = s->c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    const bool batch = uses_batch_stats(s, ctx->mode);
    const bool update = s->track && ctx->mode == LAYER_MODE_TRAIN;
    const float *gamma = ctx->params, *beta = ctx->params + C;
    EG_ASSERT(y != x[0]); // not in place: backward reads x
    EG_ASSERT(m > 0);
    // PyTorch raises "Expected more than 1 value per channel when training": with m == 1 the
    // output would be beta whatever x is, and the unbiased variance divides by zero.
    EG_ASSERT(!batch || m > 1);
    EG_ASSERT(!s->track || ctx->stats != NULL);

#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float *xc = x[0] + c * m;
        if (batch) {
            // Two passes: the mean, then squared deviations from it - never E[x^2] - E[x]^2,
            // which cancels catastrophically when |mean| >> std. mu is the mean rounded to float;
            // s1 = sum(x - mu) corrects the variance to the exact mean (the "corrected two-pass
            // algorithm", Chan, Golub & LeVeque 1983).
            double sum = channel_sum(xc, m);
            float mu = (float)(sum / (double)m);
            double s1 = sum - (double)m * (double)mu;
            double s2 = channel_sq_dev(xc, m, mu);
            double var = (s2 - s1 * s1 / (double)m) / (double)m; // biased
            if (var < 0.0) var = 0.0; // only by rounding, for a constant channel
            s->mean[c] = mu;
            s->invstd[c] = (float)(1.0 / sqrt(var + (double)s->eps));
            if (update) {
                float *rm = ctx->stats, *rv = ctx->stats + C;
                double mom = (double)s->momentum;
                double mean = sum / (double)m;
                double unbiased = var * (double)m / (double)(m - 1);
                rm[c] = (float)((1.0 - mom) * (double)rm[c] + mom * mean);
                rv[c] = (float)((1.0 - mom) * (double)rv[c] + mom * unbiased);
            }
        } else {
            const float *rm = ctx->stats, *rv = ctx->stats + C;
            s->mean[c] = rm[c];
            s->invstd[c] = (float)(1.0 / sqrt((double)rv[c] + (double)s->eps));
        }
        channel_normalise(y + c * m, xc, m, s->mean[c], gamma[c] * s->invstd[c], beta[c]);
    }
    s->fwd_n = ctx->n;
    s->fwd_batch = batch;
}

// dy, dx[0]: (c, n, h, w) CNHW; grads: dgamma (c), dbeta (c). With xhat = (x - mean) * invstd:
//   dgamma += sum(dy * xhat) = invstd * sum(dy * (x - mean)),   dbeta += sum(dy);
//   train modes (batch statistics differentiated), with dxhat = dy * gamma:
//     dx += invstd/m * (m*dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
//         = gamma*invstd * (dy - sum(dy)/m - (x - mean) * invstd^2 * sum(dy * (x - mean))/m);
//   eval mode (running statistics are constants): dx += gamma*invstd * dy.
static void batchnorm_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                               const float *y, const float *dy, float *const *dx)
{
    (void)y;
    struct bn_state *s = l->state;
    const size_t C = s->c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    // backward differentiates the forward that produced the saved statistics
    EG_ASSERT(s->fwd_n == ctx->n && s->fwd_batch == uses_batch_stats(s, ctx->mode));
    float *dxp = dx[0];
    EG_ASSERT(dxp != dy);
    if (dxp == NULL && ctx->grads == NULL) return;
    const float *gamma = ctx->params;

#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float *xc = x[0] + c * m, *dyc = dy + c * m;
        const float mu = s->mean[c], is = s->invstd[c], k = gamma[c] * is;
        if (dxp != NULL && !s->fwd_batch) {
            channel_dx_const(dxp + c * m, dyc, m, k);
            if (ctx->grads == NULL) continue; // the sums below only feed the parameters
        }
        double sdy, sdyd;
        channel_grad_sums(xc, dyc, m, mu, &sdy, &sdyd);
        if (ctx->grads != NULL) {
            ctx->grads[c] += (float)((double)is * sdyd);
            ctx->grads[C + c] += (float)sdy;
        }
        if (dxp != NULL && s->fwd_batch) {
            float a = (float)(sdy / (double)m);
            float b = (float)((double)is * (double)is * sdyd / (double)m);
            channel_dx_batch(dxp + c * m, xc, dyc, m, mu, k, a, b);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tangent passes (layer.h). Per channel, d = x - mean, xhat = d * is (is = invstd), k = gamma*is.
// With batch statistics a tangent tx moves them: tmean = mean(tx), and with M = mean(xhat tx),
// t(is) = -is^2 M, txhat = is (tx - tmean - xhat M). Running statistics are constants (M and
// tmean 0). Sums are in double; the element-wise passes in float.

// *tmu = mean(tx), *M = is * mean(d tx) for one channel; 0 for both without tx or batch stats.
static void channel_tstats(const float *xc, const float *txc, size_t m, float mu, float is,
                           bool batch, double *tmu, double *M)
{
    *tmu = 0.0;
    *M = 0.0;
    if (txc == NULL || !batch) return;
    double st = 0.0, sdt = 0.0;
    for (size_t i = 0; i < m; i++) {
        st += (double)txc[i];
        sdt += (double)(xc[i] - mu) * (double)txc[i];
    }
    *tmu = st / (double)m;
    *M = (double)is * sdt / (double)m;
}

// ty = tgamma xhat + gamma txhat + tbeta = k tx + c1 d + c0 with c1 = is (tgamma - gamma is M)
// (= tk, the tangent of k) and c0 = tbeta - k tmean.
static void batchnorm_tforward(struct layer *l, const struct layer_ctx *ctx,
                               const float *const *x, const float *const *tx, const float *y,
                               float *ty)
{
    (void)y;
    struct bn_state *s = l->state;
    const size_t C = s->c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    EG_ASSERT(s->fwd_n == ctx->n && s->fwd_batch == uses_batch_stats(s, ctx->mode));
    const float *gamma = ctx->params, *tgamma = ctx->tparams, *tbeta = ctx->tparams + C;
#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float *xc = x[0] + c * m, *txc = tx[0] != NULL ? tx[0] + c * m : NULL;
        const float mu = s->mean[c], is = s->invstd[c];
        double tmu, M;
        channel_tstats(xc, txc, m, mu, is, s->fwd_batch, &tmu, &M);
        const double k = (double)gamma[c] * (double)is;
        const float c1 = (float)((double)is * ((double)tgamma[c] - k * M));
        const float c0 = (float)((double)tbeta[c] - k * tmu);
        const float kf = (float)k;
        float *tyc = ty + c * m;
        if (txc != NULL) {
            for (size_t i = 0; i < m; i++) tyc[i] = kf * txc[i] + c1 * (xc[i] - mu) + c0;
        } else {
            for (size_t i = 0; i < m; i++) tyc[i] = c1 * (xc[i] - mu) + c0;
        }
    }
}

// Batch statistics: dx = k (dy - A - xhat B), A = mean(dy), B = mean(dy xhat); dgamma = m B,
// dbeta = m A. Their tangents, with tA = mean(tdy), tB = mean(tdy xhat + dy txhat):
//   tdx = tk (dy - A - xhat B) + k (tdy - tA - txhat B - xhat tB),  tdgamma = m tB,
//   tdbeta = m tA.  Running statistics: dx = k dy, so tdx = tk dy + k tdy with tk = tgamma is,
//   and tdgamma = sum(tdy xhat + dy is tx).
static void batchnorm_tbackward(struct layer *l, const struct layer_ctx *ctx,
                                const float *const *x, const float *const *tx, const float *y,
                                const float *dy, const float *tdy, float *const *tdx)
{
    (void)y;
    struct bn_state *s = l->state;
    const size_t C = s->c, m = ctx->n * l->in_shape[0].h * l->in_shape[0].w;
    EG_ASSERT(s->fwd_n == ctx->n && s->fwd_batch == uses_batch_stats(s, ctx->mode));
    float *tdxp = tdx[0];
    if (tdxp == NULL && ctx->tgrads == NULL) return;
    const float *gamma = ctx->params, *tgamma = ctx->tparams;
    const bool batch = s->fwd_batch;
#pragma omp parallel for schedule(static) if (C * m >= EG_PAR_FLOATS)
    for (size_t c = 0; c < C; c++) {
        const float *xc = x[0] + c * m, *txc = tx[0] != NULL ? tx[0] + c * m : NULL;
        const float *dyc = dy + c * m, *tdyc = tdy + c * m;
        const float mu = s->mean[c], is = s->invstd[c];
        const double isd = (double)is, k = (double)gamma[c] * isd, md = (double)m;
        // sums over the channel, in one pass: dy, dy d, tdy, tdy d, dy tx, and tx, d tx (the
        // statistics' tangents, as channel_tstats sums them)
        double sdy = 0.0, sdyd = 0.0, stdy = 0.0, stdyd = 0.0, sdytx = 0.0, st = 0.0, sdt = 0.0;
        for (size_t i = 0; i < m; i++) {
            const double d = (double)(xc[i] - mu);
            sdy += (double)dyc[i];
            sdyd += (double)dyc[i] * d;
            stdy += (double)tdyc[i];
            stdyd += (double)tdyc[i] * d;
            if (txc != NULL) {
                sdytx += (double)dyc[i] * (double)txc[i];
                st += (double)txc[i];
                sdt += d * (double)txc[i];
            }
        }
        const bool moves = txc != NULL && batch; // batch statistics move with tx
        const double tmu = moves ? st / md : 0.0, M = moves ? isd * sdt / md : 0.0;
        if (!batch) {
            if (ctx->tgrads != NULL) {
                ctx->tgrads[c] += (float)(isd * (stdyd + sdytx));
                ctx->tgrads[C + c] += (float)stdy;
            }
            if (tdxp != NULL) {
                const float tk = (float)((double)tgamma[c] * isd), kf = (float)k;
                float *tdxc = tdxp + c * m;
                for (size_t i = 0; i < m; i++) tdxc[i] += tk * dyc[i] + kf * tdyc[i];
            }
            continue;
        }
        const double A = sdy / md, B = isd * sdyd / md, tA = stdy / md;
        // mean(dy txhat) = is (mean(dy tx) - tmean A - M is mean(dy d))
        const double tB = isd * stdyd / md + isd * (sdytx / md - tmu * A - M * isd * sdyd / md);
        if (ctx->tgrads != NULL) {
            ctx->tgrads[c] += (float)(md * tB);
            ctx->tgrads[C + c] += (float)stdy;
        }
        if (tdxp == NULL) continue;
        const double tk = isd * ((double)tgamma[c] - k * M);
        // tdx = tk dy + k tdy - k B is tx + d (-tk B is - k tB is + k B is^2 M)
        //       + (-tk A - k tA + k B is tmean)
        const float e_dy = (float)tk, e_tdy = (float)k, e_tx = (float)(-k * B * isd);
        const float e_d = (float)(isd * (-tk * B - k * tB + k * B * isd * M));
        const float e_0 = (float)(-tk * A - k * tA + k * B * isd * tmu);
        float *tdxc = tdxp + c * m;
        if (txc != NULL) {
            for (size_t i = 0; i < m; i++)
                tdxc[i] += e_dy * dyc[i] + e_tdy * tdyc[i] + e_tx * txc[i] + e_d * (xc[i] - mu) + e_0;
        } else {
            for (size_t i = 0; i < m; i++)
                tdxc[i] += e_dy * dyc[i] + e_tdy * tdyc[i] + e_d * (xc[i] - mu) + e_0;
        }
    }
}

// gamma = 1, beta = 0; running_mean = 0, running_var = 1 (nn.BatchNorm2d.reset_parameters).
static void batchnorm_init(const struct layer *l, float *params, float *stats, struct rng *rng)
{
    (void)rng;
    const struct bn_state *s = l->state;
    for (size_t c = 0; c < s->c; c++) {
        params[c] = 1.0f;
        params[s->c + c] = 0.0f;
    }
    if (s->track) {
        for (size_t c = 0; c < s->c; c++) {
            stats[c] = 0.0f;
            stats[s->c + c] = 1.0f;
        }
    }
}

// Per element in train mode: 1 add (mean), 3 (deviation, square, add), 3 (subtract, scale,
// shift) for the output.
static double batchnorm_flops(const struct layer *l, size_t n)
{
    return 7.0 * (double)shape_numel(l->in_shape[0]) * (double)n;
}

static void batchnorm_destroy(struct layer *l)
{
    struct bn_state *s = l->state;
    if (s == NULL) return;
    free(s->mean);
    free(s->invstd);
    free(s);
}

static const struct layer_ops batchnorm_ops = {
    .name = "batchnorm",
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .tforward = batchnorm_tforward,
    .tbackward = batchnorm_tbackward,
    .init = batchnorm_init,
    .flops = batchnorm_flops,
    .destroy = batchnorm_destroy,
    .can_run_in_place = false,
    .backward_reads_y = false,
};

void layer_batchnorm(struct layer *l, struct shape in, struct batchnorm_params p)
{
    EG_ASSERT(l != NULL);
    EG_ASSERT(in.c > 0 && in.h > 0 && in.w > 0);
    EG_ASSERT(p.eps >= 0.0f && isfinite(p.eps));
    EG_ASSERT(p.momentum >= 0.0f && p.momentum <= 1.0f);
    struct bn_state *s = eg_xcalloc(1, sizeof *s);
    s->c = in.c;
    s->eps = p.eps;
    s->momentum = p.momentum;
    s->track = p.track_running_stats;
    s->mean = eg_xcalloc_floats(in.c);
    s->invstd = eg_xcalloc_floats(in.c);
    *l = (struct layer){
        .ops = &batchnorm_ops,
        .nin = 1,
        .in_shape = {in},
        .out_shape = in,
        .nparams = 2 * in.c,
        .nstats = p.track_running_stats ? 2 * in.c : 0,
        .state = s,
    };
}
