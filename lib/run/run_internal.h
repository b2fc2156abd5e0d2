/* run_internal.h - what run.c shares with the runs of particular tasks (lft_run.c); not part of
 * the library's interface. */
#ifndef EG_RUN_INTERNAL_H
#define EG_RUN_INTERNAL_H

#include "core/status.h"
#include "io/config.h"
#include "meta/hyper.h"
#include "nn/backbones.h"
#include "nn/optim.h"
#include "run.h"

// The backbone, hypergradient method and learning-rate schedule a config asks for.
struct backbone_spec run_backbone_spec(const struct run_config *cfg);
struct hyper_params run_hyper_params(const struct run_config *cfg);
struct schedule run_schedule(const struct run_config *cfg);

// Task lft (lft_run.c): the config checks that need no data, and the run.
enum eg_status lft_check(const struct run_config *cfg, struct eg_error *err);
enum eg_status lft_run(const struct run_config *cfg, const struct run_options *opts,
                       struct run_result *res, struct eg_error *err);

#endif // EG_RUN_INTERNAL_H
