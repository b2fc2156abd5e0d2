/* test_ft.c - the feature-wise transformation layer (lib/nn/ft.c): PyTorch's numbers
 * (data/softplus_ft.txt, both softplus branches), finite differences with the noise held fixed,
 * the identity in eval mode, and fresh per-channel noise at every training forward. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/backbones.h"
#include "nn/layers.h"
#include "nn/layout.h"
#include "nn/net.h"

Test(ft, softplus_matches_pytorch_in_both_branches)
{
    struct ref *r = ref_load("data/softplus_ft.txt");
    size_t n;
    const double *g = ref_get(r, "gamma", &n), *sg = ref_get(r, "sp_gamma", &n);
    const double *b = ref_get(r, "beta", &n), *sb = ref_get(r, "sp_beta", &n);
    for (size_t c = 0; c < 3; c++) {
        cr_assert(fabs(ft_softplus(g[c]) - sg[c]) < 1e-15, "gamma %zu", c);
        cr_assert(fabs(ft_softplus(b[c]) - sb[c]) < 1e-15, "beta %zu", c);
    }
    // the derivative against a central difference away from the threshold
    for (double u = -0.05; u < 0.15; u += 0.013) {
        double fd = (ft_softplus(u + 1e-7) - ft_softplus(u - 1e-7)) / 2e-7;
        cr_assert(fabs(ft_softplus_grad(u) - fd) < 1e-6, "u %g", u);
    }
    cr_assert(ft_softplus_grad(0.3) == 1.0 && ft_softplus(0.3) == 0.3);
    ref_free(r);
}

Test(ft, forward_and_backward_match_pytorch_with_the_noise_fixed)
{
    struct ref *r = ref_load("data/softplus_ft.txt");
    const struct shape s = {3, 2, 2};
    const size_t N = 2, m = 3 * 2 * 2 * N;
    struct layer l;
    layer_ft(&l, s);
    cr_assert(eq(sz, l.nparams, 6));
    float params[6], ng[3], nb[3];
    float *xn = ref_floats(r, "x", m), *gn = ref_floats(r, "g", m);
    float *gam = ref_floats(r, "gamma", 3), *bet = ref_floats(r, "beta", 3);
    float *fng = ref_floats(r, "n_gamma", 3), *fnb = ref_floats(r, "n_beta", 3);
    memcpy(params, gam, sizeof ng);
    memcpy(params + 3, bet, sizeof nb);
    memcpy(ng, fng, sizeof ng);
    memcpy(nb, fnb, sizeof nb);
    layer_ft_hold_noise(&l, ng, nb);
    float x[24], g[24], y[24], yn[24], dx[24] = {0}, dxn[24], grads[6] = {0};
    layout_nchw_to_cnhw(xn, x, N, s);
    layout_nchw_to_cnhw(gn, g, N, s);
    const float *xs[1] = {x};
    struct layer_ctx ctx = {.n = N, .mode = LAYER_MODE_TRAIN, .params = params, .grads = grads};
    l.ops->forward(&l, &ctx, xs, y);
    float *const dxs[1] = {dx};
    l.ops->backward(&l, &ctx, xs, y, g, dxs);
    layout_cnhw_to_nchw(y, yn, N, s);
    layout_cnhw_to_nchw(dx, dxn, N, s);
    size_t k;
    assert_close("out", yn, ref_get(r, "out", &k), m, 1e-6, 1e-6);
    assert_close("dL/dx", dxn, ref_get(r, "dL_dx", &k), m, 1e-6, 1e-6);
    assert_close("dL/dgamma", grads, ref_get(r, "dL_dgamma", &k), 3, 1e-6, 1e-6);
    assert_close("dL/dbeta", grads + 3, ref_get(r, "dL_dbeta", &k), 3, 1e-6, 1e-6);
    free(xn);
    free(gn);
    free(gam);
    free(bet);
    free(fng);
    free(fnb);
    layer_release(&l);
    ref_free(r);
}

// Finite differences in double through the float layer, noise held, parameters in the smooth
// branch of softplus (100 u < 20) so the derivative is not the trivial 1.
Test(ft, gradients_match_central_differences_with_the_noise_held)
{
    const struct shape s = {4, 3, 2};
    struct layer l;
    layer_ft(&l, s);
    const float ng[4] = {0.7f, -1.3f, 0.2f, 1.9f}, nb[4] = {-0.4f, 1.1f, -2.0f, 0.5f};
    layer_ft_hold_noise(&l, ng, nb);
    const float params[8] = {0.05f, -0.02f, 0.11f, 0.3f, 0.01f, -0.05f, 0.08f, 0.4f};
    gradcheck_layer("ft", &l, &(struct gradcheck_opts){.n = 3, .mode = LAYER_MODE_TRAIN,
                                                       .h = 1e-3, .tol = 1e-3, .seed = 4,
                                                       .params = params});
    gradcheck_layer("ft frozen", &l, &(struct gradcheck_opts){.n = 2,
                                                              .mode = LAYER_MODE_TRAIN_FROZEN,
                                                              .h = 1e-3, .tol = 1e-3, .seed = 5,
                                                              .params = params});
    layer_release(&l);
}

Test(ft, eval_mode_is_the_identity_with_no_parameter_gradient)
{
    const struct shape s = {3, 2, 2};
    struct layer l;
    layer_ft(&l, s);
    float params[6];
    l.ops->init(&l, params, NULL, NULL);
    cr_assert(params[0] == 0.3f && params[2] == 0.3f && params[3] == 0.5f && params[5] == 0.5f);
    float x[24], y[24], dy[24], dx[24] = {0}, grads[6] = {0};
    struct rng r;
    rng_seed(&r, 3);
    rng_fill_uniform(&r, x, 24, -1.0f, 1.0f);
    rng_fill_uniform(&r, dy, 24, -1.0f, 1.0f);
    const float *xs[1] = {x};
    float *const dxs[1] = {dx};
    struct layer_ctx ctx = {
        .n = 2, .mode = LAYER_MODE_EVAL, .params = params, .grads = grads, .rng = &r};
    struct rng before = r;
    l.ops->forward(&l, &ctx, xs, y);
    cr_assert(memcmp(x, y, sizeof x) == 0);
    cr_assert(memcmp(&before, &r, sizeof r) == 0, "eval mode draws no noise");
    l.ops->backward(&l, &ctx, xs, y, dy, dxs);
    cr_assert(memcmp(dx, dy, sizeof dx) == 0);
    for (size_t k = 0; k < 6; k++) cr_assert(grads[k] == 0.0f);
    layer_release(&l);
}

Test(ft, training_forward_draws_fresh_noise_per_channel_shared_over_batch_and_space)
{
    const struct shape s = {5, 3, 3};
    const size_t N = 4, per = N * 3 * 3, m = 5 * per;
    struct layer l;
    layer_ft(&l, s);
    float params[10];
    l.ops->init(&l, params, NULL, NULL);
    float *x = eg_xmalloc_floats(m), *y1 = eg_xmalloc_floats(m), *y2 = eg_xmalloc_floats(m);
    for (size_t i = 0; i < m; i++) x[i] = 1.0f;
    struct rng r;
    rng_seed(&r, 8);
    const float *xs[1] = {x};
    struct layer_ctx ctx = {.n = N, .mode = LAYER_MODE_TRAIN_FROZEN, .params = params, .rng = &r};
    l.ops->forward(&l, &ctx, xs, y1);
    l.ops->forward(&l, &ctx, xs, y2);
    size_t differ = 0;
    for (size_t c = 0; c < 5; c++) {
        // x = 1 everywhere: one value per channel over batch and space
        for (size_t i = 1; i < per; i++) cr_assert(y1[c * per + i] == y1[c * per]);
        differ += y1[c * per] != y2[c * per];
        // (1 + n_g sp(0.3)) + n_b sp(0.5) with |n| < 6: well inside these bounds
        cr_assert(fabsf(y1[c * per]) < 1.0f + 6.0f * 0.3f + 6.0f * 0.5f);
    }
    cr_assert(eq(sz, differ, 5), "each forward draws new noise");
    free(x);
    free(y1);
    free(y2);
    layer_release(&l);
}

// FT scalars in a network: the parameters of its ft layers.
static size_t ft_scalars(const struct net *net)
{
    size_t n = 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        if (strcmp(net->layers[i].ops->name, "ft") == 0) n += net->layers[i].nparams;
    }
    return n;
}

Test(ft_backbone, resnet_ft_scalars_are_the_counts_paper_spec_derives)
{
    static const struct {
        enum backbone_kind kind;
        size_t scalars;
    } want[] = {{BACKBONE_RESNET10, 3712}, {BACKBONE_RESNET18, 5632}, {BACKBONE_RESNET34, 9344}};
    for (size_t i = 0; i < 3; i++) {
        struct backbone_spec spec = backbone_defaults(want[i].kind);
        spec.features_only = true;
        struct rng r;
        rng_seed(&r, 1);
        struct net *plain = backbone_new(&spec, (struct shape){3, 32, 32}, 0, &r);
        spec.ft = true;
        struct net *ft = backbone_new(&spec, (struct shape){3, 32, 32}, 0, &r);
        size_t got = ft_scalars(ft);
        cr_assert(got == want[i].scalars, "%s: %zu FT scalars", backbone_name(want[i].kind), got);
        cr_assert(ft->nparams == plain->nparams + want[i].scalars);
        cr_assert(ft_scalars(plain) == 0);
        // the hyperparameters are one block after the weights (a meta-learner's lambda)
        cr_assert(ft->nparams_hyper == want[i].scalars && plain->nparams_hyper == 0);
        for (size_t k = 0; k < ft->nlayers; k++) {
            const struct layer *l = &ft->layers[k];
            bool is_ft = strcmp(l->ops->name, "ft") == 0;
            bool in_tail = l->param_off >= ft->nparams - ft->nparams_hyper;
            cr_assert(l->nparams == 0 || is_ft == in_tail, "layer %zu (%s)", k, l->ops->name);
        }
        net_free(plain);
        net_free(ft);
    }
    struct backbone_spec bad = backbone_defaults(BACKBONE_RESNET32);
    bad.ft = true;
    cr_assert(backbone_check(&bad, (struct shape){3, 32, 32}, 10) != NULL);
}

// In eval mode the FT layers are the identity: a network with them gives the same features as
// the same network without them when the shared parameters agree; in training they change them.
Test(ft_backbone, eval_mode_ignores_ft_and_training_mode_does_not)
{
    struct backbone_spec spec = backbone_defaults(BACKBONE_RESNET10);
    spec.features_only = true;
    spec.channels = 4;
    const struct shape in = {3, 16, 16};
    struct rng r;
    rng_seed(&r, 2);
    struct net *plain = backbone_new(&spec, in, 0, &r);
    spec.ft = true;
    struct net *ft = backbone_new(&spec, in, 0, &r);
    // copy plain's parameters and statistics into ft layer by layer (ft layers keep their own)
    size_t j = 0;
    for (size_t i = 0; i < ft->nlayers; i++) {
        const struct layer *lf = &ft->layers[i];
        if (strcmp(lf->ops->name, "ft") == 0) continue;
        const struct layer *lp = &plain->layers[j++];
        cr_assert(lf->nparams == lp->nparams && lf->nstats == lp->nstats, "layer %zu", i);
        memcpy(ft->params + lf->param_off, plain->params + lp->param_off,
               lf->nparams * sizeof(float));
        memcpy(ft->stats + lf->stats_off, plain->stats + lp->stats_off,
               lf->nstats * sizeof(float));
    }
    cr_assert(j == plain->nlayers);
    const size_t n = 2, nx = n * shape_numel(in);
    float *x = eg_xmalloc_floats(nx);
    rng_fill_uniform(&r, x, nx, -1.0f, 1.0f);
    const struct shape out = net_out_shape(plain);
    const size_t ny = n * shape_numel(out);
    float *y0 = eg_xmalloc_floats(ny);
    memcpy(y0, net_forward(plain, x, n, LAYER_MODE_EVAL), ny * sizeof(float));
    const float *y1 = net_forward(ft, x, n, LAYER_MODE_EVAL);
    cr_assert(memcmp(y0, y1, ny * sizeof(float)) == 0);
    memcpy(y0, net_forward(plain, x, n, LAYER_MODE_TRAIN_FROZEN), ny * sizeof(float));
    struct rng noise;
    rng_seed(&noise, 9);
    ft->rng = &noise;
    y1 = net_forward(ft, x, n, LAYER_MODE_TRAIN_FROZEN);
    double diff = 0.0;
    for (size_t i = 0; i < ny; i++) diff = fmax(diff, fabs((double)y0[i] - (double)y1[i]));
    cr_assert(diff > 1e-3, "training-mode FT changed nothing (max diff %g)", diff);
    free(x);
    free(y0);
    net_free(plain);
    net_free(ft);
}
