/* task_toy1d.h - task toy1d, the paper's 1-D illustration (paper-spec 3.1, lib/tasks/toy1d.h):
 * the hypergradient of the configured method against the closed form on a grid of lambdas, and
 * joint (x, lambda) trajectories. Not epoch-based: a whole-run task that writes hypergrad.csv,
 * trajectory.csv and trajectory_exact.csv (no metrics.csv, no checkpoint) in well under a second.
 * Settings: method.*, meta.optimizer (lambda's steps), toy1d.*; the look-ahead step of method
 * unrolled defaults to toy1d.lr (x's step). summary.csv names no data or model ("none"), batch
 * size 0, and toy1d.lr as the learning rate. */
#ifndef EG_TASK_TOY1D_H
#define EG_TASK_TOY1D_H

#include "task.h"

extern const struct task_ops task_toy1d;

#endif // EG_TASK_TOY1D_H
