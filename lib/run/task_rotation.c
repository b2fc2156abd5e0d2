/* task_rotation.c - task rotation (task_rotation.h). */
#include "task_rotation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "io/checkpoint.h"
#include "core/alloc.h"
#include "data/source.h"
#include "nn/net.h"
#include "nn/rotate.h"
#include "settings.h"
#include "tasks/rotation.h"

// pi (M_PI is not declared under strict C11 + POSIX).
static const double PI = 3.14159265358979323846;

// The task's resumable state: one checkpoint section, plain data.
struct rotation_stats {
    float angle;          // the learned angle, radians
    float pad_;
    double last_acc_back; // the latest test accuracy rotated back by -angle
};

struct rotation_task {
    struct classifier c; // first: the classifier_task_* members take the state as one
    struct rotation_problem *rp;
    struct rotation_stats rs;
    float *xr;           // (eval.batch_size, image) a test batch rotated back
    double back;         // the angle of the rotation in progress (rotate_back)
};

static size_t smaller(size_t a, size_t b)
{
    return a < b ? a : b;
}

void task_rotation_memory(const struct run_config *cfg, struct memory_estimate *e)
{
    const bool meta = strcmp(cfg->method.name, "none") != 0;
    const bool exact = run_uses_tangents(cfg);
    // the angle's gradient comes through dL/dx (rotation_train_loss with a meta-step); the exact
    // unrolled method's mixed product through its tangent (the net's tangent passes)
    struct classifier_memory m = {.val = CLASSIFIER_VAL_PLAIN,
                                  .H = 1,
                                  .pass = meta ? NET_PASS_BACKWARD_DX : NET_PASS_BACKWARD,
                                  .tangent = exact};
    size_t ntr, nte;
    classifier_memory_data(cfg, &m, &ntr, &nte);
    if (ntr > 0) { // data_rotation_split's ranges of the training file, then classifier_cut
        m.train_n = smaller(cfg->rotation.train_end, ntr);
        if (cfg->data.train_size > 0) m.train_n = smaller(m.train_n, cfg->data.train_size);
        m.val_n = smaller(cfg->rotation.val_end, ntr) - smaller(cfg->rotation.val_begin, ntr);
    }
    m.test_n = nte;
    classifier_estimate(cfg, &m, e);

    const double f = (double)sizeof(float), numel = (double)m.numel;
    const size_t classes = m.classes > 0 ? m.classes : 2;
    char v[MEMORY_VALUE_MAX];
    const char *key = run_backbone_key(cfg, v, sizeof v);
    memory_add(e, key, "for the meta-problem's copy of the parameters", (double)m.P * f, "%s", v);
    // the problem's rotated batch, its gradient and the gradient's tangent, and the cross-entropy
    // buffers (with their tangents for the exact method), for the larger of the two batches
    // (net_batches_set)
    const bool val_larger = m.val_batch > m.train_batch;
    const size_t cap = val_larger ? m.val_batch : m.train_batch;
    memory_add(e, val_larger ? "meta.batch_size" : "train.batch_size", "for the rotated batches",
               (double)cap *
                   (3.0 * numel + 2.0 + (double)classes + (exact ? 1.0 + (double)classes : 0.0)) *
                   f,
               "%zu",
               val_larger ? cfg->meta.batch_size : cfg->train.batch_size);
    memory_add(e, "eval.batch_size", "for the test batch rotated back",
               (double)cfg->eval.batch_size * numel * f, "%zu", cfg->eval.batch_size);
}

static enum eg_status rotation_check(const struct run_config *cfg, struct eg_error *err)
{
    enum eg_status st = classifier_check_no_noise(cfg, err);
    if (st == EG_OK) st = run_check_optim(&cfg->meta.optimizer, "meta.optimizer", err);
    if (st != EG_OK) return st;
    const size_t te = cfg->rotation.train_end, vb = cfg->rotation.val_begin,
                 ve = cfg->rotation.val_end;
    if (!(te <= vb && vb < ve)) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "rotation: need train_end <= val_begin < val_end, got %zu, %zu, %zu", te,
                         vb, ve);
    }
    struct shape s;
    size_t classes;
    st = classifier_check_data(cfg, &s, &classes, err);
    if (st == EG_OK) st = classifier_check_model(cfg, s, classes, err);
    if (st != EG_OK) return st;
    struct memory_estimate e = {0};
    task_rotation_memory(cfg, &e);
    return memory_check(&e, err);
}

static void rotation_free(void *state)
{
    struct rotation_task *t = state;
    if (t == NULL) return;
    classifier_deinit(&t->c);
    rotation_problem_free(t->rp);
    free(t->xr);
    free(t);
}

// The training, rotated validation and rotated test sets.
static enum eg_status load_data(struct rotation_task *t, const struct run_config *cfg,
                                struct eg_error *err)
{
    struct dataset all, test_in;
    enum eg_status st = classifier_load(cfg, &all, &test_in, err);
    if (st != EG_OK) return st;
    const struct rotation_ranges r = {
        .train_end = cfg->rotation.train_end,
        .val_begin = cfg->rotation.val_begin,
        .val_end = cfg->rotation.val_end,
        .degrees = cfg->rotation.degrees,
    };
    st = data_rotation_split(&all, &test_in, &r, &t->c.train, &t->c.val, &t->c.test, err);
    dataset_deinit(&all);
    dataset_deinit(&test_in);
    if (st == EG_OK) classifier_cut(cfg, &t->c.train);
    return st;
}

static enum eg_status rotation_init(const struct run_config *cfg, void **state,
                                    struct eg_error *err)
{
    struct rotation_task *t = eg_xcalloc(1, sizeof *t);
    *state = NULL;
    struct rng init;
    rng_seed_stream(&init, cfg->seed, CLASSIFIER_STREAM_INIT);
    enum eg_status st = load_data(t, cfg, err);
    if (st == EG_OK) st = classifier_init(&t->c, cfg, CLASSIFIER_VAL_PLAIN, &init, err);
    if (st != EG_OK) {
        rotation_free(t);
        return st;
    }
    t->rp = rotation_problem_new(t->c.net);
    t->rs.angle = (float)(cfg->rotation.init_deg * PI / 180.0);
    t->rs.last_acc_back = NAN;
    classifier_meta_init(&t->c, 1);
    t->xr = eg_xmalloc_floats(cfg->eval.batch_size * shape_numel(t->c.test.shape));
    *state = t;
    return EG_OK;
}

static struct task_step rotation_task_step(void *state, const struct task_clock *clk)
{
    struct rotation_task *t = state;
    struct classifier *c = &t->c;
    size_t m = classifier_next(c), mv = classifier_next_val(c);
    rotation_problem_set_batches(t->rp, c->x, c->y, m, mv ? c->xv : NULL, mv ? c->yv : NULL, mv);
    const struct meta_step ms = classifier_meta_step(c);
    struct hyper_info info;
    double loss = rotation_step(t->rp, c->opt, clk->lr, &ms, &t->rs.angle, &info);
    classifier_add_val(c, &info);
    struct task_step s = {loss * (double)m, m, task_loss_diverged(loss)};
    if (!isfinite(t->rs.angle)) s.diverged = "the learned angle is not finite";
    return s;
}

// classifier_input_fn: the test batch rotated by t->back.
static const float *rotate_back(void *ctx, const float *x, size_t m)
{
    struct rotation_task *t = ctx;
    const struct shape s = t->c.test.shape;
    rotate_forward(x, t->xr, m, s.c, s.h, s.w, t->back);
    return t->xr;
}

static enum eg_status rotation_epoch_end(void *state, const struct task_clock *clk,
                                         struct eg_error *err)
{
    struct rotation_task *t = state;
    enum eg_status st = classifier_task_epoch_end(state, clk, err);
    if (st != EG_OK || !clk->eval) return st;
    double back_loss;
    t->back = -(double)t->rs.angle;
    // an angle of exactly 0 (method none from 0 degrees) rotates nothing
    return classifier_evaluate(&t->c, t->back != 0.0 ? rotate_back : NULL, t, clk,
                               &t->rs.last_acc_back, &back_loss);
}

static void rotation_row(const void *state, const struct task_clock *clk, struct metrics_row *r)
{
    const struct rotation_task *t = state;
    classifier_task_row(state, clk, r);
    metrics_set(r, "angle_deg", (double)t->rs.angle * 180.0 / PI);
    metrics_set(r, "test_acc_back", t->rs.last_acc_back);
}

static void rotation_sections(void *state, struct ckpt_list *l)
{
    struct rotation_task *t = state;
    classifier_task_sections(state, l);
    ckpt_add(l, "", "rotation", &t->rs, sizeof t->rs);
}

static void rotation_summary(const void *state, struct task_summary *s)
{
    const struct rotation_task *t = state;
    classifier_task_summary(state, s);
    s->angle_deg = (double)t->rs.angle * 180.0 / PI;
    s->acc_back = t->rs.last_acc_back;
}

static const char *const rotation_columns[] = {CLASSIFIER_COLUMNS, "angle_deg", "test_acc_back"};

const struct task_ops task_rotation = {
    .name = "rotation",
    .about = "a learned rotation of the training images (the paper's rotation experiment)",
    .learns = true,
    .check = rotation_check,
    .describe = task_describe_default,
    .init = rotation_init,
    .free = rotation_free,
    .steps_per_epoch = classifier_task_steps,
    .columns = rotation_columns,
    .ncolumns = sizeof rotation_columns / sizeof rotation_columns[0],
    .step = rotation_task_step,
    .epoch_end = rotation_epoch_end,
    .row = rotation_row,
    .sections = rotation_sections,
    .summary = rotation_summary,
    .hyper = classifier_task_hyper,
};
