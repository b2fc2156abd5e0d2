/* test_rotation.c - the rotation experiment (lib/tasks/rotation.c): the meta-problem's dl_T/da
 * against a central difference on a tiny LeNet batch, the sign convention (validation images
 * rotated +30 degrees with Pillow's rotation pull the learned angle towards positive values), and
 * the task end to end through the evograd binary (EVOGRAD_BIN, set by `make test`): metrics.csv's
 * columns, the angle of method none, resume. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/augment.h"
#include "helpers.h"
#include "meta/hyper.h"
#include "nn/backbones.h"
#include "nn/optim.h"
#include "tasks/rotation.h"

static const double PI = 3.14159265358979323846;

static struct net *tiny_lenet(uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    struct backbone_spec spec = backbone_defaults(BACKBONE_LENET);
    return backbone_new(&spec, (struct shape){1, 28, 28}, 10, &r);
}

// A bar through the image at orientation phi (radians, counter-clockwise on the screen with rows
// growing downwards), offset off pixels from the centre, as uint8.
static void draw_bar(uint8_t *img, double phi, double off)
{
    const double ux = cos(phi), uy = -sin(phi); // direction in (col, row)
    for (int r = 0; r < 28; r++) {
        for (int c = 0; c < 28; c++) {
            double x = c - 13.5, y = r - 13.5;
            double d = fabs(-uy * x + ux * y - off); // distance to the line
            double along = fabs(ux * x + uy * y);
            double v = d < 1.6 && along < 11.0 ? 255.0 : 0.0;
            img[r * 28 + c] = (uint8_t)v;
        }
    }
}

Test(rotation, angle_gradient_matches_a_central_difference)
{
    struct net *net = tiny_lenet(5);
    struct rotation_problem *rp = rotation_problem_new(net);
    cr_assert(eq(sz, rp->mp.P, net->nparams));
    cr_assert(eq(sz, rp->mp.H, 1));
    enum { N = 4 };
    float *x = eg_xmalloc_floats(N * 784);
    int32_t y[N] = {0, 3, 7, 9};
    struct rng r;
    rng_seed(&r, 9);
    uint8_t img[784];
    for (size_t i = 0; i < N; i++) {
        // smooth images (the bilinear sampling is piecewise linear: sharp edges make the
        // difference quotient cross many kinks)
        (void)img;
        double fx = 0.2 + 0.05 * (double)i, fy = 0.15 + 0.03 * (double)i, ph = rng_uniform(&r);
        for (size_t k = 0; k < 784; k++) {
            double rr = (double)(k / 28) - 13.5, cc = (double)(k % 28) - 13.5;
            double env = exp(-(rr * rr + cc * cc) / 80.0);
            x[i * 784 + k] = (float)(env * (sin(fx * cc + ph) + cos(fy * rr - ph)));
        }
    }
    rotation_problem_set_batches(rp, x, y, N, NULL, NULL, 0);
    float *theta = eg_xmalloc_floats(net->nparams);
    memcpy(theta, net->params, net->nparams * sizeof(float));
    // away from a = 0, where every sampling position is on a pixel (a kink: one-sided derivative)
    const float angles[] = {0.05f, 0.3f, -0.7f};
    for (size_t j = 0; j < 3; j++) {
        float a = angles[j], da = NAN;
        float *g = eg_xmalloc_floats(net->nparams);
        double L = rp->mp.ops->train_loss(&rp->mp, theta, &a, g, &da);
        const float h = 2e-3f;
        float ap = a + h, am = a - h;
        double lp = rp->mp.ops->train_loss(&rp->mp, theta, &ap, NULL, NULL);
        double lm = rp->mp.ops->train_loss(&rp->mp, theta, &am, NULL, NULL);
        double fd = (lp - lm) / ((double)ap - (double)am);
        cr_assert(isfinite(L));
        cr_assert(fabs((double)da - fd) <= 0.05 * fabs(fd) + 2e-3, "a=%g: da %g vs fd %g",
                  (double)a, (double)da, fd);
        // theta is restored: the net's parameters are unchanged
        cr_assert(memcmp(theta, net->params, net->nparams * sizeof(float)) == 0);
        free(g);
    }
    free(theta);
    free(x);
    rotation_problem_free(rp);
    net_free(net);
}

// Bars of 3 orientations (0, 60, 120 degrees) at random offsets: training images unrotated,
// validation images rotated +30 degrees by Pillow's rotation (augment_rotate_u8). Some meta-steps
// must move the angle from 0 towards +30 degrees.
static void bars(float *x, int32_t *y, size_t n, double rot_deg, struct rng *r)
{
    uint8_t img[784], out[784];
    for (size_t i = 0; i < n; i++) {
        int32_t cls = (int32_t)(rng_u64(r) % 3);
        double off = 8.0 * ((double)rng_uniform(r) - 0.5);
        draw_bar(img, (double)cls * PI / 3.0, off);
        const uint8_t *src = img;
        if (rot_deg != 0.0) {
            augment_rotate_u8(img, out, (struct shape){1, 28, 28}, rot_deg);
            src = out;
        }
        for (size_t k = 0; k < 784; k++) x[i * 784 + k] = (float)src[k] / 255.0f;
        y[i] = cls;
    }
}

static float learned_angle(enum hyper_method method)
{
    struct net *net = tiny_lenet(11);
    struct rotation_problem *rp = rotation_problem_new(net);
    struct optim_params op = optim_defaults(OPTIM_KIND_ADAM);
    op.lr = 1e-3f;
    op.weight_decay = 0.0f;
    struct optim *opt = optim_new(&op, net->nparams);
    struct optim_params mop = op;
    mop.lr = 1e-2f;
    struct optim *mopt = optim_new(&mop, 1);
    struct hyper_params hp = {.method = method, .candidates = 2, .sigma = 1e-3,
                              .temperature = 0.05, .noise = HYPER_NOISE_RADEMACHER,
                              .lookahead_lr = 1e-3};
    struct hyper *h = hyper_new(&hp, net->nparams, 1);
    enum { B = 32 };
    float *x = eg_xmalloc_floats(B * 784), *xv = eg_xmalloc_floats(B * 784);
    int32_t y[B], yv[B];
    struct rng r, hr;
    rng_seed(&r, 21);
    rng_seed(&hr, 22);
    float angle = 0.0f;
    for (int it = 0; it < 120; it++) {
        bars(x, y, B, 0.0, &r);
        bars(xv, yv, B, 30.0, &r);
        rotation_problem_set_batches(rp, x, y, B, xv, yv, B);
        struct hyper_info info;
        const struct meta_step ms = {.hyper = h, .opt = mopt, .lr = 1e-2f, .rng = &hr};
        double loss = rotation_step(rp, opt, 1e-3f, &ms, &angle, &info);
        cr_assert(isfinite(loss) && isfinite(angle));
    }
    free(x);
    free(xv);
    hyper_free(h);
    optim_free(mopt);
    optim_free(opt);
    rotation_problem_free(rp);
    net_free(net);
    return angle;
}

Test(rotation, validation_rotated_plus_30_pulls_the_angle_positive, .timeout = 900)
{
    float a = learned_angle(HYPER_UNROLLED);
    cr_assert(a > (float)(5.0 * PI / 180.0), "unrolled: angle %g degrees", (double)a * 180 / PI);
    float b = learned_angle(HYPER_EVOGRAD);
    cr_assert(b > (float)(5.0 * PI / 180.0), "evograd: angle %g degrees", (double)b * 180 / PI);
}

// ---------------------------------------------------------------------------------------------
// end to end

static const char tiny_rotation[] = "name: rot\n"
                                    "seed: 2\n"
                                    "threads: 1\n"
                                    "task: rotation\n"
                                    "data:\n"
                                    "  dataset: synthetic\n"
                                    "  image_c: 1\n"
                                    "  image_h: 28\n"
                                    "  image_w: 28\n"
                                    "  classes: 3\n"
                                    "  synthetic_train: 120\n"
                                    "  synthetic_test: 40\n"
                                    "backbone: {name: lenet}\n"
                                    "method: {name: evograd, candidates: 2, sigma: 0.001, "
                                    "temperature: 0.05}\n"
                                    "train:\n"
                                    "  epochs: 2\n"
                                    "  batch_size: 20\n"
                                    "  optimizer: {name: adam, lr: 0.001, weight_decay: 0}\n"
                                    "meta:\n"
                                    "  batch_size: 16\n"
                                    "  optimizer: {name: adam, lr: 0.01, weight_decay: 0}\n"
                                    "eval: {every_epochs: 1, batch_size: 16}\n"
                                    "checkpoint: {every_epochs: 1}\n"
                                    "rotation: {train_end: 60, val_begin: 70, val_end: 120}\n";

Test(rotation_e2e, metrics_have_the_angle_and_the_back_rotated_accuracy, .init = e2e_setup,
     .fini = e2e_teardown, .timeout = 900)
{
    e2e_write("rot.yaml", tiny_rotation);

    const char *a1[] = {"run", "rot.yaml", "--out", "evo", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a1, NULL), 0));
    char *m = e2e_read("evo/metrics.csv");
    cr_assert(m != NULL);
    const char *header = "epoch,step,wall_s,train_loss,val_loss,test_acc,test_loss,lr,"
                         "peak_rss_mb,angle_deg,test_acc_back\n";
    cr_assert(strncmp(m, header, strlen(header)) == 0, "%s", m);
    double ang = csv_cell(m, 2, 9), back = csv_cell(m, 2, 10), acc = csv_cell(m, 2, 5);
    cr_assert(isfinite(ang) && ang != 0.0, "evograd moves the angle: %g", ang);
    cr_assert(back >= 0.0 && back <= 1.0 && acc >= 0.0 && acc <= 1.0);
    cr_assert(isfinite(csv_cell(m, 2, 4)), "val_loss is logged");
    free(m);

    const char *a2[] = {"run", "rot.yaml", "method.name=none", "--out", "none", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a2, NULL), 0));
    m = e2e_read("none/metrics.csv");
    cr_assert(m != NULL);
    for (size_t r = 1; r <= 2; r++) {
        cr_assert(eq(dbl, csv_cell(m, r, 9), 0.0), "none keeps the angle at 0");
        cr_assert(eq(dbl, csv_cell(m, r, 10), csv_cell(m, r, 5)), "no rotation back at angle 0");
    }
    free(m);

    // the unrolled method runs; a stopped and resumed evograd run ends with the same angle and
    // accuracies as the uninterrupted one (angle, meta-optimiser and validation batches restored)
    const char *a3[] = {"run", "rot.yaml", "method.name=unrolled", "--out", "u1", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a3, NULL), 0));
    const char *a4[] = {"run", "rot.yaml", "--out", "part", "--quiet", "--stop-after", "4", NULL};
    cr_assert(eq(int, e2e_run(a4, NULL), 0));
    const char *a5[] = {"run", "rot.yaml", "--out", "part", "--resume", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a5, NULL), 0));
    char *u = e2e_read("u1/metrics.csv"), *e = e2e_read("part/metrics.csv"),
         *e0 = e2e_read("evo/metrics.csv");
    cr_assert(u != NULL && e != NULL && e0 != NULL);
    cr_assert(isfinite(csv_cell(u, 2, 9)));
    for (size_t r = 1; r <= 2; r++) {
        for (size_t c = 0; c < 11; c++) {
            if (c == 2 || c == 8) continue; // wall_s, peak_rss_mb
            cr_assert(eq(dbl, csv_cell(e, r, c), csv_cell(e0, r, c)), "row %zu column %zu", r, c);
        }
    }
    free(u);
    free(e);
    free(e0);
}

Test(rotation_e2e, bad_ranges_are_config_errors, .init = e2e_setup, .fini = e2e_teardown)
{
    e2e_write("rot.yaml", tiny_rotation);
    const char *a[] = {"run", "rot.yaml", "rotation.val_begin=50", "--out", "x", "--quiet",
                       NULL};
    cr_assert(ne(int, e2e_run(a, NULL), 0));
    const char *b[] = {"run", "rot.yaml", "rotation.val_end=500", "--out", "y", "--quiet", NULL};
    cr_assert(ne(int, e2e_run(b, NULL), 0));
}
