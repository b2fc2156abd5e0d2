/* test_rotate.c - the differentiable rotation (nn/rotate.h): PyTorch's affine_grid + grid_sample
 * values, finite differences for the input and the angle, a round trip, the identity, the sign
 * convention against the Pillow-style rotation of the data pipeline, and dx accumulation. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/augment.h"
#include "helpers.h"
#include "nn/rotate.h"

static const double PI = 3.14159265358979323846;

static double max_abs(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    return m;
}

// L = sum g*y in double.
static double dot_fd(const float *g, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * (double)y[i];
    return s;
}

// The smallest distance, in pixels, from a sampling position of an H x W rotation by a to an
// integer pixel row or column, computed from PyTorch's formulas (normalised grid, then
// ((g + 1)*W - 1)/2). The centre of an odd-sized image is skipped: it maps onto itself for
// every angle, so it adds no kink. Finite differences of step h are exact-ish when this is
// well above h times the largest |d ix/da| (< max(H, W)).
static double boundary_margin(size_t H, size_t W, double a)
{
    double m = 1.0;
    for (size_t h = 0; h < H; h++) {
        for (size_t w = 0; w < W; w++) {
            if (2 * h + 1 == H && 2 * w + 1 == W) continue;
            double xw = (2.0 * (double)w + 1.0) / (double)W - 1.0;
            double yh = (2.0 * (double)h + 1.0) / (double)H - 1.0;
            double gx = cos(a) * xw - sin(a) * yh, gy = sin(a) * xw + cos(a) * yh;
            double ix = ((gx + 1.0) * (double)W - 1.0) / 2.0;
            double iy = ((gy + 1.0) * (double)H - 1.0) / 2.0;
            m = fmin(m, fmin(fabs(ix - round(ix)), fabs(iy - round(iy))));
        }
    }
    return m;
}

// ---------------------------------------------------------------------------------------------
// PyTorch reference (tests/data/rotation_grid_sample.txt, 2x1x7x9, float64 in PyTorch)

// Our inputs are the reference's float64 inputs rounded to float (relative 6e-8), and outputs are
// rounded to float once; dL/da and dL/dx are sums of at most 4*63 such terms accumulated in
// double. So each section should agree to a few 1e-7 of its largest magnitude (measured: output
// 5.8e-8, dL/dx 8.0e-8, dL/da 1.2e-8 relative); 1e-5 leaves room without hiding a convention
// error (a wrong half-pixel offset or sign changes values by O(0.1)).
static void check_reference_case(const struct ref *r, const char *sfx, double a)
{
    const size_t N = 2, C = 1, H = 7, W = 9, n = N * C * H * W;
    char name[64];
    float *x = ref_floats(r, "x", n);
    float *g = ref_floats(r, "g", n);
    float *y = eg_xmalloc_floats(n);
    float *dx = eg_xcalloc_floats(n);

    rotate_forward(x, y, N, C, H, W, a);
    size_t m;
    snprintf(name, sizeof name, "out_%s", sfx);
    const double *out = ref_get(r, name, &m);
    cr_assert(eq(sz, m, n));
    assert_close(name, y, out, n, 1e-5 * max_abs(out, n), 0.0);

    snprintf(name, sizeof name, "loss_%s", sfx);
    const double *loss = ref_get(r, name, &m);
    double L = dot_fd(g, y, n);
    cr_assert(le(dbl, fabs(L - loss[0]), 1e-5 * fabs(loss[0])), "%s: got %.12g want %.12g", name, L,
              loss[0]);

    double da = rotate_backward(x, g, dx, N, C, H, W, a);
    snprintf(name, sizeof name, "dL_da_%s", sfx);
    const double *want_da = ref_get(r, name, &m);
    cr_assert(le(dbl, fabs(da - want_da[0]), 1e-5 * fabs(want_da[0])), "%s: got %.12g want %.12g",
              name, da, want_da[0]);

    snprintf(name, sizeof name, "dL_dx_%s", sfx);
    const double *want_dx = ref_get(r, name, &m);
    cr_assert(eq(sz, m, n));
    assert_close(name, dx, want_dx, n, 1e-5 * max_abs(want_dx, n), 0.0);

    free(x);
    free(g);
    free(y);
    free(dx);
}

Test(grid_rotate, matches_pytorch_grid_sample_at_0_3_radians)
{
    struct ref *r = ref_load("data/rotation_grid_sample.txt");
    check_reference_case(r, "a0", 0.3);
    ref_free(r);
}

Test(grid_rotate, matches_pytorch_grid_sample_at_minus_0_5236_radians)
{
    struct ref *r = ref_load("data/rotation_grid_sample.txt");
    check_reference_case(r, "a1", -0.5236);
    ref_free(r);
}

// ---------------------------------------------------------------------------------------------
// finite differences

// Central differences in double of L = sum g*y. The angle step h = 1e-3 moves every sample by at
// most ~W*h/2 < 6e-3 pixel, and each angle is drawn until no sample lies within 2e-2 pixel of a
// pixel row/column, so no kink of the piecewise-smooth L lies inside [a - h, a + h]. The float
// rounding of y (~3e-8 relative, summed over ~100 outputs, divided by 2h) then makes the quotient
// noisy by ~1e-4 absolute; the truncation error, ~h^2 * max|d^3 ix/da^3| * W^2 ~ h^2 * W^3, is of
// the same order. Hence a bound of 1e-3 relative to max(1, |dL/da|). L is linear in x,
// so the input difference (step 1e-2) is exact up to the same rounding. Measured: dL/da 5.4e-5
// relative, dL/dx 2.5e-6 absolute (bounds 1e-3 and 1e-4).
Test(grid_rotate, gradients_match_finite_differences)
{
    const size_t shapes[][4] = {{2, 1, 5, 6}, {1, 2, 7, 7}, {3, 1, 4, 9}, {1, 1, 8, 5}};
    struct rng rg;
    rng_seed(&rg, 11);
    double worst_da = 0.0, worst_dx = 0.0, min_margin = 1.0;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const size_t N = shapes[t][0], C = shapes[t][1], H = shapes[t][2], W = shapes[t][3];
        const size_t n = N * C * H * W;
        float *x = eg_xmalloc_floats(n), *g = eg_xmalloc_floats(n), *y = eg_xmalloc_floats(n);
        float *dx = eg_xcalloc_floats(n);
        rng_fill_uniform(&rg, x, n, -1.0f, 1.0f);
        rng_fill_uniform(&rg, g, n, -1.0f, 1.0f);
        for (int rep = 0; rep < 3; rep++) {
            double a = 0.0;
            int tries = 0;
            do {
                a = (rng_uniform(&rg) * 2.0 - 1.0) * PI;
                cr_assert(lt(int, tries++, 1000));
            } while (boundary_margin(H, W, a) < 2e-2);
            min_margin = fmin(min_margin, boundary_margin(H, W, a));

            memset(dx, 0, n * sizeof *dx);
            const double da = rotate_backward(x, g, dx, N, C, H, W, a);

            const double h = 1e-3;
            rotate_forward(x, y, N, C, H, W, a + h);
            double Lp = dot_fd(g, y, n);
            rotate_forward(x, y, N, C, H, W, a - h);
            double Lm = dot_fd(g, y, n);
            double fd = (Lp - Lm) / (2.0 * h);
            worst_da = fmax(worst_da, fabs(fd - da) / fmax(1.0, fabs(da)));
            cr_assert(le(dbl, fabs(fd - da), 1e-3 * fmax(1.0, fabs(da))),
                      "shape %zux%zux%zux%zu a=%.6f: dL/da %.9g, finite difference %.9g", N, C, H,
                      W, a, da, fd);

            double worst = 0.0;
            for (size_t i = 0; i < n; i++) {
                const float xi = x[i];
                x[i] = xi + 1e-2f;
                const double xp = (double)x[i];
                rotate_forward(x, y, N, C, H, W, a);
                Lp = dot_fd(g, y, n);
                x[i] = xi - 1e-2f;
                const double xm = (double)x[i];
                rotate_forward(x, y, N, C, H, W, a);
                Lm = dot_fd(g, y, n);
                x[i] = xi;
                worst = fmax(worst, fabs((Lp - Lm) / (xp - xm) - (double)dx[i]));
            }
            worst_dx = fmax(worst_dx, worst);
            cr_assert(le(dbl, worst, 1e-4), "shape %zux%zux%zux%zu a=%.6f: max |dL/dx - fd| %.3g",
                      N, C, H, W, a, worst);
        }
        free(x);
        free(g);
        free(y);
        free(dx);
    }
    cr_log_info("finite differences: dL/da rel. error %.2e, dL/dx abs. error %.2e, min margin %.3f",
                worst_da, worst_dx, min_margin);
}

// The tangents (rotate_tangent, rotate_backward_tangent) along a random direction (tx, ta, tdy)
// against central differences of rotate_forward and rotate_backward (dx, da) along it, at angles
// whose samples keep 2e-2 pixel from every pixel row/column (no cell boundary within the step
// h = 1e-4 of the angle, which moves a sample by at most ~W*h/2). Float outputs differenced over
// 2h: ~1e-3 of rounding noise relative to O(1) values (measured below it), truncation ~h^2 W^3.
Test(grid_rotate, tangents_match_finite_differences)
{
    const size_t shapes[][4] = {{2, 1, 5, 6}, {1, 2, 7, 7}, {1, 1, 8, 5}};
    struct rng rg;
    rng_seed(&rg, 12);
    double worst_y = 0.0, worst_dx = 0.0, worst_da = 0.0;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const size_t N = shapes[t][0], C = shapes[t][1], H = shapes[t][2], W = shapes[t][3];
        const size_t n = N * C * H * W;
        float *x = eg_xmalloc_floats(n), *tx = eg_xmalloc_floats(n), *g = eg_xmalloc_floats(n);
        float *tg = eg_xmalloc_floats(n), *y = eg_xmalloc_floats(n), *ty = eg_xmalloc_floats(n);
        float *xp = eg_xmalloc_floats(n), *xm = eg_xmalloc_floats(n);
        float *gp = eg_xmalloc_floats(n), *gm = eg_xmalloc_floats(n);
        float *yp = eg_xmalloc_floats(n), *ym = eg_xmalloc_floats(n);
        float *dxp = eg_xcalloc_floats(n), *dxm = eg_xcalloc_floats(n), *tdx = eg_xcalloc_floats(n);
        rng_fill_uniform(&rg, x, n, -1.0f, 1.0f);
        rng_fill_uniform(&rg, tx, n, -1.0f, 1.0f);
        rng_fill_uniform(&rg, g, n, -1.0f, 1.0f);
        rng_fill_uniform(&rg, tg, n, -1.0f, 1.0f);
        double a = 0.0;
        int tries = 0;
        do {
            a = (rng_uniform(&rg) * 2.0 - 1.0) * PI;
            cr_assert(lt(int, tries++, 1000));
        } while (boundary_margin(H, W, a) < 2e-2);
        const double ta = 0.7, h = 1e-4;
        // the steps float takes on x and dy, and the directions they realise
        for (size_t i = 0; i < n; i++) {
            xp[i] = (float)((double)x[i] + h * (double)tx[i]);
            xm[i] = (float)((double)x[i] - h * (double)tx[i]);
            tx[i] = (float)(((double)xp[i] - (double)xm[i]) / (2.0 * h));
            gp[i] = (float)((double)g[i] + h * (double)tg[i]);
            gm[i] = (float)((double)g[i] - h * (double)tg[i]);
            tg[i] = (float)(((double)gp[i] - (double)gm[i]) / (2.0 * h));
        }
        rotate_tangent(x, tx, ta, ty, N, C, H, W, a);
        const double tda = rotate_backward_tangent(x, tx, ta, g, tg, tdx, N, C, H, W, a);
        rotate_forward(xp, yp, N, C, H, W, a + h * ta);
        rotate_forward(xm, ym, N, C, H, W, a - h * ta);
        const double dap = rotate_backward(xp, gp, dxp, N, C, H, W, a + h * ta);
        const double dam = rotate_backward(xm, gm, dxm, N, C, H, W, a - h * ta);
        double wy = 0.0, wx = 0.0;
        for (size_t i = 0; i < n; i++) {
            wy = fmax(wy, fabs(((double)yp[i] - (double)ym[i]) / (2.0 * h) - (double)ty[i]));
            wx = fmax(wx, fabs(((double)dxp[i] - (double)dxm[i]) / (2.0 * h) - (double)tdx[i]));
        }
        const double fda = (dap - dam) / (2.0 * h);
        const double wa = fabs(fda - tda) / fmax(1.0, fabs(tda));
        worst_y = fmax(worst_y, wy);
        worst_dx = fmax(worst_dx, wx);
        worst_da = fmax(worst_da, wa);
        cr_assert(wy <= 2e-3 && wx <= 2e-3 && wa <= 2e-3,
                  "shape %zux%zux%zux%zu a=%.6f: output %.3g, dx %.3g, da %.3g (%.9g vs %.9g)", N,
                  C, H, W, a, wy, wx, wa, tda, fda);
        free(x);
        free(tx);
        free(g);
        free(tg);
        free(y);
        free(ty);
        free(xp);
        free(xm);
        free(gp);
        free(gm);
        free(yp);
        free(ym);
        free(dxp);
        free(dxm);
        free(tdx);
    }
    cr_log_info("tangents vs finite differences: output %.2e, dx %.2e, da %.2e (relative)",
                worst_y, worst_dx, worst_da);
}

// ---------------------------------------------------------------------------------------------
// geometry

// An anisotropic Gaussian (peak 1, sigmas 3 rows and 4 columns) off the centre of a 32x32 image,
// with the outer pixel frame set to 0. Rotating by +a then -a must give it back inside the disc of
// radius 11 about the centre (where both passes sample inside the image), up to the smoothing of
// two bilinear interpolations: each pass errs by at most about (|f_xx| + |f_yy|)/8 <=
// (1/3^2 + 1/4^2)/8 ~ 0.022 of the peak, so ~0.04 after two. Measured: 0.0337 at a = pi/6,
// 0.0328 at 0.4, 0.0323 at -1; the bound is 0.05 of the peak. One pass alone changes the image
// by 0.33 to 0.69, so the check is not passed by an image that did not move.
Test(grid_rotate, rotating_back_returns_a_smooth_image)
{
    const size_t H = 32, W = 32, n = H * W;
    float *x = eg_xmalloc_floats(n), *y = eg_xmalloc_floats(n), *z = eg_xmalloc_floats(n);
    for (size_t h = 0; h < H; h++) {
        for (size_t w = 0; w < W; w++) {
            double dr = ((double)h - 13.0) / 3.0, dc = ((double)w - 18.5) / 4.0;
            bool frame = h == 0 || w == 0 || h == H - 1 || w == W - 1;
            x[h * W + w] = frame ? 0.0f : (float)exp(-0.5 * (dr * dr + dc * dc));
        }
    }
    const double angles[] = {PI / 6.0, 0.4, -1.0};
    for (size_t k = 0; k < sizeof angles / sizeof angles[0]; k++) {
        rotate_forward(x, y, 1, 1, H, W, angles[k]);
        rotate_forward(y, z, 1, 1, H, W, -angles[k]);
        double err = 0.0, moved = 0.0;
        for (size_t h = 0; h < H; h++) {
            for (size_t w = 0; w < W; w++) {
                double dr = (double)h - 15.5, dc = (double)w - 15.5;
                if (dr * dr + dc * dc > 11.0 * 11.0) continue;
                size_t i = h * W + w;
                err = fmax(err, fabs((double)z[i] - (double)x[i]));
                moved = fmax(moved, fabs((double)y[i] - (double)x[i]));
            }
        }
        cr_log_info("round trip a=%.4f: max |error| %.4f (one pass changes it by %.3f)", angles[k],
                    err, moved);
        cr_assert(lt(dbl, err, 0.05), "a=%.4f: max |error| %.4g", angles[k], err);
        cr_assert(gt(dbl, moved, 0.3), "a=%.4f: one rotation barely changed the image", angles[k]);
    }
    free(x);
    free(y);
    free(z);
}

// At a = 0 every output samples exactly its own pixel centre (cos 0 = 1, sin 0 = 0 and the
// centred coordinates are exact), so the output is bit-identical and dL/dx = dy.
Test(grid_rotate, zero_angle_is_the_exact_identity)
{
    const size_t N = 2, C = 3, H = 5, W = 8, n = N * C * H * W;
    struct rng rg;
    rng_seed(&rg, 5);
    float *x = eg_xmalloc_floats(n), *y = eg_xmalloc_floats(n), *g = eg_xmalloc_floats(n);
    float *dx = eg_xcalloc_floats(n);
    rng_fill_gaussian(&rg, x, n, 0.0f, 10.0f);
    rng_fill_uniform(&rg, g, n, -1.0f, 1.0f);
    x[0] = 0.0f; // a corner: a stray weight from outside would show here
    rotate_forward(x, y, N, C, H, W, 0.0);
    cr_assert(memcmp(x, y, n * sizeof *x) == 0);
    rotate_backward(x, g, dx, N, C, H, W, 0.0);
    cr_assert(memcmp(dx, g, n * sizeof *g) == 0);
    free(x);
    free(y);
    free(g);
    free(dx);
}

// Positive angles turn the image content counter-clockwise on the screen (rows grow downwards):
// a bright pixel right of the centre moves up. This is PIL's Image.rotate(+degrees), which
// augment_rotate_u8 reproduces; at a = +pi/6 the bilinear spot's centroid must sit within one
// pixel of where the nearest-neighbour rotation by +30 degrees puts the pixel.
Test(grid_rotate, positive_angle_turns_counter_clockwise_like_pillow)
{
    const size_t H = 28, W = 28, n = H * W;
    const size_t r0 = 14, c0 = 22; // 8.5 px right of and 0.5 px below the centre (13.5, 13.5)
    uint8_t src[28 * 28] = {0}, dst[28 * 28];
    src[r0 * W + c0] = 255;
    augment_rotate_u8(src, dst, (struct shape){.c = 1, .h = H, .w = W}, 30.0);
    size_t bright = n, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (dst[i] != 0) {
            bright = i;
            count++;
        }
    }
    cr_assert(eq(sz, count, 1));
    const double pil_r = (double)(bright / W), pil_c = (double)(bright % W);

    float x[28 * 28] = {0}, y[28 * 28];
    x[r0 * W + c0] = 1.0f;
    rotate_forward(x, y, 1, 1, H, W, PI / 6.0);
    double s = 0.0, sr = 0.0, sc = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += (double)y[i];
        sr += (double)y[i] * (double)(i / W);
        sc += (double)y[i] * (double)(i % W);
    }
    cr_assert(gt(dbl, s, 0.5));
    const double cr_ = sr / s, cc = sc / s;
    cr_log_info("+30 deg: Pillow puts the pixel at (%.0f, %.0f), the bilinear centroid is "
                "(%.2f, %.2f)",
                pil_r, pil_c, cr_, cc);
    // Exact: the centre-relative offset (8.5, 0.5) (x right, y down) turned to
    // (8.5 cos a + 0.5 sin a, -8.5 sin a + 0.5 cos a) = (7.61, -3.82): row 9.68, column 21.11.
    cr_assert(lt(dbl, cr_, (double)r0 - 3.0), "the spot did not move up: row %.2f", cr_);
    cr_assert(fabs(cr_ - pil_r) <= 1.0 && fabs(cc - pil_c) <= 1.0,
              "bilinear centroid (%.2f, %.2f) vs Pillow (%.0f, %.0f)", cr_, cc, pil_r, pil_c);
}

// ---------------------------------------------------------------------------------------------
// backward contract

Test(grid_rotate, backward_adds_into_dx_and_accepts_null)
{
    const size_t N = 2, C = 1, H = 6, W = 7, n = N * C * H * W;
    struct rng rg;
    rng_seed(&rg, 9);
    float *x = eg_xmalloc_floats(n), *g = eg_xmalloc_floats(n);
    float *once = eg_xcalloc_floats(n), *twice = eg_xmalloc_floats(n);
    rng_fill_uniform(&rg, x, n, -1.0f, 1.0f);
    rng_fill_uniform(&rg, g, n, -1.0f, 1.0f);
    const double a = 0.7;
    const double da1 = rotate_backward(x, g, once, N, C, H, W, a);
    for (size_t i = 0; i < n; i++)
        twice[i] = 0.25f; // pre-existing gradient
    rotate_backward(x, g, twice, N, C, H, W, a);
    const double da2 = rotate_backward(x, g, twice, N, C, H, W, a);
    float *want = eg_xmalloc_floats(n);
    for (size_t i = 0; i < n; i++)
        want[i] = 0.25f + 2.0f * once[i];
    assert_close_f("dx after two calls", twice, want, n, 1e-6, 1e-6);
    cr_assert(da2 == da1);
    cr_assert(rotate_backward(x, g, NULL, N, C, H, W, a) == da1);
    free(x);
    free(g);
    free(once);
    free(twice);
    free(want);
}

Test(grid_rotate, overlapping_buffers_abort, .signal = SIGABRT)
{
    float buf[2 * 4 * 4] = {0};
    rotate_forward(buf, buf + 4, 1, 1, 4, 4, 0.1);
}
