/* evograd.c - the public API (evograd/evograd.h) over the library's modules: the hypergradient
 * methods (meta/hyper.h) on a problem of callbacks, the backbones (nn/backbones.h) with the
 * cross-entropy (nn/loss.h), the dataset loaders (data/source.h) and the run loop (run/run.h). */
#include "evograd/evograd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/source.h"
#include "io/config.h"
#include "meta/hyper.h"
#include "meta/netloss.h"
#include "meta/problem.h"
#include "nn/backbones.h"
#include "nn/net.h"
#include "run/run.h"

const char *eg_version(void)
{
    return EVOGRAD_VERSION;
}

// ---------------------------------------------------------------------------------------------
// hypergradients

struct eg_hyper {
    struct hyper *h;
    struct rng rng;
    size_t P, H;
    struct eg_problem problem; // the problem of the call in progress (meta_problem.ctx)
};

void eg_hyper_options_default(struct eg_hyper_options *o)
{
    EG_ASSERT(o != NULL);
    *o = (struct eg_hyper_options){.method = "evograd",
                                   .candidates = 2,
                                   .sigma = 0.001,
                                   .temperature = 0.05,
                                   .gaussian = false,
                                   .lookahead_lr = 0.1,
                                   .seed = 1};
}

// The problem of callbacks as the methods take it: ctx is the struct eg_problem.
static double user_train_loss(struct meta_problem *p, const float *theta, const float *lambda,
                              float *dtheta, float *dlambda)
{
    const struct eg_problem *u = p->ctx;
    return u->train_loss(u->ctx, theta, lambda, dtheta, dlambda);
}

static double user_val_loss(struct meta_problem *p, const float *theta, float *dtheta)
{
    const struct eg_problem *u = p->ctx;
    return u->val_loss(u->ctx, theta, dtheta);
}

static const struct meta_problem_ops user_ops = {.train_loss = user_train_loss,
                                                 .val_loss = user_val_loss};

static bool positive(double v)
{
    return isfinite(v) && v > 0;
}

enum eg_status eg_hyper_new(const struct eg_hyper_options *o, size_t P, size_t H,
                            struct eg_hyper **out, struct eg_error *err)
{
    EG_ASSERT(o != NULL && out != NULL);
    enum hyper_method m;
    if (o->method == NULL || !hyper_method_find(o->method, &m)) {
        return eg_errorf(err, EG_ERR_ARG,
                         "method: '%s' is not a method (evograd, unrolled_fd or none)",
                         o->method != NULL ? o->method : "(null)");
    }
    struct meta_problem probe = {.ops = &user_ops, .P = P, .H = H};
    if (!hyper_method_supports(m, &probe)) {
        return eg_errorf(err, EG_ERR_ARG,
                         "method: %s needs exact second-order products, which a problem of "
                         "callbacks does not give; use unrolled_fd (the same look-ahead with "
                         "finite differences) or evograd",
                         o->method);
    }
    if (P == 0 || H == 0) {
        return eg_errorf(err, EG_ERR_ARG, "sizes: P = %zu and H = %zu; both must be >= 1", P, H);
    }
    if (m == HYPER_EVOGRAD && (o->candidates < 1 || o->candidates > 100000)) {
        return eg_errorf(err, EG_ERR_ARG, "candidates: %zu; expected 1 to 100000", o->candidates);
    }
    if (m == HYPER_EVOGRAD && !positive(o->sigma)) {
        return eg_errorf(err, EG_ERR_ARG, "sigma: %g; expected a number > 0", o->sigma);
    }
    if (m == HYPER_EVOGRAD && !positive(o->temperature)) {
        return eg_errorf(err, EG_ERR_ARG, "temperature: %g; expected a number > 0", o->temperature);
    }
    if (hyper_method_is_unrolled(m) && !positive(o->lookahead_lr)) {
        return eg_errorf(err, EG_ERR_ARG, "lookahead_lr: %g; expected a number > 0",
                         o->lookahead_lr);
    }
    const struct hyper_params hp = {
        .method = m,
        .candidates = o->candidates,
        .sigma = o->sigma,
        .temperature = o->temperature,
        .noise = o->gaussian ? HYPER_NOISE_GAUSSIAN : HYPER_NOISE_RADEMACHER,
        .lookahead_lr = o->lookahead_lr,
    };
    struct eg_hyper *h = eg_xcalloc(1, sizeof *h);
    h->h = hyper_new(&hp, P, H);
    rng_seed(&h->rng, o->seed);
    h->P = P;
    h->H = H;
    *out = h;
    return EG_OK;
}

void eg_hyper_free(struct eg_hyper *h)
{
    if (h == NULL) return;
    hyper_free(h->h);
    free(h);
}

double eg_hypergrad(struct eg_hyper *h, const struct eg_problem *p, const float *theta,
                    const float *lambda, float *hg)
{
    EG_ASSERT(h != NULL && p != NULL && theta != NULL && lambda != NULL && hg != NULL);
    EG_ASSERT(p->P == h->P && p->H == h->H && p->train_loss != NULL && p->val_loss != NULL);
    h->problem = *p;
    struct meta_problem mp = {.ops = &user_ops, .P = p->P, .H = p->H, .ctx = &h->problem};
    struct hyper_info info;
    hyper_grad(h->h, &mp, theta, lambda, &h->rng, hg, &info);
    return info.val_loss;
}

// ---------------------------------------------------------------------------------------------
// backbones

struct eg_net {
    struct net *net;
    size_t classes, P;
    float *saved;            // (P) the own weights while another theta is in
    float *losses, *dlogits; // work space of the last batch: (n), (n x classes)
    size_t losses_cap, dlogits_cap;
};

enum eg_status eg_net_new(const char *name, size_t c, size_t h, size_t w, size_t classes,
                          uint64_t seed, struct eg_net **out, struct eg_error *err)
{
    EG_ASSERT(out != NULL);
    enum backbone_kind kind;
    if (name == NULL || !backbone_find(name, &kind)) {
        return eg_errorf(err, EG_ERR_ARG,
                         "backbone: '%s' is not a backbone (mlp, lenet, conv4, resnet32, "
                         "resnet10, resnet18, resnet34)",
                         name != NULL ? name : "(null)");
    }
    if (c == 0 || h == 0 || w == 0 || classes < 2) {
        return eg_errorf(err, EG_ERR_ARG,
                         "%s: images of %zu x %zu x %zu and %zu classes; expected sizes >= 1 "
                         "and at least 2 classes",
                         name, c, h, w, classes);
    }
    const struct backbone_spec spec = backbone_defaults(kind);
    const struct shape in = {c, h, w};
    const char *why = backbone_check(&spec, in, classes);
    if (why != NULL) return eg_errorf(err, EG_ERR_ARG, "%s: %s", name, why);
    struct rng rng;
    rng_seed(&rng, seed);
    struct eg_net *n = eg_xcalloc(1, sizeof *n);
    n->net = backbone_new(&spec, in, classes, &rng);
    n->classes = classes;
    n->P = n->net->nparams;
    n->saved = eg_xmalloc_floats(n->P);
    *out = n;
    return EG_OK;
}

void eg_net_free(struct eg_net *net)
{
    if (net == NULL) return;
    net_free(net->net);
    free(net->saved);
    free(net->losses);
    free(net->dlogits);
    free(net);
}

size_t eg_net_nparams(const struct eg_net *net)
{
    EG_ASSERT(net != NULL);
    return net->P;
}

float *eg_net_params(struct eg_net *net)
{
    EG_ASSERT(net != NULL);
    return net->net->params;
}

double eg_net_loss(struct eg_net *net, const float *theta, const float *x, const int32_t *y,
                   size_t n, bool train, float *dtheta, size_t *correct)
{
    EG_ASSERT(net != NULL && x != NULL && y != NULL && n >= 1);
    eg_grow_floats(&net->losses, &net->losses_cap, n);
    eg_grow_floats(&net->dlogits, &net->dlogits_cap, n * net->classes);
    return net_mean_xent_at(net->net, net->saved, theta != NULL ? theta : net->net->params, x, y, n,
                            train ? LAYER_MODE_TRAIN : LAYER_MODE_EVAL, net->losses, net->dlogits,
                            dtheta, correct);
}

// ---------------------------------------------------------------------------------------------
// datasets

struct eg_dataset {
    struct dataset d;
};

enum eg_status eg_dataset_load(const char *name, const char *root, bool train,
                               struct eg_dataset **out, struct eg_error *err)
{
    EG_ASSERT(out != NULL);
    enum data_source src;
    bool known = name != NULL && data_source_find(name, &src);
    if (!known || src == DATA_SOURCE_IMAGEFOLDER || src == DATA_SOURCE_SYNTHETIC) {
        return eg_errorf(err, EG_ERR_ARG,
                         "dataset: '%s' is not one of mnist, fashion_mnist, cifar10, cifar100",
                         name != NULL ? name : "(null)");
    }
    const struct data_spec spec = {.source = src, .root = root};
    struct dataset tr = {0}, te = {0};
    enum eg_status st = data_load(&spec, &tr, &te, err);
    if (st != EG_OK) return st;
    struct eg_dataset *d = eg_xcalloc(1, sizeof *d);
    d->d = train ? tr : te;
    dataset_deinit(train ? &te : &tr);
    *out = d;
    return EG_OK;
}

void eg_dataset_free(struct eg_dataset *d)
{
    if (d == NULL) return;
    dataset_deinit(&d->d);
    free(d);
}

size_t eg_dataset_size(const struct eg_dataset *d)
{
    EG_ASSERT(d != NULL);
    return d->d.n;
}

void eg_dataset_shape(const struct eg_dataset *d, size_t *c, size_t *h, size_t *w)
{
    EG_ASSERT(d != NULL);
    if (c != NULL) *c = d->d.shape.c;
    if (h != NULL) *h = d->d.shape.h;
    if (w != NULL) *w = d->d.shape.w;
}

size_t eg_dataset_classes(const struct eg_dataset *d)
{
    EG_ASSERT(d != NULL);
    return d->d.classes;
}

void eg_dataset_get(const struct eg_dataset *d, size_t first, size_t n, float *x, int32_t *y)
{
    EG_ASSERT(d != NULL && x != NULL && first <= d->d.n && n <= d->d.n - first);
    const size_t ib = dataset_image_bytes(&d->d);
    const uint8_t *px = d->d.pixels + first * ib;
    for (size_t i = 0; i < n * ib; i++)
        x[i] = (float)px[i] / 255.0f;
    if (y != NULL) memcpy(y, d->d.labels + first, n * sizeof *y);
}

// ---------------------------------------------------------------------------------------------
// runs

// Makes dir when missing (*created: whether this call made it); EG_ERR_IO when it cannot, or
// when it already holds a run (its config.yaml, at config).
static enum eg_status run_dir(const char *dir, const char *config, bool *created,
                              struct eg_error *err)
{
    *created = mkdir(dir, 0777) == 0;
    if (!*created && errno != EEXIST)
        return eg_errorf(err, EG_ERR_IO, "%s: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return eg_errorf(err, EG_ERR_IO, "%s: not a directory", dir);
    if (stat(config, &sb) == 0) {
        return eg_errorf(err, EG_ERR_IO,
                         "%s holds a run (its config.yaml); choose another directory", dir);
    }
    return EG_OK;
}

// Writes cfg resolved into path.
static enum eg_status write_config(const struct run_config *cfg, const char *path,
                                   struct eg_error *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return eg_errorf(err, EG_ERR_IO, "%s: %s", path, strerror(errno));
    config_write(cfg, f);
    if (ferror(f) != 0 || fclose(f) != 0) {
        return eg_errorf(err, EG_ERR_IO, "%s: %s", path, strerror(errno));
    }
    return EG_OK;
}

enum eg_status eg_run_config(const char *path, const char *const *overrides, size_t n,
                             const char *dir, struct eg_run_summary *summary, struct eg_error *err)
{
    EG_ASSERT(path != NULL && dir != NULL && (n == 0 || overrides != NULL));
    struct run_config *cfg = eg_xmalloc(sizeof *cfg);
    bool created = false;
    char p[4096];
    snprintf(p, sizeof p, "%s/config.yaml", dir);
    enum eg_status st = config_load(path, overrides, n, cfg, err);
    if (st == EG_OK) st = run_check(cfg, err);
    if (st == EG_OK) st = run_dir(dir, p, &created, err);
    if (st == EG_OK) {
        st = write_config(cfg, p, err);
        if (st == EG_OK) {
            const struct run_options opts = {.dir = dir};
            struct run_result res;
            st = run_experiment(cfg, &opts, &res, err);
            if (summary != NULL) {
                *summary = (struct eg_run_summary){.test_acc = res.task.test_acc,
                                                   .best_test_acc = res.task.best_acc,
                                                   .final_train_loss = res.final_train_loss,
                                                   .angle_deg = res.task.angle_deg,
                                                   .wall_s = res.wall_s,
                                                   .epochs = res.epochs_done};
            }
            if (st != EG_OK && !res.started) unlink(p); // nothing of the run was made
        } else {
            unlink(p);
        }
        if (st != EG_OK && created) rmdir(dir); // only when empty: what a run made stays
    }
    free(cfg);
    return st;
}
