/* task.h - the task interface: what the one training loop (run.c) needs from an experiment.
 *
 * A task is a file pair lib/run/task_<name>.{c,h} that fills one `const struct task_ops` and
 * names it in the registry (registry.c). The loop owns time, epochs, the learning-rate schedule
 * (train.schedule), stop requests, --stop-after, divergence, checkpoint.bin, resume, the framing
 * of metrics.csv, progress and the run's result; it names no task. The task owns its data,
 * models, optimisers, meta-problem and randomness, and everything that is particular to it: its
 * config checks, an iteration, the evaluation at an epoch's end, its metrics columns, its
 * checkpoint sections and its files. The library's algorithms a task drives (lib/tasks/, lib/meta/)
 * take plain settings structs; a task translates its config with lib/run/settings.h.
 *
 * Life of an epoch-based run: check (also from `evograd check`), init, then on a fresh run start,
 * on a resumed one the checkpoint is loaded into the loop's section and sections(); then for each
 * epoch steps_per_epoch x step, epoch_end, and a metrics row when the epoch is evaluated; after
 * the last epoch finish; summary whenever the loop reports; free. A task that is not epoch-based
 * (toy1d) supplies check and run_whole only. */
#ifndef EG_TASK_H
#define EG_TASK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct ckpt_list;
struct hyper;
struct run_config;

// What one training iteration contributes to the epoch's training loss (metrics.csv's
// train_loss is the epoch's loss_sum / count), and whether it diverged.
struct task_step {
    double loss_sum;      // added to the epoch's sum (a batch: the sum over its samples)
    uint64_t count;       // added to the epoch's count (a batch: its samples; an episode: 1)
    const char *diverged; // NULL, or what became non-finite, as static text ("the training loss
                          // is NaN"): the run stops with EG_ERR_DIVERGED, metrics so far kept
};

// NULL when loss is finite; else "the training loss is NaN" (or +Inf, -Inf), for task_step.
const char *task_loss_diverged(double loss);

// Where the loop is.
struct task_clock {
    uint64_t epoch;  // in step: the epoch in progress, 0-based; at the epoch's end: epochs done
    uint64_t epochs; // train.epochs
    float lr;        // the base learning rate of the epoch (train.schedule)
    bool eval;       // at the epoch's end: this epoch is evaluated and gets a metrics row
    bool last;       // at the epoch's end: it is the last one
    // The run's stop request (signals, --stop-after; NULL: none). A long evaluation polls it
    // with task_stop_requested (between batches or episodes) and returns EG_STOPPED from
    // epoch_end: the loop then restores the sections as they were before epoch_end, writes the
    // checkpoint and stops, so a resumed run repeats the whole epoch end.
    const volatile sig_atomic_t *stop;
};

// True when c->stop is set (a signal or --stop-after asked the run to stop).
bool task_stop_requested(const struct task_clock *c);

// The figures of a run. The progress display reads them after every step and epoch, the runner
// writes them into summary.csv and its last line. Numbers a task does not measure stay NaN.
struct task_summary {
    const char *dataset, *backbone; // summary.csv's data and model (config strings; toy1d "none")
    size_t batch_size;              // images per training iteration (lft: an episode's; toy1d 0)
    double lr;                      // the base learning rate as configured
    double test_acc, best_acc;      // the latest and the best test accuracy
    double test_ci95;               // half-width of the latest test accuracy's 95% interval
    double val_acc;                 // the latest validation accuracy (shown in the progress)
    double angle_deg, acc_back;     // rotation: the learned angle, the accuracy rotated back
    double diag_cosine;             // the mean cosine of hypergrad_diag.csv (diagnostics)
    char result[192];               // the outcome in words for the run's last line
};

// task_summary with the shared sections' values (data.dataset, backbone.name,
// train.batch_size, train.optimizer.lr), every number NaN and no result text.
void task_summary_init(struct task_summary *s, const struct run_config *cfg);

// The usual describe (task_ops): "<task> on <data.dataset>, <backbone.name>, method
// <method.name>, seed <seed>".
void task_describe_default(const struct run_config *cfg, char *buf, size_t cap);

// One row of metrics.csv under construction, in the task's column order. Every task lists the
// loop's columns epoch, step, wall_s, train_loss, lr and peak_rss_mb, which the loop fills; the
// task sets the others by name (a column left unset, or set to NaN, is an empty cell).
#define METRICS_MAX_COLUMNS 24
#define METRICS_CELL 72
struct metrics_row {
    const char *const *columns;
    size_t n;
    char cells[METRICS_MAX_COLUMNS][METRICS_CELL];
};
// Sets `column` (one of r->columns, EG_ASSERT) to v as %.9g, or to an empty cell when v is NaN.
void metrics_set(struct metrics_row *r, const char *column, double v);
// Sets `column` to text (a plain CSV cell, shorter than METRICS_CELL; EG_ASSERT).
void metrics_set_text(struct metrics_row *r, const char *column, const char *text);

// The whole-run entry of a task that is not epoch-based: runs everything into the existing
// directory dir and fills sum (task_summary_init has been applied). EG_ERR_IO / EG_ERR_DIVERGED
// as the task says.
typedef enum eg_status (*task_run_whole_fn)(const struct run_config *cfg, const char *dir,
                                            struct task_summary *sum, struct eg_error *err);

struct task_ops {
    const char *name;  // the config's `task` value
    const char *about; // one line: what is learned
    bool learns;       // has hyperparameters: the methods other than none apply

    // The config's checks that need no data: the task's own section and its cross-key rules,
    // the model against the data's image shape. EG_ERR_CONFIG naming the keys. Required.
    enum eg_status (*check)(const struct run_config *cfg, struct eg_error *err);

    // What the run's first line says after "run <name>: " (e.g. "mwn on fashion_mnist, lenet,
    // method evograd, seed 1"). Required.
    void (*describe)(const struct run_config *cfg, char *buf, size_t cap);

    // Not epoch-based (toy1d): the whole run; every function below is then NULL.
    task_run_whole_fn run_whole;

    // Builds the state for cfg (which passed check; it outlives the state): data, models,
    // optimisers, meta-problem, generators, as a fresh run starts. On failure returns the
    // status (EG_ERR_IO / EG_ERR_FORMAT for data files, EG_ERR_CONFIG for a config that only the
    // data shows to be wrong) with *state NULL and nothing left allocated.
    enum eg_status (*init)(const struct run_config *cfg, void **state, struct eg_error *err);
    void (*free)(void *state); // NULL is a no-op

    // Training iterations per epoch (fixed for the run).
    size_t (*steps_per_epoch)(const void *state);

    // metrics.csv's columns, the loop's included (see struct metrics_row); at most
    // METRICS_MAX_COLUMNS.
    const char *const *columns;
    size_t ncolumns;

    // Files of a fresh run written before the first step (e.g. the data split), into dir. NULL:
    // none. Not called on resume.
    enum eg_status (*start)(void *state, const char *dir, struct eg_error *err);

    // One training iteration: draws its own batches, steps the model (and the hyperparameters).
    struct task_step (*step)(void *state, const struct task_clock *c);

    // The epoch's end: closes the task's epoch means and, when c->eval, evaluates. Errors are
    // the task's (EG_ERR_* with a message); they end the run. An evaluation that takes more than
    // about a second polls task_stop_requested(c) and returns EG_STOPPED when it is true; it may
    // leave the state half-updated (the loop restores the sections).
    enum eg_status (*epoch_end)(void *state, const struct task_clock *c, struct eg_error *err);

    // The task's cells of the metrics row of an evaluated epoch (after epoch_end).
    void (*row)(const void *state, const struct task_clock *c, struct metrics_row *r);

    // Appends the task's resumable state to l (the loop's own section comes first). The same
    // list serves saving and loading: the sections point into the state, so a load restores it
    // in place (all or nothing). Called once per save or load.
    void (*sections)(void *state, struct ckpt_list *l);

    // Files written when the last epoch is done (e.g. a learned curve), into dir. NULL: none.
    enum eg_status (*finish)(void *state, const char *dir, struct eg_error *err);

    // The run's figures so far into s (task_summary_init has been applied).
    void (*summary)(const void *state, struct task_summary *s);

    // The task's hypergradient method (NULL with method none), whose diagnostics the loop
    // requests every diagnostics.every_steps steps (meta/hyper.h: hyper_diag_request). NULL
    // member: the task has no meta-steps to diagnose (run_check refuses diagnostics).
    struct hyper *(*hyper)(void *state);
};

// ---------------------------------------------------------------------------------------------
// the registry (registry.c): one table of every task

// The task named `name`, or NULL.
const struct task_ops *task_find(const char *name);
// The i-th task (i < task_count()), in the registry's order.
size_t task_count(void);
const struct task_ops *task_at(size_t i);

#endif // EG_TASK_H
