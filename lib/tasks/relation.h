/* relation.h - RelationNet with the softmax loss (Sung et al. 2018; CloserLookFewShot's
 * relationnet_softmax, the only few-shot method the EvoGrad code meta-learns, paper-spec 3.3) on
 * encoder feature maps, and the few-shot test protocol on pre-extracted features.
 *
 * The relation module, for feature maps of shape (C, h, w), is a net (nn/net.h) on pairs of
 * shape (2C, h, w):
 *   block 1: conv3x3 2C -> C, bias, pad p; batch norm; ReLU; maxpool 2 (when h, w >= 2)
 *   block 2: conv3x3 C -> C, bias, pad p; batch norm; ReLU; maxpool 2 (when the map is >= 2)
 *   flatten; FC (C * h2 * w2) -> hidden (8), ReLU; FC hidden -> 1
 * with p = 1 when h < 10 and w < 10, else 0 (the reference pads the ResNets' 7x7 maps; 7 -> 3 ->
 * 1). A map smaller than 2x2 is not pooled (our extension: the reference never meets one; the
 * CPU-sized benchmark's 28x28 images give 1x1 features). Batch norm always uses the batch's own
 * statistics and keeps no running statistics, in every mode (paper-spec 6.5). Conv weights
 * N(0, 2 / (9 C_out)) (CloserLookFewShot's init_layer), biases and FCs PyTorch's default.
 * ResNet features (512, 7, 7): 7,085,073 parameters (conv 4,719,104 + 2,359,808, batch norms
 * 2 x 1,024, FCs 4,104 + 9).
 *
 * The episode loss. Support features fs: (n_way * k_shot, C, h, w), queries fq:
 * (n_way * q_query, C, h, w), both NCHW and class-major (class j owns rows j*k .. j*k + k - 1).
 *   proto_j = mean of class j's support features
 *   pair (i, j) = concat(proto_j, query_i) along channels, row i * n_way + j of the module's batch
 *   score[i][j] = module(pair (i, j)),  loss = mean_i CE(score[i], label i / q_query)
 * The module sees all Q * n_way pairs of an episode as one batch (its batch-norm statistics). */
#ifndef EG_RELATION_H
#define EG_RELATION_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "nn/layer.h"

struct net;
struct rng;
struct class_index;

#define RELATION_HIDDEN 8

struct relation_head {
    struct net *net;   // the relation module (owned); its params/grads are the module's
    struct shape feat; // (C, h, w) of one feature map
    // Everything below is work space, private to relation.c.
    size_t cap; // pairs the buffers hold
    float *proto, *pairs, *dpairs, *dscores, *losses;
    int32_t *labels;
    size_t tcap; // pairs the tangent buffers hold
    float *tproto, *tpairs, *tdpairs, *tdscores;
};

// Builds the module for feature maps of shape feat, initialised from rng. A shape that leaves no
// room for a 3x3 convolution (unpadded maps of 10 or more that shrink below 3 before block 2) is
// a bug (EG_ASSERT in conv2d). Caller frees with relation_head_free (NULL is a no-op).
struct relation_head *relation_head_new(struct shape feat, size_t hidden, struct rng *rng);
void relation_head_free(struct relation_head *r);
// The module's layers for feature maps of shape feat, not finalized (no parameter blocks): for
// sizing it without building it (nn/net.h: net_count, net_batch_bytes). Caller frees with
// net_free.
struct net *relation_module_build(struct shape feat, size_t hidden);

// The episode loss (above) in double; *correct (unless NULL) = number of queries whose largest
// score is at their own class (ties to the lowest index). When dfs and dfq are not NULL, also
// backward: dL/dparams of the module ADDED into r->net->grads, dfs (n_way * k_shot feature maps)
// and dfq (n_way * q_query) OVERWRITTEN with dL/d(support features) and dL/d(query features).
// Either both or neither of dfs, dfq. Requires n_way, k_shot, q_query >= 1 (EG_ASSERT). The
// module runs in LAYER_MODE_TRAIN (batch statistics; nothing else changes).
double relation_episode_loss(struct relation_head *r, const float *fs, const float *fq,
                             size_t n_way, size_t k_shot, size_t q_query, float *dfs, float *dfq,
                             size_t *correct);

// The episode loss with its tangent (forward-over-reverse, nn/net.h): along the features'
// tangents tfs, tfq and the module's parameter direction tparams (r->net->nparams), writes dfs,
// dfq as relation_episode_loss does (its backward), tdfs and tdfq with their tangents, adds
// dL/dparams into r->net->grads and their tangent into tgrads (r->net->nparams, unless NULL).
// Returns the loss. All pointers but tgrads required.
double relation_episode_loss_tangent(struct relation_head *r, const float *fs, const float *fq,
                                     const float *tfs, const float *tfq, const float *tparams,
                                     size_t n_way, size_t k_shot, size_t q_query, float *dfs,
                                     float *dfq, float *tdfs, float *tdfq, float *tgrads);

// The few-shot test protocol (paper-spec 3.3 "Test"): feats are the feature maps of a labelled
// image set, (n, C, h, w) NCHW, grouped by ci (over the same n images). Draws `episodes`
// episodes of n_way classes, k_shot support and q_query queries each (episode_sample, from rng),
// scores each with the module, and returns each episode's accuracy in acc (episodes values,
// unless NULL), their mean, and the half-width of the 95% interval 1.96 * std / sqrt(episodes)
// (std with divisor `episodes`, as numpy's np.std in the reference's test script).
// EG_ERR_ARG (message naming the shortfall) when the set has too few classes or images; acc, res
// and rng are then untouched. stop (NULL: never) is polled before every episode: once *stop is
// non-zero the call returns EG_STOPPED with res untouched (acc holds the episodes done, rng has
// moved on). n_way, k_shot, q_query, episodes >= 1 (EG_ASSERT). The module's params and grads
// are not changed.
struct fewshot_result {
    double mean, ci95;
    size_t episodes;
};
enum eg_status relation_evaluate(struct relation_head *r, const float *feats,
                                 const struct class_index *ci, size_t n_way, size_t k_shot,
                                 size_t q_query, size_t episodes, struct rng *rng,
                                 const volatile sig_atomic_t *stop, double *acc,
                                 struct fewshot_result *res, struct eg_error *err);

#endif // EG_RELATION_H
