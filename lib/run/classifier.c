/* classifier.c - the image-classifier base of tasks supervised, rotation and mwn
 * (classifier.h). */
#include "classifier.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "data/source.h"
#include "io/checkpoint.h"
#include "nn/backbones.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "settings.h"

// ---------------------------------------------------------------------------------------------
// checks

enum eg_status classifier_check_no_noise(const struct run_config *cfg, struct eg_error *err)
{
    if (strcmp(cfg->data.noise.type, "none") == 0) return EG_OK;
    return eg_errorf(err, EG_ERR_CONFIG,
                     "data.noise.type: %s: label noise is part of task mwn only (task %s)",
                     cfg->data.noise.type, cfg->task);
}

// What data.dataset's files hold, as far as the config says: the image shape, the class count
// (imagefolder 0: unknown) and the training and test images (imagefolder 0 and 0).
static void data_facts(const struct run_config *cfg, enum data_source src, struct shape *s,
                       size_t *classes, size_t *train, size_t *test)
{
    switch (src) {
    case DATA_SOURCE_MNIST:
    case DATA_SOURCE_FASHION_MNIST:
        *s = (struct shape){1, 28, 28};
        *classes = 10;
        *train = 60000;
        *test = 10000;
        break;
    case DATA_SOURCE_CIFAR10:
    case DATA_SOURCE_CIFAR100:
        *s = (struct shape){3, 32, 32};
        *classes = src == DATA_SOURCE_CIFAR10 ? 10 : 100;
        *train = 50000;
        *test = 10000;
        break;
    default:
        *s = (struct shape){cfg->data.image_c, cfg->data.image_h, cfg->data.image_w};
        *classes = src == DATA_SOURCE_SYNTHETIC ? cfg->data.classes : 0;
        *train = src == DATA_SOURCE_SYNTHETIC ? cfg->data.synthetic_train : 0;
        *test = src == DATA_SOURCE_SYNTHETIC ? cfg->data.synthetic_test : 0;
        break;
    }
}

enum eg_status classifier_check_data(const struct run_config *cfg, struct shape *s,
                                     size_t *classes, struct eg_error *err)
{
    enum data_source src;
    if (!data_source_find(cfg->data.dataset, &src)) {
        return eg_errorf(err, EG_ERR_CONFIG, "data.dataset: unknown dataset '%s'",
                         cfg->data.dataset);
    }
    size_t train, test;
    data_facts(cfg, src, s, classes, &train, &test);
    return EG_OK;
}

enum eg_status classifier_check_model(const struct run_config *cfg, struct shape s, size_t classes,
                                      struct eg_error *err)
{
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
    return run_check_optim(&cfg->train.optimizer, "train.optimizer", err);
}

// ---------------------------------------------------------------------------------------------
// the memory estimate

void classifier_memory_data(const struct run_config *cfg, struct classifier_memory *m,
                            size_t *train, size_t *test)
{
    enum data_source src = DATA_SOURCE_IMAGEFOLDER;
    EG_ASSERT(data_source_find(cfg->data.dataset, &src)); // the task's check has passed
    data_facts(cfg, src, &m->image, &m->classes, train, test);
}

// bs, or the set's size n when that is known and smaller (the batcher's batches never exceed it).
static size_t at_most(size_t bs, size_t n)
{
    return n > 0 && n < bs ? n : bs;
}

// The key that scales the images held: the larger synthetic count, else data.dataset.
static const char *data_key(const struct run_config *cfg, char *buf, size_t cap)
{
    if (strcmp(cfg->data.dataset, "synthetic") == 0) {
        const bool tr = cfg->data.synthetic_train >= cfg->data.synthetic_test;
        snprintf(buf, cap, "%zu", tr ? cfg->data.synthetic_train : cfg->data.synthetic_test);
        return tr ? "data.synthetic_train" : "data.synthetic_test";
    }
    snprintf(buf, cap, "%s", cfg->data.dataset);
    return "data.dataset";
}

void classifier_estimate(const struct run_config *cfg, struct classifier_memory *m,
                         struct memory_estimate *e)
{
    const double f = (double)sizeof(float);
    const size_t classes = m->classes > 0 ? m->classes : 2; // as classifier_check_model
    const bool val = m->val != CLASSIFIER_VAL_NONE;
    const struct hyper_params hp = run_hyper_params(cfg, cfg->train.optimizer.lr);
    const bool meta = val && hp.method != HYPER_NONE; // a validation batch is drawn
    const size_t numel = shape_numel(m->image);
    m->numel = numel;
    char v[MEMORY_VALUE_MAX];

    // The images: a byte per value and two labels each (dataset.h); the batchers' order and
    // index lists (batch.h). The copies made while loading and splitting are freed before the
    // network exists and are not counted.
    const char *key = data_key(cfg, v, sizeof v);
    const double n_all = (double)m->train_n + (double)m->val_n + (double)m->test_n;
    const double per_image = (double)numel + 8.0 + 2.0 * (double)sizeof(size_t);
    memory_add(e, key, "for the images", n_all * per_image, "%s", v);

    // The network from its skeleton: params, grads, stats; the optimiser's state.
    const struct backbone_spec spec = run_backbone_spec(cfg);
    struct net *net = backbone_build(&spec, m->image, classes);
    size_t P = 0, S = 0;
    net_count(net, &P, NULL, &S);
    m->P = P;
    const struct optim_params op = run_optim_params(&cfg->train.optimizer);
    key = run_backbone_key(cfg, v, sizeof v);
    memory_add(e, key, "for the parameters, their gradients and the optimiser's state",
               (2.0 * (double)P + (double)S) * f + optim_state_bytes(&op, P), "%s", v);

    // The method's work space (hyper_new) and the meta optimiser (classifier_meta_init).
    if (val) {
        double per_k = 0.0;
        const double rest = meta ? run_hyper_bytes(&hp, P, m->H, &per_k) : 0.0;
        const struct optim_params mop = run_optim_params(&cfg->meta.optimizer);
        memory_add(e, "method.name", "for the method's work space",
                   rest + optim_state_bytes(&mop, m->H), "%s", cfg->method.name);
        if (per_k > 0.0) {
            memory_add(e, "method.candidates", "for EvoGrad's candidate perturbations", per_k,
                       "%zu", cfg->method.candidates);
        }
    }

    // The net's buffers: it keeps them for the largest batch it has seen, and a backward after a
    // larger (evaluation) batch fills its gradient pool at that size too.
    m->train_batch = at_most(cfg->train.batch_size, m->train_n);
    m->val_batch = meta ? at_most(cfg->meta.batch_size, m->val_n) : 0;
    const size_t eval_batch = at_most(cfg->eval.batch_size, m->test_n);
    size_t nb = m->train_batch, bval = cfg->train.batch_size;
    key = "train.batch_size";
    if (m->val_batch > nb) {
        nb = m->val_batch;
        bval = cfg->meta.batch_size;
        key = "meta.batch_size";
    }
    if (eval_batch > nb) {
        nb = eval_batch;
        bval = cfg->eval.batch_size;
        key = "eval.batch_size";
    }
    memory_add(e, key, "for activations and their gradients", net_batch_bytes(net, nb, m->pass),
               "%zu", bval);
    if (m->tangent) {
        // the tangent buffers are sized for the meta-step's own batch (net.h: tcap)
        const size_t nt = m->val_batch > m->train_batch ? m->val_batch : m->train_batch;
        const bool dx = m->pass == NET_PASS_BACKWARD_DX;
        const double t = net_batch_bytes(net, nt, dx ? NET_PASS_TANGENT_DX : NET_PASS_TANGENT) -
                         net_batch_bytes(net, nt, m->pass);
        memory_add(e, m->val_batch > m->train_batch ? "meta.batch_size" : "train.batch_size",
                   "for the tangents of activations and gradients (exact unrolled)", t, "%zu",
                   m->val_batch > m->train_batch ? cfg->meta.batch_size : cfg->train.batch_size);
    }
    net_free(net);

    // classifier_init's batch buffers x, y, dlogits, losses for the larger of the training and
    // evaluation batch sizes, and the validation batch xv, yv.
    const bool eval_larger = cfg->eval.batch_size > cfg->train.batch_size;
    const size_t bs = eval_larger ? cfg->eval.batch_size : cfg->train.batch_size;
    memory_add(e, eval_larger ? "eval.batch_size" : "train.batch_size", "for the batch buffers",
               (double)bs * (((double)numel + (double)classes + 2.0) * f), "%zu", bs);
    if (val) {
        memory_add(e, "meta.batch_size", "for the validation batch",
                   (double)cfg->meta.batch_size * ((double)numel + 1.0) * f, "%zu",
                   cfg->meta.batch_size);
    }
}

// ---------------------------------------------------------------------------------------------
// set-up

enum eg_status classifier_load(const struct run_config *cfg, struct dataset *train,
                               struct dataset *test, struct eg_error *err)
{
    const struct data_spec spec = run_data_spec(cfg);
    return data_load(&spec, train, test, err);
}

void classifier_cut(const struct run_config *cfg, struct dataset *d)
{
    const size_t n = cfg->data.train_size;
    if (n == 0 || n >= d->n) return;
    size_t *idx = eg_xmalloc_array(n, sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    struct dataset used;
    dataset_subset(d, idx, n, &used);
    free(idx);
    dataset_deinit(d);
    *d = used;
}

enum eg_status classifier_init(struct classifier *c, const struct run_config *cfg,
                               enum classifier_val val, struct rng *init, struct eg_error *err)
{
    c->cfg = cfg;
    c->val_kind = val;
    c->classes = c->train.classes;
    c->st = (struct classifier_stats){
        .best_acc = NAN, .last_acc = NAN, .last_loss = NAN, .last_val_loss = NAN};
    struct backbone_spec spec = run_backbone_spec(cfg);
    const char *why = backbone_check(&spec, c->train.shape, c->classes);
    if (why != NULL) {
        return eg_errorf(err, EG_ERR_CONFIG, "backbone.name: %s: %s", cfg->backbone.name, why);
    }
    c->net = backbone_new(&spec, c->train.shape, c->classes, init);
    struct optim_params op = run_optim_params(&cfg->train.optimizer);
    c->opt = optim_new(&op, c->net->nparams);

    struct augment aug = run_augment(cfg, true), plain = run_augment(cfg, false);
    struct rng s2;
    rng_seed_stream(&s2, cfg->seed, CLASSIFIER_STREAM_BATCHES);
    batcher_init(&c->batches, &c->train, NULL, c->train.n, true, &aug, rng_u64(&s2));
    batcher_init(&c->evalb, &c->test, NULL, c->test.n, false, &plain, 0);
    const size_t numel = shape_numel(c->train.shape);
    if (val != CLASSIFIER_VAL_NONE) {
        const struct augment *vaug = val == CLASSIFIER_VAL_AUGMENTED ? &aug : &plain;
        batcher_init(&c->valb, &c->val, NULL, c->val.n, true, vaug, rng_u64(&s2));
        c->xv = eg_xmalloc_floats(cfg->meta.batch_size * numel);
        c->yv = eg_xmalloc_array(cfg->meta.batch_size, sizeof *c->yv);
        rng_seed_stream(&c->st.hyper_rng, cfg->seed, CLASSIFIER_STREAM_HYPER);
    }
    size_t bs = cfg->train.batch_size > cfg->eval.batch_size ? cfg->train.batch_size
                                                             : cfg->eval.batch_size;
    c->x = eg_xmalloc_floats(bs * numel);
    c->y = eg_xmalloc_array(bs, sizeof *c->y);
    c->dlogits = eg_xmalloc_floats(bs * c->classes);
    c->losses = eg_xmalloc_floats(bs);
    c->steps_per_epoch = batcher_batches_per_epoch(&c->batches, cfg->train.batch_size);
    return EG_OK;
}

void classifier_meta_init(struct classifier *c, size_t H)
{
    EG_ASSERT(c->net != NULL && c->val_kind != CLASSIFIER_VAL_NONE);
    const struct run_config *cfg = c->cfg;
    struct hyper_params hp = run_hyper_params(cfg, cfg->train.optimizer.lr);
    if (hp.method != HYPER_NONE) c->hyper = hyper_new(&hp, c->net->nparams, H);
    struct optim_params mop = run_optim_params(&cfg->meta.optimizer);
    c->meta_opt = optim_new(&mop, H);
}

void classifier_deinit(struct classifier *c)
{
    if (c->batches.order != NULL) batcher_deinit(&c->batches);
    if (c->evalb.order != NULL) batcher_deinit(&c->evalb);
    if (c->valb.order != NULL) batcher_deinit(&c->valb);
    hyper_free(c->hyper);
    optim_free(c->meta_opt);
    optim_free(c->opt);
    net_free(c->net);
    dataset_deinit(&c->train);
    dataset_deinit(&c->val);
    dataset_deinit(&c->test);
    free(c->xv);
    free(c->yv);
    free(c->x);
    free(c->y);
    free(c->dlogits);
    free(c->losses);
    *c = (struct classifier){0};
}

// ---------------------------------------------------------------------------------------------
// one iteration

size_t classifier_next(struct classifier *c)
{
    return batcher_next(&c->batches, c->cfg->train.batch_size, c->x, c->y);
}

size_t classifier_next_val(struct classifier *c)
{
    if (c->hyper == NULL) return 0;
    return batcher_next(&c->valb, c->cfg->meta.batch_size, c->xv, c->yv);
}

struct meta_step classifier_meta_step(struct classifier *c)
{
    return (struct meta_step){.hyper = c->hyper,
                              .opt = c->meta_opt,
                              .lr = (float)c->cfg->meta.optimizer.lr,
                              .rng = &c->st.hyper_rng};
}

void classifier_add_val(struct classifier *c, const struct hyper_info *info)
{
    if (c->hyper == NULL || !isfinite(info->val_loss)) return;
    c->st.val_sum += info->val_loss;
    c->st.val_count++;
}

// ---------------------------------------------------------------------------------------------
// evaluation

enum eg_status classifier_evaluate(struct classifier *c, classifier_input_fn fn, void *ctx,
                                   const struct task_clock *clk, double *acc, double *loss)
{
    size_t bs = c->cfg->eval.batch_size, correct = 0, seen = 0;
    double sum = 0.0;
    c->evalb.pos = c->evalb.n; // start a fresh pass: the eval batcher never shuffles
    for (size_t b = 0; b < batcher_batches_per_epoch(&c->evalb, bs); b++) {
        if (task_stop_requested(clk)) return EG_STOPPED;
        size_t m = batcher_next(&c->evalb, bs, c->x, c->y);
        const float *in = fn != NULL ? fn(ctx, c->x, m) : c->x;
        const float *logits = net_forward(c->net, in, m, LAYER_MODE_EVAL);
        sum += xent_forward(logits, c->y, m, c->classes, c->losses);
        correct += xent_correct(logits, c->y, m, c->classes);
        seen += m;
    }
    *acc = (double)correct / (double)seen;
    *loss = sum / (double)seen;
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// task_ops members

size_t classifier_task_steps(const void *state)
{
    const struct classifier *c = state;
    return c->steps_per_epoch;
}

enum eg_status classifier_task_epoch_end(void *state, const struct task_clock *clk,
                                         struct eg_error *err)
{
    (void)err;
    struct classifier *c = state;
    struct classifier_stats *st = &c->st;
    st->last_val_loss = st->val_count ? st->val_sum / (double)st->val_count : (double)NAN;
    st->val_sum = 0.0;
    st->val_count = 0;
    if (!clk->eval) return EG_OK;
    enum eg_status s = classifier_evaluate(c, NULL, NULL, clk, &st->last_acc, &st->last_loss);
    if (s != EG_OK) return s;
    if (isnan(st->best_acc) || st->last_acc > st->best_acc) st->best_acc = st->last_acc;
    return EG_OK;
}

void classifier_task_row(const void *state, const struct task_clock *clk, struct metrics_row *r)
{
    (void)clk;
    const struct classifier *c = state;
    metrics_set(r, "val_loss", c->st.last_val_loss);
    metrics_set(r, "test_acc", c->st.last_acc);
    metrics_set(r, "test_loss", c->st.last_loss);
}

void classifier_task_sections(void *state, struct ckpt_list *l)
{
    struct classifier *c = state;
    ckpt_add(l, "", "classifier", &c->st, sizeof c->st);
    ckpt_add(l, "", "params", c->net->params, c->net->nparams * sizeof(float));
    ckpt_add(l, "", "stats", c->net->stats, c->net->nstats * sizeof(float));
    optim_sections(c->opt, "optim_", l);
    batcher_sections(&c->batches, "batch_", l);
    if (c->val_kind != CLASSIFIER_VAL_NONE) {
        optim_sections(c->meta_opt, "meta_optim_", l);
        batcher_sections(&c->valb, "val_", l);
    }
}

void classifier_task_summary(const void *state, struct task_summary *s)
{
    const struct classifier *c = state;
    s->test_acc = c->st.last_acc;
    s->best_acc = c->st.best_acc;
    snprintf(s->result, sizeof s->result, "final test accuracy %.4f (best %.4f)", c->st.last_acc,
             c->st.best_acc);
}

struct hyper *classifier_task_hyper(void *state)
{
    return ((struct classifier *)state)->hyper;
}
