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
};

static const char *const method_names[HYPER__COUNT] = {
    [HYPER_NONE] = "none",
    [HYPER_EVOGRAD] = "evograd",
    [HYPER_UNROLLED] = "unrolled",
    [HYPER_UNROLLED_FD] = "unrolled_fd",
};

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

static void unrolled_step(struct hyper *h, struct meta_problem *p, const float *theta,
                          const float *lambda, float *hg, struct hyper_info *info)
{
    const size_t P = h->P, H = h->H;
    const double alpha = h->hp.lookahead_lr;
    const bool exact = h->hp.method == HYPER_UNROLLED;

    // theta' = theta - alpha g,  g = dl_T/dtheta at (theta, lambda); v = grad l_V(theta').
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

    if (exact) {
        // (d^2 l_T / dlambda dtheta) v in one forward-over-reverse pass at theta.
        if (p->rng != NULL) *p->rng = saved;
        p->ops->train_loss_tangent(p, theta, lambda, h->v, NULL, NULL, NULL, h->dlam_pos);
        for (size_t j = 0; j < H; j++) hg[j] = (float)(-alpha * (double)h->dlam_pos[j]);
        return;
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

void hyper_grad(struct hyper *h, struct meta_problem *p, const float *theta, const float *lambda,
                struct rng *rng, float *hg, struct hyper_info *info)
{
    EG_ASSERT(h != NULL);
    EG_ASSERT(theta != NULL && lambda != NULL && hg != NULL);
    check_problem(h, p);
    switch (h->hp.method) {
    case HYPER_EVOGRAD: {
        EG_ASSERT(rng != NULL);
        const size_t K = h->hp.candidates, P = h->P;
        const float sigma = (float)h->hp.sigma;
        for (size_t k = 0; k < K; k++) {
            if (h->hp.noise == HYPER_NOISE_RADEMACHER) {
                rng_fill_rademacher(rng, h->eps + k * P, P, sigma);
            } else {
                rng_fill_gaussian(rng, h->eps + k * P, P, 0.0f, sigma);
            }
        }
        evograd_step(h, p, theta, lambda, h->eps, hg, info);
        break;
    }
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
