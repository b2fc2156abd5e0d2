/* task_toy1d.c - task toy1d (task_toy1d.h): the config to toy1d_settings, and the run. */
#include "task_toy1d.h"

#include <stdio.h>

#include "io/config.h"
#include "settings.h"
#include "tasks/toy1d.h"

// No data or network: the meta optimiser is all there is to check.
static enum eg_status toy1d_check(const struct run_config *cfg, struct eg_error *err)
{
    return run_check_optim(&cfg->meta.optimizer, "meta.optimizer", err);
}

static void toy1d_describe(const struct run_config *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "toy1d, method %s, K %zu, seed %llu", cfg->method.name,
             cfg->method.candidates, (unsigned long long)cfg->seed);
}

static enum eg_status toy1d_whole(const struct run_config *cfg, const char *dir,
                                  struct task_summary *sum, struct eg_error *err)
{
    const struct toy1d_settings s = {
        .method = run_hyper_params(cfg, cfg->toy1d.lr), // the look-ahead: x's step
        .meta_opt = run_optim_params(&cfg->meta.optimizer),
        .trials = cfg->toy1d.trials,
        .grid_points = cfg->toy1d.grid_points,
        .lambda_min = cfg->toy1d.lambda_min,
        .lambda_max = cfg->toy1d.lambda_max,
        .steps = cfg->toy1d.steps,
        .lr = cfg->toy1d.lr,
        .seed = cfg->seed,
    };
    sum->dataset = "none";
    sum->backbone = "none";
    sum->batch_size = 0;
    sum->lr = cfg->toy1d.lr;
    snprintf(sum->result, sizeof sum->result, "%s",
             "hypergrad.csv, trajectory.csv, trajectory_exact.csv");
    return toy1d_run(&s, dir, err);
}

const struct task_ops task_toy1d = {
    .name = "toy1d",
    .about = "the 1-D illustration: a scalar L2 regulariser, its hypergradient against the exact",
    .learns = true,
    .check = toy1d_check,
    .describe = toy1d_describe,
    .run_whole = toy1d_whole,
};
