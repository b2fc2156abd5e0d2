/* conv2d.c - 2-D convolution with PyTorch's F.conv2d semantics (cross-correlation, square k x k
 * kernel, stride, symmetric zero padding, optional bias). Two backends (layers.h): oneDNN
 * (conv2d_dnnl.c), the default, and im2col + sgemm, the reference, written here. The bias is
 * handled here for both. Below: the im2col path.
 *
 * Activations are CNHW (layer.h), so the output of a chunk of consecutive images is, in every
 * output channel o, one contiguous run of columns: y[o, n0..n0+nc) starts at y + (o*N + n0)*HoWo
 * and the row stride is N*HoWo. A chunk is then ONE gemm, Y[:, chunk] = W (c_out, K) * col
 * (K, nc*HoWo) with K = c_in*k*k, written straight into y with ldc = N*HoWo; backward runs
 * dW += dY_chunk * col^T and dcol = W^T * dY_chunk per chunk, rebuilding col into the same
 * scratch. A 1x1 kernel with stride 1 and no padding needs no im2col: x is the column matrix.
 *
 * ctx->scratch holds the column buffer (chunk size: conv2d_chunk) and, for strided kernels,
 * the phase planes of one input plane (see "im2col / col2im"). The state (struct conv2d_state)
 * holds only settings and derived sizes and is freed with plain free(). */
#include "layers.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/blas.h"
#include "core/parallel.h"
#include "core/status.h"
#include "conv2d_dnnl.h"

// Where im2col reads a tap from (see "im2col / col2im" below).
enum conv2d_src {
    CONV2D_SRC_PLANE,   // stride 1: the input plane
    CONV2D_SRC_PHASES,  // k >= stride > 1: the plane's stride x stride phase planes
    CONV2D_SRC_STRIDED, // k < stride: strided reads of the plane
};

struct conv2d_state {
    size_t c_in, h, w;            // input shape per sample
    size_t c_out, k, stride, pad; // settings (conv2d_params)
    size_t ho, wo;                // output height and width
    bool bias;
    enum init_kind init;
    enum conv2d_src src;
    size_t ph, pw; // PHASES: rows and row stride of a phase plane, ceil(h/S), max(ceil(w/S), wo)
    struct conv2d_dnnl *dnnl; // the oneDNN path, or NULL: im2col
    enum conv2d_backend backend; // in force when the layer was made
};

static enum conv2d_backend backend_now = CONV2D_DNNL;

static const char *const backend_names[CONV2D__BACKENDS] = {
    [CONV2D_DNNL] = "dnnl",
    [CONV2D_DNNL_DIRECT] = "dnnl_direct",
    [CONV2D_IM2COL] = "im2col",
};

void conv2d_set_backend(enum conv2d_backend b)
{
    EG_ASSERT(b < CONV2D__BACKENDS);
    backend_now = b;
}

enum conv2d_backend conv2d_backend(void)
{
    return backend_now;
}

const char *conv2d_backend_name(enum conv2d_backend b)
{
    EG_ASSERT(b < CONV2D__BACKENDS);
    return backend_names[b];
}

void conv2d_set_threads(int n)
{
    eg_set_threads(n);
    if (backend_now != CONV2D_IM2COL) eg_blas_set_threads(1);
}

bool conv2d_backend_find(const char *name, enum conv2d_backend *b)
{
    for (size_t i = 0; i < CONV2D__BACKENDS; i++) {
        if (strcmp(name, backend_names[i]) == 0) {
            *b = (enum conv2d_backend)i;
            return true;
        }
    }
    return false;
}

// Column-buffer budget in floats (8 MiB). A chunk takes as many whole images as fit, and always
// at least one. Measured (2-core EPYC, 1 MiB L2 per core, 32 MiB L3; OpenBLAS pthreads) on the
// ResNet-32 (batch 100) and ResNet-10 (224x224, batch 85) convolutions, budgets 0.5-32 MiB:
// 4-8 MiB was fastest in total. Smaller chunks make thin gemms for the deep layers (a 7x7 map
// gives 49 columns per image); larger ones slowed the big early layers (stem, 56x56), whose one
// image already fills 7 MiB, by up to 30%. Forward + backward then cost 1.15-1.3x their gemms
// on the ResNet-10 layers and 1.45-1.85x on ResNet-32's (16-64 channels: cheap gemms).
enum { CONV2D_COL_FLOATS = 1 << 21 };

// im2col and col2im split the input channels over at most this many OpenMP threads; each
// thread has its own phase planes in the scratch.
enum { CONV2D_MAX_THREADS = 8 };

// ---------------------------------------------------------------------------------------------
// geometry

// Rows of the column matrix: K = c_in * k * k.
static size_t conv2d_rows(const struct conv2d_state *s)
{
    return s->c_in * s->k * s->k;
}

// Floats of one thread's phase planes (S, S, ph, pw); 0 unless the PHASES path is used.
static size_t conv2d_phase_floats(const struct conv2d_state *s)
{
    return s->src == CONV2D_SRC_PHASES ? s->stride * s->stride * s->ph * s->pw : 0;
}

// Threads for the copies: OpenMP's setting (eg_set_threads), at most CONV2D_MAX_THREADS and at
// most one per input channel.
static int conv2d_threads(const struct conv2d_state *s)
{
    int t = eg_threads();
    if (t > CONV2D_MAX_THREADS) t = CONV2D_MAX_THREADS;
    if ((size_t)t > s->c_in) t = (int)s->c_in;
    return t < 1 ? 1 : t;
}

// 1x1 kernel, stride 1, no padding: the input planes are the column matrix.
static bool conv2d_is_pointwise(const struct conv2d_state *s)
{
    return s->k == 1 && s->stride == 1 && s->pad == 0;
}

// Images whose columns fit in the budget (at least 1).
static size_t conv2d_fit(const struct conv2d_state *s)
{
    size_t fit = CONV2D_COL_FLOATS / (conv2d_rows(s) * s->ho * s->wo);
    return fit < 1 ? 1 : fit;
}

// Images per chunk for a batch of n: 1 <= chunk <= min(n, conv2d_fit), balanced.
static size_t conv2d_chunk(const struct conv2d_state *s, size_t n)
{
    return conv2d_balanced_chunk(n, conv2d_fit(s));
}

// Output positions [*lo, *hi) whose input index o*stride + r - pad lies inside [0, in), for
// kernel offset r along an axis of `in` input and `out` output positions. Every other output
// position reads zero padding there.
static void conv2d_valid_range(size_t r, size_t pad, size_t stride, size_t in, size_t out,
                               size_t *lo, size_t *hi)
{
    size_t l = r >= pad ? 0 : (pad - r + stride - 1) / stride;
    // last valid o: o*stride <= in - 1 + pad - r
    size_t h = in + pad > r ? (in - 1 + pad - r) / stride + 1 : 0;
    if (l > out) l = out;
    if (h > out) h = out;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

// ---------------------------------------------------------------------------------------------
// contiguous runs. The build is -O2, whose cost model vectorises only loops with a fixed trip
// count: the 8-wide (4-wide) bodies below become SSE code, the tails stay scalar.

// dst[t] += src[t];  dst, src: (n), not overlapping
static void add_run(float *restrict dst, const float *restrict src, size_t n)
{
    size_t t = 0;
    for (; t + 8 <= n; t += 8) {
        for (size_t u = 0; u < 8; u++)
            dst[t + u] += src[t + u];
    }
    for (; t < n; t++)
        dst[t] += src[t];
}

// x[t] += v;  x: (n)
static void add_scalar(float *x, float v, size_t n)
{
    size_t t = 0;
    for (; t + 8 <= n; t += 8) {
        for (size_t u = 0; u < 8; u++)
            x[t + u] += v;
    }
    for (; t < n; t++)
        x[t] += v;
}

// sum of x: (n), accumulated in double
static double sum_run(const float *x, size_t n)
{
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    size_t t = 0;
    for (; t + 4 <= n; t += 4) {
        for (size_t u = 0; u < 4; u++)
            acc[u] += (double)x[t + u];
    }
    for (; t < n; t++)
        acc[0] += (double)x[t];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// ---------------------------------------------------------------------------------------------
// im2col / col2im
//
// Row (c*k + i)*k + j of the column matrix holds, for each image n of the chunk and output pixel
// (p, q), x[c, n, p*S + i - pad, q*S + j - pad] (zero in the padding), S = stride. Where that
// is read from:
//   PLANE   (S = 1): the input plane, shifted by (i - pad, j - pad);
//   PHASES  (k >= S > 1): the plane is first split into its S*S phase planes
//           x_ab[u, v] = x[S*u + a, S*v + b] (one pass), and tap (i, j) is then phase (a, b)
//           shifted by (di, dj), where i - pad = S*di + a: stride-1 copies instead of k*k
//           strided gathers;
//   STRIDED (k < S, e.g. a 1x1 stride-2 shortcut): strided reads, as only some phases are used.
// Whenever the source rows are exactly wo long (stride 1 with "same" padding; usual stride-2
// phases), a tap is one copy from its first to its last valid element, and the few elements in
// between that fall in the padding are then zeroed; otherwise each output row is one memcpy.
// Padding is handled by valid ranges: no per-element branches.

// A tap's source: rows p + di, columns q + dj of a view with row stride ws.
struct conv2d_tap {
    size_t plo, phi, qlo, qhi; // valid output rows and columns (conv2d_valid_range)
    ptrdiff_t di, dj;
    size_t a, b; // phase (PHASES only)
};

// Tap offset r along an axis: input index o*S + r - pad = S*(o + d) + a with 0 <= a < S.
static void conv2d_phase_of(size_t r, size_t pad, size_t S, size_t *a, ptrdiff_t *d)
{
    size_t m = r + S * pad - pad; // = r - pad + S*pad >= 0
    *a = m % S;
    *d = (ptrdiff_t)(m / S) - (ptrdiff_t)pad;
}

static struct conv2d_tap conv2d_tap_at(const struct conv2d_state *s, size_t i, size_t j)
{
    struct conv2d_tap t;
    conv2d_valid_range(i, s->pad, s->stride, s->h, s->ho, &t.plo, &t.phi);
    conv2d_valid_range(j, s->pad, s->stride, s->w, s->wo, &t.qlo, &t.qhi);
    conv2d_phase_of(i, s->pad, s->stride, &t.a, &t.di);
    conv2d_phase_of(j, s->pad, s->stride, &t.b, &t.dj);
    return t;
}

// Element (t->plo, t->qlo) of a tap's source view (base, row stride ws).
static size_t conv2d_tap_first(const struct conv2d_tap *t, size_t ws)
{
    return (size_t)((ptrdiff_t)t->plo + t->di) * ws + (size_t)((ptrdiff_t)t->qlo + t->dj);
}

// d: (ho*wo) one image's part of a column-matrix row. Zeroes the elements between valid runs
// of consecutive rows (columns qhi..wo of row p and 0..qlo of row p + 1).
static void zero_gaps(float *d, const struct conv2d_tap *t, size_t Wo)
{
    for (size_t p = t->plo; p + 1 < t->phi; p++) {
        for (size_t e = p * Wo + t->qhi; e < (p + 1) * Wo + t->qlo; e++)
            d[e] = 0.0f;
    }
}

// d: (ho*wo) written: d[p*wo + q] = src[(p + di)*ws + q + dj] on the valid ranges, 0 elsewhere.
// src: the tap's source view, row stride ws. The valid ranges are not empty.
static void copy_tap(const struct conv2d_state *s, const struct conv2d_tap *t, float *restrict d,
                     const float *restrict src, size_t ws)
{
    const size_t Ho = s->ho, Wo = s->wo, len = t->qhi - t->qlo;
    const float *first = src + conv2d_tap_first(t, ws);
    if (ws == Wo) {
        const size_t t0 = t->plo * Wo + t->qlo, t1 = (t->phi - 1) * Wo + t->qhi;
        memset(d, 0, t0 * sizeof(float));
        memcpy(d + t0, first, (t1 - t0) * sizeof(float));
        memset(d + t1, 0, (Ho * Wo - t1) * sizeof(float));
        zero_gaps(d, t, Wo);
        return;
    }
    memset(d, 0, t->plo * Wo * sizeof(float));
    memset(d + t->phi * Wo, 0, (Ho - t->phi) * Wo * sizeof(float));
    for (size_t p = t->plo; p < t->phi; p++) {
        float *drow = d + p * Wo;
        memset(drow, 0, t->qlo * sizeof(float));
        memcpy(drow + t->qlo, first + (p - t->plo) * ws, len * sizeof(float));
        memset(drow + t->qhi, 0, (Wo - t->qhi) * sizeof(float));
    }
}

// The transpose of copy_tap: dst[(p + di)*ws + q + dj] += d[p*wo + q] on the valid ranges.
// d: (ho*wo), clobbered (its padding elements are zeroed). dst: row stride ws.
static void add_tap(const struct conv2d_state *s, const struct conv2d_tap *t, float *restrict d,
                    float *restrict dst, size_t ws)
{
    const size_t Wo = s->wo, len = t->qhi - t->qlo;
    float *first = dst + conv2d_tap_first(t, ws);
    if (ws == Wo) {
        const size_t t0 = t->plo * Wo + t->qlo, t1 = (t->phi - 1) * Wo + t->qhi;
        zero_gaps(d, t, Wo);
        add_run(first, d + t0, t1 - t0);
        return;
    }
    for (size_t p = t->plo; p < t->phi; p++) {
        add_run(first + (p - t->plo) * ws, d + p * Wo + t->qlo, len);
    }
}

// STRIDED copy: d (ho*wo) written from the input plane (h, w) with stride S reads.
static void copy_tap_strided(const struct conv2d_state *s, const struct conv2d_tap *t, size_t i,
                             size_t j, float *restrict d, const float *restrict plane)
{
    const size_t W = s->w, S = s->stride, pad = s->pad, Ho = s->ho, Wo = s->wo;
    const size_t len = t->qhi - t->qlo;
    memset(d, 0, t->plo * Wo * sizeof(float));
    memset(d + t->phi * Wo, 0, (Ho - t->phi) * Wo * sizeof(float));
    for (size_t p = t->plo; p < t->phi; p++) {
        const float *src = plane + (p * S + i - pad) * W + (t->qlo * S + j - pad);
        float *drow = d + p * Wo;
        memset(drow, 0, t->qlo * sizeof(float));
        for (size_t e = 0; e < len; e++)
            drow[t->qlo + e] = src[e * S];
        memset(drow + t->qhi, 0, (Wo - t->qhi) * sizeof(float));
    }
}

// STRIDED add, the transpose of copy_tap_strided. d: (ho*wo); plane: (h, w) added to.
static void add_tap_strided(const struct conv2d_state *s, const struct conv2d_tap *t, size_t i,
                            size_t j, const float *restrict d, float *restrict plane)
{
    const size_t W = s->w, S = s->stride, pad = s->pad, Wo = s->wo;
    const size_t len = t->qhi - t->qlo;
    for (size_t p = t->plo; p < t->phi; p++) {
        float *dst = plane + (p * S + i - pad) * W + (t->qlo * S + j - pad);
        const float *srow = d + p * Wo + t->qlo;
        for (size_t e = 0; e < len; e++)
            dst[e * S] += srow[e];
    }
}

// PHASES: splits plane (h, w) into phases (S, S, ph, pw): row u of phase (a, b) holds
// x[S*u + a, S*v + b] for v < ceil((w - b)/S); the other elements are left alone.
static void split_phases(const struct conv2d_state *s, const float *restrict plane,
                         float *restrict ph)
{
    const size_t H = s->h, W = s->w, S = s->stride, psz = s->ph * s->pw;
    for (size_t h = 0; h < H; h++) {
        const float *row = plane + h * W;
        float *dst = ph + (h % S) * S * psz + (h / S) * s->pw; // phase (h % S, 0), row h / S
        if (S == 2) {
            float *d0 = dst, *d1 = dst + psz;
            size_t v = 0, pairs = W / 2;
            for (; v + 4 <= pairs; v += 4) {
                for (size_t u = 0; u < 4; u++) {
                    d0[v + u] = row[2 * (v + u)];
                    d1[v + u] = row[2 * (v + u) + 1];
                }
            }
            for (; v < pairs; v++) {
                d0[v] = row[2 * v];
                d1[v] = row[2 * v + 1];
            }
            if (W % 2 != 0) d0[pairs] = row[W - 1];
        } else {
            for (size_t b = 0; b < S; b++) {
                for (size_t v = 0, w = b; w < W; v++, w += S)
                    dst[b * psz + v] = row[w];
            }
        }
    }
}

// PHASES: the transpose of split_phases: plane (h, w) += the phases (S, S, ph, pw).
static void merge_phases_add(const struct conv2d_state *s, const float *restrict ph,
                             float *restrict plane)
{
    const size_t H = s->h, W = s->w, S = s->stride, psz = s->ph * s->pw;
    for (size_t h = 0; h < H; h++) {
        float *row = plane + h * W;
        const float *src = ph + (h % S) * S * psz + (h / S) * s->pw;
        if (S == 2) {
            const float *g0 = src, *g1 = src + psz;
            size_t v = 0, pairs = W / 2;
            for (; v + 4 <= pairs; v += 4) {
                for (size_t u = 0; u < 4; u++) {
                    row[2 * (v + u)] += g0[v + u];
                    row[2 * (v + u) + 1] += g1[v + u];
                }
            }
            for (; v < pairs; v++) {
                row[2 * v] += g0[v];
                row[2 * v + 1] += g1[v];
            }
            if (W % 2 != 0) row[W - 1] += g0[pairs];
        } else {
            for (size_t b = 0; b < S; b++) {
                for (size_t v = 0, w = b; w < W; v++, w += S)
                    row[w] += src[b * psz + v];
            }
        }
    }
}

// Builds the column matrix of images [n0, n0 + nc) of the batch.
//   x: (c_in, N, h, w) CNHW    col: (K, nc*ho*wo) written; row (c*k + i)*k + j, column
//   (n - n0)*ho*wo + p*wo + q    phases: (S, S, ph, pw) work space (PHASES only)
static void im2col(const struct conv2d_state *s, const float *restrict x, size_t N, size_t n0,
                   size_t nc, float *restrict col, float *restrict phases_all)
{
    const size_t k = s->k, HoWo = s->ho * s->wo, ncols = nc * HoWo, psz = s->ph * s->pw;
    // Channels write disjoint rows of col: the copies are split over the threads.
#pragma omp parallel for schedule(static) num_threads(conv2d_threads(s))
    for (size_t c = 0; c < s->c_in; c++) {
        float *phases = phases_all + eg_thread_index() * conv2d_phase_floats(s);
        for (size_t n = 0; n < nc; n++) {
            const float *plane = x + (c * N + n0 + n) * s->h * s->w;
            if (s->src == CONV2D_SRC_PHASES) split_phases(s, plane, phases);
            for (size_t i = 0; i < k; i++) {
                for (size_t j = 0; j < k; j++) {
                    const struct conv2d_tap t = conv2d_tap_at(s, i, j);
                    float *d = col + ((c * k + i) * k + j) * ncols + n * HoWo;
                    if (t.phi == t.plo || t.qhi == t.qlo) {
                        memset(d, 0, HoWo * sizeof(float)); // the tap reads only padding
                    } else if (s->src == CONV2D_SRC_PLANE) {
                        copy_tap(s, &t, d, plane, s->w);
                    } else if (s->src == CONV2D_SRC_PHASES) {
                        copy_tap(s, &t, d, phases + (t.a * s->stride + t.b) * psz, s->pw);
                    } else {
                        copy_tap_strided(s, &t, i, j, d, plane);
                    }
                }
            }
        }
    }
}

// Adds the column-matrix gradient of images [n0, n0 + nc) into the input gradient: the
// transpose of im2col (what im2col read from the padding is dropped).
//   col: (K, nc*ho*wo) as im2col, clobbered    dx: (c_in, N, h, w) CNHW, added to
//   phases: (S, S, ph, pw) work space (PHASES only)
static void col2im_add(const struct conv2d_state *s, float *restrict col, size_t N, size_t n0,
                       size_t nc, float *restrict dx, float *restrict phases_all)
{
    const size_t k = s->k, HoWo = s->ho * s->wo, ncols = nc * HoWo, psz = s->ph * s->pw;
    // Channels write disjoint planes of dx: split over the threads.
#pragma omp parallel for schedule(static) num_threads(conv2d_threads(s))
    for (size_t c = 0; c < s->c_in; c++) {
        float *phases = phases_all + eg_thread_index() * conv2d_phase_floats(s);
        for (size_t n = 0; n < nc; n++) {
            float *plane = dx + (c * N + n0 + n) * s->h * s->w;
            if (s->src == CONV2D_SRC_PHASES) {
                memset(phases, 0, s->stride * s->stride * psz * sizeof(float));
            }
            for (size_t i = 0; i < k; i++) {
                for (size_t j = 0; j < k; j++) {
                    const struct conv2d_tap t = conv2d_tap_at(s, i, j);
                    float *d = col + ((c * k + i) * k + j) * ncols + n * HoWo;
                    if (t.phi == t.plo || t.qhi == t.qlo) continue;
                    if (s->src == CONV2D_SRC_PLANE) {
                        add_tap(s, &t, d, plane, s->w);
                    } else if (s->src == CONV2D_SRC_PHASES) {
                        add_tap(s, &t, d, phases + (t.a * s->stride + t.b) * psz, s->pw);
                    } else {
                        add_tap_strided(s, &t, i, j, d, plane);
                    }
                }
            }
            if (s->src == CONV2D_SRC_PHASES) merge_phases_add(s, phases, plane);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// layer ops

// x: (c_in, N, h, w) CNHW    y: (c_out, N, ho, wo) CNHW written
// wt: weight (c_out, K)    b: bias (c_out), or NULL for none    scratch: (K, chunk*ho*wo)
static void conv2d_apply(const struct conv2d_state *s, size_t N, const float *x, const float *wt,
                         const float *b, float *y, float *scratch)
{
    const size_t K = conv2d_rows(s), HoWo = s->ho * s->wo, ld = N * HoWo;
    if (N == 0) return;

    if (s->dnnl != NULL && conv2d_dnnl_forward(s->dnnl, N, x, wt, y, scratch)) {
        if (b != NULL) {
            for (size_t o = 0; o < s->c_out; o++)
                add_scalar(y + o * ld, b[o], ld);
        }
        return;
    }

    if (conv2d_is_pointwise(s)) {
        // Y (c_out, N*HW) = W (c_out, c_in) * X (c_in, N*HW): the whole batch at once
        eg_sgemm(false, false, s->c_out, ld, K, 1.0f, wt, K, x, ld, 0.0f, y, ld);
        if (b != NULL) {
            for (size_t o = 0; o < s->c_out; o++)
                add_scalar(y + o * ld, b[o], ld);
        }
        return;
    }

    const size_t chunk = conv2d_chunk(s, N);
    float *col = scratch, *phases = col + K * chunk * HoWo;
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t nc = N - n0 < chunk ? N - n0 : chunk, ncols = nc * HoWo;
        im2col(s, x, N, n0, nc, col, phases);
        // Y[:, n0*HoWo ..) (c_out, ncols), row stride N*HoWo = W (c_out, K) * col (K, ncols)
        eg_sgemm(false, false, s->c_out, ncols, K, 1.0f, wt, K, col, ncols, 0.0f, y + n0 * HoWo,
                 ld);
        // bias while the chunk's output is still in cache
        if (b != NULL) {
            for (size_t o = 0; o < s->c_out; o++)
                add_scalar(y + o * ld + n0 * HoWo, b[o], ncols);
        }
    }
}

// dy: (c_out, N, ho, wo)    dX: (c_in, N, h, w), added to unless NULL
// dwt: dW (c_out, K), added to unless NULL    db: (c_out), added to unless NULL
// Per chunk: dW += dY_chunk * col^T (col rebuilt by im2col), then the same scratch receives
// dcol = W^T * dY_chunk, which col2im adds into dx.
static void conv2d_apply_back(const struct conv2d_state *s, size_t N, const float *x,
                              const float *wt, const float *dy, float *dX, float *dwt, float *db,
                              float *scratch)
{
    const size_t K = conv2d_rows(s), HoWo = s->ho * s->wo, ld = N * HoWo;
    // db[o] += sum of row o of dY (one contiguous run of N*HoWo in CNHW), summed in double
    if (N > 0 && db != NULL) {
        for (size_t o = 0; o < s->c_out; o++) {
            db[o] = (float)((double)db[o] + sum_run(dy + o * ld, ld));
        }
    }
    if (N == 0 || (dwt == NULL && dX == NULL)) return;

    if (s->dnnl != NULL && conv2d_dnnl_backward(s->dnnl, N, x, wt, dy, dX, dwt, scratch)) return;

    if (conv2d_is_pointwise(s)) {
        // dW (c_out, c_in) += dY (c_out, N*HW) * X^T;  dX (c_in, N*HW) += W^T * dY
        if (dwt != NULL) eg_sgemm(false, true, s->c_out, K, ld, 1.0f, dy, ld, x, ld, 1.0f, dwt, K);
        if (dX != NULL) eg_sgemm(true, false, K, ld, s->c_out, 1.0f, wt, K, dy, ld, 1.0f, dX, ld);
        return;
    }

    const size_t chunk = conv2d_chunk(s, N);
    float *col = scratch, *phases = col + K * chunk * HoWo;
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t nc = N - n0 < chunk ? N - n0 : chunk, ncols = nc * HoWo;
        const float *dyc = dy + n0 * HoWo; // (c_out, ncols), row stride N*HoWo
        if (dwt != NULL) {
            im2col(s, x, N, n0, nc, col, phases);
            eg_sgemm(false, true, s->c_out, K, ncols, 1.0f, dyc, ld, col, ncols, 1.0f, dwt, K);
        }
        if (dX != NULL) {
            // dcol (K, ncols) = W^T (K, c_out) * dY_chunk (c_out, ncols)
            eg_sgemm(true, false, K, ncols, s->c_out, 1.0f, wt, K, dyc, ld, 0.0f, col, ncols);
            col2im_add(s, col, N, n0, nc, dX, phases);
        }
    }
}

// The bias inside a parameter block p (weight, then bias), or NULL when the layer has none.
static const float *conv2d_bias_of(const struct conv2d_state *s, const float *p)
{
    return s->bias ? p + s->c_out * conv2d_rows(s) : NULL;
}

static float *conv2d_dbias_of(const struct conv2d_state *s, float *g)
{
    return s->bias && g != NULL ? g + s->c_out * conv2d_rows(s) : NULL;
}

// x[0]: (c_in, N, h, w) CNHW    y: (c_out, N, ho, wo) CNHW written
// params: weight (c_out, K) then bias (c_out)    scratch: (K, chunk*ho*wo)
static void conv2d_forward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                           float *y)
{
    const struct conv2d_state *s = l->state;
    conv2d_apply(s, ctx->n, x[0], ctx->params, conv2d_bias_of(s, ctx->params), y, ctx->scratch);
}

// dy: (c_out, N, ho, wo)    dx[0]: (c_in, N, h, w), added to unless NULL
// ctx->grads: dW (c_out, K) then db (c_out), added to unless NULL
static void conv2d_backward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            const float *y, const float *dy, float *const *dx)
{
    (void)y;
    const struct conv2d_state *s = l->state;
    conv2d_apply_back(s, ctx->n, x[0], ctx->params, dy, dx[0], ctx->grads,
                      conv2d_dbias_of(s, ctx->grads), ctx->scratch);
}

// The convolution is bilinear in (x, W) and affine in b: with tangents tx, tW, tb,
//   ty = conv(x, tW) + tb + conv(tx, W)          (ctx->tmp holds the second term)
static void conv2d_tforward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            const float *const *tx, const float *y, float *ty)
{
    (void)y;
    const struct conv2d_state *s = l->state;
    const size_t N = ctx->n, m = s->c_out * s->ho * s->wo * N;
    conv2d_apply(s, N, x[0], ctx->tparams, conv2d_bias_of(s, ctx->tparams), ty, ctx->scratch);
    if (tx[0] == NULL) return;
    conv2d_apply(s, N, tx[0], ctx->params, NULL, ctx->tmp, ctx->scratch);
    add_run(ty, ctx->tmp, m);
}

// Backward computes dX = conv^T(dy, W), dW = corr(x, dy), db = sum dy; their tangents are
//   tdX = conv^T(tdy, W) + conv^T(dy, tW),  tdW = corr(x, tdy) + corr(tx, dy),  tdb = sum tdy,
// two calls of the same backward: (x, W, tdy) with the bias, then (tx, tW, dy) without.
static void conv2d_tbackward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                             const float *const *tx, const float *y, const float *dy,
                             const float *tdy, float *const *tdx)
{
    (void)y;
    const struct conv2d_state *s = l->state;
    const size_t N = ctx->n;
    conv2d_apply_back(s, N, x[0], ctx->params, tdy, tdx[0], ctx->tgrads,
                      conv2d_dbias_of(s, ctx->tgrads), ctx->scratch);
    float *tdw = tx[0] != NULL ? ctx->tgrads : NULL;
    conv2d_apply_back(s, N, tx[0] != NULL ? tx[0] : x[0], ctx->tparams, dy, tdx[0], tdw, NULL,
                      ctx->scratch);
}

// Weight by p.init with fan_in = c_in*k*k and fan_out = c_out*k*k; bias as PyTorch's default.
static void conv2d_init(const struct layer *l, float *params, float *stats, struct rng *rng)
{
    (void)stats;
    const struct conv2d_state *s = l->state;
    const size_t K = conv2d_rows(s), kk = s->k * s->k;
    layer_init_weight(params, s->c_out * K, K, s->c_out * kk, s->init, rng);
    if (s->bias) layer_init_bias(params + s->c_out * K, s->c_out, K, rng);
}

// The column buffer (K, chunk*ho*wo), then the phase planes (S, S, ph, pw) if used; none for
// the pointwise case. Sized for min(n, conv2d_fit) images rather than the balanced chunk, so the
// size never decreases as n grows: scratch sized for a batch serves every smaller batch.
// With oneDNN, the larger of that and its own blocked copies: a batch oneDNN cannot set up falls
// back to im2col on the same scratch.
static size_t conv2d_scratch_floats(const struct layer *l, size_t n)
{
    const struct conv2d_state *s = l->state;
    if (n == 0) return 0;
    size_t dn = s->dnnl != NULL ? conv2d_dnnl_scratch_floats(s->dnnl, n) : 0;
    if (conv2d_is_pointwise(s)) return dn;
    size_t images = n < conv2d_fit(s) ? n : conv2d_fit(s);
    size_t col =
        conv2d_rows(s) * images * s->ho * s->wo + CONV2D_MAX_THREADS * conv2d_phase_floats(s);
    return col > dn ? col : dn;
}

static void conv2d_destroy(struct layer *l)
{
    struct conv2d_state *s = l->state;
    conv2d_dnnl_free(s->dnnl);
    free(s);
}

// 2*c_out*K per output pixel, plus one add per output for the bias.
static double conv2d_flops(const struct layer *l, size_t n)
{
    const struct conv2d_state *s = l->state;
    double outputs = (double)s->c_out * (double)(s->ho * s->wo) * (double)n;
    return outputs * (2.0 * (double)conv2d_rows(s) + (s->bias ? 1.0 : 0.0));
}

static const struct layer_ops conv2d_ops = {
    .name = "conv2d",
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .tforward = conv2d_tforward,
    .tbackward = conv2d_tbackward,
    .init = conv2d_init,
    .scratch_floats = conv2d_scratch_floats,
    .flops = conv2d_flops,
    .destroy = conv2d_destroy,
    .can_run_in_place = false,
    .backward_reads_y = false,
};

enum conv2d_backend conv2d_layer_backend(const struct layer *l)
{
    EG_ASSERT(l->ops == &conv2d_ops);
    const struct conv2d_state *s = l->state;
    return s->dnnl != NULL ? s->backend : CONV2D_IM2COL;
}

size_t conv2d_layer_fallbacks(const struct layer *l)
{
    EG_ASSERT(l->ops == &conv2d_ops);
    const struct conv2d_state *s = l->state;
    return s->dnnl != NULL ? conv2d_dnnl_fallbacks(s->dnnl) : 0;
}

bool conv2d_layer_winograd(const struct layer *l)
{
    EG_ASSERT(l->ops == &conv2d_ops);
    const struct conv2d_state *s = l->state;
    return s->dnnl != NULL && conv2d_dnnl_winograd(s->dnnl);
}

void layer_conv2d(struct layer *l, struct shape in, struct conv2d_params p)
{
    EG_ASSERT(in.c > 0 && in.h > 0 && in.w > 0);
    EG_ASSERT(p.c_out > 0 && p.k > 0 && p.stride > 0);
    EG_ASSERT(in.h + 2 * p.pad >= p.k && in.w + 2 * p.pad >= p.k);
    struct conv2d_state *s = eg_xmalloc(sizeof *s);
    *s = (struct conv2d_state){
        .c_in = in.c,
        .h = in.h,
        .w = in.w,
        .c_out = p.c_out,
        .k = p.k,
        .stride = p.stride,
        .pad = p.pad,
        .ho = (in.h + 2 * p.pad - p.k) / p.stride + 1,
        .wo = (in.w + 2 * p.pad - p.k) / p.stride + 1,
        .bias = p.bias,
        .init = p.init,
    };
    if (p.stride == 1) {
        s->src = CONV2D_SRC_PLANE;
    } else if (p.k >= p.stride) {
        s->src = CONV2D_SRC_PHASES;
        s->ph = (in.h + p.stride - 1) / p.stride;
        s->pw = (in.w + p.stride - 1) / p.stride;
        if (s->pw < s->wo) s->pw = s->wo; // rows of exactly wo allow one copy per tap
    } else {
        s->src = CONV2D_SRC_STRIDED;
    }
    s->backend = backend_now;
    if (backend_now != CONV2D_IM2COL) {
        const struct conv2d_geom g = {.c_in = s->c_in, .h = s->h, .w = s->w, .c_out = s->c_out,
                                      .k = s->k, .stride = s->stride, .pad = s->pad,
                                      .ho = s->ho, .wo = s->wo};
        s->dnnl = conv2d_dnnl_new(&g, backend_now == CONV2D_DNNL);
    }
    l->ops = &conv2d_ops;
    l->nin = 1;
    l->in_shape[0] = in;
    l->out_shape = (struct shape){.c = p.c_out, .h = s->ho, .w = s->wo};
    l->nparams = p.c_out * conv2d_rows(s) + (p.bias ? p.c_out : 0);
    l->nstats = 0;
    l->state = s;
}
