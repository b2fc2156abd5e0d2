/* conv2d_dnnl.h - the convolution through oneDNN (Debian's libdnnl, the library PyTorch's CPU
 * convolutions run on), used by conv2d.c when the backend is "dnnl" (conv2d_set_backend).
 *
 * oneDNN's fast kernels (JIT-compiled at run time for the CPU it finds: AVX2, AVX-512, ...)
 * want channel-blocked layouts. Each call reorders our CNHW activations into the blocked layout
 * the primitive chose, runs it, and reorders the result back; the reorders that feed a gradient
 * add into it (a sum post-op), so "backward adds" holds. Work is split into chunks of whole images
 * whose blocked copies fit a budget, as the im2col path is; the blocked copies live in the
 * layer's scratch. Primitives are built per (batch, chunk) size on first use and cached.
 *
 * Private to lib/nn: conv2d.c is the only caller. */
#ifndef EG_CONV2D_DNNL_H
#define EG_CONV2D_DNNL_H

#include <stdbool.h>
#include <stddef.h>

// A convolution's geometry (all > 0 except pad): input (c_in, h, w), c_out filters k x k.
struct conv2d_geom {
    size_t c_in, h, w, c_out, k, stride, pad, ho, wo;
};

struct conv2d_dnnl;

// Images per chunk when a batch of n is split into chunks of at most fit (>= 1) images: balanced,
// so 100 with room for 40 runs as 34 + 34 + 32 rather than 40 + 40 + 20 (both backends).
static inline size_t conv2d_balanced_chunk(size_t n, size_t fit)
{
    if (fit >= n) return n;
    size_t nchunks = (n + fit - 1) / fit;
    return (n + nchunks - 1) / nchunks;
}

// A oneDNN convolution for g, or NULL when oneDNN has no optimised kernel for it on this CPU
// (only a reference one) or cannot be initialised; the caller then uses im2col. With winograd,
// a 3x3 stride-1 g uses oneDNN's Winograd F(4x4, 3x3) kernels where it has optimised ones for the
// CPU (AVX-512 in oneDNN 2.6), direct convolution otherwise (and for the chunk sizes at which
// Winograd's work space would exceed 16 MiB).
struct conv2d_dnnl *conv2d_dnnl_new(const struct conv2d_geom *g, bool winograd);
// Whether d runs Winograd.
bool conv2d_dnnl_winograd(const struct conv2d_dnnl *d);
// Calls of the two functions below that returned false so far.
size_t conv2d_dnnl_fallbacks(const struct conv2d_dnnl *d);
void conv2d_dnnl_free(struct conv2d_dnnl *d);

// Floats of scratch the calls below need for a batch of n (oneDNN's own work space, its
// "scratchpad", included); never decreases as n grows.
size_t conv2d_dnnl_scratch_floats(const struct conv2d_dnnl *d, size_t n);

// y (c_out, N, ho, wo) CNHW = conv(x (c_in, N, h, w) CNHW, w (c_out, c_in, k, k)); no bias.
// Returns false (y untouched) when a primitive for this batch cannot be built; the caller then
// computes the same thing another way.
bool conv2d_dnnl_forward(struct conv2d_dnnl *d, size_t N, const float *x, const float *w,
                         float *y, float *scratch);

// dx += dL/dx (unless NULL) and dw += dL/dw (unless NULL), from dy (c_out, N, ho, wo). Returns
// false with dx and dw untouched when a primitive cannot be built.
bool conv2d_dnnl_backward(struct conv2d_dnnl *d, size_t N, const float *x, const float *w,
                          const float *dy, float *dx, float *dw, float *scratch);

// The oneDNN implementation chosen for this layer's forward at batch n ("jit:avx512_core",
// "brgconv:avx2", ...), or "?" when none could be built. For benchmarks and diagnostics.
const char *conv2d_dnnl_impl(struct conv2d_dnnl *d, size_t n);

#endif // EG_CONV2D_DNNL_H
