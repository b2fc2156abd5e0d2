/* mwn.h - label noise with Meta-Weight-Net (paper-spec 3.4 and 2.1, the EvoGrad repository's
 * version): a small network V_lambda maps each training sample's loss to its weight, and the
 * meta-step learns lambda so that a network trained on noisy labels does well on a small clean
 * meta set.
 *
 * The weighting network (lambda, H = 3h + 1 floats, PyTorch's state-dict order):
 *   fc1.weight (h), fc1.bias (h), fc2.weight (h), fc2.bias (1)
 *   V(c) = sigmoid(fc2(relu(fc1(c))))
 * initialised as PyTorch's nn.Linear: every fc1 value ~ U(-1, 1) (fan-in 1), every fc2 value
 * ~ U(-1/sqrt(h), 1/sqrt(h)). The paper uses h = 100 (301 parameters).
 *
 * The weighted loss of a batch with per-sample cross-entropies c_i (paper-spec 6.6):
 *   v_i = V(c_i), input detached;  l = sum_i c_i v_i / S,  S = sum_j v_j
 *   dl/dc_i = v_i / S   (through the first factor only: the input is detached)
 *   dl/dv_i = (c_i - l) / S
 * and l = 0 with zero gradients when S = 0 (the reference's guard).
 *
 * The meta-problem (problem.h): theta = the network's parameters, lambda = V's parameters;
 *   l_T(theta, lambda) = the weighted loss of the noisy training batch, the VNet inputs being the
 *                        per-sample losses at theta itself (EvoGrad's candidates: v^(k) =
 *                        V(c^(k))), or at an anchor point after mwn_problem_anchor_next (below);
 *   l_V(theta)         = mean cross-entropy of the clean meta batch.
 * Both run batch norm on batch statistics without touching the running statistics
 * (LAYER_MODE_TRAIN_FROZEN, paper-spec 3.4 and 6.3-6.4).
 *
 * The anchor. The second-order reference (paper-spec 2.1) differentiates
 * G = grad_theta l_f(theta, lambda) with V's inputs fixed at c(theta) of the base point. With the
 * anchor armed, the next l_T evaluation records its per-sample losses, and every later evaluation
 * (at any theta, until the batches change) feeds those recorded losses to V. unrolled_fd's
 * finite-difference mixed derivative then differentiates exactly the reference's look-ahead
 * objective; without the anchor it would also differentiate V's input, which the reference
 * detaches. The exact method's tangent (train_loss_tangent) holds V's inputs fixed as its
 * gradient does, with or without the anchor. mwn_step arms it for both unrolled methods and never
 * for evograd.
 *
 * One iteration (mwn_step), in the reference code's order: (1) the meta-step: hypergradient at
 * the current theta on the training batch and a meta batch, meta optimiser step on lambda;
 * (2) the base step: forward in train mode (running statistics update), weights from the updated
 * V (no gradient to lambda), the weighted loss, the base optimiser. Method none skips (1). */
#ifndef EG_MWN_H
#define EG_MWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/hyper.h"
#include "meta/netloss.h"
#include "meta/problem.h"
#include "nn/net.h"
#include "nn/optim.h"

struct rng;

// The paper's hidden width.
#define MWN_HIDDEN 100
// weight_curve.csv samples V on this many losses, evenly spaced in [0, MWN_CURVE_MAX].
#define MWN_CURVE_POINTS 201
#define MWN_CURVE_MAX 10.0

// Number of lambda floats for hidden width h: 3h + 1.
size_t mwn_vnet_size(size_t hidden);

// lambda: (mwn_vnet_size(hidden)) written with PyTorch's default nn.Linear initialisation.
void mwn_vnet_init(float *lambda, size_t hidden, struct rng *rng);

// v: (n) written with V(c_i), computed in double.
void mwn_vnet_forward(const float *lambda, size_t hidden, const float *c, size_t n, double *v);

// dlambda: (mwn_vnet_size(hidden)) written with sum_i dv_i dV(c_i)/dlambda.
void mwn_vnet_backward(const float *lambda, size_t hidden, const float *c, const double *dv,
                       size_t n, float *dlambda);

// The normalised weighted loss sum_i c_i v_i / sum_j v_j (see above). dc, dv: (n) written with
// its partial derivatives unless NULL.
double mwn_weighted_loss(const float *c, const double *v, size_t n, double *dc, double *dv);

struct mwn_problem {
    struct meta_problem mp; // P = net->nparams, H = mwn_vnet_size(hidden); deterministic
    struct net_batches b;   // the net, the current batches, the cross-entropy work space
    size_t hidden;
    enum layer_mode mode;   // of the meta-step's passes: LAYER_MODE_TRAIN_FROZEN
    bool anchor_armed, anchored;
    // Owned work space: (b.cap) each, and hg (H) the meta-step's hypergradient.
    float *anchor, *hg;
    double *v, *dv, *dc, *tdv; // tdv: the tangent of dv (train_loss_tangent)
};

// A problem on a finalized net whose output is (classes, 1, 1), with a weighting network of
// `hidden` units. Caller frees.
struct mwn_problem *mwn_problem_new(struct net *net, size_t hidden);
void mwn_problem_free(struct mwn_problem *pr);

// Fixes the noisy training batch (x: n images) and the clean meta batch (xv: m images, may be
// NULL with m 0 when only l_T is used); the pointers must stay valid while in use. Drops any
// anchor.
void mwn_problem_set_batches(struct mwn_problem *pr, const float *x, const int32_t *y, size_t n,
                             const float *xv, const int32_t *yv, size_t m);

// Arms the anchor (see above): the next l_T evaluation's per-sample losses become V's inputs
// until the batches change.
void mwn_problem_anchor_next(struct mwn_problem *pr);

// What an iteration did, for the metrics.
struct mwn_step_info {
    double train_ce;       // mean (unweighted) cross-entropy of the base step's batch
    double weighted_loss;  // the base step's loss
    const double *weights; // (n) V's weight for each sample of the base step (1 when uniform);
                           // valid until the next call
    struct hyper_info hyper; // from the meta-step (val_loss NaN when h is NULL)
};

// One iteration (see above) on the batches set. meta NULL or meta->hyper NULL: method none
// (lambda unchanged). lambda NULL: the base step ignores V and weights every sample 1 (plain mean
// cross-entropy: mwn.uniform_weights; only with method none). lr: the base learning rate.
// Returns the base step's weighted loss.
double mwn_step(struct mwn_problem *pr, struct optim *opt, float lr, const struct meta_step *meta,
                float *lambda, struct mwn_step_info *info);

#endif // EG_MWN_H
