/* layer.h - one interface for every layer kind (conv2d, batchnorm, relu, pools, add, ...).
 *
 * Activation layout. Inside a network every activation is stored CHANNEL-MAJOR, "CNHW": element
 * (c, n, h, w) of a batch of N samples sits at ((c*N + n)*H + h)*W + w. A channel's values for the
 * whole batch are then one contiguous run (batch norm reduces over it; a convolution's output for
 * a chunk of images is one GEMM with no transposes). Each (c, n) plane is an ordinary H x W image.
 * A feature vector (after flatten) is the case H = W = 1: a (features, N) matrix. The net converts
 * from and to the public NCHW layout at its input and output (net.h).
 *
 * Ownership. The net owns one flat params block, one grads block of the same layout and one stats
 * block (batch-norm running statistics); a layer sees its slice of each through struct layer_ctx.
 * A layer owns only l->state (its settings and any per-batch cache), freed by ops->destroy.
 *
 * Backward ADDS: dL/dparams is added into ctx->grads (when not NULL) and dL/dx[i] into dx[i]
 * (when not NULL); the net zeroes both beforehand. */
#ifndef EG_LAYER_H
#define EG_LAYER_H

#include <stdbool.h>
#include <stddef.h>

struct rng;

// Per-sample shape of an activation: channels, height, width.
struct shape {
    size_t c, h, w;
};

static inline size_t shape_numel(struct shape s)
{
    return s.c * s.h * s.w;
}

static inline bool shape_eq(struct shape a, struct shape b)
{
    return a.c == b.c && a.h == b.h && a.w == b.w;
}

enum layer_mode {
    LAYER_MODE_EVAL,         // batch norm uses running statistics
    LAYER_MODE_TRAIN,        // batch statistics; running statistics updated
    LAYER_MODE_TRAIN_FROZEN, // batch statistics; running statistics left alone (EvoGrad candidates)
};

// How a weight tensor is initialised. Biases always get PyTorch's default U(-1/sqrt(fan_in), +).
enum init_kind {
    INIT_TORCH_DEFAULT,   // nn.Linear/nn.Conv2d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    INIT_KAIMING_FAN_IN,  // init.kaiming_normal_ (mode fan_in, ReLU gain): N(0, 2/fan_in)
    INIT_KAIMING_FAN_OUT, // N(0, 2/fan_out), fan_out = c_out*k*k (CloserLookFewShot's init_layer)
};

// What one forward or backward call sees. Built by the net for each call.
struct layer_ctx {
    size_t n;             // batch size of this pass
    enum layer_mode mode;
    const float *params;  // (l->nparams) this layer's parameters
    float *grads;         // (l->nparams) backward adds dL/dparams here; NULL: not wanted
    float *stats;         // (l->nstats) running statistics; written in LAYER_MODE_TRAIN only
    float *scratch;       // (ops->scratch_floats(l, n)) shared; undefined on entry and on exit
    struct rng *rng;      // for stochastic layers; may be NULL for the others
    // tangent passes only (net_forward_tangent / net_backward_tangent), NULL otherwise:
    const float *tparams; // (l->nparams) the parameters' tangent
    float *tgrads;        // (l->nparams) tbackward adds the tangent of dL/dparams; NULL: not wanted
    float *tmp;           // (largest node numel * n) work space, undefined on entry and on exit
};

struct layer;

struct layer_ops {
    const char *name; // "conv2d": used in summaries and error messages
    // y: (out_shape, n) CNHW written; x[i]: (in_shape[i], n) CNHW. If can_run_in_place, y may
    // equal x[0] and forward must then work in place.
    void (*forward)(struct layer *l, const struct layer_ctx *ctx, const float *const *x, float *y);
    // dy: (out_shape, n). Adds dL/dx[i] into dx[i] unless dx[i] is NULL, and dL/dparams into
    // ctx->grads unless it is NULL. x and y are the values of the last forward call (x[0] is
    // garbage when the layer ran in place; such a layer must not read it).
    void (*backward)(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                     const float *y, const float *dy, float *const *dx);
    // Tangent (forward-mode) passes, for exact second-order products (net.h): along a direction
    // of the parameters (ctx->tparams) and of the inputs (tx[i]; NULL when that input's tangent
    // is zero, which happens only for the net's input), tforward writes ty, the directional
    // derivative of y, and tbackward adds the directional derivatives of dL/dx[i] into tdx[i]
    // (unless NULL) and of dL/dparams into ctx->tgrads (unless NULL), given dy and its tangent
    // tdy. Both are called after forward (and tbackward after tforward) on the same x, so they
    // see its cached statistics, argmaxes and noise; as in backward, x[0] is garbage when the
    // layer ran in place, and then tx[0] is too (the tangents follow the same buffer plan).
    // Running statistics are constants of the pass (batch norm in LAYER_MODE_EVAL).
    void (*tforward)(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                     const float *const *tx, const float *y, float *ty);
    void (*tbackward)(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                      const float *const *tx, const float *y, const float *dy, const float *tdy,
                      float *const *tdx);
    // Initialises params (l->nparams) and stats (l->nstats). NULL when both counts are 0.
    void (*init)(const struct layer *l, float *params, float *stats, struct rng *rng);
    // Floats of ctx->scratch needed for a batch of n. NULL means 0.
    size_t (*scratch_floats)(const struct layer *l, size_t n);
    // Multiply-adds counted as 2 FLOPs, forward only, for a batch of n. NULL means 0.
    double (*flops)(const struct layer *l, size_t n);
    // Frees l->state. NULL when state needs only free().
    void (*destroy)(struct layer *l);
    bool can_run_in_place;  // forward works with y == x[0] and backward never reads x[0]
    bool backward_reads_y;  // backward reads y (so y must not be overwritten by a later layer)
    bool hyper;             // its parameters are hyperparameters (the FT layer): the net places
                            // them after all the others (net.h, nparams_hyper)
};

struct layer {
    const struct layer_ops *ops;
    size_t nin;              // 1 or 2 inputs
    size_t in[2];            // producer node of each input (net.h: node 0 is the net's input)
    struct shape in_shape[2];
    struct shape out_shape;
    size_t nparams, param_off; // slice of net->params / net->grads
    size_t nstats, stats_off;  // slice of net->stats
    void *state;               // owned, kind-specific
};

// tforward and tbackward of a layer without parameters that is linear in its inputs (average
// pools, flatten, add, shortcut): its forward applied to tx, its backward applied to tdy. Serves
// as tbackward too for layers whose backward is linear in dy for the forward's x and y (ReLU's
// mask, max pool's argmaxes).
void layer_linear_tforward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                           const float *const *tx, const float *y, float *ty);
void layer_linear_tbackward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            const float *const *tx, const float *y, const float *dy,
                            const float *tdy, float *const *tdx);

#endif // EG_LAYER_H
