/* helpers.c - see helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "meta/problem.h"
#include "nn/layers.h"

// ---------------------------------------------------------------------------------------------
// comparisons

void assert_close(const char *what, const float *got, const double *want, size_t n, double atol,
                  double rtol)
{
    size_t bad = n, worst = 0;
    double maxdiff = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])) && bad == n) bad = i;
        if (d > maxdiff || isnan(d)) {
            maxdiff = d;
            worst = i;
        }
    }
    if (bad < n) {
        cr_fatal("%s: first mismatch at i=%zu: got %.9g want %.9g (max |diff| %.3g at i=%zu, "
                 "atol %.3g rtol %.3g)",
                 what, bad, (double)got[bad], want[bad], maxdiff, worst, atol, rtol);
    }
}

void assert_close_f(const char *what, const float *got, const float *want, size_t n, double atol,
                    double rtol)
{
    double *w = eg_xmalloc_array(n, sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = want[i];
    assert_close(what, got, w, n, atol, rtol);
    free(w);
}

// ---------------------------------------------------------------------------------------------
// reference files

struct ref_section {
    char *name;
    double *v;
    size_t n;
};

struct ref {
    struct ref_section *s;
    size_t n;
};

struct ref *ref_load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) cr_fatal("cannot open reference file %s", path);
    struct ref *r = eg_xcalloc(1, sizeof *r);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) != -1) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *colon = strchr(line, ':');
        if (colon == NULL) continue;
        *colon = '\0';
        struct ref_section sec = {.name = eg_xstrdup(line)};
        size_t vcap = 16;
        sec.v = eg_xmalloc_array(vcap, sizeof(double));
        char *p = colon + 1;
        for (;;) {
            char *end;
            double d = strtod(p, &end);
            if (end == p) break;
            if (sec.n == vcap) {
                vcap *= 2;
                sec.v = eg_xrealloc(sec.v, vcap * sizeof(double));
            }
            sec.v[sec.n++] = d;
            p = end;
        }
        r->s = eg_xrealloc(r->s, (r->n + 1) * sizeof *r->s);
        r->s[r->n++] = sec;
    }
    free(line);
    fclose(f);
    return r;
}

void ref_free(struct ref *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->s[i].name);
        free(r->s[i].v);
    }
    free(r->s);
    free(r);
}

const double *ref_get(const struct ref *r, const char *name, size_t *n)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->s[i].name, name) == 0) {
            if (n != NULL) *n = r->s[i].n;
            return r->s[i].v;
        }
    }
    cr_fatal("reference section '%s' not found", name);
    return NULL;
}

float *ref_floats(const struct ref *r, const char *name, size_t n)
{
    size_t got = 0;
    const double *v = ref_get(r, name, &got);
    if (got != n) cr_fatal("reference section '%s' has %zu values, expected %zu", name, got, n);
    float *out = eg_xmalloc_floats(n);
    for (size_t i = 0; i < n; i++) out[i] = (float)v[i];
    return out;
}

// ---------------------------------------------------------------------------------------------
// layers

void layer_release(struct layer *l)
{
    if (l->ops->destroy != NULL) {
        l->ops->destroy(l);
    } else {
        free(l->state);
    }
    l->state = NULL;
}

static float *scratch_for(const struct layer *l, size_t n)
{
    size_t s = l->ops->scratch_floats != NULL ? l->ops->scratch_floats(l, n) : 0;
    return eg_xmalloc_floats(s);
}

void layer_run_forward(struct layer *l, size_t n, enum layer_mode mode, const float *params,
                       float *stats, const float *const *x, float *y)
{
    float *scratch = scratch_for(l, n);
    struct layer_ctx ctx = {
        .n = n, .mode = mode, .params = params, .stats = stats, .scratch = scratch};
    l->ops->forward(l, &ctx, x, y);
    free(scratch);
}

// L = sum g*y in double after one forward from the saved statistics.
static double loss_at(struct layer *l, struct layer_ctx *ctx, const float *const *x, float *y,
                      const float *g, size_t ny, float *stats, const float *stats0)
{
    if (l->nstats) memcpy(stats, stats0, l->nstats * sizeof(float));
    l->ops->forward(l, ctx, x, y);
    double L = 0.0;
    for (size_t i = 0; i < ny; i++) L += (double)g[i] * (double)y[i];
    return L;
}

// Central difference of L in v[i], restoring v[i].
static double central_diff(struct layer *l, struct layer_ctx *ctx, const float *const *x, float *y,
                           const float *g, size_t ny, float *stats, const float *stats0, float *v,
                           double h)
{
    float keep = v[0];
    v[0] = (float)((double)keep + h);
    double hp = (double)v[0] - (double)keep; // the step float actually took
    double Lp = loss_at(l, ctx, x, y, g, ny, stats, stats0);
    v[0] = (float)((double)keep - h);
    double hm = (double)keep - (double)v[0];
    double Lm = loss_at(l, ctx, x, y, g, ny, stats, stats0);
    v[0] = keep;
    return (Lp - Lm) / (hp + hm);
}

static void compare(const char *what, const char *which, const double *fd, const float *an,
                    size_t n, double tol)
{
    double scale = 1.0, worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)an[i]) > scale) scale = fabs((double)an[i]);
    }
    for (size_t i = 0; i < n; i++) {
        double d = fabs(fd[i] - (double)an[i]);
        if (d > worst || isnan(d)) {
            worst = d;
            wi = i;
        }
    }
    if (!(worst <= tol * scale)) {
        cr_fatal("%s: %s gradient mismatch at i=%zu: finite difference %.9g, backward %.9g "
                 "(|diff| %.3g > tol %.3g * scale %.3g)",
                 what, which, wi, fd[wi], (double)an[wi], worst, tol, scale);
    }
}

// v+ = v + h t and v- = v - h t in float, and t replaced by the direction the float steps
// actually took, (v+ - v-) / 2h, so that a central difference along t has no rounding bias.
static void step_pair(const float *v, float *t, size_t n, double h, float *vp, float *vm)
{
    for (size_t i = 0; i < n; i++) {
        vp[i] = (float)((double)v[i] + h * (double)t[i]);
        vm[i] = (float)((double)v[i] - h * (double)t[i]);
        t[i] = (float)(((double)vp[i] - (double)vm[i]) / (2.0 * h));
    }
}

// One forward (from the saved statistics) and backward of l at x, params with upstream dy: y,
// dx[i] and grads written (dx and grads zeroed first).
static void fwd_bwd(struct layer *l, struct layer_ctx *ctx, const float *const *x,
                    const float *params, const float *dy, float *y, float *const *dx,
                    const size_t *nx, float *grads, float *stats, const float *stats0)
{
    ctx->params = params;
    ctx->grads = grads;
    if (l->nstats) memcpy(stats, stats0, l->nstats * sizeof(float));
    l->ops->forward(l, ctx, x, y);
    for (size_t i = 0; i < l->nin; i++) memset(dx[i], 0, nx[i] * sizeof(float));
    memset(grads, 0, l->nparams * sizeof(float));
    l->ops->backward(l, ctx, x, y, dy, dx);
}

// The tangent passes of l (layer.h) against central differences of forward and backward along
// a random direction (tx, tparams, tdy); with_tx false checks the zero input tangent (NULL).
static void tangentcheck_layer(const char *what, struct layer *l, struct layer_ctx *ctx,
                               const float *const *x, const size_t *nx, const float *params,
                               const float *dy, size_t ny, float *stats, const float *stats0,
                               const struct gradcheck_opts *o, struct rng *rng, bool with_tx)
{
    const size_t P = l->nparams;
    float *tx[2] = {NULL, NULL}, *xp[2] = {NULL, NULL}, *xm[2] = {NULL, NULL};
    float *dxp[2] = {NULL, NULL}, *dxm[2] = {NULL, NULL}, *tdx[2] = {NULL, NULL};
    for (size_t i = 0; i < l->nin; i++) {
        tx[i] = eg_xcalloc_floats(nx[i]);
        if (with_tx) rng_fill_uniform(rng, tx[i], nx[i], -1.0f, 1.0f);
        xp[i] = eg_xmalloc_floats(nx[i]);
        xm[i] = eg_xmalloc_floats(nx[i]);
        step_pair(x[i], tx[i], nx[i], o->h, xp[i], xm[i]);
        dxp[i] = eg_xmalloc_floats(nx[i]);
        dxm[i] = eg_xmalloc_floats(nx[i]);
        tdx[i] = eg_xcalloc_floats(nx[i]);
    }
    float *tp = eg_xmalloc_floats(P), *pp = eg_xmalloc_floats(P), *pm = eg_xmalloc_floats(P);
    rng_fill_uniform(rng, tp, P, -1.0f, 1.0f);
    step_pair(params, tp, P, o->h, pp, pm);
    float *tdy = eg_xmalloc_floats(ny), *dyp = eg_xmalloc_floats(ny), *dym = eg_xmalloc_floats(ny);
    rng_fill_uniform(rng, tdy, ny, -1.0f, 1.0f);
    step_pair(dy, tdy, ny, o->h, dyp, dym);
    float *yp = eg_xmalloc_floats(ny), *ym = eg_xmalloc_floats(ny), *ty = eg_xmalloc_floats(ny);
    float *gp = eg_xmalloc_floats(P), *gm = eg_xmalloc_floats(P), *tg = eg_xcalloc_floats(P);

    const float *const xps[2] = {xp[0], xp[1]}, *const xms[2] = {xm[0], xm[1]};
    fwd_bwd(l, ctx, xps, pp, dyp, yp, dxp, nx, gp, stats, stats0);
    fwd_bwd(l, ctx, xms, pm, dym, ym, dxm, nx, gm, stats, stats0);

    // analytic: forward at (x, params), then the tangent passes
    float *y = eg_xmalloc_floats(ny);
    ctx->params = params;
    ctx->grads = NULL;
    ctx->tparams = tp;
    ctx->tgrads = tg;
    ctx->tmp = eg_xmalloc_floats(ny > nx[0] ? (ny > nx[1] ? ny : nx[1]) : (nx[0] > nx[1] ? nx[0] : nx[1]));
    if (l->nstats) memcpy(stats, stats0, l->nstats * sizeof(float));
    l->ops->forward(l, ctx, x, y);
    const float *const txs[2] = {with_tx ? tx[0] : NULL, with_tx ? tx[1] : NULL};
    l->ops->tforward(l, ctx, x, txs, y, ty);
    float *const tdxs[2] = {tdx[0], tdx[1]};
    l->ops->tbackward(l, ctx, x, txs, y, dy, tdy, tdxs);

    char tag[160];
    snprintf(tag, sizeof tag, "%s (tangent%s)", what, with_tx ? "" : ", zero input tangent");
    double *fd = eg_xmalloc_array(ny > P ? ny : P, sizeof(double));
    for (size_t j = 0; j < ny; j++) fd[j] = ((double)yp[j] - (double)ym[j]) / (2.0 * o->h);
    compare(tag, "forward tangent: output", fd, ty, ny, o->tol);
    for (size_t i = 0; i < l->nin; i++) {
        double *fdx = eg_xmalloc_array(nx[i], sizeof(double));
        for (size_t j = 0; j < nx[i]; j++)
            fdx[j] = ((double)dxp[i][j] - (double)dxm[i][j]) / (2.0 * o->h);
        compare(tag, i == 0 ? "backward tangent: input" : "backward tangent: second input", fdx,
                tdx[i], nx[i], o->tol);
        free(fdx);
    }
    for (size_t j = 0; j < P; j++) fd[j] = ((double)gp[j] - (double)gm[j]) / (2.0 * o->h);
    compare(tag, "backward tangent: parameter", fd, tg, P, o->tol);

    free(fd);
    free(ctx->tmp);
    ctx->tmp = NULL;
    ctx->tparams = NULL;
    ctx->tgrads = NULL;
    for (size_t i = 0; i < 2; i++) {
        free(tx[i]);
        free(xp[i]);
        free(xm[i]);
        free(dxp[i]);
        free(dxm[i]);
        free(tdx[i]);
    }
    free(tp);
    free(pp);
    free(pm);
    free(tdy);
    free(dyp);
    free(dym);
    free(yp);
    free(ym);
    free(ty);
    free(y);
    free(gp);
    free(gm);
    free(tg);
}

void gradcheck_layer(const char *what, struct layer *l, const struct gradcheck_opts *o)
{
    if (l->nin < 1 || l->nin > 2) {
        cr_fatal("%s: layer has nin = %zu; constructors must set nin and in_shape", what, l->nin);
    }
    struct rng rng;
    rng_seed(&rng, o->seed);
    size_t n = o->n;
    size_t nx[2] = {0, 0};
    float *x[2] = {NULL, NULL}, *dx[2] = {NULL, NULL};
    for (size_t i = 0; i < l->nin; i++) {
        nx[i] = shape_numel(l->in_shape[i]) * n;
        x[i] = eg_xmalloc_floats(nx[i]);
        if (o->x != NULL) {
            memcpy(x[i], o->x[i], nx[i] * sizeof(float));
        } else {
            rng_fill_uniform(&rng, x[i], nx[i], -1.0f, 1.0f);
        }
        dx[i] = eg_xcalloc_floats(nx[i]);
    }
    float *params = eg_xmalloc_floats(l->nparams);
    float *grads = eg_xcalloc_floats(l->nparams);
    float *stats = eg_xmalloc_floats(l->nstats);
    float *stats0 = eg_xmalloc_floats(l->nstats);
    if (l->ops->init != NULL) l->ops->init(l, params, stats0, &rng);
    if (o->params != NULL) memcpy(params, o->params, l->nparams * sizeof(float));
    // Running statistics that are not the trivial 0/1 make eval mode a stronger check.
    for (size_t i = 0; i < l->nstats; i++) stats0[i] += 0.1f * (float)rng_uniform(&rng);

    size_t ny = shape_numel(l->out_shape) * n;
    float *y = eg_xmalloc_floats(ny);
    float *g = eg_xmalloc_floats(ny);
    rng_fill_uniform(&rng, g, ny, -1.0f, 1.0f);
    float *scratch = scratch_for(l, n);
    struct layer_ctx ctx = {.n = n,
                            .mode = o->mode,
                            .params = params,
                            .grads = grads,
                            .stats = stats,
                            .scratch = scratch,
                            .rng = &rng};
    const float *const xs[2] = {x[0], x[1]};

    // analytic
    loss_at(l, &ctx, xs, y, g, ny, stats, stats0);
    float *const dxs[2] = {dx[0], dx[1]};
    l->ops->backward(l, &ctx, xs, y, g, dxs);

    // numeric
    for (size_t i = 0; i < l->nin; i++) {
        double *fd = eg_xmalloc_array(nx[i], sizeof(double));
        for (size_t j = 0; j < nx[i]; j++) {
            fd[j] = central_diff(l, &ctx, xs, y, g, ny, stats, stats0, x[i] + j, o->h);
        }
        compare(what, i == 0 ? "input" : "second input", fd, dx[i], nx[i], o->tol);
        free(fd);
    }
    if (l->nparams) {
        double *fd = eg_xmalloc_array(l->nparams, sizeof(double));
        for (size_t j = 0; j < l->nparams; j++) {
            fd[j] = central_diff(l, &ctx, xs, y, g, ny, stats, stats0, params + j, o->h);
        }
        compare(what, "parameter", fd, grads, l->nparams, o->tol);
        free(fd);
    }

    // The tangent passes (exact second-order products), which every layer kind has.
    if (l->ops->tforward == NULL || l->ops->tbackward == NULL) {
        cr_fatal("%s: layer has no tangent passes", what);
    }
    tangentcheck_layer(what, l, &ctx, xs, nx, params, g, ny, stats, stats0, o, &rng, true);
    if (l->nin == 1) {
        tangentcheck_layer(what, l, &ctx, xs, nx, params, g, ny, stats, stats0, o, &rng, false);
    }

    for (size_t i = 0; i < 2; i++) {
        free(x[i]);
        free(dx[i]);
    }
    free(params);
    free(grads);
    free(stats);
    free(stats0);
    free(y);
    free(g);
    free(scratch);
}

// ---------------------------------------------------------------------------------------------
// meta-problem tangents

// hvp and mixed along a random direction u against central differences of train_loss's dtheta
// and dlambda at theta +- h u (|u| = 1, so h is the step's length), in double from float
// gradients. The nets are piecewise smooth (ReLU, max pool): a step that crosses a kink changes
// the gradient by a jump, and the difference is then meaningless. Such a direction is detected
// as in test_net.c, by the two one-sided differences (at theta, theta + h u and theta - h u)
// disagreeing by more than tol of the largest component (beyond the rounding floor of float
// gradients differenced over h), and another direction is drawn; at
// most half of the 8 directions may straddle kinks. Fails when a component of a smooth
// direction differs by more than tol times the section's largest magnitude.
// The worst |fd - exact| / max|fd| of hvp (P) and mixed (H), or -1 when the direction
// straddles a kink.
static double tangent_worst(const float *gp, const float *g0, const float *gm, const float *ex,
                            size_t n, double h, double tol, double *scale_out, double *floor_out)
{
    double scale = 0.0, worst = 0.0, skew = 0.0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(((double)gp[i] - (double)gm[i]) / (2.0 * h)));
    }
    for (size_t i = 0; i < n; i++) {
        const double fwd = ((double)gp[i] - (double)g0[i]) / h;
        const double bwd = ((double)g0[i] - (double)gm[i]) / h;
        skew = fmax(skew, fabs(fwd - bwd));
        worst = fmax(worst, fabs(0.5 * (fwd + bwd) - (double)ex[i]));
    }
    *scale_out = scale;
    // float gradients carry rounding of a few units of 2^-24 of their size, which a difference
    // over h amplifies: that floor is allowed on top of tol
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs((double)g0[i]));
    const double floor = 4.0 * ldexp(gmax, -24) / h;
    *floor_out = floor / scale;
    if (skew > tol * scale + 2.0 * floor) {
        cr_log_info("skew %.3g tol*scale %.3g floor %.3g worst %.3g", skew, tol * scale, floor, worst);
        return -1.0;
    }
    return worst / scale;
}

void check_problem_tangent(const char *what, struct meta_problem *p, const float *theta,
                                  const float *lambda, double h, double tol, unsigned long seed)
{
    const size_t P = p->P, H = p->H;
    struct rng rng;
    rng_seed(&rng, seed);
    float *u = eg_xmalloc_floats(P), *tp = eg_xmalloc_floats(P), *tm = eg_xmalloc_floats(P);
    float *gp = eg_xmalloc_floats(P), *gm = eg_xmalloc_floats(P), *g0 = eg_xmalloc_floats(P);
    float *hvp = eg_xmalloc_floats(P);
    float *lp = eg_xmalloc_floats(H), *lm = eg_xmalloc_floats(H), *l0 = eg_xmalloc_floats(H);
    float *mixed = eg_xmalloc_floats(H);
    size_t kinks = 0, smooth = 0;
    struct rng noise;
    if (p->rng != NULL) noise = *p->rng;
    for (int d = 0; d < 8; d++) {
        rng_fill_uniform(&rng, u, P, -1.0f, 1.0f);
        double un = 0.0;
        for (size_t i = 0; i < P; i++) un += (double)u[i] * (double)u[i];
        un = sqrt(un);
        for (size_t i = 0; i < P; i++) {
            const double ui = (double)u[i] / un;
            tp[i] = (float)((double)theta[i] + h * ui);
            tm[i] = (float)((double)theta[i] - h * ui);
            u[i] = (float)(((double)tp[i] - (double)tm[i]) / (2.0 * h)); // the step float took
        }
        // one draw of the task's noise for every evaluation
        if (p->rng != NULL) *p->rng = noise;
        p->ops->train_loss(p, tp, lambda, gp, lp);
        if (p->rng != NULL) *p->rng = noise;
        p->ops->train_loss(p, tm, lambda, gm, lm);
        if (p->rng != NULL) *p->rng = noise;
        double L = p->ops->train_loss_tangent(p, theta, lambda, u, g0, l0, hvp, mixed);
        if (p->rng != NULL) *p->rng = noise;
        double L1 = p->ops->train_loss(p, theta, lambda, g0, l0);
        cr_assert(epsilon_eq(dbl, L, L1, 1e-6), "%s: tangent pass loss %.9g, train_loss %.9g",
                  what, L, L1);
        double sh, sm, fh, fm;
        const double wh = tangent_worst(gp, g0, gm, hvp, P, h, tol, &sh, &fh);
        const double wm = tangent_worst(lp, l0, lm, mixed, H, h, tol, &sm, &fm);
        if (wh < 0.0 || wm < 0.0) {
            kinks++;
            continue;
        }
        smooth++;
        cr_log_info("%s: direction %d: hvp max %.3g worst %.3g (rounding floor %.3g); mixed max "
                    "%.3g worst %.3g (floor %.3g)",
                    what, d, sh, wh, fh, sm, wm, fm);
        cr_assert(wh <= tol + fh && wm <= tol + fm,
                  "%s: direction %d: hvp worst |fd - exact| %.3g, mixed %.3g of the largest "
                  "component (tol %.3g)",
                  what, d, wh, wm, tol);
    }
    cr_log_info("%s: %zu smooth directions, %zu at kinks", what, smooth, kinks);
    cr_assert(kinks <= 4, "%s: %zu of 8 directions straddle a kink", what, kinks);
    free(u);
    free(tp);
    free(tm);
    free(gp);
    free(gm);
    free(g0);
    free(hvp);
    free(lp);
    free(lm);
    free(l0);
    free(mixed);
}

// ---------------------------------------------------------------------------------------------
// end-to-end runs

char e2e_dir[64];

void e2e_setup(void)
{
    snprintf(e2e_dir, sizeof e2e_dir, "/tmp/evograd-test-XXXXXX");
    cr_assert(mkdtemp(e2e_dir) != NULL);
}

void e2e_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e2e_dir);
    cr_assert(system(cmd) == 0);
}

const char *e2e_bin(void)
{
    const char *b = getenv("EVOGRAD_BIN");
    if (b == NULL) cr_fatal("EVOGRAD_BIN is not set (run the suite with make test)");
    return b;
}

const char *e2e_path(const char *rel)
{
    static char buf[8][512];
    static unsigned next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", e2e_dir, rel);
    return p;
}

void e2e_mkdir(const char *rel)
{
    cr_assert(mkdir(e2e_path(rel), 0755) == 0, "mkdir %s", e2e_path(rel));
}

void e2e_write_bytes(const char *rel, const void *data, size_t n)
{
    FILE *f = fopen(e2e_path(rel), "wb");
    cr_assert(f != NULL, "cannot create %s", e2e_path(rel));
    cr_assert(fwrite(data, 1, n, f) == n);
    cr_assert(fclose(f) == 0);
}

void e2e_write(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", e2e_dir, rel);
    FILE *f = fopen(p, "w");
    cr_assert(f != NULL, "%s", p);
    cr_assert(fputs(text, f) >= 0);
    cr_assert(fclose(f) == 0);
}

char *e2e_read(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", e2e_dir, rel);
    FILE *f = fopen(p, "r");
    if (f == NULL) return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = eg_xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) buf = eg_xrealloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

void *e2e_read_bytes(const char *rel, size_t *n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", e2e_dir, rel);
    FILE *f = fopen(p, "rb");
    cr_assert(f != NULL, "cannot open %s", p);
    struct stat st;
    cr_assert(fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode), "%s is not a file", p);
    size_t len = (size_t)st.st_size;
    char *buf = eg_xmalloc(len + 1);
    // getc must then see the end: the size did not change while reading
    cr_assert(fread(buf, 1, len, f) == len && getc(f) == EOF && !ferror(f), "cannot read %s", p);
    fclose(f);
    buf[len] = '\0';
    if (n != NULL) *n = len;
    return buf;
}

char *e2e_metrics_without_clock(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/metrics.csv", dir);
    char *text = e2e_read(p);
    cr_assert(text != NULL, "%s", p);
    char *out = eg_xmalloc(strlen(text) + 1);
    size_t o = 0, col = 1;
    for (const char *c = text; *c; c++) {
        if (*c == ',' || *c == '\n') {
            out[o++] = *c;
            col = *c == '\n' ? 1 : col + 1;
        } else if (col != 3 && col != 9) {
            out[o++] = *c;
        }
    }
    out[o] = '\0';
    free(text);
    return out;
}

// In the child: stdout and stderr to these files (relative to e2e_dir), then the binary.
static _Noreturn void exec_bin(const char *const *args, const char *out_file,
                               const char *err_file)
{
    const char *bin = e2e_bin();
    if (chdir(e2e_dir) != 0) _exit(99);
    int e = open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int o = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (e < 0 || o < 0 || dup2(e, 2) < 0 || dup2(o, 1) < 0) _exit(98);
    char *argv[64];
    size_t n = 0;
    argv[n++] = (char *)bin;
    for (; args[n - 1] != NULL && n < 63; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    execv(bin, argv);
    _exit(97);
}

pid_t e2e_spawn(const char *const *args, const char *err_file)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) exec_bin(args, "/dev/null", err_file);
    return pid;
}

int e2e_wait(pid_t pid)
{
    int status = 0;
    cr_assert(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

int e2e_run(const char *const *args, const char *kill_when)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) exec_bin(args, "stdout.txt", "stderr.txt");
    if (kill_when != NULL) {
        const struct timespec pause = {0, 5000000}; // 5 ms
        for (int i = 0; i < 6000 && access(kill_when, F_OK) != 0; i++) nanosleep(&pause, NULL);
        kill(pid, SIGTERM);
    }
    return e2e_wait(pid);
}

double csv_cell(const char *text, size_t r, size_t col)
{
    const char *p = text;
    for (size_t i = 0; i < r; i++) {
        p = strchr(p, '\n');
        cr_assert(p != NULL && p[1] != '\0', "no row %zu", r);
        p++;
    }
    for (size_t c = 0; c < col; c++) {
        const char *q = strchr(p, ',');
        const char *nl = strchr(p, '\n');
        cr_assert(q != NULL && (nl == NULL || q < nl), "row %zu has no column %zu", r, col);
        p = q + 1;
    }
    if (*p == ',' || *p == '\n' || *p == '\0') return NAN;
    return strtod(p, NULL);
}

size_t csv_data_rows(const char *text)
{
    size_t lines = 0;
    for (const char *c = text; *c; c++) lines += *c == '\n';
    return lines > 0 ? lines - 1 : 0;
}

// Reads one cell at *p (updating *p to just past it, at the ',' / '\n' / NUL that ends it).
// Copies its unquoted text into out (at least strlen(*p) + 1 bytes) unless out is NULL.
static void rfc_cell(const char **p, char *out)
{
    const char *s = *p;
    size_t n = 0;
    if (*s == '"') {
        for (s++;; s++) {
            cr_assert(s[0] != '\0', "unterminated quoted cell");
            if (*s == '"') {
                if (s[1] != '"') break;
                s++; // "" is one quote
            }
            if (out != NULL) out[n] = *s;
            n++;
        }
        s++;
        cr_assert(s[0] == ',' || s[0] == '\n' || s[0] == '\0', "text after a closing quote: %.20s",
                  s);
    } else {
        for (; *s != ',' && *s != '\n' && *s != '\0'; s++) {
            cr_assert(s[0] != '"', "quote inside a plain cell: %.20s", *p);
            if (out != NULL) out[n] = *s;
            n++;
        }
    }
    if (out != NULL) out[n] = '\0';
    *p = s;
}

size_t csv_text_records(const char *text)
{
    size_t records = 0;
    const char *p = text;
    while (*p != '\0') {
        for (;;) {
            rfc_cell(&p, NULL);
            if (*p != ',') break;
            p++;
        }
        records++;
        if (*p == '\n') p++;
    }
    return records;
}

char *csv_text_cell(const char *text, size_t r, size_t col)
{
    const char *p = text;
    for (size_t i = 0; *p != '\0'; i++) {
        for (size_t c = 0;; c++) {
            if (i == r && c == col) {
                char *out = eg_xmalloc(strlen(p) + 1);
                rfc_cell(&p, out);
                return out;
            }
            rfc_cell(&p, NULL);
            if (*p != ',') break;
            p++;
        }
        if (i == r) return NULL; // the record has fewer columns
        if (*p == '\n') p++;
    }
    return NULL;
}

static size_t spec_rowbytes(const struct png_spec *s)
{
    size_t ch = s->color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                : s->color_type == PNG_COLOR_TYPE_RGB      ? 3
                : s->color_type == PNG_COLOR_TYPE_RGBA     ? 4
                                                           : 1;
    return (s->w * ch * (size_t)s->bit_depth + 7) / 8;
}

void png_write_spec(const char *path, const struct png_spec *s)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "cannot create %s", path);
    png_bytep *rows = eg_xmalloc_array(s->h, sizeof *rows);
    for (size_t y = 0; y < s->h; y++)
        rows[y] = (png_bytep)(s->data + y * spec_rowbytes(s));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png != NULL && info != NULL);
    if (setjmp(png_jmpbuf(png))) cr_fatal("libpng could not write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, s->w, s->h, s->bit_depth, s->color_type,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette != NULL) png_set_PLTE(png, info, s->palette, s->npalette);
    if (s->trns != NULL) png_set_tRNS(png, info, s->trns, s->ntrns, NULL);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    cr_assert(ferror(f) == 0 && fclose(f) == 0, "cannot write %s", path);
}

void png_write_grey(const char *path, size_t h, size_t w, const uint8_t *pix)
{
    png_write_spec(path, &(struct png_spec){.w = (uint32_t)w,
                                            .h = (uint32_t)h,
                                            .color_type = PNG_COLOR_TYPE_GRAY,
                                            .bit_depth = 8,
                                            .data = pix});
}

void use_direct_convolutions(void)
{
    conv2d_set_backend(CONV2D_DNNL_DIRECT);
}
