/* config.c - experiment configs: a YAML file (libyaml's document API) plus `key.path=value`
 * overrides, walked against one table per section (type, default, bounds, description) into a
 * zero-filled struct run_config; the resolved-config writer; the generated reference.
 *
 * Every value is validated where it is read, so an error names the node it came from
 * (`file:line:col:`, 1-based, from libyaml's start marks) or the override, then the dotted key
 * path. Cross-key checks run after the overrides, located where the offending key was set.
 * Nothing reaches the caller's struct until everything passed. Text is first streamed through
 * libyaml's event parser to enforce the nesting and anchor limits (config.h), then loaded as a
 * document; a libyaml document is owned by the function that loaded it and deleted before that
 * function returns. */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/alloc.h"

// ---------------------------------------------------------------------------------------------
// The tables

enum cfg_type {
    CFG_SECTION, // a nested map with its own table
    CFG_STRING,  // char[size]; optional extra rule
    CFG_ENUM,    // char[size]; one of choices
    CFG_BOOL,    // bool; true | false
    CFG_SIZE,    // size_t in [imin, imax]
    CFG_U64,     // uint64_t in [imin, imax]
    CFG_NUMBER,  // finite double between lo and hi (each open or closed)
    CFG_LIST,    // size_t[size / sizeof(size_t)] + size_t count, items in [imin, imax]
    CFG_STRLIST, // char[size / item_size][item_size] + size_t count: distinct strings, each
                 // passing valid; min_items to size / item_size of them
};

struct cfg_section;

struct cfg_key {
    const char *key;
    enum cfg_type type;
    size_t offset;                     // of the value in struct run_config
    size_t size;                       // sizeof the member (strings: capacity including the NUL)
    uint64_t imin, imax;               // CFG_SIZE, CFG_U64, CFG_LIST items
    double lo, hi;                     // CFG_NUMBER; hi = HUGE_VAL means no upper bound
    bool lo_open, hi_open;             // CFG_NUMBER: > lo rather than >= lo, < hi rather than <= hi
    const char *const *choices;        // CFG_ENUM, NULL-terminated
    bool (*valid)(const char *s);      // CFG_STRING, CFG_STRLIST items: extra rule, NULL = any
                                       // text that fits
    const char *rule;                  // CFG_STRING, CFG_STRLIST items: what is allowed, in words
    size_t count_offset;               // CFG_LIST, CFG_STRLIST: offset of the item count
    size_t item_size;                  // CFG_STRLIST: capacity of one item including the NUL
    size_t min_items;                  // CFG_STRLIST: fewest items
    bool ascending;                    // CFG_LIST: items strictly ascending
    const struct cfg_section *section; // CFG_SECTION
    // default, by type
    const char *def_s;
    uint64_t def_i;
    double def_d;
    bool def_b;
    const size_t *def_list;      // CFG_LIST
    const char *const *def_strs; // CFG_STRLIST
    size_t def_n;                // CFG_LIST, CFG_STRLIST: items in the default
    const char *desc;            // one line, for the reference
};

struct cfg_section {
    const char *path; // "train.optimizer"; "" for the top level
    const struct cfg_key *keys;
    size_t nkeys;
};

#define OFF(m) offsetof(struct run_config, m)
#define MSIZE(m) sizeof(((struct run_config *)0)->m)
#define KEY_STR(k, m, valid_, rule_, def, d)                                                       \
    {                                                                                              \
        .key = k, .type = CFG_STRING, .offset = OFF(m), .size = MSIZE(m), .valid = valid_,         \
        .rule = rule_, .def_s = def, .desc = d                                                     \
    }
#define KEY_ENUM(k, m, ch, def, d)                                                                 \
    {                                                                                              \
        .key = k, .type = CFG_ENUM, .offset = OFF(m), .size = MSIZE(m), .choices = ch,             \
        .def_s = def, .desc = d                                                                    \
    }
#define KEY_BOOL(k, m, def, d)                                                                     \
    {                                                                                              \
        .key = k, .type = CFG_BOOL, .offset = OFF(m), .size = MSIZE(m), .def_b = def, .desc = d    \
    }
#define KEY_SIZE(k, m, lo_, hi_, def, d)                                                           \
    {                                                                                              \
        .key = k, .type = CFG_SIZE, .offset = OFF(m), .size = MSIZE(m), .imin = lo_, .imax = hi_,  \
        .def_i = def, .desc = d                                                                    \
    }
#define KEY_U64(k, m, lo_, hi_, def, d)                                                            \
    {                                                                                              \
        .key = k, .type = CFG_U64, .offset = OFF(m), .size = MSIZE(m), .imin = lo_, .imax = hi_,   \
        .def_i = def, .desc = d                                                                    \
    }
#define KEY_NUM(k, m, lo_, lo_open_, hi_, hi_open_, def, d)                                        \
    {                                                                                              \
        .key = k, .type = CFG_NUMBER, .offset = OFF(m), .size = MSIZE(m), .lo = lo_, .hi = hi_,    \
        .lo_open = lo_open_, .hi_open = hi_open_, .def_d = def, .desc = d                          \
    }
#define KEY_LIST(k, m, n, lo_, hi_, asc, def, ndef, d)                                             \
    {                                                                                              \
        .key = k, .type = CFG_LIST, .offset = OFF(m), .size = MSIZE(m), .count_offset = OFF(n),    \
        .imin = lo_, .imax = hi_, .ascending = asc, .def_list = def, .def_n = ndef, .desc = d      \
    }
#define KEY_STRLIST(k, m, n, min_, valid_, rule_, def, ndef, d)                                    \
    {                                                                                              \
        .key = k, .type = CFG_STRLIST, .offset = OFF(m), .size = MSIZE(m),                         \
        .item_size = MSIZE(m[0]), .count_offset = OFF(n), .min_items = min_, .valid = valid_,      \
        .rule = rule_, .def_strs = def, .def_n = ndef, .desc = d                                   \
    }
#define KEY_SECTION(k, sec)                                                                        \
    {                                                                                              \
        .key = k, .type = CFG_SECTION, .section = &sec                                             \
    }
#define SECTION(path_, keys_)                                                                      \
    {                                                                                              \
        .path = path_, .keys = keys_, .nkeys = sizeof keys_ / sizeof keys_[0]                      \
    }

static bool name_is_valid(const char *s);
static bool empty_or_name(const char *s);

// name_is_valid in words
#define NAME_RULE "1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..)"

static const char *const task_choices[] = {"supervised", "toy1d", "rotation", "mwn", "lft", NULL};
static const char *const label_noise_choices[] = {"none", "unif", "flip", "flip2", NULL};
static const char *const dataset_choices[] = {"mnist",       "fashion_mnist", "cifar10", "cifar100",
                                              "imagefolder", "synthetic",     NULL};
static const char *const backbone_choices[] = {"mlp",      "lenet",    "conv4",    "resnet32",
                                               "resnet10", "resnet18", "resnet34", NULL};
static const char *const method_choices[] = {"none", "evograd", "unrolled", "unrolled_fd",
                                             NULL};
static const char *const noise_choices[] = {"rademacher", "gaussian", NULL};
static const char *const optimizer_choices[] = {"sgd", "adam", NULL};
static const char *const conv_backend_choices[] = {"dnnl", "dnnl_direct", "im2col", NULL};
static const char *const schedule_choices[] = {"constant", "step", "cosine", NULL};
static const size_t hidden_default[] = {256, 256};
static const char *const lft_domains_default[] = {"fmnist-plain", "fmnist-inverted", "fmnist-edges",
                                                  "fmnist-blurred", "fmnist-dilated"};

// The keys of an optimiser section at member m (train.optimizer, meta.optimizer) with its
// defaults; both sections share the bounds and the nesterov cross-check (check_cross).
#define OPTIMIZER_KEYS(m, def_lr, def_momentum, def_nesterov, def_wd)                              \
    KEY_ENUM("name", m.name, optimizer_choices, "sgd", "optimiser"),                               \
        KEY_NUM("lr", m.lr, 0.0, true, HUGE_VAL, false, def_lr, "learning rate"),                  \
        KEY_NUM("momentum", m.momentum, 0.0, false, 1.0, true, def_momentum, "momentum (sgd)"),    \
        KEY_BOOL("nesterov", m.nesterov, def_nesterov,                                             \
                 "Nesterov momentum (sgd); needs momentum > 0"),                                   \
        KEY_NUM("weight_decay", m.weight_decay, 0.0, false, HUGE_VAL, false, def_wd,               \
                "L2 weight decay, added to the gradient"),                                         \
        KEY_NUM("beta1", m.beta1, 0.0, false, 1.0, true, 0.9,                                      \
                "decay of the first-moment average (adam)"),                                       \
        KEY_NUM("beta2", m.beta2, 0.0, false, 1.0, true, 0.999,                                    \
                "decay of the second-moment average (adam)"),                                      \
        KEY_NUM("eps", m.eps, 0.0, true, HUGE_VAL, false, 1e-8, "added to the denominator (adam)")

static const struct cfg_key optimizer_keys[] = {
    OPTIMIZER_KEYS(train.optimizer, 0.1, 0.9, false, 0.0),
};
static const struct cfg_section optimizer_section = SECTION("train.optimizer", optimizer_keys);

static const struct cfg_key schedule_keys[] = {
    KEY_ENUM("type", train.schedule.type, schedule_choices, "constant",
             "learning-rate schedule over epochs"),
    KEY_LIST("milestones", train.schedule.milestones, train.schedule.nmilestones, 1, SIZE_MAX, true,
             NULL, 0, "epochs at which step multiplies the learning rate by gamma"),
    KEY_NUM("gamma", train.schedule.gamma, 0.0, true, 1.0, false, 0.1,
            "factor applied at each milestone (step)"),
    KEY_NUM("min_lr", train.schedule.min_lr, 0.0, false, HUGE_VAL, false, 0.0,
            "learning rate reached at the last epoch (cosine)"),
};
static const struct cfg_section schedule_section = SECTION("train.schedule", schedule_keys);

static const struct cfg_key data_noise_keys[] = {
    KEY_ENUM("type", data.noise.type, label_noise_choices, "none",
             "label noise of the training set: unif, flip (to one other class), flip2 "
             "(to two)"),
    KEY_NUM("rate", data.noise.rate, 0.0, false, 1.0, false, 0.4,
            "corruption probability of the label noise"),
};
static const struct cfg_section data_noise_section = SECTION("data.noise", data_noise_keys);

static const struct cfg_key data_keys[] = {
    KEY_ENUM("dataset", data.dataset, dataset_choices, "fashion_mnist", "dataset to train on"),
    KEY_STR("root", data.root, NULL, "a path of at most 1023 bytes", "",
            "folder holding the dataset's files; \"\" = the dataset's default folder"),
    KEY_SIZE("train_size", data.train_size, 0, SIZE_MAX, 0,
             "use only the first N training images; 0 = all"),
    KEY_SIZE("image_c", data.image_c, 1, 4, 3, "image channels (imagefolder, synthetic)"),
    KEY_SIZE("image_h", data.image_h, 1, 4096, 32,
             "image height in pixels (imagefolder, synthetic)"),
    KEY_SIZE("image_w", data.image_w, 1, 4096, 32,
             "image width in pixels (imagefolder, synthetic)"),
    KEY_SIZE("classes", data.classes, 2, 100000, 10, "number of classes (synthetic)"),
    KEY_SIZE("synthetic_train", data.synthetic_train, 1, SIZE_MAX, 1000,
             "training images (synthetic)"),
    KEY_SIZE("synthetic_test", data.synthetic_test, 1, SIZE_MAX, 200, "test images (synthetic)"),
    KEY_SIZE("crop_pad", data.crop_pad, 0, 64, 0,
             "augmentation: random crop after reflect padding by N pixels; 0 = off"),
    KEY_BOOL("hflip", data.hflip, false, "augmentation: random horizontal flip"),
    KEY_SECTION("noise", data_noise_section),
    KEY_SIZE("meta_size", data.meta_size, 1, SIZE_MAX, 1000,
             "clean meta-set images taken from the training set, class-balanced"),
    KEY_U64("split_seed", data.split_seed, 0, UINT64_MAX, 1,
            "seed of the meta-set choice and of flip/flip2's target classes (the "
            "reference fixes it at 1 for every run seed)"),
};
static const struct cfg_section data_section = SECTION("data", data_keys);

static const struct cfg_key backbone_keys[] = {
    KEY_ENUM("name", backbone.name, backbone_choices, "lenet", "network architecture"),
    KEY_SIZE("width", backbone.width, 1, 64, 1, "width multiplier (resnet32)"),
    KEY_SIZE("channels", backbone.channels, 0, 4096, 0,
             "base channels; 0 = the architecture's own"),
    KEY_LIST("hidden", backbone.hidden, backbone.nhidden, 1, 1000000, false, hidden_default, 2,
             "hidden layer widths (mlp)"),
};
static const struct cfg_section backbone_section = SECTION("backbone", backbone_keys);

static const struct cfg_key method_keys[] = {
    KEY_ENUM("name", method.name, method_choices, "none",
             "hypergradient method; none = the hyperparameters stay fixed (plain training); "
             "unrolled = the exact one-step look-ahead (second order, forward-over-reverse); "
             "unrolled_fd = the same with a finite-difference mixed derivative (DARTS; what "
             "unrolled computed before exact second order existed, so results of unrolled "
             "changed)"),
    KEY_SIZE("candidates", method.candidates, 1, 100000, 2,
             "evograd: K, the number of perturbed candidates"),
    KEY_NUM("sigma", method.sigma, 0.0, true, HUGE_VAL, false, 0.001,
            "evograd: scale of the perturbations"),
    KEY_NUM("temperature", method.temperature, 0.0, true, HUGE_VAL, false, 0.05,
            "evograd: softmax temperature tau of the candidate weights"),
    KEY_ENUM("noise", method.noise, noise_choices, "rademacher",
             "evograd: perturbations +-sigma (rademacher) or sigma * N(0, 1) (gaussian)"),
    KEY_NUM("lookahead_lr", method.lookahead_lr, 0.0, false, HUGE_VAL, false, 0.0,
            "unrolled, unrolled_fd: step of the one-step look-ahead; 0 = the base learning rate"),
};
static const struct cfg_section method_section = SECTION("method", method_keys);

static const struct cfg_key train_keys[] = {
    KEY_SIZE("epochs", train.epochs, 1, 100000, 10, "training epochs"),
    KEY_SIZE("batch_size", train.batch_size, 1, 1000000, 128, "training batch size"),
    {
        .key = "diverge_factor", .type = CFG_NUMBER, .offset = OFF(train.diverge_factor),
        .size = MSIZE(train.diverge_factor), .lo = 0.0, .hi = HUGE_VAL, .def_d = 100.0,
        .desc = "the run stops as diverged (exit 3, metrics kept) when an epoch's mean training "
                "loss exceeds diverge_factor times the loss of the run's first step (the "
                "untrained model's); 0 = off",
    },
    KEY_SECTION("optimizer", optimizer_section),
    KEY_SECTION("schedule", schedule_section),
};
static const struct cfg_section train_section = SECTION("train", train_keys);

static const struct cfg_key meta_optimizer_keys[] = {
    OPTIMIZER_KEYS(meta.optimizer, 1e-3, 0.9, true, 5e-4),
};
static const struct cfg_section meta_optimizer_section =
    SECTION("meta.optimizer", meta_optimizer_keys);

static const struct cfg_key meta_keys[] = {
    KEY_SIZE("batch_size", meta.batch_size, 1, 1000000, 100, "validation (meta) batch size"),
    KEY_SECTION("optimizer", meta_optimizer_section),
};
static const struct cfg_section meta_section = SECTION("meta", meta_keys);

static const struct cfg_key eval_keys[] = {
    KEY_SIZE("every_epochs", eval.every_epochs, 1, SIZE_MAX, 1,
             "test accuracy every N epochs (and after the last)"),
    KEY_SIZE("batch_size", eval.batch_size, 1, SIZE_MAX, 500, "evaluation batch size"),
};
static const struct cfg_section eval_section = SECTION("eval", eval_keys);

static const struct cfg_key checkpoint_keys[] = {
    KEY_SIZE("every_epochs", checkpoint.every_epochs, 0, SIZE_MAX, 1,
             "write checkpoint.bin every N epochs; 0 = only on SIGINT/SIGTERM"),
};
static const struct cfg_section checkpoint_section = SECTION("checkpoint", checkpoint_keys);

static const struct cfg_key diagnostics_keys[] = {
    KEY_SIZE("every_steps", diagnostics.every_steps, 0, SIZE_MAX, 0,
             "every N steps also compute the exact one-step hypergradient on the step's state and "
             "batches and compare the method's with it (hypergrad_diag.csv; the run's own "
             "numbers are unchanged); 0 = off"),
    KEY_SIZE("draws", diagnostics.draws, 0, 100000, 0,
             "evograd with diagnostics: also the cosine of the mean of this many fresh EvoGrad "
             "draws against the exact hypergradient; 0 = none"),
};
static const struct cfg_section diagnostics_section = SECTION("diagnostics", diagnostics_keys);

static const struct cfg_key toy1d_keys[] = {
    KEY_SIZE("trials", toy1d.trials, 1, 100000000, 100,
             "hypergradient estimates (random x ~ N(0, 1)) per lambda"),
    KEY_SIZE("grid_points", toy1d.grid_points, 2, 1000000, 100,
             "lambdas on linspace(lambda_min, lambda_max, grid_points)"),
    KEY_NUM("lambda_min", toy1d.lambda_min, 0.0, false, HUGE_VAL, false, 0.1,
            "first lambda of the grid"),
    KEY_NUM("lambda_max", toy1d.lambda_max, 0.0, true, HUGE_VAL, false, 2.0,
            "last lambda of the grid; must exceed lambda_min"),
    KEY_SIZE("steps", toy1d.steps, 1, 1000000, 5, "joint (x, lambda) steps per trajectory"),
    KEY_NUM("lr", toy1d.lr, 0.0, true, HUGE_VAL, false, 0.1,
            "gradient-descent step on x (the base learning rate)"),
};
static const struct cfg_section toy1d_section = SECTION("toy1d", toy1d_keys);

static const struct cfg_key rotation_keys[] = {
    KEY_NUM("degrees", rotation.degrees, -360.0, false, 360.0, false, 30.0,
            "rotation of the validation and test images (counter-clockwise, degrees)"),
    KEY_SIZE("train_end", rotation.train_end, 1, SIZE_MAX, 40000,
             "training images are [0, train_end) of the training file, unrotated"),
    KEY_SIZE("val_begin", rotation.val_begin, 0, SIZE_MAX, 50000,
             "first validation image of the training file"),
    KEY_SIZE("val_end", rotation.val_end, 1, SIZE_MAX, 60000,
             "validation images are [val_begin, val_end) of the training file"),
    KEY_NUM("init_deg", rotation.init_deg, -360.0, false, 360.0, false, 0.0,
            "initial learned angle (degrees)"),
};
static const struct cfg_section rotation_section = SECTION("rotation", rotation_keys);

static const struct cfg_key mwn_keys[] = {
    KEY_SIZE("hidden", mwn.hidden, 1, 100000, 100,
             "hidden units of the weighting network (1-h-1 MLP, sigmoid output)"),
    KEY_BOOL("uniform_weights", mwn.uniform_weights, false,
             "method none only: train with plain mean cross-entropy (every weight 1) instead of "
             "the fixed initial weighting network"),
};
static const struct cfg_section mwn_section = SECTION("mwn", mwn_keys);

static const struct cfg_key lft_keys[] = {
    KEY_STRLIST("domains", lft.domains, lft.ndomains, 2, name_is_valid, NAME_RULE,
                lft_domains_default, sizeof lft_domains_default / sizeof lft_domains_default[0],
                "the domains: built-in names (fmnist-plain, ...) for fashion_mnist, sub-folders of "
                "data.root for imagefolder"),
    KEY_STR("unseen", lft.unseen, name_is_valid, NAME_RULE, "fmnist-edges",
            "the test domain, one of domains; the others are seen"),
    KEY_STR("aux", lft.aux, empty_or_name, "\"\" or " NAME_RULE, "",
            "the auxiliary classifier's domain, a seen one; \"\" = the first seen domain, none = "
            "no auxiliary classifier"),
    KEY_BOOL("ft", lft.ft, true, "feature-wise transformation layers in the encoder"),
    KEY_SIZE("n_way", lft.n_way, 2, 1000, 5, "classes per training episode"),
    KEY_SIZE("shot", lft.shot, 1, 1000, 5, "support images per class in training episodes"),
    KEY_SIZE("queries", lft.queries, 1, 1000, 16, "query images per class in training episodes"),
    KEY_SIZE("episodes", lft.episodes, 1, SIZE_MAX, 100,
             "training iterations (episode pairs) per epoch"),
    KEY_SIZE("aux_batch", lft.aux_batch, 1, SIZE_MAX, 16,
             "auxiliary-classifier images per iteration"),
    KEY_NUM("aux_decay", lft.aux_decay, 0.0, true, 1.0, false, 0.9,
            "the auxiliary loss weight is aux_decay^floor(20 epoch / train.epochs)"),
    KEY_SIZE("val_episodes", lft.val_episodes, 0, SIZE_MAX, 100,
             "validation episodes per evaluation (the aux domain's val classes); 0 = no "
             "validation"),
    KEY_SIZE("test_episodes", lft.test_episodes, 1, SIZE_MAX, 1000,
             "test episodes on the unseen domain's novel classes"),
    KEY_SIZE("test_queries", lft.test_queries, 1, SIZE_MAX, 15,
             "query images per class in test episodes"),
};
static const struct cfg_section lft_section = SECTION("lft", lft_keys);

static const struct cfg_key root_keys[] = {
    KEY_STR("name", name, name_is_valid, NAME_RULE, "default",
            "run name; results go to results/<name>/"),
    KEY_U64("seed", seed, 0, UINT64_MAX, 1,
            "seed of the random generator (initialisation, shuffling, augmentation)"),
    KEY_SIZE("threads", threads, 1, 256, 2, "BLAS and OpenMP threads"),
    KEY_ENUM("conv_backend", conv_backend, conv_backend_choices, "dnnl",
             "how convolutions compute: dnnl (oneDNN, compiled for this CPU at run time; "
             "Winograd for 3x3 stride-1 layers where the CPU has AVX-512), dnnl_direct (oneDNN, "
             "direct convolution only) or im2col (im2col + OpenBLAS sgemm, the reference); they "
             "differ by float rounding"),
    KEY_ENUM("task", task, task_choices, "supervised", "what is trained"),
    KEY_SECTION("data", data_section),
    KEY_SECTION("backbone", backbone_section),
    KEY_SECTION("method", method_section),
    KEY_SECTION("train", train_section),
    KEY_SECTION("meta", meta_section),
    KEY_SECTION("eval", eval_section),
    KEY_SECTION("checkpoint", checkpoint_section),
    KEY_SECTION("diagnostics", diagnostics_section),
    KEY_SECTION("toy1d", toy1d_section),
    KEY_SECTION("rotation", rotation_section),
    KEY_SECTION("mwn", mwn_section),
    KEY_SECTION("lft", lft_section),
};
static const struct cfg_section root_section = SECTION("", root_keys);

// Which tasks read which keys: the first entry whose path is the key's path or a section above
// it names them; a key no entry covers (the top level, method, diagnostics) is read by every
// task. A key that the run's task never reads is refused when it is set to anything but its
// default (check_unread), and config_write leaves it out.
static const char *const readers_trained[] = {"supervised", "rotation", "mwn", "lft", NULL};
static const char *const readers_batched[] = {"supervised", "rotation", "mwn", NULL};
static const char *const readers_meta[] = {"toy1d", "rotation", "mwn", "lft", NULL};
static const char *const readers_meta_batched[] = {"rotation", "mwn", NULL};
static const char *const readers_toy1d[] = {"toy1d", NULL};
static const char *const readers_rotation[] = {"rotation", NULL};
static const char *const readers_mwn[] = {"mwn", NULL};
static const char *const readers_lft[] = {"lft", NULL};
static const struct {
    const char *path;
    const char *const *tasks;
} readers[] = {
    {"data.noise", readers_mwn},         // label noise is mwn's
    {"data.meta_size", readers_mwn},     // the clean meta set
    {"data.split_seed", readers_mwn},
    {"data.train_size", readers_batched}, // lft draws episodes from whole domains
    {"data", readers_trained},           // toy1d has no data
    {"backbone", readers_trained},
    {"train.batch_size", readers_batched}, // lft: an episode's size is lft.n_way, shot, queries
    {"train", readers_trained},          // toy1d: toy1d.lr and toy1d.steps
    {"meta.batch_size", readers_meta_batched},
    {"meta", readers_meta},              // supervised learns no hyperparameters
    {"eval.batch_size", readers_batched}, // lft evaluates episodes (lft.val_episodes, ...)
    {"eval", readers_trained},
    {"checkpoint", readers_trained},     // toy1d runs whole, in well under a second
    {"toy1d", readers_toy1d},
    {"rotation", readers_rotation},
    {"mwn", readers_mwn},
    {"lft", readers_lft},
};

// The tasks that read the key (or section) at path, NULL-terminated; NULL: every task.
static const char *const *key_readers(const char *path)
{
    for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
        size_t n = strlen(readers[i].path);
        if (strncmp(path, readers[i].path, n) == 0 && (path[n] == '\0' || path[n] == '.'))
            return readers[i].tasks;
    }
    return NULL;
}

bool config_task_reads(const char *task, const char *path)
{
    EG_ASSERT(task != NULL && path != NULL);
    const char *const *tasks = key_readers(path);
    if (tasks == NULL) return true;
    for (; *tasks != NULL; tasks++) {
        if (strcmp(*tasks, task) == 0) return true;
    }
    return false;
}

// "task rotation" or "tasks supervised, rotation and mwn": the readers of path in words; returns
// how many they are.
static size_t readers_text(const char *path, char *buf, size_t cap)
{
    const char *const *tasks = key_readers(path);
    EG_ASSERT(tasks != NULL && tasks[0] != NULL);
    size_t n = 0;
    while (tasks[n] != NULL)
        n++;
    size_t used = (size_t)snprintf(buf, cap, "task%s ", n > 1 ? "s" : "");
    for (size_t i = 0; i < n && used < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 < n ? ", " : " and ";
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", sep, tasks[i]);
    }
    return n;
}

// The name becomes a folder: results/<name>/.
static bool name_is_valid(const char *s)
{
    if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return false;
    for (const char *p = s; *p != '\0'; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

// lft.aux: "" (the first seen domain) or a name.
static bool empty_or_name(const char *s)
{
    return s[0] == '\0' || name_is_valid(s);
}

// ---------------------------------------------------------------------------------------------
// Table helpers

// The key named s[0..len) in sec, or NULL.
static const struct cfg_key *find_key(const struct cfg_section *sec, const char *s, size_t len)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        if (strlen(sec->keys[i].key) == len && memcmp(sec->keys[i].key, s, len) == 0) {
            return &sec->keys[i];
        }
    }
    return NULL;
}

// "a.b" from prefix "a" and key "b" (just "b" at the top level), truncated to fit.
static void join_path(char *buf, size_t cap, const char *prefix, const char *key)
{
    snprintf(buf, cap, "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", key);
}

static char *member(struct run_config *c, size_t offset)
{
    return (char *)c + offset;
}

static const char *cmember(const struct run_config *c, size_t offset)
{
    return (const char *)c + offset;
}

// Fills every key of sec (and its subsections) with its default.
static void apply_defaults(struct run_config *c, const struct cfg_section *sec)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const struct cfg_key *k = &sec->keys[i];
        char *dst = member(c, k->offset);
        switch (k->type) {
        case CFG_SECTION:
            apply_defaults(c, k->section);
            break;
        case CFG_STRING:
        case CFG_ENUM:
            EG_ASSERT(strlen(k->def_s) < k->size);
            memset(dst, 0, k->size);
            memcpy(dst, k->def_s, strlen(k->def_s));
            break;
        case CFG_BOOL:
            *(bool *)(void *)dst = k->def_b;
            break;
        case CFG_SIZE:
            EG_ASSERT(k->size == sizeof(size_t));
            *(size_t *)(void *)dst = (size_t)k->def_i;
            break;
        case CFG_U64:
            EG_ASSERT(k->size == sizeof(uint64_t));
            *(uint64_t *)(void *)dst = k->def_i;
            break;
        case CFG_NUMBER:
            EG_ASSERT(k->size == sizeof(double));
            *(double *)(void *)dst = k->def_d;
            break;
        case CFG_LIST:
            EG_ASSERT(k->def_n * sizeof(size_t) <= k->size);
            memset(dst, 0, k->size);
            if (k->def_n > 0) memcpy(dst, k->def_list, k->def_n * sizeof(size_t));
            *(size_t *)(void *)member(c, k->count_offset) = k->def_n;
            break;
        case CFG_STRLIST:
            EG_ASSERT(k->def_n * k->item_size <= k->size);
            memset(dst, 0, k->size);
            for (size_t j = 0; j < k->def_n; j++) {
                EG_ASSERT(strlen(k->def_strs[j]) < k->item_size);
                memcpy(dst + j * k->item_size, k->def_strs[j], strlen(k->def_strs[j]));
            }
            *(size_t *)(void *)member(c, k->count_offset) = k->def_n;
            break;
        }
    }
}

// The largest value the key's type can hold (a bound equal to it is no bound).
static uint64_t type_max(const struct cfg_key *k)
{
    return k->type == CFG_U64 ? UINT64_MAX : (uint64_t)SIZE_MAX;
}

// "in [1, 256]" or ">= 1": a range after a noun.
static void range_phrase(const char *range, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", (range[0] == '[' || range[0] == '(') ? "in " : "", range);
}

// How many items a string list takes: "2 to 16", "at most 16".
static void strlist_count_text(const struct cfg_key *k, char *buf, size_t cap)
{
    size_t max = k->size / k->item_size;
    if (k->min_items > 0) {
        snprintf(buf, cap, "%zu to %zu", k->min_items, max);
    } else {
        snprintf(buf, cap, "at most %zu", max);
    }
}

// What is allowed, without the type: "[1, 256]", ">= 1", "> 0", "[0, 1)", "sgd, adam", ...
static void allowed_text(const struct cfg_key *k, char *buf, size_t cap)
{
    char range[96];
    switch (k->type) {
    case CFG_SECTION:
        snprintf(buf, cap, "a map of keys");
        return;
    case CFG_STRING:
        snprintf(buf, cap, "%s", k->rule);
        return;
    case CFG_BOOL:
        snprintf(buf, cap, "true, false");
        return;
    case CFG_STRLIST:
        strlist_count_text(k, buf, cap);
        snprintf(buf + strlen(buf), cap - strlen(buf), " distinct items, each %s", k->rule);
        return;
    case CFG_ENUM: {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; k->choices[i] != NULL && used < cap; i++) {
            int n = snprintf(buf + used, cap - used, "%s%s", i > 0 ? ", " : "", k->choices[i]);
            if (n < 0) break;
            used += (size_t)n;
        }
        return;
    }
    case CFG_NUMBER:
        if (k->hi == HUGE_VAL) {
            snprintf(buf, cap, "%s %g", k->lo_open ? ">" : ">=", k->lo);
        } else {
            snprintf(buf, cap, "%c%g, %g%c", k->lo_open ? '(' : '[', k->lo, k->hi,
                     k->hi_open ? ')' : ']');
        }
        return;
    case CFG_SIZE:
    case CFG_U64:
    case CFG_LIST:
        if (k->imax == type_max(k)) {
            snprintf(range, sizeof range, ">= %" PRIu64, k->imin);
        } else {
            snprintf(range, sizeof range, "[%" PRIu64 ", %" PRIu64 "]", k->imin, k->imax);
        }
        if (k->type == CFG_LIST) {
            char phrase[128];
            range_phrase(range, phrase, sizeof phrase);
            snprintf(buf, cap, "at most %zu items, each %s%s", k->size / sizeof(size_t), phrase,
                     k->ascending ? ", strictly ascending" : "");
        } else {
            snprintf(buf, cap, "%s", range);
        }
        return;
    }
}

// The value an error expected: "an integer in [1, 256]", "a number > 0", "one of sgd, adam", ...
static void expected_text(const struct cfg_key *k, char *buf, size_t cap)
{
    char allowed[200], range[212];
    allowed_text(k, allowed, sizeof allowed);
    range_phrase(allowed, range, sizeof range);
    switch (k->type) {
    case CFG_SECTION:
        snprintf(buf, cap, "a map");
        break;
    case CFG_STRING:
        snprintf(buf, cap, "%s", k->rule);
        break;
    case CFG_BOOL:
        snprintf(buf, cap, "true or false");
        break;
    case CFG_ENUM:
        snprintf(buf, cap, "one of %s", allowed);
        break;
    case CFG_NUMBER:
        snprintf(buf, cap, "a number %s", range);
        break;
    case CFG_SIZE:
    case CFG_U64:
        snprintf(buf, cap, "an integer %s", range);
        break;
    case CFG_LIST: {
        struct cfg_key item = *k;
        item.type = CFG_SIZE;
        char item_range[96], item_phrase[128];
        allowed_text(&item, item_range, sizeof item_range);
        range_phrase(item_range, item_phrase, sizeof item_phrase);
        snprintf(buf, cap, "a %slist of at most %zu integers %s",
                 k->ascending ? "strictly ascending " : "", k->size / sizeof(size_t), item_phrase);
        break;
    }
    case CFG_STRLIST: {
        char count[64];
        strlist_count_text(k, count, sizeof count);
        snprintf(buf, cap, "a list of %s distinct strings, each %s", count, k->rule);
        break;
    }
    }
}

static const char *type_name(enum cfg_type t)
{
    switch (t) {
    case CFG_SECTION:
        return "section";
    case CFG_STRING:
        return "string";
    case CFG_ENUM:
        return "enum";
    case CFG_BOOL:
        return "bool";
    case CFG_SIZE:
    case CFG_U64:
        return "integer";
    case CFG_NUMBER:
        return "number";
    case CFG_LIST:
    case CFG_STRLIST:
        return "list";
    }
    return "?";
}

// ---------------------------------------------------------------------------------------------
// Messages

// Text quoted in a message: at most `max` bytes of s[0..len) (cut on a UTF-8 boundary, then
// "..."), control bytes as \xNN, so hostile input cannot garble the message.
struct shown {
    char s[256];
};

static struct shown show_n(const char *s, size_t len, size_t max)
{
    struct shown out;
    size_t o = 0, cut = len > max ? max : len;
    if (len > max) {
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    for (size_t i = 0; i < cut && o + 12 < sizeof out.s; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7F) {
            o += (size_t)snprintf(out.s + o, sizeof out.s - o, "\\x%02X", ch);
        } else {
            out.s[o++] = (char)ch;
        }
    }
    if (len > cut) {
        memcpy(out.s + o, "...", 3);
        o += 3;
    }
    out.s[o] = '\0';
    return out;
}

static struct shown show(const char *s, size_t len)
{
    return show_n(s, len, 48);
}

// "'text'" for a scalar, "a list" or "a map" otherwise.
static struct shown describe(const yaml_node_t *n)
{
    struct shown out;
    if (n->type == YAML_SCALAR_NODE) {
        // show() writes at most 250 bytes, leaving room for the quotes
        struct shown v = show((const char *)n->data.scalar.value, n->data.scalar.length);
        size_t len = strlen(v.s);
        out.s[0] = '\'';
        memcpy(out.s + 1, v.s, len);
        out.s[len + 1] = '\'';
        out.s[len + 2] = '\0';
    } else {
        snprintf(out.s, sizeof out.s, "%s", n->type == YAML_SEQUENCE_NODE ? "a list" : "a map");
    }
    return out;
}

// Where a value came from: a place in the file, or an override.
struct cfg_loc {
    const char *override; // the override's text, or NULL for the file
    size_t line, col;     // 1-based; 0 = the file as a whole
};

// The key that was set, and where (for cross-key messages).
struct cfg_origin {
    const struct cfg_key *key;
    struct cfg_loc at;
};

struct loader {
    struct run_config cfg; // zero-filled, then defaults, then the file, then the overrides
    const char *file;
    const char *override;           // the override being applied, NULL while walking the file
    struct cfg_origin origins[128]; // one per key set; more than there are keys
    size_t norigins;
    struct eg_error *err;
};

static struct cfg_loc node_loc(const struct loader *ld, const yaml_node_t *n)
{
    if (ld->override != NULL) return (struct cfg_loc){.override = ld->override};
    return (struct cfg_loc){.line = n->start_mark.line + 1, .col = n->start_mark.column + 1};
}

// Fills ld->err with "<where>: <path>: <what>" (path may be NULL) and returns EG_ERR_CONFIG.
// <where> is "file:line:col", "file" or "override 'text'".
__attribute__((format(printf, 4, 5))) static enum eg_status
fail(const struct loader *ld, struct cfg_loc at, const char *path, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *sep = path != NULL ? ": " : "";
    path = path != NULL ? path : "";
    if (at.override != NULL) {
        struct shown o = show_n(at.override, strlen(at.override), 200);
        return eg_errorf(ld->err, EG_ERR_CONFIG, "override '%s': %s%s%s", o.s, path, sep, what);
    }
    if (at.line == 0)
        return eg_errorf(ld->err, EG_ERR_CONFIG, "%s: %s%s%s", ld->file, path, sep, what);
    return eg_errorf(ld->err, EG_ERR_CONFIG, "%s:%zu:%zu: %s%s%s", ld->file, at.line, at.col, path,
                     sep, what);
}

static void record_origin(struct loader *ld, const struct cfg_key *k, struct cfg_loc at)
{
    for (size_t i = 0; i < ld->norigins; i++) {
        if (ld->origins[i].key == k) {
            ld->origins[i].at = at;
            return;
        }
    }
    EG_ASSERT(ld->norigins < sizeof ld->origins / sizeof ld->origins[0]);
    ld->origins[ld->norigins++] = (struct cfg_origin){.key = k, .at = at};
}

static const struct cfg_loc *find_origin(const struct loader *ld, const struct cfg_key *k)
{
    for (size_t i = 0; i < ld->norigins; i++) {
        if (ld->origins[i].key == k) return &ld->origins[i].at;
    }
    return NULL;
}

// "key1, key2, ..." of a section.
static void key_list(const struct cfg_section *sec, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sec->nkeys && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i > 0 ? ", " : "", sec->keys[i].key);
        if (n < 0) break;
        used += (size_t)n;
    }
}

// Levenshtein distance of two short strings (b at most 63 bytes).
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t prev[64], cur[64];
    EG_ASSERT(nb < 64);
    for (size_t j = 0; j <= nb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (nb + 1) * sizeof prev[0]);
    }
    return prev[nb];
}

// Searches every section for a key named s[0..len); writes its full path into buf.
static bool find_anywhere(const struct cfg_section *sec, const char *s, size_t len, char *buf,
                          size_t cap)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const struct cfg_key *k = &sec->keys[i];
        if (strlen(k->key) == len && memcmp(k->key, s, len) == 0) {
            join_path(buf, cap, sec->path, k->key);
            return true;
        }
        if (k->type == CFG_SECTION && find_anywhere(k->section, s, len, buf, cap)) return true;
    }
    return false;
}

// "; did you mean 'x'?" for an unknown key s[0..len) in sec: a key of sec within a small edit
// distance, else a key of that name in another section; "" when nothing is close.
static void suggestion(const struct cfg_section *sec, const char *s, size_t len, char *buf,
                       size_t cap)
{
    buf[0] = '\0';
    if (len == 0 || len > 48) return;
    const struct cfg_key *best = NULL;
    size_t best_d = len >= 5 ? 3 : 2; // accept distance < best_d
    for (size_t i = 0; i < sec->nkeys; i++) {
        const char *key = sec->keys[i].key;
        size_t d = edit_distance(s, len, key, strlen(key));
        if (d < best_d) {
            best_d = d;
            best = &sec->keys[i];
        }
    }
    char path[160];
    if (best != NULL) {
        join_path(path, sizeof path, sec->path, best->key);
    } else if (!find_anywhere(&root_section, s, len, path, sizeof path)) {
        return;
    } else {
        // `train: {train: ...}` should not suggest 'train': it is where we are
        size_t n = strlen(path);
        if (strncmp(sec->path, path, n) == 0 && (sec->path[n] == '.' || sec->path[n] == '\0')) {
            return;
        }
    }
    snprintf(buf, cap, "; did you mean '%s'?", path);
}

static enum eg_status unknown_key(const struct loader *ld, struct cfg_loc at, const char *path,
                                  const struct cfg_section *sec, const char *s, size_t len)
{
    char known[512], hint[200];
    key_list(sec, known, sizeof known);
    suggestion(sec, s, len, hint, sizeof hint);
    return fail(ld, at, path, "unknown key%s (known keys%s%s: %s)", hint,
                sec->path[0] != '\0' ? " in " : "", sec->path, known);
}

// ---------------------------------------------------------------------------------------------
// Scalars

enum parse_result { PARSE_OK, PARSE_BAD, PARSE_TOO_LARGE, PARSE_TOO_SMALL, PARSE_NOT_FINITE };

static bool text_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

// Decimal digits with an optional leading '+'. s is NUL-terminated after len bytes (libyaml's
// scalars are), which strtoull relies on once every byte before has been checked.
static enum parse_result parse_uint(const char *s, size_t len, uint64_t *out)
{
    size_t i = (len > 0 && s[0] == '+') ? 1 : 0;
    if (i == len) return PARSE_BAD;
    for (size_t j = i; j < len; j++) {
        if (s[j] < '0' || s[j] > '9') return PARSE_BAD;
    }
    EG_ASSERT(s[len] == '\0');
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s + i, &end, 10);
    if (errno == ERANGE) return PARSE_TOO_LARGE;
    EG_ASSERT(end == s + len);
    *out = (uint64_t)v;
    return PARSE_OK;
}

// A decimal number ("0.1", "-3", "5e-4", "+1.5E+3"); YAML's .inf and .nan are recognised only
// to be rejected as not finite. No hex, no inf/nan words, no spaces. PARSE_TOO_LARGE and
// PARSE_TOO_SMALL: beyond a double's range (strtod's ERANGE).
static enum parse_result parse_number(const char *s, size_t len, double *out)
{
    static const char *const non_finite[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                             "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                             ".NaN",  ".NAN",  NULL};
    for (size_t i = 0; non_finite[i] != NULL; i++) {
        if (text_is(s, len, non_finite[i])) return PARSE_NOT_FINITE;
    }
    bool digit = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            digit = true;
        } else if (strchr("+-.eE", s[i]) == NULL || s[i] == '\0') {
            return PARSE_BAD;
        }
    }
    if (!digit) return PARSE_BAD;
    EG_ASSERT(s[len] == '\0');
    errno = 0;
    char *end = NULL;
    double d = strtod(s, &end);
    if (end != s + len) return PARSE_BAD;
    if (errno == ERANGE) return fabs(d) > 1.0 ? PARSE_TOO_LARGE : PARSE_TOO_SMALL;
    if (!isfinite(d)) return PARSE_NOT_FINITE;
    *out = d;
    return PARSE_OK;
}

// The integer in scalar n, checked against the key's bounds; path names it in errors.
static enum eg_status get_uint(const struct loader *ld, const struct cfg_key *k, const char *path,
                               const yaml_node_t *n, const char *want, uint64_t *out)
{
    struct cfg_loc at = node_loc(ld, n);
    if (n->type != YAML_SCALAR_NODE) {
        return fail(ld, at, path, "expected %s, got %s", want, describe(n).s);
    }
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    uint64_t v = 0;
    enum parse_result r = parse_uint(s, len, &v);
    if (r == PARSE_TOO_LARGE) {
        return fail(ld, at, path, "expected %s, got '%s' (too large)", want, show(s, len).s);
    }
    if (r != PARSE_OK || v < k->imin || v > k->imax) {
        return fail(ld, at, path, "expected %s, got '%s'", want, show(s, len).s);
    }
    *out = v;
    return EG_OK;
}

// Numbers are stored as doubles but used as 32-bit floats (lr, sigma, ...): NULL if the float
// nearest d is d's honest stand-in, else why not, to follow the value in a message ("is 0 as a
// 32-bit float"). A nonzero value that becomes 0 or a subnormal (below FLT_MIN, where precision
// is lost) is refused, and so is one that rounds to infinity. r: parse_number's
// result for d (PARSE_TOO_LARGE and PARSE_TOO_SMALL: beyond even a double).
static const char *float_trouble(enum parse_result r, double d)
{
    // FLT_MAX plus half an ulp, 2^128 - 2^103: the least magnitude (float) rounds to infinity.
    // Below it (float)d rounds to a finite float. The bounds in the messages are FLT_MAX and
    // FLT_MIN as %.9g prints them (the digits that identify a float); both are accepted.
    const double float_overflow = 0x1.ffffffp+127;
    if (r == PARSE_TOO_LARGE || fabs(d) >= float_overflow) {
        return "overflows a 32-bit float (the largest is 3.40282347e+38)";
    }
    if (r == PARSE_TOO_SMALL || (d != 0.0 && (float)d == 0.0f)) {
        return "is 0 as a 32-bit float (the smallest normal float is 1.17549435e-38)";
    }
    if (d != 0.0 && fabsf((float)d) < FLT_MIN) {
        return "is subnormal as a 32-bit float, with lost precision (the smallest normal float is "
               "1.17549435e-38)";
    }
    return NULL;
}

static enum eg_status set_list(struct loader *ld, yaml_document_t *doc, const struct cfg_key *k,
                               const char *path, yaml_node_t *n)
{
    char want[256];
    expected_text(k, want, sizeof want);
    struct cfg_loc at = node_loc(ld, n);
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail(ld, at, path, "expected %s, got %s", want, describe(n).s);
    }
    size_t max = k->size / sizeof(size_t);
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > max) {
        return fail(ld, at, path, "expected at most %zu items, got %zu", max, count);
    }
    struct cfg_key item = *k;
    item.type = CFG_SIZE;
    char item_want[256];
    expected_text(&item, item_want, sizeof item_want);
    size_t values[CFG_LIST_MAX] = {0};
    EG_ASSERT(max <= CFG_LIST_MAX);
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *in = yaml_document_get_node(doc, n->data.sequence.items.start[i]);
        EG_ASSERT(in != NULL);
        char item_path[420];
        snprintf(item_path, sizeof item_path, "%s[%zu]", path, i);
        uint64_t v = 0;
        enum eg_status st = get_uint(ld, &item, item_path, in, item_want, &v);
        if (st != EG_OK) return st;
        if (k->ascending && i > 0 && v <= values[i - 1]) {
            return fail(ld, node_loc(ld, in), item_path,
                        "expected an integer > %zu (the list must be strictly ascending), got "
                        "'%s'",
                        values[i - 1],
                        show((const char *)in->data.scalar.value, in->data.scalar.length).s);
        }
        values[i] = (size_t)v;
    }
    char *dst = member(&ld->cfg, k->offset);
    memset(dst, 0, k->size);
    memcpy(dst, values, count * sizeof(size_t));
    *(size_t *)(void *)member(&ld->cfg, k->count_offset) = count;
    record_origin(ld, k, at);
    return EG_OK;
}

// One item of a string list: a scalar's text, or one piece of a comma-separated override.
struct strlist_item {
    const yaml_node_t *node; // the item; for a piece of an override, the whole scalar
    const char *s;           // the text (not NUL-terminated at len for a piece); NULL: not a scalar
    size_t len;
    bool plain; // unquoted: a number is refused (quote it to mean the text)
};

// A string list: a YAML sequence of scalars (flow or block). In an override also a plain scalar
// holding comma-separated items, `lft.domains=a,b,c` (spaces around an item are dropped), as
// items that name things hold no commas. Every item is checked, then they must be distinct.
static enum eg_status set_strlist(struct loader *ld, yaml_document_t *doc, const struct cfg_key *k,
                                  const char *path, yaml_node_t *n)
{
    char want[256];
    expected_text(k, want, sizeof want);
    struct cfg_loc at = node_loc(ld, n);
    size_t max = k->size / k->item_size;
    EG_ASSERT(max <= CFG_LIST_MAX);
    struct strlist_item items[CFG_LIST_MAX];
    size_t count = 0;
    if (n->type == YAML_SEQUENCE_NODE) {
        count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (count > max) {
            return fail(ld, at, path, "expected at most %zu items, got %zu", max, count);
        }
        for (size_t i = 0; i < count; i++) {
            const yaml_node_t *in = yaml_document_get_node(doc, n->data.sequence.items.start[i]);
            EG_ASSERT(in != NULL);
            bool scalar = in->type == YAML_SCALAR_NODE;
            items[i] = (struct strlist_item){
                .node = in,
                .s = scalar ? (const char *)in->data.scalar.value : NULL,
                .len = scalar ? in->data.scalar.length : 0,
                .plain = scalar && in->data.scalar.style == YAML_PLAIN_SCALAR_STYLE,
            };
        }
    } else if (ld->override != NULL && n->type == YAML_SCALAR_NODE &&
               n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        const char *s = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        size_t pieces = 1;
        for (size_t j = 0; j < len; j++)
            pieces += s[j] == ',';
        if (pieces > max) {
            return fail(ld, at, path, "expected at most %zu items, got %zu", max, pieces);
        }
        for (size_t b = 0, j = 0; j <= len; j++) {
            if (j < len && s[j] != ',') continue;
            size_t e = j;
            while (b < e && (s[b] == ' ' || s[b] == '\t'))
                b++;
            while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
                e--;
            items[count++] =
                (struct strlist_item){.node = n, .s = s + b, .len = e - b, .plain = true};
            b = j + 1;
        }
    } else {
        return fail(ld, at, path, "expected %s, got %s", want, describe(n).s);
    }
    if (count < k->min_items) {
        return fail(ld, at, path, "expected at least %zu items, got %zu", k->min_items, count);
    }
    char values[CFG_LIST_MAX * CFG_STR_MAX];
    EG_ASSERT(k->size <= sizeof values);
    memset(values, 0, k->size);
    for (size_t i = 0; i < count; i++) {
        const struct strlist_item *it = &items[i];
        struct cfg_loc iat = node_loc(ld, it->node);
        char item_path[420];
        snprintf(item_path, sizeof item_path, "%s[%zu]", path, i);
        if (it->s == NULL) {
            return fail(ld, iat, item_path, "expected %s, got %s", k->rule, describe(it->node).s);
        }
        if (memchr(it->s, '\0', it->len) != NULL) {
            return fail(ld, iat, item_path, "expected %s, got '%s' (contains a NUL character)",
                        k->rule, show(it->s, it->len).s);
        }
        if (it->len >= k->item_size) {
            return fail(ld, iat, item_path, "expected %s, got '%s'", k->rule,
                        show(it->s, it->len).s);
        }
        char *v = values + i * k->item_size; // zero-filled: NUL-terminated after the copy
        memcpy(v, it->s, it->len);
        double d;
        if (it->plain && parse_number(v, it->len, &d) != PARSE_BAD) {
            return fail(ld, iat, item_path,
                        "expected a string, got the number '%s'; quote it to use it as a string",
                        show(it->s, it->len).s);
        }
        if (k->valid != NULL && !k->valid(v)) {
            return fail(ld, iat, item_path, "expected %s, got '%s'", k->rule,
                        show(it->s, it->len).s);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(values + j * k->item_size, v) == 0) {
                return fail(ld, iat, item_path,
                            "expected distinct items, got '%s' again (first as %s[%zu])",
                            show(it->s, it->len).s, path, j);
            }
        }
    }
    memcpy(member(&ld->cfg, k->offset), values, k->size);
    *(size_t *)(void *)member(&ld->cfg, k->count_offset) = count;
    record_origin(ld, k, at);
    return EG_OK;
}

static enum eg_status walk_map(struct loader *ld, yaml_document_t *doc,
                               const struct cfg_section *sec, yaml_node_t *map);

// Validates node n as the value of key k (named path) and stores it in ld->cfg.
static enum eg_status set_value(struct loader *ld, yaml_document_t *doc, const struct cfg_key *k,
                                const char *path, yaml_node_t *n)
{
    struct cfg_loc at = node_loc(ld, n);
    char want[256];
    expected_text(k, want, sizeof want);
    if (k->type == CFG_SECTION) {
        if (n->type == YAML_MAPPING_NODE) return walk_map(ld, doc, k->section, n);
        // `train:` with nothing after it: a section left at its defaults
        if (n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0 &&
            n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            return EG_OK;
        }
        return fail(ld, at, path, "expected a map, got %s", describe(n).s);
    }
    if (k->type == CFG_LIST) return set_list(ld, doc, k, path, n);
    if (k->type == CFG_STRLIST) return set_strlist(ld, doc, k, path, n);
    if (n->type != YAML_SCALAR_NODE) {
        return fail(ld, at, path, "expected %s, got %s", want, describe(n).s);
    }
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    char *dst = member(&ld->cfg, k->offset);
    switch (k->type) {
    case CFG_STRING:
    case CFG_ENUM: {
        if (memchr(s, '\0', len) != NULL) {
            return fail(ld, at, path, "expected %s, got '%s' (contains a NUL character)", want,
                        show(s, len).s);
        }
        bool ok = len < k->size;
        if (ok && k->type == CFG_ENUM) {
            ok = false;
            for (size_t i = 0; k->choices[i] != NULL; i++)
                ok = ok || text_is(s, len, k->choices[i]);
        }
        if (ok && k->valid != NULL) ok = k->valid(s);
        if (!ok) return fail(ld, at, path, "expected %s, got '%s'", want, show(s, len).s);
        memset(dst, 0, k->size);
        memcpy(dst, s, len);
        break;
    }
    case CFG_BOOL:
        if (text_is(s, len, "true")) {
            *(bool *)(void *)dst = true;
        } else if (text_is(s, len, "false")) {
            *(bool *)(void *)dst = false;
        } else {
            return fail(ld, at, path, "expected true or false, got '%s'", show(s, len).s);
        }
        break;
    case CFG_SIZE:
    case CFG_U64: {
        uint64_t v = 0;
        enum eg_status st = get_uint(ld, k, path, n, want, &v);
        if (st != EG_OK) return st;
        if (k->type == CFG_SIZE) {
            *(size_t *)(void *)dst = (size_t)v;
        } else {
            *(uint64_t *)(void *)dst = v;
        }
        break;
    }
    case CFG_NUMBER: {
        double d = 0.0;
        enum parse_result r = parse_number(s, len, &d);
        if (r == PARSE_NOT_FINITE) {
            return fail(ld, at, path, "expected a finite %s, got '%s'", want + 2, show(s, len).s);
        }
        if (r == PARSE_OK) {
            bool ok = (k->lo_open ? d > k->lo : d >= k->lo) &&
                      (k->hi == HUGE_VAL || (k->hi_open ? d < k->hi : d <= k->hi));
            if (!ok) return fail(ld, at, path, "expected %s, got '%s'", want, show(s, len).s);
        } else if (r == PARSE_BAD) {
            return fail(ld, at, path, "expected %s, got '%s'", want, show(s, len).s);
        }
        const char *why = float_trouble(r, d);
        if (why != NULL) {
            struct shown v = show(s, len);
            return fail(ld, at, path, "expected %s, got '%s': %s %s", want, v.s, v.s, why);
        }
        *(double *)(void *)dst = d;
        break;
    }
    case CFG_SECTION:
    case CFG_LIST:
    case CFG_STRLIST:
        EG_ASSERT(false && "handled above");
        break;
    }
    record_origin(ld, k, at);
    return EG_OK;
}

// Walks a YAML map against sec: every key must be known and appear once.
static enum eg_status walk_map(struct loader *ld, yaml_document_t *doc,
                               const struct cfg_section *sec, yaml_node_t *map)
{
    size_t first_line[32] = {0}; // line of each key's first appearance; 0 = not yet seen
    EG_ASSERT(sec->nkeys <= sizeof first_line / sizeof first_line[0]);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        EG_ASSERT(kn != NULL && vn != NULL);
        struct cfg_loc at = node_loc(ld, kn);
        char path[400];
        if (kn->type != YAML_SCALAR_NODE) {
            return fail(ld, at, sec->path[0] != '\0' ? sec->path : NULL,
                        "expected a key name, got %s", describe(kn).s);
        }
        const char *s = (const char *)kn->data.scalar.value;
        size_t len = kn->data.scalar.length;
        const struct cfg_key *k = find_key(sec, s, len);
        if (k == NULL) {
            join_path(path, sizeof path, sec->path, show(s, len).s);
            return unknown_key(ld, at, path, sec, s, len);
        }
        join_path(path, sizeof path, sec->path, k->key);
        size_t i = (size_t)(k - sec->keys);
        if (first_line[i] != 0) {
            return fail(ld, at, path, "duplicate key (first at line %zu)", first_line[i]);
        }
        first_line[i] = at.line;
        enum eg_status st = set_value(ld, doc, k, path, vn);
        if (st != EG_OK) return st;
    }
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// libyaml

struct yaml_problem {
    char what[400];
    size_t line, col; // 1-based
    bool over_limit;  // well-formed as far as read, but beyond CFG_NEST_MAX or CFG_ANCHORS_MAX
};

// The byte at 0-based (line, character column) of buf, or -1 past the end.
static int char_at(const char *buf, size_t len, size_t line, size_t col)
{
    size_t i = 0;
    for (size_t l = 0; l < line; l++) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (nl == NULL) return -1;
        i = (size_t)(nl - buf) + 1;
    }
    for (size_t c = 0; i < len; i++) {
        if (((unsigned char)buf[i] & 0xC0) == 0x80) continue; // inside a UTF-8 character
        if (c++ == col) return (unsigned char)buf[i];
    }
    return -1;
}

static void describe_problem(const yaml_parser_t *p, const char *buf, size_t len,
                             struct yaml_problem *out)
{
    const char *problem = p->problem != NULL ? p->problem : "unknown error";
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(out->what, sizeof out->what, "out of memory");
        out->line = out->col = 1;
    } else if (p->error == YAML_READER_ERROR) {
        // Reader errors carry a byte offset rather than a mark: count lines and characters.
        size_t line = 1, col = 1, end = p->problem_offset < len ? p->problem_offset : len;
        for (size_t i = 0; i < end; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
                col++;
            }
        }
        out->line = line;
        out->col = col;
        if (p->problem_value != -1) {
            snprintf(out->what, sizeof out->what, "%s (#%X)", problem, (unsigned)p->problem_value);
        } else {
            snprintf(out->what, sizeof out->what, "%s", problem);
        }
    } else {
        out->line = p->problem_mark.line + 1;
        out->col = p->problem_mark.column + 1;
        if (p->context != NULL) {
            snprintf(out->what, sizeof out->what, "%s (%s started at line %zu, column %zu)",
                     problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
        } else {
            snprintf(out->what, sizeof out->what, "%s", problem);
        }
        // libyaml's message for a tab in the indentation does not say "tab"
        if (char_at(buf, len, p->problem_mark.line, p->problem_mark.column) == '\t') {
            size_t used = strlen(out->what);
            snprintf(out->what + used, sizeof out->what - used,
                     "; a tab: YAML indents with spaces only");
        }
    }
}

static void yaml_parser_start(yaml_parser_t *parser, const char *buf, size_t len)
{
    if (!yaml_parser_initialize(parser)) {
        fprintf(stderr, "evograd: out of memory (yaml_parser_initialize)\n");
        abort();
    }
    yaml_parser_set_input_string(parser, (const unsigned char *)buf, len);
}

// Streams buf[0..len) through libyaml's event parser, which keeps no tree, and refuses it at the
// first list or map nested deeper than CFG_NEST_MAX, or at the first anchor after
// CFG_ANCHORS_MAX, before yaml_parser_load sees it. Why: libyaml's scanner walks every open
// flow level ('[' or '{') on each token, and its composer compares every anchor or alias with
// every earlier anchor, so a 400 kB file of nested lists cost minutes before it could be
// refused. Within both bounds each token costs O(1) (the scanner reads at most about 1 kB
// ahead of the parser), so loading is linear in the input. true: within bounds (a malformed
// document is left to yaml_parser_load to report); false: *problem says why.
static bool yaml_check_bounds(const char *buf, size_t len, struct yaml_problem *problem)
{
    yaml_parser_t parser;
    yaml_parser_start(&parser, buf, len);
    size_t depth = 0, anchors = 0;
    bool ok = true;
    for (bool more = true; more && ok;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break; // malformed: yaml_parser_load says where
        const char *anchor = NULL;
        switch (ev.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor = (const char *)(ev.type == YAML_SEQUENCE_START_EVENT
                                        ? ev.data.sequence_start.anchor
                                        : ev.data.mapping_start.anchor);
            if (++depth > CFG_NEST_MAX) {
                snprintf(problem->what, sizeof problem->what,
                         "nesting limit exceeded: lists and maps may nest at most %d levels deep",
                         CFG_NEST_MAX);
                ok = false;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
            anchor = (const char *)ev.data.scalar.anchor;
            break;
        case YAML_STREAM_END_EVENT:
            more = false;
            break;
        default:
            break;
        }
        if (ok && anchor != NULL && ++anchors > CFG_ANCHORS_MAX) {
            snprintf(problem->what, sizeof problem->what,
                     "anchor limit exceeded: at most %d YAML anchors (&name) in a document",
                     CFG_ANCHORS_MAX);
            ok = false;
        }
        if (!ok) {
            problem->line = ev.start_mark.line + 1;
            problem->col = ev.start_mark.column + 1;
            problem->over_limit = true;
        }
        if (ev.type == YAML_DOCUMENT_END_EVENT) anchors = 0; // anchors are per document
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return ok;
}

// Parses buf[0..len) as one YAML document. true: *doc is loaded (its root is NULL when the
// stream holds no document) and the caller deletes it. false: *problem says why; nothing to free.
static bool yaml_load_one(const char *buf, size_t len, yaml_document_t *doc,
                          struct yaml_problem *problem)
{
    problem->over_limit = false;
    if (!yaml_check_bounds(buf, len, problem)) return false;
    yaml_parser_t parser;
    yaml_parser_start(&parser, buf, len);
    bool ok = yaml_parser_load(&parser, doc) != 0;
    if (!ok) {
        describe_problem(&parser, buf, len, problem);
    } else if (yaml_document_get_root_node(doc) != NULL) {
        // One document only: a second one (or garbage after the first) is an error.
        yaml_document_t extra;
        if (!yaml_parser_load(&parser, &extra)) {
            describe_problem(&parser, buf, len, problem);
            ok = false;
        } else {
            yaml_node_t *root = yaml_document_get_root_node(&extra);
            if (root != NULL) {
                snprintf(problem->what, sizeof problem->what, "more than one YAML document");
                problem->line = root->start_mark.line + 1;
                problem->col = root->start_mark.column + 1;
                ok = false;
            }
            yaml_document_delete(&extra);
        }
        if (!ok) yaml_document_delete(doc);
    }
    yaml_parser_delete(&parser);
    return ok;
}

// Reads a whole file into *buf (NUL-terminated, caller frees) and *len.
static enum eg_status read_file(const char *path, char **buf, size_t *len, struct eg_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return eg_errorf(err, EG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = eg_xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap > CFG_FILE_MAX) break;
        cap *= 2;
        b = eg_xrealloc(b, cap + 1);
    }
    int read_errno = errno;
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(b);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot read: %s", path, strerror(read_errno));
    }
    if (n > CFG_FILE_MAX) {
        free(b);
        return eg_errorf(err, EG_ERR_CONFIG, "%s: larger than %u bytes; not a config", path,
                         CFG_FILE_MAX);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// Overrides and cross-key checks

static enum eg_status apply_override(struct loader *ld, const char *ov)
{
    struct cfg_loc at = {.override = ov};
    const char *eq = strchr(ov, '=');
    if (eq == NULL || eq == ov) return fail(ld, at, NULL, "expected key.path=value");
    const struct cfg_section *sec = &root_section;
    const struct cfg_key *k = NULL;
    char path[400];
    for (const char *p = ov;;) {
        const char *dot = memchr(p, '.', (size_t)(eq - p));
        const char *end = dot != NULL ? dot : eq;
        k = find_key(sec, p, (size_t)(end - p));
        snprintf(path, sizeof path, "%s", show(ov, (size_t)(end - ov)).s);
        if (k == NULL) return unknown_key(ld, at, path, sec, p, (size_t)(end - p));
        if (dot == NULL) break;
        if (k->type != CFG_SECTION) {
            char leaf[400];
            snprintf(leaf, sizeof leaf, "%s", path);
            snprintf(path, sizeof path, "%s", show(ov, (size_t)(eq - ov)).s);
            return fail(ld, at, path, "unknown key (%s is a value, not a section)", leaf);
        }
        sec = k->section;
        p = dot + 1;
    }
    if (k->type == CFG_SECTION) {
        char known[512];
        key_list(k->section, known, sizeof known);
        return fail(ld, at, path, "is a section, not a value; override one of its keys: %s", known);
    }
    const char *value = eq + 1;
    yaml_document_t doc;
    struct yaml_problem problem;
    if (!yaml_load_one(value, strlen(value), &doc, &problem)) {
        return fail(ld, at, path, "%s%s", problem.over_limit ? "" : "malformed YAML value: ",
                    problem.what);
    }
    // An empty value (or only a comment) is the empty string.
    unsigned char empty_text[1] = {0};
    yaml_node_t empty = {.type = YAML_SCALAR_NODE};
    empty.data.scalar.value = empty_text;
    empty.data.scalar.length = 0;
    empty.data.scalar.style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL && value[strspn(value, " \t")] == '#') {
        yaml_document_delete(&doc);
        return fail(ld, at, path, "the value is a YAML comment; quote a value starting with '#'");
    }
    ld->override = ov;
    enum eg_status st = set_value(ld, &doc, k, path, root != NULL ? root : &empty);
    ld->override = NULL;
    yaml_document_delete(&doc);
    return st;
}

enum config_key_kind config_key_kind(const char *path)
{
    EG_ASSERT(path != NULL);
    const struct cfg_section *sec = &root_section;
    for (const char *p = path;;) {
        const char *dot = strchr(p, '.');
        const size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);
        const struct cfg_key *k = find_key(sec, p, len);
        if (k == NULL) return CONFIG_KEY_NONE;
        if (dot == NULL) {
            if (k->type == CFG_SECTION) return CONFIG_KEY_NONE;
            return k->type == CFG_LIST || k->type == CFG_STRLIST ? CONFIG_KEY_LIST
                                                                 : CONFIG_KEY_VALUE;
        }
        if (k->type != CFG_SECTION) return CONFIG_KEY_NONE;
        sec = k->section;
        p = dot + 1;
    }
}

// " (set at line 5)", " (set by override '...')" or " (the default)".
static void origin_text(const struct loader *ld, const struct cfg_key *k, char *buf, size_t cap)
{
    const struct cfg_loc *at = find_origin(ld, k);
    if (at == NULL) {
        snprintf(buf, cap, " (the default)");
    } else if (at->override != NULL) {
        snprintf(buf, cap, " (set by override '%s')",
                 show_n(at->override, strlen(at->override), 100).s);
    } else {
        snprintf(buf, cap, " (set at line %zu, column %zu)", at->line, at->col);
    }
}

static const struct cfg_key *key_named(const struct cfg_section *sec, const char *name)
{
    const struct cfg_key *k = find_key(sec, name, strlen(name));
    EG_ASSERT(k != NULL);
    return k;
}

// nesterov needs momentum > 0, in the optimiser section sec holding o.
static enum eg_status check_nesterov(const struct loader *ld, const struct cfg_section *sec,
                                     const struct optim_config *o)
{
    if (!o->nesterov || o->momentum != 0.0) return EG_OK;
    const struct cfg_key *nk = key_named(sec, "nesterov");
    const struct cfg_key *mk = key_named(sec, "momentum");
    const struct cfg_loc *at = find_origin(ld, nk);
    if (at == NULL) at = find_origin(ld, mk); // nesterov is the default: point at the momentum
    char where[300], path[64];
    origin_text(ld, mk, where, sizeof where);
    join_path(path, sizeof path, sec->path, "nesterov");
    return fail(ld, at != NULL ? *at : (struct cfg_loc){0}, path,
                "true requires %s.momentum > 0, but momentum is 0%s", sec->path, where);
}

// "[a, b, c]": lft.domains, without `skip` when not NULL.
static void domain_list(const struct run_config *c, const char *skip, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    bool first = true;
    for (size_t i = 0; i < c->lft.ndomains && used < cap; i++) {
        if (skip != NULL && strcmp(c->lft.domains[i], skip) == 0) continue;
        int n = snprintf(buf + used, cap - used, "%s%s", first ? "" : ", ", c->lft.domains[i]);
        if (n < 0) break;
        used += (size_t)n;
        first = false;
    }
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

// lft.unseen is one of lft.domains; lft.aux is "", none or a seen domain (not lft.unseen).
static enum eg_status check_lft(const struct loader *ld)
{
    const struct cfg_key *dk = key_named(&lft_section, "domains");
    const struct cfg_key *uk = key_named(&lft_section, "unseen");
    const struct cfg_key *ak = key_named(&lft_section, "aux");
    const char *unseen = ld->cfg.lft.unseen, *aux = ld->cfg.lft.aux;
    bool has_unseen = false, has_aux = false;
    for (size_t i = 0; i < ld->cfg.lft.ndomains; i++) {
        has_unseen = has_unseen || strcmp(ld->cfg.lft.domains[i], unseen) == 0;
        has_aux = has_aux || strcmp(ld->cfg.lft.domains[i], aux) == 0;
    }
    char list[CFG_LIST_MAX * (CFG_STR_MAX + 2) + 4], where[300];
    if (!has_unseen) {
        // located where unseen was set; when it is the default, where domains was
        domain_list(&ld->cfg, NULL, list, sizeof list);
        const struct cfg_loc *at = find_origin(ld, uk);
        if (at != NULL) {
            origin_text(ld, dk, where, sizeof where);
            return fail(ld, *at, "lft.unseen", "'%s' is not one of lft.domains = %s%s", unseen,
                        list, where);
        }
        at = find_origin(ld, dk);
        return fail(ld, at != NULL ? *at : (struct cfg_loc){0}, "lft.domains",
                    "%s does not include lft.unseen = '%s' (the default)", list, unseen);
    }
    if (aux[0] == '\0' || strcmp(aux, "none") == 0) return EG_OK;
    if (has_aux && strcmp(aux, unseen) != 0) return EG_OK;
    // aux is not the default "": located where it was set
    const struct cfg_loc *at = find_origin(ld, ak);
    domain_list(&ld->cfg, unseen, list, sizeof list);
    if (has_aux) {
        origin_text(ld, uk, where, sizeof where);
        return fail(ld, at != NULL ? *at : (struct cfg_loc){0}, "lft.aux",
                    "'%s' is lft.unseen%s, the test domain; expected \"\", none or a seen domain: "
                    "%s",
                    aux, where, list);
    }
    origin_text(ld, dk, where, sizeof where);
    return fail(ld, at != NULL ? *at : (struct cfg_loc){0}, "lft.aux",
                "'%s' is not one of lft.domains%s; expected \"\", none or a seen domain: %s", aux,
                where, list);
}

// Writes the dotted path of key k (somewhere under sec, whose path is sec->path) into buf;
// false when k is not under sec.
static bool path_of_key(const struct cfg_section *sec, const struct cfg_key *k, char *buf,
                        size_t cap)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const struct cfg_key *e = &sec->keys[i];
        if (e == k) {
            join_path(buf, cap, sec->path, k->key);
            return true;
        }
        if (e->type == CFG_SECTION && path_of_key(e->section, k, buf, cap)) return true;
    }
    return false;
}

static char *default_text(const struct cfg_key *k, const struct run_config *defaults);

// A key set to another value than its default in a part of the config that the task never
// reads (rotation.degrees on a supervised run, lft.shot on mwn) would change nothing: refused,
// located where it was set. Set to its default, it changes nothing either way and is let be (a
// resolved config.yaml of an older version lists every key).
static enum eg_status check_unread(const struct loader *ld)
{
    struct run_config defaults;
    memset(&defaults, 0, sizeof defaults);
    apply_defaults(&defaults, &root_section);
    for (size_t i = 0; i < ld->norigins; i++) {
        const struct cfg_key *k = ld->origins[i].key;
        char path[160];
        const bool found = path_of_key(&root_section, k, path, sizeof path);
        EG_ASSERT(found);
        if (config_task_reads(ld->cfg.task, path)) continue;
        char *value = default_text(k, &ld->cfg), *def = default_text(k, &defaults);
        bool same = strcmp(value, def) == 0;
        char who[160];
        size_t nwho = readers_text(path, who, sizeof who);
        enum eg_status st = EG_OK;
        if (!same) {
            st = fail(ld, ld->origins[i].at, path,
                      "%s is set, but task %s never reads this key (only %s %s); remove it, "
                      "or %s%s",
                      value, ld->cfg.task, who, nwho > 1 ? "do" : "does",
                      nwho > 1 ? "choose one of those tasks" : "set task: ",
                      nwho > 1 ? "" : key_readers(path)[0]);
        }
        free(value);
        free(def);
        if (st != EG_OK) return st;
    }
    return EG_OK;
}

static enum eg_status check_cross(const struct loader *ld)
{
    enum eg_status unread = check_unread(ld);
    if (unread != EG_OK) return unread;
    enum eg_status st = check_nesterov(ld, &optimizer_section, &ld->cfg.train.optimizer);
    if (st == EG_OK) st = check_nesterov(ld, &meta_optimizer_section, &ld->cfg.meta.optimizer);
    if (st != EG_OK) return st;
    const double lo = ld->cfg.toy1d.lambda_min, hi = ld->cfg.toy1d.lambda_max;
    if (hi <= lo) {
        // located where lambda_max was set; when it is the default, where lambda_min was
        const struct cfg_key *hk = key_named(&toy1d_section, "lambda_max");
        const struct cfg_key *lk = key_named(&toy1d_section, "lambda_min");
        const struct cfg_loc *at = find_origin(ld, hk);
        char where[300];
        if (at != NULL) {
            origin_text(ld, lk, where, sizeof where);
            return fail(ld, *at, "toy1d.lambda_max",
                        "%g must be greater than toy1d.lambda_min = %g%s", hi, lo, where);
        }
        at = find_origin(ld, lk);
        origin_text(ld, hk, where, sizeof where);
        return fail(ld, at != NULL ? *at : (struct cfg_loc){0}, "toy1d.lambda_min",
                    "%g must be smaller than toy1d.lambda_max = %g%s", lo, hi, where);
    }
    return check_lft(ld);
}

// ---------------------------------------------------------------------------------------------
// Public API

enum eg_status config_load(const char *config_path, const char *const *overrides, size_t noverrides,
                           struct run_config *out, struct eg_error *err)
{
    EG_ASSERT(config_path != NULL && out != NULL);
    EG_ASSERT(noverrides == 0 || overrides != NULL);
    // ~3 kB: on the heap so the caller's stack is not charged for it
    struct loader *ld = eg_xcalloc(1, sizeof *ld);
    ld->file = config_path;
    ld->err = err;
    apply_defaults(&ld->cfg, &root_section);

    char *buf = NULL;
    size_t len = 0;
    enum eg_status st = read_file(config_path, &buf, &len, err);
    if (st != EG_OK) goto done;

    yaml_document_t doc;
    struct yaml_problem problem;
    bool loaded = yaml_load_one(buf, len, &doc, &problem);
    free(buf); // libyaml's nodes hold their own copies of the text
    if (!loaded) {
        st = fail(ld, (struct cfg_loc){.line = problem.line, .col = problem.col}, NULL,
                  "%s%s", problem.over_limit ? "" : "malformed YAML: ", problem.what);
        goto done;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    bool null_root = root != NULL && root->type == YAML_SCALAR_NODE &&
                     root->data.scalar.length == 0 &&
                     root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE; // a lone "---"
    if (root == NULL || null_root) {
        st = fail(ld, (struct cfg_loc){.line = 1, .col = 1}, NULL,
                  "empty config (expected a map of keys)");
    } else if (root->type != YAML_MAPPING_NODE) {
        st = fail(ld, node_loc(ld, root), NULL, "expected a map of keys at the top level, got %s",
                  describe(root).s);
    } else {
        st = walk_map(ld, &doc, &root_section, root);
    }
    yaml_document_delete(&doc);

    for (size_t i = 0; st == EG_OK && i < noverrides; i++) {
        EG_ASSERT(overrides[i] != NULL);
        st = apply_override(ld, overrides[i]);
    }
    if (st == EG_OK) st = check_cross(ld);
    if (st == EG_OK) memcpy(out, &ld->cfg, sizeof *out); // padding included: zero
done:
    free(ld);
    return st;
}

// Plain YAML scalars we write unquoted: start with a letter, '_' or '/', then [A-Za-z0-9_./-],
// and not a word some YAML reader would take for a bool or null.
static bool plain_is_safe(const char *s)
{
    static const char *const reserved[] = {"true", "false", "yes", "no", "on",
                                           "off",  "null",  "y",   "n",  NULL};
    char ch = s[0];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '/')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '/' || ch == '-';
        if (!ok) return false;
    }
    for (size_t i = 0; reserved[i] != NULL; i++) {
        size_t n = strlen(reserved[i]);
        bool same = strlen(s) == n;
        for (size_t j = 0; same && j < n; j++)
            same = (s[j] | 0x20) == reserved[i][j];
        if (same) return false;
    }
    return true;
}

// Decodes one UTF-8 character at s; *n = its length. Invalid bytes decode as themselves, n = 1,
// with *valid = false.
static uint32_t utf8_next(const unsigned char *s, size_t *n, bool *valid)
{
    uint32_t c = s[0];
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    *n = 1;
    *valid = len > 0;
    if (len <= 1) return c;
    uint32_t cp = c & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *valid = false;
            return c;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    *n = len;
    return cp;
}

// A string as a YAML scalar that reads back as the same bytes: plain when safe, else
// double-quoted with every character libyaml would not take raw (controls, line breaks, BOM,
// non-characters) escaped. Bytes that are not UTF-8 cannot come from a loaded config and are
// written as they are.
static void write_string(FILE *f, const char *s)
{
    if (plain_is_safe(s)) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        size_t n;
        bool valid;
        uint32_t cp = utf8_next(p, &n, &valid);
        if (!valid) {
            fputc(*p, f);
        } else if (cp == '"' || cp == '\\') {
            fprintf(f, "\\%c", (char)cp);
        } else if (cp == '\n') {
            fputs("\\n", f);
        } else if (cp == '\t') {
            fputs("\\t", f);
        } else if (cp == '\r') {
            fputs("\\r", f);
        } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            fprintf(f, "\\x%02X", (unsigned)cp);
        } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF) {
            fprintf(f, "\\u%04X", (unsigned)cp);
        } else {
            fwrite(p, 1, n, f);
        }
        p += n;
    }
    fputc('"', f);
}

// The shortest %.Ng that reads back as exactly d. canonical: as it is; else (what people read)
// in plain notation where that is as short to read and reads back the same: 30 rather than
// 3e+01, 0.00001 rather than 1e-05, but 1e-08 and 1e+20 as they are.
static void write_double(FILE *f, double d, bool canonical)
{
    char buf[48];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (prec == 17) snprintf(buf, sizeof buf, "%.17g", d);
    const char *e = strchr(buf, 'e');
    if (!canonical && e != NULL) {
        long exp = strtol(e + 1, NULL, 10);
        if (exp >= -5 && exp < 16) {
            char plain[48];
            snprintf(plain, sizeof plain, "%.*f", exp >= prec - 1 ? 0 : (int)(prec - 1 - exp), d);
            if (strtod(plain, NULL) == d) memcpy(buf, plain, sizeof buf);
        }
    }
    fputs(buf, f);
}

// k's value in c as YAML text; canonical: numbers as config_hash has always read them.
static void write_value(FILE *f, const struct cfg_key *k, const struct run_config *c,
                        bool canonical)
{
    const char *src = cmember(c, k->offset);
    switch (k->type) {
    case CFG_STRING:
    case CFG_ENUM: {
        char tmp[CFG_PATH_MAX];
        EG_ASSERT(k->size <= sizeof tmp);
        memcpy(tmp, src, k->size);
        tmp[k->size - 1] = '\0'; // never trust a caller-filled array to be terminated
        write_string(f, tmp);
        break;
    }
    case CFG_BOOL:
        fputs(*(const bool *)(const void *)src ? "true" : "false", f);
        break;
    case CFG_SIZE:
        fprintf(f, "%zu", *(const size_t *)(const void *)src);
        break;
    case CFG_U64:
        fprintf(f, "%" PRIu64, *(const uint64_t *)(const void *)src);
        break;
    case CFG_NUMBER:
        write_double(f, *(const double *)(const void *)src, canonical);
        break;
    case CFG_LIST: {
        const size_t *v = (const size_t *)(const void *)src;
        size_t n = *(const size_t *)(const void *)cmember(c, k->count_offset);
        size_t max = k->size / sizeof(size_t);
        n = n < max ? n : max;
        fputc('[', f);
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s%zu", i > 0 ? ", " : "", v[i]);
        fputc(']', f);
        break;
    }
    case CFG_STRLIST: {
        size_t n = *(const size_t *)(const void *)cmember(c, k->count_offset);
        size_t max = k->size / k->item_size;
        n = n < max ? n : max;
        char tmp[CFG_PATH_MAX];
        EG_ASSERT(k->item_size <= sizeof tmp);
        fputc('[', f);
        for (size_t i = 0; i < n; i++) {
            memcpy(tmp, src + i * k->item_size, k->item_size);
            tmp[k->item_size - 1] = '\0';
            if (i > 0) fputs(", ", f);
            write_string(f, tmp); // plain only with [A-Za-z0-9_./-]: safe inside [...]
        }
        fputc(']', f);
        break;
    }
    case CFG_SECTION:
        EG_ASSERT(false && "sections have no value");
        break;
    }
}

// Writes sec's keys as YAML at the indent: every key (canonical), or the keys c->task reads.
static void write_section(FILE *f, const struct run_config *c, const struct cfg_section *sec,
                          int indent, bool canonical)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const struct cfg_key *k = &sec->keys[i];
        char path[160];
        join_path(path, sizeof path, sec->path, k->key);
        if (!canonical && !config_task_reads(c->task, path)) continue;
        fprintf(f, "%*s%s:", indent, "", k->key);
        if (k->type == CFG_SECTION) {
            fputc('\n', f);
            write_section(f, c, k->section, indent + 2, canonical);
        } else {
            fputc(' ', f);
            write_value(f, k, c, canonical);
            fputc('\n', f);
        }
    }
}

static void each_value(const struct run_config *c, const struct cfg_section *sec,
                       const char *prefix,
                       void (*fn)(void *ctx, const char *path, const char *value), void *ctx)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const struct cfg_key *k = &sec->keys[i];
        char path[256];
        join_path(path, sizeof path, prefix, k->key);
        if (k->type == CFG_SECTION) {
            each_value(c, k->section, path, fn, ctx);
            continue;
        }
        char *text = default_text(k, c); // the value of k in c as YAML text
        fn(ctx, path, text);
        free(text);
    }
}

// The first key under sec (in the schema's order) whose value differs between a and b: its path
// into path, the two values (as config_write writes them) into va and vb; false when none does.
static bool first_difference(const struct run_config *a, const struct run_config *b,
                             const struct cfg_section *sec, const char *prefix, char *path,
                             size_t path_cap, char *va, char *vb, size_t value_cap)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const struct cfg_key *k = &sec->keys[i];
        char p[256];
        join_path(p, sizeof p, prefix, k->key);
        if (k->type == CFG_SECTION) {
            if (first_difference(a, b, k->section, p, path, path_cap, va, vb, value_cap))
                return true;
            continue;
        }
        char *ta = default_text(k, a), *tb = default_text(k, b);
        const bool differ = strcmp(ta, tb) != 0;
        if (differ) {
            snprintf(path, path_cap, "%s", p);
            snprintf(va, value_cap, "%s", ta);
            snprintf(vb, value_cap, "%s", tb);
        }
        free(ta);
        free(tb);
        if (differ) return true;
    }
    return false;
}

bool config_first_difference(const struct run_config *a, const struct run_config *b, char *path,
                             size_t path_cap, char *va, char *vb, size_t value_cap)
{
    EG_ASSERT(a != NULL && b != NULL && path != NULL && va != NULL && vb != NULL);
    return first_difference(a, b, &root_section, "", path, path_cap, va, vb, value_cap);
}

void config_each_value(const struct run_config *c,
                       void (*fn)(void *ctx, const char *path, const char *value), void *ctx)
{
    EG_ASSERT(c != NULL && fn != NULL);
    each_value(c, &root_section, "", fn, ctx);
}

void config_write(const struct run_config *c, FILE *f)
{
    EG_ASSERT(c != NULL && f != NULL);
    fprintf(f,
            "# evograd resolved config: every key task %s reads, defaults filled in, overrides\n"
            "# applied; the keys it never reads keep their defaults (evograd list config).\n"
            "# `evograd run` on this file repeats the run.\n",
            c->task);
    write_section(f, c, &root_section, 0, false);
}

// The YAML of c written by write (config_write, or the canonical form), as a string (caller
// frees).
static char *yaml_string(const struct run_config *c, void (*write)(const struct run_config *, FILE *))
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    EG_ASSERT(f != NULL);
    write(c, f);
    EG_ASSERT(fclose(f) == 0);
    return buf;
}

char *config_to_string(const struct run_config *c)
{
    return yaml_string(c, config_write);
}

// The text config_hash reads: every key of every section, numbers as the shortest %g, under
// the header config_write once wrote. It never changes with how configs are shown, so a
// checkpoint keeps its identity across versions that show configs differently.
static void write_canonical(const struct run_config *c, FILE *f)
{
    fputs("# evograd resolved config: every key, defaults filled in, overrides applied.\n"
          "# `evograd run` on this file repeats the run.\n",
          f);
    write_section(f, c, &root_section, 0, true);
}

// FNV-1a, 64-bit (http://www.isthe.com/chongo/tech/comp/fnv/).
uint64_t config_hash(const struct run_config *c)
{
    char *s = yaml_string(c, write_canonical);
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    free(s);
    return h;
}

// A key's default as YAML text (caller frees).
static char *default_text(const struct cfg_key *k, const struct run_config *defaults)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    EG_ASSERT(f != NULL);
    write_value(f, k, defaults, false);
    EG_ASSERT(fclose(f) == 0);
    return buf;
}

// Table-cell text: '<' would start an HTML tag and '|' end the cell.
static void write_markdown_text(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '<') {
            fputs("&lt;", f);
        } else if (*s == '|') {
            fputs("\\|", f);
        } else {
            fputc(*s, f);
        }
    }
}

static void write_reference_section(FILE *f, const struct run_config *d,
                                    const struct cfg_section *sec, bool markdown)
{
    bool has_leaves = false;
    for (size_t i = 0; i < sec->nkeys; i++)
        has_leaves = has_leaves || sec->keys[i].type != CFG_SECTION;
    const char *const *sec_readers = sec->path[0] != '\0' ? key_readers(sec->path) : NULL;
    char sec_who[160] = "";
    if (sec_readers != NULL) readers_text(sec->path, sec_who, sizeof sec_who);
    if (has_leaves && !markdown && sec_readers != NULL)
        fprintf(f, "\n%s: read by %s only\n", sec->path, sec_who);
    if (has_leaves && markdown) {
        fprintf(f, "\n## %s\n\n", sec->path[0] != '\0' ? sec->path : "Top level");
        if (sec_readers != NULL) fprintf(f, "Read by %s only.\n\n", sec_who);
        fputs("| key | type | default | allowed | description |\n", f);
        fputs("|---|---|---|---|---|\n", f);
    }
    for (size_t i = 0; has_leaves && i < sec->nkeys; i++) {
        const struct cfg_key *k = &sec->keys[i];
        if (k->type == CFG_SECTION) continue;
        char path[160], allowed[256];
        join_path(path, sizeof path, sec->path, k->key);
        allowed_text(k, allowed, sizeof allowed);
        char *def = default_text(k, d);
        char desc[600], who[160] = "";
        if (key_readers(path) != sec_readers) { // a key read by fewer tasks than its section
            readers_text(path, who, sizeof who);
            snprintf(desc, sizeof desc, "%s (%s only)", k->desc, who);
        } else {
            snprintf(desc, sizeof desc, "%s", k->desc);
        }
        if (markdown) {
            fprintf(f, "| `%s` | %s | `%s` | ", path, type_name(k->type), def);
            write_markdown_text(f, allowed);
            fputs(" | ", f);
            write_markdown_text(f, desc);
            fputs(" |\n", f);
        } else {
            fprintf(f, "%-30s %-8s %-14s %s\n%30s %s\n", path, type_name(k->type), def, allowed, "",
                    desc);
        }
        free(def);
    }
    for (size_t i = 0; i < sec->nkeys; i++) {
        if (sec->keys[i].type == CFG_SECTION) {
            write_reference_section(f, d, sec->keys[i].section, markdown);
        }
    }
}

void config_write_reference(FILE *f, bool markdown)
{
    EG_ASSERT(f != NULL);
    struct run_config d;
    memset(&d, 0, sizeof d);
    apply_defaults(&d, &root_section);
    if (markdown) {
        fputs("# Config reference\n\n"
              "<!-- Generated by config_write_reference() from the tables in lib/io/config.c;\n"
              "     do not edit by hand. tests/test_config.c checks that it is in sync. -->\n\n"
              "A config is one YAML map; nested sections may be written in block or flow style\n"
              "(`optimizer: { name: sgd, lr: 0.1 }`). Every key is optional and takes the default\n"
              "below. Unknown keys, duplicate keys, wrong types and values outside the allowed\n"
              "range are errors naming `file:line:col` and the key path. Booleans are `true` or\n"
              "`false`; integers are plain decimal digits; numbers are decimal and finite.\n\n"
              "Overrides on the command line use the dotted key path and YAML values, are\n"
              "checked like the file and applied after it, in order:\n"
              "`train.epochs=1 train.schedule.milestones=[40,50]`. A list of strings may also be\n"
              "given without brackets, its items separated by commas: `lft.domains=a,b,c`.\n"
              "An item of a list of strings that reads as a number is quoted: `['2019', a]`.\n\n"
              "Some sections and keys are read by some tasks only (it says so below). Such a key\n"
              "set to anything but its default while `task` is another task is an error naming\n"
              "the key, the task and the tasks that read it (`rotation.degrees` on a supervised\n"
              "run). Method keys are read by every task, whichever method is chosen, so that one\n"
              "config can be swept over methods. `evograd check` and a run's `config.yaml` list\n"
              "only the keys the task reads.\n",
              f);
    } else {
        fputs("Config keys: key, type, default, allowed values, then the description.\n\n", f);
    }
    write_reference_section(f, &d, &root_section, markdown);
}
