/* task_toy1d.h - task toy1d, the paper's 1-D illustration (paper-spec 3.1, lib/tasks/toy1d.h):
 * the hypergradient of the configured method against the closed form on a grid of lambdas, and
 * joint (x, lambda) trajectories. Not epoch-based: a whole-run task that writes hypergrad.csv,
 * trajectory.csv and trajectory_exact.csv (no metrics.csv, no checkpoint) in well under a second.
 * Settings: method.*, meta.optimizer (lambda's steps), toy1d.*; the look-ahead step of method
 * unrolled defaults to toy1d.lr (x's step). summary.csv names no data or model ("none"), batch
 * size 0, and toy1d.lr as the learning rate. The check refuses a config whose memory estimate
 * (task_toy1d_memory) exceeds the limit (memory.h). */
#ifndef EG_TASK_TOY1D_H
#define EG_TASK_TOY1D_H

#include "memory.h"
#include "task.h"

struct run_config;

extern const struct task_ops task_toy1d;

// The run's memory estimate for cfg: the estimates of one lambda (toy1d.trials doubles) and the
// method's work space on the 1-parameter problem (evograd's K candidates). Terms are added to e.
void task_toy1d_memory(const struct run_config *cfg, struct memory_estimate *e);

#endif // EG_TASK_TOY1D_H
