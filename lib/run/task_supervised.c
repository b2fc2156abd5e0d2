/* task_supervised.c - task supervised (task_supervised.h). */
#include "task_supervised.h"

#include <stdlib.h>

#include "classifier.h"
#include "core/alloc.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"

struct supervised {
    struct classifier c; // first: the classifier_task_* members take the state as one
};

void task_supervised_memory(const struct run_config *cfg, struct memory_estimate *e)
{
    struct classifier_memory m = {.val = CLASSIFIER_VAL_NONE, .pass = NET_PASS_BACKWARD};
    size_t ntr, nte;
    classifier_memory_data(cfg, &m, &ntr, &nte);
    // classifier_cut keeps the first data.train_size images
    m.train_n = cfg->data.train_size > 0 && cfg->data.train_size < ntr ? cfg->data.train_size : ntr;
    m.test_n = nte;
    classifier_estimate(cfg, &m, e);
}

static enum eg_status supervised_check(const struct run_config *cfg, struct eg_error *err)
{
    enum eg_status st = classifier_check_no_noise(cfg, err);
    struct shape s;
    size_t classes;
    if (st == EG_OK) st = classifier_check_data(cfg, &s, &classes, err);
    if (st == EG_OK) st = classifier_check_model(cfg, s, classes, err);
    if (st != EG_OK) return st;
    struct memory_estimate e = {0};
    task_supervised_memory(cfg, &e);
    return memory_check(&e, err);
}

static void supervised_free(void *state)
{
    struct supervised *t = state;
    if (t == NULL) return;
    classifier_deinit(&t->c);
    free(t);
}

static enum eg_status supervised_init(const struct run_config *cfg, void **state,
                                      struct eg_error *err)
{
    struct supervised *t = eg_xcalloc(1, sizeof *t);
    *state = NULL;
    enum eg_status st = classifier_load(cfg, &t->c.train, &t->c.test, err);
    if (st == EG_OK) {
        classifier_cut(cfg, &t->c.train);
        struct rng init;
        rng_seed_stream(&init, cfg->seed, CLASSIFIER_STREAM_INIT);
        st = classifier_init(&t->c, cfg, CLASSIFIER_VAL_NONE, &init, err);
    }
    if (st != EG_OK) {
        supervised_free(t);
        return st;
    }
    *state = t;
    return EG_OK;
}

static struct task_step supervised_step(void *state, const struct task_clock *clk)
{
    struct classifier *c = &((struct supervised *)state)->c;
    size_t m = classifier_next(c);
    net_zero_grad(c->net);
    const float *logits = net_forward(c->net, c->x, m, LAYER_MODE_TRAIN);
    double sum = xent_forward(logits, c->y, m, c->classes, c->losses);
    xent_backward(logits, c->y, NULL, m, c->classes, c->dlogits);
    net_backward(c->net, c->dlogits, NULL);
    optim_step(c->opt, c->net->params, c->net->grads, clk->lr);
    return (struct task_step){sum, m, task_loss_diverged(sum / (double)m)};
}

static const char *const supervised_columns[] = {CLASSIFIER_COLUMNS};

const struct task_ops task_supervised = {
    .name = "supervised",
    .about = "plain training of a backbone on a dataset (method none)",
    .learns = false,
    .check = supervised_check,
    .describe = task_describe_default,
    .init = supervised_init,
    .free = supervised_free,
    .steps_per_epoch = classifier_task_steps,
    .columns = supervised_columns,
    .ncolumns = sizeof supervised_columns / sizeof supervised_columns[0],
    .step = supervised_step,
    .epoch_end = classifier_task_epoch_end,
    .row = classifier_task_row,
    .sections = classifier_task_sections,
    .summary = classifier_task_summary,
};
