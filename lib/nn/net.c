/* net.c - building, running and differentiating a layer graph (see net.h).
 * Forward runs the layers in order. Backward runs them in reverse; the gradient of a node is
 * taken from a pool (zeroed) when its first reader's backward needs it, every reader adds into
 * it, and it returns to the pool once the node's own layer has run backward. */
#include "net.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/status.h"
#include "core/timer.h"
#include "layout.h"

struct net *net_new(struct shape in)
{
    EG_ASSERT(shape_numel(in) > 0);
    struct net *net = eg_xcalloc(1, sizeof *net);
    net->in_shape = in;
    net->node_shape = eg_xmalloc(sizeof *net->node_shape);
    net->node_shape[0] = in;
    return net;
}

static void free_buffers(struct net *net)
{
    for (size_t b = 0; b < net->nbufs; b++) free(net->bufs[b]);
    for (size_t i = 0; i < net->ngpool; i++) free(net->gpool[i]);
    free(net->scratch);
    free(net->out);
    net->ngpool = 0;
    net->gpool_total = 0;
    net->scratch = NULL;
    net->out = NULL;
    for (size_t b = 0; b < net->nbufs; b++) net->bufs[b] = NULL;
    net->cap = 0;
}

static void free_tangent_buffers(struct net *net)
{
    if (net->tbufs != NULL) {
        for (size_t b = 0; b < net->nbufs; b++) {
            free(net->tbufs[b]);
            net->tbufs[b] = NULL;
        }
    }
    for (size_t i = 0; i < net->ntgpool; i++) free(net->tgpool[i]);
    free(net->ttmp);
    free(net->tout);
    net->ttmp = NULL;
    net->tout = NULL;
    net->ntgpool = 0;
    net->tgpool_total = 0;
    net->tcap = 0;
}

void net_free(struct net *net)
{
    if (net == NULL) return;
    if (net->bufs != NULL) free_buffers(net);
    free_tangent_buffers(net);
    free(net->tbufs);
    free(net->tgpool);
    free(net->tgbuf);
    for (size_t i = 0; i < net->nlayers; i++) {
        struct layer *l = &net->layers[i];
        if (l->ops->destroy != NULL) {
            l->ops->destroy(l);
        } else {
            free(l->state);
        }
    }
    free(net->layers);
    free(net->node_shape);
    free(net->params);
    free(net->grads);
    free(net->stats);
    free(net->prof_fwd);
    free(net->prof_bwd);
    free(net->nconsumers);
    free(net->buf_of);
    free(net->bufs);
    free(net->gpool);
    free(net->gbuf);
    free(net);
}

size_t net_push(struct net *net, struct layer l, size_t in, size_t in2)
{
    EG_ASSERT(!net->finalized);
    size_t nodes = net->nlayers + 1;
    EG_ASSERT(in < nodes);
    EG_ASSERT(l.nin == 1 || l.nin == 2);
    EG_ASSERT(shape_eq(l.in_shape[0], net->node_shape[in]));
    l.in[0] = in;
    if (l.nin == 2) {
        EG_ASSERT(in2 < nodes);
        EG_ASSERT(shape_eq(l.in_shape[1], net->node_shape[in2]));
        l.in[1] = in2;
    }
    EG_ASSERT(shape_numel(l.out_shape) > 0);
    net->layers = eg_xrealloc(net->layers, (net->nlayers + 1) * sizeof *net->layers);
    net->node_shape = eg_xrealloc(net->node_shape, (nodes + 1) * sizeof *net->node_shape);
    net->layers[net->nlayers] = l;
    net->node_shape[nodes] = l.out_shape;
    net->nlayers++;
    return nodes;
}

// The node's shape, checking that the node exists.
static struct shape node_shape(const struct net *net, size_t in)
{
    EG_ASSERT(in <= net->nlayers);
    return net->node_shape[in];
}

size_t net_conv2d(struct net *net, size_t in, struct conv2d_params p)
{
    struct layer l = {0};
    layer_conv2d(&l, node_shape(net, in), p);
    return net_push(net, l, in, 0);
}

size_t net_linear(struct net *net, size_t in, struct linear_params p)
{
    struct layer l = {0};
    layer_linear(&l, node_shape(net, in), p);
    return net_push(net, l, in, 0);
}

size_t net_batchnorm(struct net *net, size_t in, struct batchnorm_params p)
{
    struct layer l = {0};
    layer_batchnorm(&l, node_shape(net, in), p);
    return net_push(net, l, in, 0);
}

size_t net_maxpool(struct net *net, size_t in, struct pool_params p)
{
    struct layer l = {0};
    layer_maxpool(&l, node_shape(net, in), p);
    return net_push(net, l, in, 0);
}

size_t net_avgpool(struct net *net, size_t in, struct pool_params p)
{
    struct layer l = {0};
    layer_avgpool(&l, node_shape(net, in), p);
    return net_push(net, l, in, 0);
}

size_t net_shortcut_a(struct net *net, size_t in, size_t c_out, size_t stride)
{
    struct layer l = {0};
    layer_shortcut_a(&l, node_shape(net, in), c_out, stride);
    return net_push(net, l, in, 0);
}

// Constructors without settings.
static size_t add_plain(struct net *net, size_t in, void (*make)(struct layer *, struct shape))
{
    struct layer l = {0};
    make(&l, node_shape(net, in));
    return net_push(net, l, in, 0);
}

size_t net_relu(struct net *net, size_t in)
{
    return add_plain(net, in, layer_relu);
}

size_t net_ft(struct net *net, size_t in)
{
    return add_plain(net, in, layer_ft);
}

size_t net_global_avgpool(struct net *net, size_t in)
{
    return add_plain(net, in, layer_global_avgpool);
}

size_t net_flatten(struct net *net, size_t in)
{
    return add_plain(net, in, layer_flatten);
}

size_t net_add(struct net *net, size_t in, size_t in2)
{
    EG_ASSERT(shape_eq(node_shape(net, in), node_shape(net, in2)));
    struct layer l = {0};
    layer_add(&l, net->node_shape[in]);
    return net_push(net, l, in, in2);
}

// ---------------------------------------------------------------------------------------------
// finalize: parameter blocks and the in-place plan

// The in-place plan: nconsumers (nodes) written with the readers of each node (the output node
// counts as read by the caller), buf_of (nodes) with the activation buffer of each node. Returns
// the number of buffers. Reads only the layer graph, so it serves net_batch_bytes before
// net_finalize too.
static size_t plan_buffers(const struct net *net, size_t *nconsumers, size_t *buf_of)
{
    const size_t nodes = net->nlayers + 1;
    memset(nconsumers, 0, nodes * sizeof *nconsumers);
    for (size_t i = 0; i < net->nlayers; i++) {
        for (size_t k = 0; k < net->layers[i].nin; k++) nconsumers[net->layers[i].in[k]]++;
    }
    nconsumers[nodes - 1]++;

    // In place: the layer allows it, its first input is read by it alone, is not the network's
    // input, has the same shape, and the input's producer does not read its own output later.
    size_t nbufs = 1; // buffer 0 holds the network's input
    buf_of[0] = 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const struct layer *l = &net->layers[i];
        size_t src = l->in[0];
        bool inplace = l->ops->can_run_in_place && src != 0 && nconsumers[src] == 1 &&
                       shape_eq(net->node_shape[src], l->out_shape) &&
                       !net->layers[src - 1].ops->backward_reads_y;
        buf_of[i + 1] = inplace ? buf_of[src] : nbufs++;
    }
    return nbufs;
}

void net_finalize(struct net *net, struct rng *rng)
{
    EG_ASSERT(!net->finalized);
    EG_ASSERT(net->nlayers >= 1);
    size_t nodes = net->nlayers + 1;

    // Parameter and statistics slices, in layer order; hyper layers' parameters last.
    size_t P = 0, S = 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        struct layer *l = &net->layers[i];
        l->stats_off = S;
        S += l->nstats;
        if (l->ops->hyper) continue;
        l->param_off = P;
        P += l->nparams;
    }
    net->nparams_hyper = 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        struct layer *l = &net->layers[i];
        if (!l->ops->hyper) continue;
        l->param_off = P;
        P += l->nparams;
        net->nparams_hyper += l->nparams;
    }
    net->nparams = P;
    net->nstats = S;
    net->params = eg_xcalloc_floats(P);
    net->grads = eg_xcalloc_floats(P);
    net->stats = eg_xcalloc_floats(S);
    for (size_t i = 0; i < net->nlayers; i++) {
        struct layer *l = &net->layers[i];
        if (l->ops->init != NULL) {
            l->ops->init(l, net->params + l->param_off, net->stats + l->stats_off, rng);
        } else {
            EG_ASSERT(l->nparams == 0 && l->nstats == 0);
        }
    }

    net->nconsumers = eg_xcalloc(nodes, sizeof *net->nconsumers);
    net->buf_of = eg_xcalloc(nodes, sizeof *net->buf_of);
    net->nbufs = plan_buffers(net, net->nconsumers, net->buf_of);
    net->bufs = eg_xcalloc(net->nbufs, sizeof *net->bufs);
    net->gbuf = eg_xcalloc(nodes, sizeof *net->gbuf);
    net->gpool = eg_xcalloc(nodes, sizeof *net->gpool);
    net->tbufs = eg_xcalloc(net->nbufs, sizeof *net->tbufs);
    net->tgbuf = eg_xcalloc(nodes, sizeof *net->tgbuf);
    net->tgpool = eg_xcalloc(nodes, sizeof *net->tgpool);
    net->prof_fwd = eg_xcalloc(net->nlayers, sizeof(double));
    net->prof_bwd = eg_xcalloc(net->nlayers, sizeof(double));
    net->finalized = true;
}

struct shape net_out_shape(const struct net *net)
{
    return net->node_shape[net->nlayers];
}

// Largest per-sample size over the nodes sharing buffer b of the plan buf_of.
static size_t plan_buffer_numel(const struct net *net, const size_t *buf_of, size_t b)
{
    size_t m = 0;
    for (size_t j = 0; j <= net->nlayers; j++) {
        if (buf_of[j] == b && shape_numel(net->node_shape[j]) > m) {
            m = shape_numel(net->node_shape[j]);
        }
    }
    return m;
}

static size_t buffer_numel(const struct net *net, size_t b)
{
    return plan_buffer_numel(net, net->buf_of, b);
}

static size_t max_node_numel(const struct net *net)
{
    size_t m = 0;
    for (size_t j = 0; j <= net->nlayers; j++) {
        if (shape_numel(net->node_shape[j]) > m) m = shape_numel(net->node_shape[j]);
    }
    return m;
}

// Makes every buffer large enough for a batch of n.
static void ensure_capacity(struct net *net, size_t n)
{
    if (n <= net->cap) return;
    free_buffers(net);
    for (size_t b = 0; b < net->nbufs; b++) {
        net->bufs[b] = eg_xmalloc_floats(buffer_numel(net, b) * n);
    }
    size_t scratch = 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const struct layer *l = &net->layers[i];
        size_t s = l->ops->scratch_floats != NULL ? l->ops->scratch_floats(l, n) : 0;
        if (s > scratch) scratch = s;
    }
    net->scratch = eg_xmalloc_floats(scratch);
    net->out = eg_xmalloc_floats(shape_numel(net_out_shape(net)) * n);
    net->cap = n;
}

static struct layer_ctx make_ctx(struct net *net, const struct layer *l, size_t n,
                                 enum layer_mode mode, bool with_grads)
{
    return (struct layer_ctx){
        .n = n,
        .mode = mode,
        .params = net->params + l->param_off,
        .grads = with_grads ? net->grads + l->param_off : NULL,
        .stats = net->stats + l->stats_off,
        .scratch = net->scratch,
        .rng = net->rng,
    };
}

const float *net_forward(struct net *net, const float *x, size_t n, enum layer_mode mode)
{
    EG_ASSERT(net->finalized);
    EG_ASSERT(n >= 1);
    ensure_capacity(net, n);
    layout_nchw_to_cnhw(x, net->bufs[0], n, net->in_shape);
    for (size_t i = 0; i < net->nlayers; i++) {
        struct layer *l = &net->layers[i];
        struct layer_ctx ctx = make_ctx(net, l, n, mode, false);
        const float *xs[2] = {net->bufs[net->buf_of[l->in[0]]], NULL};
        if (l->nin == 2) xs[1] = net->bufs[net->buf_of[l->in[1]]];
        double t0 = net->profile ? eg_wall_seconds() : 0.0;
        l->ops->forward(l, &ctx, xs, net->bufs[net->buf_of[i + 1]]);
        if (net->profile) net->prof_fwd[i] += eg_wall_seconds() - t0;
    }
    net->last_n = n;
    net->last_mode = mode;
    net->last_tangent = false;
    layout_cnhw_to_nchw(net->bufs[net->buf_of[net->nlayers]], net->out, n, net_out_shape(net));
    return net->out;
}

// Makes the tangent buffers large enough for a batch of n (the primal ones are ensure_capacity's).
static void ensure_tangent_capacity(struct net *net, size_t n)
{
    if (n <= net->tcap) return;
    free_tangent_buffers(net);
    for (size_t b = 0; b < net->nbufs; b++) {
        net->tbufs[b] = eg_xmalloc_floats(buffer_numel(net, b) * n);
    }
    net->ttmp = eg_xmalloc_floats(max_node_numel(net) * n);
    net->tout = eg_xmalloc_floats(shape_numel(net_out_shape(net)) * n);
    net->tcap = n;
}

// Every layer kind has its tangent passes (a layer added without them is a bug).
static void check_tangent_ops(const struct layer *l)
{
    EG_ASSERT(l->ops->tforward != NULL && l->ops->tbackward != NULL);
}

const float *net_forward_tangent(struct net *net, const float *x, const float *tx, size_t n,
                                 enum layer_mode mode, const float *tparams, const float **tout)
{
    EG_ASSERT(net->finalized);
    EG_ASSERT(n >= 1 && tparams != NULL && tout != NULL);
    ensure_capacity(net, n);
    ensure_tangent_capacity(net, n);
    layout_nchw_to_cnhw(x, net->bufs[0], n, net->in_shape);
    if (tx != NULL) layout_nchw_to_cnhw(tx, net->tbufs[0], n, net->in_shape);
    for (size_t i = 0; i < net->nlayers; i++) {
        struct layer *l = &net->layers[i];
        check_tangent_ops(l);
        struct layer_ctx ctx = make_ctx(net, l, n, mode, false);
        ctx.tparams = tparams + l->param_off;
        ctx.tmp = net->ttmp;
        const float *xs[2] = {net->bufs[net->buf_of[l->in[0]]], NULL};
        const float *txs[2] = {net->tbufs[net->buf_of[l->in[0]]], NULL};
        if (l->nin == 2) {
            xs[1] = net->bufs[net->buf_of[l->in[1]]];
            txs[1] = net->tbufs[net->buf_of[l->in[1]]];
        }
        for (size_t k = 0; k < l->nin; k++) {
            if (l->in[k] == 0 && tx == NULL) txs[k] = NULL;
        }
        float *y = net->bufs[net->buf_of[i + 1]];
        double t0 = net->profile ? eg_wall_seconds() : 0.0;
        l->ops->forward(l, &ctx, xs, y);
        l->ops->tforward(l, &ctx, xs, txs, y, net->tbufs[net->buf_of[i + 1]]);
        if (net->profile) net->prof_fwd[i] += eg_wall_seconds() - t0;
    }
    net->last_n = n;
    net->last_mode = mode;
    net->last_tangent = true;
    net->tparams = tparams;
    net->tx_given = tx != NULL;
    const struct shape out = net_out_shape(net);
    layout_cnhw_to_nchw(net->bufs[net->buf_of[net->nlayers]], net->out, n, out);
    layout_cnhw_to_nchw(net->tbufs[net->buf_of[net->nlayers]], net->tout, n, out);
    *tout = net->tout;
    return net->out;
}

// A pool of gradient buffers (the primal one, or the tangent one).
struct gpool_ref {
    float **pool, **buf; // free buffers; each node's buffer
    size_t *n, *total;
    size_t cap;          // batch capacity of a buffer
};

static struct gpool_ref primal_pool(struct net *net)
{
    return (struct gpool_ref){net->gpool, net->gbuf, &net->ngpool, &net->gpool_total, net->cap};
}

static struct gpool_ref tangent_pool(struct net *net)
{
    return (struct gpool_ref){net->tgpool, net->tgbuf, &net->ntgpool, &net->tgpool_total,
                              net->tcap};
}

// A zeroed gradient buffer of r for a node of per-sample size numel.
static float *pool_acquire(const struct net *net, struct gpool_ref r, size_t numel)
{
    float *g;
    if (*r.n > 0) {
        g = r.pool[--*r.n];
    } else {
        g = eg_xmalloc_floats(max_node_numel(net) * r.cap);
        ++*r.total;
    }
    eg_zero_floats(g, numel * net->last_n);
    return g;
}

static void pool_release(const struct net *net, struct gpool_ref r, size_t node)
{
    EG_ASSERT(*r.n <= net->nlayers);
    r.pool[(*r.n)++] = r.buf[node];
    r.buf[node] = NULL;
}

static float *grad_acquire(struct net *net, size_t numel)
{
    return pool_acquire(net, primal_pool(net), numel);
}

static void grad_release(struct net *net, size_t node)
{
    pool_release(net, primal_pool(net), node);
}

void net_backward(struct net *net, const float *dout, float *dx)
{
    EG_ASSERT(net->finalized);
    EG_ASSERT(net->last_n >= 1);
    size_t n = net->last_n;
    size_t last = net->nlayers;
    net->gbuf[last] = grad_acquire(net, 0);
    layout_nchw_to_cnhw(dout, net->gbuf[last], n, net_out_shape(net));

    for (size_t i = net->nlayers; i-- > 0;) {
        struct layer *l = &net->layers[i];
        size_t node = i + 1;
        if (net->gbuf[node] == NULL) continue; // does not reach the output
        float *dxs[2] = {NULL, NULL};
        const float *xs[2] = {NULL, NULL};
        for (size_t k = 0; k < l->nin; k++) {
            size_t src = l->in[k];
            xs[k] = net->bufs[net->buf_of[src]];
            if (src == 0 && dx == NULL) continue;
            if (net->gbuf[src] == NULL) {
                net->gbuf[src] = grad_acquire(net, shape_numel(net->node_shape[src]));
            }
            dxs[k] = net->gbuf[src];
        }
        struct layer_ctx ctx = make_ctx(net, l, n, net->last_mode, true);
        double t0 = net->profile ? eg_wall_seconds() : 0.0;
        l->ops->backward(l, &ctx, xs, net->bufs[net->buf_of[node]], net->gbuf[node], dxs);
        if (net->profile) net->prof_bwd[i] += eg_wall_seconds() - t0;
        grad_release(net, node);
    }
    if (dx != NULL) {
        if (net->gbuf[0] != NULL) {
            layout_cnhw_to_nchw(net->gbuf[0], dx, n, net->in_shape);
            grad_release(net, 0);
        } else {
            memset(dx, 0, shape_numel(net->in_shape) * n * sizeof(float));
        }
    }
}

void net_backward_tangent(struct net *net, const float *dout, const float *tdout, float *tgrads,
                          float *dx, float *tdx)
{
    EG_ASSERT(net->finalized);
    EG_ASSERT(net->last_n >= 1 && net->last_tangent);
    EG_ASSERT(dout != NULL && tdout != NULL);
    EG_ASSERT((dx == NULL) == (tdx == NULL));
    const size_t n = net->last_n, last = net->nlayers;
    const struct gpool_ref gp = primal_pool(net), tp = tangent_pool(net);
    net->gbuf[last] = pool_acquire(net, gp, 0);
    net->tgbuf[last] = pool_acquire(net, tp, 0);
    layout_nchw_to_cnhw(dout, net->gbuf[last], n, net_out_shape(net));
    layout_nchw_to_cnhw(tdout, net->tgbuf[last], n, net_out_shape(net));

    for (size_t i = net->nlayers; i-- > 0;) {
        struct layer *l = &net->layers[i];
        const size_t node = i + 1;
        if (net->gbuf[node] == NULL) continue; // does not reach the output
        float *dxs[2] = {NULL, NULL}, *tdxs[2] = {NULL, NULL};
        const float *xs[2] = {NULL, NULL}, *txs[2] = {NULL, NULL};
        for (size_t k = 0; k < l->nin; k++) {
            const size_t src = l->in[k];
            xs[k] = net->bufs[net->buf_of[src]];
            txs[k] = net->tbufs[net->buf_of[src]];
            if (src == 0 && !net->tx_given) txs[k] = NULL;
            if (src == 0 && dx == NULL) continue;
            if (net->gbuf[src] == NULL) {
                const size_t numel = shape_numel(net->node_shape[src]);
                net->gbuf[src] = pool_acquire(net, gp, numel);
                net->tgbuf[src] = pool_acquire(net, tp, numel);
            }
            dxs[k] = net->gbuf[src];
            tdxs[k] = net->tgbuf[src];
        }
        struct layer_ctx ctx = make_ctx(net, l, n, net->last_mode, true);
        ctx.tparams = net->tparams + l->param_off;
        ctx.tgrads = tgrads != NULL ? tgrads + l->param_off : NULL;
        ctx.tmp = net->ttmp;
        const float *y = net->bufs[net->buf_of[node]];
        double t0 = net->profile ? eg_wall_seconds() : 0.0;
        l->ops->tbackward(l, &ctx, xs, txs, y, net->gbuf[node], net->tgbuf[node], tdxs);
        l->ops->backward(l, &ctx, xs, y, net->gbuf[node], dxs);
        if (net->profile) net->prof_bwd[i] += eg_wall_seconds() - t0;
        pool_release(net, gp, node);
        pool_release(net, tp, node);
    }
    if (dx != NULL) {
        if (net->gbuf[0] != NULL) {
            layout_cnhw_to_nchw(net->gbuf[0], dx, n, net->in_shape);
            layout_cnhw_to_nchw(net->tgbuf[0], tdx, n, net->in_shape);
            pool_release(net, gp, 0);
            pool_release(net, tp, 0);
        } else {
            memset(dx, 0, shape_numel(net->in_shape) * n * sizeof(float));
            memset(tdx, 0, shape_numel(net->in_shape) * n * sizeof(float));
        }
    }
}

void net_zero_grad(struct net *net)
{
    memset(net->grads, 0, net->nparams * sizeof(float));
}

void net_swap_in(struct net *net, float *saved, const float *theta)
{
    if (theta == net->params) return;
    memcpy(saved, net->params, net->nparams * sizeof(float));
    memcpy(net->params, theta, net->nparams * sizeof(float));
}

void net_swap_out(struct net *net, const float *saved, const float *theta)
{
    if (theta == net->params) return;
    memcpy(net->params, saved, net->nparams * sizeof(float));
}

double net_flops(const struct net *net, size_t n)
{
    double f = 0.0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const struct layer *l = &net->layers[i];
        if (l->ops->flops != NULL) f += l->ops->flops(l, n);
    }
    return f;
}

size_t net_buffer_bytes(const struct net *net)
{
    size_t floats = 0;
    if (net->cap == 0) return 0;
    for (size_t b = 0; b < net->nbufs; b++) floats += buffer_numel(net, b) * net->cap;
    floats += net->gpool_total * max_node_numel(net) * net->cap;
    if (net->tcap > 0) {
        for (size_t b = 0; b < net->nbufs; b++) floats += buffer_numel(net, b) * net->tcap;
        floats += (net->tgpool_total + 1) * max_node_numel(net) * net->tcap; // + ttmp
    }
    return floats * sizeof(float);
}

void net_count(const struct net *net, size_t *params, size_t *hyper, size_t *stats)
{
    size_t P = 0, H = 0, S = 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const struct layer *l = &net->layers[i];
        P += l->nparams;
        S += l->nstats;
        if (l->ops->hyper) H += l->nparams;
    }
    if (params != NULL) *params = P;
    if (hyper != NULL) *hyper = H;
    if (stats != NULL) *stats = S;
}

// How many gradient buffers net_backward allocates for its pool: its acquire and release steps
// replayed on the graph (with dx, node 0's gradient is made too). live: (nodes) work space.
static size_t plan_gradient_buffers(const struct net *net, bool dx, bool *live)
{
    const size_t nodes = net->nlayers + 1;
    size_t total = 1, idle = 0; // the output's gradient
    memset(live, 0, nodes * sizeof *live);
    live[nodes - 1] = true;
    for (size_t i = net->nlayers; i-- > 0;) {
        const struct layer *l = &net->layers[i];
        if (!live[i + 1]) continue; // does not reach the output
        for (size_t k = 0; k < l->nin; k++) {
            if (live[l->in[k]] || (l->in[k] == 0 && !dx)) continue;
            live[l->in[k]] = true;
            if (idle > 0) {
                idle--;
            } else {
                total++;
            }
        }
        live[i + 1] = false;
        idle++;
    }
    return total;
}

double net_batch_bytes(const struct net *net, size_t n, enum net_pass pass)
{
    EG_ASSERT(net->nlayers >= 1);
    const size_t nodes = net->nlayers + 1;
    size_t *nconsumers = eg_xmalloc_array(nodes, sizeof *nconsumers);
    size_t *buf_of = eg_xmalloc_array(nodes, sizeof *buf_of);
    const size_t nbufs = plan_buffers(net, nconsumers, buf_of);
    // per-sample floats of the activation buffers (ensure_capacity) and the output
    double floats = (double)shape_numel(net_out_shape(net));
    for (size_t b = 0; b < nbufs; b++) floats += (double)plan_buffer_numel(net, buf_of, b);
    const bool tangent = pass == NET_PASS_TANGENT || pass == NET_PASS_TANGENT_DX;
    if (tangent) {
        // the tangents' buffers, the tangent output and ttmp
        double t = (double)shape_numel(net_out_shape(net)) + (double)max_node_numel(net);
        for (size_t b = 0; b < nbufs; b++) t += (double)plan_buffer_numel(net, buf_of, b);
        floats += t;
    }
    floats *= (double)n;
    size_t scratch = 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const struct layer *l = &net->layers[i];
        size_t s = l->ops->scratch_floats != NULL ? l->ops->scratch_floats(l, n) : 0;
        if (s > scratch) scratch = s;
    }
    floats += (double)scratch;
    if (pass != NET_PASS_FORWARD) {
        bool *live = eg_xmalloc_array(nodes, sizeof *live);
        const bool with_dx = pass == NET_PASS_BACKWARD_DX || pass == NET_PASS_TANGENT_DX;
        const size_t g = plan_gradient_buffers(net, with_dx, live);
        floats += (tangent ? 2.0 : 1.0) * (double)g * (double)max_node_numel(net) * (double)n;
        free(live);
    }
    free(nconsumers);
    free(buf_of);
    return floats * (double)sizeof(float);
}

void net_print_summary(const struct net *net, FILE *f)
{
    for (size_t i = 0; i < net->nlayers; i++) {
        const struct layer *l = &net->layers[i];
        struct shape s = l->out_shape;
        char in[48];
        if (l->nin == 2) {
            snprintf(in, sizeof in, "%zu+%zu", l->in[0], l->in[1]);
        } else {
            snprintf(in, sizeof in, "%zu", l->in[0]);
        }
        fprintf(f, "%4zu  %-14s in %-7s -> %4zu x %3zu x %3zu  params %zu\n", i + 1,
                l->ops->name, in, s.c, s.h, s.w, l->nparams);
    }
    fprintf(f, "total parameters %zu, running statistics %zu\n", net->nparams, net->nstats);
}
