/* test_second_order.c - exact second-order products (forward-over-reverse, net.h) and the exact
 * unrolled method (meta/hyper.h) against PyTorch's second-order references
 * (data/second_order_conv.txt: a conv net with batch norm, ReLU and max pool, per-sample loss
 * weights; data/second_order_rotation.txt: the rotation angle through affine_grid +
 * grid_sample), and every meta-problem's train_loss_tangent against central differences of its
 * first-order gradients. Layer by layer the tangent passes are checked in gradcheck_layer
 * (helpers.c), which every layer's test calls. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "helpers.h"
#include "meta/hyper.h"
#include "meta/weighted.h"
#include "nn/backbones.h"
#include "nn/net.h"
#include "tasks/mwn.h"
#include "tasks/rotation.h"

// The largest |v| of a double section.
static double max_abs_d(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

// Asserts got (float) equals the reference section `name` (n values) to tol of its largest
// magnitude (the float32 target is 1e-4), and logs the worst relative difference.
static void check_section(const struct ref *r, const char *name, const float *got, size_t n,
                          double tol)
{
    size_t m = 0;
    const double *want = ref_get(r, name, &m);
    cr_assert(eq(sz, m, n), "%s: %zu values in the reference, %zu computed", name, m, n);
    const double scale = max_abs_d(want, n);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    cr_log_info("%s: max |ref| %.3g, worst |diff| / max %.3g", name, scale, worst / scale);
    assert_close(name, got, want, n, tol * scale, 0.0);
}

static int32_t *labels_of(const struct ref *r, const char *name, size_t n)
{
    size_t m = 0;
    const double *v = ref_get(r, name, &m);
    cr_assert(eq(sz, m, n));
    int32_t *y = eg_xmalloc_array(n, sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = (int32_t)v[i];
    return y;
}

// ---------------------------------------------------------------------------------------------
// second_order_conv.txt

enum { CONV_N = 4, CONV_M = 3, CONV_P = 147, CONV_CLASSES = 3 };

// conv2d 2->3 3x3 pad 1 + bias -> batch norm -> ReLU -> max pool 2 -> flatten -> linear 27->3,
// parameters in the reference's order (conv w, conv b, gamma, beta, fc w, fc b).
static struct net *conv_ref_net(void)
{
    struct net *net = net_new((struct shape){2, 6, 6});
    size_t h = net_conv2d(net, 0, (struct conv2d_params){.c_out = 3, .k = 3, .stride = 1,
                                                          .pad = 1, .bias = true});
    h = net_batchnorm(net, h, (struct batchnorm_params){.eps = 1e-5f, .momentum = 0.1f,
                                                        .track_running_stats = true});
    h = net_relu(net, h);
    h = net_maxpool(net, h, (struct pool_params){.k = 2, .stride = 2, .pad = 0});
    h = net_flatten(net, h);
    net_linear(net, h, (struct linear_params){.out = CONV_CLASSES, .bias = true});
    struct rng rng;
    rng_seed(&rng, 1);
    net_finalize(net, &rng);
    cr_assert(eq(sz, net->nparams, CONV_P));
    return net;
}

struct conv_fix {
    struct ref *r;
    struct net *net;
    struct weighted_problem *wp;
    float *x, *xv, *theta, *lambda;
    int32_t *y, *yv;
};

static void conv_fix_init(struct conv_fix *f)
{
    f->r = ref_load("data/second_order_conv.txt");
    f->net = conv_ref_net();
    f->x = ref_floats(f->r, "x", CONV_N * 72);
    f->xv = ref_floats(f->r, "xv", CONV_M * 72);
    f->y = labels_of(f->r, "y", CONV_N);
    f->yv = labels_of(f->r, "yv", CONV_M);
    f->theta = ref_floats(f->r, "theta", CONV_P);
    f->lambda = ref_floats(f->r, "lambda", CONV_N);
    // batch norm on each batch's own statistics in both losses, as the reference
    f->wp = weighted_problem_new(f->net, CONV_N, LAYER_MODE_TRAIN_FROZEN, LAYER_MODE_TRAIN_FROZEN);
    weighted_problem_set_batches(f->wp, f->x, f->y, CONV_N, f->xv, f->yv, CONV_M);
}

static void conv_fix_deinit(struct conv_fix *f)
{
    weighted_problem_free(f->wp);
    net_free(f->net);
    free(f->x);
    free(f->xv);
    free(f->y);
    free(f->yv);
    free(f->theta);
    free(f->lambda);
    ref_free(f->r);
}

Test(second_order_reference, conv_net_hessian_vector_and_mixed_products_match_pytorch)
{
    struct conv_fix f;
    conv_fix_init(&f);
    struct meta_problem *p = &f.wp->mp;
    float *u = ref_floats(f.r, "u", CONV_P), *v = ref_floats(f.r, "v", CONV_P);
    float G[CONV_P], hvp[CONV_P], mixed[CONV_N], dlam[CONV_N];

    double L = p->ops->train_loss_tangent(p, f.theta, f.lambda, u, G, dlam, hvp, NULL);
    cr_assert(epsilon_eq(dbl, L, ref_get(f.r, "l_T", &(size_t){0})[0], 1e-6));
    check_section(f.r, "G", G, CONV_P, 1e-4);
    check_section(f.r, "hvp_u", hvp, CONV_P, 1e-4);
    p->ops->train_loss_tangent(p, f.theta, f.lambda, v, NULL, NULL, hvp, mixed);
    check_section(f.r, "hvp_v", hvp, CONV_P, 1e-4);
    check_section(f.r, "mixed_v", mixed, CONV_N, 1e-4);
    // the first-order loss agrees with the tangent pass's primal
    float G2[CONV_P];
    p->ops->train_loss(p, f.theta, f.lambda, G2, NULL);
    assert_close_f("G from train_loss", G2, G, CONV_P, 1e-6, 0.0);
    free(u);
    free(v);
    conv_fix_deinit(&f);
}

Test(second_order_reference, conv_net_exact_unrolled_matches_pytorch)
{
    struct conv_fix f;
    conv_fix_init(&f);
    struct meta_problem *p = &f.wp->mp;
    struct hyper *h = hyper_new(
        &(struct hyper_params){.method = HYPER_UNROLLED, .lookahead_lr = 0.1}, CONV_P, CONV_N);
    float hg[CONV_N];
    struct hyper_info info;
    hyper_grad(h, p, f.theta, f.lambda, NULL, hg, &info);
    check_section(f.r, "hyper", hg, CONV_N, 1e-4);
    cr_assert(epsilon_eq(dbl, info.val_loss, ref_get(f.r, "l_V_prime", &(size_t){0})[0], 1e-5));
    cr_assert(epsilon_eq(dbl, info.train_loss_mean, ref_get(f.r, "l_T", &(size_t){0})[0], 1e-6));
    hyper_free(h);

    // unrolled_fd is the DARTS difference: the reference's own double-precision difference
    // is 1.5e-5 off the exact value; ours in float32 is within 1e-2 of it.
    h = hyper_new(&(struct hyper_params){.method = HYPER_UNROLLED_FD, .lookahead_lr = 0.1},
                  CONV_P, CONV_N);
    hyper_grad(h, p, f.theta, f.lambda, NULL, hg, NULL);
    check_section(f.r, "hyper_fd_darts", hg, CONV_N, 1e-2);
    hyper_free(h);
    conv_fix_deinit(&f);
}

// ---------------------------------------------------------------------------------------------
// second_order_rotation.txt

enum { ROT_N = 4, ROT_M = 3, ROT_P = 119 };

Test(second_order_reference, rotation_angle_exact_unrolled_matches_pytorch)
{
    struct ref *r = ref_load("data/second_order_rotation.txt");
    struct net *net = net_new((struct shape){1, 8, 8});
    size_t hn = net_conv2d(net, 0, (struct conv2d_params){.c_out = 2, .k = 3, .stride = 1,
                                                           .pad = 1, .bias = true});
    hn = net_relu(net, hn);
    hn = net_maxpool(net, hn, (struct pool_params){.k = 2, .stride = 2, .pad = 0});
    hn = net_flatten(net, hn);
    net_linear(net, hn, (struct linear_params){.out = 3, .bias = true});
    struct rng rng;
    rng_seed(&rng, 1);
    net_finalize(net, &rng);
    cr_assert(eq(sz, net->nparams, ROT_P));
    float *x = ref_floats(r, "x", ROT_N * 64), *xv = ref_floats(r, "xv", ROT_M * 64);
    int32_t *y = labels_of(r, "y", ROT_N), *yv = labels_of(r, "yv", ROT_M);
    float *theta = ref_floats(r, "theta", ROT_P);
    float a = (float)ref_get(r, "a", &(size_t){0})[0];
    struct rotation_problem *rp = rotation_problem_new(net);
    rotation_problem_set_batches(rp, x, y, ROT_N, xv, yv, ROT_M);
    struct meta_problem *p = &rp->mp;

    float G[ROT_P], da;
    double L = p->ops->train_loss(p, theta, &a, G, &da);
    cr_assert(epsilon_eq(dbl, L, ref_get(r, "l_T", &(size_t){0})[0], 1e-6));
    check_section(r, "G", G, ROT_P, 1e-4);
    check_section(r, "dl_T_da", &da, 1, 1e-4);

    struct hyper *h = hyper_new(
        &(struct hyper_params){.method = HYPER_UNROLLED, .lookahead_lr = 0.1}, ROT_P, 1);
    float hg;
    struct hyper_info info;
    hyper_grad(h, p, theta, &a, NULL, &hg, &info);
    check_section(r, "hyper", &hg, 1, 1e-4);
    cr_assert(epsilon_eq(dbl, info.val_loss, ref_get(r, "l_V_prime", &(size_t){0})[0], 1e-5));
    hyper_free(h);

    rotation_problem_free(rp);
    net_free(net);
    free(x);
    free(xv);
    free(y);
    free(yv);
    free(theta);
    ref_free(r);
}

// ---------------------------------------------------------------------------------------------
// train_loss_tangent of each problem against central differences of its gradients

TestSuite(problem_tangent, .init = use_direct_convolutions);

// A small conv net (few enough units that a step of 1e-3 rarely crosses a ReLU or max-pool
// kink): conv2d in.c->3 3x3 pad 1 with bias, [batch norm], ReLU, max pool 2, flatten, linear.
static struct net *tiny_net(struct shape in, size_t classes, bool bn, uint64_t seed)
{
    struct net *net = net_new(in);
    size_t h = net_conv2d(net, 0, (struct conv2d_params){.c_out = 3, .k = 3, .stride = 1,
                                                          .pad = 1, .bias = true});
    if (bn) {
        h = net_batchnorm(net, h, (struct batchnorm_params){.eps = 1e-5f, .momentum = 0.1f,
                                                            .track_running_stats = true});
    }
    h = net_relu(net, h);
    h = net_maxpool(net, h, (struct pool_params){.k = 2, .stride = 2, .pad = 0});
    h = net_flatten(net, h);
    net_linear(net, h, (struct linear_params){.out = classes, .bias = true});
    struct rng rng;
    rng_seed(&rng, seed);
    net_finalize(net, &rng);
    return net;
}

static float *uniform_images(size_t n, struct shape s, unsigned long seed)
{
    struct rng r;
    rng_seed(&r, seed);
    float *x = eg_xmalloc_floats(n * s.c * s.h * s.w);
    rng_fill_uniform(&r, x, n * s.c * s.h * s.w, -1.0f, 1.0f);
    return x;
}

Test(problem_tangent, weighted_matches_central_differences)
{
    const struct shape s = {2, 6, 6};
    struct net *net = tiny_net(s, 3, true, 3);
    enum { N = 6, M = 5 };
    float *x = uniform_images(N, s, 4), *xv = uniform_images(M, s, 5);
    int32_t y[N] = {0, 1, 2, 0, 1, 2}, yv[M] = {2, 1, 0, 1, 2};
    float lambda[N] = {0.5f, 1.0f, 1.5f, 0.25f, 2.0f, 1.0f};
    struct weighted_problem *wp = weighted_problem_new(net, N, LAYER_MODE_TRAIN_FROZEN,
                                                       LAYER_MODE_TRAIN_FROZEN);
    weighted_problem_set_batches(wp, x, y, N, xv, yv, M);
    check_problem_tangent("weighted", &wp->mp, net->params, lambda, 1e-3, 1e-3, 11);
    weighted_problem_free(wp);
    net_free(net);
    free(x);
    free(xv);
}

Test(problem_tangent, rotation_matches_central_differences)
{
    const struct shape s = {1, 8, 8};
    struct net *net = tiny_net(s, 3, false, 6);
    enum { N = 5, M = 4 };
    float *x = uniform_images(N, s, 7), *xv = uniform_images(M, s, 8);
    int32_t y[N] = {1, 2, 0, 1, 2}, yv[M] = {0, 2, 1, 0};
    float a = 0.4f;
    struct rotation_problem *rp = rotation_problem_new(net);
    rotation_problem_set_batches(rp, x, y, N, xv, yv, M);
    check_problem_tangent("rotation", &rp->mp, net->params, &a, 1e-3, 1e-3, 12);
    rotation_problem_free(rp);
    net_free(net);
    free(x);
    free(xv);
}

Test(problem_tangent, mwn_matches_central_differences_with_the_anchor)
{
    const struct shape s = {3, 6, 6};
    struct net *net = tiny_net(s, 4, true, 9);
    enum { N = 6, M = 4 };
    float *x = uniform_images(N, s, 10), *xv = uniform_images(M, s, 11);
    int32_t y[N] = {0, 1, 2, 3, 0, 1}, yv[M] = {3, 2, 1, 0};
    struct mwn_problem *pr = mwn_problem_new(net, 5);
    float *lambda = eg_xmalloc_floats(pr->mp.H);
    struct rng r;
    rng_seed(&r, 9);
    mwn_vnet_init(lambda, 5, &r);
    mwn_problem_set_batches(pr, x, y, N, xv, yv, M);
    // V's inputs held at theta's losses (the unrolled methods' anchor), as the reference does
    mwn_problem_anchor_next(pr);
    pr->mp.ops->train_loss(&pr->mp, net->params, lambda, NULL, NULL);
    check_problem_tangent("mwn", &pr->mp, net->params, lambda, 1e-3, 1e-3, 13);
    mwn_problem_free(pr);
    free(lambda);
    net_free(net);
    free(x);
    free(xv);
}

// At angle 0 the rotation problem is the weighted problem with every weight 1 (the rotation is
// the identity): the same gradient and the same Hessian-vector product, on a LeNet. The input
// gradient's tangent (for the mixed product) must not disturb the rest.
Test(problem_tangent, rotation_at_angle_zero_is_the_unit_weighted_problem)
{
    const struct shape s = {1, 28, 28};
    struct rng r;
    rng_seed(&r, 6);
    struct backbone_spec spec = backbone_defaults(BACKBONE_LENET);
    struct net *net = backbone_new(&spec, s, 10, &r);
    enum { N = 5, M = 4 };
    float *x = uniform_images(N, s, 7), *xv = uniform_images(M, s, 8);
    int32_t y[N] = {1, 3, 5, 7, 9}, yv[M] = {0, 2, 4, 6};
    float a = 0.0f, lambda[N] = {1, 1, 1, 1, 1};
    struct rotation_problem *rp = rotation_problem_new(net);
    rotation_problem_set_batches(rp, x, y, N, xv, yv, M);
    struct weighted_problem *wp = weighted_problem_new(net, N, LAYER_MODE_TRAIN_FROZEN,
                                                       LAYER_MODE_TRAIN_FROZEN);
    weighted_problem_set_batches(wp, x, y, N, xv, yv, M);
    const size_t P = net->nparams;
    float *u = eg_xmalloc_floats(P), *h1 = eg_xmalloc_floats(P), *h2 = eg_xmalloc_floats(P);
    float *g1 = eg_xmalloc_floats(P), *g2 = eg_xmalloc_floats(P);
    rng_fill_uniform(&r, u, P, -1.0f, 1.0f);
    float mixed = NAN;
    rp->mp.ops->train_loss_tangent(&rp->mp, net->params, &a, u, g1, NULL, h1, &mixed);
    wp->mp.ops->train_loss_tangent(&wp->mp, net->params, lambda, u, g2, NULL, h2, NULL);
    assert_close_f("gradient", g1, g2, P, 1e-6, 1e-5);
    assert_close_f("hessian-vector product", h1, h2, P, 1e-6, 1e-5);
    cr_assert(isfinite(mixed));
    weighted_problem_free(wp);
    rotation_problem_free(rp);
    net_free(net);
    free(x);
    free(xv);
    free(u);
    free(h1);
    free(h2);
    free(g1);
    free(g2);
}

// ---------------------------------------------------------------------------------------------
// whole backbones: the Hessian of a loss of the output is symmetric

// L = 1/2 |out - t|^2 on a random batch; H a (all parameters, FT included) by the tangent
// passes: dout = out - t, tdout = tout. Checks a . (H b) = b . (H a) for random a, b, which a
// wrong term in any layer's tangent, or in the net's tangent plumbing (in-place buffers, two-input
// layers, shortcuts), breaks; finite differences cannot check these nets (kinks).
static void check_net_symmetry(const char *what, struct net *net, struct shape in, size_t n,
                               enum layer_mode mode, unsigned long seed)
{
    struct rng r;
    rng_seed(&r, seed);
    const size_t P = net->nparams, no = shape_numel(net_out_shape(net)) * n;
    float *x = eg_xmalloc_floats(n * shape_numel(in)), *t = eg_xmalloc_floats(no);
    float *dout = eg_xmalloc_floats(no), *a = eg_xmalloc_floats(P), *b = eg_xmalloc_floats(P);
    float *ha = eg_xcalloc_floats(P), *hb = eg_xcalloc_floats(P);
    rng_fill_uniform(&r, x, n * shape_numel(in), -1.0f, 1.0f);
    rng_fill_uniform(&r, t, no, -1.0f, 1.0f);
    rng_fill_uniform(&r, a, P, -1.0f, 1.0f);
    rng_fill_uniform(&r, b, P, -1.0f, 1.0f);
    struct rng noise;
    rng_seed(&noise, seed + 1);
    net->rng = &noise;
    const struct rng n0 = noise;
    for (int k = 0; k < 2; k++) {
        const float *dir = k == 0 ? a : b;
        float *h = k == 0 ? ha : hb;
        noise = n0; // one draw of the FT noise for both
        const float *tout;
        const float *out = net_forward_tangent(net, x, NULL, n, mode, dir, &tout);
        for (size_t i = 0; i < no; i++) dout[i] = out[i] - t[i];
        net_zero_grad(net);
        net_backward_tangent(net, dout, tout, h, NULL, NULL);
    }
    double ahb = 0.0, bha = 0.0, scale = 0.0;
    for (size_t i = 0; i < P; i++) {
        ahb += (double)a[i] * (double)hb[i];
        bha += (double)b[i] * (double)ha[i];
        scale += fabs((double)a[i] * (double)hb[i]) + fabs((double)b[i] * (double)ha[i]);
    }
    cr_log_info("%s: a.Hb %.9g, b.Ha %.9g, sum of |terms| %.3g", what, ahb, bha, scale);
    cr_assert(fabs(ahb - bha) <= 1e-5 * scale, "%s: a.Hb %.9g vs b.Ha %.9g", what, ahb, bha);
    cr_assert(fabs(ahb) > 1e-4 * scale, "%s: a degenerate check, a.Hb %.3g", what, ahb);
    net->rng = NULL;
    free(x);
    free(t);
    free(dout);
    free(a);
    free(b);
    free(ha);
    free(hb);
}

static struct net *narrow_backbone(enum backbone_kind kind, size_t channels, bool ft,
                                   struct shape in, size_t classes, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    struct backbone_spec spec = backbone_defaults(kind);
    if (channels > 0) spec.channels = channels;
    spec.ft = ft;
    return backbone_new(&spec, in, classes, &r);
}

Test(problem_tangent, backbone_hessians_are_symmetric)
{
    const struct shape gray = {1, 28, 28}, rgb = {3, 32, 32};
    struct net *net = narrow_backbone(BACKBONE_LENET, 0, false, gray, 10, 1);
    check_net_symmetry("lenet", net, gray, 6, LAYER_MODE_TRAIN_FROZEN, 2);
    net_free(net);
    net = narrow_backbone(BACKBONE_RESNET32, 4, false, rgb, 10, 3);
    check_net_symmetry("resnet32 (4 channels), batch statistics", net, rgb, 5,
                       LAYER_MODE_TRAIN_FROZEN, 4);
    check_net_symmetry("resnet32 (4 channels), running statistics", net, rgb, 5,
                       LAYER_MODE_EVAL, 5);
    net_free(net);
    net = narrow_backbone(BACKBONE_CONV4, 4, false, rgb, 5, 6);
    check_net_symmetry("conv4 (4 channels)", net, rgb, 5, LAYER_MODE_TRAIN_FROZEN, 7);
    net_free(net);
    net = narrow_backbone(BACKBONE_RESNET10, 2, true, (struct shape){3, 40, 40}, 4, 8);
    check_net_symmetry("resnet10 (2 channels) + FT, its noise and its parameters", net,
                       (struct shape){3, 40, 40}, 4, LAYER_MODE_TRAIN_FROZEN, 9);
    net_free(net);
}
