/* test_hyper.c - the hypergradient methods (lib/meta/hyper.h) and the per-sample-weight network
 * meta-problem (lib/meta/weighted.h).
 *
 * EvoGrad is checked against central differences of its own objective lambda -> l_V(theta*(lambda))
 * with the perturbations held fixed, on the 1-D toy and on a small network; the unrolled method
 * against its closed form on the toy and a double-precision mixed derivative on a network; both
 * against PyTorch on a tiny Meta-Weight-Net problem (data/evograd_mwn_tiny.txt). Two statistical
 * tests check the toy's variance in K and EvoGrad's agreement in direction with the one-step
 * look-ahead of paper-spec 5.1. Measured numbers are logged with cr_log_info. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "helpers.h"
#include "meta/hyper.h"
#include "meta/weighted.h"
#include "nn/backbones.h"
#include "nn/loss.h"
#include "nn/net.h"

// ---------------------------------------------------------------------------------------------
// The 1-D toy (paper-spec 3.1): l_T = (x - 1)^2 + lambda x^2, l_V = (x - 0.5)^2, P = H = 1.

static double toy_train(struct meta_problem *p, const float *theta, const float *lambda,
                        float *dtheta, float *dlambda)
{
    (void)p;
    double x = (double)theta[0], l = (double)lambda[0];
    if (dtheta != NULL) dtheta[0] = (float)(2.0 * (x - 1.0) + 2.0 * l * x);
    if (dlambda != NULL) dlambda[0] = (float)(x * x);
    return (x - 1.0) * (x - 1.0) + l * x * x;
}

static double toy_val(struct meta_problem *p, const float *theta, float *dtheta)
{
    (void)p;
    double x = (double)theta[0];
    if (dtheta != NULL) dtheta[0] = (float)(2.0 * (x - 0.5));
    return (x - 0.5) * (x - 0.5);
}

// hvp = (2 + 2 lambda) u, mixed = 2 x u: the closed forms.
static double toy_train_tangent(struct meta_problem *p, const float *theta, const float *lambda,
                                const float *u, float *dtheta, float *dlambda, float *hvp,
                                float *mixed)
{
    double x = (double)theta[0], l = (double)lambda[0];
    if (hvp != NULL) hvp[0] = (float)((2.0 + 2.0 * l) * (double)u[0]);
    if (mixed != NULL) mixed[0] = (float)(2.0 * x * (double)u[0]);
    return toy_train(p, theta, lambda, dtheta, dlambda);
}

static const struct meta_problem_ops toy_ops = {
    .train_loss = toy_train, .val_loss = toy_val, .train_loss_tangent = toy_train_tangent};

static struct meta_problem toy_problem(void)
{
    return (struct meta_problem){.ops = &toy_ops, .P = 1, .H = 1, .rng = NULL, .ctx = NULL};
}

// Independent double softmax(-l / tau) for the reference objectives.
static void ref_softmax(const double *l, size_t K, double tau, double *w)
{
    double m = l[0], s = 0.0;
    for (size_t k = 1; k < K; k++) m = fmin(m, l[k]);
    for (size_t k = 0; k < K; k++) s += (w[k] = exp(-(l[k] - m) / tau));
    for (size_t k = 0; k < K; k++) w[k] /= s;
}

// ---------------------------------------------------------------------------------------------
// 1. softmax weights

Test(hyper_softmax, weights_are_finite_and_sum_to_one_for_widely_spread_losses)
{
    const double tau = 0.05;
    const double losses[] = {3.0 + 1e4 * tau, 3.0, 3.0 + 2e4 * tau, 3.0 + tau};
    double w[4];
    hyper_softmax_weights(losses, 4, tau, w);
    double sum = 0.0;
    for (size_t k = 0; k < 4; k++) {
        cr_assert(isfinite(w[k]) && w[k] >= 0.0, "w[%zu] = %g", k, w[k]);
        sum += w[k];
    }
    cr_assert(epsilon_eq(dbl, sum, 1.0, 1e-12));
    // the two close losses share the mass as softmax([0, -1]); the far ones get exp(-1e4) = 0
    cr_assert(epsilon_eq(dbl, w[1], 1.0 / (1.0 + exp(-1.0)), 1e-12));
    cr_assert(epsilon_eq(dbl, w[3], exp(-1.0) / (1.0 + exp(-1.0)), 1e-12));
    cr_assert(w[0] == 0.0 && w[2] == 0.0);

    // huge but close losses: no overflow, the same weights
    const double big[] = {1e6 + tau, 1e6};
    hyper_softmax_weights(big, 2, tau, w);
    cr_assert(epsilon_eq(dbl, w[1], 1.0 / (1.0 + exp(-1.0)), 1e-9));
}

Test(hyper_softmax, lower_loss_gets_larger_weight)
{
    const double losses[] = {0.3, 0.1, 0.2, 0.25};
    double w[4];
    hyper_softmax_weights(losses, 4, 0.1, w);
    cr_assert(w[1] > w[2] && w[2] > w[3] && w[3] > w[0], "w = %g %g %g %g", w[0], w[1], w[2],
              w[3]);
}

Test(hyper_softmax, single_candidate_gets_weight_one)
{
    const double losses[] = {123.0};
    double w[1] = {0.0};
    hyper_softmax_weights(losses, 1, 0.5, w);
    cr_assert(w[0] == 1.0, "w = %.17g", w[0]);
}

Test(hyper, method_names_round_trip)
{
    for (int m = 0; m < HYPER__COUNT; m++) {
        enum hyper_method got;
        cr_assert(hyper_method_find(hyper_method_name((enum hyper_method)m), &got));
        cr_assert(eq(int, (int)got, m));
    }
    enum hyper_method got;
    cr_assert(hyper_method_find("darts", &got) == false);
}

Test(hyper, none_returns_zero_and_the_validation_loss_at_theta)
{
    struct meta_problem p = toy_problem();
    struct hyper *h = hyper_new(&(struct hyper_params){.method = HYPER_NONE}, 1, 1);
    float theta = 1.5f, lambda = 0.3f, hg = 7.0f;
    struct hyper_info info;
    hyper_grad(h, &p, &theta, &lambda, NULL, &hg, &info);
    cr_assert(hg == 0.0f);
    cr_assert(epsilon_eq(dbl, info.val_loss, 1.0, 1e-12));
    hyper_free(h);
}

// ---------------------------------------------------------------------------------------------
// 2a. EvoGrad = central difference of its own objective, 1-D toy, in double.

// J(lambda) = l_V(theta*), theta* = sum_k w_k theta_k, w = softmax(-l_k(lambda) / tau), with
// theta_k = fl(theta + eps_k) exactly as the method forms them.
static double toy_objective(float theta, const float *eps, size_t K, double tau, double lambda)
{
    double l[8], w[8], ts = 0.0;
    for (size_t k = 0; k < K; k++) {
        double t = (double)(theta + eps[k]);
        l[k] = (t - 1.0) * (t - 1.0) + lambda * t * t;
    }
    ref_softmax(l, K, tau, w);
    for (size_t k = 0; k < K; k++) ts += w[k] * (double)(theta + eps[k]);
    return (ts - 0.5) * (ts - 0.5);
}

static void check_toy_evograd_fd(size_t K)
{
    struct meta_problem p = toy_problem();
    const double sigma = 0.5, tau = 0.5;
    struct hyper *h = hyper_new(&(struct hyper_params){.method = HYPER_EVOGRAD, .candidates = K,
                                                       .sigma = sigma, .temperature = tau,
                                                       .noise = HYPER_NOISE_GAUSSIAN},
                                1, 1);
    struct rng rng;
    rng_seed(&rng, 11 + K);
    double worst = 0.0;
    for (size_t trial = 0; trial < 40; trial++) {
        float theta = (float)rng_gaussian(&rng), lambda = (float)(0.1 + 1.9 * rng_uniform(&rng));
        float eps[8];
        rng_fill_gaussian(&rng, eps, K, 0.0f, (float)sigma);
        float hg;
        hyper_grad_eps(h, &p, &theta, &lambda, eps, &hg, NULL);
        const double step = 1e-4; // J is smooth: truncation ~ step^2 J''' / 6 ~ 1e-9 relative
        double fd = (toy_objective(theta, eps, K, tau, (double)lambda + step) -
                     toy_objective(theta, eps, K, tau, (double)lambda - step)) /
                    (2.0 * step);
        // relative to max(|fd|, 1e-3): a few trials have a near-zero hypergradient
        double err = fabs((double)hg - fd) / fmax(fabs(fd), 1e-3);
        if (err > worst) worst = err;
        cr_assert(err < 1e-5, "K=%zu trial %zu: evograd %.9g, finite difference %.9g", K, trial,
                  (double)hg, fd);
    }
    cr_log_info("toy evograd vs FD, K=%zu: worst relative error %.3g", K, worst);
    hyper_free(h);
}

Test(hyper_evograd, equals_finite_difference_of_its_objective_on_toy_k2)
{
    check_toy_evograd_fd(2);
}

Test(hyper_evograd, equals_finite_difference_of_its_objective_on_toy_k5)
{
    check_toy_evograd_fd(5);
}

// ---------------------------------------------------------------------------------------------
// Network fixtures: a small net, a training batch of 6 and a validation batch of 5.

#define NET_N 6
#define NET_M 5
#define NET_CLASSES 3

struct netfix {
    struct net *net;
    struct weighted_problem *wp;
    float *x, *xv;
    int32_t y[NET_N], yv[NET_M];
    float *theta;      // (P) a copy of the net's initial parameters
    float lambda[NET_N];
};

static void netfix_init(struct netfix *f, bool conv, unsigned long seed)
{
    struct rng rng;
    rng_seed(&rng, seed);
    struct backbone_spec spec;
    struct shape in;
    if (conv) {
        // conv4 with 2 channels: conv + batch norm (batch statistics) + ReLU + max-pool blocks
        spec = backbone_defaults(BACKBONE_CONV4);
        spec.channels = 2;
        in = (struct shape){1, 16, 16};
    } else {
        spec = backbone_defaults(BACKBONE_MLP);
        spec.hidden[0] = 7;
        spec.nhidden = 1;
        in = (struct shape){1, 2, 3};
    }
    cr_assert(backbone_check(&spec, in, NET_CLASSES) == NULL);
    f->net = backbone_new(&spec, in, NET_CLASSES, &rng);
    size_t d = shape_numel(in);
    f->x = eg_xmalloc_floats(NET_N * d);
    f->xv = eg_xmalloc_floats(NET_M * d);
    rng_fill_gaussian(&rng, f->x, NET_N * d, 0.0f, 1.0f);
    rng_fill_gaussian(&rng, f->xv, NET_M * d, 0.0f, 1.0f);
    for (size_t i = 0; i < NET_N; i++) f->y[i] = (int32_t)rng_below(&rng, NET_CLASSES);
    for (size_t i = 0; i < NET_M; i++) f->yv[i] = (int32_t)rng_below(&rng, NET_CLASSES);
    for (size_t i = 0; i < NET_N; i++) f->lambda[i] = (float)(0.5 + rng_uniform(&rng));
    f->theta = eg_xmalloc_floats(f->net->nparams);
    memcpy(f->theta, f->net->params, f->net->nparams * sizeof(float));
    f->wp = weighted_problem_new(f->net, NET_N, LAYER_MODE_TRAIN_FROZEN, LAYER_MODE_TRAIN_FROZEN);
    weighted_problem_set_batches(f->wp, f->x, f->y, NET_N, f->xv, f->yv, NET_M);
}

static void netfix_deinit(struct netfix *f)
{
    weighted_problem_free(f->wp);
    net_free(f->net);
    free(f->x);
    free(f->xv);
    free(f->theta);
}

// ---------------------------------------------------------------------------------------------
// The weighted problem itself.

Test(weighted_problem, losses_and_gradients_match_their_definitions)
{
    struct netfix f;
    netfix_init(&f, false, 3);
    struct meta_problem *p = &f.wp->mp;
    size_t P = p->P;
    cr_assert(eq(sz, p->H, NET_N));
    float *dth = eg_xmalloc_floats(P), dlam[NET_N];
    double L = p->ops->train_loss(p, f.theta, f.lambda, dth, dlam);

    // per-sample losses straight from the net
    const float *logits = net_forward(f.net, f.x, NET_N, LAYER_MODE_TRAIN_FROZEN);
    float c[NET_N];
    xent_forward(logits, f.y, NET_N, NET_CLASSES, c);
    double want = 0.0;
    for (size_t i = 0; i < NET_N; i++) {
        want += (double)f.lambda[i] * (double)c[i] / NET_N;
        cr_assert(epsilon_eq(flt, dlam[i], c[i] / NET_N, 1e-7f), "dlambda[%zu]", i);
    }
    cr_assert(epsilon_eq(dbl, L, want, 1e-9));

    // dl_T/dtheta against a central difference on a few coordinates (double sums, float net)
    float *t = eg_xmalloc_floats(P);
    memcpy(t, f.theta, P * sizeof(float));
    for (size_t j = 0; j < P; j += 7) {
        const float hstep = 1e-2f;
        t[j] = f.theta[j] + hstep;
        double lp = p->ops->train_loss(p, t, f.lambda, NULL, NULL);
        t[j] = f.theta[j] - hstep;
        double lm = p->ops->train_loss(p, t, f.lambda, NULL, NULL);
        t[j] = f.theta[j];
        double fd = (lp - lm) / (2.0 * (double)hstep);
        cr_assert(fabs(fd - (double)dth[j]) < 2e-3, "theta[%zu]: fd %g, analytic %g", j, fd,
                  (double)dth[j]);
    }
    free(t);
    free(dth);
    netfix_deinit(&f);
}

Test(weighted_problem, leaves_net_params_intact_and_accepts_theta_aliasing_them)
{
    struct netfix f;
    netfix_init(&f, true, 4);
    struct meta_problem *p = &f.wp->mp;
    size_t P = p->P;
    float *other = eg_xmalloc_floats(P), *g1 = eg_xmalloc_floats(P), *g2 = eg_xmalloc_floats(P);
    for (size_t i = 0; i < P; i++) other[i] = f.theta[i] * 0.9f + 0.01f;

    // theta a separate buffer: the net's own parameters come back unchanged
    double l1 = p->ops->train_loss(p, other, f.lambda, g1, NULL);
    double v1 = p->ops->val_loss(p, other, NULL);
    cr_assert(memcmp(f.net->params, f.theta, P * sizeof(float)) == 0);
    // theta = net->params (aliased): the same values as for a copy of them
    memcpy(f.net->params, other, P * sizeof(float));
    double l2 = p->ops->train_loss(p, f.net->params, f.lambda, g2, NULL);
    double v2 = p->ops->val_loss(p, f.net->params, NULL);
    cr_assert(l1 == l2 && v1 == v2, "%.17g %.17g / %.17g %.17g", l1, l2, v1, v2);
    cr_assert(memcmp(g1, g2, P * sizeof(float)) == 0);
    cr_assert(memcmp(f.net->params, other, P * sizeof(float)) == 0);
    // dtheta may be net->grads
    double l3 = p->ops->train_loss(p, other, f.lambda, f.net->grads, NULL);
    cr_assert(l3 == l1 && memcmp(g1, f.net->grads, P * sizeof(float)) == 0);
    free(other);
    free(g1);
    free(g2);
    netfix_deinit(&f);
}

// ---------------------------------------------------------------------------------------------
// 2b. EvoGrad = central difference of its objective on the network problem.

// J(lambda) through the same float network: l_k = l_T(theta_k, lambda), w in double,
// theta* = fl(theta + sum_k w_k eps_k), J = l_V(theta*).
static double net_objective(struct meta_problem *p, const float *theta, const float *lambda,
                            const float *eps, size_t K, double tau)
{
    size_t P = p->P;
    float *t = eg_xmalloc_floats(P);
    double l[8], w[8];
    for (size_t k = 0; k < K; k++) {
        for (size_t i = 0; i < P; i++) t[i] = theta[i] + eps[k * P + i];
        l[k] = p->ops->train_loss(p, t, lambda, NULL, NULL);
    }
    ref_softmax(l, K, tau, w);
    for (size_t i = 0; i < P; i++) {
        double e = 0.0;
        for (size_t k = 0; k < K; k++) e += w[k] * (double)eps[k * P + i];
        t[i] = (float)((double)theta[i] + e);
    }
    double J = p->ops->val_loss(p, t, NULL);
    free(t);
    return J;
}

static void check_net_evograd_fd(bool conv, size_t K)
{
    struct netfix f;
    netfix_init(&f, conv, 21 + K);
    struct meta_problem *p = &f.wp->mp;
    size_t P = p->P;
    const double sigma = 1e-2, tau = 2e-2;
    struct hyper *h = hyper_new(&(struct hyper_params){.method = HYPER_EVOGRAD, .candidates = K,
                                                       .sigma = sigma, .temperature = tau,
                                                       .noise = HYPER_NOISE_RADEMACHER},
                                P, NET_N);
    struct rng rng;
    rng_seed(&rng, 77 + K);
    float *eps = eg_xmalloc_floats(K * P);
    rng_fill_rademacher(&rng, eps, K * P, (float)sigma);
    float hg[NET_N];
    struct hyper_info info;
    hyper_grad_eps(h, p, f.theta, f.lambda, eps, hg, &info);
    cr_assert(memcmp(f.net->params, f.theta, P * sizeof(float)) == 0);

    double fd[NET_N], scale = 0.0;
    const float step = 1e-1f;
    for (size_t j = 0; j < NET_N; j++) {
        float lam[NET_N];
        memcpy(lam, f.lambda, sizeof lam);
        lam[j] = f.lambda[j] + step;
        double hp = (double)lam[j] - (double)f.lambda[j];
        double Jp = net_objective(p, f.theta, lam, eps, K, tau);
        lam[j] = f.lambda[j] - step;
        double hm = (double)f.lambda[j] - (double)lam[j];
        double Jm = net_objective(p, f.theta, lam, eps, K, tau);
        fd[j] = (Jp - Jm) / (hp + hm);
        scale = fmax(scale, fabs(fd[j]));
    }
    double worst = 0.0;
    for (size_t j = 0; j < NET_N; j++) worst = fmax(worst, fabs((double)hg[j] - fd[j]));
    cr_log_info("%s evograd vs FD, K=%zu: max|h| %.3g, worst |diff| %.3g (%.3g relative), "
                "largest weight %.3f",
                conv ? "conv4" : "mlp", K, scale, worst, worst / scale, info.weight_max);
    // The softmax is not saturated, so the check checks something.
    cr_assert(info.weight_max < 0.95 && scale > 0.0, "weight_max %g", info.weight_max);
    // J is evaluated in float32: its rounding (~1e-7 of J ~ 1) over the step 2 * 0.1 is ~5e-7,
    // and theta* is rounded to float per weight; with |h| ~ 1e-3 that is ~1e-3 of max|h|
    // (measured: 1.5e-4 on the MLP, up to 1.7e-3 on the conv net with batch norm). The large
    // step costs nothing: l_k is linear in lambda and J varies on the scale tau / |d_k - d_j|
    // >> 0.1, so the truncation step^2 J''' / 6 is below the rounding. Tolerance 5e-3 of max|h|.
    assert_close("evograd vs finite difference", hg, fd, NET_N, 5e-3 * scale, 0.0);
    free(eps);
    hyper_free(h);
    netfix_deinit(&f);
}

Test(hyper_evograd, equals_finite_difference_of_its_objective_on_mlp_k2)
{
    check_net_evograd_fd(false, 2);
}

Test(hyper_evograd, equals_finite_difference_of_its_objective_on_mlp_k5)
{
    check_net_evograd_fd(false, 5);
}

Test(hyper_evograd, equals_finite_difference_of_its_objective_on_batchnorm_conv_k2)
{
    check_net_evograd_fd(true, 2);
}

Test(hyper_evograd, equals_finite_difference_of_its_objective_on_batchnorm_conv_k5)
{
    check_net_evograd_fd(true, 5);
}

// ---------------------------------------------------------------------------------------------
// 3. Unrolled

static void check_toy_closed_form(enum hyper_method method)
{
    struct meta_problem p = toy_problem();
    const double alpha = 0.1;
    struct hyper *h =
        hyper_new(&(struct hyper_params){.method = method, .lookahead_lr = alpha}, 1, 1);
    double worst = 0.0;
    for (int a = 0; a < 9; a++) {
        for (int b = 0; b < 6; b++) {
            float x = (float)(-2.0 + 0.45 * a), lambda = (float)(0.1 + 0.37 * b);
            if (fabs((double)x - 0.5) < 1e-3) continue;
            float hg;
            struct hyper_info info;
            hyper_grad(h, &p, &x, &lambda, NULL, &hg, &info);
            double xd = x, tp = xd - alpha * (2.0 * (xd - 1.0) + 2.0 * (double)lambda * xd);
            double want = -alpha * 2.0 * xd * 2.0 * (tp - 0.5);
            // relative to max(|want|, 1e-3): at x ~ 0 or theta' ~ 0.5 the value itself is ~0
            double err = fabs((double)hg - want) / fmax(fabs(want), 1e-3);
            worst = fmax(worst, err);
            cr_assert(err < 2e-5, "x %g lambda %g: unrolled %.9g, closed form %.9g", (double)x,
                      (double)lambda, (double)hg, want);
            cr_assert(epsilon_eq(dbl, info.val_loss, (tp - 0.5) * (tp - 0.5), 1e-6));
        }
    }
    cr_log_info("toy %s vs closed form: worst relative error %.3g", hyper_method_name(method),
                worst);
    hyper_free(h);
}

Test(hyper_unrolled, exact_matches_closed_form_on_toy)
{
    check_toy_closed_form(HYPER_UNROLLED);
}

Test(hyper_unrolled, fd_matches_closed_form_on_toy)
{
    check_toy_closed_form(HYPER_UNROLLED_FD);
}

Test(hyper_unrolled, zero_validation_gradient_gives_zero)
{
    struct meta_problem p = toy_problem();
    struct hyper *h =
        hyper_new(&(struct hyper_params){.method = HYPER_UNROLLED_FD, .lookahead_lr = 0.1}, 1, 1);
    // lambda = 0: theta' = x - 0.1 * 2 (x - 1) = 0.8 x + 0.2 = 0.5 at x = 0.375 (0.5 after
    // rounding to float), so v = 2 (theta' - 0.5) = 0.
    float x = 0.375f, lambda = 0.0f, hg = 1.0f;
    hyper_grad(h, &p, &x, &lambda, NULL, &hg, NULL);
    cr_assert(hg == 0.0f, "hg %g", (double)hg);
    hyper_free(h);
}

// Reference: h_i = -alpha / n * grad c_i(theta) . v, v = grad l_V(theta'), with grad c_i from the
// net's backward (one-hot dlosses) and the dot product in double.
static void check_net_unrolled(bool conv, enum hyper_method method)
{
    struct netfix f;
    netfix_init(&f, conv, 31);
    struct meta_problem *p = &f.wp->mp;
    size_t P = p->P;
    const double alpha = 0.1;
    struct hyper *h = hyper_new(
        &(struct hyper_params){.method = method, .lookahead_lr = alpha}, P, NET_N);
    float hg[NET_N];
    hyper_grad(h, p, f.theta, f.lambda, NULL, hg, NULL);
    const bool exact = method == HYPER_UNROLLED;

    float *g = eg_xmalloc_floats(P), *tp = eg_xmalloc_floats(P), *v = eg_xmalloc_floats(P);
    p->ops->train_loss(p, f.theta, f.lambda, g, NULL);
    for (size_t i = 0; i < P; i++) tp[i] = (float)((double)f.theta[i] - alpha * (double)g[i]);
    p->ops->val_loss(p, tp, v);

    double want[NET_N], scale = 0.0;
    float *dlogits = eg_xmalloc_floats(NET_N * NET_CLASSES);
    for (size_t i = 0; i < NET_N; i++) {
        float onehot[NET_N] = {0};
        onehot[i] = 1.0f;
        const float *logits = net_forward(f.net, f.x, NET_N, LAYER_MODE_TRAIN_FROZEN);
        xent_backward(logits, f.y, onehot, NET_N, NET_CLASSES, dlogits);
        net_zero_grad(f.net);
        net_backward(f.net, dlogits, NULL);
        double dot = 0.0;
        for (size_t j = 0; j < P; j++) dot += (double)f.net->grads[j] * (double)v[j];
        want[i] = -alpha / NET_N * dot;
        scale = fmax(scale, fabs(want[i]));
    }
    double worst = 0.0;
    for (size_t i = 0; i < NET_N; i++) worst = fmax(worst, fabs((double)hg[i] - want[i]));
    cr_log_info("%s %s vs double reference: max|h| %.3g, worst relative %.3g",
                conv ? "conv4" : "mlp", hyper_method_name(method), scale, worst / scale);
    // unrolled (exact, forward-over-reverse in float32): float rounding only, on both nets; the
    // issue's float32 target is 1e-4 of the largest component.
    // unrolled_fd, MLP: the method's central difference moves theta by 0.01 in norm; float rounding of c_i / n
    // (~1e-8) over 2e gives ~1e-5 of max|h| (measured 7e-6) and the net is smooth at that scale,
    // so 1e-3 holds. Conv4 with batch norm over a 2x2 map: a 0.01 step crosses ReLU / max-pool
    // kinks, and the DARTS difference itself is off by up to ~15% of max|h| (it converges to the
    // reference when the scale is cut to 1e-3: checked by hand); that bound checks only that the
    // method computes the right quantity, not the precision of UNROLLED_FD_SCALE.
    const double tol = exact ? 1e-4 : conv ? 0.3 : 1e-3;
    assert_close("unrolled vs reference", hg, want, NET_N, tol * scale, 0.0);
    free(dlogits);
    free(g);
    free(tp);
    free(v);
    hyper_free(h);
    netfix_deinit(&f);
}

Test(hyper_unrolled, exact_matches_double_mixed_derivative_on_mlp)
{
    check_net_unrolled(false, HYPER_UNROLLED);
}

Test(hyper_unrolled, exact_matches_double_mixed_derivative_on_batchnorm_conv)
{
    check_net_unrolled(true, HYPER_UNROLLED);
}

Test(hyper_unrolled, fd_matches_double_mixed_derivative_on_mlp)
{
    check_net_unrolled(false, HYPER_UNROLLED_FD);
}

Test(hyper_unrolled, fd_matches_double_mixed_derivative_on_batchnorm_conv)
{
    check_net_unrolled(true, HYPER_UNROLLED_FD);
}

// ---------------------------------------------------------------------------------------------
// 4. The toy's statistics (paper-spec 3.1): Gaussian noise sigma 1, tau 0.5, x ~ N(0, 1) per
// trial. The exact (lambda - 1) / (lambda + 1)^3 is the hypergradient at the inner optimum
// x*(lambda) = 1 / (1 + lambda); EvoGrad is evaluated at random x, so its mean is not that value.

Test(hyper_toy, estimate_spread_falls_with_k_and_mean_sign_follows_exact, .timeout = 120)
{
    struct meta_problem p = toy_problem();
    const size_t Ks[] = {2, 10, 100};
    const size_t trials = 2000;
    double grid[16];
    for (size_t i = 0; i < 8; i++) {
        grid[i] = 0.1 + 0.1 * (double)i;      // 0.1 .. 0.8
        grid[8 + i] = 1.3 + 0.1 * (double)i;  // 1.3 .. 2.0
    }
    double spread[3];
    size_t agree[3];
    for (size_t ki = 0; ki < 3; ki++) {
        struct hyper *h = hyper_new(&(struct hyper_params){.method = HYPER_EVOGRAD,
                                                           .candidates = Ks[ki], .sigma = 1.0,
                                                           .temperature = 0.5,
                                                           .noise = HYPER_NOISE_GAUSSIAN},
                                    1, 1);
        struct rng rng;
        rng_seed(&rng, 1000 + ki);
        double std_sum = 0.0;
        agree[ki] = 0;
        for (size_t g = 0; g < 16; g++) {
            float lambda = (float)grid[g];
            double s1 = 0.0, s2 = 0.0;
            for (size_t t = 0; t < trials; t++) {
                float x = (float)rng_gaussian(&rng), hg;
                hyper_grad(h, &p, &x, &lambda, &rng, &hg, NULL);
                s1 += (double)hg;
                s2 += (double)hg * (double)hg;
            }
            double mean = s1 / (double)trials;
            double sd = sqrt(fmax(s2 / (double)trials - mean * mean, 0.0));
            double exact = (grid[g] - 1.0) / pow(grid[g] + 1.0, 3.0);
            if ((mean > 0.0) == (exact > 0.0)) agree[ki]++;
            std_sum += sd;
        }
        spread[ki] = std_sum / 16.0;
        cr_log_info("toy K=%zu: mean std across trials %.4f, mean sign = exact sign at %zu of 16 "
                    "lambdas",
                    Ks[ki], spread[ki], agree[ki]);
        hyper_free(h);
    }
    // Measured: std 0.460 / 0.140 / 0.084 for K = 2 / 10 / 100; sign agreement 14 / 16 / 16
    // (std is averaged over the 16 lambdas). The seeds
    // are fixed; the bound 12 of 16 still fails for a sign error, which would give ~2 of 16.
    cr_assert(spread[0] > spread[1] && spread[1] > spread[2], "std %g %g %g", spread[0],
              spread[1], spread[2]);
    for (size_t ki = 0; ki < 3; ki++) {
        cr_assert(agree[ki] >= 12, "K=%zu: sign agrees at %zu of 16", Ks[ki], agree[ki]);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. EvoGrad on average points like the one-step look-ahead with alpha = (K - 1) sigma^2 /
// (K tau) (paper-spec 5.1).

// Measured 0.9989 (K = 2, 2000 draws) and 0.9996 (K = 5, 1000 draws) at sigma |g| / tau = 0.09,
// where the linearisation of 5.1 holds; the bound leaves room for Monte Carlo error and other
// seeds while still failing for a wrong sign, a wrong s_k or a wrong weight derivative.
#define COSINE_MIN 0.9

static void check_direction(size_t K, size_t draws)
{
    struct netfix f;
    netfix_init(&f, false, 41);
    struct meta_problem *p = &f.wp->mp;
    size_t P = p->P;
    const double sigma = 1e-2, tau = 5e-2;
    struct hyper *he = hyper_new(&(struct hyper_params){.method = HYPER_EVOGRAD, .candidates = K,
                                                        .sigma = sigma, .temperature = tau,
                                                        .noise = HYPER_NOISE_RADEMACHER},
                                 P, NET_N);
    const double alpha = (double)(K - 1) * sigma * sigma / ((double)K * tau);
    struct hyper *hu = hyper_new(
        &(struct hyper_params){.method = HYPER_UNROLLED, .lookahead_lr = alpha}, P, NET_N);
    float *g = eg_xmalloc_floats(P);
    p->ops->train_loss(p, f.theta, f.lambda, g, NULL);
    double gn = 0.0;
    for (size_t i = 0; i < P; i++) gn += (double)g[i] * (double)g[i];
    gn = sqrt(gn);

    float hu_g[NET_N], he_g[NET_N];
    hyper_grad(hu, p, f.theta, f.lambda, NULL, hu_g, NULL);
    double mean[NET_N] = {0};
    struct rng rng;
    rng_seed(&rng, 5 + K);
    for (size_t t = 0; t < draws; t++) {
        hyper_grad(he, p, f.theta, f.lambda, &rng, he_g, NULL);
        for (size_t j = 0; j < NET_N; j++) mean[j] += (double)he_g[j] / (double)draws;
    }
    double dot = 0.0, nm = 0.0, nu = 0.0;
    for (size_t j = 0; j < NET_N; j++) {
        dot += mean[j] * (double)hu_g[j];
        nm += mean[j] * mean[j];
        nu += (double)hu_g[j] * (double)hu_g[j];
    }
    double cosine = dot / sqrt(nm * nu);
    cr_log_info("direction K=%zu (sigma |g| / tau = %.3f, %zu draws): cosine %.4f, "
                "|mean evograd| / |unrolled| = %.3f",
                K, sigma * gn / tau, draws, cosine, sqrt(nm / nu));
    cr_assert(cosine > COSINE_MIN, "K=%zu: cosine %g", K, cosine);
    free(g);
    hyper_free(he);
    hyper_free(hu);
    netfix_deinit(&f);
}


Test(hyper_evograd, mean_points_like_one_step_lookahead_k2)
{
    check_direction(2, 2000);
}

Test(hyper_evograd, mean_points_like_one_step_lookahead_k5)
{
    check_direction(5, 1000);
}

// ---------------------------------------------------------------------------------------------
// 6. PyTorch reference: a tiny Meta-Weight-Net problem (data/evograd_mwn_tiny.txt). theta is a
// linear 4 -> 3 model [W (3x4), b (3)], lambda a VNet 1-5-1 (ReLU, sigmoid) [w1 (5), b1 (5),
// w2 (5), b2 (1)] giving sample weights v_i = VNet(c_i) from the detached per-sample CE c_i;
// l_T = sum_i c_i v_i / sum_j v_j. Computed in double from the float theta and lambda.

#define MWN_N 6
#define MWN_M 3
#define MWN_P 15
#define MWN_H 16

struct mwn {
    double X[MWN_N * 4], Xv[MWN_M * 4];
    int Y[MWN_N], Yv[MWN_M];
    // When set, the VNet input is c_frozen (the CE at the base theta) instead of c_i(theta):
    // the second-order baseline's l_f, where v does not depend on theta at all (paper-spec 2.1).
    bool freeze;
    double c_frozen[MWN_N];
};

// CE of one sample under theta; p: (3) written with softmax(logits).
static double mwn_ce(const float *theta, const double *x, int y, double *prob)
{
    double z[3], zmax = -INFINITY, s = 0.0;
    for (size_t o = 0; o < 3; o++) {
        z[o] = (double)theta[12 + o];
        for (size_t f = 0; f < 4; f++) z[o] += (double)theta[4 * o + f] * x[f];
        zmax = fmax(zmax, z[o]);
    }
    for (size_t o = 0; o < 3; o++) s += exp(z[o] - zmax);
    for (size_t o = 0; o < 3; o++) prob[o] = exp(z[o] - zmax) / s;
    return zmax + log(s) - z[y];
}

static double mwn_train(struct meta_problem *p, const float *theta, const float *lambda,
                        float *dtheta, float *dlambda)
{
    struct mwn *m = p->ctx;
    const float *w1 = lambda, *b1 = lambda + 5, *w2 = lambda + 10, *b2 = lambda + 15;
    double c[MWN_N], prob[MWN_N][3], v[MWN_N], a[MWN_N][5], S = 0.0, L = 0.0;
    for (size_t i = 0; i < MWN_N; i++) {
        c[i] = mwn_ce(theta, m->X + 4 * i, m->Y[i], prob[i]);
        double u = m->freeze ? m->c_frozen[i] : c[i], z = (double)b2[0];
        for (size_t k = 0; k < 5; k++) {
            a[i][k] = fmax((double)w1[k] * u + (double)b1[k], 0.0);
            z += (double)w2[k] * a[i][k];
        }
        v[i] = 1.0 / (1.0 + exp(-z));
        S += v[i];
    }
    for (size_t i = 0; i < MWN_N; i++) L += c[i] * v[i] / S;
    if (dlambda != NULL) {
        double g[MWN_H] = {0};
        for (size_t i = 0; i < MWN_N; i++) {
            double u = m->freeze ? m->c_frozen[i] : c[i];
            double dz = (c[i] - L) / S * v[i] * (1.0 - v[i]); // dl/dv_i * dv_i/dz_i
            for (size_t k = 0; k < 5; k++) {
                g[10 + k] += dz * a[i][k];
                double dpre = a[i][k] > 0.0 ? dz * (double)w2[k] : 0.0;
                g[k] += dpre * u;
                g[5 + k] += dpre;
            }
            g[15] += dz;
        }
        for (size_t j = 0; j < MWN_H; j++) dlambda[j] = (float)g[j];
    }
    if (dtheta != NULL) {
        double g[MWN_P] = {0};
        for (size_t i = 0; i < MWN_N; i++) {
            for (size_t o = 0; o < 3; o++) {
                double dz = (prob[i][o] - (o == (size_t)m->Y[i] ? 1.0 : 0.0)) * v[i] / S;
                for (size_t f = 0; f < 4; f++) g[4 * o + f] += dz * m->X[4 * i + f];
                g[12 + o] += dz;
            }
        }
        for (size_t j = 0; j < MWN_P; j++) dtheta[j] = (float)g[j];
    }
    return L;
}

static double mwn_val(struct meta_problem *p, const float *theta, float *dtheta)
{
    struct mwn *m = p->ctx;
    double L = 0.0, g[MWN_P] = {0}, prob[3];
    for (size_t i = 0; i < MWN_M; i++) {
        L += mwn_ce(theta, m->Xv + 4 * i, m->Yv[i], prob) / MWN_M;
        for (size_t o = 0; o < 3; o++) {
            double dz = (prob[o] - (o == (size_t)m->Yv[i] ? 1.0 : 0.0)) / MWN_M;
            for (size_t f = 0; f < 4; f++) g[4 * o + f] += dz * m->Xv[4 * i + f];
            g[12 + o] += dz;
        }
    }
    if (dtheta != NULL) {
        for (size_t j = 0; j < MWN_P; j++) dtheta[j] = (float)g[j];
    }
    return L;
}

static const struct meta_problem_ops mwn_ops = {.train_loss = mwn_train, .val_loss = mwn_val};

static void copy_section(const struct ref *r, const char *name, double *out, size_t n)
{
    size_t got;
    const double *v = ref_get(r, name, &got);
    cr_assert(eq(sz, got, n), "%s", name);
    memcpy(out, v, n * sizeof(double));
}

// theta: (15), lambda: (16), want: (16) the sections prefix_w1, _b1, _w2, _b2 in lambda order.
static void mwn_load(const struct ref *r, struct mwn *m, float *theta, float *lambda)
{
    double y[MWN_N], yv[MWN_M], W[12], b[3], lam[MWN_H];
    copy_section(r, "X", m->X, MWN_N * 4);
    copy_section(r, "Xv", m->Xv, MWN_M * 4);
    copy_section(r, "Y", y, MWN_N);
    copy_section(r, "Yv", yv, MWN_M);
    for (size_t i = 0; i < MWN_N; i++) m->Y[i] = (int)y[i];
    for (size_t i = 0; i < MWN_M; i++) m->Yv[i] = (int)yv[i];
    copy_section(r, "W", W, 12);
    copy_section(r, "b", b, 3);
    copy_section(r, "w1", lam, 5);
    copy_section(r, "b1", lam + 5, 5);
    copy_section(r, "w2", lam + 10, 5);
    copy_section(r, "b2", lam + 15, 1);
    for (size_t j = 0; j < 12; j++) theta[j] = (float)W[j];
    for (size_t j = 0; j < 3; j++) theta[12 + j] = (float)b[j];
    for (size_t j = 0; j < MWN_H; j++) lambda[j] = (float)lam[j];
    m->freeze = false;
}

static void mwn_want(const struct ref *r, const char *prefix, double *want)
{
    static const char *const parts[] = {"w1", "b1", "w2", "b2"};
    static const size_t sizes[] = {5, 5, 5, 1};
    size_t off = 0;
    for (size_t s = 0; s < 4; s++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", prefix, parts[s]);
        copy_section(r, name, want + off, sizes[s]);
        off += sizes[s];
    }
}

static double max_abs(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

Test(hyper_reference, evograd_matches_pytorch_meta_weight_net)
{
    struct ref *r = ref_load("data/evograd_mwn_tiny.txt");
    struct mwn m;
    float theta[MWN_P], lambda[MWN_H], eps[2 * MWN_P];
    mwn_load(r, &m, theta, lambda);
    double e[2 * MWN_P];
    copy_section(r, "eps_0", e, MWN_P);
    copy_section(r, "eps_1", e + MWN_P, MWN_P);
    for (size_t j = 0; j < 2 * MWN_P; j++) eps[j] = (float)e[j];
    struct meta_problem p = {.ops = &mwn_ops, .P = MWN_P, .H = MWN_H, .rng = NULL, .ctx = &m};
    struct hyper *h = hyper_new(&(struct hyper_params){.method = HYPER_EVOGRAD, .candidates = 2,
                                                       .sigma = 1e-3, .temperature = 0.05},
                                MWN_P, MWN_H);
    float hg[MWN_H];
    struct hyper_info info;
    hyper_grad_eps(h, &p, theta, lambda, eps, hg, &info);

    double want[MWN_H], w[2], l[2];
    mwn_want(r, "hyper_exact_", want);
    copy_section(r, "w", w, 2);
    copy_section(r, "l", l, 2);
    double scale = max_abs(want, MWN_H), worst = 0.0;
    for (size_t j = 0; j < MWN_H; j++) worst = fmax(worst, fabs((double)hg[j] - want[j]));
    cr_log_info("mwn evograd vs exact: max|h| %.3g, worst relative to it %.3g", scale,
                worst / scale);
    // theta, lambda and eps are rounded to float (1e-3 is not a float), and the d_k come back
    // as float: only d_0 - d_1 matters (sum_k w_k s_k = 0), which is ~1e-3 of d_k since the
    // candidates differ by 2 sigma, so float's 6e-8 leaves ~1e-4 relative. 1e-3 of the section
    // maximum is that with a margin.
    assert_close("evograd vs hyper_exact", hg, want, MWN_H, 1e-3 * scale, 0.0);
    cr_assert(epsilon_eq(dbl, info.val_loss, ref_get(r, "L_V", &(size_t){0})[0], 1e-6));
    cr_assert(epsilon_eq(dbl, info.weight_max, fmax(w[0], w[1]), 1e-5));
    cr_assert(epsilon_eq(dbl, info.train_loss_mean, 0.5 * (l[0] + l[1]), 1e-6));
    hyper_free(h);
    ref_free(r);
}

Test(hyper_reference, unrolled_matches_pytorch_meta_weight_net)
{
    struct ref *r = ref_load("data/evograd_mwn_tiny.txt");
    struct mwn m;
    float theta[MWN_P], lambda[MWN_H];
    mwn_load(r, &m, theta, lambda);
    // The reference's l_f feeds VNet the CE detached at the base theta; freeze it there so the
    // method's difference of grad_lambda l_T at theta +- e v sees only the c_i(theta) factor.
    double prob[3];
    for (size_t i = 0; i < MWN_N; i++) m.c_frozen[i] = mwn_ce(theta, m.X + 4 * i, m.Y[i], prob);
    m.freeze = true;
    struct meta_problem p = {.ops = &mwn_ops, .P = MWN_P, .H = MWN_H, .rng = NULL, .ctx = &m};
    struct hyper *h = hyper_new(
        &(struct hyper_params){.method = HYPER_UNROLLED_FD, .lookahead_lr = 0.1}, MWN_P, MWN_H);
    float hg[MWN_H];
    struct hyper_info info;
    hyper_grad(h, &p, theta, lambda, NULL, hg, &info);

    double want[MWN_H];
    mwn_want(r, "u_hyper_", want);
    double scale = max_abs(want, MWN_H), worst = 0.0;
    for (size_t j = 0; j < MWN_H; j++) worst = fmax(worst, fabs((double)hg[j] - want[j]));
    cr_log_info("mwn unrolled vs pytorch: max|h| %.3g, worst relative to it %.3g", scale,
                worst / scale);
    // l_f is linear in theta's c_i and smooth (no kinks in theta: the VNet input is frozen), so
    // the central difference's truncation is O(e^2) ~ 1e-4 and float rounding of dlambda over
    // 2e ~ 1e-5: 1e-3 of the section maximum.
    assert_close("unrolled vs u_hyper", hg, want, MWN_H, 1e-3 * scale, 0.0);
    cr_assert(epsilon_eq(dbl, info.val_loss, ref_get(r, "u_L_V", &(size_t){0})[0], 1e-6));
    hyper_free(h);
    ref_free(r);
}
