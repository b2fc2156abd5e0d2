/* hyper.h - hypergradient methods: dl_V/dlambda for a meta-problem (problem.h).
 *
 *   evograd   (Bohdal et al. 2021) K candidates theta_k = theta + eps_k (eps Rademacher +-sigma, or
 *             sigma * N(0, 1)), losses l_k = l_T(theta_k, lambda) on the same batch, weights
 *             w = softmax(-l / tau) (stable), merged theta* = sum_k w_k theta_k, g_V = grad l_V at
 *             theta*, and back through the weights (paper-spec 1.3, exact for this objective):
 *               h = -(1/tau) sum_k w_k s_k d_k,  d_k = dl_T(theta_k, lambda)/dlambda,
 *               s_k = g_V . (eps_k - sum_j w_j eps_j)   (in double, from the eps directly)
 *             Memory: the K perturbations (K x P floats) and K x H for the d_k.
 *   unrolled  the exact one-step look-ahead hypergradient (the second-order baseline of the
 *             paper, PyTorch's create_graph=True): theta' = theta - alpha grad_theta l_T(theta,
 *             lambda), v = grad l_V(theta'), h = -alpha (d^2 l_T / dlambda dtheta) v, the mixed
 *             product exact by the problem's train_loss_tangent (forward-over-reverse), under
 *             the task noise g was computed with (one draw, differentiated twice).
 *   unrolled_fd  the same with the mixed product as a central difference of grad_lambda l_T at
 *             theta +- e v, e = UNROLLED_FD_SCALE / |v| (DARTS's approximation; first-order
 *             gradients only, so for any problem), both sides under the same noise.
 *   none      h = 0 (lambda stays fixed).
 * Every method returns l_V at the point it evaluated it (theta* or theta'). */
#ifndef EG_HYPER_H
#define EG_HYPER_H

#include <stdbool.h>
#include <stddef.h>

#include "problem.h"

struct rng;

enum hyper_method { HYPER_NONE, HYPER_EVOGRAD, HYPER_UNROLLED, HYPER_UNROLLED_FD, HYPER__COUNT };
enum hyper_noise { HYPER_NOISE_RADEMACHER, HYPER_NOISE_GAUSSIAN };

// Finite-difference scale of unrolled_fd's mixed derivative: e = scale / |v|.
#define UNROLLED_FD_SCALE 0.01

struct hyper_params {
    enum hyper_method method;
    size_t candidates;    // K >= 1 (evograd)
    double sigma;         // > 0 (evograd)
    double temperature;   // tau > 0 (evograd)
    enum hyper_noise noise;
    double lookahead_lr;  // alpha > 0 (unrolled, unrolled_fd; and the diagnostics' exact)
    bool diagnostics;     // make room for hyper_diag_request (below)
    size_t diag_draws;    // evograd with diagnostics: fresh draws averaged (0 = none)
};

// "none", "evograd", "unrolled", "unrolled_fd"; and back.
const char *hyper_method_name(enum hyper_method m);
bool hyper_method_find(const char *name, enum hyper_method *m);
// One line on what method m computes and the method.* keys it reads.
const char *hyper_method_about(enum hyper_method m);
// The look-ahead methods (unrolled, unrolled_fd).
bool hyper_method_is_unrolled(enum hyper_method m);
// Whether method m can run on a problem (unrolled needs train_loss_tangent).
bool hyper_method_supports(enum hyper_method m, const struct meta_problem *p);

// Work space for problems of sizes P, H. Caller frees with hyper_free.
struct hyper;
struct hyper *hyper_new(const struct hyper_params *hp, size_t P, size_t H);
void hyper_free(struct hyper *h);

// The method h was made for.
enum hyper_method hyper_method_of(const struct hyper *h);

// Sets the unrolled methods' look-ahead step alpha (> 0) for later steps: a task whose base
// learning rate follows a schedule keeps alpha equal to it (paper-spec 2.1). No effect on the
// other methods.
void hyper_set_lookahead_lr(struct hyper *h, double alpha);

// What a step saw, for logging and tests.
struct hyper_info {
    double val_loss;         // l_V at theta* (evograd), theta' (unrolled*), theta (none)
    double train_loss_mean;  // mean of the l_k (evograd) or l_T(theta) (unrolled*)
    double weight_max;       // largest softmax weight (evograd)
};
// Fields a method does not measure are NAN: weight_max for unrolled and none, train_loss_mean
// for none. "none" evaluates l_V(theta) only when info is not NULL.

// hg: (H) written with the hypergradient at (theta, lambda). theta: (P), lambda: (H), neither
// modified. rng draws the perturbations (evograd; may be NULL for the other methods). info may
// be NULL.
void hyper_grad(struct hyper *h, struct meta_problem *p, const float *theta, const float *lambda,
                struct rng *rng, float *hg, struct hyper_info *info);

// The same step with the perturbations given instead of drawn: eps (K x P), candidate k at
// eps + k*P (evograd only; hyper_grad draws eps_k for k = 0..K-1 with rng_fill_rademacher(rng,
// eps_k, P, sigma) or rng_fill_gaussian(rng, eps_k, P, 0, sigma) and calls this).
void hyper_grad_eps(struct hyper *h, struct meta_problem *p, const float *theta,
                    const float *lambda, const float *eps, float *hg, struct hyper_info *info);

struct optim;

// A task's meta-step, as its one-iteration function takes it: the method (NULL: method none, the
// hyperparameters stay where they are), the hyperparameters' optimiser and its learning rate, and
// the generator of evograd's perturbations (may be NULL for the other methods). None owned.
struct meta_step {
    struct hyper *hyper;
    struct optim *opt;
    float lr;
    struct rng *rng;
};

// Diagnostics: how close a method's hypergradient is to the exact one-step look-ahead one
// (unrolled, with the same alpha) at the same point, on the same batches and under the same task
// noise. After hyper_diag_request, the next hyper_grad also computes the exact hypergradient (and,
// for evograd with diag_draws R > 0, the mean of R fresh EvoGrad draws, their perturbations
// from a generator seeded from a copy of the method's rng, which is left as it was) and puts the
// task's generator back where the method left it: the method's result, the problem's
// parameters and the run's random streams are as without the request. The problem needs
// train_loss_tangent. hyper_diag_take then returns the comparison once (false when none is
// pending). h must have been made with diagnostics set.
struct hyper_diag {
    double method_norm, exact_norm; // |h| of the method and of the exact look-ahead
    double cosine;                  // h . h_exact / (|h| |h_exact|); NaN when either is 0
    double norm_ratio;              // |h| / |h_exact|; NaN when |h_exact| is 0
    double sign_agree;              // fraction of components whose signs agree (0 == 0)
    double draws_cosine;            // the cosine of the mean of the draws (NaN without draws)
    double seconds;                 // the time the diagnostics added to the step
};
void hyper_diag_request(struct hyper *h);
bool hyper_diag_take(struct hyper *h, struct hyper_diag *d);

// w: (K) written with softmax(-losses / tau), shifted by the smallest loss (finite for any
// finite losses, sums to 1). Exposed for tests.
void hyper_softmax_weights(const double *losses, size_t K, double tau, double *w);

#endif // EG_HYPER_H
