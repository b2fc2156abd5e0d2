/* task.c - the helpers of the task interface (task.h) that tasks share: the summary's defaults,
 * the usual description, the divergence text and the cells of a metrics row. */
#include "task.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/config.h"
#include "io/csv.h"

void task_summary_init(struct task_summary *s, const struct run_config *cfg)
{
    *s = (struct task_summary){
        .dataset = cfg->data.dataset,
        .backbone = cfg->backbone.name,
        .batch_size = cfg->train.batch_size,
        .lr = cfg->train.optimizer.lr,
        .test_acc = NAN,
        .best_acc = NAN,
        .test_ci95 = NAN,
        .val_acc = NAN,
        .angle_deg = NAN,
        .acc_back = NAN,
        .diag_cosine = NAN,
    };
}

void task_describe_default(const struct run_config *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s on %s, %s, method %s, seed %llu", cfg->task, cfg->data.dataset,
             cfg->backbone.name, cfg->method.name, (unsigned long long)cfg->seed);
}

bool task_stop_requested(const struct task_clock *c)
{
    return c->stop != NULL && *c->stop != 0;
}

const char *task_loss_diverged(double loss)
{
    if (isfinite(loss)) return NULL;
    if (isnan(loss)) return "the training loss is NaN";
    return loss > 0 ? "the training loss is +Inf" : "the training loss is -Inf";
}

static size_t column_index(const struct metrics_row *r, const char *column)
{
    size_t i = 0;
    while (i < r->n && strcmp(r->columns[i], column) != 0) i++;
    EG_ASSERT(i < r->n); // a column the task lists
    return i;
}

void metrics_set(struct metrics_row *r, const char *column, double v)
{
    char *cell = r->cells[column_index(r, column)];
    if (isnan(v)) {
        cell[0] = '\0'; // not measured
    } else {
        csv_fmt(cell, v);
    }
}

void metrics_set_text(struct metrics_row *r, const char *column, const char *text)
{
    EG_ASSERT(strlen(text) < METRICS_CELL);
    snprintf(r->cells[column_index(r, column)], METRICS_CELL, "%s", text);
}
