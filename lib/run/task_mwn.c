/* task_mwn.c - task mwn (task_mwn.h). */
#include "task_mwn.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "io/checkpoint.h"
#include "core/alloc.h"
#include "data/noise.h"
#include "data/source.h"
#include "io/csv.h"
#include "nn/optim.h"
#include "settings.h"
#include "tasks/mwn.h"

// The task's resumable state: one checkpoint section, plain data.
struct mwn_stats {
    double w_sum[2];     // epoch in progress: sums of the weights of clean [0] and corrupted [1]
    uint64_t w_count[2]; //   training samples, and their counts
    double last_w[2];    // the last finished epoch's means (NaN: no such sample)
};

struct mwn_task {
    struct classifier c; // first: the classifier_task_* members take the state as one
    struct mwn_problem *mp;
    float *lambda;         // (H) the weighting network's parameters
    size_t H;
    double realised_noise; // the fraction of training labels actually corrupted
    struct mwn_stats ws;
};

static enum noise_kind noise_kind_of(const struct run_config *cfg)
{
    enum noise_kind k = NOISE_KIND_NONE;
    bool known = noise_kind_find(cfg->data.noise.type, &k);
    EG_ASSERT(known); // the config's enum lists the same names
    return k;
}

// The checks of the mwn keys; classes 0 when the dataset's class count is not known yet (the
// data-dependent ones come again once the data is loaded).
static enum eg_status check_keys(const struct run_config *cfg, size_t classes,
                                 struct eg_error *err)
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

void task_mwn_memory(const struct run_config *cfg, struct memory_estimate *e)
{
    const size_t H = mwn_vnet_size(cfg->mwn.hidden);
    // the exact unrolled method's meta-step runs the net's tangent passes (a second set of
    // activation and gradient buffers)
    const bool exact = run_uses_tangents(cfg);
    struct classifier_memory m = {
        .val = CLASSIFIER_VAL_AUGMENTED, .H = H, .pass = NET_PASS_BACKWARD, .tangent = exact};
    size_t ntr, nte;
    classifier_memory_data(cfg, &m, &ntr, &nte);
    // load_data: the training file cut to data.train_size, split into the meta set and the rest
    size_t used =
        cfg->data.train_size > 0 && cfg->data.train_size < ntr ? cfg->data.train_size : ntr;
    if (used > cfg->data.meta_size) {
        m.val_n = cfg->data.meta_size;
        m.train_n = used - cfg->data.meta_size;
    }
    m.test_n = nte;
    classifier_estimate(cfg, &m, e);

    const double f = (double)sizeof(float), d = (double)sizeof(double);
    const size_t classes = m.classes > 0 ? m.classes : 2;
    char v[MEMORY_VALUE_MAX];
    const char *key = run_backbone_key(cfg, v, sizeof v);
    memory_add(e, key, "for the meta-problem's copy of the parameters", (double)m.P * f, "%s", v);
    memory_add(e, "mwn.hidden", "for the weighting network", 2.0 * (double)H * f, "%zu",
               cfg->mwn.hidden); // lambda and the problem's hypergradient
    // the per-sample buffers (mwn_problem_set_batches, net_batches_set) for the larger batch
    const bool val_larger = m.val_batch > m.train_batch;
    const size_t cap = val_larger ? m.val_batch : m.train_batch;
    memory_add(e, val_larger ? "meta.batch_size" : "train.batch_size", "for the per-sample weights",
               (double)cap * (f + 3.0 * d + (2.0 + (double)classes) * f), "%zu",
               val_larger ? cfg->meta.batch_size : cfg->train.batch_size);
    if (exact) { // tdv, tlosses and tdlogits (train_loss_tangent)
        memory_add(e, val_larger ? "meta.batch_size" : "train.batch_size",
                   "for the tangents of the per-sample losses",
                   (double)cap * (d + (1.0 + (double)classes) * f), "%zu",
                   val_larger ? cfg->meta.batch_size : cfg->train.batch_size);
    }
}

static enum eg_status mwn_check(const struct run_config *cfg, struct eg_error *err)
{
    enum eg_status st = run_check_optim(&cfg->meta.optimizer, "meta.optimizer", err);
    struct shape s;
    size_t classes;
    if (st == EG_OK) st = classifier_check_data(cfg, &s, &classes, err);
    if (st == EG_OK) st = check_keys(cfg, classes, err);
    if (st == EG_OK) st = classifier_check_model(cfg, s, classes, err);
    if (st != EG_OK) return st;
    struct memory_estimate e = {0};
    task_mwn_memory(cfg, &e);
    return memory_check(&e, err);
}

static void mwn_free(void *state)
{
    struct mwn_task *t = state;
    if (t == NULL) return;
    classifier_deinit(&t->c);
    mwn_problem_free(t->mp);
    free(t->lambda);
    free(t);
}

// The clean meta set (c.val) and the noisy training set (c.train), paper-spec 3.4 and 6.7.
static enum eg_status load_data(struct mwn_task *t, const struct run_config *cfg,
                                struct eg_error *err)
{
    struct dataset used;
    enum eg_status st = classifier_load(cfg, &used, &t->c.test, err);
    if (st != EG_OK) return st;
    classifier_cut(cfg, &used);
    const size_t C = used.classes;
    st = check_keys(cfg, C, err);
    if (st == EG_OK && cfg->data.meta_size >= used.n) {
        st = eg_errorf(err, EG_ERR_CONFIG,
                       "data.meta_size: %zu leaves no training images (%s has %zu training "
                       "images%s)",
                       cfg->data.meta_size, cfg->data.dataset, used.n,
                       cfg->data.train_size > 0 ? " with data.train_size" : "");
    }
    if (st == EG_OK) {
        struct rng split, flips, noise;
        rng_seed_stream(&split, cfg->data.split_seed, 1);
        rng_seed_stream(&flips, cfg->data.split_seed, 2);
        rng_seed_stream(&noise, cfg->seed, CLASSIFIER_STREAM_NOISE);
        double *Cm = eg_xmalloc_array(C * C, sizeof *Cm);
        noise_matrix(noise_kind_of(cfg), cfg->data.noise.rate, C, &flips, Cm);
        st = data_noisy_split(&used, cfg->data.meta_size, Cm, &split, &noise, &t->c.val,
                              &t->c.train, &t->realised_noise, err);
        free(Cm);
    }
    dataset_deinit(&used);
    return st;
}

static enum eg_status mwn_init(const struct run_config *cfg, void **state, struct eg_error *err)
{
    struct mwn_task *t = eg_xcalloc(1, sizeof *t);
    *state = NULL;
    struct rng init;
    rng_seed_stream(&init, cfg->seed, CLASSIFIER_STREAM_INIT);
    enum eg_status st = load_data(t, cfg, err);
    if (st == EG_OK) st = classifier_init(&t->c, cfg, CLASSIFIER_VAL_AUGMENTED, &init, err);
    if (st != EG_OK) {
        mwn_free(t);
        return st;
    }
    t->mp = mwn_problem_new(t->c.net, cfg->mwn.hidden);
    t->H = t->mp->mp.H;
    t->lambda = eg_xmalloc_floats(t->H);
    mwn_vnet_init(t->lambda, cfg->mwn.hidden, &init); // after the network, as PyTorch
    classifier_meta_init(&t->c, t->H);
    t->ws.last_w[0] = t->ws.last_w[1] = NAN;
    *state = t;
    return EG_OK;
}

static struct task_step mwn_task_step(void *state, const struct task_clock *clk)
{
    struct mwn_task *t = state;
    struct classifier *c = &t->c;
    const struct run_config *cfg = c->cfg;
    size_t m = classifier_next(c), mv = classifier_next_val(c);
    if (c->hyper != NULL && cfg->method.lookahead_lr == 0.0) {
        hyper_set_lookahead_lr(c->hyper, clk->lr); // alpha_t
    }
    mwn_problem_set_batches(t->mp, c->x, c->y, m, mv ? c->xv : NULL, mv ? c->yv : NULL, mv);
    const struct meta_step ms = classifier_meta_step(c);
    struct mwn_step_info info;
    double loss = mwn_step(t->mp, c->opt, clk->lr, &ms, cfg->mwn.uniform_weights ? NULL : t->lambda,
                           &info);
    classifier_add_val(c, &info.hyper);
    // the batch's dataset indices: the batcher's order just before its position
    const size_t *idx = c->batches.order + (c->batches.pos - m);
    for (size_t i = 0; i < m; i++) {
        size_t g = c->train.labels[idx[i]] != c->train.clean_labels[idx[i]];
        t->ws.w_sum[g] += info.weights[i];
        t->ws.w_count[g]++;
    }
    struct task_step s = {info.train_ce * (double)m, m, task_loss_diverged(loss)};
    for (size_t k = 0; k < t->H; k++) {
        if (!isfinite(t->lambda[k])) {
            s.diverged = "the weighting network's parameters are not finite";
            break;
        }
    }
    return s;
}

static enum eg_status mwn_epoch_end(void *state, const struct task_clock *clk,
                                    struct eg_error *err)
{
    struct mwn_task *t = state;
    for (size_t g = 0; g < 2; g++) {
        const uint64_t n = t->ws.w_count[g];
        t->ws.last_w[g] = n ? t->ws.w_sum[g] / (double)n : (double)NAN;
        t->ws.w_sum[g] = 0.0;
        t->ws.w_count[g] = 0;
    }
    return classifier_task_epoch_end(state, clk, err);
}

static void mwn_row(const void *state, const struct task_clock *clk, struct metrics_row *r)
{
    const struct mwn_task *t = state;
    classifier_task_row(state, clk, r);
    metrics_set(r, "w_clean", t->ws.last_w[0]);
    metrics_set(r, "w_noisy", t->ws.last_w[1]);
}

static void mwn_sections(void *state, struct ckpt_list *l)
{
    struct mwn_task *t = state;
    classifier_task_sections(state, l);
    ckpt_add(l, "", "mwn", &t->ws, sizeof t->ws);
    ckpt_add(l, "", "vnet", t->lambda, t->H * sizeof(float));
}

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    int len = snprintf(out, cap, "%s/%s", dir, name);
    EG_ASSERT(len > 0 && (size_t)len < cap); // the runner keeps dir under PATH_MAX - 64
}

// split.csv: what the data split and the label noise actually were.
static enum eg_status write_split(void *state, const char *dir, struct eg_error *err)
{
    const struct mwn_task *t = state;
    static const char *const cols[] = {"train_images", "meta_images",    "test_images",
                                       "noise_type",   "noise_rate",     "noise_realised"};
    char path[PATH_MAX + 32], cells[6][CFG_STR_MAX];
    join(path, sizeof path, dir, "split.csv");
    snprintf(cells[0], sizeof cells[0], "%zu", t->c.train.n);
    snprintf(cells[1], sizeof cells[1], "%zu", t->c.val.n);
    snprintf(cells[2], sizeof cells[2], "%zu", t->c.test.n);
    snprintf(cells[3], sizeof cells[3], "%s", t->c.cfg->data.noise.type);
    csv_fmt(cells[4], t->c.cfg->data.noise.rate);
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

// weight_curve.csv: the learned weighting function on a grid of losses, written to a temporary
// file and renamed (a reader never sees half a curve). Nothing with uniform weights.
static enum eg_status write_weight_curve(void *state, const char *dir, struct eg_error *err)
{
    const struct mwn_task *t = state;
    if (t->c.cfg->mwn.uniform_weights) return EG_OK;
    static const char *const cols[] = {"loss", "weight"};
    char path[PATH_MAX + 32], tmp[PATH_MAX + 48];
    join(path, sizeof path, dir, "weight_curve.csv");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    float c[MWN_CURVE_POINTS];
    double v[MWN_CURVE_POINTS];
    for (size_t i = 0; i < MWN_CURVE_POINTS; i++) {
        c[i] = (float)(MWN_CURVE_MAX * (double)i / (double)(MWN_CURVE_POINTS - 1));
    }
    mwn_vnet_forward(t->lambda, t->c.cfg->mwn.hidden, c, MWN_CURVE_POINTS, v);
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

static const char *const mwn_columns[] = {CLASSIFIER_COLUMNS, "w_clean", "w_noisy"};

const struct task_ops task_mwn = {
    .name = "mwn",
    .about = "label noise with Meta-Weight-Net: a network that weights each sample's loss",
    .learns = true,
    .check = mwn_check,
    .describe = task_describe_default,
    .init = mwn_init,
    .free = mwn_free,
    .steps_per_epoch = classifier_task_steps,
    .columns = mwn_columns,
    .ncolumns = sizeof mwn_columns / sizeof mwn_columns[0],
    .start = write_split,
    .step = mwn_task_step,
    .epoch_end = mwn_epoch_end,
    .row = mwn_row,
    .sections = mwn_sections,
    .finish = write_weight_curve,
    .summary = classifier_task_summary,
    .hyper = classifier_task_hyper,
};
