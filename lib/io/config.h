/* config.h - experiment configs: a YAML file plus `key.path=value` overrides, validated against one
 * table per section (type, default, bounds, description) into a resolved struct run_config.
 *
 * Every mistake is found before any work starts and reported as one message naming where it is:
 *   configs/x.yaml:12:9: train.optimizer.lr: expected a number > 0, got '-1'
 *   override 'train.epochs=abc': train.epochs: expected an integer >= 1, got 'abc'
 * Unknown keys, duplicate keys, wrong types (a map where a number belongs, ...), out-of-range
 * values, values outside an enum's choices, malformed YAML, non-finite numbers, empty files and
 * missing files are errors. Numbers are parsed with strtod/strtoll and checked (end pointer,
 * ERANGE, isfinite); never atoi. Numbers are used as 32-bit floats, so a nonzero one that a
 * float holds only as 0 or as a subnormal, or one that overflows it (lr=1e-50, lr=3.4e39), is
 * refused as such, for every number key. Messages for numbers quote the value as written and
 * the schema's bound (> or >=):
 *   override 'train.optimizer.lr=3.4e39': train.optimizer.lr: expected a number > 0, got
 *   '3.4e39': 3.4e39 overflows a 32-bit float (the largest is 3.40282347e+38)
 * Keys left out take their defaults.
 *
 * Bounds on the input, so that hostile files cost little: at most CFG_FILE_MAX bytes, lists and
 * maps nested at most CFG_NEST_MAX (32) levels deep (a config needs 3: the top-level map,
 * train, train.optimizer), at most CFG_ANCHORS_MAX (64) YAML anchors. These
 * are checked while libyaml streams the text, before it builds a document, so loading time is
 * linear in the input:
 *   configs/x.yaml:1:33: nesting limit exceeded: lists and maps may nest at most 32 levels deep
 *
 * The resolved config written by config_write is itself a valid input: loading it (with no
 * overrides) gives the same struct run_config, so a run can be repeated from its config.yaml. */
#ifndef EG_CONFIG_H
#define EG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#define CFG_STR_MAX 64
#define CFG_PATH_MAX 1024
#define CFG_LIST_MAX 16
#define CFG_FILE_MAX (1u << 20) // bytes in a config file
#define CFG_NEST_MAX 32         // nesting depth of YAML lists and maps
#define CFG_ANCHORS_MAX 64      // YAML anchors (&name) in one document

struct optim_config {
    char name[CFG_STR_MAX];   // sgd | adam
    double lr;                // > 0
    double momentum;          // [0, 1) (sgd)
    bool nesterov;            // sgd; requires momentum > 0
    double weight_decay;      // >= 0 (coupled L2)
    double beta1, beta2, eps; // adam
};

struct schedule_config {
    char type[CFG_STR_MAX];            // constant | step | cosine
    size_t milestones[CFG_LIST_MAX];   // step: epochs (ascending)
    size_t nmilestones;
    double gamma;                      // step: factor at each milestone, (0, 1]
    double min_lr;                     // cosine: final lr, >= 0
};

struct run_config {
    char name[CFG_STR_MAX];  // results/<name>/...; [A-Za-z0-9._-]+
    uint64_t seed;
    size_t threads;          // BLAS + OpenMP threads, >= 1
    char conv_backend[CFG_STR_MAX]; // dnnl | dnnl_direct | im2col (nn/layers.h, conv2d_set_backend)
    char task[CFG_STR_MAX];  // supervised | toy1d | rotation | mwn | lft
    struct {
        char dataset[CFG_STR_MAX];  // mnist | fashion_mnist | cifar10 | cifar100 | imagefolder |
                                    // synthetic
        char root[CFG_PATH_MAX];    // "" = the dataset's default (data_source_default_root)
        size_t train_size;          // use the first N training images; 0 = all
        size_t image_c, image_h, image_w; // imagefolder / synthetic image shape
        size_t classes;             // synthetic only
        size_t synthetic_train, synthetic_test;
        size_t crop_pad;            // augmentation: random crop after reflect padding; 0 = off
        bool hflip;                 // augmentation: random horizontal flip
        struct {
            char type[CFG_STR_MAX]; // none | unif | flip | flip2 (data/noise.h)
            double rate;            // [0, 1]
        } noise;                    // task mwn: label noise of the training set
        size_t meta_size;           // task mwn: clean meta-set size
        uint64_t split_seed;        // task mwn: seed of the meta split and flip targets
    } data;
    struct {
        char name[CFG_STR_MAX];     // mlp | lenet | conv4 | resnet32 | resnet10 | resnet18 | resnet34
        size_t width;               // resnet32 width multiplier
        size_t channels;            // base channels; 0 = the architecture's own
        size_t hidden[CFG_LIST_MAX]; // mlp hidden widths
        size_t nhidden;
    } backbone;
    struct {
        char name[CFG_STR_MAX];     // none | evograd | unrolled (lib/meta/hyper.h)
        size_t candidates;          // K, evograd's population, in [1, 100000]
        double sigma;               // evograd's perturbation scale, > 0
        double temperature;         // evograd's softmax temperature tau, > 0
        char noise[CFG_STR_MAX];    // rademacher | gaussian (evograd's perturbations)
        double lookahead_lr;        // unrolled's look-ahead step alpha, >= 0; 0 = the base lr
    } method;
    struct {
        size_t epochs, batch_size;
        double diverge_factor;      // >= 0; 0 = off: the run stops as diverged (exit 3, metrics
                                    // kept) when an epoch's mean training loss exceeds
                                    // diverge_factor times the mean loss of the run's first steps
        struct optim_config optimizer;
        struct schedule_config schedule;
    } train;
    struct {
        size_t batch_size;               // validation (meta) batch size
        struct optim_config optimizer;   // the hyperparameters' optimiser
    } meta;
    struct {
        size_t every_epochs;        // test accuracy every N epochs (and after the last)
        size_t batch_size;
    } eval;
    struct {
        size_t every_epochs;        // 0 = only on SIGINT/SIGTERM
    } checkpoint;
    struct {
        size_t every_steps;         // 0 = off; else the exact hypergradient every N steps
        size_t draws;               // evograd: also the mean of this many fresh draws (0 = none)
    } diagnostics;
    struct {                        // the 1-D illustration (task toy1d, lib/tasks/toy1d.h)
        size_t trials;              // hypergradient estimates per lambda
        size_t grid_points;         // lambdas on linspace(lambda_min, lambda_max), >= 2
        double lambda_min, lambda_max; // 0 <= lambda_min < lambda_max
        size_t steps;               // joint (x, lambda) steps per trajectory
        double lr;                  // gradient-descent step on x
    } toy1d;
    struct {                        // the rotation experiment (task rotation, lib/tasks/rotation.h)
        double degrees;             // validation/test rotation, degrees counter-clockwise
        size_t train_end, val_begin, val_end; // data_rotation_split's ranges
        double init_deg;            // initial learned angle, degrees
    } rotation;
    struct {                        // label noise with Meta-Weight-Net (task mwn, lib/tasks/mwn.h)
        size_t hidden;              // weighting network's hidden units
        bool uniform_weights;       // method none: plain cross-entropy instead of the fixed VNet
    } mwn;
    struct {                        // cross-domain few-shot learning (task lft, lib/tasks/lft.h)
        char domains[CFG_LIST_MAX][CFG_STR_MAX]; // data.dataset fashion_mnist: built-in domain
                                    // names (fmnist-plain, ...); imagefolder: sub-folders of
                                    // data.root. Distinct, [A-Za-z0-9._-]+, at least 2
        size_t ndomains;
        char unseen[CFG_STR_MAX];   // the test domain, one of domains; the others are seen
        char aux[CFG_STR_MAX];      // the auxiliary classifier's domain (its base classes), one
                                    // of the seen domains; "" = the first seen domain; "none" = no
                                    // auxiliary classifier
        bool ft;                    // feature-wise transformation layers in the encoder
        size_t n_way, shot, queries; // training episodes: 5-way, 1 or 5 shots, 16 queries
        size_t episodes;            // training iterations (episode pairs) per epoch
        size_t aux_batch;           // auxiliary-classifier images per iteration
        double aux_decay;           // the auxiliary loss weight is aux_decay^floor(20 epoch /
                                    // train.epochs), (0, 1]
        size_t val_episodes;        // validation episodes per evaluation (the aux domain's val
                                    // classes)
        size_t test_episodes;       // test episodes on the unseen domain's novel classes
        size_t test_queries;        // queries per class in test episodes (15)
    } lft;
};

// Loads config_path, applies overrides[0..noverrides) ("key.path=value", in order), fills
// defaults and validates. On failure returns EG_ERR_CONFIG (or EG_ERR_IO for an unreadable
// file) with the located message; *out is untouched.
enum eg_status config_load(const char *config_path, const char *const *overrides,
                           size_t noverrides, struct run_config *out, struct eg_error *err);

// What a dotted key path ("method.sigma") names: a plain value, a list (whose overrides may give
// its items separated by commas: lft.domains=a,b,c) or nothing (no such key, or a section).
enum config_key_kind { CONFIG_KEY_NONE, CONFIG_KEY_VALUE, CONFIG_KEY_LIST };
enum config_key_kind config_key_kind(const char *path);

// Calls fn(ctx, path, value) for every key of c in the schema's order (the order of
// config_write and REFERENCE.md): path dotted ("train.optimizer.lr"), value as config_write writes
// it (numbers in plain notation, lists [a, b], strings quoted only where YAML needs it), every
// key whether the task reads it or not.
void config_each_value(const struct run_config *c,
                       void (*fn)(void *ctx, const char *path, const char *value), void *ctx);

// Whether task `task` reads the key or section at the dotted path ("rotation.degrees": only
// task rotation does; "method.sigma": every task, since one config is swept over methods). A
// key the config's task never reads is refused when it is set to anything but its default:
//   configs/x.yaml:30:3: rotation.degrees: 45 is set, but task supervised never reads this key
//   (only task rotation does); remove it, or set task: rotation
bool config_task_reads(const char *task, const char *path);

// The first key, in the schema's order, whose value differs between a and b (every key, read
// by the task or not): its dotted path into path (path_cap bytes) and its values in a and b, as
// config_write writes them, into va and vb (value_cap bytes each). False when a and b agree.
bool config_first_difference(const struct run_config *a, const struct run_config *b, char *path,
                             size_t path_cap, char *va, char *vb, size_t value_cap);

// Writes the resolved config as YAML: every key that c->task reads, in table order, with a
// header comment; numbers in plain notation where it reads back the same (30, 0.001; 1e-08).
// Loading the output gives back *c exactly when the keys the task never reads hold their
// defaults (as config_load leaves them).
void config_write(const struct run_config *c, FILE *f);

// The resolved YAML as a string (caller frees), as config_write writes it.
char *config_to_string(const struct run_config *c);
// The 64-bit FNV-1a hash of every key of c (a canonical form, not config_write's), which
// identifies the config in checkpoints.
uint64_t config_hash(const struct run_config *c);

// Reference documentation of every key from the tables: key, type, default, bounds or choices,
// description. markdown: a Markdown document (configs/REFERENCE.md); else plain text for
// `evograd list config`.
void config_write_reference(FILE *f, bool markdown);

#endif // EG_CONFIG_H
