/* netloss.c - the shared part of the image-classifier meta-problems (netloss.h). */
#include "netloss.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "nn/loss.h"
#include "nn/net.h"

void net_batches_init(struct net_batches *b, struct net *net)
{
    EG_ASSERT(b != NULL && net != NULL && net->params != NULL); // finalized
    struct shape out = net_out_shape(net);
    EG_ASSERT(out.h == 1 && out.w == 1 && out.c >= 1);
    *b = (struct net_batches){.net = net, .classes = out.c};
    b->saved = eg_xmalloc_floats(net->nparams);
}

void net_batches_deinit(struct net_batches *b)
{
    if (b == NULL) return;
    free(b->saved);
    free(b->losses);
    free(b->dlosses);
    free(b->dlogits);
    free(b->tlosses);
    free(b->tdlogits);
    *b = (struct net_batches){0};
}

bool net_batches_set(struct net_batches *b, const float *x, const int32_t *y, size_t n,
                     const float *xv, const int32_t *yv, size_t m)
{
    EG_ASSERT(b != NULL && x != NULL && y != NULL && n >= 1);
    EG_ASSERT((xv != NULL && yv != NULL && m >= 1) || (xv == NULL && m == 0));
    b->x = x;
    b->y = y;
    b->n = n;
    b->xv = xv;
    b->yv = yv;
    b->m = m;
    const size_t need = n > m ? n : m;
    if (need <= b->cap) return false;
    free(b->losses);
    free(b->dlosses);
    free(b->dlogits);
    b->losses = eg_xmalloc_floats(need);
    b->dlosses = eg_xmalloc_floats(need);
    b->dlogits = eg_xmalloc_array(need, b->classes * sizeof(float));
    b->cap = need;
    return true;
}

const float *net_batches_forward_tangent(struct net_batches *b, const float *x,
                                         enum layer_mode mode, const float *u, const float **tz)
{
    if (b->tcap < b->cap) {
        free(b->tlosses);
        free(b->tdlogits);
        b->tlosses = eg_xmalloc_floats(b->cap);
        b->tdlogits = eg_xmalloc_array(b->cap, b->classes * sizeof(float));
        b->tcap = b->cap;
    }
    return net_forward_tangent(b->net, x, NULL, b->n, mode, u, tz);
}

void net_batches_backward_tangent(struct net_batches *b, const float *logits,
                                  const float *dlosses, float *dtheta, float *hvp, float *dx,
                                  float *tdx)
{
    struct net *net = b->net;
    xent_backward(logits, b->y, dlosses, b->n, b->classes, b->dlogits);
    net_zero_grad(net);
    if (hvp != NULL) memset(hvp, 0, net->nparams * sizeof(float));
    net_backward_tangent(net, b->dlogits, b->tdlogits, hvp, dx, tdx);
    if (dtheta != NULL) net_copy_grads(net, dtheta);
}

void net_copy_grads(const struct net *net, float *dtheta)
{
    if (dtheta != net->grads) memcpy(dtheta, net->grads, net->nparams * sizeof(float));
}

double net_mean_xent_at(struct net *net, float *saved, const float *theta, const float *x,
                        const int32_t *y, size_t m, enum layer_mode mode, float *losses,
                        float *dlogits, float *dtheta, size_t *correct)
{
    EG_ASSERT(x != NULL && y != NULL && m >= 1);
    const size_t C = net_out_shape(net).c;
    net_swap_in(net, saved, theta);
    const float *logits = net_forward(net, x, m, mode);
    double L = xent_forward(logits, y, m, C, losses) / (double)m;
    if (correct != NULL) *correct = xent_correct(logits, y, m, C);
    if (dtheta != NULL) {
        xent_backward(logits, y, NULL, m, C, dlogits); // dlosses NULL: 1/m each, the mean
        net_zero_grad(net);
        net_backward(net, dlogits, NULL);
        net_copy_grads(net, dtheta);
    }
    net_swap_out(net, saved, theta);
    return L;
}

double net_batches_val_loss(struct net_batches *b, const float *theta, enum layer_mode mode,
                            float *dtheta)
{
    EG_ASSERT(b->xv != NULL);
    return net_mean_xent_at(b->net, b->saved, theta, b->xv, b->yv, b->m, mode, b->losses,
                            b->dlogits, dtheta, NULL);
}
