/* backbones.h - the named network architectures of the paper's experiments.
 *
 *   mlp       flatten, [linear + ReLU] per hidden layer, linear head. PyTorch default init.
 *   lenet     the rotation experiment's LeNet: conv5x5 1->6 pad 2, ReLU, maxpool 2; conv5x5 6->16,
 *             ReLU, maxpool 2; FC 400->120, ReLU; FC 120->84, ReLU; FC 84->classes. Default init.
 *             61,706 parameters for 1x28x28 input and 10 classes.
 *   conv4     four blocks conv3x3 pad 1 (bias) -> BN -> ReLU -> maxpool 2 at 64 channels,
 *             CloserLookFewShot's Conv4; conv weights N(0, 2/(9*c_out)).
 *   resnet32  the CIFAR ResNet-32 of the label-noise experiment (He et al. 2016; MW-Net code):
 *             conv3x3 3->16, BN, ReLU; three stages of 5 basic blocks at 16/32/64 x width channels,
 *             stride 2 at the start of stages 2 and 3, option-A shortcuts; global average pool;
 *             FC. Kaiming-normal (fan_in) conv and FC weights. 464,154 parameters for 10 classes.
 *   resnet10/18/34  the few-shot backbones (CloserLookFewShot ResNet, basic blocks [1,1,1,1],
 *             [2,2,2,2], [3,4,6,3] at 64-128-256-512): conv7x7/2 -> BN -> ReLU -> maxpool 3/2,
 *             stride 2 and a 1x1 conv + BN shortcut at the start of stages 2-4; conv weights
 *             N(0, 2/(k*k*c_out)). Any input size.
 * Every network ends in a linear head over `classes` outputs unless features_only is set (then
 * the last feature map is the output: conv4, resnet10/18/34 only). */
#ifndef EG_BACKBONES_H
#define EG_BACKBONES_H

#include <stdbool.h>
#include <stddef.h>

#include "layer.h"

struct net;
struct rng;

enum backbone_kind {
    BACKBONE_MLP,
    BACKBONE_LENET,
    BACKBONE_CONV4,
    BACKBONE_RESNET32,
    BACKBONE_RESNET10,
    BACKBONE_RESNET18,
    BACKBONE_RESNET34,
    BACKBONE__COUNT
};

#define BACKBONE_MAX_HIDDEN 8

struct backbone_spec {
    enum backbone_kind kind;
    size_t channels; // base channel count: conv4 64, resnet32 16, resnet10/18/34 64; stages
                     // double it (tests build few-channel networks this way)
    size_t width;                        // resnet32: multiplier of every width (MW-Net --width)
    size_t hidden[BACKBONE_MAX_HIDDEN];  // mlp hidden widths
    size_t nhidden;
    bool features_only;                  // no head (conv4, resnet10/18/34)
    bool ft;                             // resnet10/18/34: a feature-wise transformation layer
                                         // after the second batch norm of every block and after
                                         // every shortcut batch norm (LFT, paper-spec 3.3)
};

// "resnet32" etc. for a kind; the kind for a name (false when unknown).
const char *backbone_name(enum backbone_kind kind);
bool backbone_find(const char *name, enum backbone_kind *kind);
// One line describing the kind, for `evograd list`.
const char *backbone_describe(enum backbone_kind kind);
// The default spec of a kind (the paper's channels, width 1, mlp hidden [256, 256]).
struct backbone_spec backbone_defaults(enum backbone_kind kind);
// The input shape and class count the paper uses the kind with (for `evograd list`).
struct shape backbone_default_input(enum backbone_kind kind);
// NULL when spec can be built for per-sample input `in` and `classes` outputs, else a static
// reason ("lenet needs input at least 12x12", ...).
const char *backbone_check(const struct backbone_spec *spec, struct shape in, size_t classes);
// Builds and initialises the network from rng. The spec must pass backbone_check (EG_ASSERT).
// Caller frees with net_free.
struct net *backbone_new(const struct backbone_spec *spec, struct shape in, size_t classes,
                         struct rng *rng);
// The same network's layers without net_finalize: shapes and counts but no parameter blocks and
// nothing initialised, for sizing a network that may be too large to build (net.h: net_count,
// net_batch_bytes). The spec must pass backbone_check (EG_ASSERT). Caller frees with net_free.
struct net *backbone_build(const struct backbone_spec *spec, struct shape in, size_t classes);

#endif // EG_BACKBONES_H
