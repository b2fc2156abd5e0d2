/* weighted.c - per-sample loss weights on a network (weighted.h).
 * The training loss is the lambda-weighted mean cross-entropy, the validation loss the plain
 * mean; both run the net at theta by swapping theta into net->params for the call. */
#include "weighted.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "meta/netloss.h"
#include "nn/loss.h"
#include "nn/net.h"

// l_T = sum_i lambda_i c_i / n (summed in double) from the training batch's logits, the c_i left
// in b->losses; dlambda (unless NULL) written with dl_T/dlambda_i = c_i / n.
static double weighted_loss(struct net_batches *b, const float *logits, const float *lambda,
                            float *dlambda)
{
    const size_t n = b->n;
    xent_forward(logits, b->y, n, b->classes, b->losses);
    double L = 0.0;
    for (size_t i = 0; i < n; i++) L += (double)lambda[i] * (double)b->losses[i];
    L /= (double)n;
    if (dlambda != NULL) {
        for (size_t i = 0; i < n; i++) dlambda[i] = (float)((double)b->losses[i] / (double)n);
    }
    return L;
}

static double weighted_train_loss(struct meta_problem *p, const float *theta,
                                  const float *lambda, float *dtheta, float *dlambda)
{
    struct weighted_problem *wp = p->ctx;
    struct net_batches *b = &wp->b;
    struct net *net = b->net;
    const size_t n = b->n, C = b->classes;
    EG_ASSERT(b->x != NULL);

    net_swap_in(net, b->saved, theta);
    const float *logits = net_forward(net, b->x, n, wp->train_mode);
    const double L = weighted_loss(b, logits, lambda, dlambda);
    if (dtheta != NULL) {
        // dl_T/dc_i = lambda_i / n
        for (size_t i = 0; i < n; i++) b->dlosses[i] = (float)((double)lambda[i] / (double)n);
        xent_backward(logits, b->y, b->dlosses, n, C, b->dlogits);
        net_zero_grad(net);
        net_backward(net, b->dlogits, NULL);
        net_copy_grads(net, dtheta);
    }
    net_swap_out(net, b->saved, theta);
    return L;
}

// The same loss with its tangent along u: the net's tangent pass gives the logits' tangent tz,
// xent_tangent the tangents of the per-sample losses (tc_i: mixed_i = tc_i / n) and of dlogits,
// and the tangent backward (d^2 l_T / dtheta^2) u.
static double weighted_train_loss_tangent(struct meta_problem *p, const float *theta,
                                          const float *lambda, const float *u, float *dtheta,
                                          float *dlambda, float *hvp, float *mixed)
{
    struct weighted_problem *wp = p->ctx;
    struct net_batches *b = &wp->b;
    struct net *net = b->net;
    const size_t n = b->n, C = b->classes;
    EG_ASSERT(b->x != NULL && u != NULL);

    net_swap_in(net, b->saved, theta);
    const float *tz;
    const float *logits = net_batches_forward_tangent(b, b->x, wp->train_mode, u, &tz);
    const double L = weighted_loss(b, logits, lambda, dlambda);
    for (size_t i = 0; i < n; i++) b->dlosses[i] = (float)((double)lambda[i] / (double)n);
    xent_tangent(logits, b->y, b->dlosses, tz, NULL, n, C, b->tdlogits, b->tlosses);
    if (mixed != NULL) {
        for (size_t i = 0; i < n; i++) mixed[i] = (float)((double)b->tlosses[i] / (double)n);
    }
    if (dtheta != NULL || hvp != NULL) {
        net_batches_backward_tangent(b, logits, b->dlosses, dtheta, hvp, NULL, NULL);
    }
    net_swap_out(net, b->saved, theta);
    return L;
}

static double weighted_val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    struct weighted_problem *wp = p->ctx;
    return net_batches_val_loss(&wp->b, theta, wp->val_mode, dtheta);
}

static const struct meta_problem_ops weighted_ops = {
    .train_loss = weighted_train_loss,
    .val_loss = weighted_val_loss,
    .train_loss_tangent = weighted_train_loss_tangent,
};

static bool mode_allowed(enum layer_mode mode)
{
    return mode == LAYER_MODE_TRAIN_FROZEN || mode == LAYER_MODE_EVAL;
}

struct weighted_problem *weighted_problem_new(struct net *net, size_t n,
                                              enum layer_mode train_mode,
                                              enum layer_mode val_mode)
{
    EG_ASSERT(n >= 1);
    EG_ASSERT(mode_allowed(train_mode) && mode_allowed(val_mode));
    struct weighted_problem *wp = eg_xcalloc(1, sizeof(*wp));
    net_batches_init(&wp->b, net);
    wp->mp = (struct meta_problem){
        .ops = &weighted_ops, .P = net->nparams, .H = n, .rng = net->rng, .ctx = wp};
    wp->train_mode = train_mode;
    wp->val_mode = val_mode;
    return wp;
}

void weighted_problem_free(struct weighted_problem *wp)
{
    if (wp == NULL) return;
    net_batches_deinit(&wp->b);
    free(wp);
}

void weighted_problem_set_batches(struct weighted_problem *wp, const float *x,
                                  const int32_t *labels, size_t n, const float *xv,
                                  const int32_t *labels_v, size_t m)
{
    EG_ASSERT(wp != NULL && xv != NULL && m >= 1);
    EG_ASSERT(n == wp->mp.H);
    net_batches_set(&wp->b, x, labels, n, xv, labels_v, m);
}
