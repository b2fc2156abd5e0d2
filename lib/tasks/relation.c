/* relation.c - the RelationNet module, its softmax episode loss with backward, and the few-shot
 * test protocol on pre-extracted features (relation.h). The module is an ordinary net; this file
 * builds its pair batch (prototype ; query), reduces the pair gradients back to the support and
 * query features, and owns the work buffers, grown to the largest episode seen and reused. */
#include "relation.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/episode.h"
#include "nn/loss.h"
#include "nn/net.h"

// One conv block: conv3x3 (bias, pad) + BN (batch statistics only) + ReLU, then maxpool 2 when
// the map is at least 2x2 (the reference always pools; it never meets a smaller map).
static size_t relation_block(struct net *net, size_t x, size_t c_out, size_t pad)
{
    x = net_conv2d(net, x,
                   (struct conv2d_params){.c_out = c_out,
                                          .k = 3,
                                          .stride = 1,
                                          .pad = pad,
                                          .bias = true,
                                          .init = INIT_KAIMING_FAN_OUT});
    // CloserLookFewShot's RelationConvBlock: BatchNorm2d(track_running_stats=False).
    x = net_batchnorm(
        net, x,
        (struct batchnorm_params){.eps = 1e-5f, .momentum = 0.1f, .track_running_stats = false});
    x = net_relu(net, x);
    const struct shape s = net->node_shape[x];
    if (s.h >= 2 && s.w >= 2) x = net_maxpool(net, x, (struct pool_params){.k = 2, .stride = 2});
    return x;
}

struct net *relation_module_build(struct shape feat, size_t hidden)
{
    EG_ASSERT(shape_numel(feat) >= 1 && hidden >= 1);
    // The reference pads only small maps (RelationModule: padding = 1 if h < 10 and w < 10).
    const size_t pad = feat.h < 10 && feat.w < 10 ? 1 : 0;

    struct net *net = net_new((struct shape){2 * feat.c, feat.h, feat.w});
    size_t x = relation_block(net, 0, feat.c, pad);
    x = relation_block(net, x, feat.c, pad);
    x = net_flatten(net, x);
    x = net_relu(net, net_linear(net, x, (struct linear_params){.out = hidden, .bias = true}));
    net_linear(net, x, (struct linear_params){.out = 1, .bias = true});
    return net;
}

struct relation_head *relation_head_new(struct shape feat, size_t hidden, struct rng *rng)
{
    struct net *net = relation_module_build(feat, hidden);
    net_finalize(net, rng);

    struct relation_head *r = eg_xcalloc(1, sizeof *r);
    r->net = net;
    r->feat = feat;
    return r;
}

static void free_buffers(struct relation_head *r)
{
    free(r->tproto);
    free(r->tpairs);
    free(r->tdpairs);
    free(r->tdscores);
    r->tproto = r->tpairs = r->tdpairs = r->tdscores = NULL;
    r->tcap = 0;
    free(r->proto);
    free(r->pairs);
    free(r->dpairs);
    free(r->dscores);
    free(r->losses);
    free(r->labels);
}

void relation_head_free(struct relation_head *r)
{
    if (r == NULL) return;
    net_free(r->net);
    free_buffers(r);
    free(r);
}

// Makes the buffers hold an episode of `pairs` (query, class) pairs. proto holds up to `pairs`
// feature maps (n_way <= pairs); losses and labels one per query (queries <= pairs).
static void grow(struct relation_head *r, size_t pairs)
{
    if (pairs <= r->cap) return;
    const size_t numel = shape_numel(r->feat);
    free_buffers(r);
    r->proto = eg_xmalloc_array(pairs, numel * sizeof(float));
    r->pairs = eg_xmalloc_array(pairs, 2 * numel * sizeof(float));
    r->dpairs = eg_xmalloc_array(pairs, 2 * numel * sizeof(float));
    r->dscores = eg_xmalloc_floats(pairs);
    r->losses = eg_xmalloc_floats(pairs);
    r->labels = eg_xmalloc_array(pairs, sizeof *r->labels);
    r->cap = pairs;
}

// The module's pair batch (row i * n_way + j: channels [proto_j ; query_i]) of support maps fs
// and queries fq into pairs, with the prototypes in proto (n_way maps). Linear in (fs, fq), so
// it also builds the tangents' pairs from their tangents.
static void make_pairs(const struct relation_head *r, const float *fs, const float *fq,
                       size_t n_way, size_t k_shot, size_t q_query, float *proto, float *pairs)
{
    const size_t numel = shape_numel(r->feat), Q = n_way * q_query;
    // proto_j = mean of class j's k_shot support maps (class-major rows).
    const float inv_k = 1.0f / (float)k_shot;
    for (size_t j = 0; j < n_way; j++) {
        float *p = proto + j * numel;
        memcpy(p, fs + j * k_shot * numel, numel * sizeof(float));
        for (size_t s = 1; s < k_shot; s++) {
            const float *f = fs + (j * k_shot + s) * numel;
            for (size_t e = 0; e < numel; e++)
                p[e] += f[e];
        }
        for (size_t e = 0; e < numel; e++)
            p[e] *= inv_k;
    }
    // A channel concatenation of two NCHW maps is the concatenation of their flat (C, h, w)
    // blocks.
    for (size_t i = 0; i < Q; i++) {
        for (size_t j = 0; j < n_way; j++) {
            float *row = pairs + (i * n_way + j) * 2 * numel;
            memcpy(row, proto + j * numel, numel * sizeof(float));
            memcpy(row + numel, fq + i * numel, numel * sizeof(float));
        }
    }
}

// The adjoint of make_pairs: dfq, dfs overwritten from the pairs' gradient dpairs; work holds
// n_way maps. dL/dquery_i = sum_j dpair(i, j)[query half]; dL/dproto_j = sum_i dpair(i,
// j)[proto half], and each support map enters proto_j with weight 1/k.
static void reduce_pairs(const struct relation_head *r, const float *dpairs, size_t n_way,
                         size_t k_shot, size_t q_query, float *work, float *dfs, float *dfq)
{
    const size_t numel = shape_numel(r->feat), Q = n_way * q_query;
    const float inv_k = 1.0f / (float)k_shot;
    for (size_t i = 0; i < Q; i++) {
        float *dq = dfq + i * numel;
        memcpy(dq, dpairs + i * n_way * 2 * numel + numel, numel * sizeof(float));
        for (size_t j = 1; j < n_way; j++) {
            const float *d = dpairs + (i * n_way + j) * 2 * numel + numel;
            for (size_t e = 0; e < numel; e++)
                dq[e] += d[e];
        }
    }
    for (size_t j = 0; j < n_way; j++) {
        float *dp = work + j * numel;
        memcpy(dp, dpairs + j * 2 * numel, numel * sizeof(float));
        for (size_t i = 1; i < Q; i++) {
            const float *d = dpairs + (i * n_way + j) * 2 * numel;
            for (size_t e = 0; e < numel; e++)
                dp[e] += d[e];
        }
        for (size_t s = 0; s < k_shot; s++) {
            float *ds = dfs + (j * k_shot + s) * numel;
            for (size_t e = 0; e < numel; e++)
                ds[e] = dp[e] * inv_k;
        }
    }
}

static void set_labels(struct relation_head *r, size_t n_way, size_t q_query)
{
    for (size_t i = 0; i < n_way * q_query; i++) r->labels[i] = (int32_t)(i / q_query);
}

double relation_episode_loss(struct relation_head *r, const float *fs, const float *fq,
                             size_t n_way, size_t k_shot, size_t q_query, float *dfs, float *dfq,
                             size_t *correct)
{
    EG_ASSERT(n_way >= 1 && k_shot >= 1 && q_query >= 1);
    EG_ASSERT((dfs == NULL) == (dfq == NULL));
    const size_t Q = n_way * q_query, P = Q * n_way;
    grow(r, P);
    make_pairs(r, fs, fq, n_way, k_shot, q_query, r->proto, r->pairs);
    set_labels(r, n_way, q_query);

    // Batch statistics in every mode; the batch norms keep no running statistics to update.
    const float *scores = net_forward(r->net, r->pairs, P, LAYER_MODE_TRAIN); // (Q, n_way)
    double L = xent_forward(scores, r->labels, Q, n_way, r->losses) / (double)Q;
    if (correct != NULL) *correct = xent_correct(scores, r->labels, Q, n_way);
    if (dfs == NULL) return L;

    xent_backward(scores, r->labels, NULL, Q, n_way, r->dscores);
    net_backward(r->net, r->dscores, r->dpairs);
    reduce_pairs(r, r->dpairs, n_way, k_shot, q_query, r->proto, dfs, dfq);
    return L;
}

// The tangent buffers for `pairs` pairs (allocated on the first tangent call).
static void grow_tangent(struct relation_head *r, size_t pairs)
{
    if (pairs <= r->tcap) return;
    const size_t numel = shape_numel(r->feat);
    free(r->tproto);
    free(r->tpairs);
    free(r->tdpairs);
    free(r->tdscores);
    r->tproto = eg_xmalloc_array(pairs, numel * sizeof(float));
    r->tpairs = eg_xmalloc_array(pairs, 2 * numel * sizeof(float));
    r->tdpairs = eg_xmalloc_array(pairs, 2 * numel * sizeof(float));
    r->tdscores = eg_xmalloc_floats(pairs);
    r->tcap = pairs;
}

double relation_episode_loss_tangent(struct relation_head *r, const float *fs, const float *fq,
                                     const float *tfs, const float *tfq, const float *tparams,
                                     size_t n_way, size_t k_shot, size_t q_query, float *dfs,
                                     float *dfq, float *tdfs, float *tdfq, float *tgrads)
{
    EG_ASSERT(n_way >= 1 && k_shot >= 1 && q_query >= 1);
    EG_ASSERT(tfs != NULL && tfq != NULL && tparams != NULL);
    EG_ASSERT(dfs != NULL && dfq != NULL && tdfs != NULL && tdfq != NULL);
    const size_t Q = n_way * q_query, P = Q * n_way;
    grow(r, P);
    grow_tangent(r, P);
    make_pairs(r, fs, fq, n_way, k_shot, q_query, r->proto, r->pairs);
    make_pairs(r, tfs, tfq, n_way, k_shot, q_query, r->tproto, r->tpairs);
    set_labels(r, n_way, q_query);

    const float *tscores;
    const float *scores =
        net_forward_tangent(r->net, r->pairs, r->tpairs, P, LAYER_MODE_TRAIN, tparams, &tscores);
    double L = xent_forward(scores, r->labels, Q, n_way, r->losses) / (double)Q;
    xent_backward(scores, r->labels, NULL, Q, n_way, r->dscores);
    xent_tangent(scores, r->labels, NULL, tscores, NULL, Q, n_way, r->tdscores, NULL);
    net_backward_tangent(r->net, r->dscores, r->tdscores, tgrads, r->dpairs, r->tdpairs);
    reduce_pairs(r, r->dpairs, n_way, k_shot, q_query, r->proto, dfs, dfq);
    reduce_pairs(r, r->tdpairs, n_way, k_shot, q_query, r->tproto, tdfs, tdfq);
    return L;
}

// Copies the feature maps of images idx[0 .. n) into out: (n, numel).
static void gather(const float *feats, const size_t *idx, size_t n, size_t numel, float *out)
{
    for (size_t t = 0; t < n; t++) {
        memcpy(out + t * numel, feats + idx[t] * numel, numel * sizeof(float));
    }
}

enum eg_status relation_evaluate(struct relation_head *r, const float *feats,
                                 const struct class_index *ci, size_t n_way, size_t k_shot,
                                 size_t q_query, size_t episodes, struct rng *rng,
                                 const volatile sig_atomic_t *stop, double *acc,
                                 struct fewshot_result *res, struct eg_error *err)
{
    EG_ASSERT(n_way >= 1 && k_shot >= 1 && q_query >= 1 && episodes >= 1);
    const size_t numel = shape_numel(r->feat);
    const size_t S = n_way * k_shot, Q = n_way * q_query;
    float *fs = NULL, *fq = NULL;
    double mean = 0.0, m2 = 0.0; // Welford's running mean and sum of squared deviations
    for (size_t e = 0; e < episodes; e++) {
        if (stop != NULL && *stop != 0) {
            free(fs);
            free(fq);
            return EG_STOPPED;
        }
        struct episode ep;
        // Whether the classes suffice depends on ci alone, so only the first draw can fail:
        // acc, res and rng are then untouched.
        enum eg_status st = episode_sample(ci, n_way, k_shot, q_query, 0, rng, &ep, err);
        if (st != EG_OK) {
            EG_ASSERT(e == 0);
            return st;
        }
        if (fs == NULL) {
            fs = eg_xmalloc_array(S, numel * sizeof(float));
            fq = eg_xmalloc_array(Q, numel * sizeof(float));
        }
        gather(feats, ep.support, S, numel, fs);
        gather(feats, ep.query, Q, numel, fq);
        episode_deinit(&ep);
        size_t correct = 0;
        relation_episode_loss(r, fs, fq, n_way, k_shot, q_query, NULL, NULL, &correct);
        double a = (double)correct / (double)Q;
        if (acc != NULL) acc[e] = a;
        double d = a - mean;
        mean += d / (double)(e + 1);
        m2 += d * (a - mean);
    }
    free(fs);
    free(fq);

    // Population std (divisor `episodes`, np.std), as the reference's test script.
    const double E = (double)episodes;
    *res = (struct fewshot_result){
        .mean = mean, .ci95 = 1.96 * sqrt(m2 / E) / sqrt(E), .episodes = episodes};
    return EG_OK;
}
