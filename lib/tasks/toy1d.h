/* toy1d.h - the paper's 1-D illustration (paper-spec 3.1): one weight x, one hyperparameter
 * lambda,
 *   l_T(x, lambda) = (x - 1)^2 + lambda x^2      (training loss, lambda an L2 regulariser)
 *   l_V(x)         = (x - 0.5)^2                  (validation loss)
 * so x*(lambda) = 1 / (1 + lambda) and the exact hypergradient of l_V(x*(lambda)) is
 * (lambda - 1) / (lambda + 1)^3 (paper-spec 2.5).
 *
 * toy1d_run writes two experiments into a run directory (no metrics.csv, no checkpoint: the task
 * takes well under a second):
 *   hypergrad.csv         lambda,mean,std,exact: for each lambda of linspace(s->lambda_min,
 *                         s->lambda_max, s->grid_points), s->trials estimates of the
 *                         configured method at a random x ~ N(0, 1) (not the inner optimum); their
 *                         mean and sample standard deviation (n - 1), and the exact value.
 *   trajectory.csv        start,step,x,lambda,val_loss: from each of the 5 paper starting points,
 *                         s->steps joint steps (GD on x with s->lr, then the meta optimiser
 *                         on lambda with the method's hypergradient at the new x); row step 0 is
 *                         the start.
 *   trajectory_exact.csv  the same with the exact hypergradient at the current lambda.
 * Randomness: seeded from s->seed, one stream for the hypergradient grid and another for the
 * trajectories, so changing trials or grid_points does not change the trajectories. */
#ifndef EG_TOY1D_H
#define EG_TOY1D_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "meta/hyper.h"
#include "meta/problem.h"
#include "nn/optim.h"

// The paper's starting points (x, lambda) of the joint optimisation (paper-spec 3.1).
#define TOY1D_NSTARTS 5
extern const float toy1d_starts[TOY1D_NSTARTS][2];

// A meta-problem with P = H = 1 for the losses above: deterministic, no batches, no context
// (p->rng and p->ctx are NULL). Nothing is allocated.
void toy1d_problem_init(struct meta_problem *p);

// l_V(x) = (x - 0.5)^2, in double.
double toy1d_val_loss(double x);

// dl_V(x*(lambda))/dlambda = (lambda - 1) / (lambda + 1)^3, for lambda > -1.
double toy1d_exact(double lambda);

// What toy1d_run does (task toy1d fills it from the config's method, meta.optimizer and toy1d
// sections, lib/run/task_toy1d.c).
struct toy1d_settings {
    struct hyper_params method;       // the hypergradient method
    struct optim_params meta_opt;     // lambda's optimiser; its lr is the meta step
    size_t trials;                    // hypergradient estimates per lambda, >= 1
    size_t grid_points;               // lambdas on linspace(lambda_min, lambda_max), >= 2
    double lambda_min, lambda_max;    // 0 <= lambda_min < lambda_max
    size_t steps;                     // joint (x, lambda) steps per trajectory
    double lr;                        // gradient-descent step on x, > 0
    uint64_t seed;
};

// Runs the task into the existing directory dir (the files above, created or truncated).
// s->meta_opt must pass optim_params_check (EG_ASSERT). EG_ERR_IO (message naming the file)
// when a file cannot be written; EG_ERR_DIVERGED when a hypergradient or a trajectory is NaN or
// Inf (the method's name in the message).
enum eg_status toy1d_run(const struct toy1d_settings *s, const char *dir, struct eg_error *err);

#endif // EG_TOY1D_H
