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

static void grow(struct rotation_problem *rp, size_t need)
{
    if (need <= rp->cap) return;
    free(rp->xr);
    free(rp->dxr);
    free(rp->losses);
    free(rp->dlogits);
    rp->xr = eg_xmalloc_array(need, rp->numel * sizeof(float));
    rp->dxr = eg_xmalloc_array(need, rp->numel * sizeof(float));
    rp->losses = eg_xmalloc_floats(need);
    rp->dlogits = eg_xmalloc_array(need, rp->classes * sizeof(float));
    rp->cap = need;
}

static double rotation_train_loss(struct meta_problem *p, const float *theta, const float *lambda,
                                  float *dtheta, float *dlambda)
{
    struct rotation_problem *rp = p->ctx;
    struct net *net = rp->net;
    const struct shape s = net->in_shape;
    const size_t n = rp->n, C = rp->classes;
    const double a = (double)lambda[0];
    EG_ASSERT(rp->x != NULL);

    net_swap_in(rp->net, rp->saved, theta);
    rotate_forward(rp->x, rp->xr, n, s.c, s.h, s.w, a);
    const float *logits = net_forward(net, rp->xr, n, rp->mode);
    double L = xent_forward(logits, rp->y, n, C, rp->losses) / (double)n;
    if (dtheta != NULL || dlambda != NULL) {
        xent_backward(logits, rp->y, NULL, n, C, rp->dlogits);
        net_zero_grad(net);
        net_backward(net, rp->dlogits, dlambda != NULL ? rp->dxr : NULL);
        if (dtheta != NULL && dtheta != net->grads) {
            memcpy(dtheta, net->grads, net->nparams * sizeof(float));
        }
        if (dlambda != NULL) {
            dlambda[0] = (float)rotate_backward(rp->x, rp->dxr, NULL, n, s.c, s.h, s.w, a);
        }
    }
    net_swap_out(rp->net, rp->saved, theta);
    return L;
}

static double rotation_val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    struct rotation_problem *rp = p->ctx;
    return net_mean_xent_at(rp->net, rp->saved, theta, rp->xv, rp->yv, rp->m, rp->mode,
                            rp->losses, rp->dlogits, dtheta);
}

static const struct meta_problem_ops rotation_ops = {
    .train_loss = rotation_train_loss,
    .val_loss = rotation_val_loss,
};

struct rotation_problem *rotation_problem_new(struct net *net)
{
    EG_ASSERT(net != NULL && net->params != NULL);
    struct shape out = net_out_shape(net);
    EG_ASSERT(out.h == 1 && out.w == 1 && out.c >= 1);
    struct rotation_problem *rp = eg_xcalloc(1, sizeof *rp);
    rp->mp = (struct meta_problem){
        .ops = &rotation_ops, .P = net->nparams, .H = 1, .rng = NULL, .ctx = rp};
    rp->net = net;
    rp->classes = out.c;
    rp->numel = net->in_shape.c * net->in_shape.h * net->in_shape.w;
    rp->mode = LAYER_MODE_TRAIN_FROZEN;
    rp->saved = eg_xmalloc_floats(net->nparams);
    return rp;
}

void rotation_problem_free(struct rotation_problem *rp)
{
    if (rp == NULL) return;
    free(rp->xr);
    free(rp->dxr);
    free(rp->saved);
    free(rp->losses);
    free(rp->dlogits);
    free(rp);
}

void rotation_problem_set_batches(struct rotation_problem *rp, const float *x, const int32_t *y,
                                  size_t n, const float *xv, const int32_t *yv, size_t m)
{
    EG_ASSERT(rp != NULL && x != NULL && y != NULL && n >= 1);
    EG_ASSERT((xv != NULL && yv != NULL && m >= 1) || m == 0);
    grow(rp, n > m ? n : m);
    rp->x = x;
    rp->y = y;
    rp->n = n;
    rp->xv = xv;
    rp->yv = yv;
    rp->m = m;
}

double rotation_step(struct rotation_problem *rp, struct optim *opt, float lr, struct hyper *h,
                     struct optim *meta_opt, float meta_lr, float *angle, struct rng *rng,
                     struct hyper_info *info)
{
    struct net *net = rp->net;
    // (1) base step at the current angle; TRAIN mode so running statistics (if any) update
    enum layer_mode keep = rp->mode;
    rp->mode = LAYER_MODE_TRAIN;
    float da = 0.0f;
    double loss = rotation_train_loss(&rp->mp, net->params, angle, net->grads, NULL);
    rp->mode = keep;
    optim_step(opt, net->params, net->grads, lr);
    if (h == NULL) {
        if (info != NULL) *info = (struct hyper_info){NAN, NAN, NAN};
        return loss;
    }
    // (2) hypergradient around the updated theta, (3) meta step on the angle
    hyper_grad(h, &rp->mp, net->params, angle, rng, &da, info);
    optim_step(meta_opt, angle, &da, meta_lr);
    return loss;
}
