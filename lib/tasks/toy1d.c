/* toy1d.c - the paper's 1-D illustration (toy1d.h): the meta-problem, the hypergradient grid and
 * the joint (x, lambda) trajectories, written as CSV files into the run directory.
 *
 * x and lambda are float, as every theta and lambda a method sees; means, standard deviations
 * and the exact values are double. The method comes from s->method (lib/meta/hyper.h), the
 * lambda steps from s->meta_opt (lib/nn/optim.h: sgd with momentum 0 is plain GD). */
#include "toy1d.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "io/csv.h"

// rng streams of this task (the other tasks use 1 to 7).
enum { TOY1D_STREAM_GRID = 11, TOY1D_STREAM_TRAJECTORY = 12 };

const float toy1d_starts[TOY1D_NSTARTS][2] = {
    {-1.8f, 0.2f}, {-0.9f, 1.2f}, {0.9f, 0.8f}, {1.3f, 0.2f}, {1.5f, 1.7f},
};

// ---------------------------------------------------------------------------------------------
// the meta-problem

static double train_loss(struct meta_problem *p, const float *theta, const float *lambda,
                         float *dtheta, float *dlambda)
{
    (void)p;
    double x = theta[0], lam = lambda[0];
    if (dtheta != NULL) dtheta[0] = (float)(2.0 * (x - 1.0) + 2.0 * lam * x);
    if (dlambda != NULL) dlambda[0] = (float)(x * x);
    return (x - 1.0) * (x - 1.0) + lam * x * x;
}

static double val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    (void)p;
    double x = theta[0];
    if (dtheta != NULL) dtheta[0] = (float)(2.0 * (x - 0.5));
    return toy1d_val_loss(x);
}

// d^2 l_T / dx^2 = 2 + 2 lambda,  d^2 l_T / dlambda dx = 2x.
static double train_loss_tangent(struct meta_problem *p, const float *theta, const float *lambda,
                                 const float *u, float *dtheta, float *dlambda, float *hvp,
                                 float *mixed)
{
    double x = theta[0], lam = lambda[0];
    if (hvp != NULL) hvp[0] = (float)((2.0 + 2.0 * lam) * (double)u[0]);
    if (mixed != NULL) mixed[0] = (float)(2.0 * x * (double)u[0]);
    return train_loss(p, theta, lambda, dtheta, dlambda);
}

static const struct meta_problem_ops toy1d_ops = {
    .train_loss = train_loss, .val_loss = val_loss, .train_loss_tangent = train_loss_tangent};

void toy1d_problem_init(struct meta_problem *p)
{
    EG_ASSERT(p != NULL);
    *p = (struct meta_problem){.ops = &toy1d_ops, .P = 1, .H = 1, .rng = NULL, .ctx = NULL};
}

double toy1d_val_loss(double x)
{
    return (x - 0.5) * (x - 0.5);
}

// l_V(x*(lambda)) with x* = 1/(1+lambda): d/dlambda = 2(x* - 1/2) * (-1/(1+lambda)^2)
//   = (lambda - 1) / (lambda + 1)^3.
double toy1d_exact(double lambda)
{
    EG_ASSERT(lambda > -1.0);
    double a = lambda + 1.0;
    return (lambda - 1.0) / (a * a * a);
}

// ---------------------------------------------------------------------------------------------
// output files

// numpy.linspace(lo, hi, n)[i]: lo + i*step, the last point exactly hi.
static double linspace_at(double lo, double hi, size_t n, size_t i)
{
    if (i + 1 == n) return hi;
    return lo + (double)i * ((hi - lo) / (double)(n - 1));
}

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    int len = snprintf(out, cap, "%s/%s", dir, name);
    EG_ASSERT(len > 0 && (size_t)len < cap);
}

// Writes one row of numbers (at most 8) through csv_fmt (%.9g, nan, inf).
static enum eg_status write_nums(struct csv *c, const double *v, size_t n, struct eg_error *err)
{
    char cells[8][32];
    const char *row[8];
    EG_ASSERT(n <= 8);
    for (size_t i = 0; i < n; i++) row[i] = csv_fmt(cells[i], v[i]);
    return csv_row(c, row, err);
}

// hypergrad.csv: mean and sample std of `trials` estimates per lambda, and the exact value.
static enum eg_status run_grid(const struct toy1d_settings *ts, struct hyper *h,
                               struct meta_problem *p, const char *path, struct eg_error *err)
{
    static const char *const columns[] = {"lambda", "mean", "std", "exact"};
    struct csv *c = NULL;
    enum eg_status st = csv_create(path, columns, 4, &c, err);
    if (st != EG_OK) return st;

    struct rng rng;
    rng_seed_stream(&rng, ts->seed, TOY1D_STREAM_GRID);
    const size_t n = ts->trials;
    double *est = eg_xmalloc(n * sizeof *est); // (trials) this lambda's estimates
    for (size_t i = 0; st == EG_OK && i < ts->grid_points; i++) {
        double lam_d = linspace_at(ts->lambda_min, ts->lambda_max, ts->grid_points, i);
        float lam = (float)lam_d;
        double sum = 0.0;
        for (size_t t = 0; t < n; t++) {
            float x = (float)rng_gaussian(&rng); // a random point, not the inner optimum
            float hg = 0.0f;
            hyper_grad(h, p, &x, &lam, &rng, &hg, NULL);
            est[t] = hg;
            sum += est[t];
        }
        double mean = sum / (double)n, ss = 0.0;
        for (size_t t = 0; t < n; t++) ss += (est[t] - mean) * (est[t] - mean);
        double sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0; // torch.std: n - 1
        if (!isfinite(mean) || !isfinite(sd)) {
            st = eg_errorf(err, EG_ERR_DIVERGED, "toy1d: the %s hypergradient at lambda = %g is %s",
                           hyper_method_name(ts->method.method), lam_d,
                           isnan(mean) || isnan(sd) ? "NaN" : "Inf");
            break;
        }
        const double row[] = {lam_d, mean, sd, toy1d_exact(lam_d)};
        st = write_nums(c, row, 4, err);
    }
    free(est);
    enum eg_status cst = csv_close(c, err);
    return st != EG_OK ? st : cst;
}

// trajectory.csv (exact false) or trajectory_exact.csv (exact true): from every starting point,
// steps of x -= lr * dl_T/dx, then a meta-optimiser step on lambda with the hypergradient at the
// new x (the method's estimate, or toy1d_exact(lambda)). A fresh optimiser per start.
//
// The authors' notebook updates its ground-truth lambda with the exact hypergradient evaluated at
// the EvoGrad trajectory's lambda (paper-spec 2.5); we do not replicate that bug: the exact
// trajectory follows its own lambda.
static enum eg_status run_trajectories(const struct toy1d_settings *ts, struct hyper *h,
                                       struct meta_problem *p, bool exact, const char *path,
                                       struct eg_error *err)
{
    static const char *const columns[] = {"start", "step", "x", "lambda", "val_loss"};
    struct csv *c = NULL;
    enum eg_status st = csv_create(path, columns, 5, &c, err);
    if (st != EG_OK) return st;

    struct rng rng;
    rng_seed_stream(&rng, ts->seed, TOY1D_STREAM_TRAJECTORY);
    const struct optim_params op = ts->meta_opt;
    const float meta_lr = op.lr, lr = (float)ts->lr;
    for (size_t s = 0; st == EG_OK && s < TOY1D_NSTARTS; s++) {
        struct optim *opt = optim_new(&op, 1);
        float x = toy1d_starts[s][0], lam = toy1d_starts[s][1];
        for (size_t k = 0; st == EG_OK && k <= ts->steps; k++) {
            if (k > 0) {
                float dx = 0.0f, hg = 0.0f;
                p->ops->train_loss(p, &x, &lam, &dx, NULL);
                x -= lr * dx;
                if (exact) {
                    hg = (float)toy1d_exact(lam);
                } else {
                    hyper_grad(h, p, &x, &lam, &rng, &hg, NULL);
                }
                optim_step(opt, &lam, &hg, meta_lr);
            }
            if (!isfinite(x) || !isfinite(lam)) {
                st = eg_errorf(err, EG_ERR_DIVERGED,
                               "toy1d: %s trajectory from start %zu diverged at step %zu "
                               "(x = %g, lambda = %g)",
                               exact ? "the exact" : "the method's", s, k, (double)x, (double)lam);
                break;
            }
            char cs[32], ck[32], cells[3][32];
            snprintf(cs, sizeof cs, "%zu", s);
            snprintf(ck, sizeof ck, "%zu", k);
            const char *row[] = {cs, ck, csv_fmt(cells[0], x), csv_fmt(cells[1], lam),
                                 csv_fmt(cells[2], toy1d_val_loss(x))};
            st = csv_row(c, row, err);
        }
        optim_free(opt);
    }
    enum eg_status cst = csv_close(c, err);
    return st != EG_OK ? st : cst;
}

// ---------------------------------------------------------------------------------------------
// the task

enum eg_status toy1d_run(const struct toy1d_settings *s, const char *dir, struct eg_error *err)
{
    EG_ASSERT(s != NULL && dir != NULL);
    EG_ASSERT(optim_params_check(&s->meta_opt) == NULL);
    struct meta_problem p;
    toy1d_problem_init(&p);
    struct hyper *h = hyper_new(&s->method, p.P, p.H);

    char path[PATH_MAX + 32]; // the runner keeps dir under PATH_MAX - 64
    join(path, sizeof path, dir, "hypergrad.csv");
    enum eg_status st = run_grid(s, h, &p, path, err);
    if (st == EG_OK) {
        join(path, sizeof path, dir, "trajectory.csv");
        st = run_trajectories(s, h, &p, false, path, err);
    }
    if (st == EG_OK) {
        join(path, sizeof path, dir, "trajectory_exact.csv");
        st = run_trajectories(s, h, &p, true, path, err);
    }
    hyper_free(h);
    return st;
}
