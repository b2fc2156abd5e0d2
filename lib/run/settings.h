/* settings.h - the config (io/config.h) translated into the plain settings structs of the
 * library's modules: optimisers and schedules (nn/optim.h), backbones (nn/backbones.h), the
 * hypergradient method (meta/hyper.h), data (data/source.h) and augmentation (data/augment.h).
 * The tasks (lib/run/task_*.c) use these and nothing else to read the shared sections, so that
 * each key means the same in every task. None of them fails: the config tables allow only values
 * these accept, except the optimiser settings, which run_check_optim checks. */
#ifndef EG_SETTINGS_H
#define EG_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "data/augment.h"
#include "data/source.h"
#include "io/config.h"
#include "meta/hyper.h"
#include "nn/backbones.h"
#include "nn/optim.h"

// The optimiser of a config section (train.optimizer, meta.optimizer): sgd (momentum, nesterov)
// or adam (betas, eps), both with lr and coupled weight decay.
struct optim_params run_optim_params(const struct optim_config *c);

// EG_OK when the optimiser section `key` ("train.optimizer") is consistent (optim_params_check);
// else EG_ERR_CONFIG with "<key>: <reason>".
enum eg_status run_check_optim(const struct optim_config *c, const char *key,
                               struct eg_error *err);

// train.schedule over train.epochs, from train.optimizer.lr.
struct schedule run_schedule(const struct run_config *cfg);

// backbone.* (name, width, channels, hidden widths); features_only and ft stay off.
struct backbone_spec run_backbone_spec(const struct run_config *cfg);

// The backbone key that sets the network's size, for messages (the memory check):
// backbone.hidden for mlp, backbone.channels when it is set (not lenet), backbone.width for
// resnet32 wider than 1, else backbone.name. Its value as text into buf (cap bytes).
const char *run_backbone_key(const struct run_config *cfg, char *buf, size_t cap);

// method.*: the method, K, sigma, tau, the noise, and the look-ahead step alpha, which is
// method.lookahead_lr, or base_lr when that is 0 (the task's base learning rate).
struct hyper_params run_hyper_params(const struct run_config *cfg, double base_lr);
// Whether a run's meta-steps run the nets' tangent passes: method unrolled (exact), or any
// method with diagnostics (the exact look-ahead they compare with).
bool run_uses_tangents(const struct run_config *cfg);

// Bytes hyper_new(hp, P, H) allocates, without allocating them: returns the part that does not
// scale with evograd's K, and *candidates (unless NULL) the part that does (0 for the other
// methods and for none).
double run_hyper_bytes(const struct hyper_params *hp, size_t P, size_t H, double *candidates);

// data.*: the source, root (NULL for the default), image shape, synthetic sizes and the seed.
// The dataset name must be known (the config's enum; EG_ASSERT).
struct data_spec run_data_spec(const struct run_config *cfg);

// The normalisation of data.dataset (imagefolder: ImageNet's constants; synthetic: plain x/255),
// with data.crop_pad and data.hflip when train is true.
struct augment run_augment(const struct run_config *cfg, bool train);

#endif // EG_SETTINGS_H
