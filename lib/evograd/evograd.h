/* evograd/evograd.h - libevograd's public API: hypergradients of a meta-problem of your own
 * (EvoGrad, Bohdal, Yang and Hospedales, NeurIPS 2021; and the one-step look-ahead by finite
 * differences), the built-in backbones and datasets, and whole runs from a config.
 *
 *   #include <evograd/evograd.h>
 *   cc prog.c $(pkg-config --cflags --libs evograd)          (shared)
 *   cc prog.c $(pkg-config --static --cflags --libs evograd) (static)
 *
 * Words: theta are the model's weights (P floats), lambda the hyperparameters (H floats). The
 * training loss l_T(theta, lambda) trains theta; the validation loss l_V(theta) judges it. A
 * hypergradient is dl_V/dlambda through the training of theta. EvoGrad estimates it from K
 * perturbed copies theta_k = theta + eps_k: it weights them by softmax(-l_T(theta_k) / tau),
 * takes the validation gradient at their weighted mean, and differentiates that mean with
 * respect to lambda through the weights, using first-order gradients only.
 *
 * Every function that can fail on its input returns an enum eg_status (evograd/status.h) and
 * writes the message into a caller-owned struct eg_error (which may be NULL); its outputs are
 * then left untouched. Objects are created by eg_*_new or eg_*_load into *out and released by the
 * matching eg_*_free (NULL is a no-op).
 * Arrays are the caller's; sizes are given in elements. Nothing here is thread-safe across calls
 * on one object; separate objects may be used from separate threads. */
#ifndef EVOGRAD_EVOGRAD_H
#define EVOGRAD_EVOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evograd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EVOGRAD_VERSION "0.4.0"

// The library's version, EVOGRAD_VERSION as it was built (a program can compare the two).
const char *eg_version(void);

// ---------------------------------------------------------------------------------------------
// A meta-problem of your own

// The two losses of a meta-problem, as callbacks on your own context. Each returns the loss
// and writes its gradients where the pointers are not NULL. Within one eg_hypergrad call the
// callbacks are called several times; they must use the same batches throughout the call.
struct eg_problem {
    size_t P, H; // sizes of theta and lambda, both >= 1
    // l_T(theta, lambda). dtheta: (P) dl_T/dtheta; dlambda: (H) dl_T/dlambda.
    double (*train_loss)(void *ctx, const float *theta, const float *lambda, float *dtheta,
                         float *dlambda);
    // l_V(theta). dtheta: (P) dl_V/dtheta.
    double (*val_loss)(void *ctx, const float *theta, float *dtheta);
    void *ctx;
};

// How hypergradients are taken.
struct eg_hyper_options {
    const char *method;  // "evograd" (default), "unrolled_fd" (the one-step look-ahead with
                         // its mixed derivative by central differences) or "none" (zero)
    size_t candidates;   // evograd's K >= 1 (default 2)
    double sigma;        // evograd's perturbation scale > 0 (default 0.001)
    double temperature;  // evograd's softmax temperature tau > 0 (default 0.05)
    bool gaussian;       // evograd's perturbations sigma N(0, 1) (default: +-sigma, Rademacher)
    double lookahead_lr; // unrolled_fd's step alpha > 0 (default 0.1)
    uint64_t seed;       // the perturbations' generator (default 1)
};

// The defaults above (the paper's rotation and label-noise settings).
void eg_hyper_options_default(struct eg_hyper_options *o);

// Work space for hypergradients of problems with sizes P and H. EG_ERR_ARG naming the option
// when one is out of range or the method is unknown (method "unrolled", the exact look-ahead,
// needs second-order products that a problem of callbacks does not give: use "unrolled_fd").
struct eg_hyper;
enum eg_status eg_hyper_new(const struct eg_hyper_options *o, size_t P, size_t H,
                            struct eg_hyper **out, struct eg_error *err);
void eg_hyper_free(struct eg_hyper *h);

// hg: (H) written with the hypergradient of p at (theta, lambda); theta (P) and lambda (H) are
// not modified. Returns l_V at the point the method evaluated it (EvoGrad: the weighted mean of
// the candidates). p's sizes must be those h was made for. The same h, seed and calls give the
// same numbers.
double eg_hypergrad(struct eg_hyper *h, const struct eg_problem *p, const float *theta,
                    const float *lambda, float *hg);

// ---------------------------------------------------------------------------------------------
// Backbones: the built-in image classifiers

// A network: its weights theta, and the mean softmax cross-entropy of a batch at any theta.
struct eg_net;

// Builds backbone `name` (mlp, lenet, conv4, resnet32, resnet10, resnet18, resnet34: the
// architectures `evograd list backbones` describes, at their paper sizes) for images of c x h x w
// and `classes` classes, initialised from seed. EG_ERR_ARG naming the value when the name is
// unknown or the images do not suit the architecture.
enum eg_status eg_net_new(const char *name, size_t c, size_t h, size_t w, size_t classes,
                          uint64_t seed, struct eg_net **out, struct eg_error *err);
void eg_net_free(struct eg_net *net);

// The number of weights P, and the weights themselves (P floats, the network's own: change
// them to train it).
size_t eg_net_nparams(const struct eg_net *net);
float *eg_net_params(struct eg_net *net);

// The mean cross-entropy of n images x (n x c x h x w floats, NCHW) with labels y (n, in
// [0, classes)) at weights theta (NULL: the network's own). dtheta (P) is written with its
// gradient unless NULL; *correct (unless NULL) with how many images the network classifies
// right. train: batch normalisation uses the batch's statistics and updates the running ones
// (training; a network with batch normalisation then needs n >= 2); else the running ones
// (evaluation). Labels outside [0, classes) and such an n are programming errors: the call
// aborts naming the check that failed.
double eg_net_loss(struct eg_net *net, const float *theta, const float *x, const int32_t *y,
                   size_t n, bool train, float *dtheta, size_t *correct);

// ---------------------------------------------------------------------------------------------
// Datasets: the loaders the runner uses

struct eg_dataset;

// Loads the training or the test split of dataset `name` (mnist, fashion_mnist, cifar10,
// cifar100) from root (NULL: the dataset's default folder; fashion_mnist's is where Debian's
// dataset-fashion-mnist installs it). EG_ERR_ARG for an unknown name; EG_ERR_IO or
// EG_ERR_FORMAT naming the file.
enum eg_status eg_dataset_load(const char *name, const char *root, bool train,
                               struct eg_dataset **out, struct eg_error *err);
void eg_dataset_free(struct eg_dataset *d);

// Images, their shape and the number of classes.
size_t eg_dataset_size(const struct eg_dataset *d);
void eg_dataset_shape(const struct eg_dataset *d, size_t *c, size_t *h, size_t *w);
size_t eg_dataset_classes(const struct eg_dataset *d);

// Images first .. first + n - 1 (first + n <= size) as floats in [0, 1] into x (n x c x h x w,
// NCHW) and their labels into y (n; may be NULL).
void eg_dataset_get(const struct eg_dataset *d, size_t first, size_t n, float *x, int32_t *y);

// ---------------------------------------------------------------------------------------------
// Runs from a config

// What a run measured (NaN where its task does not measure it).
struct eg_run_summary {
    double test_acc, best_test_acc; // the final and the best test accuracy
    double final_train_loss;        // the last epoch's mean training loss
    double angle_deg;               // rotation: the learned angle
    double wall_s;                  // seconds
    size_t epochs;                  // epochs done
};

// Runs the YAML config at path with the overrides ("key.path=value", in order; n of them) into
// directory dir (created when missing; it must not hold a run): the resolved config.yaml and the
// task's files (metrics.csv, ...), as `evograd run CONFIG --out DIR` writes them, but without
// the command's summary.csv, runs.csv and DONE. EG_ERR_CONFIG with the located message for a
// bad config, EG_ERR_IO / EG_ERR_FORMAT for data or output files, EG_ERR_DIVERGED when training
// diverged. A failure before training starts leaves nothing behind (config.yaml removed, and dir
// too when this call made it); one after keeps what the run wrote. summary (may be NULL) is
// written whenever the run was started, also when it then failed.
enum eg_status eg_run_config(const char *path, const char *const *overrides, size_t n,
                             const char *dir, struct eg_run_summary *summary, struct eg_error *err);

#ifdef __cplusplus
}
#endif

#endif // EVOGRAD_EVOGRAD_H
