/* classifier.h - the image-classifier base of tasks supervised, rotation and mwn: a backbone
 * trained on a training set with an optimiser, evaluated on a test set, and optionally a
 * validation set with a hypergradient method and a meta optimiser for the task's
 * hyperparameters. A task embeds struct classifier as the FIRST member of its state, so that the
 * classifier_task_* functions below can serve directly in its task_ops (task.h).
 *
 * Randomness, separate streams of the seed (shared by the three tasks): model initialisation
 * (stream 1, then the task's own hyperparameters, e.g. mwn's weighting network), the training
 * batches' shuffles and augmentation (stream 2, owned by the batcher; the validation batcher is
 * seeded from the same stream's second draw), evograd's perturbations (stream 3), label noise
 * (stream 4, task mwn).
 *
 * metrics.csv's columns of the base (a task appends its own): CLASSIFIER_COLUMNS, with val_loss
 * the mean validation loss of the epoch's meta-steps (empty without them), test_acc and test_loss
 * on the whole test set in eval mode. */
#ifndef EG_CLASSIFIER_H
#define EG_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "io/config.h"
#include "memory.h"
#include "meta/hyper.h"
#include "nn/net.h"
#include "task.h"

enum {
    CLASSIFIER_STREAM_INIT = 1,
    CLASSIFIER_STREAM_BATCHES = 2,
    CLASSIFIER_STREAM_HYPER = 3,
    CLASSIFIER_STREAM_NOISE = 4,
};

#define CLASSIFIER_COLUMNS                                                                      \
    "epoch", "step", "wall_s", "train_loss", "val_loss", "test_acc", "test_loss", "lr",         \
        "peak_rss_mb"

// The base's resumable figures: one checkpoint section, plain data.
struct classifier_stats {
    double best_acc, last_acc;  // test accuracy: the best and the latest (NaN before the first)
    double last_loss;           // the latest test loss
    double val_sum;             // epoch in progress: sum of the meta-steps' validation losses
    uint64_t val_count;         //   and their number
    double last_val_loss;       // the last finished epoch's mean (NaN: no meta-step)
    struct rng hyper_rng;       // evograd's perturbations
};

// How the validation set is batched: none (supervised), without augmentation (rotation's rotated
// validation set) or with the training augmentation (mwn's clean meta set, as the reference).
enum classifier_val { CLASSIFIER_VAL_NONE, CLASSIFIER_VAL_PLAIN, CLASSIFIER_VAL_AUGMENTED };

struct classifier {
    const struct run_config *cfg;
    struct dataset train, val, test; // owned; the task loads them before classifier_init
    struct net *net;
    struct optim *opt;
    struct batcher batches, evalb, valb; // valb only with a validation set
    enum classifier_val val_kind;
    size_t classes, steps_per_epoch;
    float *x, *dlogits, *losses;    // (max(train, eval batch), image) and per-sample work space
    int32_t *y;
    // The meta part (classifier_meta_init):
    struct hyper *hyper;            // NULL for method none
    struct optim *meta_opt;         // the hyperparameters' optimiser (also for method none)
    float *xv;                      // (meta.batch_size, image) the validation batch
    int32_t *yv;
    struct classifier_stats st;
};

// ---------------------------------------------------------------------------------------------
// checks (no data)

// EG_ERR_CONFIG unless data.noise.type is none: label noise belongs to task mwn.
enum eg_status classifier_check_no_noise(const struct run_config *cfg, struct eg_error *err);
// The image shape and class count data.dataset will have (imagefolder: classes unknown, 0);
// EG_ERR_CONFIG for an unknown dataset.
enum eg_status classifier_check_data(const struct run_config *cfg, struct shape *s,
                                     size_t *classes, struct eg_error *err);
// The backbone against images of shape s (classes 0: unknown yet), backbone.hidden, data.crop_pad
// and train.optimizer.
enum eg_status classifier_check_model(const struct run_config *cfg, struct shape s, size_t classes,
                                      struct eg_error *err);

// ---------------------------------------------------------------------------------------------
// the memory estimate (memory.h)

// What a task tells the base's estimate, and what the estimate tells the task back for its own
// terms.
struct classifier_memory {
    // set by the task
    struct shape image;      // per image, and the class count (0: unknown, 2 assumed), as
    size_t classes;          //   classifier_check_data gives them
    size_t train_n, val_n, test_n; // images of each set as the task will hold them, 0 when
                                   // unknown before the data is read (imagefolder); val_n
                                   // only with a validation set
    enum classifier_val val;
    size_t H;                // hyperparameters (with a validation set)
    enum net_pass pass;      // the training steps' backward (NET_PASS_BACKWARD_DX: with dL/dx)
    bool tangent;            // the meta-step also runs the tangent passes (exact unrolled), at
                             // the larger of the training and validation batches
    // written by classifier_estimate
    size_t P;                // the backbone's parameters
    size_t numel;            // floats per image
    size_t train_batch, val_batch; // the batches the steps draw (the batch sizes, at most the
                                   // set's size when it is known; val_batch 0 without a method)
};

// m's image and classes as classifier_check_data gives them, and the images of data.dataset's
// training and test files as the config gives them (mnist and fashion_mnist 60000 and 10000,
// cifar 50000 and 10000, synthetic data.synthetic_train and data.synthetic_test); both 0 for
// imagefolder, whose size only the folder knows. cfg passed the task's check.
void classifier_memory_data(const struct run_config *cfg, struct classifier_memory *m,
                            size_t *train, size_t *test);

// Adds the base's terms for a run of cfg (which passed the task's other checks) to e, without
// allocating them: the images held (when m's sizes are known) with the batchers' orders; the
// backbone's parameters, gradients and running statistics with the optimiser's state, from a
// skeleton of the network (backbone_build); its activation and gradient buffers at the largest
// batch it will see (the training, validation and evaluation batches); the batch buffers; with
// a validation set the method's work space for m->H hyperparameters and the meta optimiser's
// state. Completes m.
void classifier_estimate(const struct run_config *cfg, struct classifier_memory *m,
                         struct memory_estimate *e);

// ---------------------------------------------------------------------------------------------
// set-up

// Loads data.dataset's training and test sets (on failure both untouched, err names the file).
enum eg_status classifier_load(const struct run_config *cfg, struct dataset *train,
                               struct dataset *test, struct eg_error *err);
// Keeps the first data.train_size images of *d (0 or more than it has: all).
void classifier_cut(const struct run_config *cfg, struct dataset *d);

// Builds the rest once c->train and c->test (and c->val unless CLASSIFIER_VAL_NONE) are loaded
// into a zeroed c: the backbone initialised from init (the task's stream-1 generator, which it
// may go on drawing from), the optimiser, the batchers, the buffers. EG_ERR_CONFIG when the
// backbone cannot take the data; c is then still freed by classifier_deinit.
enum eg_status classifier_init(struct classifier *c, const struct run_config *cfg,
                               enum classifier_val val, struct rng *init, struct eg_error *err);
// The meta part for H hyperparameters: the method (method.*, look-ahead defaulting to
// train.optimizer.lr) and the meta optimiser (meta.optimizer). After classifier_init.
void classifier_meta_init(struct classifier *c, size_t H);
void classifier_deinit(struct classifier *c);

// ---------------------------------------------------------------------------------------------
// one iteration

// The next training batch into c->x, c->y; returns its size.
size_t classifier_next(struct classifier *c);
// With a method: the next validation batch into c->xv, c->yv, returning its size; else 0.
size_t classifier_next_val(struct classifier *c);
// The meta-step as the lib/tasks step functions take it (meta/hyper.h).
struct meta_step classifier_meta_step(struct classifier *c);
// Counts a meta-step's validation loss into the epoch's val_loss (when a method ran and the loss
// is finite).
void classifier_add_val(struct classifier *c, const struct hyper_info *info);

// ---------------------------------------------------------------------------------------------
// evaluation

// An input transform applied to every test batch before the network: x (m images) in, the
// transformed batch out (the function's own buffer).
typedef const float *(*classifier_input_fn)(void *ctx, const float *x, size_t m);

// Mean accuracy and loss on the whole test set in eval mode, each batch passed through
// fn(ctx, ...) first unless fn is NULL. Polls task_stop_requested(clk) before every batch: on a
// stop request returns EG_STOPPED at once with *acc and *loss untouched (the eval batcher and
// the net's buffers may have moved on); else EG_OK.
enum eg_status classifier_evaluate(struct classifier *c, classifier_input_fn fn, void *ctx,
                                   const struct task_clock *clk, double *acc, double *loss);

// ---------------------------------------------------------------------------------------------
// task_ops members for a state whose first member is struct classifier

size_t classifier_task_steps(const void *state);
// Closes the epoch's val_loss and, when c->eval, evaluates on the test set; EG_STOPPED when a
// stop request interrupted the evaluation (test_acc, best_acc and test_loss then unchanged).
enum eg_status classifier_task_epoch_end(void *state, const struct task_clock *c,
                                         struct eg_error *err);
// val_loss, test_acc, test_loss.
void classifier_task_row(const void *state, const struct task_clock *c, struct metrics_row *r);
// "classifier" (the stats), "params", "stats" (running statistics), optim_*, batch_*, and with a
// validation set meta_optim_* and val_*.
void classifier_task_sections(void *state, struct ckpt_list *l);
// test_acc, best_acc and the result "final test accuracy A (best B)".
void classifier_task_summary(const void *state, struct task_summary *s);
// task_ops.hyper of a task whose state starts with its struct classifier: c->hyper.
struct hyper *classifier_task_hyper(void *state);

#endif // EG_CLASSIFIER_H
