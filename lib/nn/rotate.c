/* rotate.c - bilinear rotation of image planes (F.affine_grid + F.grid_sample, zeros padding,
 * align_corners=False) and its gradients with respect to the input and to the angle.
 * Each call builds one table of H*W taps (the 4 neighbour indices and weights of every output
 * pixel, and the weights' derivatives with respect to the angle), shared by all N*C planes;
 * the per-plane loops then only gather (forward) or scatter (backward). */
#include "rotate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/status.h"

// One output pixel: neighbours (x0, y0), (x0+1, y0), (x0, y0+1), (x0+1, y0+1) in that order.
// A neighbour outside the plane has idx 0 and w = dw = 0, so the loops need no branches.
struct rotate_tap {
    size_t idx[4]; // offsets inside the plane
    double w[4];   // bilinear weights
    double dw[4];  // d w / d a
    double d2w[4]; // d^2 w / d a^2 (within the cell; the tangent of the backward)
};

static int ranges_overlap(const void *p, size_t np, const void *q, size_t nq)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return a < b + nq && b < a + np;
}

// Fills taps (H*W) for the angle a.
static void rotate_taps(struct rotate_tap *taps, size_t H, size_t W, double a)
{
    const double c = cos(a), s = sin(a);
    const double Wd = (double)W, Hd = (double)H;
    for (size_t h = 0; h < H; h++) {
        // Centred pixel coordinates: the normalised base grid (2h + 1)/H - 1 is v * 2/H. They are
        // half-integers or integers, exact in double.
        const double v = (double)h + 0.5 - 0.5 * Hd;
        for (size_t w = 0; w < W; w++) {
            const double u = (double)w + 0.5 - 0.5 * Wd;
            // gx = c*(2u/W) - s*(2v/H), ix = ((gx + 1)*W - 1)/2 = gx*W/2 + (W - 1)/2, and the same
            // for y. Written this way, a = 0 gives ix = w, iy = h exactly (PyTorch's rounding
            // differs by ~1e-16 pixel).
            const double ix = c * u - s * v * (Wd / Hd) + 0.5 * (Wd - 1.0);
            const double iy = s * u * (Hd / Wd) + c * v + 0.5 * (Hd - 1.0);
            // d gx/da = -gy and d gy/da = gx, scaled by W/2 and H/2.
            const double dix = -s * u - c * v * (Wd / Hd);
            const double diy = c * u * (Hd / Wd) - s * v;
            const double d2ix = -c * u + s * v * (Wd / Hd);
            const double d2iy = -s * u * (Hd / Wd) - c * v;

            const double fx0 = floor(ix), fy0 = floor(iy);
            const double fx = ix - fx0, fy = iy - fy0;
            const double wt[4] = {(1.0 - fx) * (1.0 - fy), fx * (1.0 - fy), (1.0 - fx) * fy,
                                  fx * fy};
            const double dwt[4] = {
                -(1.0 - fy) * dix - (1.0 - fx) * diy,
                (1.0 - fy) * dix - fx * diy,
                -fy * dix + (1.0 - fx) * diy,
                fy * dix + fx * diy,
            };
            const double xy = 2.0 * dix * diy;
            const double d2wt[4] = {
                xy - (1.0 - fy) * d2ix - (1.0 - fx) * d2iy,
                -xy + (1.0 - fy) * d2ix - fx * d2iy,
                -xy - fy * d2ix + (1.0 - fx) * d2iy,
                xy + fy * d2ix + fx * d2iy,
            };
            struct rotate_tap *t = &taps[h * W + w];
            for (int k = 0; k < 4; k++) {
                const double xk = fx0 + (double)(k & 1), yk = fy0 + (double)(k >> 1);
                if (xk >= 0.0 && xk < Wd && yk >= 0.0 && yk < Hd) {
                    t->idx[k] = (size_t)yk * W + (size_t)xk;
                    t->w[k] = wt[k];
                    t->dw[k] = dwt[k];
                    t->d2w[k] = d2wt[k];
                } else { // zero padding: the neighbour reads 0 and so has no gradient either
                    t->idx[k] = 0;
                    t->w[k] = 0.0;
                    t->dw[k] = 0.0;
                    t->d2w[k] = 0.0;
                }
            }
        }
    }
}

void rotate_forward(const float *x, float *y, size_t N, size_t C, size_t H, size_t W, double a)
{
    EG_ASSERT(x != NULL && y != NULL);
    EG_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && isfinite(a));
    const size_t plane = H * W, n = N * C * plane;
    EG_ASSERT(!ranges_overlap(x, n * sizeof *x, y, n * sizeof *y));

    struct rotate_tap *taps = eg_xmalloc_array(plane, sizeof *taps);
    rotate_taps(taps, H, W, a);
    for (size_t p = 0; p < N * C; p++) {
        const float *in = x + p * plane;
        float *out = y + p * plane;
        for (size_t i = 0; i < plane; i++) {
            const struct rotate_tap *t = &taps[i];
            double acc = 0.0;
            for (int k = 0; k < 4; k++)
                acc += t->w[k] * (double)in[t->idx[k]];
            out[i] = (float)acc;
        }
    }
    free(taps);
}

double rotate_backward(const float *x, const float *dy, float *dx, size_t N, size_t C, size_t H,
                       size_t W, double a)
{
    EG_ASSERT(x != NULL && dy != NULL);
    EG_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && isfinite(a));
    const size_t plane = H * W, n = N * C * plane;
    if (dx != NULL) {
        EG_ASSERT(!ranges_overlap(dx, n * sizeof *dx, x, n * sizeof *x));
        EG_ASSERT(!ranges_overlap(dx, n * sizeof *dx, dy, n * sizeof *dy));
    }

    struct rotate_tap *taps = eg_xmalloc_array(plane, sizeof *taps);
    rotate_taps(taps, H, W, a);
    double da = 0.0;
    for (size_t p = 0; p < N * C; p++) {
        const float *in = x + p * plane;
        const float *g = dy + p * plane;
        float *gin = dx != NULL ? dx + p * plane : NULL;
        for (size_t i = 0; i < plane; i++) {
            const struct rotate_tap *t = &taps[i];
            const double gi = (double)g[i];
            // d out_i / d a = sum_k x[idx_k] * d w_k / d a (out-of-range neighbours have dw = 0)
            double dout = 0.0;
            for (int k = 0; k < 4; k++)
                dout += t->dw[k] * (double)in[t->idx[k]];
            da += gi * dout;
            if (gin != NULL) {
                for (int k = 0; k < 4; k++)
                    gin[t->idx[k]] += (float)(t->w[k] * gi);
            }
        }
    }
    free(taps);
    return da;
}

void rotate_tangent(const float *x, const float *tx, double ta, float *ty, size_t N, size_t C,
                    size_t H, size_t W, double a)
{
    EG_ASSERT(x != NULL && ty != NULL);
    EG_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && isfinite(a) && isfinite(ta));
    const size_t plane = H * W, n = N * C * plane;
    EG_ASSERT(!ranges_overlap(x, n * sizeof *x, ty, n * sizeof *ty));
    EG_ASSERT(tx == NULL || !ranges_overlap(tx, n * sizeof *tx, ty, n * sizeof *ty));
    struct rotate_tap *taps = eg_xmalloc_array(plane, sizeof *taps);
    rotate_taps(taps, H, W, a);
    for (size_t p = 0; p < N * C; p++) {
        const float *in = x + p * plane, *tin = tx != NULL ? tx + p * plane : NULL;
        float *out = ty + p * plane;
        for (size_t i = 0; i < plane; i++) {
            const struct rotate_tap *t = &taps[i];
            double acc = 0.0;
            for (int k = 0; k < 4; k++) {
                acc += ta * t->dw[k] * (double)in[t->idx[k]];
                if (tin != NULL) acc += t->w[k] * (double)tin[t->idx[k]];
            }
            out[i] = (float)acc;
        }
    }
    free(taps);
}

double rotate_backward_tangent(const float *x, const float *tx, double ta, const float *dy,
                               const float *tdy, float *tdx, size_t N, size_t C, size_t H,
                               size_t W, double a)
{
    EG_ASSERT(x != NULL && dy != NULL && tdy != NULL);
    EG_ASSERT(N >= 1 && C >= 1 && H >= 1 && W >= 1 && isfinite(a) && isfinite(ta));
    const size_t plane = H * W, n = N * C * plane;
    if (tdx != NULL) {
        EG_ASSERT(!ranges_overlap(tdx, n * sizeof *tdx, x, n * sizeof *x));
        EG_ASSERT(!ranges_overlap(tdx, n * sizeof *tdx, dy, n * sizeof *dy));
        EG_ASSERT(!ranges_overlap(tdx, n * sizeof *tdx, tdy, n * sizeof *tdy));
    }
    struct rotate_tap *taps = eg_xmalloc_array(plane, sizeof *taps);
    rotate_taps(taps, H, W, a);
    double tda = 0.0;
    for (size_t p = 0; p < N * C; p++) {
        const float *in = x + p * plane, *tin = tx != NULL ? tx + p * plane : NULL;
        const float *g = dy + p * plane, *tg = tdy + p * plane;
        float *tgin = tdx != NULL ? tdx + p * plane : NULL;
        for (size_t i = 0; i < plane; i++) {
            const struct rotate_tap *t = &taps[i];
            const double gi = (double)g[i], tgi = (double)tg[i];
            // da = sum_i dy_i sum_k dw_k x_k: its tangent in dy, in x and in a
            double s1 = 0.0, s2 = 0.0, s3 = 0.0;
            for (int k = 0; k < 4; k++) {
                const double xk = (double)in[t->idx[k]];
                s1 += t->dw[k] * xk;
                if (tin != NULL) s2 += t->dw[k] * (double)tin[t->idx[k]];
                s3 += t->d2w[k] * xk;
            }
            tda += tgi * s1 + gi * s2 + ta * gi * s3;
            // dx[idx_k] += w_k dy_i: its tangent in dy and in a
            if (tgin != NULL) {
                for (int k = 0; k < 4; k++)
                    tgin[t->idx[k]] += (float)(t->w[k] * tgi + ta * t->dw[k] * gi);
            }
        }
    }
    free(taps);
    return tda;
}
