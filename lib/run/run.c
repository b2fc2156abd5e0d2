/* run.c - the training loop of a run (run.h): plain supervised training (method none) of any
 * backbone on any dataset, evaluated on the test set, and the meta-learning tasks on the same
 * loop: rotation (tasks/rotation.h) and mwn (label noise with Meta-Weight-Net, tasks/mwn.h). Task
 * toy1d (the 1-D illustration) is dispatched to lib/tasks/toy1d.c, which has no training loop,
 * metrics.csv or checkpoint.
 *
 * Randomness: one seed, separate streams: network (and weighting network) initialisation
 * (stream 1), the training batches' shuffles and augmentation (stream 2, owned by the batcher),
 * evograd's perturbations (stream 3), the label noise (stream 4; the meta split and flip targets
 * come from data.split_seed). A resumed run restores the
 * batcher's order, position and generator, the network, its running statistics and the
 * optimiser, so it continues exactly where the checkpoint was taken. */
#include "run.h"
#include "run_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/batch.h"
#include "data/source.h"
#include "io/checkpoint.h"
#include "io/csv.h"
#include "nn/backbones.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "nn/rotate.h"
#include "data/noise.h"
#include "tasks/mwn.h"
#include "tasks/rotation.h"
#include "tasks/toy1d.h"

enum { STREAM_INIT = 1, STREAM_BATCHES = 2, STREAM_HYPER = 3, STREAM_NOISE = 4 };

enum task_kind { TASK_SUPERVISED, TASK_ROTATION, TASK_MWN };

// pi (RUN_PI is not declared under strict C11 + POSIX); the angle is logged with the exact value.
static const double RUN_PI = 3.14159265358979323846;

static const char *const metric_columns[] = {
    "epoch", "step", "wall_s", "train_loss", "val_loss", "test_acc", "test_loss", "lr",
    "peak_rss_mb",
};
#define NMETRICS (sizeof metric_columns / sizeof metric_columns[0])
// Task rotation: the same columns and two more.
static const char *const rotation_columns[] = {
    "epoch", "step", "wall_s", "train_loss", "val_loss", "test_acc", "test_loss", "lr",
    "peak_rss_mb", "angle_deg", "test_acc_back",
};
#define NROTATION (sizeof rotation_columns / sizeof rotation_columns[0])
// Task mwn: the mean weight of the epoch's clean and corrupted training samples.
static const char *const mwn_columns[] = {
    "epoch", "step", "wall_s", "train_loss", "val_loss", "test_acc", "test_loss", "lr",
    "peak_rss_mb", "w_clean", "w_noisy",
};
#define NMWN (sizeof mwn_columns / sizeof mwn_columns[0])
#define NCOLUMNS_MAX 11
#define NSECTIONS 16

// The loop's own state: one checkpoint section, plain data.
struct loop_state {
    uint64_t epoch;       // epochs completed
    uint64_t step;        // steps done in the epoch in progress
    uint64_t global_step;
    uint64_t rows;        // metrics rows written
    double wall_s;        // wall seconds of earlier sessions
    double step_s;        // seconds spent in training steps, all sessions
    double loss_sum;      // epoch in progress: sum of per-sample losses
    uint64_t loss_count;  //   and the samples they cover
    double best_acc, last_acc, last_train_loss;
};

// The batcher's resumable state.
struct batcher_state {
    uint64_t pos, epoch;
    struct rng rng;
};

static struct batcher_state batcher_state_of(const struct batcher *b)
{
    return (struct batcher_state){b->pos, b->epoch, b->rng};
}

static void batcher_restore(struct batcher *b, const struct batcher_state *s)
{
    b->pos = s->pos;
    b->epoch = s->epoch;
    b->rng = s->rng;
}

// The meta-learning tasks' own state (one checkpoint section), plain data.
struct meta_state {
    float angle;            // rotation: the learned angle, radians
    float pad_;
    double val_sum;         // epoch in progress: sum of the meta-steps' validation losses
    uint64_t val_count;
    double last_val_loss, last_acc_back;
    struct rng hyper_rng;   // evograd's perturbations
    double w_sum[2];        // mwn, epoch in progress: sums of the weights of clean [0] and
    uint64_t w_count[2];    //   corrupted [1] training samples, and their counts
    double last_w[2];       //   the last finished epoch's means
};

struct trainer {
    const struct run_config *cfg;
    enum task_kind task;
    struct dataset val;          // rotation: the rotated validation set; mwn: the clean meta set
    struct batcher valb;         // cycled validation (meta) batches
    struct rotation_problem *rp;
    struct mwn_problem *mp;
    float *lambda;               // mwn: the weighting network's parameters
    double realised_noise;       // mwn: the fraction of training labels actually corrupted
    struct hyper *hyper;         // NULL for method none
    struct optim *meta_opt;
    struct meta_state rs;
    float *xv, *xr;
    int32_t *yv;
    struct dataset train, test;
    struct net *net;
    struct optim *opt;
    struct schedule sched;
    struct batcher batches, evalb;
    size_t classes, steps_per_epoch;
    float *x, *dlogits, *losses;
    int32_t *y;
    struct csv *metrics;
    struct loop_state st;
    double session_start;
};

// ---------------------------------------------------------------------------------------------
// config -> library settings

static bool find_source(const struct run_config *cfg, enum data_source *src)
{
    return data_source_find(cfg->data.dataset, src);
}

// The image shape and class count a dataset will have (imagefolder: classes unknown, 0).
static void expected_data(const struct run_config *cfg, enum data_source src, struct shape *s,
                          size_t *classes)
{
    switch (src) {
    case DATA_SOURCE_MNIST:
    case DATA_SOURCE_FASHION_MNIST:
        *s = (struct shape){1, 28, 28};
        *classes = 10;
        return;
    case DATA_SOURCE_CIFAR10:
    case DATA_SOURCE_CIFAR100:
        *s = (struct shape){3, 32, 32};
        *classes = src == DATA_SOURCE_CIFAR10 ? 10 : 100;
        return;
    default:
        *s = (struct shape){cfg->data.image_c, cfg->data.image_h, cfg->data.image_w};
        *classes = src == DATA_SOURCE_SYNTHETIC ? cfg->data.classes : 0;
        return;
    }
}

struct backbone_spec run_backbone_spec(const struct run_config *cfg)
{
    enum backbone_kind kind = BACKBONE_LENET;
    EG_ASSERT(backbone_find(cfg->backbone.name, &kind)); // the config tables allow known names
    struct backbone_spec spec = backbone_defaults(kind);
    spec.width = cfg->backbone.width;
    if (cfg->backbone.channels > 0) spec.channels = cfg->backbone.channels;
    if (kind == BACKBONE_MLP) {
        EG_ASSERT(cfg->backbone.nhidden <= BACKBONE_MAX_HIDDEN);
        spec.nhidden = cfg->backbone.nhidden;
        for (size_t i = 0; i < spec.nhidden; i++) spec.hidden[i] = cfg->backbone.hidden[i];
    }
    return spec;
}

struct optim_params run_optim_params(const struct optim_config *c)
{
    bool adam = strcmp(c->name, "adam") == 0;
    struct optim_params p = optim_defaults(adam ? OPTIM_KIND_ADAM : OPTIM_KIND_SGD);
    p.lr = (float)c->lr;
    p.weight_decay = (float)c->weight_decay;
    if (adam) {
        p.beta1 = (float)c->beta1;
        p.beta2 = (float)c->beta2;
        p.eps = (float)c->eps;
    } else {
        p.momentum = (float)c->momentum;
        p.nesterov = c->nesterov;
    }
    return p;
}

struct schedule run_schedule(const struct run_config *cfg)
{
    const struct schedule_config *c = &cfg->train.schedule;
    struct schedule s = {.kind = SCHEDULE_KIND_CONSTANT, .base_lr = (float)cfg->train.optimizer.lr};
    if (strcmp(c->type, "step") == 0) {
        s.kind = SCHEDULE_KIND_STEP;
        s.gamma = (float)c->gamma;
        s.nmilestones = c->nmilestones;
        for (size_t i = 0; i < c->nmilestones; i++) s.milestones[i] = c->milestones[i];
    } else if (strcmp(c->type, "cosine") == 0) {
        s.kind = SCHEDULE_KIND_COSINE;
        s.total_epochs = cfg->train.epochs;
        s.min_lr = (float)c->min_lr;
    }
    return s;
}

static struct augment augment_of(const struct run_config *cfg, bool train)
{
    struct augment a = augment_none();
    const char *norm = cfg->data.dataset;
    if (strcmp(norm, "imagefolder") == 0) norm = "imagenet";
    augment_normalisation(norm, &a); // synthetic: plain x/255
    if (train) {
        a.crop_pad = cfg->data.crop_pad;
        a.hflip = cfg->data.hflip;
    }
    return a;
}

// toy1d: no data or network; the method and the meta optimiser.
static enum eg_status toy1d_check(const struct run_config *cfg, struct eg_error *err)
{
    struct optim_params op = run_optim_params(&cfg->meta.optimizer);
    const char *bad = optim_params_check(&op);
    if (bad != NULL) return eg_errorf(err, EG_ERR_CONFIG, "meta.optimizer: %s", bad);
    return EG_OK;
}

static enum task_kind task_of(const struct run_config *cfg)
{
    if (strcmp(cfg->task, "rotation") == 0) return TASK_ROTATION;
    if (strcmp(cfg->task, "mwn") == 0) return TASK_MWN;
    return TASK_SUPERVISED;
}

static enum noise_kind noise_kind_of(const struct run_config *cfg)
{
    enum noise_kind k = NOISE_KIND_NONE;
    bool known = noise_kind_find(cfg->data.noise.type, &k);
    EG_ASSERT(known); // the config's enum lists the same names
    return k;
}
// Task mwn's own checks (the data-dependent ones, meta_size against the training set, come when
// the data is loaded).
static enum eg_status mwn_check(const struct run_config *cfg, size_t classes, struct eg_error *err)
{
    if (cfg->mwn.uniform_weights && strcmp(cfg->method.name, "none") != 0) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "mwn.uniform_weights: only with method.name=none (method %s learns the "
                         "weighting network)",
                         cfg->method.name);
    }
    if (classes > 0) {
        const char *why = noise_check(noise_kind_of(cfg), cfg->data.noise.rate, classes);
        if (why != NULL) {
            return eg_errorf(err, EG_ERR_CONFIG, "data.noise: %s with %zu classes: %s",
                             cfg->data.noise.type, classes, why);
        }
    }
    if (cfg->meta.batch_size > cfg->data.meta_size) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "meta.batch_size: %zu is larger than the meta set (data.meta_size %zu)",
                         cfg->meta.batch_size, cfg->data.meta_size);
    }
    return EG_OK;
}

struct hyper_params run_hyper_params(const struct run_config *cfg)
{
    struct hyper_params hp = {
        .candidates = cfg->method.candidates,
        .sigma = cfg->method.sigma,
        .temperature = cfg->method.temperature,
        .noise = strcmp(cfg->method.noise, "gaussian") == 0 ? HYPER_NOISE_GAUSSIAN
                                                            : HYPER_NOISE_RADEMACHER,
        // 0 = the base learning rate
        .lookahead_lr = cfg->method.lookahead_lr > 0.0 ? cfg->method.lookahead_lr
                                                       : cfg->train.optimizer.lr,
    };
    bool known = hyper_method_find(cfg->method.name, &hp.method);
    EG_ASSERT(known); // the config's enum lists the same names
    return hp;
}

enum eg_status run_check(const struct run_config *cfg, struct eg_error *err)
{
    if (strcmp(cfg->task, "toy1d") == 0) return toy1d_check(cfg, err);
    if (strcmp(cfg->task, "lft") == 0) return lft_check(cfg, err);
    const enum task_kind task = task_of(cfg);
    if (strcmp(cfg->method.name, "none") != 0 && task == TASK_SUPERVISED) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "method.name: %s needs a task with hyperparameters (toy1d, rotation, "
                         "mwn, lft); task %s trains with method none",
                         cfg->method.name, cfg->task);
    }
    if (strcmp(cfg->data.noise.type, "none") != 0 && task != TASK_MWN) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "data.noise.type: %s: label noise is part of task mwn only (task %s)",
                         cfg->data.noise.type, cfg->task);
    }
    if (task != TASK_SUPERVISED) {
        struct optim_params mp = run_optim_params(&cfg->meta.optimizer);
        const char *mbad = optim_params_check(&mp);
        if (mbad != NULL) return eg_errorf(err, EG_ERR_CONFIG, "meta.optimizer: %s", mbad);
    }
    if (task == TASK_ROTATION) {
        const size_t te = cfg->rotation.train_end, vb = cfg->rotation.val_begin,
                     ve = cfg->rotation.val_end;
        if (!(te <= vb && vb < ve)) {
            return eg_errorf(err, EG_ERR_CONFIG,
                             "rotation: need train_end <= val_begin < val_end, got %zu, %zu, %zu",
                             te, vb, ve);
        }
    }
    enum data_source src;
    if (!find_source(cfg, &src)) {
        return eg_errorf(err, EG_ERR_CONFIG, "data.dataset: unknown dataset '%s'",
                         cfg->data.dataset);
    }
    struct shape s;
    size_t classes;
    expected_data(cfg, src, &s, &classes);
    if (task == TASK_MWN) {
        enum eg_status st = mwn_check(cfg, classes, err);
        if (st != EG_OK) return st;
    }
    struct backbone_spec spec = run_backbone_spec(cfg);
    const char *why = backbone_check(&spec, s, classes > 0 ? classes : 2);
    if (why != NULL) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "backbone.name: %s cannot take %s's %zux%zux%zu images: %s",
                         cfg->backbone.name, cfg->data.dataset, s.c, s.h, s.w, why);
    }
    if (cfg->backbone.nhidden > BACKBONE_MAX_HIDDEN) {
        return eg_errorf(err, EG_ERR_CONFIG, "backbone.hidden: at most %d hidden layers, got %zu",
                         BACKBONE_MAX_HIDDEN, cfg->backbone.nhidden);
    }
    if (cfg->data.crop_pad > 0 && (cfg->data.crop_pad >= s.h || cfg->data.crop_pad >= s.w)) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "data.crop_pad: %zu must be smaller than the %zux%zu images",
                         cfg->data.crop_pad, s.h, s.w);
    }
    struct optim_params op = run_optim_params(&cfg->train.optimizer);
    const char *bad = optim_params_check(&op);
    if (bad != NULL) return eg_errorf(err, EG_ERR_CONFIG, "train.optimizer: %s", bad);
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// set-up and tear-down

static void trainer_free(struct trainer *t)
{
    struct eg_error ignored;
    csv_close(t->metrics, &ignored);
    batcher_deinit(&t->batches);
    batcher_deinit(&t->evalb);
    if (t->task != TASK_SUPERVISED) {
        batcher_deinit(&t->valb);
        dataset_deinit(&t->val);
    }
    rotation_problem_free(t->rp);
    mwn_problem_free(t->mp);
    free(t->lambda);
    hyper_free(t->hyper);
    optim_free(t->meta_opt);
    free(t->xv);
    free(t->yv);
    free(t->xr);
    optim_free(t->opt);
    net_free(t->net);
    dataset_deinit(&t->train);
    dataset_deinit(&t->test);
    free(t->x);
    free(t->y);
    free(t->dlogits);
    free(t->losses);
}

// Task mwn: the clean meta set (t->val) and the noisy training set (t->train) from `used`
// (consumed), paper-spec 3.4 and 6.7.
static enum eg_status mwn_split(struct trainer *t, struct dataset *used, struct eg_error *err)
{
    const struct run_config *cfg = t->cfg;
    const size_t C = used->classes;
    enum eg_status st = mwn_check(cfg, C, err);
    if (st == EG_OK && cfg->data.meta_size >= used->n) {
        st = eg_errorf(err, EG_ERR_CONFIG,
                       "data.meta_size: %zu leaves no training images (%s has %zu training "
                       "images%s)",
                       cfg->data.meta_size, cfg->data.dataset, used->n,
                       cfg->data.train_size > 0 ? " with data.train_size" : "");
    }
    if (st != EG_OK) {
        dataset_deinit(used);
        return st;
    }
    struct rng split, flips, noise;
    rng_seed_stream(&split, cfg->data.split_seed, 1);
    rng_seed_stream(&flips, cfg->data.split_seed, 2);
    rng_seed_stream(&noise, cfg->seed, STREAM_NOISE);
    double *Cm = eg_xmalloc_array(C * C, sizeof *Cm);
    noise_matrix(noise_kind_of(cfg), cfg->data.noise.rate, C, &flips, Cm);
    st = data_noisy_split(used, cfg->data.meta_size, Cm, &split, &noise, &t->val, &t->train,
                          &t->realised_noise, err);
    free(Cm);
    dataset_deinit(used);
    return st;
}

static enum eg_status load_data(struct trainer *t, struct eg_error *err)
{
    const struct run_config *cfg = t->cfg;
    enum data_source src;
    EG_ASSERT(find_source(cfg, &src));
    struct data_spec spec = {
        .source = src,
        .root = cfg->data.root[0] != '\0' ? cfg->data.root : NULL,
        .image = {cfg->data.image_c, cfg->data.image_h, cfg->data.image_w},
        .classes = cfg->data.classes,
        .synthetic_train = cfg->data.synthetic_train,
        .synthetic_test = cfg->data.synthetic_test,
        .seed = cfg->seed,
    };
    struct dataset full;
    enum eg_status st;
    if (t->task == TASK_ROTATION) {
        struct dataset all, test_in;
        st = data_load(&spec, &all, &test_in, err);
        if (st != EG_OK) return st;
        const struct rotation_ranges r = {
            .train_end = cfg->rotation.train_end,
            .val_begin = cfg->rotation.val_begin,
            .val_end = cfg->rotation.val_end,
            .degrees = cfg->rotation.degrees,
        };
        st = data_rotation_split(&all, &test_in, &r, &full, &t->val, &t->test, err);
        dataset_deinit(&all);
        dataset_deinit(&test_in);
        if (st != EG_OK) return st;
    } else {
        st = data_load(&spec, &full, &t->test, err);
        if (st != EG_OK) return st;
    }
    struct dataset used;
    if (cfg->data.train_size > 0 && cfg->data.train_size < full.n) {
        size_t *idx = eg_xmalloc_array(cfg->data.train_size, sizeof *idx);
        for (size_t i = 0; i < cfg->data.train_size; i++) idx[i] = i;
        dataset_subset(&full, idx, cfg->data.train_size, &used);
        free(idx);
        dataset_deinit(&full);
    } else {
        used = full;
    }
    if (t->task != TASK_MWN) {
        t->train = used;
        return EG_OK;
    }
    return mwn_split(t, &used, err);
}

static enum eg_status trainer_init(struct trainer *t, const struct run_config *cfg,
                                   struct eg_error *err)
{
    *t = (struct trainer){.cfg = cfg, .task = task_of(cfg)};
    eg_set_threads((int)cfg->threads);
    enum eg_status st = load_data(t, err);
    if (st != EG_OK) return st;
    t->classes = t->train.classes;

    struct rng init;
    rng_seed_stream(&init, cfg->seed, STREAM_INIT);
    struct backbone_spec spec = run_backbone_spec(cfg);
    const char *why = backbone_check(&spec, t->train.shape, t->classes);
    if (why != NULL) {
        return eg_errorf(err, EG_ERR_CONFIG, "backbone.name: %s: %s", cfg->backbone.name, why);
    }
    t->net = backbone_new(&spec, t->train.shape, t->classes, &init);
    struct optim_params op = run_optim_params(&cfg->train.optimizer);
    t->opt = optim_new(&op, t->net->nparams);
    t->sched = run_schedule(cfg);

    struct augment aug = augment_of(cfg, true), plain = augment_of(cfg, false);
    struct rng s2;
    rng_seed_stream(&s2, cfg->seed, STREAM_BATCHES);
    batcher_init(&t->batches, &t->train, NULL, t->train.n, true, &aug, rng_u64(&s2));
    batcher_init(&t->evalb, &t->test, NULL, t->test.n, false, &plain, 0);
    t->rs.last_val_loss = NAN;
    t->rs.last_acc_back = NAN;
    t->rs.last_w[0] = t->rs.last_w[1] = NAN;
    if (t->task != TASK_SUPERVISED) {
        // the rotated validation set is not augmented; MWN's meta set is, as the training set
        const struct augment *vaug = t->task == TASK_MWN ? &aug : &plain;
        batcher_init(&t->valb, &t->val, NULL, t->val.n, true, vaug, rng_u64(&s2));
        const size_t numel = shape_numel(t->train.shape), mb = cfg->meta.batch_size;
        t->xv = eg_xmalloc_floats(mb * numel);
        t->yv = eg_xmalloc_array(mb, sizeof *t->yv);
        size_t H = 1;
        if (t->task == TASK_ROTATION) {
            t->rp = rotation_problem_new(t->net);
            t->rs.angle = (float)(cfg->rotation.init_deg * RUN_PI / 180.0);
        } else {
            t->mp = mwn_problem_new(t->net, cfg->mwn.hidden);
            H = t->mp->mp.H;
            t->lambda = eg_xmalloc_floats(H);
            mwn_vnet_init(t->lambda, cfg->mwn.hidden, &init); // after the network, as PyTorch
        }
        struct hyper_params hp = run_hyper_params(cfg);
        if (hp.method != HYPER_NONE) t->hyper = hyper_new(&hp, t->net->nparams, H);
        struct optim_params mop = run_optim_params(&cfg->meta.optimizer);
        t->meta_opt = optim_new(&mop, H);
        rng_seed_stream(&t->rs.hyper_rng, cfg->seed, STREAM_HYPER);
    }

    size_t bs = cfg->train.batch_size > cfg->eval.batch_size ? cfg->train.batch_size
                                                             : cfg->eval.batch_size;
    t->x = eg_xmalloc_floats(bs * shape_numel(t->train.shape));
    if (t->task == TASK_ROTATION) t->xr = eg_xmalloc_floats(bs * shape_numel(t->train.shape));
    t->y = eg_xmalloc_array(bs, sizeof *t->y);
    t->dlogits = eg_xmalloc_floats(bs * t->classes);
    t->losses = eg_xmalloc_floats(bs);
    t->steps_per_epoch = batcher_batches_per_epoch(&t->batches, cfg->train.batch_size);
    t->st.best_acc = NAN;
    t->st.last_acc = NAN;
    t->st.last_train_loss = NAN;
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// checkpoints

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

// The sections of a checkpoint, pointing into t (the same list saves and loads).
static size_t sections_of(struct trainer *t, struct batcher_state *bs, struct batcher_state *vbs,
                          struct ckpt_section *s)
{
    size_t n = 0;
    s[n++] = (struct ckpt_section){"loop", &t->st, sizeof t->st};
    s[n++] = (struct ckpt_section){"params", t->net->params, t->net->nparams * sizeof(float)};
    s[n++] = (struct ckpt_section){"stats", t->net->stats, t->net->nstats * sizeof(float)};
    s[n++] = (struct ckpt_section){"optim_steps", &t->opt->steps, sizeof t->opt->steps};
    if (t->opt->buf != NULL) {
        s[n++] = (struct ckpt_section){"optim_buf", t->opt->buf, t->opt->P * sizeof(float)};
    }
    if (t->opt->buf2 != NULL) {
        s[n++] = (struct ckpt_section){"optim_buf2", t->opt->buf2, t->opt->P * sizeof(float)};
    }
    s[n++] = (struct ckpt_section){"batch_order", t->batches.order,
                                   t->batches.n * sizeof *t->batches.order};
    s[n++] = (struct ckpt_section){"batch_state", bs, sizeof *bs};
    if (t->task != TASK_SUPERVISED) {
        struct optim *mo = t->meta_opt;
        s[n++] = (struct ckpt_section){"meta", &t->rs, sizeof t->rs};
        if (t->lambda != NULL) {
            s[n++] = (struct ckpt_section){"vnet", t->lambda, mo->P * sizeof(float)};
        }
        s[n++] = (struct ckpt_section){"meta_optim_steps", &mo->steps, sizeof mo->steps};
        if (mo->buf != NULL) {
            s[n++] = (struct ckpt_section){"meta_optim_buf", mo->buf, mo->P * sizeof(float)};
        }
        if (mo->buf2 != NULL) {
            s[n++] = (struct ckpt_section){"meta_optim_buf2", mo->buf2, mo->P * sizeof(float)};
        }
        s[n++] = (struct ckpt_section){"val_order", t->valb.order,
                                       t->valb.n * sizeof *t->valb.order};
        s[n++] = (struct ckpt_section){"val_state", vbs, sizeof *vbs};
    }
    EG_ASSERT(n <= NSECTIONS);
    return n;
}

static enum eg_status save_checkpoint(struct trainer *t, const char *dir, struct eg_error *err)
{
    struct batcher_state bs = batcher_state_of(&t->batches), vbs = batcher_state_of(&t->valb);
    struct ckpt_section s[NSECTIONS];
    size_t n = sections_of(t, &bs, &vbs, s);
    char path[CFG_PATH_MAX + 32];
    join(path, sizeof path, dir, "checkpoint.bin");
    struct loop_state keep = t->st;
    t->st.wall_s += eg_wall_seconds() - t->session_start; // as of now
    enum eg_status st = ckpt_save(path, config_hash(t->cfg), s, n, err);
    t->st = keep;
    return st;
}

static enum eg_status load_checkpoint(struct trainer *t, const char *dir, struct eg_error *err)
{
    struct batcher_state bs, vbs;
    struct ckpt_section s[NSECTIONS];
    size_t n = sections_of(t, &bs, &vbs, s);
    char path[CFG_PATH_MAX + 32];
    join(path, sizeof path, dir, "checkpoint.bin");
    enum eg_status st = ckpt_load(path, config_hash(t->cfg), s, n, err);
    if (st != EG_OK) return st;
    batcher_restore(&t->batches, &bs);
    if (t->task != TASK_SUPERVISED) batcher_restore(&t->valb, &vbs);
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// the loop

// Mean loss and accuracy of the network on the test set (eval mode), each batch first rotated by
// the angle `back` (radians) unless it is 0.
static void evaluate_at(struct trainer *t, double back, double *acc, double *loss)
{
    size_t bs = t->cfg->eval.batch_size, correct = 0, seen = 0;
    double sum = 0.0;
    t->evalb.pos = t->evalb.n; // start a fresh pass: the eval batcher never shuffles
    for (size_t b = 0; b < batcher_batches_per_epoch(&t->evalb, bs); b++) {
        size_t m = batcher_next(&t->evalb, bs, t->x, t->y);
        const float *in = t->x;
        if (back != 0.0) {
            const struct shape s = t->test.shape;
            rotate_forward(t->x, t->xr, m, s.c, s.h, s.w, back);
            in = t->xr;
        }
        const float *logits = net_forward(t->net, in, m, LAYER_MODE_EVAL);
        sum += xent_forward(logits, t->y, m, t->classes, t->losses);
        correct += xent_correct(logits, t->y, m, t->classes);
        seen += m;
    }
    *acc = (double)correct / (double)seen;
    *loss = sum / (double)seen;
}

static void evaluate(struct trainer *t, double *acc, double *loss)
{
    evaluate_at(t, 0.0, acc, loss);
}

// The metrics.csv columns of the trainer's task.
static const char *const *columns_of(const struct trainer *t, size_t *n)
{
    switch (t->task) {
    case TASK_ROTATION:
        *n = NROTATION;
        return rotation_columns;
    case TASK_MWN:
        *n = NMWN;
        return mwn_columns;
    case TASK_SUPERVISED:
    default:
        *n = NMETRICS;
        return metric_columns;
    }
}

static enum eg_status write_metrics(struct trainer *t, double lr, double test_acc,
                                    double test_loss, struct eg_error *err)
{
    char cells[NCOLUMNS_MAX][40];
    const char *row[NCOLUMNS_MAX];
    size_t ncols;
    columns_of(t, &ncols);
    snprintf(cells[0], sizeof cells[0], "%llu", (unsigned long long)t->st.epoch);
    snprintf(cells[1], sizeof cells[1], "%llu", (unsigned long long)t->st.global_step);
    csv_fmt(cells[2], t->st.wall_s + eg_wall_seconds() - t->session_start);
    csv_fmt(cells[3], t->st.last_train_loss);
    cells[4][0] = '\0'; // val_loss: plain supervised training has no validation set
    if (t->task != TASK_SUPERVISED && !isnan(t->rs.last_val_loss)) {
        csv_fmt(cells[4], t->rs.last_val_loss);
    }
    csv_fmt(cells[5], test_acc);
    csv_fmt(cells[6], test_loss);
    csv_fmt(cells[7], lr);
    csv_fmt(cells[8], eg_peak_rss_mb());
    if (t->task == TASK_ROTATION) {
        csv_fmt(cells[9], (double)t->rs.angle * 180.0 / RUN_PI);
        csv_fmt(cells[10], t->rs.last_acc_back);
    } else if (t->task == TASK_MWN) {
        for (size_t g = 0; g < 2; g++) {
            cells[9 + g][0] = '\0'; // no sample of the group this epoch
            if (!isnan(t->rs.last_w[g])) csv_fmt(cells[9 + g], t->rs.last_w[g]);
        }
    }
    for (size_t i = 0; i < ncols; i++) row[i] = cells[i];
    enum eg_status st = csv_row(t->metrics, row, err);
    if (st == EG_OK) t->st.rows = csv_rows(t->metrics);
    return st;
}

static void report(struct trainer *t, const struct run_options *o, bool epoch_end)
{
    if (o->progress == NULL) return;
    struct run_progress p = {
        .epoch = epoch_end ? t->st.epoch : t->st.epoch + 1,
        .epochs = t->cfg->train.epochs,
        .step = epoch_end ? t->steps_per_epoch : t->st.step,
        .steps_per_epoch = t->steps_per_epoch,
        .global_step = t->st.global_step,
        .elapsed_s = t->st.wall_s + eg_wall_seconds() - t->session_start,
        .train_loss = epoch_end ? t->st.last_train_loss
                                : t->st.loss_sum / (double)(t->st.loss_count ? t->st.loss_count : 1),
        .test_acc = t->st.last_acc,
        .val_acc = NAN,
    };
    o->progress(o->progress_ctx, &p, epoch_end);
}

// Task rotation: one iteration (tasks/rotation.h); returns the batch's mean loss.
static double rotation_train_step(struct trainer *t, float lr)
{
    size_t m = batcher_next(&t->batches, t->cfg->train.batch_size, t->x, t->y);
    size_t mv = 0;
    if (t->hyper != NULL) mv = batcher_next(&t->valb, t->cfg->meta.batch_size, t->xv, t->yv);
    rotation_problem_set_batches(t->rp, t->x, t->y, m, mv ? t->xv : NULL, mv ? t->yv : NULL, mv);
    struct hyper_info info;
    double loss = rotation_step(t->rp, t->opt, lr, t->hyper, t->meta_opt,
                                (float)t->cfg->meta.optimizer.lr, &t->rs.angle,
                                &t->rs.hyper_rng, &info);
    if (t->hyper != NULL && isfinite(info.val_loss)) {
        t->rs.val_sum += info.val_loss;
        t->rs.val_count++;
    }
    t->st.loss_sum += loss * (double)m;
    t->st.loss_count += m;
    if (!isfinite(t->rs.angle)) return NAN;
    return loss;
}

// Task mwn: one iteration (tasks/mwn.h); returns the base step's weighted loss (NaN when the
// weighting network has diverged).
static double mwn_train_step(struct trainer *t, float lr)
{
    const struct run_config *cfg = t->cfg;
    size_t m = batcher_next(&t->batches, cfg->train.batch_size, t->x, t->y);
    size_t mv = 0;
    if (t->hyper != NULL) {
        mv = batcher_next(&t->valb, cfg->meta.batch_size, t->xv, t->yv);
        if (cfg->method.lookahead_lr == 0.0) hyper_set_lookahead_lr(t->hyper, lr); // alpha_t
    }
    mwn_problem_set_batches(t->mp, t->x, t->y, m, mv ? t->xv : NULL, mv ? t->yv : NULL, mv);
    struct mwn_step_info info;
    double loss = mwn_step(t->mp, t->opt, lr, t->hyper, t->meta_opt,
                           (float)cfg->meta.optimizer.lr, t->lambda, cfg->mwn.uniform_weights,
                           &t->rs.hyper_rng, &info);
    if (t->hyper != NULL && isfinite(info.hyper.val_loss)) {
        t->rs.val_sum += info.hyper.val_loss;
        t->rs.val_count++;
    }
    // the batch's dataset indices: the batcher's order just before its position
    const size_t *idx = t->batches.order + (t->batches.pos - m);
    for (size_t i = 0; i < m; i++) {
        size_t g = t->train.labels[idx[i]] != t->train.clean_labels[idx[i]];
        t->rs.w_sum[g] += info.weights[i];
        t->rs.w_count[g]++;
    }
    t->st.loss_sum += info.train_ce * (double)m;
    t->st.loss_count += m;
    for (size_t k = 0; k < t->meta_opt->P; k++) {
        if (!isfinite(t->lambda[k])) return NAN;
    }
    return loss;
}

// One training step on the next batch; returns the batch's mean loss.
static double train_step(struct trainer *t, float lr)
{
    if (t->task == TASK_ROTATION) return rotation_train_step(t, lr);
    if (t->task == TASK_MWN) return mwn_train_step(t, lr);
    size_t m = batcher_next(&t->batches, t->cfg->train.batch_size, t->x, t->y);
    net_zero_grad(t->net);
    const float *logits = net_forward(t->net, t->x, m, LAYER_MODE_TRAIN);
    double sum = xent_forward(logits, t->y, m, t->classes, t->losses);
    xent_backward(logits, t->y, NULL, m, t->classes, t->dlogits);
    net_backward(t->net, t->dlogits, NULL);
    optim_step(t->opt, t->net->params, t->net->grads, lr);
    t->st.loss_sum += sum;
    t->st.loss_count += m;
    return sum / (double)m;
}

static enum eg_status train_loop(struct trainer *t, const struct run_options *o,
                                 struct run_result *res, struct eg_error *err)
{
    const struct run_config *cfg = t->cfg;
    enum eg_status st = EG_OK;
    while (t->st.epoch < cfg->train.epochs) {
        float lr = schedule_lr(&t->sched, (double)t->st.epoch);
        while (t->st.step < t->steps_per_epoch) {
            double t0 = eg_wall_seconds();
            double loss = train_step(t, lr);
            t->st.step_s += eg_wall_seconds() - t0;
            t->st.step++;
            t->st.global_step++;
            if (!isfinite(loss)) {
                return eg_errorf(err, EG_ERR_DIVERGED,
                                 "diverged: the training loss is %s at epoch %llu, step %llu "
                                 "(global step %llu); metrics so far are kept",
                                 isnan(loss) ? "NaN" : loss > 0 ? "+Inf" : "-Inf",
                                 (unsigned long long)t->st.epoch + 1,
                                 (unsigned long long)t->st.step,
                                 (unsigned long long)t->st.global_step);
            }
            report(t, o, false);
            if (o->stop != NULL && *o->stop) {
                res->stopped = true;
                return save_checkpoint(t, o->dir, err);
            }
        }
        // epoch end
        t->st.epoch++;
        t->st.step = 0;
        t->st.last_train_loss = t->st.loss_sum / (double)t->st.loss_count;
        t->st.loss_sum = 0.0;
        t->st.loss_count = 0;
        if (t->task != TASK_SUPERVISED) {
            t->rs.last_val_loss = t->rs.val_count ? t->rs.val_sum / (double)t->rs.val_count : (double)NAN;
            t->rs.val_sum = 0.0;
            t->rs.val_count = 0;
            for (size_t g = 0; g < 2; g++) {
                t->rs.last_w[g] = t->rs.w_count[g] ? t->rs.w_sum[g] / (double)t->rs.w_count[g]
                                                   : (double)NAN;
                t->rs.w_sum[g] = 0.0;
                t->rs.w_count[g] = 0;
            }
        }
        bool eval = t->st.epoch % cfg->eval.every_epochs == 0 || t->st.epoch == cfg->train.epochs;
        double acc = NAN, test_loss = NAN;
        if (eval) {
            evaluate(t, &acc, &test_loss);
            t->st.last_acc = acc;
            if (t->task == TASK_ROTATION) {
                double back_loss;
                evaluate_at(t, -(double)t->rs.angle, &t->rs.last_acc_back, &back_loss);
            }
            if (isnan(t->st.best_acc) || acc > t->st.best_acc) t->st.best_acc = acc;
            st = write_metrics(t, lr, acc, test_loss, err);
            if (st != EG_OK) return st;
        }
        report(t, o, true);
        bool ckpt = cfg->checkpoint.every_epochs > 0 &&
                    t->st.epoch % cfg->checkpoint.every_epochs == 0;
        bool stop = o->stop != NULL && *o->stop;
        if (ckpt || stop) {
            st = save_checkpoint(t, o->dir, err);
            if (st != EG_OK) return st;
        }
        if (stop && t->st.epoch < cfg->train.epochs) {
            res->stopped = true;
            return EG_OK;
        }
    }
    return EG_OK;
}

// Task mwn: split.csv, what the data split and the label noise actually were.
static enum eg_status write_split(struct trainer *t, const char *dir, struct eg_error *err)
{
    static const char *const cols[] = {"train_images", "meta_images",    "test_images",
                                       "noise_type",   "noise_rate",     "noise_realised"};
    char path[CFG_PATH_MAX + 32], cells[6][CFG_STR_MAX];
    join(path, sizeof path, dir, "split.csv");
    snprintf(cells[0], sizeof cells[0], "%zu", t->train.n);
    snprintf(cells[1], sizeof cells[1], "%zu", t->val.n);
    snprintf(cells[2], sizeof cells[2], "%zu", t->test.n);
    snprintf(cells[3], sizeof cells[3], "%s", t->cfg->data.noise.type);
    csv_fmt(cells[4], t->cfg->data.noise.rate);
    csv_fmt(cells[5], t->realised_noise);
    const char *row[6] = {cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]};
    struct csv *f = NULL;
    enum eg_status st = csv_create(path, cols, 6, &f, err);
    if (st != EG_OK) return st;
    st = csv_row(f, row, err);
    if (st == EG_OK) return csv_close(f, err);
    struct eg_error ignored;
    csv_close(f, &ignored);
    return st;
}

// Task mwn: weight_curve.csv, the learned weighting function on a grid of losses, written to a
// temporary file and renamed (a reader never sees half a curve).
static enum eg_status write_weight_curve(struct trainer *t, const char *dir, struct eg_error *err)
{
    static const char *const cols[] = {"loss", "weight"};
    char path[CFG_PATH_MAX + 32], tmp[CFG_PATH_MAX + 48];
    join(path, sizeof path, dir, "weight_curve.csv");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    float c[MWN_CURVE_POINTS];
    double v[MWN_CURVE_POINTS];
    for (size_t i = 0; i < MWN_CURVE_POINTS; i++) {
        c[i] = (float)(MWN_CURVE_MAX * (double)i / (double)(MWN_CURVE_POINTS - 1));
    }
    mwn_vnet_forward(t->lambda, t->cfg->mwn.hidden, c, MWN_CURVE_POINTS, v);
    struct csv *f = NULL;
    enum eg_status st = csv_create(tmp, cols, 2, &f, err);
    if (st != EG_OK) return st;
    for (size_t i = 0; st == EG_OK && i < MWN_CURVE_POINTS; i++) {
        char cells[2][40];
        csv_fmt(cells[0], (double)c[i]);
        csv_fmt(cells[1], v[i]);
        const char *row[2] = {cells[0], cells[1]};
        st = csv_row(f, row, err);
    }
    struct eg_error ignored;
    if (st == EG_OK) {
        st = csv_close(f, err);
    } else {
        csv_close(f, &ignored);
    }
    if (st == EG_OK && rename(tmp, path) != 0) {
        st = eg_errorf(err, EG_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    }
    if (st != EG_OK) remove(tmp);
    return st;
}

enum eg_status run_experiment(const struct run_config *cfg, const struct run_options *opts,
                              struct run_result *res, struct eg_error *err)
{
    if (strcmp(cfg->task, "toy1d") == 0) return toy1d_run(cfg, opts->dir, res, err);
    if (strcmp(cfg->task, "lft") == 0) return lft_run(cfg, opts, res, err);
    *res = (struct run_result){.test_ci95 = NAN};
    struct trainer t;
    enum eg_status st = trainer_init(&t, cfg, err);
    char path[CFG_PATH_MAX + 32];
    join(path, sizeof path, opts->dir, "metrics.csv");
    size_t ncols = 0;
    const char *const *cols = columns_of(&t, &ncols);
    if (st == EG_OK && opts->resume) {
        st = load_checkpoint(&t, opts->dir, err);
        if (st == EG_OK) st = csv_reopen(path, cols, ncols, (size_t)t.st.rows, &t.metrics, err);
    } else if (st == EG_OK) {
        st = csv_create(path, cols, ncols, &t.metrics, err);
        if (st == EG_OK && t.task == TASK_MWN) st = write_split(&t, opts->dir, err);
    }
    t.session_start = eg_wall_seconds();
    if (st == EG_OK) st = train_loop(&t, opts, res, err);
    if (st == EG_OK) {
        st = csv_close(t.metrics, err);
        t.metrics = NULL;
    } // on failure trainer_free closes it: every row written so far is kept
    if (st == EG_OK && !res->stopped && t.task == TASK_MWN && !cfg->mwn.uniform_weights) {
        st = write_weight_curve(&t, opts->dir, err);
    }

    res->epochs_done = (size_t)t.st.epoch;
    res->global_step = (size_t)t.st.global_step;
    res->final_acc = t.st.last_acc;
    res->best_acc = t.st.best_acc;
    res->final_angle_deg = (double)t.rs.angle * 180.0 / RUN_PI;
    res->final_acc_back = t.rs.last_acc_back;
    res->final_train_loss = t.st.last_train_loss;
    res->wall_s = t.st.wall_s + eg_wall_seconds() - t.session_start;
    res->sec_per_step = t.st.global_step ? t.st.step_s / (double)t.st.global_step : 0.0;
    res->sec_per_epoch = res->sec_per_step * (double)t.steps_per_epoch;
    res->peak_rss_mb = eg_peak_rss_mb();
    trainer_free(&t);
    return st;
}
