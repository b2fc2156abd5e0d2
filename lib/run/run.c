/* run.c - the one training loop (run.h).
 *
 * The loop knows tasks only through their ops. Per epoch: the schedule's learning rate, the
 * task's steps (each timed; the stop flag and divergence checked after each), the epoch's mean
 * training loss, the task's epoch end, a metrics row when the epoch is evaluated (every
 * eval.every_epochs and the last), progress, and a checkpoint every checkpoint.every_epochs
 * epochs or on a stop request. A checkpoint is the loop's own section ("loop": counters, times,
 * the epoch's loss sums) followed by the task's sections; resuming loads both into place (the
 * loop's counters checked against the config), reopens metrics.csv at the rows written and
 * continues as if never stopped. A stop request that arrives during an evaluation interrupts it
 * (task.h): the sections are put back as they were after the epoch's last step and checkpointed
 * there. Divergence: a step's non-finite loss or hyperparameter (the task says), or an epoch's
 * mean training loss above train.diverge_factor times that of the run's first step. */
#include "run.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "io/checkpoint.h"
#include "io/csv.h"
#include "meta/hyper.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "settings.h"

// The loop's resumable state: one checkpoint section, plain data.
struct loop_state {
    uint64_t epoch;       // epochs completed
    uint64_t step;        // steps done in the epoch in progress
    uint64_t global_step;
    uint64_t rows;        // metrics rows written
    double wall_s;        // wall seconds of earlier sessions
    double step_s;        // seconds spent in training steps, all sessions
    double loss_sum;      // epoch in progress: the steps' loss sums
    uint64_t loss_count;  //   and counts
    double last_train_loss; // the last finished epoch's mean
    double ref_sum;       // the run's first step (the untrained model): its loss sum and count,
    uint64_t ref_count;   //   the reference of the blow-up rule (train.diverge_factor)
    uint64_t diag_rows;   // hypergrad_diag.csv rows written (diagnostics.every_steps)
    double diag_cos_sum;  // their cosines' sum and count (rows with a defined cosine)
    uint64_t diag_cos_n;
};

struct loop {
    const struct run_config *cfg;
    const struct task_ops *ops;
    void *task;
    struct schedule sched;
    size_t steps_per_epoch;
    struct csv *metrics;
    struct csv *diag;      // hypergrad_diag.csv, or NULL without diagnostics
    struct hyper *hyper;   // the task's method, when diagnosed
    struct loop_state st;
    double session_start;
    uint64_t session_first_step; // global step at which this invocation started
    struct ckpt_list snap_list;  // the sections as of the last evaluated epoch's last step,
    unsigned char *snap;         //   their bytes (snap_cap allocated; see snapshot_take)
    size_t snap_cap;
};

// ---------------------------------------------------------------------------------------------
// checks

// The compute settings of cfg: threads and the convolution backend (before any net is built).
static void apply_compute(const struct run_config *cfg)
{
    enum conv2d_backend b;
    EG_ASSERT(conv2d_backend_find(cfg->conv_backend, &b)); // the config's choices are the names
    conv2d_set_backend(b);
    conv2d_set_threads((int)cfg->threads);
}

// diagnostics.* against the method and the task.
static enum eg_status check_diagnostics(const struct task_ops *ops, const struct run_config *cfg,
                                        struct eg_error *err)
{
    const size_t every = cfg->diagnostics.every_steps, draws = cfg->diagnostics.draws;
    if (draws > 0 && every == 0) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "diagnostics.draws: %zu needs diagnostics.every_steps > 0 (it is 0: "
                         "diagnostics off)",
                         draws);
    }
    if (every == 0) return EG_OK;
    if (ops->hyper == NULL) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "diagnostics.every_steps: task %s has no meta-steps to diagnose", cfg->task);
    }
    if (strcmp(cfg->method.name, "none") == 0) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "diagnostics.every_steps: compares a method's hypergradient with the exact "
                         "one; method.name is none");
    }
    if (draws > 0 && strcmp(cfg->method.name, "evograd") != 0) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "diagnostics.draws: averages EvoGrad draws; method.name is %s",
                         cfg->method.name);
    }
    return EG_OK;
}

enum eg_status run_check(const struct run_config *cfg, struct eg_error *err)
{
    const struct task_ops *ops = task_find(cfg->task);
    EG_ASSERT(ops != NULL); // the config's `task` choices are the registry's names
    apply_compute(cfg);
    if (!ops->learns && strcmp(cfg->method.name, "none") != 0) {
        char names[256] = "";
        for (size_t i = 0; i < task_count(); i++) {
            if (!task_at(i)->learns) continue;
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
                     task_at(i)->name);
        }
        return eg_errorf(err, EG_ERR_CONFIG,
                         "method.name: %s needs a task with hyperparameters (%s); task %s trains "
                         "with method none",
                         cfg->method.name, names, cfg->task);
    }
    enum eg_status st = check_diagnostics(ops, cfg, err);
    if (st != EG_OK) return st;
    return ops->check(cfg, err);
}

void run_describe(const struct run_config *cfg, char *buf, size_t cap)
{
    const struct task_ops *ops = task_find(cfg->task);
    EG_ASSERT(ops != NULL);
    ops->describe(cfg, buf, cap);
}

// ---------------------------------------------------------------------------------------------
// checkpoints

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    int len = snprintf(out, cap, "%s/%s", dir, name);
    EG_ASSERT(len > 0 && (size_t)len < cap); // the runner keeps dir under PATH_MAX - 64
}

// A loaded loop state must be a point this config's run can be at.
static bool state_valid(const void *data, const void *ctx, char *why, size_t cap)
{
    const struct loop *lp = ctx;
    struct loop_state st;
    memcpy(&st, data, sizeof st);
    const uint64_t epochs = lp->cfg->train.epochs, spe = lp->steps_per_epoch;
    if (st.epoch > epochs) {
        snprintf(why, cap, "epoch %llu of a run of train.epochs=%llu", (unsigned long long)st.epoch,
                 (unsigned long long)epochs);
    } else if (st.step > spe || (st.epoch == epochs && st.step != 0)) {
        snprintf(why, cap, "step %llu of epoch %llu, which has %llu steps",
                 (unsigned long long)st.step, (unsigned long long)st.epoch + 1,
                 (unsigned long long)spe);
    } else if (st.global_step != st.epoch * spe + st.step) {
        snprintf(why, cap, "global step %llu at epoch %llu, step %llu (%llu steps an epoch)",
                 (unsigned long long)st.global_step, (unsigned long long)st.epoch,
                 (unsigned long long)st.step, (unsigned long long)spe);
    } else if (st.diag_rows > st.global_step || st.diag_cos_n > st.diag_rows) {
        snprintf(why, cap, "%llu diagnostics rows after %llu steps",
                 (unsigned long long)st.diag_rows, (unsigned long long)st.global_step);
    } else if (st.rows > st.epoch) {
        snprintf(why, cap, "%llu metrics rows after %llu epochs", (unsigned long long)st.rows,
                 (unsigned long long)st.epoch);
    } else if (!(st.wall_s >= 0.0 && st.step_s >= 0.0 && isfinite(st.wall_s + st.step_s))) {
        snprintf(why, cap, "times %g s and %g s", st.wall_s, st.step_s);
    } else {
        return true;
    }
    return false;
}

static void sections_of(struct loop *lp, struct ckpt_list *l)
{
    l->n = 0;
    ckpt_add_checked(l, "", "loop", &lp->st, sizeof lp->st, state_valid, lp);
    lp->ops->sections(lp->task, l);
}

// The bytes of every section (lp->snap, kept from epoch to epoch), to put back when an epoch's
// end is interrupted.
static void snapshot_take(struct loop *lp)
{
    struct ckpt_list *l = &lp->snap_list;
    sections_of(lp, l);
    size_t total = 0;
    for (size_t i = 0; i < l->n; i++) total += l->s[i].bytes;
    if (total > lp->snap_cap) {
        lp->snap = eg_xrealloc(lp->snap, total);
        lp->snap_cap = total;
    }
    for (size_t i = 0, off = 0; i < l->n; off += l->s[i].bytes, i++) {
        if (l->s[i].bytes > 0) memcpy(lp->snap + off, l->s[i].data, l->s[i].bytes);
    }
}

static void snapshot_restore(const struct loop *lp)
{
    const struct ckpt_list *l = &lp->snap_list;
    for (size_t i = 0, off = 0; i < l->n; off += l->s[i].bytes, i++) {
        if (l->s[i].bytes > 0) memcpy(l->s[i].data, lp->snap + off, l->s[i].bytes);
    }
}

static enum eg_status save_checkpoint(struct loop *lp, const char *dir, struct eg_error *err)
{
    struct ckpt_list l;
    sections_of(lp, &l);
    char path[PATH_MAX + 32];
    join(path, sizeof path, dir, "checkpoint.bin");
    struct loop_state keep = lp->st;
    lp->st.wall_s += eg_wall_seconds() - lp->session_start; // as of now
    enum eg_status st = ckpt_save(path, config_hash(lp->cfg), l.s, l.n, err);
    lp->st = keep;
    return st;
}

static enum eg_status load_checkpoint(struct loop *lp, const char *dir, struct eg_error *err)
{
    struct ckpt_list l;
    sections_of(lp, &l);
    char path[PATH_MAX + 32];
    join(path, sizeof path, dir, "checkpoint.bin");
    return ckpt_load(path, config_hash(lp->cfg), l.s, l.n, err);
}

// ---------------------------------------------------------------------------------------------
// the loop

static double elapsed(const struct loop *lp)
{
    return lp->st.wall_s + eg_wall_seconds() - lp->session_start;
}

// The row of an evaluated epoch: the task's cells, then the loop's (every task lists epoch,
// step, wall_s, train_loss, lr and peak_rss_mb).
static enum eg_status write_row(struct loop *lp, const struct task_clock *c, struct eg_error *err)
{
    struct metrics_row r = {.columns = lp->ops->columns, .n = lp->ops->ncolumns};
    lp->ops->row(lp->task, c, &r);
    char count[32];
    snprintf(count, sizeof count, "%llu", (unsigned long long)lp->st.epoch);
    metrics_set_text(&r, "epoch", count);
    snprintf(count, sizeof count, "%llu", (unsigned long long)lp->st.global_step);
    metrics_set_text(&r, "step", count);
    metrics_set(&r, "wall_s", elapsed(lp));
    metrics_set(&r, "train_loss", lp->st.last_train_loss);
    metrics_set(&r, "lr", (double)c->lr);
    metrics_set(&r, "peak_rss_mb", eg_peak_rss_mb());
    const char *row[METRICS_MAX_COLUMNS];
    for (size_t i = 0; i < r.n; i++) row[i] = r.cells[i];
    enum eg_status st = csv_row(lp->metrics, row, err);
    if (st == EG_OK) lp->st.rows = csv_rows(lp->metrics);
    return st;
}

// hypergrad_diag.csv's columns (run.h).
static const char *const diag_columns[] = {
    "step",       "epoch",      "method",     "candidates", "method_norm", "exact_norm",
    "cosine",     "norm_ratio", "sign_agree", "draws",      "draws_cosine", "extra_s",
};
#define NDIAG (sizeof diag_columns / sizeof diag_columns[0])

// The row of the step just taken, when its diagnostics were requested (the method computed
// them in that step's hyper_grad; a step without a meta-step has none).
static enum eg_status write_diag(struct loop *lp, struct eg_error *err)
{
    struct hyper_diag d;
    if (!hyper_diag_take(lp->hyper, &d)) return EG_OK;
    const struct run_config *cfg = lp->cfg;
    char cells[NDIAG][40];
    const char *row[NDIAG];
    row[2] = cfg->method.name;
    snprintf(cells[0], sizeof cells[0], "%llu", (unsigned long long)lp->st.global_step);
    snprintf(cells[1], sizeof cells[1], "%llu", (unsigned long long)lp->st.epoch + 1);
    snprintf(cells[3], sizeof cells[3], "%zu", cfg->method.candidates);
    const double nums[] = {d.method_norm, d.exact_norm, d.cosine, d.norm_ratio, d.sign_agree};
    for (size_t k = 0; k < 5; k++) csv_fmt(cells[4 + k], nums[k]);
    snprintf(cells[9], sizeof cells[9], "%zu", cfg->diagnostics.draws);
    csv_fmt(cells[10], d.draws_cosine);
    csv_fmt(cells[11], d.seconds);
    for (size_t k = 0; k < NDIAG; k++) {
        if (k != 2) row[k] = cells[k];
    }
    enum eg_status st = csv_row(lp->diag, row, err);
    if (st != EG_OK) return st;
    lp->st.diag_rows = csv_rows(lp->diag);
    lp->st.step_s -= d.seconds; // sec_per_step is the method's own
    if (isfinite(d.cosine)) {
        lp->st.diag_cos_sum += d.cosine;
        lp->st.diag_cos_n++;
    }
    return EG_OK;
}

static void report(struct loop *lp, const struct run_options *o, bool epoch_end)
{
    if (o->progress == NULL) return;
    struct task_summary s;
    task_summary_init(&s, lp->cfg);
    lp->ops->summary(lp->task, &s);
    const struct loop_state *st = &lp->st;
    struct run_progress p = {
        .epoch = epoch_end ? st->epoch : st->epoch + 1,
        .epochs = lp->cfg->train.epochs,
        .step = epoch_end ? lp->steps_per_epoch : st->step,
        .steps_per_epoch = lp->steps_per_epoch,
        .global_step = st->global_step,
        .session_steps = st->global_step - lp->session_first_step,
        .elapsed_s = elapsed(lp),
        .train_loss = epoch_end ? st->last_train_loss
                                : st->loss_sum / (double)(st->loss_count ? st->loss_count : 1),
        .test_acc = s.test_acc,
        .val_acc = s.val_acc,
    };
    o->progress(o->progress_ctx, &p, epoch_end);
}

// The blow-up rule: the epoch's mean training loss against train.diverge_factor times the mean
// loss of the run's first step, taken before any update (off when the factor is 0 or that loss
// is not positive). One step, not more: a rate that blows up does so within a few steps, and a
// reference taken over them would hide it.
static enum eg_status check_blowup(const struct loop *lp, struct eg_error *err)
{
    const struct loop_state *st = &lp->st;
    const double factor = lp->cfg->train.diverge_factor;
    if (factor <= 0.0 || st->ref_count == 0) return EG_OK;
    const double ref = st->ref_sum / (double)st->ref_count;
    if (!(ref > 0.0) || !(st->last_train_loss > factor * ref)) return EG_OK;
    return eg_errorf(err, EG_ERR_DIVERGED,
                     "diverged: epoch %llu's mean training loss %.6g is more than "
                     "train.diverge_factor (%g) times the loss of the first step (%.6g); "
                     "metrics so far are kept (train.diverge_factor=0 turns this rule off)",
                     (unsigned long long)st->epoch, st->last_train_loss, factor, ref);
}

// The epoch's end, after its last step: the means, the task's epoch end, the metrics row and the
// blow-up rule. An evaluated epoch's end can be long: when the task reports a stop request
// (EG_STOPPED), every section is put back as it was after the last step and *stopped is set,
// so the checkpoint the caller writes repeats the whole epoch end on resume.
static enum eg_status end_epoch(struct loop *lp, struct task_clock *c, bool *stopped,
                                struct eg_error *err)
{
    const struct run_config *cfg = lp->cfg;
    struct loop_state *st = &lp->st;
    const uint64_t done = st->epoch + 1;
    c->epoch = done;
    c->last = done == cfg->train.epochs;
    c->eval = done % cfg->eval.every_epochs == 0 || c->last;
    if (c->eval) snapshot_take(lp);
    st->epoch = done;
    st->step = 0;
    st->last_train_loss = st->loss_sum / (double)st->loss_count;
    st->loss_sum = 0.0;
    st->loss_count = 0;
    enum eg_status s = lp->ops->epoch_end(lp->task, c, err);
    if (s == EG_STOPPED) {
        EG_ASSERT(c->eval); // only evaluations poll the stop request (task.h)
        snapshot_restore(lp);
        *stopped = true;
        s = EG_OK;
    } else if (s == EG_OK && c->eval) {
        s = write_row(lp, c, err);
    }
    if (s == EG_OK && !*stopped) s = check_blowup(lp, err);
    return s;
}

static enum eg_status train_loop(struct loop *lp, const struct run_options *o,
                                 struct run_result *res, struct eg_error *err)
{
    const struct run_config *cfg = lp->cfg;
    struct loop_state *st = &lp->st;
    while (st->epoch < cfg->train.epochs) {
        struct task_clock c = {
            .epoch = st->epoch,
            .epochs = cfg->train.epochs,
            .lr = schedule_lr(&lp->sched, (double)st->epoch),
            .stop = o->stop,
        };
        while (st->step < lp->steps_per_epoch) {
            if (lp->diag != NULL && (st->global_step + 1) % cfg->diagnostics.every_steps == 0) {
                hyper_diag_request(lp->hyper);
            }
            double t0 = eg_wall_seconds();
            struct task_step s = lp->ops->step(lp->task, &c);
            st->step_s += eg_wall_seconds() - t0;
            if (st->global_step == 0) {
                st->ref_sum += s.loss_sum;
                st->ref_count += s.count;
            }
            st->step++;
            st->global_step++;
            st->loss_sum += s.loss_sum;
            st->loss_count += s.count;
            if (lp->diag != NULL) {
                enum eg_status ds = write_diag(lp, err);
                if (ds != EG_OK) return ds;
            }
            if (s.diverged != NULL) {
                return eg_errorf(err, EG_ERR_DIVERGED,
                                 "diverged: %s at epoch %llu, step %llu (global step %llu); "
                                 "metrics so far are kept",
                                 s.diverged, (unsigned long long)st->epoch + 1,
                                 (unsigned long long)st->step,
                                 (unsigned long long)st->global_step);
            }
            report(lp, o, false);
            if (o->stop != NULL && *o->stop) {
                res->stopped = true;
                return save_checkpoint(lp, o->dir, err);
            }
        }
        bool interrupted = false;
        enum eg_status s = end_epoch(lp, &c, &interrupted, err);
        if (s != EG_OK) return s;
        if (interrupted) {
            res->stopped = true;
            return save_checkpoint(lp, o->dir, err);
        }
        report(lp, o, true);
        bool ckpt = cfg->checkpoint.every_epochs > 0 &&
                    st->epoch % cfg->checkpoint.every_epochs == 0;
        bool stop = o->stop != NULL && *o->stop;
        if (ckpt || stop) {
            s = save_checkpoint(lp, o->dir, err);
            if (s != EG_OK) return s;
        }
        if (stop && !c.last) {
            res->stopped = true;
            return EG_OK;
        }
    }
    return EG_OK;
}

// Opens metrics.csv: a fresh file (after the task's start files), or, resuming, the checkpoint
// loaded and the file reopened at the rows it had then.
static enum eg_status open_run(struct loop *lp, const struct run_options *opts,
                               struct eg_error *err)
{
    char path[PATH_MAX + 32];
    join(path, sizeof path, opts->dir, "metrics.csv");
    const char *const *cols = lp->ops->columns;
    char dpath[PATH_MAX + 32];
    join(dpath, sizeof dpath, opts->dir, "hypergrad_diag.csv");
    const bool diag = lp->cfg->diagnostics.every_steps > 0;
    if (diag) {
        lp->hyper = lp->ops->hyper(lp->task);
        EG_ASSERT(lp->hyper != NULL); // run_check: a method other than none
    }
    if (opts->resume) {
        enum eg_status st = load_checkpoint(lp, opts->dir, err);
        if (st != EG_OK) return st;
        st = csv_reopen(path, cols, lp->ops->ncolumns, (size_t)lp->st.rows, &lp->metrics, err);
        if (st == EG_OK && diag) {
            st = csv_reopen(dpath, diag_columns, NDIAG, (size_t)lp->st.diag_rows, &lp->diag, err);
        }
        return st;
    }
    if (lp->ops->start != NULL) {
        enum eg_status st = lp->ops->start(lp->task, opts->dir, err);
        if (st != EG_OK) return st;
    }
    enum eg_status st = csv_create(path, cols, lp->ops->ncolumns, &lp->metrics, err);
    if (st == EG_OK && diag) st = csv_create(dpath, diag_columns, NDIAG, &lp->diag, err);
    return st;
}

static enum eg_status run_whole(const struct task_ops *ops, const struct run_config *cfg,
                                const struct run_options *opts, struct run_result *res,
                                struct eg_error *err)
{
    double t0 = eg_wall_seconds();
    res->started = true;
    enum eg_status st = ops->run_whole(cfg, opts->dir, &res->task, err);
    res->wall_s = eg_wall_seconds() - t0;
    res->peak_rss_mb = eg_peak_rss_mb();
    return st;
}

enum eg_status run_experiment(const struct run_config *cfg, const struct run_options *opts,
                              struct run_result *res, struct eg_error *err)
{
    const struct task_ops *ops = task_find(cfg->task);
    EG_ASSERT(ops != NULL);
    return run_task(ops, cfg, opts, res, err);
}

// The members the loop calls (task.h): a whole-run task has run_whole, an epoch-based one the
// rest.
static bool ops_complete(const struct task_ops *o)
{
    if (o->check == NULL || o->describe == NULL) return false;
    if (o->run_whole != NULL) return true;
    return o->init != NULL && o->free != NULL && o->steps_per_epoch != NULL &&
           o->columns != NULL && o->ncolumns <= METRICS_MAX_COLUMNS && o->step != NULL &&
           o->epoch_end != NULL && o->row != NULL && o->sections != NULL && o->summary != NULL;
}

enum eg_status run_task(const struct task_ops *ops, const struct run_config *cfg,
                        const struct run_options *opts, struct run_result *res,
                        struct eg_error *err)
{
    EG_ASSERT(ops != NULL && ops_complete(ops));
    *res = (struct run_result){
        .final_train_loss = NAN, .sec_per_step = NAN, .sec_per_epoch = NAN};
    task_summary_init(&res->task, cfg);
    apply_compute(cfg);
    if (ops->run_whole != NULL) return run_whole(ops, cfg, opts, res, err);

    struct loop lp = {.cfg = cfg, .ops = ops, .sched = run_schedule(cfg)};
    lp.st.last_train_loss = NAN;
    enum eg_status st = ops->init(cfg, &lp.task, err);
    if (st == EG_OK) {
        lp.steps_per_epoch = ops->steps_per_epoch(lp.task);
        st = open_run(&lp, opts, err);
    }
    lp.session_start = eg_wall_seconds();
    lp.session_first_step = lp.st.global_step;
    res->started = st == EG_OK;
    if (st == EG_OK) st = train_loop(&lp, opts, res, err);
    struct eg_error ignored;
    if (st == EG_OK) {
        st = csv_close(lp.metrics, err);
        if (lp.diag != NULL) {
            enum eg_status ds = csv_close(lp.diag, st == EG_OK ? err : &ignored);
            if (st == EG_OK) st = ds;
        }
    } else {
        csv_close(lp.metrics, &ignored); // every row written so far is kept
        if (lp.diag != NULL) csv_close(lp.diag, &ignored);
    }
    if (st == EG_OK && !res->stopped && ops->finish != NULL) {
        st = ops->finish(lp.task, opts->dir, err);
    }

    res->epochs_done = (size_t)lp.st.epoch;
    res->global_step = (size_t)lp.st.global_step;
    res->final_train_loss = lp.st.last_train_loss;
    res->wall_s = elapsed(&lp);
    res->sec_per_step = lp.st.global_step ? lp.st.step_s / (double)lp.st.global_step : 0.0;
    res->sec_per_epoch = res->sec_per_step * (double)lp.steps_per_epoch;
    res->peak_rss_mb = eg_peak_rss_mb();
    if (lp.task != NULL) ops->summary(lp.task, &res->task);
    if (lp.st.diag_cos_n > 0) res->task.diag_cosine = lp.st.diag_cos_sum / (double)lp.st.diag_cos_n;
    ops->free(lp.task);
    free(lp.snap);
    return st;
}
