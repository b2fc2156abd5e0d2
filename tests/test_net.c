/* test_net.c - whole networks: parameter counts, finite-difference checks of every backbone's
 * backward pass (parameters and input), batch-size independence, and a training smoke test. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/blas.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/backbones.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"

// channels 0 keeps the paper's channel count.
static struct net *build_narrow(enum backbone_kind kind, size_t channels, struct shape in,
                                size_t classes, unsigned long seed)
{
    struct backbone_spec spec = backbone_defaults(kind);
    if (channels > 0) spec.channels = channels;
    if (kind == BACKBONE_MLP && channels > 0) {
        spec.hidden[0] = channels;
        spec.hidden[1] = channels + 1;
    }
    cr_assert(backbone_check(&spec, in, classes) == NULL, "%s", backbone_check(&spec, in, classes));
    struct rng rng;
    rng_seed(&rng, seed);
    return backbone_new(&spec, in, classes, &rng);
}

static struct net *build(enum backbone_kind kind, struct shape in, size_t classes,
                         unsigned long seed)
{
    return build_narrow(kind, 0, in, classes, seed);
}

static size_t count_params(enum backbone_kind kind, struct shape in, size_t classes, bool head)
{
    struct backbone_spec spec = backbone_defaults(kind);
    spec.features_only = !head;
    struct rng rng;
    rng_seed(&rng, 1);
    struct net *net = backbone_new(&spec, in, classes, &rng);
    size_t P = net->nparams;
    net_free(net);
    return P;
}

Test(backbones, parameter_counts_match_the_paper)
{
    cr_assert(eq(sz, count_params(BACKBONE_LENET, (struct shape){1, 28, 28}, 10, true), 61706));
    cr_assert(eq(sz, count_params(BACKBONE_RESNET32, (struct shape){3, 32, 32}, 10, true), 464154));
    // torchvision's resnet18/34 without the fc layer have the same convolutional trunk
    cr_assert(eq(sz, count_params(BACKBONE_RESNET18, (struct shape){3, 224, 224}, 0, false),
                 11176512));
    cr_assert(eq(sz, count_params(BACKBONE_RESNET34, (struct shape){3, 224, 224}, 0, false),
                 21284672));
}

Test(backbones, feature_maps_have_the_expected_shapes)
{
    struct backbone_spec spec = backbone_defaults(BACKBONE_RESNET10);
    spec.features_only = true;
    struct rng rng;
    rng_seed(&rng, 1);
    struct net *net = backbone_new(&spec, (struct shape){3, 224, 224}, 0, &rng);
    struct shape s = net_out_shape(net);
    cr_assert(s.c == 512 && s.h == 7 && s.w == 7, "got %zux%zux%zu", s.c, s.h, s.w);
    net_free(net);
    net = build(BACKBONE_CONV4, (struct shape){3, 84, 84}, 5, 1);
    s = net_out_shape(net);
    cr_assert(s.c == 5 && s.h == 1 && s.w == 1);
    net_free(net);
}

Test(backbones, check_rejects_impossible_specs)
{
    struct backbone_spec spec = backbone_defaults(BACKBONE_LENET);
    cr_assert(backbone_check(&spec, (struct shape){1, 8, 8}, 10) != NULL);
    spec = backbone_defaults(BACKBONE_RESNET32);
    spec.width = 0;
    cr_assert(backbone_check(&spec, (struct shape){3, 32, 32}, 10) != NULL);
    spec = backbone_defaults(BACKBONE_MLP);
    cr_assert(backbone_check(&spec, (struct shape){1, 4, 4}, 0) != NULL);
    enum backbone_kind k;
    cr_assert(backbone_find("resnet34", &k) && k == BACKBONE_RESNET34);
    cr_assert(backbone_find("resnet50", &k) == false);
}

// ---------------------------------------------------------------------------------------------
// Finite differences through a whole network, L = sum g * out (double), on few-channel versions
// of each architecture (the layers are the same code at any width). A random subset of the
// parameters and input elements is checked. A network of float32 layers with thousands of ReLU
// and max-pool kinks is only piecewise smooth: steps of 1e-2 cross kinks almost always, so the
// step is small (3e-4) and coordinates whose two one-sided differences disagree are skipped and
// counted (at most 10% may be).

static double net_loss(struct net *net, const float *x, size_t n, enum layer_mode mode,
                       const float *g)
{
    const float *out = net_forward(net, x, n, mode);
    size_t m = shape_numel(net_out_shape(net)) * n;
    double L = 0.0;
    for (size_t i = 0; i < m; i++) L += (double)g[i] * (double)out[i];
    return L;
}

// Central difference of L in *v, restoring *v. Also reports whether the two one-sided
// differences disagree by more than kink_tol: a ReLU or max-pool kink lies inside the step, where
// no finite difference measures the derivative, and the caller skips the coordinate.
static double fd_at(struct net *net, float *v, const float *x, size_t n, enum layer_mode mode,
                    const float *g, double h, double kink_tol, bool *kink)
{
    float keep = *v;
    double L0 = net_loss(net, x, n, mode, g);
    *v = (float)((double)keep + h);
    double hp = (double)*v - (double)keep;
    double Lp = net_loss(net, x, n, mode, g);
    *v = (float)((double)keep - h);
    double hm = (double)keep - (double)*v;
    double Lm = net_loss(net, x, n, mode, g);
    *v = keep;
    *kink = fabs((Lp - L0) / hp - (L0 - Lm) / hm) > kink_tol;
    return (Lp - Lm) / (hp + hm);
}

struct netcheck {
    enum backbone_kind kind;
    size_t channels;
    struct shape in;
    size_t classes, n;
    enum layer_mode mode;
    size_t nparam_checks, ninput_checks;
    double h, tol;
};

static void check_net(const struct netcheck *c)
{
    struct net *net = build_narrow(c->kind, c->channels, c->in, c->classes, 5);
    struct rng rng;
    rng_seed(&rng, 99);
    size_t nx = shape_numel(c->in) * c->n;
    size_t ny = shape_numel(net_out_shape(net)) * c->n;
    float *x = eg_xmalloc_floats(nx), *dx = eg_xmalloc_floats(nx), *g = eg_xmalloc_floats(ny);
    rng_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    rng_fill_uniform(&rng, g, ny, -1.0f, 1.0f);

    net_zero_grad(net);
    net_loss(net, x, c->n, c->mode, g);
    net_backward(net, g, dx);

    // The gradient scale sets the tolerance; the kink threshold is a fraction of it.
    double scale = 1e-3;
    for (size_t i = 0; i < net->nparams; i++) {
        if (fabs((double)net->grads[i]) > scale) scale = fabs((double)net->grads[i]);
    }
    double worst = 0.0;
    size_t kinks = 0, total = c->nparam_checks + c->ninput_checks;
    const char *worst_what = "";
    size_t worst_i = 0;
    double worst_fd = 0, worst_an = 0;
    for (size_t t = 0; t < c->nparam_checks + c->ninput_checks; t++) {
        bool is_param = t < c->nparam_checks;
        size_t i = (size_t)rng_below(&rng, is_param ? net->nparams : nx);
        float *v = is_param ? net->params + i : x + i;
        double an = is_param ? (double)net->grads[i] : (double)dx[i];
        bool kink;
        double fd = fd_at(net, v, x, c->n, c->mode, g, c->h, c->tol * scale, &kink);
        if (kink) {
            kinks++;
            continue;
        }
        if (fabs(fd - an) > worst) {
            worst = fabs(fd - an);
            worst_what = is_param ? "parameter" : "input";
            worst_i = i;
            worst_fd = fd;
            worst_an = an;
        }
    }
    cr_log_info("%s: worst |diff| %.3g, allowed %.3g, %zu of %zu coordinates at kinks",
                backbone_name(c->kind), worst, c->tol * scale, kinks, total);
    // Kinks are rare; many of them would mean the check no longer checks much.
    cr_assert(kinks * 10 <= total, "%s: %zu of %zu coordinates straddle a kink",
              backbone_name(c->kind), kinks, total);
    cr_assert(worst <= c->tol * scale,
              "%s: %s %zu: finite difference %.6g, backward %.6g (|diff| %.3g > %.3g * %.3g)",
              backbone_name(c->kind), worst_what, worst_i, worst_fd, worst_an, worst, c->tol,
              scale);
    free(x);
    free(dx);
    free(g);
    net_free(net);
}

#define H_NET 3e-4
#define H_DEEP 1e-4 // ResNet-10/18/34 stems feed 20-40 layers of kinks
#define TOL_NET 1e-2

TestSuite(net_gradcheck, .init = use_direct_convolutions);

Test(net_gradcheck, mlp)
{
    check_net(&(struct netcheck){BACKBONE_MLP, 6, {1, 4, 4}, 3, 3, LAYER_MODE_TRAIN, 150, 48,
                                 H_NET, TOL_NET});
}

Test(net_gradcheck, lenet)
{
    check_net(&(struct netcheck){BACKBONE_LENET, 0, {1, 12, 12}, 4, 2, LAYER_MODE_TRAIN, 300,
                                 100, H_NET, TOL_NET});
}

Test(net_gradcheck, conv4_batch_statistics)
{
    check_net(&(struct netcheck){BACKBONE_CONV4, 3, {3, 32, 32}, 3, 4, LAYER_MODE_TRAIN_FROZEN,
                                 200, 60, H_NET, TOL_NET});
}

Test(net_gradcheck, conv4_running_statistics)
{
    check_net(&(struct netcheck){BACKBONE_CONV4, 3, {3, 32, 32}, 3, 4, LAYER_MODE_EVAL, 200, 60,
                                 H_NET, TOL_NET});
}

Test(net_gradcheck, resnet32)
{
    check_net(&(struct netcheck){BACKBONE_RESNET32, 2, {3, 8, 8}, 4, 4, LAYER_MODE_TRAIN_FROZEN,
                                 200, 60, H_NET, TOL_NET});
}

Test(net_gradcheck, resnet32_running_statistics)
{
    check_net(&(struct netcheck){BACKBONE_RESNET32, 2, {3, 8, 8}, 4, 4, LAYER_MODE_EVAL, 200, 60,
                                 H_NET, TOL_NET});
}

Test(net_gradcheck, resnet10)
{
    check_net(&(struct netcheck){BACKBONE_RESNET10, 2, {3, 64, 64}, 3, 4,
                                 LAYER_MODE_TRAIN_FROZEN, 200, 60, H_DEEP, TOL_NET});
}

Test(net_gradcheck, resnet18)
{
    check_net(&(struct netcheck){BACKBONE_RESNET18, 2, {3, 64, 64}, 3, 4,
                                 LAYER_MODE_TRAIN_FROZEN, 150, 40, H_DEEP, TOL_NET});
}

Test(net_gradcheck, resnet34)
{
    check_net(&(struct netcheck){BACKBONE_RESNET34, 2, {3, 64, 64}, 3, 4,
                                 LAYER_MODE_TRAIN_FROZEN, 150, 40, H_DEEP, TOL_NET});
}

// ---------------------------------------------------------------------------------------------

Test(net, eval_outputs_do_not_depend_on_the_batch_they_are_in)
{
    struct net *net = build(BACKBONE_RESNET32, (struct shape){3, 8, 8}, 5, 3);
    struct rng rng;
    rng_seed(&rng, 4);
    size_t per = 3 * 8 * 8;
    float *x = eg_xmalloc_floats(per * 7);
    rng_fill_uniform(&rng, x, per * 7, -1.0f, 1.0f);
    float small[2 * 5];
    memcpy(small, net_forward(net, x, 2, LAYER_MODE_EVAL), sizeof small);
    const float *big = net_forward(net, x, 7, LAYER_MODE_EVAL); // grows the buffers
    assert_close_f("first two samples", big, small, 10, 1e-6, 1e-5);
    free(x);
    net_free(net);
}

Test(net, residual_networks_run_relu_and_add_in_place)
{
    struct net *net = build(BACKBONE_RESNET32, (struct shape){3, 8, 8}, 5, 3);
    // 98 layers; in-place batch-norm -> add -> ReLU chains need far fewer buffers than nodes
    cr_assert(lt(sz, net->nbufs, (net->nlayers + 1) * 2 / 3), "%zu buffers for %zu nodes",
              net->nbufs, net->nlayers + 1);
    net_free(net);
}

Test(net, train_mode_updates_running_statistics_and_frozen_mode_does_not)
{
    struct net *net = build(BACKBONE_CONV4, (struct shape){3, 16, 16}, 3, 3);
    struct rng rng;
    rng_seed(&rng, 4);
    size_t nx = 3 * 16 * 16 * 4;
    float *x = eg_xmalloc_floats(nx);
    rng_fill_uniform(&rng, x, nx, 0.0f, 2.0f);
    float *before = eg_xmalloc_floats(net->nstats);
    memcpy(before, net->stats, net->nstats * sizeof(float));
    net_forward(net, x, 4, LAYER_MODE_TRAIN_FROZEN);
    net_forward(net, x, 4, LAYER_MODE_EVAL);
    cr_assert(memcmp(before, net->stats, net->nstats * sizeof(float)) == 0);
    net_forward(net, x, 4, LAYER_MODE_TRAIN);
    cr_assert(memcmp(before, net->stats, net->nstats * sizeof(float)) != 0);
    free(x);
    free(before);
    net_free(net);
}

// One train-mode forward and backward of a backbone at a size where every per-channel, per-plane
// and element-wise loop is split over the threads (lib/core/parallel.h: EG_PAR_FLOATS), with
// `threads` OpenMP threads. Convolutions on im2col with one OpenBLAS thread, so that only
// evograd's own loops vary. Returns the output, then the input gradient, then the parameter
// gradients and running statistics, concatenated (owned by the caller).
static float *step_with_threads(const struct backbone_spec *spec, struct shape in, size_t n,
                                int threads, size_t *len)
{
    eg_set_threads(threads);
    eg_blas_set_threads(1);
    conv2d_set_backend(CONV2D_IM2COL);
    struct rng rng;
    rng_seed(&rng, 7);
    struct net *net = backbone_new(spec, in, 10, &rng);
    struct rng ft_rng;
    rng_seed(&ft_rng, 8);
    net->rng = &ft_rng; // FT noise, the same draws at every thread count
    const size_t nx = shape_numel(in) * n, ny = shape_numel(net_out_shape(net)) * n;
    float *x = eg_xmalloc_floats(nx), *dout = eg_xmalloc_floats(ny);
    rng_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    rng_fill_uniform(&rng, dout, ny, -1.0f, 1.0f);
    *len = ny + nx + net->nparams + net->nstats;
    float *all = eg_xmalloc_floats(*len);
    memcpy(all, net_forward(net, x, n, LAYER_MODE_TRAIN), ny * sizeof(float));
    net_zero_grad(net);
    net_backward(net, dout, all + ny);
    memcpy(all + ny + nx, net->grads, net->nparams * sizeof(float));
    memcpy(all + ny + nx + net->nparams, net->stats, net->nstats * sizeof(float));
    free(x);
    free(dout);
    net_free(net);
    conv2d_set_backend(CONV2D_DNNL);
    eg_set_threads(1);
    return all;
}

static void check_thread_independence(const struct backbone_spec *spec, struct shape in, size_t n)
{
    size_t len1, len;
    float *one = step_with_threads(spec, in, n, 1, &len1);
    for (int t = 2; t <= 3; t++) {
        float *many = step_with_threads(spec, in, n, t, &len);
        cr_assert(eq(sz, len, len1));
        size_t differ = 0;
        for (size_t i = 0; i < len; i++)
            differ += memcmp(&one[i], &many[i], sizeof(float)) != 0;
        cr_assert(eq(sz, differ, 0), "%s, %d threads: %zu of %zu values differ from 1 thread",
                  backbone_name(spec->kind), t, differ, len);
        free(many);
    }
    free(one);
}

// batch norm, ReLU, add, the option-A shortcut and global average pooling
Test(net, resnet32_gives_the_same_bits_on_1_2_and_3_threads)
{
    struct backbone_spec spec = backbone_defaults(BACKBONE_RESNET32);
    check_thread_independence(&spec, (struct shape){3, 32, 32}, 6);
}

// max pooling (2x2) and the linear layers
Test(net, lenet_gives_the_same_bits_on_1_2_and_3_threads)
{
    struct backbone_spec spec = backbone_defaults(BACKBONE_LENET);
    check_thread_independence(&spec, (struct shape){1, 28, 28}, 20);
}

// FT layers, 3x3 max pooling with padding, the 1x1 shortcut convolutions
Test(net, resnet10_with_ft_gives_the_same_bits_on_1_2_and_3_threads)
{
    struct backbone_spec spec = backbone_defaults(BACKBONE_RESNET10);
    spec.ft = true;
    spec.channels = 16;
    check_thread_independence(&spec, (struct shape){3, 64, 64}, 12);
}

// ---------------------------------------------------------------------------------------------
// Training smoke test: 4 Gaussian blobs in 16 dimensions, one per class, well separated.

static double train_blobs(unsigned long seed, double *accuracy)
{
    enum { N = 256, D = 16, C = 4, B = 32, STEPS = 300 };
    struct rng rng;
    rng_seed(&rng, seed);
    float centres[C * D];
    rng_fill_gaussian(&rng, centres, C * D, 0.0f, 1.0f);
    float *x = eg_xmalloc_floats(N * D);
    int32_t y[N];
    for (size_t i = 0; i < N; i++) {
        y[i] = (int32_t)(i % C);
        for (size_t d = 0; d < D; d++) {
            x[i * D + d] = centres[(size_t)y[i] * D + d] + 0.5f * (float)rng_gaussian(&rng);
        }
    }
    struct backbone_spec spec = backbone_defaults(BACKBONE_MLP);
    spec.hidden[0] = 32;
    spec.nhidden = 1;
    struct net *net = backbone_new(&spec, (struct shape){1, 4, 4}, C, &rng);
    struct optim_params op = optim_defaults(OPTIM_KIND_SGD);
    op.lr = 0.1f;
    op.momentum = 0.9f;
    struct optim *opt = optim_new(&op, net->nparams);
    size_t order[N];
    rng_permutation(&rng, order, N);
    float xb[B * D], losses[B], dlogits[B * C];
    int32_t yb[B];
    double last = 0.0;
    for (size_t step = 0; step < STEPS; step++) {
        size_t start = (step * B) % N;
        if (start == 0) rng_shuffle(&rng, order, N);
        for (size_t b = 0; b < B; b++) {
            memcpy(xb + b * D, x + order[start + b] * D, D * sizeof(float));
            yb[b] = y[order[start + b]];
        }
        net_zero_grad(net);
        const float *logits = net_forward(net, xb, B, LAYER_MODE_TRAIN);
        last = xent_forward(logits, yb, B, C, losses) / B;
        xent_backward(logits, yb, NULL, B, C, dlogits);
        net_backward(net, dlogits, NULL);
        optim_step(opt, net->params, net->grads, op.lr);
    }
    const float *logits = net_forward(net, x, N, LAYER_MODE_EVAL);
    *accuracy = (double)xent_correct(logits, y, N, C) / N;
    optim_free(opt);
    net_free(net);
    free(x);
    return last;
}

Test(training, mlp_learns_separable_blobs_reproducibly)
{
    double acc1, acc2;
    double loss1 = train_blobs(2024, &acc1);
    double loss2 = train_blobs(2024, &acc2);
    cr_assert(gt(dbl, acc1, 0.95), "training accuracy %.3f", acc1);
    cr_assert(loss1 == loss2 && acc1 == acc2, "same seed, different result: %.17g vs %.17g",
              loss1, loss2);
}
