/* net.h - a network: a directed acyclic graph of layers over one flat parameter block.
 *
 * Node 0 is the network's input; layer i produces node i + 1, so layers are stored in a valid
 * execution order and the last layer's node is the output. A layer reads one or two earlier
 * nodes (two for residual addition). Inside, activations are CNHW (layer.h); the public
 * interface is NCHW: net_forward takes (n, C, H, W) input and returns (n, C', H', W') output.
 *
 * Memory. The net owns params, grads (same layout) and stats (running statistics), each one
 * contiguous block, so optimisers, weight decay and EvoGrad's perturbations are single loops.
 * Activation buffers are allocated for the largest batch seen so far and reused. A layer that
 * allows it runs in place on its input (ReLU after batch norm, the residual addition) when that
 * input has no other reader. Gradients of activations live only while backward needs them, in
 * a small pool of buffers.
 *
 * Build a net with net_new, the net_<layer> calls (each returns the new node) and net_finalize;
 * backbones.h builds the named architectures this way. */
#ifndef EG_NET_H
#define EG_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "layer.h"
#include "layers.h"

struct rng;

struct net {
    struct shape in_shape;
    size_t nlayers;
    struct layer *layers;     // (nlayers) layer i produces node i + 1
    struct shape *node_shape; // (nlayers + 1)

    size_t nparams, nstats;
    size_t nparams_hyper; // parameters of hyper layers (layer_ops.hyper: FT), stored last:
                          // params[nparams - nparams_hyper .. nparams); 0 for most nets
    float *params; // (nparams) owned
    float *grads;  // (nparams) owned; backward adds into it, net_zero_grad clears it
    float *stats;  // (nstats) owned: batch-norm running statistics

    struct rng *rng; // for stochastic layers; NULL unless a task sets it (not owned)
    bool profile;    // when true, forward/backward add per-layer seconds to prof_* below
    double *prof_fwd, *prof_bwd; // (nlayers) seconds accumulated while profile is on

    // Everything below is private to net.c.
    bool finalized;
    size_t *nconsumers;   // (nlayers + 1)
    size_t *buf_of;       // (nlayers + 1) activation buffer of each node (in-place aliasing)
    size_t nbufs;
    size_t cap;           // batch capacity of the buffers
    float **bufs;         // (nbufs) activation buffers
    float *scratch;       // shared layer scratch
    float *out;           // (cap, output numel) NCHW output of the last forward
    size_t last_n;        // batch size of the last forward, 0 before the first
    enum layer_mode last_mode;
    float **gpool;        // free gradient buffers, each (max node numel * cap)
    size_t ngpool, gpool_total;
    float **gbuf;         // (nlayers + 1) gradient buffer of each node during backward
    // tangent passes (allocated on first use, for batches up to tcap)
    size_t tcap;
    float **tbufs;        // (nbufs) tangents of the activations, same plan as bufs
    float *ttmp;          // (max node numel * tcap) layer work space of tangent passes
    float *tout;          // (tcap, output numel) NCHW tangent of the output
    const float *tparams; // the direction of the last net_forward_tangent (not owned)
    bool last_tangent;    // the last forward was net_forward_tangent
    bool tx_given;        // ... with an input tangent
    float **tgpool;       // free tangent-gradient buffers, as gpool
    size_t ntgpool, tgpool_total;
    float **tgbuf;        // (nlayers + 1)
};

// An empty network for per-sample input shape in. Caller frees with net_free.
struct net *net_new(struct shape in);
void net_free(struct net *net);

// Each adds one layer reading node `in` (and `in2`) and returns the node it produces.
size_t net_conv2d(struct net *net, size_t in, struct conv2d_params p);
size_t net_linear(struct net *net, size_t in, struct linear_params p);
size_t net_batchnorm(struct net *net, size_t in, struct batchnorm_params p);
size_t net_relu(struct net *net, size_t in);
size_t net_ft(struct net *net, size_t in);
size_t net_maxpool(struct net *net, size_t in, struct pool_params p);
size_t net_avgpool(struct net *net, size_t in, struct pool_params p);
size_t net_global_avgpool(struct net *net, size_t in);
size_t net_flatten(struct net *net, size_t in);
size_t net_add(struct net *net, size_t in, size_t in2);
size_t net_shortcut_a(struct net *net, size_t in, size_t c_out, size_t stride);
// Adds a layer made by the caller (l->ops, shapes, counts and state set; in/nin set here).
size_t net_push(struct net *net, struct layer l, size_t in, size_t in2);

// Allocates params/grads/stats, initialises them (each layer's ops->init, in layer order, from
// rng) and plans in-place execution. Parameter slices follow layer order, except that the
// slices of hyper layers (FT) come after all the others, so a meta-learner sees the weights as
// one block and the hyperparameters as another. No layers may be added afterwards.
void net_finalize(struct net *net, struct rng *rng);

// Per-sample output shape (of the last node).
struct shape net_out_shape(const struct net *net);

// Forward pass on x: (n, in_shape) NCHW. Returns the output, (n, out_shape) NCHW, owned by the
// net and valid until the next forward. mode selects batch or running statistics (layer.h).
const float *net_forward(struct net *net, const float *x, size_t n, enum layer_mode mode);

// Backward pass for the last forward: dout is dL/d(output), (n, out_shape) NCHW. Adds dL/dparams
// into net->grads. If dx is not NULL it is overwritten with dL/dx, (n, in_shape) NCHW.
void net_backward(struct net *net, const float *dout, float *dx);

// grads = 0.
void net_zero_grad(struct net *net);

// Exact second-order products by forward-over-reverse differentiation. net_forward_tangent is
// net_forward plus the directional derivative of every activation along tparams (nparams, the
// parameters' direction; not copied, must stay valid until net_backward_tangent) and tx ((n,
// in_shape) NCHW, the input's direction, or NULL for none). *tout receives the output's tangent,
// (n, out_shape) NCHW, owned by the net like the output.
//
// net_backward_tangent then runs net_backward (dout, dx as there: adds dL/dparams into
// net->grads) together with its tangent: given tdout, the directional derivative of dout (the
// loss's Hessian applied to *tout, plus any explicit dependence), it adds the directional
// derivative of dL/dparams into tgrads (nparams, unless NULL) and writes that of dL/dx into tdx
// (unless NULL). With L a loss of the output, tgrads is then (d^2 L / dparams^2) tparams (+ the
// mixed term along tx), the Hessian-vector product, exact up to float rounding; hyperparameters
// inside the net (the FT layer's, net.h) get the mixed product in their slice.
//
// Memory: tangent passes keep a second set of activation and gradient buffers (and one more
// node-sized work buffer), allocated on first use.
const float *net_forward_tangent(struct net *net, const float *x, const float *tx, size_t n,
                                 enum layer_mode mode, const float *tparams, const float **tout);
void net_backward_tangent(struct net *net, const float *dout, const float *tdout, float *tgrads,
                          float *dx, float *tdx);

// Evaluating a network at other parameters theta (the meta-problems): net_swap_in saves the
// net's own parameters into saved (nparams floats) and copies theta in; net_swap_out copies them
// back. Both do nothing when theta is net->params itself.
void net_swap_in(struct net *net, float *saved, const float *theta);
void net_swap_out(struct net *net, const float *saved, const float *theta);

// Forward multiply-add FLOPs (2 per multiply-add) of a batch of n.
double net_flops(const struct net *net, size_t n);

// Bytes of activation and gradient buffers currently allocated.
size_t net_buffer_bytes(const struct net *net);

// ---------------------------------------------------------------------------------------------
// sizing a network without building its blocks (the memory check before a run)
//
// Both read only the layer graph, so they work on a net before net_finalize as well: a skeleton
// made with net_new and the net_<layer> calls (backbones.h: backbone_build) holds each layer's
// shapes, counts and small settings, but no parameter, gradient or activation block, and can
// describe a network far too large to build. Free it with net_free.

// The parameters of every layer added so far (as net_finalize counts them: nparams), those of
// hyper layers among them (nparams_hyper) and the running statistics (nstats). Any output may
// be NULL.
void net_count(const struct net *net, size_t *params, size_t *hyper, size_t *stats);

// What a batch runs through: forward only, forward and backward without dL/dx (net_backward's
// dx NULL), or with it.
enum net_pass { NET_PASS_FORWARD, NET_PASS_BACKWARD, NET_PASS_BACKWARD_DX,
                NET_PASS_TANGENT,     // net_forward_tangent + net_backward_tangent, no dx
                NET_PASS_TANGENT_DX}; // the same with dx and tdx

// Bytes that net_forward and net_backward allocate for batches of n: the activation buffers of
// the in-place plan, the output, the largest layer scratch and, with a backward pass, the pool
// of gradient buffers net_backward fills (its acquire and release steps replayed). The net keeps
// buffers for the largest batch it has seen (and a later backward fills its pool at that size),
// so a caller sizes them at that batch. In double (no overflow for any n); allocates only
// per-node bookkeeping.
double net_batch_bytes(const struct net *net, size_t n, enum net_pass pass);

// Writes one line per layer (index, kind, output shape, parameters) and a total.
void net_print_summary(const struct net *net, FILE *f);

#endif // EG_NET_H
