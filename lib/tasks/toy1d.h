/* toy1d.h - the paper's 1-D illustration (paper-spec 3.1): one weight x, one hyperparameter
 * lambda,
 *   l_T(x, lambda) = (x - 1)^2 + lambda x^2      (training loss, lambda an L2 regulariser)
 *   l_V(x)         = (x - 0.5)^2                  (validation loss)
 * so x*(lambda) = 1 / (1 + lambda) and the exact hypergradient of l_V(x*(lambda)) is
 * (lambda - 1) / (lambda + 1)^3 (paper-spec 2.5).
 *
 * toy1d_run writes two experiments into a run directory (no metrics.csv, no checkpoint: the task
 * takes well under a second):
 *   hypergrad.csv         lambda,mean,std,exact: for each lambda of linspace(toy1d.lambda_min,
 *                         toy1d.lambda_max, toy1d.grid_points), toy1d.trials estimates of the
 *                         configured method at a random x ~ N(0, 1) (not the inner optimum); their
 *                         mean and sample standard deviation (n - 1), and the exact value.
 *   trajectory.csv        start,step,x,lambda,val_loss: from each of the 5 paper starting points,
 *                         toy1d.steps joint steps (GD on x with toy1d.lr, then the meta optimiser
 *                         on lambda with the method's hypergradient at the new x); row step 0 is
 *                         the start.
 *   trajectory_exact.csv  the same with the exact hypergradient at the current lambda.
 * Randomness: seeded from cfg->seed, one stream for the hypergradient grid and another for the
 * trajectories, so changing trials or grid_points does not change the trajectories. */
#ifndef EG_TOY1D_H
#define EG_TOY1D_H

#include "core/status.h"
#include "io/config.h"
#include "meta/problem.h"
#include "run/run.h"

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

// Runs the task into the existing directory dir (the files above, created or truncated).
// cfg->task must be toy1d and cfg must have passed run_check. res: wall_s and peak_rss_mb
// filled, the accuracy and loss fields NaN, the counters 0. EG_ERR_IO (message naming the file)
// when a file cannot be written; EG_ERR_DIVERGED when a hypergradient is NaN or Inf.
enum eg_status toy1d_run(const struct run_config *cfg, const char *dir, struct run_result *res,
                         struct eg_error *err);

#endif // EG_TOY1D_H
