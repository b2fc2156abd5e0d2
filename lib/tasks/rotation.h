/* rotation.h - the rotation experiment (paper-spec 3.2): a network trained on unrotated images
 * through a learned spatial transformer T_a (nn/rotate.h, one angle a in radians, the single
 * hyperparameter), with the validation set rotated by a fixed angle, so that the meta-step on a
 * learns the validation rotation.
 *
 *   l_T(theta, a) = CE(net_theta(T_a(x)), y)   on the training batch (mean over the batch)
 *   l_V(theta)    = CE(net_theta(x_v), y_v)    on the (already rotated) validation batch
 * dl_T/da comes from dL/d(T_a(x)) (net_backward) through rotate_backward.
 *
 * Task rotation (lib/run/task_rotation.c) calls rotation_step once per iteration, in the
 * reference code's order: (1) base optimiser step on l_T at the current angle, (2) hypergradient
 * around the updated theta on the same training batch and a validation batch, (3) meta optimiser
 * step on the angle. Method none: (2) and (3) are skipped and the angle stays where it started. */
#ifndef EG_ROTATION_H
#define EG_ROTATION_H

#include <stddef.h>
#include <stdint.h>

#include "meta/hyper.h"
#include "meta/netloss.h"
#include "meta/problem.h"
#include "nn/net.h"
#include "nn/optim.h"

struct rotation_problem {
    struct meta_problem mp; // P = net->nparams, H = 1; deterministic (rng NULL)
    struct net_batches b;   // the net, the current batches, the cross-entropy work space
    size_t numel;           // per-image floats (C*H*W of the net's input)
    enum layer_mode mode;   // mode of the forward passes (TRAIN for the base step's network)
    float *xr, *dxr, *tdxr; // (b.cap, numel) owned: the rotated batch, its gradient and the
                            // gradient's tangent (train_loss_tangent)
};

// A problem on a finalized net whose output is (classes, 1, 1). Caller frees.
struct rotation_problem *rotation_problem_new(struct net *net);
void rotation_problem_free(struct rotation_problem *rp);

// Fixes the training batch (x: n images, normalised, unrotated) and the validation batch (xv: m
// images); the pointers must stay valid while the problem is used. xv may be NULL (m 0) when only
// the training loss is used.
void rotation_problem_set_batches(struct rotation_problem *rp, const float *x, const int32_t *y,
                                  size_t n, const float *xv, const int32_t *yv, size_t m);

// One iteration (see above) on the batches set. angle: (1) in radians, updated in place unless
// meta is NULL or meta->hyper is NULL (method none). lr: the base learning rate. Returns the mean
// training loss of the base step (before it); info (may be NULL) is filled from the
// hypergradient (val_loss NaN for method none).
double rotation_step(struct rotation_problem *rp, struct optim *opt, float lr,
                     const struct meta_step *meta, float *angle, struct hyper_info *info);

#endif // EG_ROTATION_H
