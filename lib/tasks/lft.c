/* lft.c - the LFT few-shot model, its meta-problem and one training iteration (lft.h).
 *
 * The meta-problem's losses evaluate the nets at other parameters by copying theta and lambda
 * into their blocks and back (the swap costs two copies of ~12M floats at ResNet-10, small next
 * to the episode's forward). */
#include "lft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "nn/loss.h"

// The auxiliary classifier on feature maps of shape feat, not finalized.
static struct net *aux_build(struct shape feat, size_t aux_classes)
{
    const size_t C = feat.c;
    struct net *a = net_new(feat);
    size_t x = net_global_avgpool(a, 0);
    x = net_relu(a, net_linear(a, x, (struct linear_params){C, true, INIT_TORCH_DEFAULT}));
    x = net_relu(a, net_linear(a, x, (struct linear_params){C, true, INIT_TORCH_DEFAULT}));
    net_linear(a, x, (struct linear_params){aux_classes, true, INIT_TORCH_DEFAULT});
    return a;
}

void lft_model_build(const struct backbone_spec *spec, struct shape image, size_t aux_classes,
                     struct lft_nets *out)
{
    struct backbone_spec s = *spec;
    s.features_only = true;
    EG_ASSERT(backbone_check(&s, image, 2) == NULL);
    out->enc = backbone_build(&s, image, 0);
    const struct shape feat = net_out_shape(out->enc);
    out->rel = relation_module_build(feat, RELATION_HIDDEN);
    out->aux = aux_classes > 0 ? aux_build(feat, aux_classes) : NULL;
}

struct lft_model *lft_model_new(const struct backbone_spec *spec, struct shape image,
                                size_t aux_classes, struct rng *rng)
{
    struct backbone_spec s = *spec;
    s.features_only = true;
    EG_ASSERT(backbone_check(&s, image, 2) == NULL);
    struct lft_model *m = eg_xcalloc(1, sizeof *m);
    m->image = image;
    m->enc = backbone_new(&s, image, 0, rng);
    m->feat = net_out_shape(m->enc);
    m->H = m->enc->nparams_hyper;
    m->P_enc = m->enc->nparams - m->H;
    m->rel = relation_head_new(m->feat, RELATION_HIDDEN, rng);
    m->P_rel = m->rel->net->nparams;
    m->aux_classes = aux_classes;
    if (aux_classes > 0) {
        m->aux = aux_build(m->feat, aux_classes);
        net_finalize(m->aux, rng);
    }
    return m;
}

void lft_model_free(struct lft_model *m)
{
    if (m == NULL) return;
    net_free(m->enc);
    relation_head_free(m->rel);
    net_free(m->aux);
    free(m);
}

size_t lft_model_params(const struct lft_model *m)
{
    return m->enc->nparams + m->P_rel + (m->aux != NULL ? m->aux->nparams : 0);
}

// The episode loss at the model's parameters; backward (into the nets' grads) when dfeat, the
// episode's feature-gradient buffer, is not NULL.
static double episode_loss(struct lft_model *m, const float *x, size_t n_way, size_t shot,
                           size_t queries, enum layer_mode mode, float *dfeat, size_t *correct)
{
    const size_t ns = n_way * shot, nq = n_way * queries, fn = shape_numel(m->feat);
    const float *f = net_forward(m->enc, x, ns + nq, mode);
    float *dfs = dfeat, *dfq = dfeat != NULL ? dfeat + ns * fn : NULL;
    double loss = relation_episode_loss(m->rel, f, f + ns * fn, n_way, shot, queries, dfs, dfq,
                                        correct);
    if (dfeat != NULL) net_backward(m->enc, dfeat, NULL);
    return loss;
}

double lft_episode_loss(struct lft_model *m, const float *x, size_t n_way, size_t shot,
                        size_t queries, enum layer_mode mode, bool backward, size_t *correct)
{
    float *dfeat = NULL;
    if (backward) dfeat = eg_xmalloc_floats(n_way * (shot + queries) * shape_numel(m->feat));
    double loss = episode_loss(m, x, n_way, shot, queries, mode, dfeat, correct);
    free(dfeat);
    return loss;
}

void lft_features(struct lft_model *m, const float *x, size_t n, size_t chunk, float *feats)
{
    EG_ASSERT(chunk > 0);
    const size_t in = shape_numel(m->image), fn = shape_numel(m->feat);
    for (size_t i = 0; i < n; i += chunk) {
        size_t b = n - i < chunk ? n - i : chunk;
        const float *f = net_forward(m->enc, x + i * in, b, LAYER_MODE_EVAL);
        memcpy(feats + i * fn, f, b * fn * sizeof *feats);
    }
}

// ---------------------------------------------------------------------------------------------
// the meta-problem

// Copies theta (and lambda unless NULL) into the nets, keeping their own values in pr->saved.
static void swap_in(struct lft_problem *pr, const float *theta, const float *lambda)
{
    struct lft_model *m = pr->m;
    float *rp = m->rel->net->params;
    memcpy(pr->saved, m->enc->params, m->enc->nparams * sizeof(float));
    memcpy(pr->saved + m->enc->nparams, rp, m->P_rel * sizeof(float));
    memcpy(m->enc->params, theta, m->P_enc * sizeof(float));
    memcpy(rp, theta + m->P_enc, m->P_rel * sizeof(float));
    if (lambda != NULL && m->H > 0) {
        memcpy(m->enc->params + m->P_enc, lambda, m->H * sizeof(float));
    }
}

static void swap_out(struct lft_problem *pr)
{
    struct lft_model *m = pr->m;
    memcpy(m->enc->params, pr->saved, m->enc->nparams * sizeof(float));
    memcpy(m->rel->net->params, pr->saved + m->enc->nparams, m->P_rel * sizeof(float));
}

// Gradients of the last backward: dtheta = [encoder weights | relation], dlambda = FT.
static void copy_grads(const struct lft_problem *pr, float *dtheta, float *dlambda)
{
    const struct lft_model *m = pr->m;
    if (dtheta != NULL) {
        memcpy(dtheta, m->enc->grads, m->P_enc * sizeof(float));
        memcpy(dtheta + m->P_enc, m->rel->net->grads, m->P_rel * sizeof(float));
    }
    if (dlambda != NULL && m->H > 0) {
        memcpy(dlambda, m->enc->grads + m->P_enc, m->H * sizeof(float));
    }
}

static double problem_loss(struct lft_problem *pr, const float *x, enum layer_mode mode,
                           const float *theta, const float *lambda, float *dtheta,
                           float *dlambda)
{
    struct lft_model *m = pr->m;
    EG_ASSERT(x != NULL);
    swap_in(pr, theta, lambda);
    bool grad = dtheta != NULL || dlambda != NULL;
    if (grad) {
        net_zero_grad(m->enc);
        net_zero_grad(m->rel->net);
    }
    double loss = episode_loss(m, x, pr->n_way, pr->shot, pr->queries, mode,
                               grad ? pr->dfeat : NULL, NULL);
    if (grad) copy_grads(pr, dtheta, dlambda);
    swap_out(pr);
    return loss;
}

static double lft_train_loss(struct meta_problem *p, const float *theta, const float *lambda,
                             float *dtheta, float *dlambda)
{
    struct lft_problem *pr = p->ctx;
    pr->m->enc->rng = p->rng;
    return problem_loss(pr, pr->xs, LAYER_MODE_TRAIN_FROZEN, theta, lambda, dtheta, dlambda);
}

// train_loss with its tangent along u = [encoder weights' direction | relation module's]
// (problem.h): the encoder's tangent pass (FT's direction 0: lambda is not moved) gives the
// features' tangent, the relation module's tangent pass the episode loss's, and the encoder's
// tangent backward the Hessian-vector product of its weights and, in its FT slice, the mixed
// product. Under the FT noise of the train_loss call it replaces (the forward draws it, the
// tangent uses the same draw).
static double lft_train_loss_tangent(struct meta_problem *p, const float *theta,
                                     const float *lambda, const float *u, float *dtheta,
                                     float *dlambda, float *hvp, float *mixed)
{
    struct lft_problem *pr = p->ctx;
    struct lft_model *m = pr->m;
    EG_ASSERT(pr->xs != NULL && u != NULL);
    m->enc->rng = p->rng;
    const size_t E = m->enc->nparams, R = m->P_rel, fn = shape_numel(m->feat);
    const size_t ns = pr->n_way * pr->shot, nq = pr->n_way * pr->queries;
    if (pr->tenc == NULL) {
        pr->tenc = eg_xcalloc_floats(E); // the FT slice stays 0
        pr->tgrad_enc = eg_xmalloc_floats(E);
        pr->tgrad_rel = eg_xmalloc_floats(R);
    }
    eg_grow_floats(&pr->tdfeat, &pr->tdfeat_cap, (ns + nq) * fn);
    memcpy(pr->tenc, u, m->P_enc * sizeof(float));
    swap_in(pr, theta, lambda);
    net_zero_grad(m->enc);
    net_zero_grad(m->rel->net);
    memset(pr->tgrad_enc, 0, E * sizeof(float));
    memset(pr->tgrad_rel, 0, R * sizeof(float));

    const float *tf;
    const float *f = net_forward_tangent(m->enc, pr->xs, NULL, ns + nq, LAYER_MODE_TRAIN_FROZEN,
                                         pr->tenc, &tf);
    double loss = relation_episode_loss_tangent(
        m->rel, f, f + ns * fn, tf, tf + ns * fn, u + m->P_enc, pr->n_way, pr->shot, pr->queries,
        pr->dfeat, pr->dfeat + ns * fn, pr->tdfeat, pr->tdfeat + ns * fn, pr->tgrad_rel);
    net_backward_tangent(m->enc, pr->dfeat, pr->tdfeat, pr->tgrad_enc, NULL, NULL);
    copy_grads(pr, dtheta, dlambda);
    if (hvp != NULL) {
        memcpy(hvp, pr->tgrad_enc, m->P_enc * sizeof(float));
        memcpy(hvp + m->P_enc, pr->tgrad_rel, R * sizeof(float));
    }
    if (mixed != NULL && m->H > 0) memcpy(mixed, pr->tgrad_enc + m->P_enc, m->H * sizeof(float));
    swap_out(pr);
    return loss;
}

static double lft_val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    struct lft_problem *pr = p->ctx;
    return problem_loss(pr, pr->xu, LAYER_MODE_EVAL, theta, NULL, dtheta, NULL);
}

static const struct meta_problem_ops lft_ops = {
    .train_loss = lft_train_loss,
    .val_loss = lft_val_loss,
    .train_loss_tangent = lft_train_loss_tangent,
};

struct lft_problem *lft_problem_new(struct lft_model *m, struct rng *rng)
{
    struct lft_problem *pr = eg_xcalloc(1, sizeof *pr);
    const size_t P = m->P_enc + m->P_rel;
    pr->m = m;
    pr->mp = (struct meta_problem){.ops = &lft_ops, .P = P, .H = m->H, .rng = rng, .ctx = pr};
    m->enc->rng = rng;
    pr->theta = eg_xmalloc_floats(P);
    pr->lambda = eg_xmalloc_floats(m->H > 0 ? m->H : 1);
    pr->hg = eg_xmalloc_floats(m->H > 0 ? m->H : 1);
    pr->saved = eg_xmalloc_floats(m->enc->nparams + m->P_rel);
    return pr;
}

void lft_problem_free(struct lft_problem *pr)
{
    if (pr == NULL) return;
    free(pr->theta);
    free(pr->lambda);
    free(pr->hg);
    free(pr->saved);
    free(pr->dfeat);
    free(pr->tdfeat);
    free(pr->tenc);
    free(pr->tgrad_enc);
    free(pr->tgrad_rel);
    free(pr->aux_work);
    free(pr);
}

void lft_problem_set_episodes(struct lft_problem *pr, const float *xs, const float *xu,
                              size_t n_way, size_t shot, size_t queries)
{
    EG_ASSERT(n_way >= 2 && shot >= 1 && queries >= 1);
    pr->xs = xs;
    pr->xu = xu;
    pr->n_way = n_way;
    pr->shot = shot;
    pr->queries = queries;
    eg_grow_floats(&pr->dfeat, &pr->dfeat_cap, n_way * (shot + queries) * shape_numel(pr->m->feat));
}

void lft_problem_point(const struct lft_problem *pr, float *theta, float *lambda)
{
    const struct lft_model *m = pr->m;
    if (theta != NULL) {
        memcpy(theta, m->enc->params, m->P_enc * sizeof(float));
        memcpy(theta + m->P_enc, m->rel->net->params, m->P_rel * sizeof(float));
    }
    if (lambda != NULL && m->H > 0) {
        memcpy(lambda, m->enc->params + m->P_enc, m->H * sizeof(float));
    }
}

// ---------------------------------------------------------------------------------------------
// one iteration

void lft_optims_init(struct lft_optims *o, const struct lft_model *m, const struct optim_params *p)
{
    o->enc = optim_new(p, m->P_enc);
    o->rel = optim_new(p, m->P_rel);
    o->aux = m->aux != NULL ? optim_new(p, m->aux->nparams) : NULL;
}

void lft_optims_deinit(struct lft_optims *o)
{
    if (o == NULL) return;
    optim_free(o->enc);
    optim_free(o->rel);
    optim_free(o->aux);
    *o = (struct lft_optims){0};
}

// Step (1): the auxiliary loss; gradients added into the encoder's and the classifier's.
static double aux_loss(struct lft_problem *pr, float weight, const float *xa, const int32_t *ya,
                       size_t na)
{
    struct lft_model *m = pr->m;
    const size_t K = m->aux_classes, fn = shape_numel(m->feat);
    const float *f = net_forward(m->enc, xa, na, LAYER_MODE_EVAL);
    const float *logits = net_forward(m->aux, f, na, LAYER_MODE_EVAL);
    // losses, weights, dlogits, feature gradients
    float *losses = eg_grow_floats(&pr->aux_work, &pr->aux_cap, na * (2 + K + fn));
    float *w = losses + na, *dlogits = w + na, *df = dlogits + na * K;
    double loss = xent_forward(logits, ya, na, K, losses) / (double)na;
    for (size_t i = 0; i < na; i++) w[i] = weight / (float)na;
    xent_backward(logits, ya, w, na, K, dlogits);
    net_backward(m->aux, dlogits, df);
    net_backward(m->enc, df, NULL);
    return loss;
}

double lft_step(struct lft_problem *pr, struct lft_optims *o, float lr, const struct lft_aux *aux,
                const struct meta_step *meta, struct lft_step_info *info)
{
    struct lft_model *m = pr->m;
    struct lft_step_info si = {.aux_loss = NAN, .hyper = {NAN, NAN, NAN}};
    const bool use_aux = m->aux != NULL && aux != NULL && aux->n > 0;
    net_zero_grad(m->enc);
    net_zero_grad(m->rel->net);
    // (1) auxiliary classifier, encoder in eval mode
    if (use_aux) {
        net_zero_grad(m->aux);
        si.aux_loss = aux_loss(pr, aux->weight, aux->x, aux->y, aux->n);
    }
    // (2) the PS episode, training mode: running statistics updated, FT noise from the task rng
    m->enc->rng = pr->mp.rng;
    size_t correct = 0;
    si.episode_loss = episode_loss(m, pr->xs, pr->n_way, pr->shot, pr->queries,
                                   LAYER_MODE_TRAIN, pr->dfeat, &correct);
    si.episode_acc = (double)correct / (double)(pr->n_way * pr->queries);
    // (3) the model's step; the FT gradients (the tail of enc->grads) are not used
    optim_step(o->enc, m->enc->params, m->enc->grads, lr);
    optim_step(o->rel, m->rel->net->params, m->rel->net->grads, lr);
    if (o->aux != NULL && use_aux) optim_step(o->aux, m->aux->params, m->aux->grads, lr);
    // (4) the meta-step around the updated theta
    if (meta != NULL && meta->hyper != NULL && m->H > 0) {
        EG_ASSERT(pr->xu != NULL);
        lft_problem_point(pr, pr->theta, pr->lambda);
        hyper_grad(meta->hyper, &pr->mp, pr->theta, pr->lambda, meta->rng, pr->hg, &si.hyper);
        optim_step(meta->opt, pr->lambda, pr->hg, meta->lr);
        memcpy(m->enc->params + m->P_enc, pr->lambda, m->H * sizeof(float));
    }
    if (info != NULL) *info = si;
    return si.episode_loss;
}
