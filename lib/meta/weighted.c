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

// dtheta = net->grads (P), unless they are the same buffer.
static void copy_grads(const struct net *net, float *dtheta)
{
    if (dtheta != net->grads) memcpy(dtheta, net->grads, net->nparams * sizeof(float));
}

static double weighted_train_loss(struct meta_problem *p, const float *theta,
                                  const float *lambda, float *dtheta, float *dlambda)
{
    struct weighted_problem *wp = p->ctx;
    struct net *net = wp->net;
    const size_t n = wp->n, C = wp->classes;
    EG_ASSERT(wp->x != NULL);

    net_swap_in(wp->net, wp->saved, theta);
    const float *logits = net_forward(net, wp->x, n, wp->train_mode);
    xent_forward(logits, wp->labels, n, C, wp->losses);
    // l_T = sum_i lambda_i c_i / n, summed in double
    double L = 0.0;
    for (size_t i = 0; i < n; i++) L += (double)lambda[i] * (double)wp->losses[i];
    L /= (double)n;
    if (dlambda != NULL) {
        for (size_t i = 0; i < n; i++) dlambda[i] = (float)((double)wp->losses[i] / (double)n);
    }
    if (dtheta != NULL) {
        // dl_T/dc_i = lambda_i / n
        for (size_t i = 0; i < n; i++) wp->dlosses[i] = (float)((double)lambda[i] / (double)n);
        xent_backward(logits, wp->labels, wp->dlosses, n, C, wp->dlogits);
        net_zero_grad(net);
        net_backward(net, wp->dlogits, NULL);
        copy_grads(net, dtheta);
    }
    net_swap_out(wp->net, wp->saved, theta);
    return L;
}

static double weighted_val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    struct weighted_problem *wp = p->ctx;
    return net_mean_xent_at(wp->net, wp->saved, theta, wp->xv, wp->labels_v, wp->m, wp->val_mode,
                            wp->losses, wp->dlogits, dtheta);
}

static const struct meta_problem_ops weighted_ops = {
    .train_loss = weighted_train_loss,
    .val_loss = weighted_val_loss,
};

static bool mode_allowed(enum layer_mode mode)
{
    return mode == LAYER_MODE_TRAIN_FROZEN || mode == LAYER_MODE_EVAL;
}

struct weighted_problem *weighted_problem_new(struct net *net, size_t n,
                                              enum layer_mode train_mode,
                                              enum layer_mode val_mode)
{
    EG_ASSERT(net != NULL && net->params != NULL); // finalized
    EG_ASSERT(n >= 1);
    EG_ASSERT(mode_allowed(train_mode) && mode_allowed(val_mode));
    struct shape out = net_out_shape(net);
    EG_ASSERT(out.h == 1 && out.w == 1 && out.c >= 1);

    struct weighted_problem *wp = eg_xcalloc(1, sizeof(*wp));
    wp->mp = (struct meta_problem){
        .ops = &weighted_ops, .P = net->nparams, .H = n, .rng = net->rng, .ctx = wp};
    wp->net = net;
    wp->classes = out.c;
    wp->train_mode = train_mode;
    wp->val_mode = val_mode;
    wp->saved = eg_xmalloc_floats(net->nparams);
    return wp;
}

void weighted_problem_free(struct weighted_problem *wp)
{
    if (wp == NULL) return;
    free(wp->saved);
    free(wp->losses);
    free(wp->dlosses);
    free(wp->dlogits);
    free(wp);
}

void weighted_problem_set_batches(struct weighted_problem *wp, const float *x,
                                  const int32_t *labels, size_t n, const float *xv,
                                  const int32_t *labels_v, size_t m)
{
    EG_ASSERT(wp != NULL && x != NULL && labels != NULL && xv != NULL && labels_v != NULL);
    EG_ASSERT(n == wp->mp.H);
    EG_ASSERT(m >= 1);
    size_t need = n > m ? n : m;
    if (need > wp->cap) {
        free(wp->losses);
        free(wp->dlosses);
        free(wp->dlogits);
        wp->losses = eg_xmalloc_floats(need);
        wp->dlosses = eg_xmalloc_floats(need);
        wp->dlogits = eg_xmalloc_array(need, wp->classes * sizeof(float));
        wp->cap = need;
    }
    wp->x = x;
    wp->labels = labels;
    wp->n = n;
    wp->xv = xv;
    wp->labels_v = labels_v;
    wp->m = m;
}
