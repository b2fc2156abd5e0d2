/* run.h - one experiment run: data, network, optimiser and the training loop, with metrics
 * written row by row, atomic checkpoints, resume that reproduces an uninterrupted run exactly
 * (network, optimiser, data order and every random stream are restored), divergence detection,
 * and a stop request honoured between steps. The runner (runner/) owns the run directory,
 * the command line, progress display and signals; this module owns everything inside the loop.
 *
 * Files written into opts->dir: metrics.csv (one row per evaluation, flushed), checkpoint.bin
 * (every checkpoint.every_epochs epochs and on a stop request). The runner writes config.yaml
 * before and summary.csv, runs.csv and DONE after. Task toy1d has no training loop: it is handed
 * to lib/tasks/toy1d.c, which writes hypergrad.csv and the trajectory files instead (no
 * metrics.csv, no checkpoint). */
#ifndef EG_RUN_H
#define EG_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "io/config.h"

struct run_progress {
    size_t epoch, epochs;            // 1-based epoch in progress
    size_t step, steps_per_epoch;    // steps done in this epoch
    size_t global_step;
    double elapsed_s;                // wall seconds of this run, resumed sessions included
    double train_loss;               // mean training loss of the epoch so far
    double test_acc;                 // the latest test accuracy (NaN before the first)
    double val_acc;                  // the latest validation accuracy (task lft; else NaN)
};

// Called after every step (epoch_end false) and after every epoch (epoch_end true).
typedef void (*run_progress_fn)(void *ctx, const struct run_progress *p, bool epoch_end);

struct run_options {
    const char *dir;                   // existing run directory
    bool resume;                       // continue from dir/checkpoint.bin
    volatile sig_atomic_t *stop;       // non-zero: checkpoint after the current step and return
    run_progress_fn progress;          // may be NULL
    void *progress_ctx;
};

struct run_result {
    bool stopped;            // returned early on a stop request (checkpoint written)
    size_t epochs_done, global_step;
    double final_acc, best_acc;  // test accuracy after the last epoch, and the best seen
    double final_train_loss;
    double sec_per_step, sec_per_epoch, wall_s, peak_rss_mb;
    double final_angle_deg, final_acc_back; // task rotation: the learned angle and the accuracy
                                            // on test images rotated back by it (else unused)
    double test_ci95;        // task lft: half-width of the test accuracy's 95% interval (final_acc
                             // is the mean over the test episodes); NaN for the other tasks
};

struct optim_params;

// The optimiser settings of a config section (sgd: momentum, nesterov; adam: betas, eps; both lr
// and coupled weight decay), for nn/optim.h. Used for the base and the meta optimiser alike.
struct optim_params run_optim_params(const struct optim_config *c);

// Checks what can be checked without data: the backbone against the dataset's image shape.
// Returns EG_ERR_CONFIG with a message naming the keys.
enum eg_status run_check(const struct run_config *cfg, struct eg_error *err);

// Runs (or resumes) the experiment described by cfg. EG_ERR_DIVERGED when a loss becomes NaN or
// Inf (message names epoch and step; metrics so far kept); EG_ERR_IO / EG_ERR_FORMAT for data or
// output files; EG_ERR_CONFIG for a checkpoint from another config.
enum eg_status run_experiment(const struct run_config *cfg, const struct run_options *opts,
                              struct run_result *res, struct eg_error *err);

#endif // EG_RUN_H
