/* backbones.c - the architectures of backbones.h, written as net_<layer> calls. */
#include "backbones.h"

#include <string.h>

#include "core/status.h"
#include "net.h"

static const struct {
    const char *name;
    const char *describe;
} kinds[BACKBONE__COUNT] = {
    [BACKBONE_MLP] = {"mlp", "multi-layer perceptron, ReLU, hidden widths from the config"},
    [BACKBONE_LENET] = {"lenet", "LeNet-5 of the rotation experiment (2 conv + 3 FC)"},
    [BACKBONE_CONV4] = {"conv4", "4 x (conv3x3-BN-ReLU-maxpool2), 64 channels (few-shot)"},
    [BACKBONE_RESNET32] = {"resnet32", "CIFAR ResNet-32, option-A shortcuts (label noise)"},
    [BACKBONE_RESNET10] = {"resnet10", "ResNet-10, basic blocks [1,1,1,1] (few-shot)"},
    [BACKBONE_RESNET18] = {"resnet18", "ResNet-18, basic blocks [2,2,2,2] (few-shot)"},
    [BACKBONE_RESNET34] = {"resnet34", "ResNet-34, basic blocks [3,4,6,3] (few-shot)"},
};

const char *backbone_name(enum backbone_kind kind)
{
    EG_ASSERT(kind < BACKBONE__COUNT);
    return kinds[kind].name;
}

bool backbone_find(const char *name, enum backbone_kind *kind)
{
    for (size_t k = 0; k < BACKBONE__COUNT; k++) {
        if (strcmp(kinds[k].name, name) == 0) {
            *kind = (enum backbone_kind)k;
            return true;
        }
    }
    return false;
}

const char *backbone_describe(enum backbone_kind kind)
{
    EG_ASSERT(kind < BACKBONE__COUNT);
    return kinds[kind].describe;
}

struct backbone_spec backbone_defaults(enum backbone_kind kind)
{
    struct backbone_spec s = {.kind = kind, .channels = 64, .width = 1};
    if (kind == BACKBONE_RESNET32) s.channels = 16;
    if (kind == BACKBONE_MLP) {
        s.hidden[0] = s.hidden[1] = 256;
        s.nhidden = 2;
    }
    return s;
}

struct shape backbone_default_input(enum backbone_kind kind)
{
    switch (kind) {
    case BACKBONE_MLP:
    case BACKBONE_LENET:
        return (struct shape){1, 28, 28};
    case BACKBONE_RESNET32:
        return (struct shape){3, 32, 32};
    case BACKBONE_CONV4:
        return (struct shape){3, 84, 84};
    default:
        return (struct shape){3, 224, 224};
    }
}

static const char *check_ft(const struct backbone_spec *spec);

const char *backbone_check(const struct backbone_spec *spec, struct shape in, size_t classes)
{
    if (spec->kind >= BACKBONE__COUNT) return "unknown backbone";
    const char *ft = check_ft(spec);
    if (ft != NULL) return ft;
    if (shape_numel(in) == 0) return "input shape has a zero dimension";
    bool head = !spec->features_only;
    if (head && classes < 1) return "needs at least one class";
    switch (spec->kind) {
    case BACKBONE_MLP:
        if (spec->features_only) return "mlp always has a head";
        if (spec->nhidden > BACKBONE_MAX_HIDDEN) return "mlp has at most 8 hidden layers";
        for (size_t i = 0; i < spec->nhidden; i++) {
            if (spec->hidden[i] == 0) return "mlp hidden widths must be >= 1";
        }
        return NULL;
    case BACKBONE_LENET:
        if (spec->features_only) return "lenet always has a head";
        if (in.h < 12 || in.w < 12) return "lenet needs input of at least 12x12";
        return NULL;
    case BACKBONE_CONV4:
        if (spec->channels < 1) return "conv4 needs at least one channel";
        if (in.h < 16 || in.w < 16) return "conv4 needs input of at least 16x16";
        return NULL;
    case BACKBONE_RESNET32:
        if (spec->features_only) return "resnet32 always has a head";
        if (spec->width < 1) return "resnet32 width must be >= 1";
        if (spec->channels < 1) return "resnet32 needs at least one channel";
        return NULL;
    default:
        if (spec->channels < 1) return "resnet needs at least one channel";
        return NULL;
    }
}

// The checks above, plus: only resnet10/18/34 take feature-wise transformation layers.
static const char *check_ft(const struct backbone_spec *spec)
{
    bool resnet = spec->kind == BACKBONE_RESNET10 || spec->kind == BACKBONE_RESNET18 ||
                  spec->kind == BACKBONE_RESNET34;
    return spec->ft && !resnet ? "feature-wise transformation layers need resnet10/18/34" : NULL;
}

// ---------------------------------------------------------------------------------------------

static const struct batchnorm_params bn_default = {
    .eps = 1e-5f, .momentum = 0.1f, .track_running_stats = true};

static size_t conv_bn(struct net *net, size_t x, size_t c_out, size_t k, size_t stride,
                      size_t pad, enum init_kind init)
{
    x = net_conv2d(net, x,
                   (struct conv2d_params){
                       .c_out = c_out, .k = k, .stride = stride, .pad = pad, .init = init});
    return net_batchnorm(net, x, bn_default);
}

static size_t head(struct net *net, size_t x, size_t classes, enum init_kind init)
{
    return net_linear(net, x, (struct linear_params){.out = classes, .bias = true, .init = init});
}

static void build_mlp(struct net *net, const struct backbone_spec *s, size_t classes)
{
    size_t x = net_flatten(net, 0);
    for (size_t i = 0; i < s->nhidden; i++) {
        x = net_linear(net, x, (struct linear_params){.out = s->hidden[i], .bias = true});
        x = net_relu(net, x);
    }
    head(net, x, classes, INIT_TORCH_DEFAULT);
}

static void build_lenet(struct net *net, size_t classes)
{
    const struct pool_params pool2 = {.k = 2, .stride = 2};
    size_t x = net_conv2d(net, 0, (struct conv2d_params){.c_out = 6, .k = 5, .stride = 1,
                                                          .pad = 2, .bias = true});
    x = net_maxpool(net, net_relu(net, x), pool2);
    x = net_conv2d(net, x, (struct conv2d_params){.c_out = 16, .k = 5, .stride = 1, .bias = true});
    x = net_flatten(net, net_maxpool(net, net_relu(net, x), pool2));
    x = net_relu(net, net_linear(net, x, (struct linear_params){.out = 120, .bias = true}));
    x = net_relu(net, net_linear(net, x, (struct linear_params){.out = 84, .bias = true}));
    head(net, x, classes, INIT_TORCH_DEFAULT);
}

static void build_conv4(struct net *net, const struct backbone_spec *s, size_t classes)
{
    size_t x = 0;
    for (int b = 0; b < 4; b++) {
        x = net_conv2d(net, x,
                       (struct conv2d_params){.c_out = s->channels, .k = 3, .stride = 1, .pad = 1,
                                              .bias = true, .init = INIT_KAIMING_FAN_OUT});
        x = net_relu(net, net_batchnorm(net, x, bn_default));
        x = net_maxpool(net, x, (struct pool_params){.k = 2, .stride = 2});
    }
    if (!s->features_only) head(net, net_flatten(net, x), classes, INIT_TORCH_DEFAULT);
}

// CIFAR basic block: conv-BN-ReLU-conv-BN, plus the (option-A) shortcut, then ReLU.
static size_t cifar_block(struct net *net, size_t x, size_t planes, size_t stride)
{
    size_t c_in = net->node_shape[x].c;
    size_t y = net_relu(net, conv_bn(net, x, planes, 3, stride, 1, INIT_KAIMING_FAN_IN));
    y = conv_bn(net, y, planes, 3, 1, 1, INIT_KAIMING_FAN_IN);
    size_t sc = (stride != 1 || c_in != planes) ? net_shortcut_a(net, x, planes, stride) : x;
    return net_relu(net, net_add(net, y, sc));
}

static void build_resnet32(struct net *net, const struct backbone_spec *s, size_t classes)
{
    size_t c = s->channels * s->width;
    size_t x = net_relu(net, conv_bn(net, 0, c, 3, 1, 1, INIT_KAIMING_FAN_IN));
    const size_t planes[3] = {c, 2 * c, 4 * c};
    for (size_t st = 0; st < 3; st++) {
        for (size_t b = 0; b < 5; b++) x = cifar_block(net, x, planes[st], b == 0 && st > 0 ? 2 : 1);
    }
    x = net_global_avgpool(net, x);
    head(net, x, classes, INIT_KAIMING_FAN_IN);
}

// CloserLookFewShot SimpleBlock: conv-BN-ReLU-conv-BN, shortcut 1x1 conv + BN when the width
// changes, then ReLU. With ft, the second BN and the shortcut BN are followed by an FT layer (the
// LFT code's FeatureWiseTransformation2d_fw: a BatchNorm2d that transforms in training).
static size_t simple_block(struct net *net, size_t x, size_t planes, size_t stride, bool ft)
{
    size_t c_in = net->node_shape[x].c;
    size_t y = net_relu(net, conv_bn(net, x, planes, 3, stride, 1, INIT_KAIMING_FAN_OUT));
    y = conv_bn(net, y, planes, 3, 1, 1, INIT_KAIMING_FAN_OUT);
    if (ft) y = net_ft(net, y);
    size_t sc = x;
    if (c_in != planes) {
        sc = conv_bn(net, x, planes, 1, stride, 0, INIT_KAIMING_FAN_OUT);
        if (ft) sc = net_ft(net, sc);
    }
    return net_relu(net, net_add(net, y, sc));
}

static void build_resnet(struct net *net, const struct backbone_spec *s, size_t classes)
{
    static const size_t depth[3][4] = {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 4, 6, 3}};
    const size_t *blocks = depth[s->kind - BACKBONE_RESNET10];
    size_t x = net_relu(net, conv_bn(net, 0, s->channels, 7, 2, 3, INIT_KAIMING_FAN_OUT));
    x = net_maxpool(net, x, (struct pool_params){.k = 3, .stride = 2, .pad = 1});
    for (size_t st = 0; st < 4; st++) {
        size_t planes = s->channels << st;
        for (size_t b = 0; b < blocks[st]; b++) {
            x = simple_block(net, x, planes, b == 0 && st > 0 ? 2 : 1, s->ft);
        }
    }
    if (!s->features_only) head(net, net_global_avgpool(net, x), classes, INIT_TORCH_DEFAULT);
}

struct net *backbone_build(const struct backbone_spec *spec, struct shape in, size_t classes)
{
    EG_ASSERT(backbone_check(spec, in, classes) == NULL);
    struct net *net = net_new(in);
    switch (spec->kind) {
    case BACKBONE_MLP:
        build_mlp(net, spec, classes);
        break;
    case BACKBONE_LENET:
        build_lenet(net, classes);
        break;
    case BACKBONE_CONV4:
        build_conv4(net, spec, classes);
        break;
    case BACKBONE_RESNET32:
        build_resnet32(net, spec, classes);
        break;
    default:
        build_resnet(net, spec, classes);
        break;
    }
    return net;
}

struct net *backbone_new(const struct backbone_spec *spec, struct shape in, size_t classes,
                         struct rng *rng)
{
    struct net *net = backbone_build(spec, in, classes);
    net_finalize(net, rng);
    return net;
}
