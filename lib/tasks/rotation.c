/* rotation.c - the rotation experiment's meta-problem and iteration (rotation.h). The losses run
 * the net at theta by swapping theta into net->params for the call (as meta/weighted.c). */
#include "rotation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "meta/netloss.h"
#include "nn/loss.h"
#include "nn/rotate.h"

static double rotation_train_loss(struct meta_problem *p, const float *theta, const float *lambda,
                                  float *dtheta, float *dlambda)
{
    struct rotation_problem *rp = p->ctx;
    struct net_batches *b = &rp->b;
    struct net *net = b->net;
    const struct shape s = net->in_shape;
    const size_t n = b->n, C = b->classes;
    const double a = (double)lambda[0];
    EG_ASSERT(b->x != NULL);

    net_swap_in(net, b->saved, theta);
    rotate_forward(b->x, rp->xr, n, s.c, s.h, s.w, a);
    const float *logits = net_forward(net, rp->xr, n, rp->mode);
    double L = xent_forward(logits, b->y, n, C, b->losses) / (double)n;
    if (dtheta != NULL || dlambda != NULL) {
        xent_backward(logits, b->y, NULL, n, C, b->dlogits);
        net_zero_grad(net);
        net_backward(net, b->dlogits, dlambda != NULL ? rp->dxr : NULL);
        if (dtheta != NULL) net_copy_grads(net, dtheta);
        if (dlambda != NULL) {
            dlambda[0] = (float)rotate_backward(b->x, rp->dxr, NULL, n, s.c, s.h, s.w, a);
        }
    }
    net_swap_out(net, b->saved, theta);
    return L;
}

// train_loss with its tangent along u (problem.h). The rotated batch does not depend on theta
// (no input tangent). dl_T/da = rotate_backward(dl_T/dxr), linear in the input gradient dxr, so
// the mixed product is rotate_backward applied to the input gradient's tangent.
static double rotation_train_loss_tangent(struct meta_problem *p, const float *theta,
                                          const float *lambda, const float *u, float *dtheta,
                                          float *dlambda, float *hvp, float *mixed)
{
    struct rotation_problem *rp = p->ctx;
    struct net_batches *b = &rp->b;
    struct net *net = b->net;
    const struct shape s = net->in_shape;
    const size_t n = b->n, C = b->classes;
    const double a = (double)lambda[0];
    EG_ASSERT(b->x != NULL && u != NULL);

    net_swap_in(net, b->saved, theta);
    rotate_forward(b->x, rp->xr, n, s.c, s.h, s.w, a);
    const float *tz;
    const float *logits = net_batches_forward_tangent(b, rp->xr, rp->mode, u, &tz);
    double L = xent_forward(logits, b->y, n, C, b->losses) / (double)n;
    xent_tangent(logits, b->y, NULL, tz, NULL, n, C, b->tdlogits, NULL);
    const bool dx = dlambda != NULL || mixed != NULL;
    net_batches_backward_tangent(b, logits, NULL, dtheta, hvp, dx ? rp->dxr : NULL,
                                 dx ? rp->tdxr : NULL);
    if (dlambda != NULL) {
        dlambda[0] = (float)rotate_backward(b->x, rp->dxr, NULL, n, s.c, s.h, s.w, a);
    }
    if (mixed != NULL) {
        mixed[0] = (float)rotate_backward(b->x, rp->tdxr, NULL, n, s.c, s.h, s.w, a);
    }
    net_swap_out(net, b->saved, theta);
    return L;
}

static double rotation_val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    struct rotation_problem *rp = p->ctx;
    return net_batches_val_loss(&rp->b, theta, rp->mode, dtheta);
}

static const struct meta_problem_ops rotation_ops = {
    .train_loss = rotation_train_loss,
    .val_loss = rotation_val_loss,
    .train_loss_tangent = rotation_train_loss_tangent,
};

struct rotation_problem *rotation_problem_new(struct net *net)
{
    struct rotation_problem *rp = eg_xcalloc(1, sizeof *rp);
    net_batches_init(&rp->b, net);
    rp->mp = (struct meta_problem){
        .ops = &rotation_ops, .P = net->nparams, .H = 1, .rng = NULL, .ctx = rp};
    rp->numel = net->in_shape.c * net->in_shape.h * net->in_shape.w;
    rp->mode = LAYER_MODE_TRAIN_FROZEN;
    return rp;
}

void rotation_problem_free(struct rotation_problem *rp)
{
    if (rp == NULL) return;
    net_batches_deinit(&rp->b);
    free(rp->xr);
    free(rp->dxr);
    free(rp->tdxr);
    free(rp);
}

void rotation_problem_set_batches(struct rotation_problem *rp, const float *x, const int32_t *y,
                                  size_t n, const float *xv, const int32_t *yv, size_t m)
{
    EG_ASSERT(rp != NULL);
    if (!net_batches_set(&rp->b, x, y, n, xv, yv, m)) return;
    free(rp->xr);
    free(rp->dxr);
    free(rp->tdxr);
    rp->xr = eg_xmalloc_array(rp->b.cap, rp->numel * sizeof(float));
    rp->dxr = eg_xmalloc_array(rp->b.cap, rp->numel * sizeof(float));
    rp->tdxr = eg_xmalloc_array(rp->b.cap, rp->numel * sizeof(float));
}

double rotation_step(struct rotation_problem *rp, struct optim *opt, float lr,
                     const struct meta_step *meta, float *angle, struct hyper_info *info)
{
    struct net *net = rp->b.net;
    // (1) base step at the current angle; TRAIN mode so running statistics (if any) update
    enum layer_mode keep = rp->mode;
    rp->mode = LAYER_MODE_TRAIN;
    float da = 0.0f;
    double loss = rotation_train_loss(&rp->mp, net->params, angle, net->grads, NULL);
    rp->mode = keep;
    optim_step(opt, net->params, net->grads, lr);
    if (meta == NULL || meta->hyper == NULL) {
        if (info != NULL) *info = (struct hyper_info){NAN, NAN, NAN};
        return loss;
    }
    // (2) hypergradient around the updated theta, (3) meta step on the angle
    hyper_grad(meta->hyper, &rp->mp, net->params, angle, meta->rng, &da, info);
    optim_step(meta->opt, angle, &da, meta->lr);
    return loss;
}
