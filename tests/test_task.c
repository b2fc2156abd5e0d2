/* test_task.c - the task interface (lib/run/task.h) and the one training loop (lib/run/run.h):
 *   1. the registry: every config `task` choice has its ops and every registered task is a
 *      choice; each task fills the contract (required members, the loop's columns, distinct
 *      column names);
 *   2. the helpers: metrics cells, the divergence text, run_check's method rule;
 *   3. the loop, driven through run_task by a small task of this file (no data, no network):
 *      epochs and steps, which epochs get rows and what the loop writes in them, start and finish
 *      files, the clock the task sees, stops followed by resumes equal to an uninterrupted run,
 *      divergence, a checkpoint from another config, and a failing init;
 *   4. the tasks' evaluations and the stop request: with the clock's stop flag set, epoch_end of
 *      an evaluated epoch returns EG_STOPPED before evaluating anything; with it clear, the
 *      numbers of a clock without one.
 * Files live in the shared temporary folder (helpers.h: e2e_setup / e2e_teardown). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "data/episode.h"
#include "helpers.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "run/classifier.h"
#include "run/run.h"
#include "run/task.h"
#include "tasks/relation.h"

// ---------------------------------------------------------------------------------------------
// 1. the registry

// The `task` line of the plain-text reference: its choices, comma-separated, into buf.
static void config_task_choices(char *buf, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert(f != NULL);
    config_write_reference(f, false);
    cr_assert(fclose(f) == 0);
    buf[0] = '\0';
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "task ", 5) != 0) continue;
        char *choices = strstr(line, "supervised, ");
        cr_assert(choices != NULL, "no choices on the task line: %s", line);
        snprintf(buf, cap, "%s", choices);
    }
    free(text);
    cr_assert(buf[0] != '\0', "the reference has no task line");
}

Test(registry, lists_exactly_the_config_task_choices_in_order)
{
    char choices[512], names[512] = "";
    config_task_choices(choices, sizeof choices);
    for (size_t i = 0; i < task_count(); i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", task_at(i)->name);
        cr_assert(task_find(task_at(i)->name) == task_at(i));
    }
    cr_assert(strcmp(choices, names) == 0, "config: %s; registry: %s", choices, names);
    cr_assert(task_find("rotaton") == NULL);
}

static bool lists(const struct task_ops *t, const char *column)
{
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (strcmp(t->columns[i], column) == 0) return true;
    }
    return false;
}

Test(registry, every_task_fills_the_contract)
{
    static const char *const loop_columns[] = {"epoch", "step", "wall_s", "train_loss", "lr",
                                               "peak_rss_mb"};
    for (size_t i = 0; i < task_count(); i++) {
        const struct task_ops *t = task_at(i);
        cr_assert(t->name != NULL && t->about != NULL && t->check != NULL && t->describe != NULL,
                  "%s", t->name);
        if (t->run_whole != NULL) {
            cr_assert(t->init == NULL && t->step == NULL && t->columns == NULL, "%s", t->name);
            continue;
        }
        cr_assert(t->init && t->free && t->steps_per_epoch && t->step && t->epoch_end && t->row &&
                      t->sections && t->summary && t->columns,
                  "%s lacks a member the loop calls", t->name);
        cr_assert(t->ncolumns <= METRICS_MAX_COLUMNS, "%s", t->name);
        for (size_t k = 0; k < sizeof loop_columns / sizeof loop_columns[0]; k++) {
            cr_assert(lists(t, loop_columns[k]), "%s lacks column %s", t->name, loop_columns[k]);
        }
        for (size_t a = 0; a < t->ncolumns; a++) {
            for (size_t b = a + 1; b < t->ncolumns; b++) {
                cr_assert(strcmp(t->columns[a], t->columns[b]) != 0, "%s: column %s twice",
                          t->name, t->columns[a]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. the helpers

Test(task_helpers, metrics_cells_are_9_digit_numbers_text_or_empty_for_nan)
{
    static const char *const cols[] = {"a", "b", "c"};
    struct metrics_row r = {.columns = cols, .n = 3};
    metrics_set(&r, "a", 0.1f);
    metrics_set(&r, "b", NAN);
    metrics_set_text(&r, "c", "fmnist-edges");
    cr_assert(strcmp(r.cells[0], "0.100000001") == 0, "%s", r.cells[0]);
    cr_assert(strcmp(r.cells[1], "") == 0);
    cr_assert(strcmp(r.cells[2], "fmnist-edges") == 0);
    metrics_set(&r, "b", INFINITY);
    cr_assert(strcmp(r.cells[1], "inf") == 0, "%s", r.cells[1]);
}

Test(task_helpers, setting_a_column_the_task_does_not_list_is_a_bug, .signal = SIGABRT)
{
    static const char *const cols[] = {"a"};
    struct metrics_row r = {.columns = cols, .n = 1};
    metrics_set(&r, "b", 1.0);
}

Test(task_helpers, divergence_text_names_the_value)
{
    cr_assert(task_loss_diverged(1.5) == NULL);
    cr_assert(strcmp(task_loss_diverged(NAN), "the training loss is NaN") == 0);
    cr_assert(strcmp(task_loss_diverged(INFINITY), "the training loss is +Inf") == 0);
    cr_assert(strcmp(task_loss_diverged(-INFINITY), "the training loss is -Inf") == 0);
}

TestSuite(run_check, .init = e2e_setup, .fini = e2e_teardown);

static void load(struct run_config *cfg, const char *text, const char *const *ov, size_t nov)
{
    e2e_write("c.yaml", text);
    struct eg_error err;
    cr_assert(config_load(e2e_path("c.yaml"), ov, nov, cfg, &err) == EG_OK, "%s", err.msg);
}

Test(run_check, a_method_on_a_task_without_hyperparameters_names_the_tasks_that_have_them)
{
    struct run_config cfg;
    load(&cfg, "task: supervised\nmethod: {name: evograd}\n", NULL, 0);
    struct eg_error err;
    cr_assert(run_check(&cfg, &err) == EG_ERR_CONFIG);
    cr_assert(strstr(err.msg, "method.name: evograd needs a task with hyperparameters (toy1d, "
                              "rotation, mwn, lft); task supervised trains with method none") !=
                  NULL,
              "%s", err.msg);
    char what[256];
    run_describe(&cfg, what, sizeof what);
    cr_assert(strcmp(what, "supervised on fashion_mnist, lenet, method evograd, seed 1") == 0,
              "%s", what);
}

// ---------------------------------------------------------------------------------------------
// 3. the loop, with a task of its own

// What the test task does, set by each test before run_task (tests run in their own processes).
static size_t fake_spe = 3;              // steps per epoch
static uint64_t fake_diverge_at = 0;     // the global step that reports divergence (0: never)
static bool fake_init_fails = false;
static uint64_t fake_interrupt_epoch = 0; // a stop request arrives during this epoch's
                                          // evaluation, after it changed the state (0: never)
static double fake_loss_scale = 1.0;      // steps after the first 6 have their loss times this

struct fake_stats {     // resumable
    uint64_t steps;     // steps taken
    double x;           // a value every step changes (depends on the whole history)
    double last_x;      // x at the last epoch end
    uint64_t clock_bad; // steps whose clock disagreed with the steps taken
};

struct fake {
    size_t spe;
    struct fake_stats st;
};

static enum eg_status fake_check(const struct run_config *cfg, struct eg_error *err)
{
    (void)cfg;
    (void)err;
    return EG_OK;
}

static void fake_describe(const struct run_config *cfg, char *buf, size_t cap)
{
    (void)cfg;
    snprintf(buf, cap, "fake");
}

static enum eg_status fake_init(const struct run_config *cfg, void **state, struct eg_error *err)
{
    (void)cfg;
    *state = NULL;
    if (fake_init_fails) return eg_errorf(err, EG_ERR_IO, "fake: cannot read its data");
    struct fake *f = eg_xcalloc(1, sizeof *f);
    f->spe = fake_spe;
    f->st.x = 1.0;
    f->st.last_x = NAN;
    *state = f;
    return EG_OK;
}

static void fake_free(void *state)
{
    free(state);
}

static size_t fake_steps(const void *state)
{
    return ((const struct fake *)state)->spe;
}

static struct task_step fake_step(void *state, const struct task_clock *c)
{
    struct fake *f = state;
    // the clock: the epoch in progress, 0-based, and the schedule's rate (constant 0.5)
    if (c->epoch != f->st.steps / f->spe || c->lr != 0.5f) f->st.clock_bad++;
    f->st.steps++;
    f->st.x = 0.5 * f->st.x + (double)f->st.steps;
    double scale = f->st.steps > 6 ? fake_loss_scale : 1.0;
    struct task_step s = {.loss_sum = 2.0 * (double)f->st.steps * scale, .count = 2};
    if (f->st.steps == fake_diverge_at) s.diverged = "the fake value is NaN";
    return s;
}

static enum eg_status fake_epoch_end(void *state, const struct task_clock *c, struct eg_error *err)
{
    (void)err;
    struct fake *f = state;
    if (c->epoch * f->spe != f->st.steps) f->st.clock_bad++;
    f->st.last_x = f->st.x;
    if (c->eval && c->epoch == fake_interrupt_epoch) {
        f->st.x += 1000.0; // half-way through: the loop must undo this
        f->st.clock_bad += 100;
        *(volatile sig_atomic_t *)c->stop = SIGTERM; // as the signal handler would
        fake_interrupt_epoch = 0;                    // once: the resumed run evaluates in full
    }
    if (task_stop_requested(c) && c->eval) return EG_STOPPED;
    return EG_OK;
}

static void fake_row(const void *state, const struct task_clock *c, struct metrics_row *r)
{
    const struct fake *f = state;
    metrics_set(r, "x", f->st.last_x);
    metrics_set(r, "last", c->last ? 1.0 : 0.0);
    metrics_set(r, "clock_bad", (double)f->st.clock_bad);
}

static void fake_sections(void *state, struct ckpt_list *l)
{
    struct fake *f = state;
    ckpt_add(l, "", "fake", &f->st, sizeof f->st);
}

static enum eg_status touch(const char *dir, const char *name, struct eg_error *err)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "a");
    if (f == NULL) return eg_errorf(err, EG_ERR_IO, "%s: cannot write", path);
    fputs("x\n", f);
    fclose(f);
    return EG_OK;
}

static enum eg_status fake_start(void *state, const char *dir, struct eg_error *err)
{
    (void)state;
    return touch(dir, "start.txt", err);
}

static enum eg_status fake_finish(void *state, const char *dir, struct eg_error *err)
{
    (void)state;
    return touch(dir, "finish.txt", err);
}

static void fake_summary(const void *state, struct task_summary *s)
{
    const struct fake *f = state;
    s->test_acc = f->st.last_x;
    snprintf(s->result, sizeof s->result, "x %g", f->st.last_x);
}

static const char *const fake_columns[] = {"epoch", "x",    "step", "wall_s",    "train_loss",
                                           "lr",    "last", "peak_rss_mb", "clock_bad"};

static const struct task_ops fake_ops = {
    .name = "fake",
    .about = "a test task",
    .learns = false,
    .check = fake_check,
    .describe = fake_describe,
    .init = fake_init,
    .free = fake_free,
    .steps_per_epoch = fake_steps,
    .columns = fake_columns,
    .ncolumns = sizeof fake_columns / sizeof fake_columns[0],
    .start = fake_start,
    .step = fake_step,
    .epoch_end = fake_epoch_end,
    .row = fake_row,
    .sections = fake_sections,
    .finish = fake_finish,
    .summary = fake_summary,
};

static const char *const fake_config =
    "task: supervised\ntrain: {epochs: 4, optimizer: {name: sgd, lr: 0.5}}\n"
    "eval: {every_epochs: 3}\ncheckpoint: {every_epochs: 1}\nthreads: 1\n";

// Stops the run (as a signal would) once the global step reaches stop_at.
struct stopper {
    volatile sig_atomic_t flag;
    size_t stop_at;
};

static void on_progress(void *ctx, const struct run_progress *p, bool epoch_end)
{
    struct stopper *s = ctx;
    if (!epoch_end && s->stop_at > 0 && p->global_step >= s->stop_at) s->flag = 1;
}

static enum eg_status run_fake(const struct run_config *cfg, const char *dir, bool resume,
                               size_t stop_at, struct run_result *res, struct eg_error *err)
{
    struct stopper s = {.flag = 0, .stop_at = stop_at};
    const struct run_options o = {
        .dir = dir, .resume = resume, .stop = &s.flag, .progress = on_progress, .progress_ctx = &s};
    return run_task(&fake_ops, cfg, &o, res, err);
}

TestSuite(loop, .init = e2e_setup, .fini = e2e_teardown);

Test(loop, runs_every_step_writes_rows_of_evaluated_epochs_and_the_files_once)
{
    struct run_config cfg;
    load(&cfg, fake_config, NULL, 0);
    struct run_result res;
    struct eg_error err;
    cr_assert(run_fake(&cfg, e2e_dir, false, 0, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.stopped == false && res.epochs_done == 4 && res.global_step == 12);
    char *m = e2e_read("metrics.csv");
    cr_assert(m != NULL);
    const char *head = "epoch,x,step,wall_s,train_loss,lr,last,peak_rss_mb,clock_bad\n";
    cr_assert(strncmp(m, head, strlen(head)) == 0, "%s", m);
    cr_assert(eq(sz, csv_data_rows(m), 2)); // epochs 3 (every 3) and 4 (the last)
    // x after 9 and 12 steps of x = x/2 + k from 1
    double x = 1.0, x9 = 0.0;
    for (int k = 1; k <= 12; k++) {
        x = 0.5 * x + k;
        if (k == 9) x9 = x;
    }
    // train_loss: the epoch's sum of 2k over its steps, over 2 per step: the mean step index;
    // clock_bad: steps and epoch ends whose clock disagreed with the steps taken
    const double want[2][9] = {{3, x9, 9, NAN, 8.0, 0.5, 0, NAN, 0},
                               {4, x, 12, NAN, 11.0, 0.5, 1, NAN, 0}};
    for (size_t r = 0; r < 2; r++) {
        for (size_t c = 0; c < 9; c++) {
            if (c == 3 || c == 7) continue; // wall_s, peak_rss_mb
            double got = csv_cell(m, r + 1, c);
            cr_assert(epsilon_eq(dbl, got, want[r][c], 1e-7 * fabs(want[r][c]) + 1e-12),
                      "row %zu col %zu: %g, want %g", r + 1, c, got, want[r][c]);
        }
        cr_assert(csv_cell(m, r + 1, 3) >= 0.0 && csv_cell(m, r + 1, 7) > 0.0);
    }
    cr_assert(epsilon_eq(dbl, res.final_train_loss, 11.0, 1e-12));
    cr_assert(epsilon_eq(dbl, res.task.test_acc, x, 1e-12));
    cr_assert(isfinite(res.sec_per_step) && res.sec_per_epoch >= 0.0);
    char *start = e2e_read("start.txt"), *finish = e2e_read("finish.txt");
    cr_assert(start != NULL && strcmp(start, "x\n") == 0);
    cr_assert(finish != NULL && strcmp(finish, "x\n") == 0);
    free(start);
    free(finish);
    free(m);
}

// The metrics rows without wall_s and peak_rss_mb.
static char *rows_without_times(const char *text)
{
    char *out = eg_xmalloc(strlen(text) + 1), *o = out;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t n = end != NULL ? (size_t)(end - line) : strlen(line);
        size_t col = 0;
        for (size_t i = 0; i < n; i++) {
            if (line[i] == ',') col++;
            if (col != 3 && col != 7) *o++ = line[i];
        }
        *o++ = '\n';
        line += n + (end != NULL);
    }
    *o = '\0';
    return out;
}

// whole/metrics.csv and parts/metrics.csv hold the same rows, times aside.
static void assert_same_rows(void)
{
    char *a = e2e_read("whole/metrics.csv"), *b = e2e_read("parts/metrics.csv");
    cr_assert(a != NULL && b != NULL);
    char *ra = rows_without_times(a), *rb = rows_without_times(b);
    cr_assert(strcmp(ra, rb) == 0, "uninterrupted:\n%s\nresumed:\n%s", ra, rb);
    free(a);
    free(b);
    free(ra);
    free(rb);
}

Test(loop, a_stopped_run_resumes_to_the_rows_of_an_uninterrupted_one)
{
    struct run_config cfg;
    load(&cfg, fake_config, NULL, 0);
    struct run_result res;
    struct eg_error err;
    e2e_mkdir("whole");
    e2e_mkdir("parts");
    cr_assert(run_fake(&cfg, e2e_path("whole"), false, 0, &res, &err) == EG_OK, "%s", err.msg);
    // stopped mid-epoch (step 5 of 12), then at an epoch's end (step 9 is the end of epoch 3)
    cr_assert(run_fake(&cfg, e2e_path("parts"), false, 5, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.stopped && res.global_step == 5 && res.epochs_done == 1);
    cr_assert(e2e_read("parts/finish.txt") == NULL, "a stopped run wrote its end-of-run files");
    cr_assert(run_fake(&cfg, e2e_path("parts"), true, 9, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.stopped && res.global_step == 9);
    cr_assert(run_fake(&cfg, e2e_path("parts"), true, 0, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.stopped == false && res.global_step == 12 && res.epochs_done == 4);
    assert_same_rows();
    char *start = e2e_read("parts/start.txt");
    cr_assert(start != NULL && strcmp(start, "x\n") == 0, "start files written again on resume");
    char *a = e2e_read("whole/metrics.csv");
    cr_assert(epsilon_eq(dbl, res.task.test_acc, csv_cell(a, 2, 1), 1e-6)); // %.9g in the file
    free(start);
    free(a);
}

Test(loop, divergence_stops_with_the_task_reason_and_keeps_the_rows)
{
    fake_diverge_at = 11;
    struct run_config cfg;
    load(&cfg, fake_config, NULL, 0);
    struct run_result res;
    struct eg_error err;
    cr_assert(run_fake(&cfg, e2e_dir, false, 0, &res, &err) == EG_ERR_DIVERGED);
    cr_assert(strcmp(err.msg, "diverged: the fake value is NaN at epoch 4, step 2 (global step "
                              "11); metrics so far are kept") == 0,
              "%s", err.msg);
    char *m = e2e_read("metrics.csv");
    cr_assert(m != NULL && csv_data_rows(m) == 1); // epoch 3's
    cr_assert(e2e_read("finish.txt") == NULL);
    free(m);
}

// A stop request that arrives while an epoch's end evaluates: the run stops with a checkpoint
// of the state before that epoch end (the task's half-done changes undone), and the resumed run
// repeats it in full, to the rows of a run never stopped.
Test(loop, a_stop_during_an_evaluation_resumes_to_the_rows_of_an_uninterrupted_one)
{
    struct run_config cfg;
    load(&cfg, fake_config, NULL, 0);
    struct run_result res;
    struct eg_error err;
    e2e_mkdir("whole");
    e2e_mkdir("parts");
    cr_assert(run_fake(&cfg, e2e_path("whole"), false, 0, &res, &err) == EG_OK, "%s", err.msg);
    // epoch 3 is evaluated (every 3 epochs); with checkpoints every 5 epochs the one the stop
    // writes is the only one, so the resume below starts from it
    fake_interrupt_epoch = 3;
    load(&cfg, fake_config, (const char *const[]){"checkpoint.every_epochs=5"}, 1);
    cr_assert(run_fake(&cfg, e2e_path("parts"), false, 0, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.stopped && res.started && res.global_step == 9 && res.epochs_done == 2,
              "stopped %d at step %zu, %zu epochs", res.stopped, res.global_step,
              res.epochs_done);
    char *m = e2e_read("parts/metrics.csv");
    cr_assert(m != NULL && csv_data_rows(m) == 0, "%s", m); // epoch 3's row is not written
    free(m);
    cr_assert(run_fake(&cfg, e2e_path("parts"), true, 0, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.stopped == false && res.global_step == 12 && res.epochs_done == 4);
    assert_same_rows();
}

// A loss that blows up but stays finite (x 1e6 from step 7): diverged at the end of epoch 3, the
// first whose mean exceeds train.diverge_factor (100) times the first step's loss (1), with its
// row kept; with the factor at 0 the run goes to its end.
Test(loop, a_finite_blow_up_is_divergence_after_the_epoch_row)
{
    fake_loss_scale = 1e6;
    struct run_config cfg;
    load(&cfg, fake_config, NULL, 0);
    struct run_result res;
    struct eg_error err;
    cr_assert(run_fake(&cfg, e2e_dir, false, 0, &res, &err) == EG_ERR_DIVERGED);
    cr_assert(res.started && res.epochs_done == 3);
    cr_assert(strcmp(err.msg, "diverged: epoch 3's mean training loss 8e+06 is more than "
                              "train.diverge_factor (100) times the loss of the first step (1); "
                              "metrics so far are kept (train.diverge_factor=0 turns this rule "
                              "off)") == 0,
              "%s", err.msg);
    char *m = e2e_read("metrics.csv");
    cr_assert(m != NULL && csv_data_rows(m) == 1 && csv_cell(m, 1, 0) == 3.0, "%s", m);
    free(m);
    e2e_mkdir("off");
    load(&cfg, fake_config, (const char *const[]){"train.diverge_factor=0"}, 1);
    cr_assert(run_fake(&cfg, e2e_path("off"), false, 0, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.epochs_done == 4);
}

// run_result.started tells the runner whose fault an error is (exit 1 before, 3 after).
Test(loop, started_is_false_when_init_fails_and_true_once_steps_ran)
{
    struct run_config cfg;
    load(&cfg, fake_config, NULL, 0);
    struct run_result res;
    struct eg_error err;
    cr_assert(run_fake(&cfg, e2e_dir, false, 2, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(res.started && res.stopped);
    fake_init_fails = true;
    cr_assert(run_fake(&cfg, e2e_dir, true, 0, &res, &err) == EG_ERR_IO);
    cr_assert(res.started == false);
}

Test(loop, resuming_with_another_config_is_refused)
{
    struct run_config cfg, other;
    load(&cfg, fake_config, NULL, 0);
    const char *ov[] = {"eval.every_epochs=2"};
    load(&other, fake_config, ov, 1);
    struct run_result res;
    struct eg_error err;
    cr_assert(run_fake(&cfg, e2e_dir, false, 4, &res, &err) == EG_OK, "%s", err.msg);
    cr_assert(run_fake(&other, e2e_dir, true, 0, &res, &err) == EG_ERR_FORMAT);
    cr_assert(strstr(err.msg, "written by a different config") != NULL, "%s", err.msg);
}

Test(loop, a_failing_init_writes_nothing)
{
    fake_init_fails = true;
    struct run_config cfg;
    load(&cfg, fake_config, NULL, 0);
    struct run_result res;
    struct eg_error err;
    cr_assert(run_fake(&cfg, e2e_dir, false, 0, &res, &err) == EG_ERR_IO);
    cr_assert(strcmp(err.msg, "fake: cannot read its data") == 0, "%s", err.msg);
    cr_assert(e2e_read("metrics.csv") == NULL && e2e_read("start.txt") == NULL);
    cr_assert(res.epochs_done == 0 && isnan(res.task.test_acc));
}

// ---------------------------------------------------------------------------------------------
// 4. the tasks' evaluations and the stop request

TestSuite(task_stop, .init = e2e_setup, .fini = e2e_teardown, .timeout = 300);

// The task of yaml after init and one training step.
static void *started(const struct task_ops **t, struct run_config *cfg, const char *yaml)
{
    load(cfg, yaml, NULL, 0);
    struct eg_error err;
    cr_assert(eq(int, run_check(cfg, &err), EG_OK), "%s", err.msg);
    eg_set_threads(1);
    *t = task_find(cfg->task);
    void *state = NULL;
    cr_assert(eq(int, (*t)->init(cfg, &state, &err), EG_OK), "%s", err.msg);
    struct task_clock clk = {.epoch = 0, .epochs = cfg->train.epochs,
                             .lr = (float)cfg->train.optimizer.lr};
    (*t)->step(state, &clk);
    return state;
}

// The clock of the end of the first epoch, evaluated (and the last when last), with stop.
static struct task_clock end_clock(const struct run_config *cfg, bool last,
                                   const volatile sig_atomic_t *stop)
{
    return (struct task_clock){.epoch = 1,
                               .epochs = cfg->train.epochs,
                               .lr = (float)cfg->train.optimizer.lr,
                               .eval = true,
                               .last = last,
                               .stop = stop};
}

// The evaluation's figures of a task's summary, NaN when not measured.
static struct task_summary summary_of(const struct task_ops *t, const void *state,
                                      const struct run_config *cfg)
{
    struct task_summary s;
    task_summary_init(&s, cfg);
    t->summary(state, &s);
    return s;
}

// Same doubles, NaN equal to NaN.
static bool same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

// A classifier task (the state's first member is struct classifier; passes: the test-set passes
// of one evaluation): stopped, epoch_end starts no pass over the test set and leaves the accuracy
// unmeasured; cleared, it gives what a clock without a stop request gives.
static void classifier_stops(const char *yaml, uint64_t passes)
{
    const struct task_ops *t;
    struct run_config cfg;
    void *a = started(&t, &cfg, yaml), *b = started(&t, &cfg, yaml);
    struct classifier *c = a;
    const uint64_t before = c->evalb.epoch;
    volatile sig_atomic_t flag = 1;
    struct task_clock clk = end_clock(&cfg, true, &flag);
    struct eg_error err;
    cr_assert(eq(int, t->epoch_end(a, &clk, &err), EG_STOPPED));
    cr_assert(eq(u64, c->evalb.epoch, before), "the stopped evaluation drew test batches");
    cr_assert(isnan(summary_of(t, a, &cfg).test_acc));

    flag = 0;
    cr_assert(eq(int, t->epoch_end(a, &clk, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(u64, c->evalb.epoch, before + passes));
    struct task_clock plain = end_clock(&cfg, true, NULL);
    cr_assert(eq(int, t->epoch_end(b, &plain, &err), EG_OK), "%s", err.msg);
    struct task_summary sa = summary_of(t, a, &cfg), sb = summary_of(t, b, &cfg);
    cr_assert(isfinite(sa.test_acc));
    cr_assert(same(sa.test_acc, sb.test_acc) && same(sa.best_acc, sb.best_acc) &&
                  same(sa.acc_back, sb.acc_back),
              "%.17g %.17g / %.17g %.17g", sa.test_acc, sb.test_acc, sa.acc_back, sb.acc_back);
    t->free(a);
    t->free(b);
}

// The classifier tasks' synthetic data, with the data keys extra (mwn's meta set).
#define SYNTHETIC_DATA(extra)                                                                      \
    "threads: 1\n"                                                                                 \
    "data: {dataset: synthetic, image_c: 1, image_h: 28, image_w: 28, synthetic_train: 600,\n"    \
    "       synthetic_test: 700" extra "}\n"                                                       \
    "train: {batch_size: 32}\neval: {batch_size: 100}\n"
static const char *const synthetic_data = SYNTHETIC_DATA("");

Test(task_stop, supervised_evaluation_polls_between_batches)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "task: supervised\n%s", synthetic_data);
    classifier_stops(yaml, 1);
}

Test(task_stop, rotation_evaluations_poll_between_batches)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "task: rotation\nmethod: {name: evograd}\n"
             "rotation: {train_end: 400, val_begin: 400, val_end: 600, init_deg: 10}\n%s",
             synthetic_data);
    classifier_stops(yaml, 2); // the test set, then rotated back by the learned angle
}

Test(task_stop, mwn_evaluation_polls_between_batches)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "task: mwn\nmethod: {name: evograd}\n%s",
             SYNTHETIC_DATA(", meta_size: 100"));
    classifier_stops(yaml, 1);
}

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

// Task lft at 4-32 channels, 1-shot episodes with 4 queries; val and test episodes as given.
static void lft_yaml(char *buf, size_t cap, const char *episodes)
{
    snprintf(buf, cap,
             "task: lft\nthreads: 1\ndata: {dataset: fashion_mnist}\n"
             "backbone: {name: resnet10, channels: 4}\nmethod: {name: evograd}\n"
             "train: {epochs: 2, optimizer: {name: adam, lr: 0.001}}\n"
             "lft: {shot: 1, queries: 4, episodes: 3, aux_batch: 8, test_queries: 5, %s}\n",
             episodes);
}

static void need_fmnist(void)
{
    if (access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        cr_skip("Fashion-MNIST is not installed (" FMNIST_DIR ")");
    }
}

// With 10^8 validation or test episodes (days of work) a stopped epoch_end that returns at all
// has stopped before evaluating them; the figures stay unmeasured.
Test(task_stop, lft_validation_and_test_poll_between_episodes)
{
    need_fmnist();
    const struct task_ops *t;
    struct run_config cfg;
    char yaml[1024];
    volatile sig_atomic_t flag = 1;
    struct eg_error err;

    lft_yaml(yaml, sizeof yaml, "val_episodes: 100000000, test_episodes: 30");
    void *s = started(&t, &cfg, yaml);
    struct task_clock clk = end_clock(&cfg, false, &flag);
    cr_assert(eq(int, t->epoch_end(s, &clk, &err), EG_STOPPED));
    cr_assert(isnan(summary_of(t, s, &cfg).val_acc));
    t->free(s);

    lft_yaml(yaml, sizeof yaml, "val_episodes: 0, test_episodes: 100000000");
    s = started(&t, &cfg, yaml);
    clk = end_clock(&cfg, true, &flag);
    cr_assert(eq(int, t->epoch_end(s, &clk, &err), EG_STOPPED));
    struct task_summary sum = summary_of(t, s, &cfg);
    cr_assert(isnan(sum.test_acc) && isnan(sum.test_ci95));
    t->free(s);
}

Test(task_stop, lft_cleared_flag_gives_the_numbers_of_no_stop_request)
{
    need_fmnist();
    const struct task_ops *t;
    struct run_config cfg;
    char yaml[1024];
    lft_yaml(yaml, sizeof yaml, "val_episodes: 4, test_episodes: 30");
    void *a = started(&t, &cfg, yaml), *b = started(&t, &cfg, yaml);
    volatile sig_atomic_t flag = 1;
    struct task_clock clk = end_clock(&cfg, true, &flag), plain = end_clock(&cfg, true, NULL);
    struct eg_error err;
    cr_assert(eq(int, t->epoch_end(a, &clk, &err), EG_STOPPED));
    flag = 0;
    cr_assert(eq(int, t->epoch_end(a, &clk, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, t->epoch_end(b, &plain, &err), EG_OK), "%s", err.msg);
    struct task_summary sa = summary_of(t, a, &cfg), sb = summary_of(t, b, &cfg);
    cr_assert(isfinite(sa.val_acc) && isfinite(sa.test_acc) && sa.test_ci95 > 0.0);
    cr_assert(same(sa.val_acc, sb.val_acc) && same(sa.test_acc, sb.test_acc) &&
                  same(sa.test_ci95, sb.test_ci95),
              "%.17g %.17g / %.17g %.17g", sa.val_acc, sb.val_acc, sa.test_acc, sb.test_acc);
    t->free(a);
    t->free(b);
}

// lft's own section carries a check: a loaded state naming a domain outside the seen list is
// refused (the step would index past it); a real state passes.
Test(task_stop, lft_section_refuses_a_domain_outside_the_seen_list)
{
    need_fmnist();
    const struct task_ops *t;
    struct run_config cfg;
    char yaml[1024];
    lft_yaml(yaml, sizeof yaml, "val_episodes: 0, test_episodes: 30");
    void *s = started(&t, &cfg, yaml);
    struct ckpt_list l = {.n = 0};
    t->sections(s, &l);
    const struct ckpt_section *lft = NULL;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.s[i].name, "lft") == 0) lft = &l.s[i];
    }
    cr_assert(lft != NULL && lft->valid != NULL);
    char why[256] = "";
    unsigned char *bytes = malloc(lft->bytes);
    cr_assert(bytes != NULL);
    memcpy(bytes, lft->data, lft->bytes);
    cr_assert(lft->valid(bytes, lft->ctx, why, sizeof why), "%s", why);
    struct task_clock clk = {.epoch = 0, .epochs = cfg.train.epochs, .lr = 0.001f};
    t->step(s, &clk); // draws the epoch's domains
    memcpy(bytes, lft->data, lft->bytes);
    cr_assert(lft->valid(bytes, lft->ctx, why, sizeof why), "%s", why);
    // ps and pu follow the sums, counts and means (3 + 3 + 6 eight-byte fields)
    const uint64_t far = 7;
    memcpy(bytes + 12 * 8, &far, sizeof far);
    cr_assert(lft->valid(bytes, lft->ctx, why, sizeof why) == false);
    cr_assert(strstr(why, "domains 7 and") != NULL && strstr(why, "seen ones") != NULL, "%s",
              why);
    free(bytes);
    t->free(s);
}

// relation_evaluate on 6 classes of 5 random 2x1x1 features: stopped, no episode is evaluated
// (acc and res untouched); cleared, the result of no stop pointer.
Test(task_stop, relation_evaluate_polls_before_every_episode)
{
    const struct shape feat = {2, 1, 1};
    const size_t K = 6, per = 5, n = K * per;
    struct class_index ci = {.classes = K};
    ci.offsets = eg_xmalloc_array(K + 1, sizeof(size_t));
    ci.idx = eg_xmalloc_array(n, sizeof(size_t));
    for (size_t k = 0; k <= K; k++) ci.offsets[k] = k * per;
    for (size_t i = 0; i < n; i++) ci.idx[i] = i;
    struct rng rng;
    rng_seed(&rng, 3);
    float *feats = eg_xmalloc_floats(n * shape_numel(feat));
    rng_fill_gaussian(&rng, feats, n * shape_numel(feat), 0.0f, 1.0f);
    struct relation_head *r = relation_head_new(feat, RELATION_HIDDEN, &rng);

    volatile sig_atomic_t flag = 1;
    double acc[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    struct fewshot_result res = {.mean = -7.0}, want;
    struct rng g1, g2;
    rng_seed(&g1, 9);
    g2 = g1;
    struct eg_error err;
    cr_assert(eq(int, relation_evaluate(r, feats, &ci, 3, 1, 2, 8, &g1, &flag, acc, &res, &err),
                 EG_STOPPED));
    for (size_t e = 0; e < 8; e++) cr_assert(acc[e] == -1.0, "episode %zu was evaluated", e);
    cr_assert(res.mean == -7.0);
    flag = 0;
    cr_assert(eq(int, relation_evaluate(r, feats, &ci, 3, 1, 2, 8, &g1, &flag, acc, &res, &err),
                 EG_OK));
    cr_assert(eq(int, relation_evaluate(r, feats, &ci, 3, 1, 2, 8, &g2, NULL, NULL, &want, &err),
                 EG_OK));
    cr_assert(res.mean == want.mean && res.ci95 == want.ci95 && res.episodes == 8);
    relation_head_free(r);
    free(feats);
    class_index_deinit(&ci);
}
