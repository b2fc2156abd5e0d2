/* settings.c - config sections to library settings (settings.h). */
#include "settings.h"

#include <stdio.h>
#include <string.h>

struct optim_params run_optim_params(const struct optim_config *c)
{
    bool adam = strcmp(c->name, "adam") == 0;
    struct optim_params p = optim_defaults(adam ? OPTIM_KIND_ADAM : OPTIM_KIND_SGD);
    p.lr = (float)c->lr;
    p.weight_decay = (float)c->weight_decay;
    if (adam) {
        p.beta1 = (float)c->beta1;
        p.beta2 = (float)c->beta2;
        p.eps = (float)c->eps;
    } else {
        p.momentum = (float)c->momentum;
        p.nesterov = c->nesterov;
    }
    return p;
}

enum eg_status run_check_optim(const struct optim_config *c, const char *key,
                               struct eg_error *err)
{
    struct optim_params p = run_optim_params(c);
    const char *bad = optim_params_check(&p);
    if (bad != NULL) return eg_errorf(err, EG_ERR_CONFIG, "%s: %s", key, bad);
    return EG_OK;
}

struct schedule run_schedule(const struct run_config *cfg)
{
    const struct schedule_config *c = &cfg->train.schedule;
    struct schedule s = {.kind = SCHEDULE_KIND_CONSTANT, .base_lr = (float)cfg->train.optimizer.lr};
    if (strcmp(c->type, "step") == 0) {
        s.kind = SCHEDULE_KIND_STEP;
        s.gamma = (float)c->gamma;
        s.nmilestones = c->nmilestones;
        for (size_t i = 0; i < c->nmilestones; i++) s.milestones[i] = c->milestones[i];
    } else if (strcmp(c->type, "cosine") == 0) {
        s.kind = SCHEDULE_KIND_COSINE;
        s.total_epochs = cfg->train.epochs;
        s.min_lr = (float)c->min_lr;
    }
    return s;
}

struct backbone_spec run_backbone_spec(const struct run_config *cfg)
{
    enum backbone_kind kind = BACKBONE_LENET;
    EG_ASSERT(backbone_find(cfg->backbone.name, &kind)); // the config tables allow known names
    struct backbone_spec spec = backbone_defaults(kind);
    spec.width = cfg->backbone.width;
    if (cfg->backbone.channels > 0) spec.channels = cfg->backbone.channels;
    if (kind == BACKBONE_MLP) {
        EG_ASSERT(cfg->backbone.nhidden <= BACKBONE_MAX_HIDDEN);
        spec.nhidden = cfg->backbone.nhidden;
        for (size_t i = 0; i < spec.nhidden; i++) spec.hidden[i] = cfg->backbone.hidden[i];
    }
    return spec;
}

const char *run_backbone_key(const struct run_config *cfg, char *buf, size_t cap)
{
    const struct backbone_spec spec = run_backbone_spec(cfg);
    if (spec.kind == BACKBONE_MLP) {
        size_t used = (size_t)snprintf(buf, cap, "[");
        for (size_t i = 0; i < spec.nhidden && used < cap; i++) {
            used += (size_t)snprintf(buf + used, cap - used, "%s%zu", i ? ", " : "",
                                     spec.hidden[i]);
        }
        if (used < cap) snprintf(buf + used, cap - used, "]");
        return "backbone.hidden";
    }
    if (cfg->backbone.channels > 0 && spec.kind != BACKBONE_LENET) {
        snprintf(buf, cap, "%zu", cfg->backbone.channels);
        return "backbone.channels";
    }
    if (spec.kind == BACKBONE_RESNET32 && cfg->backbone.width > 1) {
        snprintf(buf, cap, "%zu", cfg->backbone.width);
        return "backbone.width";
    }
    snprintf(buf, cap, "%s", cfg->backbone.name);
    return "backbone.name";
}

struct hyper_params run_hyper_params(const struct run_config *cfg, double base_lr)
{
    struct hyper_params hp = {
        .candidates = cfg->method.candidates,
        .sigma = cfg->method.sigma,
        .temperature = cfg->method.temperature,
        .noise = strcmp(cfg->method.noise, "gaussian") == 0 ? HYPER_NOISE_GAUSSIAN
                                                            : HYPER_NOISE_RADEMACHER,
        .lookahead_lr = cfg->method.lookahead_lr > 0.0 ? cfg->method.lookahead_lr : base_lr,
        .diagnostics = cfg->diagnostics.every_steps > 0,
        .diag_draws = cfg->diagnostics.every_steps > 0 ? cfg->diagnostics.draws : 0,
    };
    bool known = hyper_method_find(cfg->method.name, &hp.method);
    EG_ASSERT(known); // the config's enum lists the same names
    return hp;
}

bool run_uses_tangents(const struct run_config *cfg)
{
    if (strcmp(cfg->method.name, "none") == 0) return false;
    return strcmp(cfg->method.name, "unrolled") == 0 || cfg->diagnostics.every_steps > 0;
}

struct data_spec run_data_spec(const struct run_config *cfg)
{
    enum data_source src = DATA_SOURCE_MNIST;
    EG_ASSERT(data_source_find(cfg->data.dataset, &src)); // the config's enum lists the same
    return (struct data_spec){
        .source = src,
        .root = cfg->data.root[0] != '\0' ? cfg->data.root : NULL,
        .image = {cfg->data.image_c, cfg->data.image_h, cfg->data.image_w},
        .classes = cfg->data.classes,
        .synthetic_train = cfg->data.synthetic_train,
        .synthetic_test = cfg->data.synthetic_test,
        .seed = cfg->seed,
    };
}

struct augment run_augment(const struct run_config *cfg, bool train)
{
    struct augment a = augment_none();
    const char *norm = cfg->data.dataset;
    if (strcmp(norm, "imagefolder") == 0) norm = "imagenet";
    augment_normalisation(norm, &a); // synthetic: plain x/255
    if (train) {
        a.crop_pad = cfg->data.crop_pad;
        a.hflip = cfg->data.hflip;
    }
    return a;
}

double run_hyper_bytes(const struct hyper_params *hp, size_t P, size_t H, double *candidates)
{
    const double f = (double)sizeof(float), d = (double)sizeof(double);
    double per_k = 0.0, rest = 0.0;
    if (hp->method == HYPER_EVOGRAD) {
        // eps (K x P) and d (K x H) floats, losses and w (K) doubles; ebar (P) and acc (H)
        // doubles, point and grad (P) floats
        per_k = (double)hp->candidates * (((double)P + (double)H) * f + 2.0 * d);
        rest = ((double)P + (double)H) * d + 2.0 * (double)P * f;
    } else if (hp->method == HYPER_UNROLLED) {
        rest = (3.0 * (double)P + (double)H) * f; // point, grad, v (P); the mixed product (H)
    } else if (hp->method == HYPER_UNROLLED_FD) {
        rest = (3.0 * (double)P + 2.0 * (double)H) * f; // point, grad, v (P); dlam_pos/neg (H)
    }
    if (hp->diagnostics) {
        // the exact look-ahead's point, grad, v (P) and its hypergradient, mixed product and a
        // draw (H) with the draws' mean (H doubles)
        rest += (3.0 * (double)P + 3.0 * (double)H) * f + (double)H * d;
    }
    if (candidates != NULL) *candidates = per_k;
    return rest;
}
