/* mwn.c - Meta-Weight-Net's weighting network, weighted loss, meta-problem and iteration
 * (mwn.h). The network runs at theta by swapping theta into net->params for the call. */
#include "mwn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "meta/netloss.h"
#include "nn/loss.h"

size_t mwn_vnet_size(size_t hidden)
{
    return 3 * hidden + 1;
}

// Views of lambda: fc1.weight, fc1.bias, fc2.weight (h each), fc2.bias (1).
struct vnet_view {
    const float *w1, *b1, *w2, *b2;
};

static struct vnet_view view_of(const float *lambda, size_t h)
{
    return (struct vnet_view){lambda, lambda + h, lambda + 2 * h, lambda + 3 * h};
}

void mwn_vnet_init(float *lambda, size_t hidden, struct rng *rng)
{
    EG_ASSERT(lambda != NULL && hidden >= 1 && rng != NULL);
    // nn.Linear: weight kaiming_uniform(a = sqrt(5)) and bias both U(-1/sqrt(fan_in), ..)
    const float b1 = 1.0f, b2 = (float)(1.0 / sqrt((double)hidden));
    rng_fill_uniform(rng, lambda, hidden, -b1, b1);              // fc1.weight
    rng_fill_uniform(rng, lambda + hidden, hidden, -b1, b1);     // fc1.bias
    rng_fill_uniform(rng, lambda + 2 * hidden, hidden, -b2, b2); // fc2.weight
    rng_fill_uniform(rng, lambda + 3 * hidden, 1, -b2, b2);      // fc2.bias
}

static double sigmoid(double z)
{
    if (z >= 0.0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

// The pre-activation of the output for input c.
static double vnet_logit(struct vnet_view w, size_t h, double c)
{
    double z = (double)w.b2[0];
    for (size_t j = 0; j < h; j++) {
        double a = (double)w.w1[j] * c + (double)w.b1[j];
        if (a > 0.0) z += (double)w.w2[j] * a;
    }
    return z;
}

void mwn_vnet_forward(const float *lambda, size_t hidden, const float *c, size_t n, double *v)
{
    struct vnet_view w = view_of(lambda, hidden);
    for (size_t i = 0; i < n; i++) v[i] = sigmoid(vnet_logit(w, hidden, (double)c[i]));
}

void mwn_vnet_backward(const float *lambda, size_t hidden, const float *c, const double *dv,
                       size_t n, float *dlambda)
{
    const size_t h = hidden, H = mwn_vnet_size(h);
    struct vnet_view w = view_of(lambda, h);
    double *acc = eg_xcalloc(H, sizeof *acc);
    double *dw1 = acc, *db1 = acc + h, *dw2 = acc + 2 * h, *db2 = acc + 3 * h;
    for (size_t i = 0; i < n; i++) {
        const double ci = (double)c[i];
        const double s = sigmoid(vnet_logit(w, h, ci));
        const double dz = dv[i] * s * (1.0 - s);
        db2[0] += dz;
        for (size_t j = 0; j < h; j++) {
            double a = (double)w.w1[j] * ci + (double)w.b1[j];
            if (a <= 0.0) continue; // ReLU: no gradient below (and at) zero, as PyTorch
            dw2[j] += dz * a;
            double da = dz * (double)w.w2[j];
            dw1[j] += da * ci;
            db1[j] += da;
        }
    }
    for (size_t k = 0; k < H; k++) dlambda[k] = (float)acc[k];
    free(acc);
}

double mwn_weighted_loss(const float *c, const double *v, size_t n, double *dc, double *dv)
{
    double S = 0.0, num = 0.0;
    for (size_t i = 0; i < n; i++) {
        S += v[i];
        num += (double)c[i] * v[i];
    }
    if (!(S != 0.0)) { // the reference's guard: no normalisation when sum v = 0 (then l = 0)
        for (size_t i = 0; i < n; i++) {
            if (dc != NULL) dc[i] = v[i];
            if (dv != NULL) dv[i] = (double)c[i];
        }
        return num;
    }
    const double L = num / S;
    for (size_t i = 0; i < n; i++) {
        if (dc != NULL) dc[i] = v[i] / S;
        if (dv != NULL) dv[i] = ((double)c[i] - L) / S;
    }
    return L;
}

// ---------------------------------------------------------------------------------------------
// the meta-problem

// V's inputs for the training batch's losses just computed (b->losses): the anchor when one is
// recorded, else those losses, recorded as the anchor when it is armed.
static const float *vnet_inputs(struct mwn_problem *pr)
{
    struct net_batches *b = &pr->b;
    if (pr->anchored) return pr->anchor;
    if (pr->anchor_armed) {
        memcpy(pr->anchor, b->losses, b->n * sizeof(float));
        pr->anchor_armed = false;
        pr->anchored = true;
    }
    return b->losses;
}

// The weighted loss of the training batch at the net's current parameters in `mode`, with V's
// weights from lambda (or all 1 when lambda is NULL). Leaves pr->losses = c, pr->v = v. With
// dtheta, adds nothing: net->grads is overwritten with dl/dtheta (V's input detached). With
// dlambda, writes dl/dlambda.
static double weighted_pass(struct mwn_problem *pr, const float *lambda, enum layer_mode mode,
                            bool want_dtheta, float *dlambda)
{
    struct net_batches *b = &pr->b;
    struct net *net = b->net;
    const size_t n = b->n, C = b->classes;
    const float *logits = net_forward(net, b->x, n, mode);
    xent_forward(logits, b->y, n, C, b->losses);
    const float *inputs = vnet_inputs(pr);
    if (lambda != NULL) {
        mwn_vnet_forward(lambda, pr->hidden, inputs, n, pr->v);
    } else {
        for (size_t i = 0; i < n; i++) pr->v[i] = 1.0;
    }
    double L = mwn_weighted_loss(b->losses, pr->v, n, pr->dc, pr->dv);
    if (dlambda != NULL) {
        EG_ASSERT(lambda != NULL);
        mwn_vnet_backward(lambda, pr->hidden, inputs, pr->dv, n, dlambda);
    }
    if (want_dtheta) {
        for (size_t i = 0; i < n; i++) b->dlosses[i] = (float)pr->dc[i];
        xent_backward(logits, b->y, b->dlosses, n, C, b->dlogits);
        net_zero_grad(net);
        net_backward(net, b->dlogits, NULL);
    }
    return L;
}

static double mwn_train_loss(struct meta_problem *p, const float *theta, const float *lambda,
                             float *dtheta, float *dlambda)
{
    struct mwn_problem *pr = p->ctx;
    struct net *net = pr->b.net;
    EG_ASSERT(pr->b.x != NULL);
    net_swap_in(net, pr->b.saved, theta);
    double L = weighted_pass(pr, lambda, pr->mode, dtheta != NULL, dlambda);
    if (dtheta != NULL) net_copy_grads(net, dtheta);
    net_swap_out(net, pr->b.saved, theta);
    return L;
}

// train_loss with its tangent along u (problem.h). V's inputs are constants of the tangent as of
// the gradient (detached; the anchor when armed), so the weights v do not move with theta: with
// tc_i the tangents of the cross-entropies, dl/dc_i = v_i / S stays fixed (tdlogits is the
// cross-entropy's own tangent) and dl/dv_i = (c_i - l) / S moves by (tc_i - tl) / S, tl =
// sum_i tc_i v_i / S (tc_i without the normalisation when S = 0); V's backward is linear in
// dl/dv, so mixed = V's backward applied to that tangent.
static double mwn_train_loss_tangent(struct meta_problem *p, const float *theta,
                                     const float *lambda, const float *u, float *dtheta,
                                     float *dlambda, float *hvp, float *mixed)
{
    struct mwn_problem *pr = p->ctx;
    struct net_batches *b = &pr->b;
    struct net *net = b->net;
    const size_t n = b->n, C = b->classes;
    EG_ASSERT(b->x != NULL && lambda != NULL && u != NULL);
    net_swap_in(net, b->saved, theta);
    const float *tz;
    const float *logits = net_batches_forward_tangent(b, b->x, pr->mode, u, &tz);
    xent_forward(logits, b->y, n, C, b->losses);
    const float *inputs = vnet_inputs(pr);
    mwn_vnet_forward(lambda, pr->hidden, inputs, n, pr->v);
    const double L = mwn_weighted_loss(b->losses, pr->v, n, pr->dc, pr->dv);
    if (dlambda != NULL) mwn_vnet_backward(lambda, pr->hidden, inputs, pr->dv, n, dlambda);
    for (size_t i = 0; i < n; i++) b->dlosses[i] = (float)pr->dc[i];
    xent_tangent(logits, b->y, b->dlosses, tz, NULL, n, C, b->tdlogits, b->tlosses);
    if (mixed != NULL) {
        double S = 0.0, tnum = 0.0;
        for (size_t i = 0; i < n; i++) {
            S += pr->v[i];
            tnum += (double)b->tlosses[i] * pr->v[i];
        }
        const bool norm = S != 0.0; // mwn_weighted_loss's guard
        for (size_t i = 0; i < n; i++) {
            pr->tdv[i] = norm ? ((double)b->tlosses[i] - tnum / S) / S : (double)b->tlosses[i];
        }
        mwn_vnet_backward(lambda, pr->hidden, inputs, pr->tdv, n, mixed);
    }
    if (dtheta != NULL || hvp != NULL) {
        net_batches_backward_tangent(b, logits, b->dlosses, dtheta, hvp, NULL, NULL);
    }
    net_swap_out(net, b->saved, theta);
    return L;
}

static double mwn_val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    struct mwn_problem *pr = p->ctx;
    return net_batches_val_loss(&pr->b, theta, pr->mode, dtheta);
}

static const struct meta_problem_ops mwn_ops = {
    .train_loss = mwn_train_loss,
    .val_loss = mwn_val_loss,
    .train_loss_tangent = mwn_train_loss_tangent,
};

struct mwn_problem *mwn_problem_new(struct net *net, size_t hidden)
{
    EG_ASSERT(hidden >= 1);
    struct mwn_problem *pr = eg_xcalloc(1, sizeof *pr);
    net_batches_init(&pr->b, net);
    pr->mp = (struct meta_problem){.ops = &mwn_ops,
                                   .P = net->nparams,
                                   .H = mwn_vnet_size(hidden),
                                   .rng = NULL,
                                   .ctx = pr};
    pr->hidden = hidden;
    pr->mode = LAYER_MODE_TRAIN_FROZEN;
    pr->hg = eg_xmalloc_floats(pr->mp.H);
    return pr;
}

static void free_buffers(struct mwn_problem *pr)
{
    free(pr->anchor);
    free(pr->v);
    free(pr->dv);
    free(pr->dc);
    free(pr->tdv);
}

void mwn_problem_free(struct mwn_problem *pr)
{
    if (pr == NULL) return;
    net_batches_deinit(&pr->b);
    free_buffers(pr);
    free(pr->hg);
    free(pr);
}

void mwn_problem_set_batches(struct mwn_problem *pr, const float *x, const int32_t *y, size_t n,
                             const float *xv, const int32_t *yv, size_t m)
{
    EG_ASSERT(pr != NULL);
    pr->anchor_armed = false;
    pr->anchored = false;
    if (!net_batches_set(&pr->b, x, y, n, xv, yv, m)) return;
    free_buffers(pr);
    const size_t cap = pr->b.cap;
    pr->anchor = eg_xmalloc_floats(cap);
    pr->v = eg_xmalloc_array(cap, sizeof *pr->v);
    pr->dv = eg_xmalloc_array(cap, sizeof *pr->dv);
    pr->dc = eg_xmalloc_array(cap, sizeof *pr->dc);
    pr->tdv = eg_xmalloc_array(cap, sizeof *pr->tdv);
}

void mwn_problem_anchor_next(struct mwn_problem *pr)
{
    EG_ASSERT(pr != NULL);
    pr->anchor_armed = true;
    pr->anchored = false;
}

double mwn_step(struct mwn_problem *pr, struct optim *opt, float lr, const struct meta_step *meta,
                float *lambda, struct mwn_step_info *info)
{
    struct net *net = pr->b.net;
    const size_t n = pr->b.n, H = pr->mp.H;
    struct hyper *h = meta != NULL ? meta->hyper : NULL;
    EG_ASSERT(lambda != NULL || h == NULL); // uniform weights only with method none
    struct hyper_info hi = {NAN, NAN, NAN};
    // (1) the meta-step at the current theta
    if (h != NULL) {
        EG_ASSERT(pr->b.xv != NULL && meta->opt != NULL && meta->opt->P == H);
        if (hyper_method_is_unrolled(hyper_method_of(h))) mwn_problem_anchor_next(pr);
        hyper_grad(h, &pr->mp, net->params, lambda, meta->rng, pr->hg, &hi);
        pr->anchor_armed = false;
        pr->anchored = false;
        optim_step(meta->opt, lambda, pr->hg, meta->lr);
    }
    // (2) the base step with the updated weighting network
    double L = weighted_pass(pr, lambda, LAYER_MODE_TRAIN, true, NULL);
    optim_step(opt, net->params, net->grads, lr);
    if (info != NULL) {
        double ce = 0.0;
        for (size_t i = 0; i < n; i++) ce += (double)pr->b.losses[i];
        *info = (struct mwn_step_info){
            .train_ce = ce / (double)n, .weighted_loss = L, .weights = pr->v, .hyper = hi};
    }
    return L;
}
