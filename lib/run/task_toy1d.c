/* task_toy1d.c - task toy1d (task_toy1d.h): the config to toy1d_settings, and the run. */
#include "task_toy1d.h"

#include <stdio.h>

#include "io/config.h"
#include "settings.h"
#include "tasks/toy1d.h"

void task_toy1d_memory(const struct run_config *cfg, struct memory_estimate *e)
{
    memory_add(e, "toy1d.trials", "for the estimates of one lambda",
               (double)cfg->toy1d.trials * (double)sizeof(double), "%zu", cfg->toy1d.trials);
    const struct hyper_params hp = run_hyper_params(cfg, cfg->toy1d.lr);
    double per_k = 0.0;
    const double rest = run_hyper_bytes(&hp, 1, 1, &per_k); // x and lambda
    memory_add(e, "method.name", "for the method's work space", rest, "%s", cfg->method.name);
    if (per_k > 0.0) {
        memory_add(e, "method.candidates", "for EvoGrad's candidate perturbations", per_k, "%zu",
                   cfg->method.candidates);
    }
}

// No data or network: the meta optimiser and the memory are all there is to check.
static enum eg_status toy1d_check(const struct run_config *cfg, struct eg_error *err)
{
    enum eg_status st = run_check_optim(&cfg->meta.optimizer, "meta.optimizer", err);
    if (st != EG_OK) return st;
    struct memory_estimate e = {0};
    task_toy1d_memory(cfg, &e);
    return memory_check(&e, err);
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
