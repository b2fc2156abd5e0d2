/* run.h - one experiment run: the task the config names (task.h, registry.c) driven by the one
 * training loop, with metrics written row by row, atomic checkpoints, resume that reproduces an
 * uninterrupted run exactly (the loop's state and every section the task lists: models,
 * optimisers, data order, random streams), divergence detection, and a stop request honoured
 * between steps. The runner (runner/) owns the run directory, the command line, progress display
 * and signals; this module owns everything inside the loop.
 *
 * Files written into opts->dir by an epoch-based task: metrics.csv (one row per evaluated epoch,
 * flushed), checkpoint.bin (every checkpoint.every_epochs epochs and on a stop request), with
 * diagnostics.every_steps N hypergrad_diag.csv (one row every N steps: the task's method against
 * the exact one-step hypergradient of the same step, meta/hyper.h: hyper_diag_request; columns
 * step, epoch, method, candidates, method_norm, exact_norm, cosine, norm_ratio, sign_agree, draws,
 * draws_cosine, extra_s; the diagnostics' seconds are not counted in sec_per_step) and the task's
 * own files (task_<name>.h). A whole-run task (toy1d) writes only its own files. The runner
 * writes config.yaml before and summary.csv, runs.csv and DONE after. */
#ifndef EG_RUN_H
#define EG_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "io/config.h"
#include "task.h"

struct run_progress {
    size_t epoch, epochs;            // 1-based epoch in progress
    size_t step, steps_per_epoch;    // steps done in this epoch
    size_t global_step;
    size_t session_steps;            // steps done by this invocation (a resumed run: since then)
    double elapsed_s;                // wall seconds of this run, resumed sessions included
    double train_loss;               // mean training loss of the epoch so far
    double test_acc;                 // the latest test accuracy (NaN before the first)
    double val_acc;                  // the latest validation accuracy (NaN when none)
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
    bool started;            // the training began: an error after this is the run's failure
                             // (EG_ERR_DIVERGED, a write error), one before it the input's
                             // (config, data, checkpoint, the run directory)
    bool stopped;            // returned early on a stop request (checkpoint written)
    size_t epochs_done, global_step;
    double final_train_loss; // the last epoch's mean training loss
    double sec_per_step, sec_per_epoch; // NaN for a whole-run task
    double wall_s, peak_rss_mb;
    struct task_summary task; // the task's figures (accuracies, ...; see task.h)
};

// Checks what can be checked without data: the method against the task, then the task's own
// checks (task_ops.check). Returns EG_ERR_CONFIG with a message naming the keys.
enum eg_status run_check(const struct run_config *cfg, struct eg_error *err);

// buf (cap bytes) written with what the run is, for its first line: "supervised on fashion_mnist,
// lenet, method none, seed 1" (the task's describe).
void run_describe(const struct run_config *cfg, char *buf, size_t cap);

// Runs (or resumes) the experiment described by cfg (which passed run_check). EG_ERR_DIVERGED
// when the task reports a non-finite loss or hyperparameter, or an epoch's mean training loss
// exceeds train.diverge_factor times that of the run's first step (message names the epoch
// or step; metrics so far kept); EG_ERR_IO / EG_ERR_FORMAT for data or output files; EG_ERR_CONFIG for a
// checkpoint from another config or what only the data shows. res is filled in every case.
enum eg_status run_experiment(const struct run_config *cfg, const struct run_options *opts,
                              struct run_result *res, struct eg_error *err);

// run_experiment with the task given instead of looked up from cfg->task (the loop's tests drive
// it with a task of their own). ops must fill the task_ops contract (task.h).
enum eg_status run_task(const struct task_ops *ops, const struct run_config *cfg,
                        const struct run_options *opts, struct run_result *res,
                        struct eg_error *err);

#endif // EG_RUN_H
