/* layers.h - constructors for every layer kind. Each fills a struct layer: ops, nin, in_shape,
 * out_shape, nparams, nstats and an owned state; the net sets in/param_off/stats_off. in is the
 * per-sample input shape. Bad shapes or settings are programming errors (EG_ASSERT): networks
 * are built from validated specs.
 *
 * Parameter layouts (inside the layer's slice, row-major):
 *   conv2d:    weight (c_out, c_in, k, k), then bias (c_out) if bias
 *   linear:    weight (out, in_features), then bias (out) if bias;  in_features = c*h*w
 *   batchnorm: gamma (c), beta (c);  stats: running_mean (c), running_var (c) when tracked */
#ifndef EG_LAYERS_H
#define EG_LAYERS_H

#include "layer.h"

struct conv2d_params {
    size_t c_out, k, stride, pad; // square k x k kernel, zero padding on every side
    bool bias;
    enum init_kind init;
};
// PyTorch F.conv2d (cross-correlation). out h = (h + 2*pad - k)/stride + 1. Computed by the
// backend in force when the layer is made (conv2d_set_backend).
void layer_conv2d(struct layer *l, struct shape in, struct conv2d_params p);

// How convolutions made from now on compute:
//   CONV2D_DNNL         oneDNN's kernels (JIT-compiled for the CPU at run time), the default:
//                       Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions where oneDNN has an
//                       optimised Winograd kernel for the CPU (AVX-512 in oneDNN 2.6), direct
//                       convolution otherwise; a shape oneDNN has no optimised kernel for, or a
//                       batch it cannot set up, falls back to im2col;
//   CONV2D_DNNL_DIRECT  the same, direct convolution only;
//   CONV2D_IM2COL       im2col + OpenBLAS sgemm, the reference implementation.
// All compute the same function; the float32 results differ by rounding (summation order, and
// Winograd's transforms).
enum conv2d_backend { CONV2D_DNNL, CONV2D_DNNL_DIRECT, CONV2D_IM2COL, CONV2D__BACKENDS };
void conv2d_set_backend(enum conv2d_backend b);
enum conv2d_backend conv2d_backend(void);
const char *conv2d_backend_name(enum conv2d_backend b);
// "dnnl", "dnnl_direct" or "im2col" -> *b; false for any other name.
bool conv2d_backend_find(const char *name, enum conv2d_backend *b);
// Threads for training and evaluation with the current backend: OpenMP's n (evograd's own loops
// and oneDNN), and OpenBLAS's n with im2col, whose GEMMs are the work, but 1 with oneDNN: OpenBLAS
// is then left with the small linear layers, and its second pool of busy threads would only
// contend with OpenMP's for the cores (lib/core/parallel.h). n >= 1.
void conv2d_set_threads(int n);
// The backend a made layer actually uses (the one in force when it was made, or CONV2D_IM2COL
// when it fell back), and whether it runs Winograd. l: a conv2d layer.
enum conv2d_backend conv2d_layer_backend(const struct layer *l);
bool conv2d_layer_winograd(const struct layer *l);
// Forward and backward calls of a layer made for oneDNN that it computed on im2col because
// oneDNN could not set up that batch (0 for an im2col layer).
size_t conv2d_layer_fallbacks(const struct layer *l);

struct linear_params {
    size_t out;
    bool bias;
    enum init_kind init;
};
// y = W x + b on (c*h*w, n) inputs; requires in.h == in.w == 1 (use layer_flatten first).
void layer_linear(struct layer *l, struct shape in, struct linear_params p);

struct batchnorm_params {
    float eps;      // PyTorch default 1e-5
    float momentum; // PyTorch default 0.1: running = (1-m)*running + m*batch (unbiased var)
    bool track_running_stats; // false: batch statistics in every mode, no stats (nstats = 0)
};
// nn.BatchNorm2d: per-channel over (n, h, w). Train modes use batch statistics (biased variance
// for the output); LAYER_MODE_TRAIN also updates the running statistics with the unbiased one.
void layer_batchnorm(struct layer *l, struct shape in, struct batchnorm_params p);

// max(x, 0), in place when the net allows it.
void layer_relu(struct layer *l, struct shape in);

struct pool_params {
    size_t k, stride, pad; // square window; pad is implicit -inf (max) or zeros (avg)
};
// nn.MaxPool2d (floor mode). Padding never wins the max.
void layer_maxpool(struct layer *l, struct shape in, struct pool_params p);
// nn.AvgPool2d (floor mode, count_include_pad=True).
void layer_avgpool(struct layer *l, struct shape in, struct pool_params p);
// Mean over h, w: (c, h, w) -> (c, 1, 1).
void layer_global_avgpool(struct layer *l, struct shape in);

// y = x0 + x1 (residual addition); both inputs of shape in. In place on x0 when allowed.
void layer_add(struct layer *l, struct shape in);

// Feature-wise transformation (lib/nn/ft.c; paper-spec 3.3): parameters gamma (C), beta (C),
// initialised 0.3 and 0.5; in the training modes y = (1 + n_g sp(gamma)) x + n_b sp(beta) with
// n_g, n_b ~ N(0, 1) per channel drawn from ctx->rng at every forward, sp = softplus with beta
// 100 (threshold 20) as PyTorch; the identity in LAYER_MODE_EVAL.
void layer_ft(struct layer *l, struct shape in);
// Holds the noise at n_gamma, n_beta (C each) for later forwards instead of drawing it; NULL
// for both returns to drawing. l must be an ft layer.
void layer_ft_hold_noise(struct layer *l, const float *n_gamma, const float *n_beta);
// PyTorch's softplus(u, beta = 100, threshold = 20) and its derivative.
double ft_softplus(double u);
double ft_softplus_grad(double u);

// (c, h, w) -> (c*h*w, 1, 1), feature index (c*h + i)*w + j as torch.flatten on NCHW.
void layer_flatten(struct layer *l, struct shape in);

// Option-A ResNet shortcut (He et al. 2016, CIFAR): y = x[:, :, ::stride, ::stride] with the
// channels zero-padded from in.c to c_out, (c_out - in.c)/2 on each side, as the CIFAR
// ResNet-32 code's LambdaLayer does. Requires c_out >= in.c, (c_out - in.c) even.
void layer_shortcut_a(struct layer *l, struct shape in, size_t c_out, size_t stride);

// Initialises a weight of fan_in inputs and fan_out outputs per init; w: (count).
void layer_init_weight(float *w, size_t count, size_t fan_in, size_t fan_out,
                       enum init_kind init, struct rng *rng);
// PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); b: (count).
void layer_init_bias(float *b, size_t count, size_t fan_in, struct rng *rng);

#endif // EG_LAYERS_H
