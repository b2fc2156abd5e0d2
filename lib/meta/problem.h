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
 * Second order. train_loss_tangent, where a task has it, differentiates both gradients of l_T once
 * more along a direction u of theta, exactly (forward-over-reverse through every layer, net.h):
 * the Hessian-vector product (d^2 l_T / dtheta^2) u and the mixed product (d^2 l_T / dlambda
 * dtheta) u. The exact unrolled method needs it; evograd and unrolled_fd use first-order
 * gradients only. */
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
    // train_loss (returned, and dtheta, dlambda as there) together with, along u (P), hvp (P)
    // written with (d^2 l_T / dtheta^2) u and mixed (H) with (d^2 l_T / dlambda dtheta) u,
    // each unless NULL. Under the same task noise as the train_loss call it replaces (the
    // caller restores p->rng). Every task's problem has it; NULL means no exact products
    // (method unrolled then refuses the problem: hyper_method_supports).
    double (*train_loss_tangent)(struct meta_problem *p, const float *theta, const float *lambda,
                                 const float *u, float *dtheta, float *dlambda, float *hvp,
                                 float *mixed);
};

struct meta_problem {
    const struct meta_problem_ops *ops;
    size_t P, H;       // sizes of theta and lambda
    struct rng *rng;   // the task's randomness inside the losses; NULL when they are deterministic
    void *ctx;         // the task's own data
};

#endif // EG_PROBLEM_H
