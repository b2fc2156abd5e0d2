/* lft.h - cross-domain few-shot classification with learned feature-wise transformations (LFT,
 * Tseng et al. ICLR 2020) as the EvoGrad code meta-learns it (paper-spec 3.3, 2.2, 1.4-1.6).
 *
 * The model: an encoder (resnet10/18/34 without head, FT layers after every block's second batch
 * norm and every shortcut batch norm, nn/backbones.h), the RelationNet module on its feature maps
 * (tasks/relation.h) and, optionally, an auxiliary classifier on the encoder's features: global
 * average pool, FC C -> C, ReLU, FC C -> C, ReLU, FC C -> aux classes (PyTorch default init; the
 * paper's 512 -> 512 -> 512 -> 64 on ResNet features).
 *
 * The split of the parameters. The encoder's parameter block is [weights | FT] (net.h:
 * nparams_hyper), so
 *   theta  = [encoder weights (P_enc) | relation module (P_rel)]    (P = P_enc + P_rel)
 *   lambda = the FT layers' gamma and beta (H = enc->nparams_hyper)
 * The auxiliary classifier is trained with theta but is not part of the meta-problem: the episode
 * losses do not use it.
 *
 * The meta-problem (problem.h), on the current pseudo-seen (PS) and pseudo-unseen (PU) episodes:
 *   l_T(theta, lambda) = the RelationNet loss of the PS episode, encoder in training mode without
 *                        touching the running statistics (LAYER_MODE_TRAIN_FROZEN): batch
 *                        statistics, FT on with fresh noise from p->rng on every forward (each
 *                        EvoGrad candidate draws its own, as the reference code)
 *   l_V(theta)         = the RelationNet loss of the PU episode, encoder in eval mode (running
 *                        statistics, FT off: l_V does not depend on lambda)
 * The relation module uses batch statistics in both. EvoGrad perturbs theta only (paper-spec 1.6:
 * every encoder and relation weight except FT).
 *
 * One iteration (lft_step), the reference order (paper-spec 1.5):
 *   (1) auxiliary loss: the encoder in eval mode (FT off) on the aux batch, mean cross-entropy of
 *       the classifier, weighted by aux_weight;
 *   (2) the PS episode in training mode (running statistics updated, FT on);
 *   (3) Adam on the encoder weights, the relation module and the classifier with the summed
 *       gradients (the FT gradients of (2) are dropped);
 *   (4) unless method none: the hypergradient around the updated theta on the same PS episode and
 *       the PU episode, and the meta optimiser's step on lambda. */
#ifndef EG_LFT_H
#define EG_LFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/hyper.h"
#include "meta/problem.h"
#include "nn/backbones.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "tasks/relation.h"

struct rng;

struct lft_model {
    struct net *enc;            // owned: the encoder, features_only, FT layers when spec.ft
    struct relation_head *rel;  // owned
    struct net *aux;            // owned: the auxiliary classifier, or NULL
    struct shape image, feat;   // input image and feature map shapes
    size_t P_enc, P_rel, H;     // see above; H = 0 without FT layers
    size_t aux_classes;
};

// Builds the model for images of shape `image`: encoder from spec (features_only is set here),
// relation module with RELATION_HIDDEN units, aux classifier when aux_classes > 0; initialised
// from rng in that order. spec must pass backbone_check (EG_ASSERT). Caller frees.
struct lft_model *lft_model_new(const struct backbone_spec *spec, struct shape image,
                                size_t aux_classes, struct rng *rng);
void lft_model_free(struct lft_model *m);

// The model's three networks as lft_model_new builds them, but not finalized (no parameter
// blocks, nothing initialised): for sizing a model that may be too large to build (nn/net.h:
// net_count, net_batch_bytes). aux is NULL when aux_classes is 0. spec must pass backbone_check
// (EG_ASSERT). The caller frees each with net_free.
struct lft_nets {
    struct net *enc, *rel, *aux;
};
void lft_model_build(const struct backbone_spec *spec, struct shape image, size_t aux_classes,
                     struct lft_nets *out);

// Total parameters of the encoder (weights and FT), the relation module and the classifier.
size_t lft_model_params(const struct lft_model *m);

// The RelationNet loss of one episode x (episode_images layout: n_way * shot support images, then
// n_way * queries query images, class-major) at the model's current parameters, the encoder in
// mode `mode` (FT noise from m->enc->rng in the training modes). When backward, dL/dparams are
// ADDED into the encoder's and the relation module's grads. *correct (unless NULL): queries
// classified correctly.
double lft_episode_loss(struct lft_model *m, const float *x, size_t n_way, size_t shot,
                        size_t queries, enum layer_mode mode, bool backward, size_t *correct);

// feats: (n, feat) NCHW written with the encoder's eval-mode features (FT off) of the n images x
// (NCHW, normalised), computed in chunks of at most `chunk` images.
void lft_features(struct lft_model *m, const float *x, size_t n, size_t chunk, float *feats);

struct lft_problem {
    struct meta_problem mp;  // P = P_enc + P_rel, H = m->H; rng = the FT noise generator
    struct lft_model *m;     // not owned
    const float *xs, *xu;    // PS and PU episodes (not owned)
    size_t n_way, shot, queries;
    // Owned work space.
    float *theta, *lambda, *hg; // (P), (H), (H): the meta-step's point and hypergradient
    float *saved;               // (enc->nparams + P_rel) the nets' own parameters during a call
    float *dfeat;               // episode feature gradients (dfeat_cap floats, grown on demand)
    size_t dfeat_cap;
    // train_loss_tangent's (allocated on its first call): the encoder's parameter direction
    // (enc->nparams, FT slice 0), the tangents of the encoder's and the module's gradients, and
    // of the feature gradients (tdfeat_cap floats)
    float *tenc, *tgrad_enc, *tgrad_rel, *tdfeat;
    size_t tdfeat_cap;
    float *aux_work;            // the auxiliary loss's buffers (aux_cap floats, grown on demand)
    size_t aux_cap;
};

// A problem on model m whose FT noise comes from rng (not owned; also set as m->enc->rng).
// Caller frees.
struct lft_problem *lft_problem_new(struct lft_model *m, struct rng *rng);
void lft_problem_free(struct lft_problem *pr);

// Fixes the PS episode xs and the PU episode xu (may be NULL when only l_T is used), both of
// n_way * (shot + queries) images; the pointers must stay valid while in use.
void lft_problem_set_episodes(struct lft_problem *pr, const float *xs, const float *xu,
                              size_t n_way, size_t shot, size_t queries);

// theta: (P) written with [encoder weights | relation module] of the model as it is; lambda: (H)
// with its FT parameters (either may be NULL).
void lft_problem_point(const struct lft_problem *pr, float *theta, float *lambda);

// The model's optimisers: Adam (or whatever the config says) over the encoder weights (P_enc),
// the relation module and the classifier, created together with the same settings.
struct lft_optims {
    struct optim *enc, *rel, *aux; // aux NULL without a classifier
};
void lft_optims_init(struct lft_optims *o, const struct lft_model *m,
                     const struct optim_params *p);
void lft_optims_deinit(struct lft_optims *o);

struct lft_step_info {
    double episode_loss;      // the PS episode's loss in step (2)
    double episode_acc;       // its query accuracy
    double aux_loss;          // mean cross-entropy of the aux batch (NaN without one)
    struct hyper_info hyper;  // from step (4); val_loss NaN for method none
};

// The auxiliary classifier's batch of one iteration: n images x (NCHW, normalised) with labels y
// of the aux domain's base classes, and the weight of their loss.
struct lft_aux {
    const float *x;
    const int32_t *y;
    size_t n;
    float weight;
};

// One iteration (above) on the episodes set (xu may be NULL for method none) and the aux batch
// (NULL, or n 0, without a classifier). meta NULL or meta->hyper NULL: method none. Returns the PS
// episode loss; info may be NULL.
double lft_step(struct lft_problem *pr, struct lft_optims *o, float lr, const struct lft_aux *aux,
                const struct meta_step *meta, struct lft_step_info *info);

#endif // EG_LFT_H
