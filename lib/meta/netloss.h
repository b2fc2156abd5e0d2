/* netloss.h - what the image-classifier meta-problems share (meta/weighted.h, tasks/rotation.h,
 * tasks/mwn.h): the network they evaluate at other parameters theta, the batches of the current
 * meta-step with the per-sample buffers of a cross-entropy pass, and the validation loss (the
 * mean cross-entropy of the validation batch at theta, with its gradient).
 *
 * Evaluating at theta swaps theta into net->params for the call (net_swap_in / net_swap_out
 * through `saved`), so the caller's parameters are unchanged by any loss; net->grads is work
 * space. */
#ifndef EG_NETLOSS_H
#define EG_NETLOSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/layer.h"

struct net;

struct net_batches {
    struct net *net;          // not owned; finalized, output (classes, 1, 1)
    size_t classes;
    const float *x, *xv;      // the training batch (n images) and the validation batch (m
    const int32_t *y, *yv;    //   images, NULL with m 0 when only l_T is used); not owned
    size_t n, m;
    float *saved;             // (P) the net's own parameters while theta is swapped in
    float *losses, *dlosses;  // (cap) per-sample cross-entropies and their weights
    float *dlogits;           // (cap, classes)
    size_t cap;               // samples the buffers hold (grown by net_batches_set)
    float *tlosses, *tdlogits; // (tcap), (tcap, classes): tangents, for train_loss_tangent
    size_t tcap;
};

// For a finalized net whose output is (classes, 1, 1) logits (EG_ASSERT). Allocates saved;
// release with net_batches_deinit.
void net_batches_init(struct net_batches *b, struct net *net);
void net_batches_deinit(struct net_batches *b);

// Fixes the batches (x: n >= 1 images NCHW with labels y; xv: m images with labels yv, or NULL
// with m 0) and grows the buffers to max(n, m) samples. The pointers must stay valid while the
// batches are in use. Returns true when the buffers grew (to b->cap samples), so that a problem
// can grow its own per-sample buffers along.
bool net_batches_set(struct net_batches *b, const float *x, const int32_t *y, size_t n,
                     const float *xv, const int32_t *yv, size_t m);

// The training batch's forward with its tangent along u (net_forward_tangent on the b->n images
// x, NCHW: b->x, or a transformed copy of it), at the parameters the net holds now; grows
// tlosses and tdlogits to b->cap samples first. Returns the logits; *tz their tangent.
const float *net_batches_forward_tangent(struct net_batches *b, const float *x,
                                         enum layer_mode mode, const float *u, const float **tz);

// The backward of a tangent pass (nn/net.h) from the logits of the last net_forward_tangent on
// b's training batch: dlogits from xent_backward with dlosses (NULL: the mean), then
// net_backward_tangent with b->tdlogits (the caller has filled it, xent_tangent). dtheta (unless
// NULL) written with the gradient, hvp (unless NULL) with the gradient's tangent; dx and tdx
// (both or neither) with the input's gradient and its tangent.
void net_batches_backward_tangent(struct net_batches *b, const float *logits,
                                  const float *dlosses, float *dtheta, float *hvp, float *dx,
                                  float *tdx);

// dtheta: (net->nparams) written with net->grads, unless it is net->grads itself.
void net_copy_grads(const struct net *net, float *dtheta);

// The mean cross-entropy of net at theta on x (m images, NCHW) with labels y, batch norm in
// mode, returned in double. dtheta: (net->nparams) written with its gradient unless NULL (may be
// net->grads); *correct (unless NULL) with how many of the m images it classifies right.
// net->params are left as they were (net_swap_in / net_swap_out through saved, nparams floats);
// losses (m) and dlogits (m x classes) are work space.
double net_mean_xent_at(struct net *net, float *saved, const float *theta, const float *x,
                        const int32_t *y, size_t m, enum layer_mode mode, float *losses,
                        float *dlogits, float *dtheta, size_t *correct);

// net_mean_xent_at on the validation batch of b, with b's buffers: l_V of the classifier
// meta-problems. Requires a validation batch (EG_ASSERT).
double net_batches_val_loss(struct net_batches *b, const float *theta, enum layer_mode mode,
                            float *dtheta);

#endif // EG_NETLOSS_H
