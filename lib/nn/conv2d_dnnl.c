/* conv2d_dnnl.c - the oneDNN convolution of conv2d_dnnl.h.
 *
 * Per (batch N, chunk nc) one `struct dnnl_set` holds the primitives and memory objects; the
 * memory objects have no buffer of their own and are pointed at the caller's arrays (or at the
 * scratch regions) before each execution. The user-side descriptors describe a chunk of nc images
 * inside a CNHW batch of N: dims (nc, C, H, W), strides (H*W, N*H*W, W, 1).
 *
 * Scratch (floats, each region 64-byte aligned): X, the blocked input chunk (and, in backward,
 * first the input again for the weight gradient, then the input gradient); Y, the blocked output
 * or output-gradient chunk; W and W2, the blocked (or Winograd-transformed) weights and weight
 * gradient. X and Y are sized with channels rounded up to 16, the widest float32 block oneDNN
 * uses (AVX-512), W and W2 by the layouts the layer's primitives report when it is made; a set
 * whose chosen layouts would not fit is refused, and the caller falls back to im2col. */
#include "conv2d_dnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"

// Budget of one chunk's blocked input + output, in floats (32 MiB). ResNet-32's layers at batch
// 100 (<= 6.6 MiB each) run as one chunk; the 224x224 ResNets' early layers run 5-10 images at a
// time, which keeps the scratch near the im2col path's instead of several whole-batch copies.
enum { DNNL_CHUNK_FLOATS = 1 << 23 };

// Cached (N, nc) sets per layer: a training batch, its last chunk, an evaluation batch and its
// last chunk, or the few distinct batch sizes a task uses. The oldest is replaced.
enum { DNNL_SETS = 6 };

// Floats per region alignment (64 bytes).
enum { DNNL_ALIGN = 16 };

// The SP region of a layer that may run Winograd (oneDNN's work space, its "scratchpad"), in
// floats (16 MiB; the net's scratch is shared by its layers, so this is paid once per net).
// Winograd's scratchpad depends on the chunk size through oneDNN's blocking heuristics: ResNet-32's
// layers at batch 100 need 7-10 MiB, at 128 up to 63 MiB; the 224x224 ResNets' 256- and
// 512-channel layers at episode size 80-180 MiB. A set whose Winograd primitives would need
// more runs direct convolution instead.
enum { DNNL_WINO_SCRATCH = 1 << 22 };

// Chunk sizes at which a layer measures direct convolution's scratchpad (per-thread reduction
// buffers of the weight gradient, up to ~0.6 MiB) to size its SP region.
enum { DNNL_SP_PROBE_IMAGES = 128 };

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static bool engine_ok;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return;
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) return;
    engine_ok = true;
}

// A memory descriptor and a memory object without a buffer of its own.
struct dbuf {
    dnnl_memory_desc_t md;
    dnnl_memory_t mem;
};

// One primitive with its descriptor (for the impl name) and, for a convolution, its scratchpad
// (a memory object pointed at the SP region; mem NULL when it needs none); NULL until built.
struct dprim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    struct dbuf sp;
};

struct dnnl_set {
    size_t N, nc; // 0: unused
    dnnl_alg_kind_t alg; // the layer's, or direct where Winograd's scratchpad would not fit
    bool fwd_built, fwd_failed, bwd_built, bwd_failed;
    unsigned long age;
    // the caller's arrays: the input / output (gradient) chunk, the weights (oihw)
    struct dbuf xu, yu, wu;
    // forward: blocked input, weights, output; the reorders into and out of them
    struct dbuf xb, wb, yb;
    struct dprim fwd, r_x, r_w, r_y;
    bool x_direct, w_direct; // the primitive reads the caller's layout: no reorder
    // backward: blocked output gradient, input (for dW), weights (for dX), input gradient, dW;
    // dywb: the output gradient in dW's layout when it differs from dX's (dy_shared false:
    // e.g. an AVX2 weight-gradient kernel beside AVX-512 data-gradient ones), made in the Y
    // region in turn
    struct dbuf dyb, dywb, xwb, wdb, dxb, dwb;
    struct dprim bwd_d, bwd_w, r_dy, r_dyw, r_xw, r_wd, r_dx, r_dw;
    bool dy_direct, dyw_direct, dy_shared, xw_direct, wd_direct;
};

struct conv2d_dnnl {
    struct conv2d_geom g;
    dnnl_alg_kind_t alg; // dnnl_convolution_direct or dnnl_convolution_winograd
    size_t w_floats;     // the W and W2 regions: the largest weights layout of the primitives
    size_t sp_floats;    // the SP region, oneDNN's scratchpad
    size_t fallbacks;    // calls that returned false (the caller computed them on im2col)
    struct dnnl_set sets[DNNL_SETS];
    unsigned long clock;
};

// ---------------------------------------------------------------------------------------------
// small helpers

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

// Floats of the four scratch regions for chunks of at most nc images.
static size_t region_x(const struct conv2d_geom *g, size_t nc)
{
    return round_up(nc * round_up(g->c_in, 16) * g->h * g->w, DNNL_ALIGN);
}

static size_t region_y(const struct conv2d_geom *g, size_t nc)
{
    return round_up(nc * round_up(g->c_out, 16) * g->ho * g->wo, DNNL_ALIGN);
}

// Direct convolution's weights: oihw with both channel counts blocked. Winograd's transformed
// weights are larger (conv2d_dnnl_new measures them).
static size_t region_w_direct(const struct conv2d_geom *g)
{
    return round_up(round_up(g->c_out, 16) * round_up(g->c_in, 16) * g->k * g->k, DNNL_ALIGN);
}

// Images whose blocked input and output fit the budget (at least 1).
static size_t chunk_fit(const struct conv2d_geom *g)
{
    size_t per = round_up(g->c_in, 16) * g->h * g->w + round_up(g->c_out, 16) * g->ho * g->wo;
    size_t fit = DNNL_CHUNK_FLOATS / per;
    return fit < 1 ? 1 : fit;
}

// Images per chunk for a batch of n, balanced as conv2d.c's im2col chunks are.
static size_t chunk_of(const struct conv2d_geom *g, size_t n)
{
    return conv2d_balanced_chunk(n, chunk_fit(g));
}

struct regions {
    float *x, *y, *w, *w2, *sp;
};

static struct regions regions_of(const struct conv2d_dnnl *d, size_t n, float *scratch)
{
    const struct conv2d_geom *g = &d->g;
    size_t nc = n < chunk_fit(g) ? n : chunk_fit(g);
    float *base = (float *)(((uintptr_t)scratch + 63u) & ~(uintptr_t)63u);
    struct regions r;
    r.x = base;
    r.y = r.x + region_x(g, nc);
    r.w = r.y + region_y(g, nc);
    r.w2 = r.w + d->w_floats;
    r.sp = r.w2 + d->w_floats;
    return r;
}

static void dbuf_free(struct dbuf *b)
{
    if (b->mem != NULL) dnnl_memory_destroy(b->mem);
    b->mem = NULL;
}

static bool dbuf_make(struct dbuf *b, const dnnl_memory_desc_t *md)
{
    b->md = *md;
    return dnnl_memory_create(&b->mem, md, engine, DNNL_MEMORY_NONE) == dnnl_success;
}

// Points b at p; false when oneDNN refuses.
static bool dbuf_at(struct dbuf *b, const void *p)
{
    return dnnl_memory_set_data_handle(b->mem, (void *)(uintptr_t)p) == dnnl_success;
}

static void dprim_free(struct dprim *d)
{
    dbuf_free(&d->sp);
    if (d->p != NULL) dnnl_primitive_destroy(d->p);
    if (d->pd != NULL) dnnl_primitive_desc_destroy(d->pd);
    *d = (struct dprim){0};
}

static bool dprim_make(struct dprim *d)
{
    return dnnl_primitive_create(&d->p, d->pd) == dnnl_success;
}

// A reorder from -> to; with add, the result is added into `to` (a sum post-op).
static bool reorder_make(struct dprim *d, const dnnl_memory_desc_t *from,
                         const dnnl_memory_desc_t *to, bool add)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    bool ok = dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && add) {
        ok = dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    }
    ok = ok && dnnl_reorder_primitive_desc_create(&d->pd, from, engine, to, engine, attr) ==
                   dnnl_success;
    ok = ok && dprim_make(d);
    if (po != NULL) dnnl_post_ops_destroy(po);
    if (attr != NULL) dnnl_primitive_attr_destroy(attr);
    return ok;
}

static bool run(const struct dprim *d, int nargs, const dnnl_exec_arg_t *args)
{
    return dnnl_primitive_execute(d->p, stream, nargs, args) == dnnl_success;
}

// Runs convolution d on its three arguments with its scratchpad (if any) at sp.
static bool run_conv(struct dprim *d, const dnnl_exec_arg_t *args3, float *sp)
{
    dnnl_exec_arg_t args[4] = {args3[0], args3[1], args3[2], {DNNL_ARG_SCRATCHPAD, d->sp.mem}};
    if (d->sp.mem != NULL && !dbuf_at(&d->sp, sp)) return false;
    return run(d, d->sp.mem != NULL ? 4 : 3, args);
}

static bool run_reorder(const struct dprim *d, const struct dbuf *from, const struct dbuf *to)
{
    const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from->mem}, {DNNL_ARG_TO, to->mem}};
    return run(d, 2, args);
}

// A descriptor's bytes fit `floats` floats.
static bool fits(const dnnl_memory_desc_t *md, size_t floats)
{
    return dnnl_memory_desc_get_size(md) <= floats * sizeof(float);
}

// A convolution primitive from its descriptor, with its scratchpad at most sp_floats floats.
static bool conv_make(struct dprim *d, size_t sp_floats)
{
    if (!dprim_make(d)) return false;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(d->pd, dnnl_query_scratchpad_md, 0);
    if (md == NULL || dnnl_memory_desc_get_size(md) == 0) return true;
    return fits(md, sp_floats) && dbuf_make(&d->sp, md);
}

static bool is_reference(const dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
        return true;
    return impl == NULL || strncmp(impl, "ref", 3) == 0;
}

// ---------------------------------------------------------------------------------------------
// descriptors

// The caller's layout of a chunk of nc images of a CNHW batch of N, (c, h, w) per image.
static bool user_md(dnnl_memory_desc_t *md, size_t N, size_t nc, size_t c, size_t h, size_t w)
{
    const dnnl_dims_t dims = {(dnnl_dim_t)nc, (dnnl_dim_t)c, (dnnl_dim_t)h, (dnnl_dim_t)w};
    const dnnl_dims_t strides = {(dnnl_dim_t)(h * w), (dnnl_dim_t)(N * h * w), (dnnl_dim_t)w, 1};
    return dnnl_memory_desc_init_by_strides(md, 4, dims, dnnl_f32, strides) == dnnl_success;
}

static bool any_md(dnnl_memory_desc_t *md, size_t a, size_t b, size_t c, size_t d)
{
    const dnnl_dims_t dims = {(dnnl_dim_t)a, (dnnl_dim_t)b, (dnnl_dim_t)c, (dnnl_dim_t)d};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_format_tag_any) ==
           dnnl_success;
}

static bool weights_md(dnnl_memory_desc_t *md, const struct conv2d_geom *g)
{
    const dnnl_dims_t dims = {(dnnl_dim_t)g->c_out, (dnnl_dim_t)g->c_in, (dnnl_dim_t)g->k,
                              (dnnl_dim_t)g->k};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_oihw) == dnnl_success;
}

// The three descriptors of a chunk of nc images: src, weights, dst, all "any".
struct conv_mds {
    dnnl_memory_desc_t src, wts, dst;
    dnnl_dims_t strides, pad;
};

static bool conv_mds_of(struct conv_mds *m, const struct conv2d_geom *g, size_t nc)
{
    m->strides[0] = m->strides[1] = (dnnl_dim_t)g->stride;
    m->pad[0] = m->pad[1] = (dnnl_dim_t)g->pad;
    return any_md(&m->src, nc, g->c_in, g->h, g->w) &&
           any_md(&m->wts, g->c_out, g->c_in, g->k, g->k) &&
           any_md(&m->dst, nc, g->c_out, g->ho, g->wo);
}

// Padding on the bottom/right as PyTorch has it: the output size decides, so inputs whose
// last rows no window reaches are simply not read (padding_r may be smaller than pad).
static void pad_right(const struct conv2d_geom *g, dnnl_dims_t pr)
{
    // (ho - 1)*stride + k = h + pad_l + pad_r
    long r_h = (long)((g->ho - 1) * g->stride + g->k) - (long)(g->h + g->pad);
    long r_w = (long)((g->wo - 1) * g->stride + g->k) - (long)(g->w + g->pad);
    pr[0] = r_h;
    pr[1] = r_w;
}

// Primitive attributes: the scratchpad is ours (in the layer's scratch, so that evograd's memory
// accounting sees it), not oneDNN's own allocation.
static dnnl_primitive_attr_t conv_attr(void)
{
    dnnl_primitive_attr_t a = NULL;
    if (dnnl_primitive_attr_create(&a) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(a);
        return NULL;
    }
    return a;
}

static bool pd_create(dnnl_primitive_desc_t *pd, const void *desc,
                      const dnnl_primitive_desc_t hint)
{
    dnnl_primitive_attr_t a = conv_attr();
    bool ok = a != NULL && dnnl_primitive_desc_create(pd, desc, a, engine, hint) == dnnl_success;
    if (a != NULL) dnnl_primitive_attr_destroy(a);
    return ok;
}

static size_t scratchpad_bytes(const dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md != NULL ? dnnl_memory_desc_get_size(md) : 0;
}

static bool fwd_pd(dnnl_primitive_desc_t *pd, const struct conv2d_geom *g, dnnl_alg_kind_t alg,
                   size_t nc)
{
    struct conv_mds m;
    dnnl_convolution_desc_t cd;
    dnnl_dims_t pr;
    pad_right(g, pr);
    return conv_mds_of(&m, g, nc) &&
           dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &m.src, &m.wts,
                                              NULL, &m.dst, m.strides, m.pad, pr) ==
               dnnl_success &&
           pd_create(pd, &cd, NULL);
}

static bool bwd_pds(dnnl_primitive_desc_t *pd_d, dnnl_primitive_desc_t *pd_w,
                    const dnnl_primitive_desc_t hint, const struct conv2d_geom *g,
                    dnnl_alg_kind_t alg, size_t nc)
{
    struct conv_mds m;
    dnnl_convolution_desc_t dd, wd;
    dnnl_dims_t pr;
    pad_right(g, pr);
    if (!conv_mds_of(&m, g, nc)) return false;
    return dnnl_convolution_backward_data_desc_init(&dd, alg, &m.src, &m.wts, &m.dst,
                                                    m.strides, m.pad, pr) == dnnl_success &&
           pd_create(pd_d, &dd, hint) &&
           dnnl_convolution_backward_weights_desc_init(&wd, alg, &m.src, &m.wts, NULL, &m.dst,
                                                       m.strides, m.pad, pr) == dnnl_success &&
           pd_create(pd_w, &wd, hint);
}

// The largest scratchpad, in bytes, of the three products of g with alg for a chunk of nc
// images; false when one cannot be made.
static bool scratchpad_of(const struct conv2d_geom *g, dnnl_alg_kind_t alg, size_t nc,
                          size_t *bytes)
{
    dnnl_primitive_desc_t f = NULL, bd = NULL, bw = NULL;
    bool ok = fwd_pd(&f, g, alg, nc) && bwd_pds(&bd, &bw, f, g, alg, nc);
    if (ok) {
        *bytes = scratchpad_bytes(f);
        if (scratchpad_bytes(bd) > *bytes) *bytes = scratchpad_bytes(bd);
        if (scratchpad_bytes(bw) > *bytes) *bytes = scratchpad_bytes(bw);
    }
    if (bw != NULL) dnnl_primitive_desc_destroy(bw);
    if (bd != NULL) dnnl_primitive_desc_destroy(bd);
    if (f != NULL) dnnl_primitive_desc_destroy(f);
    return ok;
}

// ---------------------------------------------------------------------------------------------
// sets

static void set_free(struct dnnl_set *s)
{
    struct dbuf *bufs[] = {&s->xu,  &s->yu,   &s->wu,  &s->xb,  &s->wb,  &s->yb,
                           &s->dyb, &s->dywb, &s->xwb, &s->wdb, &s->dxb, &s->dwb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dbuf_free(bufs[i]);
    struct dprim *prims[] = {&s->fwd,  &s->r_x,   &s->r_w,  &s->r_y,  &s->bwd_d, &s->bwd_w,
                             &s->r_dy, &s->r_dyw, &s->r_xw, &s->r_wd, &s->r_dx,  &s->r_dw};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++) dprim_free(prims[i]);
    *s = (struct dnnl_set){0};
}

// The blocked buffer `b` for descriptor `want` of a primitive, fed from the caller's `user`:
// direct (no reorder, b is the user buffer itself) when the two layouts agree, else a reorder
// user -> want into a region of `floats` floats.
static bool input_of(struct dbuf *b, struct dprim *r, bool *direct, const struct dbuf *user,
                     const dnnl_memory_desc_t *want, size_t floats)
{
    *direct = dnnl_memory_desc_equal(&user->md, want) != 0;
    if (*direct) return dbuf_make(b, want);
    return fits(want, floats) && dbuf_make(b, want) && reorder_make(r, &user->md, want, false);
}

static bool build_fwd(struct conv2d_dnnl *d, struct dnnl_set *s)
{
    const struct conv2d_geom *g = &d->g;
    const size_t N = s->N, nc = s->nc;
    dnnl_memory_desc_t md;
    if (!user_md(&md, N, nc, g->c_in, g->h, g->w) || !dbuf_make(&s->xu, &md)) return false;
    if (!user_md(&md, N, nc, g->c_out, g->ho, g->wo) || !dbuf_make(&s->yu, &md)) return false;
    if (!weights_md(&md, g) || !dbuf_make(&s->wu, &md)) return false;
    // Winograd where its scratchpad fits, else direct
    s->alg = d->alg;
    size_t sp = 0;
    if (s->alg == dnnl_convolution_winograd &&
        (!scratchpad_of(g, s->alg, nc, &sp) || sp > d->sp_floats * sizeof(float))) {
        s->alg = dnnl_convolution_direct;
    }
    if (!fwd_pd(&s->fwd.pd, g, s->alg, nc) || !conv_make(&s->fwd, d->sp_floats)) return false;
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(s->fwd.pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *wts =
        dnnl_primitive_desc_query_md(s->fwd.pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(s->fwd.pd, dnnl_query_dst_md, 0);
    return input_of(&s->xb, &s->r_x, &s->x_direct, &s->xu, src, region_x(g, nc)) &&
           input_of(&s->wb, &s->r_w, &s->w_direct, &s->wu, wts, d->w_floats) &&
           fits(dst, region_y(g, nc)) && dbuf_make(&s->yb, dst) &&
           reorder_make(&s->r_y, dst, &s->yu.md, false);
}

static bool build_bwd(struct conv2d_dnnl *d, struct dnnl_set *s)
{
    const struct conv2d_geom *g = &d->g;
    const size_t nc = s->nc;
    if (!bwd_pds(&s->bwd_d.pd, &s->bwd_w.pd, s->fwd.pd, g, s->alg, nc)) return false;
    if (!conv_make(&s->bwd_d, d->sp_floats) || !conv_make(&s->bwd_w, d->sp_floats)) return false;
    const dnnl_primitive_desc_t pd = s->bwd_d.pd, pw = s->bwd_w.pd;
    const dnnl_memory_desc_t *dy_d = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
    const dnnl_memory_desc_t *dy_w = dnnl_primitive_desc_query_md(pw, dnnl_query_diff_dst_md, 0);
    const dnnl_memory_desc_t *wts = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dsrc = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pw, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dwts =
        dnnl_primitive_desc_query_md(pw, dnnl_query_diff_weights_md, 0);
    // one blocked copy of dy serves both products where they agree on its layout
    s->dy_shared = dnnl_memory_desc_equal(dy_d, dy_w) != 0;
    if (!s->dy_shared &&
        !input_of(&s->dywb, &s->r_dyw, &s->dyw_direct, &s->yu, dy_w, region_y(g, nc))) {
        return false;
    }
    return input_of(&s->dyb, &s->r_dy, &s->dy_direct, &s->yu, dy_d, region_y(g, nc)) &&
           input_of(&s->xwb, &s->r_xw, &s->xw_direct, &s->xu, src, region_x(g, nc)) &&
           input_of(&s->wdb, &s->r_wd, &s->wd_direct, &s->wu, wts, d->w_floats) &&
           fits(dsrc, region_x(g, nc)) && dbuf_make(&s->dxb, dsrc) &&
           reorder_make(&s->r_dx, dsrc, &s->xu.md, true) && fits(dwts, d->w_floats) &&
           dbuf_make(&s->dwb, dwts) && reorder_make(&s->r_dw, dwts, &s->wu.md, true);
}

// The set for (N, nc), built as far as `bwd` asks; NULL when it cannot be built.
static struct dnnl_set *set_for(struct conv2d_dnnl *d, size_t N, size_t nc, bool bwd)
{
    struct dnnl_set *s = NULL, *oldest = &d->sets[0];
    for (size_t i = 0; i < DNNL_SETS; i++) {
        struct dnnl_set *c = &d->sets[i];
        if (c->N == N && c->nc == nc) s = c;
        if (c->age < oldest->age) oldest = c;
    }
    if (s == NULL) {
        set_free(oldest);
        s = oldest;
        s->N = N;
        s->nc = nc;
    }
    s->age = ++d->clock;
    if (!s->fwd_built && !s->fwd_failed) {
        s->fwd_built = build_fwd(d, s);
        s->fwd_failed = !s->fwd_built;
    }
    if (s->fwd_failed) return NULL;
    if (bwd && !s->bwd_built && !s->bwd_failed) {
        s->bwd_built = build_bwd(d, s);
        s->bwd_failed = !s->bwd_built;
    }
    return bwd && s->bwd_failed ? NULL : s;
}

// ---------------------------------------------------------------------------------------------
// public

// Whether oneDNN has optimised kernels (no reference one) for all three products of g with
// `alg`; *w_bytes then receives the largest of their weights layouts.
static bool probe(const struct conv2d_geom *g, dnnl_alg_kind_t alg, size_t *w_bytes)
{
    dnnl_primitive_desc_t f = NULL, bd = NULL, bw = NULL;
    bool ok = fwd_pd(&f, g, alg, 1) && !is_reference(f) && bwd_pds(&bd, &bw, f, g, alg, 1) &&
              !is_reference(bd) && !is_reference(bw);
    if (ok) {
        const dnnl_memory_desc_t *w[3] = {
            dnnl_primitive_desc_query_md(f, dnnl_query_weights_md, 0),
            dnnl_primitive_desc_query_md(bd, dnnl_query_weights_md, 0),
            dnnl_primitive_desc_query_md(bw, dnnl_query_diff_weights_md, 0)};
        *w_bytes = 0;
        for (size_t i = 0; i < 3; i++) {
            size_t b = dnnl_memory_desc_get_size(w[i]);
            if (b > *w_bytes) *w_bytes = b;
        }
    }
    if (bw != NULL) dnnl_primitive_desc_destroy(bw);
    if (bd != NULL) dnnl_primitive_desc_destroy(bd);
    if (f != NULL) dnnl_primitive_desc_destroy(f);
    return ok;
}

struct conv2d_dnnl *conv2d_dnnl_new(const struct conv2d_geom *g, bool winograd)
{
    pthread_once(&engine_once, engine_init);
    if (!engine_ok) return NULL;
    // Only where oneDNN has an optimised kernel: its reference kernels are far slower than
    // im2col + OpenBLAS. Winograd only for 3x3 stride 1, the shape its F(4x4, 3x3) kernels take.
    size_t w_bytes = 0, w_direct = 0;
    dnnl_alg_kind_t alg = dnnl_convolution_winograd;
    if (!winograd || g->k != 3 || g->stride != 1 || !probe(g, alg, &w_bytes)) {
        alg = dnnl_convolution_direct;
    }
    // direct convolution is also the fallback of a Winograd layer's large chunks
    if (!probe(g, dnnl_convolution_direct, &w_direct)) return NULL;
    if (w_direct > w_bytes) w_bytes = w_direct;
    size_t sp = 0, sp1 = 0;
    const size_t probe_nc = chunk_fit(g) < DNNL_SP_PROBE_IMAGES ? chunk_fit(g)
                                                                : DNNL_SP_PROBE_IMAGES;
    if (!scratchpad_of(g, dnnl_convolution_direct, probe_nc, &sp) ||
        !scratchpad_of(g, dnnl_convolution_direct, 1, &sp1)) {
        return NULL;
    }
    if (sp1 > sp) sp = sp1;
    struct conv2d_dnnl *d = eg_xcalloc(1, sizeof *d);
    d->g = *g;
    d->alg = alg;
    d->w_floats = round_up((w_bytes + sizeof(float) - 1) / sizeof(float), DNNL_ALIGN);
    if (d->w_floats < region_w_direct(g)) d->w_floats = region_w_direct(g);
    d->sp_floats = round_up((sp + sizeof(float) - 1) / sizeof(float), DNNL_ALIGN);
    if (alg == dnnl_convolution_winograd && d->sp_floats < DNNL_WINO_SCRATCH) {
        d->sp_floats = DNNL_WINO_SCRATCH;
    }
    return d;
}

size_t conv2d_dnnl_fallbacks(const struct conv2d_dnnl *d)
{
    return d->fallbacks;
}

bool conv2d_dnnl_winograd(const struct conv2d_dnnl *d)
{
    return d->alg == dnnl_convolution_winograd;
}

void conv2d_dnnl_free(struct conv2d_dnnl *d)
{
    if (d == NULL) return;
    for (size_t i = 0; i < DNNL_SETS; i++) set_free(&d->sets[i]);
    free(d);
}

size_t conv2d_dnnl_scratch_floats(const struct conv2d_dnnl *d, size_t n)
{
    if (n == 0) return 0;
    const struct conv2d_geom *g = &d->g;
    size_t nc = n < chunk_fit(g) ? n : chunk_fit(g);
    return DNNL_ALIGN + region_x(g, nc) + region_y(g, nc) + 2 * d->w_floats + d->sp_floats;
}

// Builds every set a call on a batch of N in chunks of `chunk` uses (the full chunks and the
// remainder), before anything is written; false (counted as a fallback) when one cannot be.
static bool sets_ready(struct conv2d_dnnl *d, size_t N, size_t chunk, bool bwd)
{
    if (set_for(d, N, chunk, bwd) != NULL &&
        (N % chunk == 0 || set_for(d, N, N % chunk, bwd) != NULL)) {
        return true;
    }
    d->fallbacks++;
    return false;
}

bool conv2d_dnnl_forward(struct conv2d_dnnl *d, size_t N, const float *x, const float *w,
                         float *y, float *scratch)
{
    const struct conv2d_geom *g = &d->g;
    const size_t chunk = chunk_of(g, N);
    const struct regions r = regions_of(d, N, scratch);
    if (!sets_ready(d, N, chunk, false)) return false;
    bool ok = true;
    for (size_t n0 = 0; n0 < N && ok; n0 += chunk) {
        const size_t nc = N - n0 < chunk ? N - n0 : chunk;
        struct dnnl_set *s = set_for(d, N, nc, false);
        ok = s != NULL && dbuf_at(&s->xu, x + n0 * g->h * g->w) &&
             dbuf_at(&s->yu, y + n0 * g->ho * g->wo) && dbuf_at(&s->wu, w) &&
             dbuf_at(&s->xb, s->x_direct ? x + n0 * g->h * g->w : r.x) &&
             dbuf_at(&s->wb, s->w_direct ? w : r.w) && dbuf_at(&s->yb, r.y);
        if (ok && !s->x_direct) ok = run_reorder(&s->r_x, &s->xu, &s->xb);
        // the weights per chunk: the two chunk sizes may choose different layouts (it is small)
        if (ok && !s->w_direct) ok = run_reorder(&s->r_w, &s->wu, &s->wb);
        if (ok) {
            const dnnl_exec_arg_t args[3] = {
                {DNNL_ARG_SRC, s->xb.mem}, {DNNL_ARG_WEIGHTS, s->wb.mem}, {DNNL_ARG_DST, s->yb.mem}};
            ok = run_conv(&s->fwd, args, r.sp) && run_reorder(&s->r_y, &s->yb, &s->yu);
        }
    }
    // every primitive was built: on the CPU, oneDNN does not fail at execution
    EG_ASSERT(ok && dnnl_stream_wait(stream) == dnnl_success);
    return true;
}

bool conv2d_dnnl_backward(struct conv2d_dnnl *d, size_t N, const float *x, const float *w,
                          const float *dy, float *dx, float *dw, float *scratch)
{
    const struct conv2d_geom *g = &d->g;
    const size_t chunk = chunk_of(g, N);
    const struct regions r = regions_of(d, N, scratch);
    if (!sets_ready(d, N, chunk, true)) return false;
    bool ok = true;
    for (size_t n0 = 0; n0 < N && ok; n0 += chunk) {
        const size_t nc = N - n0 < chunk ? N - n0 : chunk;
        const size_t xo = n0 * g->h * g->w, yo = n0 * g->ho * g->wo;
        struct dnnl_set *s = set_for(d, N, nc, true);
        ok = s != NULL && dbuf_at(&s->yu, dy + yo);
        bool dy_ready = false; // dyb holds this chunk's dy
        if (ok && dw != NULL) {
            // dW: dy blocked in Y, the blocked input in X, the blocked dW in W2, added into dw
            struct dbuf *dyw = s->dy_shared ? &s->dyb : &s->dywb;
            const bool direct = s->dy_shared ? s->dy_direct : s->dyw_direct;
            ok = dbuf_at(dyw, direct ? dy + yo : r.y);
            if (ok && !direct) ok = run_reorder(s->dy_shared ? &s->r_dy : &s->r_dyw, &s->yu, dyw);
            dy_ready = s->dy_shared;
            ok = ok && dbuf_at(&s->xu, x + xo) &&
                 dbuf_at(&s->xwb, s->xw_direct ? x + xo : r.x) && dbuf_at(&s->dwb, r.w2) &&
                 dbuf_at(&s->wu, dw);
            if (ok && !s->xw_direct) ok = run_reorder(&s->r_xw, &s->xu, &s->xwb);
            const dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, s->xwb.mem},
                                             {DNNL_ARG_DIFF_DST, dyw->mem},
                                             {DNNL_ARG_DIFF_WEIGHTS, s->dwb.mem}};
            ok = ok && run_conv(&s->bwd_w, args, r.sp) && run_reorder(&s->r_dw, &s->dwb, &s->wu);
        }
        if (ok && dx != NULL && !dy_ready) {
            ok = dbuf_at(&s->dyb, s->dy_direct ? dy + yo : r.y);
            if (ok && !s->dy_direct) ok = run_reorder(&s->r_dy, &s->yu, &s->dyb);
        }
        if (ok && dx != NULL) {
            // dX: dy blocked in Y, the blocked weights in W, the blocked dX in X, added into dx
            ok = dbuf_at(&s->wu, w) && dbuf_at(&s->wdb, s->wd_direct ? w : r.w) &&
                 dbuf_at(&s->dxb, r.x) && dbuf_at(&s->xu, dx + xo);
            if (ok && !s->wd_direct) ok = run_reorder(&s->r_wd, &s->wu, &s->wdb);
            const dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, s->dyb.mem},
                                             {DNNL_ARG_WEIGHTS, s->wdb.mem},
                                             {DNNL_ARG_DIFF_SRC, s->dxb.mem}};
            ok = ok && run_conv(&s->bwd_d, args, r.sp) && run_reorder(&s->r_dx, &s->dxb, &s->xu);
        }
    }
    EG_ASSERT(ok && dnnl_stream_wait(stream) == dnnl_success);
    return true;
}

const char *conv2d_dnnl_impl(struct conv2d_dnnl *d, size_t n)
{
    struct dnnl_set *s = set_for(d, n, chunk_of(&d->g, n), false);
    const char *impl = NULL;
    if (s == NULL ||
        dnnl_primitive_desc_query(s->fwd.pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
        return "?";
    return impl != NULL ? impl : "?";
}
