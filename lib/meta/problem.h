/* problem.h - the meta-problem interface: what a task gives a hypergradient method.
 *
 * theta (P floats) are the base model's parameters, lambda (H floats) the hyperparameters. The
 * task owns its batches: before a meta-step it fixes one training batch and one validation batch,
 * and every call below within the step uses those. The validation loss depends on lambda only
 * through theta (true of every experiment in the paper).
 *
 * Stochastic training losses (feature-wise transformation noise, dropout) draw from p->rng, the
 * task's own generator; a method that needs two evaluations under the same noise (the unrolled
 * method's finite difference) saves and restores that generator around them.
 *
 * Gradients are first-order only: no method differentiates through a gradient. */
#ifndef EG_PROBLEM_H
#define EG_PROBLEM_H

#include <stddef.h>

struct rng;
struct meta_problem;

struct meta_problem_ops {
    // l_T(theta, lambda) on the current training batch, returned in double. dtheta: (P) written
    // with dl_T/dtheta unless NULL; dlambda: (H) written with dl_T/dlambda unless NULL.
    double (*train_loss)(struct meta_problem *p, const float *theta, const float *lambda,
                         float *dtheta, float *dlambda);
    // l_V(theta) on the current validation batch. dtheta: (P) written unless NULL.
    double (*val_loss)(struct meta_problem *p, const float *theta, float *dtheta);
};

struct meta_problem {
    const struct meta_problem_ops *ops;
    size_t P, H;       // sizes of theta and lambda
    struct rng *rng;   // the task's randomness inside the losses; NULL when they are deterministic
    void *ctx;         // the task's own data
};

#endif // EG_PROBLEM_H
