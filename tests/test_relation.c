/* test_relation.c - the RelationNet module and its episode loss (lib/tasks/relation.c): the
 * parameter count of paper-spec 3.3, the module's shapes (padding, the unpooled 1x1 case), the
 * loss against a direct computation, finite differences of the loss in every input and
 * parameter, and the few-shot test protocol (mean and interval, determinism, too few classes,
 * a separable problem learned by training the module on episodes). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/episode.h"
#include "helpers.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "tasks/relation.h"

static struct relation_head *make_head(struct shape feat, unsigned long seed)
{
    struct rng rng;
    rng_seed(&rng, seed);
    return relation_head_new(feat, RELATION_HIDDEN, &rng);
}

static float *random_floats(size_t n, struct rng *rng)
{
    float *x = eg_xmalloc_floats(n);
    rng_fill_uniform(rng, x, n, -1.0f, 1.0f);
    return x;
}

// ---------------------------------------------------------------------------------------------
// the module

Test(relation, parameter_count_matches_paper_spec)
{
    struct relation_head *r = make_head((struct shape){512, 7, 7}, 1);
    const struct net *net = r->net;
    cr_assert(eq(sz, net->nparams, 7085073));
    cr_assert(eq(sz, net->nstats, 0), "the batch norms keep no running statistics");
    // conv, bn, relu, pool, conv, bn, relu, pool, flatten, fc, relu, fc
    static const size_t want[] = {4719104, 1024, 0, 0, 2359808, 1024, 0, 0, 0, 4104, 0, 9};
    cr_assert(eq(sz, net->nlayers, 12));
    for (size_t i = 0; i < 12; i++) {
        cr_assert(net->layers[i].nparams == want[i], "layer %zu (%s): %zu parameters", i,
                  net->layers[i].ops->name, net->layers[i].nparams);
    }
    relation_head_free(r);
    relation_head_free(NULL);
}

// The shape entering the first FC layer and the number of max-pool layers.
static void check_shapes(struct shape feat, struct shape want_flat_in, size_t want_pools)
{
    struct relation_head *r = make_head(feat, 2);
    const struct net *net = r->net;
    cr_assert(shape_eq(net->in_shape, (struct shape){2 * feat.c, feat.h, feat.w}));
    struct shape out = net_out_shape(net);
    cr_assert(out.c == 1 && out.h == 1 && out.w == 1);
    size_t pools = 0, flat = net->nlayers;
    for (size_t i = 0; i < net->nlayers; i++) {
        pools += strcmp(net->layers[i].ops->name, "maxpool") == 0;
        if (strcmp(net->layers[i].ops->name, "flatten") == 0) flat = i;
    }
    cr_assert(flat < net->nlayers);
    struct shape s = net->layers[flat].in_shape[0];
    cr_assert(shape_eq(s, want_flat_in), "feat (%zu,%zu,%zu): (%zu,%zu,%zu) before flatten", feat.c,
              feat.h, feat.w, s.c, s.h, s.w);
    cr_assert(pools == want_pools, "feat (%zu,%zu,%zu): %zu max-pools", feat.c, feat.h, feat.w,
              pools);
    cr_assert(net->layers[flat + 1].nparams == RELATION_HIDDEN * (shape_numel(s) + 1));
    relation_head_free(r);
}

Test(relation, module_shapes_pad_small_maps_and_skip_pooling_at_1x1)
{
    check_shapes((struct shape){512, 7, 7}, (struct shape){512, 1, 1}, 2); // 7 -> 3 -> 1
    check_shapes((struct shape){16, 3, 3}, (struct shape){16, 1, 1}, 1);   // 3 -> 1 -> 1
    check_shapes((struct shape){8, 1, 1}, (struct shape){8, 1, 1}, 0);     // never pooled
    check_shapes((struct shape){64, 5, 5}, (struct shape){64, 1, 1}, 2);   // 5 -> 2 -> 1
    check_shapes((struct shape){6, 6, 6}, (struct shape){6, 1, 1}, 2);     // 6 -> 3 -> 1
    // 16 >= 10: no padding, 16 -> 14 -> 7 -> 5 -> 2
    check_shapes((struct shape){4, 16, 16}, (struct shape){4, 2, 2}, 2);
}

// ---------------------------------------------------------------------------------------------
// the episode loss

// The loss straight from the definition: prototypes and pairs built here (in double), the
// module's net run directly on them, softmax cross-entropy in double. *correct as documented.
static double direct_loss(struct relation_head *r, const float *fs, const float *fq, size_t n_way,
                          size_t k, size_t q, size_t *correct)
{
    const size_t m = shape_numel(r->feat), Q = n_way * q, P = Q * n_way;
    float *pairs = eg_xmalloc_floats(P * 2 * m);
    for (size_t i = 0; i < Q; i++) {
        for (size_t j = 0; j < n_way; j++) {
            float *row = pairs + (i * n_way + j) * 2 * m;
            for (size_t e = 0; e < m; e++) {
                double p = 0.0;
                for (size_t s = 0; s < k; s++)
                    p += (double)fs[(j * k + s) * m + e];
                row[e] = (float)(p / (double)k);
                row[m + e] = fq[i * m + e];
            }
        }
    }
    const float *scores = net_forward(r->net, pairs, P, LAYER_MODE_TRAIN);
    double L = 0.0;
    *correct = 0;
    for (size_t i = 0; i < Q; i++) {
        const float *z = scores + i * n_way;
        size_t y = i / q, best = 0;
        double zmax = (double)z[0], sum = 0.0;
        for (size_t j = 1; j < n_way; j++) {
            if ((double)z[j] > zmax) zmax = (double)z[j];
            if (z[j] > z[best]) best = j;
        }
        for (size_t j = 0; j < n_way; j++)
            sum += exp((double)z[j] - zmax);
        L += log(sum) + zmax - (double)z[y];
        *correct += best == y;
    }
    free(pairs);
    return L / (double)Q;
}

Test(relation, episode_loss_equals_a_direct_computation)
{
    const struct shape feat = {4, 3, 3};
    const size_t n_way = 3, k = 2, q = 2, m = shape_numel(feat);
    struct relation_head *r = make_head(feat, 3);
    struct rng rng;
    rng_seed(&rng, 30);
    float *fs = random_floats(n_way * k * m, &rng), *fq = random_floats(n_way * q * m, &rng);
    // Queries near their class's first support map, so that some (not all) are right.
    for (size_t i = 0; i < n_way * q; i++) {
        for (size_t e = 0; e < m; e++)
            fq[i * m + e] = 0.5f * fq[i * m + e] + fs[i / q * k * m + e];
    }
    size_t correct = 99, want_correct;
    double L = relation_episode_loss(r, fs, fq, n_way, k, q, NULL, NULL, &correct);
    double want = direct_loss(r, fs, fq, n_way, k, q, &want_correct);
    cr_log_info("episode loss %.9g, direct %.9g, correct %zu", L, want, correct);
    cr_assert(isfinite(L) && L > 0.0);
    cr_assert(fabs(L - want) <= 1e-5 * fabs(want), "loss %.9g, direct %.9g", L, want);
    cr_assert(eq(sz, correct, want_correct));
    // correct may be NULL; the backward call gives the same loss
    cr_assert(relation_episode_loss(r, fs, fq, n_way, k, q, NULL, NULL, NULL) == L);
    float *dfs = eg_xmalloc_floats(n_way * k * m), *dfq = eg_xmalloc_floats(n_way * q * m);
    cr_assert(relation_episode_loss(r, fs, fq, n_way, k, q, dfs, dfq, NULL) == L);
    free(dfs);
    free(dfq);
    free(fs);
    free(fq);
    relation_head_free(r);
}

// Backward adds into the module's grads and overwrites dfs and dfq, whatever they held.
Test(relation, backward_adds_param_grads_and_overwrites_feature_grads)
{
    const struct shape feat = {3, 2, 2};
    const size_t n_way = 2, k = 3, q = 2, m = shape_numel(feat);
    const size_t ns = n_way * k * m, nq = n_way * q * m;
    struct relation_head *r = make_head(feat, 4);
    struct rng rng;
    rng_seed(&rng, 40);
    float *fs = random_floats(ns, &rng), *fq = random_floats(nq, &rng);
    float *dfs1 = eg_xmalloc_floats(ns), *dfq1 = eg_xmalloc_floats(nq);
    float *dfs2 = eg_xmalloc_floats(ns), *dfq2 = eg_xmalloc_floats(nq);
    for (size_t i = 0; i < ns; i++)
        dfs2[i] = NAN;
    for (size_t i = 0; i < nq; i++)
        dfq2[i] = 1e30f;
    const size_t P = r->net->nparams;
    float *g1 = eg_xmalloc_floats(P);

    net_zero_grad(r->net);
    relation_episode_loss(r, fs, fq, n_way, k, q, dfs1, dfq1, NULL);
    memcpy(g1, r->net->grads, P * sizeof(float));
    relation_episode_loss(r, fs, fq, n_way, k, q, dfs2, dfq2, NULL);
    cr_assert(memcmp(dfs1, dfs2, ns * sizeof(float)) == 0);
    cr_assert(memcmp(dfq1, dfq2, nq * sizeof(float)) == 0);
    double gmax = 0.0;
    for (size_t i = 0; i < P; i++) {
        cr_assert(r->net->grads[i] == 2.0f * g1[i], "grad %zu", i);
        if (fabs((double)g1[i]) > gmax) gmax = fabs((double)g1[i]);
    }
    cr_assert(gt(dbl, gmax, 0.0));
    // Supports of one class share their prototype: equal gradients (1/k of dL/dproto each).
    for (size_t j = 0; j < n_way; j++) {
        for (size_t s = 1; s < k; s++) {
            cr_assert(memcmp(dfs1 + (j * k + s) * m, dfs1 + j * k * m, m * sizeof(float)) == 0);
        }
    }
    free(fs);
    free(fq);
    free(dfs1);
    free(dfq1);
    free(dfs2);
    free(dfq2);
    free(g1);
    relation_head_free(r);
}

Test(relation, loss_is_invariant_to_the_order_of_support_images_within_a_class)
{
    const struct shape feat = {4, 3, 3};
    const size_t n_way = 3, k = 4, q = 2, m = shape_numel(feat);
    struct relation_head *r = make_head(feat, 5);
    struct rng rng;
    rng_seed(&rng, 50);
    float *fs = random_floats(n_way * k * m, &rng), *fq = random_floats(n_way * q * m, &rng);
    float *perm = eg_xmalloc_floats(n_way * k * m);
    static const size_t order[4] = {2, 0, 3, 1};
    for (size_t j = 0; j < n_way; j++) {
        for (size_t s = 0; s < k; s++) {
            memcpy(perm + (j * k + s) * m, fs + (j * k + order[s]) * m, m * sizeof(float));
        }
    }
    double a = relation_episode_loss(r, fs, fq, n_way, k, q, NULL, NULL, NULL);
    double b = relation_episode_loss(r, perm, fq, n_way, k, q, NULL, NULL, NULL);
    // equal up to the rounding of the prototype sums
    cr_assert(fabs(a - b) <= 1e-6 * fabs(a), "%.9g vs %.9g", a, b);
    free(fs);
    free(fq);
    free(perm);
    relation_head_free(r);
}

// ---------------------------------------------------------------------------------------------
// finite differences

struct fdcheck {
    struct shape feat;
    size_t n_way, k, q;
    unsigned long seed;
};

#define FD_H 1e-3
#define FD_TOL 1e-2

static double loss_only(struct relation_head *r, const float *fs, const float *fq,
                        const struct fdcheck *c)
{
    return relation_episode_loss(r, fs, fq, c->n_way, c->k, c->q, NULL, NULL, NULL);
}

// Central difference in *v (restored), with the step float actually took. *kink is set when the
// one-sided differences disagree by more than kink_tol: a ReLU or max-pool kink lies inside the
// step, where no finite difference measures the derivative.
static double fd_at(struct relation_head *r, float *fs, float *fq, const struct fdcheck *c,
                    float *v, double kink_tol, bool *kink)
{
    const float keep = *v;
    double L0 = loss_only(r, fs, fq, c);
    *v = (float)((double)keep + FD_H);
    double hp = (double)*v - (double)keep, Lp = loss_only(r, fs, fq, c);
    *v = (float)((double)keep - FD_H);
    double hm = (double)keep - (double)*v, Lm = loss_only(r, fs, fq, c);
    *v = keep;
    *kink = fabs((Lp - L0) / hp - (L0 - Lm) / hm) > kink_tol;
    return (Lp - Lm) / (hp + hm);
}

// Compares dL/d(every support value, query value and module parameter) with central
// differences. Coordinates at kinks are skipped; they must be rare.
static void check_gradients(const struct fdcheck *c)
{
    const size_t m = shape_numel(c->feat);
    const size_t ns = c->n_way * c->k * m, nq = c->n_way * c->q * m;
    struct relation_head *r = make_head(c->feat, c->seed);
    struct net *net = r->net;
    struct rng rng;
    rng_seed(&rng, c->seed + 100);
    float *fs = random_floats(ns, &rng), *fq = random_floats(nq, &rng);
    float *dfs = eg_xmalloc_floats(ns), *dfq = eg_xmalloc_floats(nq);
    net_zero_grad(net);
    relation_episode_loss(r, fs, fq, c->n_way, c->k, c->q, dfs, dfq, NULL);

    double scale = 1e-3;
    for (size_t i = 0; i < net->nparams; i++)
        scale = fmax(scale, fabs((double)net->grads[i]));
    for (size_t i = 0; i < ns; i++)
        scale = fmax(scale, fabs((double)dfs[i]));
    for (size_t i = 0; i < nq; i++)
        scale = fmax(scale, fabs((double)dfq[i]));
    const double allowed = FD_TOL * scale;

    struct {
        const char *what;
        float *v;
        const float *an;
        size_t n;
    } groups[3] = {{"support", fs, dfs, ns}, {"query", fq, dfq, nq}, {"param", NULL, NULL, 0}};
    float *an_params = eg_xmalloc_floats(net->nparams);
    memcpy(an_params, net->grads, net->nparams * sizeof(float));
    groups[2].v = net->params;
    groups[2].an = an_params;
    groups[2].n = net->nparams;

    size_t kinks = 0, total = 0;
    for (size_t g = 0; g < 3; g++) {
        double worst = 0.0;
        size_t wi = 0;
        for (size_t i = 0; i < groups[g].n; i++) {
            bool kink;
            double fd = fd_at(r, fs, fq, c, groups[g].v + i, allowed, &kink);
            total++;
            if (kink) {
                kinks++;
                continue;
            }
            double d = fabs(fd - (double)groups[g].an[i]);
            if (d > worst || isnan(d)) {
                worst = d;
                wi = i;
            }
        }
        cr_log_info("feat (%zu,%zu,%zu) %s: worst |diff| %.3g, allowed %.3g", c->feat.c, c->feat.h,
                    c->feat.w, groups[g].what, worst, allowed);
        cr_assert(worst <= allowed, "feat (%zu,%zu,%zu) %s %zu: backward %.6g (|diff| %.3g > %.3g)",
                  c->feat.c, c->feat.h, c->feat.w, groups[g].what, wi, (double)groups[g].an[wi],
                  worst, allowed);
    }
    cr_log_info("feat (%zu,%zu,%zu): %zu of %zu coordinates at kinks", c->feat.c, c->feat.h,
                c->feat.w, kinks, total);
    cr_assert(kinks * 20 <= total, "%zu of %zu coordinates straddle a kink", kinks, total);
    free(fs);
    free(fq);
    free(dfs);
    free(dfq);
    free(an_params);
    relation_head_free(r);
}

// (3, 2, 2): padded convs, block 1 pools 2 -> 1, block 2 does not pool.
Test(relation, gradients_match_finite_differences_on_2x2_maps)
{
    check_gradients(&(struct fdcheck){{3, 2, 2}, 3, 2, 2, 6});
}

// (4, 1, 1): no pooling anywhere; only the centre taps of the 3x3 kernels matter.
Test(relation, gradients_match_finite_differences_on_1x1_maps)
{
    check_gradients(&(struct fdcheck){{4, 1, 1}, 3, 2, 2, 7});
}

// One shot (the prototype is the support map) and a single query per class.
Test(relation, gradients_match_finite_differences_one_shot_one_query)
{
    check_gradients(&(struct fdcheck){{2, 3, 3}, 4, 1, 1, 8});
}

// ---------------------------------------------------------------------------------------------
// the few-shot test protocol

// A labelled feature set: classes K with `per` images each; image i is of class i % K (so the
// class index is not the identity). feats: (K * per, feat) written with class prototypes (a
// one-hot channel, 2.0 on channel k % C) plus N(0, noise^2).
struct fewshot_set {
    struct class_index ci;
    float *feats;
    size_t n;
};

static void set_init(struct fewshot_set *s, size_t K, size_t per, struct shape feat, float noise,
                     unsigned long seed)
{
    const size_t m = shape_numel(feat), hw = feat.h * feat.w;
    s->n = K * per;
    s->ci.classes = K;
    s->ci.offsets = eg_xmalloc_array(K + 1, sizeof(size_t));
    s->ci.idx = eg_xmalloc_array(s->n, sizeof(size_t));
    for (size_t k = 0; k <= K; k++)
        s->ci.offsets[k] = k * per;
    for (size_t k = 0; k < K; k++) {
        for (size_t t = 0; t < per; t++)
            s->ci.idx[k * per + t] = t * K + k;
    }
    struct rng rng;
    rng_seed(&rng, seed);
    s->feats = eg_xmalloc_floats(s->n * m);
    rng_fill_gaussian(&rng, s->feats, s->n * m, 0.0f, noise);
    for (size_t i = 0; i < s->n; i++) {
        float *f = s->feats + i * m + (i % K % feat.c) * hw;
        for (size_t e = 0; e < hw; e++)
            f[e] += 2.0f;
    }
}

static void set_deinit(struct fewshot_set *s)
{
    class_index_deinit(&s->ci);
    free(s->feats);
}

Test(relation, evaluate_reports_mean_and_population_ci95_of_the_episodes)
{
    const struct shape feat = {3, 2, 2};
    struct fewshot_set set;
    set_init(&set, 7, 9, feat, 1.0f, 60);
    struct relation_head *r = make_head(feat, 9);
    const size_t P = r->net->nparams, E = 40, n_way = 5, q = 3;
    float *params0 = eg_xmalloc_floats(P);
    memcpy(params0, r->net->params, P * sizeof(float));
    net_zero_grad(r->net);

    double acc[40];
    struct fewshot_result res;
    struct eg_error err;
    struct rng rng;
    rng_seed(&rng, 61);
    cr_assert(eq(int,
                 relation_evaluate(r, set.feats, &set.ci, n_way, 2, q, E, &rng, NULL, acc, &res,
                                   &err),
                 EG_OK));
    cr_assert(eq(sz, res.episodes, E));
    double sum = 0.0, ss = 0.0;
    for (size_t e = 0; e < E; e++) {
        double c = acc[e] * (double)(n_way * q);
        cr_assert(fabs(c - round(c)) < 1e-12 && acc[e] >= 0.0 && acc[e] <= 1.0, "acc %g", acc[e]);
        sum += acc[e];
    }
    double mean = sum / (double)E;
    for (size_t e = 0; e < E; e++)
        ss += (acc[e] - mean) * (acc[e] - mean);
    double ci = 1.96 * sqrt(ss / (double)E) / sqrt((double)E);
    cr_log_info("untrained module: %.4f +- %.4f", res.mean, res.ci95);
    cr_assert(fabs(res.mean - mean) < 1e-12, "%.17g vs %.17g", res.mean, mean);
    cr_assert(fabs(res.ci95 - ci) < 1e-12, "%.17g vs %.17g", res.ci95, ci);
    cr_assert(gt(dbl, res.ci95, 0.0), "the episodes differ");
    // evaluation leaves the module alone
    cr_assert(memcmp(params0, r->net->params, P * sizeof(float)) == 0);
    for (size_t i = 0; i < P; i++)
        cr_assert(r->net->grads[i] == 0.0f);
    // acc may be NULL
    struct fewshot_result res2;
    rng_seed(&rng, 61);
    cr_assert(eq(int,
                 relation_evaluate(r, set.feats, &set.ci, n_way, 2, q, E, &rng, NULL, NULL, &res2,
                                   &err),
                 EG_OK));
    cr_assert(res2.mean == res.mean && res2.ci95 == res.ci95);
    free(params0);
    relation_head_free(r);
    set_deinit(&set);
}

Test(relation, evaluate_is_deterministic_for_a_seed)
{
    const struct shape feat = {2, 3, 3};
    struct fewshot_set set;
    set_init(&set, 6, 8, feat, 1.0f, 70);
    double a1[25], a2[25], a3[25];
    struct fewshot_result r1, r2, r3;
    struct eg_error err;
    struct rng g1, g2, g3;
    rng_seed(&g1, 71);
    rng_seed(&g2, 71);
    rng_seed(&g3, 72);
    struct relation_head *h1 = make_head(feat, 10), *h2 = make_head(feat, 10);
    cr_assert(relation_evaluate(h1, set.feats, &set.ci, 4, 1, 4, 25, &g1, NULL, a1, &r1, &err) ==
              EG_OK);
    cr_assert(relation_evaluate(h2, set.feats, &set.ci, 4, 1, 4, 25, &g2, NULL, a2, &r2, &err) ==
              EG_OK);
    cr_assert(relation_evaluate(h1, set.feats, &set.ci, 4, 1, 4, 25, &g3, NULL, a3, &r3, &err) ==
              EG_OK);
    cr_assert(memcmp(a1, a2, sizeof a1) == 0);
    cr_assert(r1.mean == r2.mean && r1.ci95 == r2.ci95);
    cr_assert(memcmp(&g1, &g2, sizeof g1) == 0, "the same draws");
    cr_assert(memcmp(a1, a3, sizeof a1) != 0, "another seed, other episodes");
    relation_head_free(h1);
    relation_head_free(h2);
    set_deinit(&set);
}

Test(relation, evaluate_rejects_a_set_with_fewer_classes_than_n_way)
{
    const struct shape feat = {2, 1, 1};
    struct fewshot_set set;
    set_init(&set, 3, 10, feat, 1.0f, 80);
    struct relation_head *r = make_head(feat, 11);
    double acc[4] = {-1, -1, -1, -1};
    struct fewshot_result res = {.mean = -7.0, .ci95 = -8.0, .episodes = 99};
    struct eg_error err = {0};
    struct rng rng, before;
    rng_seed(&rng, 81);
    before = rng;
    enum eg_status st =
        relation_evaluate(r, set.feats, &set.ci, 5, 1, 2, 4, &rng, NULL, acc, &res, &err);
    cr_assert(eq(int, st, EG_ERR_ARG));
    cr_log_info("%s", err.msg);
    cr_assert(strstr(err.msg, "5-way") != NULL && strstr(err.msg, "3 classes") != NULL, "%s",
              err.msg);
    cr_assert(res.mean == -7.0 && res.ci95 == -8.0 && res.episodes == 99);
    for (size_t e = 0; e < 4; e++)
        cr_assert(acc[e] == -1.0);
    cr_assert(memcmp(&rng, &before, sizeof rng) == 0);
    // enough classes, too few images in each: 9 + 2 > 10
    st = relation_evaluate(r, set.feats, &set.ci, 3, 9, 2, 4, &rng, NULL, acc, &res, &err);
    cr_assert(eq(int, st, EG_ERR_ARG));
    cr_assert(strstr(err.msg, "11 images") != NULL, "%s", err.msg);
    relation_head_free(r);
    set_deinit(&set);
}

// Class-identifying features (a one-hot channel per class plus noise): a module trained with
// Adam on episodes of the same set tells the classes apart.
Test(relation, training_on_episodes_separates_class_identifying_features)
{
    const struct shape feat = {8, 1, 1};
    const size_t K = 8, n_way = 5, k = 2, q = 4, m = shape_numel(feat);
    struct fewshot_set set;
    set_init(&set, K, 20, feat, 0.3f, 90);
    struct relation_head *r = make_head(feat, 12);
    struct net *net = r->net;
    struct optim_params op = optim_defaults(OPTIM_KIND_ADAM);
    op.lr = 1e-2f;
    struct optim *opt = optim_new(&op, net->nparams);

    struct rng rng;
    rng_seed(&rng, 91);
    struct fewshot_result before, after;
    struct eg_error err;
    cr_assert(relation_evaluate(r, set.feats, &set.ci, n_way, 1, 15, 100, &rng, NULL, NULL,
                                &before, &err) == EG_OK);

    const size_t S = n_way * k, Q = n_way * q;
    float *fs = eg_xmalloc_floats(S * m), *fq = eg_xmalloc_floats(Q * m);
    float *dfs = eg_xmalloc_floats(S * m), *dfq = eg_xmalloc_floats(Q * m);
    double first = 0.0, last = 0.0;
    const size_t steps = 300;
    for (size_t t = 0; t < steps; t++) {
        struct episode ep;
        cr_assert(episode_sample(&set.ci, n_way, k, q, 0, &rng, &ep, &err) == EG_OK);
        for (size_t i = 0; i < S; i++) {
            memcpy(fs + i * m, set.feats + ep.support[i] * m, m * sizeof(float));
        }
        for (size_t i = 0; i < Q; i++) {
            memcpy(fq + i * m, set.feats + ep.query[i] * m, m * sizeof(float));
        }
        episode_deinit(&ep);
        net_zero_grad(net);
        double L = relation_episode_loss(r, fs, fq, n_way, k, q, dfs, dfq, NULL);
        optim_step(opt, net->params, net->grads, op.lr);
        if (t < 20) first += L / 20.0;
        if (t >= steps - 20) last += L / 20.0;
    }
    cr_assert(relation_evaluate(r, set.feats, &set.ci, n_way, 1, 15, 100, &rng, NULL, NULL,
                                &after, &err) == EG_OK);
    cr_log_info("loss %.4f -> %.4f; accuracy %.4f +- %.4f -> %.4f +- %.4f", first, last,
                before.mean, before.ci95, after.mean, after.ci95);
    cr_assert(lt(dbl, last, first));
    cr_assert(gt(dbl, after.mean, 0.9), "accuracy %.4f after training", after.mean);
    free(fs);
    free(fq);
    free(dfs);
    free(dfq);
    optim_free(opt);
    relation_head_free(r);
    set_deinit(&set);
}
