/* hyper.c - the hypergradient methods of hyper.h: evograd, unrolled, unrolled_fd, none.
 *
 * evograd and unrolled_fd call the problem's first-order ops only; unrolled also its
 * train_loss_tangent, the exact mixed product.
 * Sums that decide the result (softmax, s_k, the combination of the d_k, |v|, the unrolled
 * central difference) are accumulated in double; buffers handed to the problem are float.
 * struct hyper owns every work buffer, sized once in hyper_new for the method it was made for. */
#include "hyper.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/timer.h"

struct hyper {
    struct hyper_params hp;
    size_t P, H;
    // evograd
    float *eps;     // (K, P) the perturbations drawn by hyper_grad
    float *d;       // (K, H) d_k = dl_T(theta_k, lambda)/dlambda
    double *losses; // (K) l_k
    double *w;      // (K) softmax weights
    double *ebar;   // (P) sum_k w_k eps_k
    double *acc;    // (H) sum_k w_k s_k d_k
    // shared: a P-vector handed to the problem (theta_k, theta*, theta', theta +- e v)
    float *point;
    float *grad; // (P) g_V (evograd) or dl_T/dtheta at theta (unrolled)
    // unrolled
    float *v;                  // (P) grad l_V(theta')
    float *dlam_pos, *dlam_neg; // (H) the exact mixed product (unrolled, in dlam_pos), or
                                // grad_lambda l_T(theta +- e v) (unrolled_fd)
    // diagnostics (hp.diagnostics): work vectors of the exact look-ahead, its hypergradient, a
    // draw and the draws' mean, and the pending comparison
    float *dg_point, *dg_grad, *dg_v;  // (P)
    float *dg_exact, *dg_mixed, *dg_draw; // (H)
    double *dg_mean;                   // (H)
    bool dg_requested, dg_ready;
    struct hyper_diag dg;
};

static const char *const method_names[HYPER__COUNT] = {
    [HYPER_NONE] = "none",
    [HYPER_EVOGRAD] = "evograd",
    [HYPER_UNROLLED] = "unrolled",
    [HYPER_UNROLLED_FD] = "unrolled_fd",
};

static const char *const method_abouts[HYPER__COUNT] = {
    [HYPER_NONE] = "the hyperparameters stay fixed: plain training, the baseline",
    [HYPER_EVOGRAD] = "EvoGrad: K noisy copies of the weights weighted by a softmax of their "
                      "losses; first order (method.candidates, sigma, temperature, noise)",
    [HYPER_UNROLLED] = "the exact one-step look-ahead, second order by forward-over-reverse "
                       "(method.lookahead_lr)",
    [HYPER_UNROLLED_FD] = "the one-step look-ahead, finite-difference second order as in DARTS "
                          "(method.lookahead_lr)",
};

const char *hyper_method_about(enum hyper_method m)
{
    EG_ASSERT((size_t)m < HYPER__COUNT);
    return method_abouts[m];
}

bool hyper_method_is_unrolled(enum hyper_method m)
{
    return m == HYPER_UNROLLED || m == HYPER_UNROLLED_FD;
}

bool hyper_method_supports(enum hyper_method m, const struct meta_problem *p)
{
    return m != HYPER_UNROLLED || p->ops->train_loss_tangent != NULL;
}

const char *hyper_method_name(enum hyper_method m)
{
    EG_ASSERT((size_t)m < HYPER__COUNT);
    return method_names[m];
}

bool hyper_method_find(const char *name, enum hyper_method *m)
{
    for (size_t i = 0; i < HYPER__COUNT; i++) {
        if (strcmp(name, method_names[i]) == 0) {
            *m = (enum hyper_method)i;
            return true;
        }
    }
    return false;
}

struct hyper *hyper_new(const struct hyper_params *hp, size_t P, size_t H)
{
    EG_ASSERT(hp != NULL);
    EG_ASSERT((size_t)hp->method < HYPER__COUNT);
    EG_ASSERT(P >= 1 && H >= 1);
    struct hyper *h = eg_xcalloc(1, sizeof(*h));
    h->hp = *hp;
    h->P = P;
    h->H = H;
    if (hp->method == HYPER_EVOGRAD) {
        size_t K = hp->candidates;
        EG_ASSERT(K >= 1);
        EG_ASSERT(hp->sigma > 0.0 && hp->temperature > 0.0);
        EG_ASSERT(hp->noise == HYPER_NOISE_RADEMACHER || hp->noise == HYPER_NOISE_GAUSSIAN);
        EG_ASSERT(P <= (size_t)-1 / sizeof(float) / K && H <= (size_t)-1 / sizeof(float) / K);
        h->eps = eg_xmalloc_floats(K * P);
        h->d = eg_xmalloc_floats(K * H);
        h->losses = eg_xmalloc_array(K, sizeof(double));
        h->w = eg_xmalloc_array(K, sizeof(double));
        h->ebar = eg_xmalloc_array(P, sizeof(double));
        h->acc = eg_xmalloc_array(H, sizeof(double));
        h->point = eg_xmalloc_floats(P);
        h->grad = eg_xmalloc_floats(P);
    } else if (hyper_method_is_unrolled(hp->method)) {
        EG_ASSERT(hp->lookahead_lr > 0.0);
        h->point = eg_xmalloc_floats(P);
        h->grad = eg_xmalloc_floats(P);
        h->v = eg_xmalloc_floats(P);
        h->dlam_pos = eg_xmalloc_floats(H);
        if (hp->method == HYPER_UNROLLED_FD) h->dlam_neg = eg_xmalloc_floats(H);
    }
    if (hp->diagnostics) {
        EG_ASSERT(hp->lookahead_lr > 0.0);
        EG_ASSERT(hp->diag_draws == 0 || hp->method == HYPER_EVOGRAD);
        h->dg_point = eg_xmalloc_floats(P);
        h->dg_grad = eg_xmalloc_floats(P);
        h->dg_v = eg_xmalloc_floats(P);
        h->dg_exact = eg_xmalloc_floats(H);
        h->dg_mixed = eg_xmalloc_floats(H);
        if (hp->diag_draws > 0) {
            h->dg_draw = eg_xmalloc_floats(H);
            h->dg_mean = eg_xmalloc_array(H, sizeof(double));
        }
    }
    return h;
}

void hyper_free(struct hyper *h)
{
    if (h == NULL) return;
    free(h->eps);
    free(h->d);
    free(h->losses);
    free(h->w);
    free(h->ebar);
    free(h->acc);
    free(h->point);
    free(h->grad);
    free(h->v);
    free(h->dlam_pos);
    free(h->dlam_neg);
    free(h->dg_point);
    free(h->dg_grad);
    free(h->dg_v);
    free(h->dg_exact);
    free(h->dg_mixed);
    free(h->dg_draw);
    free(h->dg_mean);
    free(h);
}

enum hyper_method hyper_method_of(const struct hyper *h)
{
    EG_ASSERT(h != NULL);
    return h->hp.method;
}

void hyper_set_lookahead_lr(struct hyper *h, double alpha)
{
    EG_ASSERT(h != NULL && alpha > 0.0);
    h->hp.lookahead_lr = alpha;
}

void hyper_softmax_weights(const double *losses, size_t K, double tau, double *w)
{
    EG_ASSERT(K >= 1);
    EG_ASSERT(tau > 0.0);
    // softmax(-l / tau) = exp(-(l_k - l_min) / tau) / sum_j exp(-(l_j - l_min) / tau): every
    // exponent is <= 0 (no overflow) and the best candidate contributes exp(0) = 1 to the sum,
    // so the sum is in [1, K] and the division is safe.
    double lmin = losses[0];
    for (size_t k = 1; k < K; k++) {
        if (losses[k] < lmin) lmin = losses[k];
    }
    double sum = 0.0;
    for (size_t k = 0; k < K; k++) {
        w[k] = exp(-(losses[k] - lmin) / tau);
        sum += w[k];
    }
    for (size_t k = 0; k < K; k++) w[k] /= sum;
}

static void check_problem(const struct hyper *h, const struct meta_problem *p)
{
    EG_ASSERT(p != NULL && p->ops != NULL);
    EG_ASSERT(p->ops->train_loss != NULL && p->ops->val_loss != NULL);
    EG_ASSERT(p->P == h->P && p->H == h->H);
    EG_ASSERT(hyper_method_supports(h->hp.method, p));
}

// ---------------------------------------------------------------------------------------------
// EvoGrad (paper-spec 1.2, closed form 1.3).

static void evograd_step(struct hyper *h, struct meta_problem *p, const float *theta,
                         const float *lambda, const float *eps, float *hg,
                         struct hyper_info *info)
{
    const size_t K = h->hp.candidates, P = h->P, H = h->H;
    const double tau = h->hp.temperature;

    // Candidate losses l_k = l_T(theta + eps_k, lambda) on the same batch, and their d_k.
    // theta_k is built one at a time in one P-buffer.
    double loss_sum = 0.0;
    for (size_t k = 0; k < K; k++) {
        const float *ek = eps + k * P;
        for (size_t i = 0; i < P; i++) h->point[i] = theta[i] + ek[i];
        h->losses[k] = p->ops->train_loss(p, h->point, lambda, NULL, h->d + k * H);
        loss_sum += h->losses[k];
    }
    hyper_softmax_weights(h->losses, K, tau, h->w);

    // ebar = sum_k w_k eps_k (double); theta* = theta + ebar = sum_k w_k theta_k as sum w = 1.
    for (size_t i = 0; i < P; i++) h->ebar[i] = 0.0;
    for (size_t k = 0; k < K; k++) {
        const float *ek = eps + k * P;
        const double wk = h->w[k];
        for (size_t i = 0; i < P; i++) h->ebar[i] += wk * (double)ek[i];
    }
    for (size_t i = 0; i < P; i++) h->point[i] = (float)((double)theta[i] + h->ebar[i]);
    double val = p->ops->val_loss(p, h->point, h->grad);

    // h = -(1/tau) sum_k w_k s_k d_k with s_k = g_V . (eps_k - ebar), formed from the eps
    // directly so no O(|theta|) products cancel (paper-spec 1.3).
    double *acc = h->acc;
    for (size_t j = 0; j < H; j++) acc[j] = 0.0;
    for (size_t k = 0; k < K; k++) {
        const float *ek = eps + k * P;
        double s = 0.0;
        for (size_t i = 0; i < P; i++) s += (double)h->grad[i] * ((double)ek[i] - h->ebar[i]);
        const double c = h->w[k] * s;
        const float *dk = h->d + k * H;
        for (size_t j = 0; j < H; j++) acc[j] += c * (double)dk[j];
    }
    for (size_t j = 0; j < H; j++) hg[j] = (float)(-acc[j] / tau);

    if (info != NULL) {
        double wmax = 0.0;
        for (size_t k = 0; k < K; k++) {
            if (h->w[k] > wmax) wmax = h->w[k];
        }
        info->val_loss = val;
        info->train_loss_mean = loss_sum / (double)K;
        info->weight_max = wmax;
    }
}

// ---------------------------------------------------------------------------------------------
// One-step unrolled look-ahead with a DARTS-style finite-difference mixed derivative.

// The exact one-step look-ahead hypergradient hg (H) = -alpha (d^2 l_T / dlambda dtheta) v, v =
// grad l_V(theta - alpha g), with work vectors point, grad, v (P) and mixed (H); *train and *val
// receive l_T(theta) and l_V(theta'). Each training evaluation starts from the generator state
// *noise (when the problem has one): one draw of the noise, differentiated twice.
static void exact_lookahead(struct meta_problem *p, const float *theta, const float *lambda,
                            double alpha, const struct rng *noise, float *point, float *grad,
                            float *v, float *mixed, float *hg, double *train, double *val)
{
    const size_t P = p->P, H = p->H;
    if (p->rng != NULL) *p->rng = *noise;
    *train = p->ops->train_loss(p, theta, lambda, grad, NULL);
    for (size_t i = 0; i < P; i++) point[i] = (float)((double)theta[i] - alpha * (double)grad[i]);
    *val = p->ops->val_loss(p, point, v);
    if (p->rng != NULL) *p->rng = *noise;
    p->ops->train_loss_tangent(p, theta, lambda, v, NULL, NULL, NULL, mixed);
    for (size_t j = 0; j < H; j++) hg[j] = (float)(-alpha * (double)mixed[j]);
}

static void unrolled_step(struct hyper *h, struct meta_problem *p, const float *theta,
                          const float *lambda, float *hg, struct hyper_info *info)
{
    const size_t P = h->P, H = h->H;
    const double alpha = h->hp.lookahead_lr;
    if (h->hp.method == HYPER_UNROLLED) {
        struct rng saved;
        if (p->rng != NULL) saved = *p->rng;
        double train, val;
        exact_lookahead(p, theta, lambda, alpha, &saved, h->point, h->grad, h->v, h->dlam_pos, hg,
                        &train, &val);
        if (info != NULL) {
            info->val_loss = val;
            info->train_loss_mean = train;
            info->weight_max = NAN;
        }
        return;
    }

    // unrolled_fd: theta' = theta - alpha g,  g = dl_T/dtheta at (theta, lambda); v = grad l_V(theta').
    // The task generator is copied first: the mixed derivative below must be taken under the
    // same noise as g (one draw, differentiated twice, as the second-order reference does).
    struct rng saved;
    if (p->rng != NULL) saved = *p->rng;
    double train = p->ops->train_loss(p, theta, lambda, h->grad, NULL);
    for (size_t i = 0; i < P; i++) {
        h->point[i] = (float)((double)theta[i] - alpha * (double)h->grad[i]);
    }
    double val = p->ops->val_loss(p, h->point, h->v);
    if (info != NULL) {
        info->val_loss = val;
        info->train_loss_mean = train;
        info->weight_max = NAN;
    }

    double vv = 0.0;
    for (size_t i = 0; i < P; i++) vv += (double)h->v[i] * (double)h->v[i];
    const double vnorm = sqrt(vv);
    if (!(vnorm > 0.0)) {
        // No validation signal: the look-ahead hypergradient is exactly 0.
        memset(hg, 0, H * sizeof(float));
        return;
    }
    const double e = UNROLLED_FD_SCALE / vnorm;

    // (d^2 l_T / dlambda dtheta) v ~ (grad_lambda l_T(theta + e v) - grad_lambda l_T(theta - e v))
    // / 2e, both sides under the noise of the look-ahead: the generator is restored before each.
    if (p->rng != NULL) *p->rng = saved;
    for (size_t i = 0; i < P; i++) h->point[i] = (float)((double)theta[i] + e * (double)h->v[i]);
    p->ops->train_loss(p, h->point, lambda, NULL, h->dlam_pos);
    if (p->rng != NULL) *p->rng = saved;
    for (size_t i = 0; i < P; i++) h->point[i] = (float)((double)theta[i] - e * (double)h->v[i]);
    p->ops->train_loss(p, h->point, lambda, NULL, h->dlam_neg);

    for (size_t j = 0; j < H; j++) {
        double mixed = ((double)h->dlam_pos[j] - (double)h->dlam_neg[j]) / (2.0 * e);
        hg[j] = (float)(-alpha * mixed);
    }
}

// ---------------------------------------------------------------------------------------------

void hyper_grad_eps(struct hyper *h, struct meta_problem *p, const float *theta,
                    const float *lambda, const float *eps, float *hg, struct hyper_info *info)
{
    EG_ASSERT(h != NULL && h->hp.method == HYPER_EVOGRAD);
    EG_ASSERT(theta != NULL && lambda != NULL && eps != NULL && hg != NULL);
    check_problem(h, p);
    evograd_step(h, p, theta, lambda, eps, hg, info);
}

// EvoGrad's K perturbations from rng into h->eps.
static void draw_eps(struct hyper *h, struct rng *rng)
{
    const size_t K = h->hp.candidates, P = h->P;
    const float sigma = (float)h->hp.sigma;
    for (size_t k = 0; k < K; k++) {
        if (h->hp.noise == HYPER_NOISE_RADEMACHER) {
            rng_fill_rademacher(rng, h->eps + k * P, P, sigma);
        } else {
            rng_fill_gaussian(rng, h->eps + k * P, P, 0.0f, sigma);
        }
    }
}

static void method_grad(struct hyper *h, struct meta_problem *p, const float *theta,
                        const float *lambda, struct rng *rng, float *hg, struct hyper_info *info)
{
    switch (h->hp.method) {
    case HYPER_EVOGRAD:
        EG_ASSERT(rng != NULL);
        draw_eps(h, rng);
        evograd_step(h, p, theta, lambda, h->eps, hg, info);
        break;
    case HYPER_UNROLLED:
    case HYPER_UNROLLED_FD:
        unrolled_step(h, p, theta, lambda, hg, info);
        break;
    case HYPER_NONE:
    default:
        memset(hg, 0, h->H * sizeof(float));
        if (info != NULL) {
            info->val_loss = p->ops->val_loss(p, theta, NULL);
            info->train_loss_mean = NAN;
            info->weight_max = NAN;
        }
        break;
    }
}

// The stream of the diagnostics' EvoGrad draws (seeded from a copy of the method's rng).
#define DIAG_STREAM 0x64696167u // "diag"

static double dot_h(const float *a, const float *b, size_t H)
{
    double s = 0.0;
    for (size_t j = 0; j < H; j++) s += (double)a[j] * (double)b[j];
    return s;
}

static double cosine_of(double ab, double aa, double bb)
{
    return aa > 0.0 && bb > 0.0 ? ab / (sqrt(aa) * sqrt(bb)) : (double)NAN;
}

// The diagnostics of a step just taken (hg, the method's result) at (theta, lambda): noise is
// the task generator's state at the call, method_rng the method's generator after the call.
static void diag_run(struct hyper *h, struct meta_problem *p, const float *theta,
                     const float *lambda, const struct rng *noise, const struct rng *method_rng,
                     const float *hg)
{
    const double t0 = eg_wall_seconds();
    const size_t H = h->H;
    struct rng after;
    if (p->rng != NULL) after = *p->rng;
    double train, val;
    exact_lookahead(p, theta, lambda, h->hp.lookahead_lr, noise, h->dg_point, h->dg_grad,
                    h->dg_v, h->dg_mixed, h->dg_exact, &train, &val);
    const double mm = dot_h(hg, hg, H), ee = dot_h(h->dg_exact, h->dg_exact, H);
    size_t agree = 0;
    for (size_t j = 0; j < H; j++) {
        const float a = hg[j], b = h->dg_exact[j];
        agree += (a > 0.0f) == (b > 0.0f) && (a < 0.0f) == (b < 0.0f);
    }
    h->dg = (struct hyper_diag){
        .method_norm = sqrt(mm),
        .exact_norm = sqrt(ee),
        .cosine = cosine_of(dot_h(hg, h->dg_exact, H), mm, ee),
        .norm_ratio = ee > 0.0 ? sqrt(mm) / sqrt(ee) : (double)NAN,
        .sign_agree = (double)agree / (double)H,
        .draws_cosine = NAN,
    };
    const size_t R = h->hp.diag_draws;
    if (R > 0) {
        struct rng copy = *method_rng, dr;
        rng_seed_stream(&dr, rng_u64(&copy), DIAG_STREAM);
        for (size_t j = 0; j < H; j++) h->dg_mean[j] = 0.0;
        for (size_t r = 0; r < R; r++) {
            draw_eps(h, &dr);
            if (p->rng != NULL) *p->rng = *noise;
            evograd_step(h, p, theta, lambda, h->eps, h->dg_draw, NULL);
            for (size_t j = 0; j < H; j++) h->dg_mean[j] += (double)h->dg_draw[j];
        }
        double me = 0.0, mq = 0.0;
        for (size_t j = 0; j < H; j++) {
            const double m = h->dg_mean[j] / (double)R;
            me += m * (double)h->dg_exact[j];
            mq += m * m;
        }
        h->dg.draws_cosine = cosine_of(me, mq, ee);
    }
    if (p->rng != NULL) *p->rng = after;
    h->dg.seconds = eg_wall_seconds() - t0;
    h->dg_ready = true;
}

void hyper_grad(struct hyper *h, struct meta_problem *p, const float *theta, const float *lambda,
                struct rng *rng, float *hg, struct hyper_info *info)
{
    EG_ASSERT(h != NULL);
    EG_ASSERT(theta != NULL && lambda != NULL && hg != NULL);
    check_problem(h, p);
    const bool diag = h->dg_requested;
    struct rng noise;
    if (diag && p->rng != NULL) noise = *p->rng;
    method_grad(h, p, theta, lambda, rng, hg, info);
    if (diag) {
        EG_ASSERT(p->ops->train_loss_tangent != NULL);
        h->dg_requested = false;
        struct rng none = {0};
        diag_run(h, p, theta, lambda, &noise, rng != NULL ? rng : &none, hg);
    }
}

void hyper_diag_request(struct hyper *h)
{
    EG_ASSERT(h != NULL && h->hp.diagnostics);
    h->dg_requested = true;
}

bool hyper_diag_take(struct hyper *h, struct hyper_diag *d)
{
    EG_ASSERT(h != NULL && d != NULL);
    if (!h->dg_ready) return false;
    *d = h->dg;
    h->dg_ready = false;
    return true;
}
