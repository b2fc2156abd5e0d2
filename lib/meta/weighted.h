/* weighted.h - the network meta-problem with per-sample loss weights as hyperparameters.
 *
 * For any struct net (backbones.h) whose output is (classes, 1, 1) logits, and a training batch of
 * n samples, lambda (H = n) weights each sample's cross-entropy c_i(theta):
 *   l_T(theta, lambda) = sum_i lambda_i c_i(theta) / n,   dl_T/dlambda_i = c_i(theta) / n,
 *   l_V(theta)         = mean cross-entropy on the validation batch (m samples).
 * It is the generic network problem behind the hypergradient tests (tests/test_hyper.c) and the
 * per-meta-step cost in `make bench`; a task may also use it directly.
 *
 * Parameters. Each call copies theta into net->params, evaluates, and copies the net's own
 * parameters back, so the caller's net->params are unchanged by any call. theta may be
 * net->params itself (then nothing is copied); any other overlap with net->params is a bug.
 * net->grads is work space: after a call its contents are unspecified. dtheta may be net->grads.
 *
 * Batch norm. train_mode / val_mode choose how batch norm runs in each loss: LAYER_MODE_TRAIN_FROZEN
 * (batch statistics, running statistics untouched: the EvoGrad candidates, paper-spec 6.4) or
 * LAYER_MODE_EVAL (running statistics). LAYER_MODE_TRAIN is refused (EG_ASSERT): a meta-step must
 * not move the running statistics. Stochastic layers draw from net->rng, which is also the
 * problem's rng (mp.rng), so the unrolled method can replay the same noise. */
#ifndef EG_WEIGHTED_H
#define EG_WEIGHTED_H

#include <stddef.h>
#include <stdint.h>

#include "netloss.h"
#include "nn/layer.h"
#include "problem.h"

struct net;

struct weighted_problem {
    struct meta_problem mp; // pass &wp->mp to the hypergradient methods; mp.ctx = this struct
    enum layer_mode train_mode, val_mode;
    struct net_batches b;   // the net, the current batches and the work space (netloss.h)
};

// A problem on net for training batches of n samples (H = n, P = net->nparams), with batch norm
// in train_mode / val_mode (LAYER_MODE_TRAIN_FROZEN or LAYER_MODE_EVAL). net must be finalized and
// output classes logits; it is not owned and must outlive the problem. Caller frees with
// weighted_problem_free.
struct weighted_problem *weighted_problem_new(struct net *net, size_t n,
                                              enum layer_mode train_mode,
                                              enum layer_mode val_mode);
void weighted_problem_free(struct weighted_problem *wp);

// Sets the batches every later call uses (not copied: they must stay valid while in use).
//   x: (n, in_shape) NCHW, labels: (n) in [0, classes), n must equal the n given to _new;
//   xv: (m, in_shape) NCHW, labels_v: (m), m >= 1.
void weighted_problem_set_batches(struct weighted_problem *wp, const float *x,
                                  const int32_t *labels, size_t n, const float *xv,
                                  const int32_t *labels_v, size_t m);

#endif // EG_WEIGHTED_H
