/* task_lft.c - task lft (task_lft.h): domains, episodes, one iteration, validation, the final
 * few-shot test, the metrics row and the checkpoint sections. */
#include "task_lft.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/batch.h"
#include "data/domains.h"
#include "data/episode.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "nn/backbones.h"
#include "settings.h"
#include "tasks/lft.h"

enum {
    LFT_STREAM_INIT = 1,
    LFT_STREAM_EPISODES = 2,
    LFT_STREAM_HYPER = 3,
    LFT_STREAM_FT = 5,
    LFT_STREAM_VAL = 6,
    LFT_STREAM_TEST = 7,
    LFT_STREAM_AUX = 102 // seeds the aux batcher (which then owns its generator)
};

static const char *const lft_columns[] = {
    "epoch",     "step",      "wall_s",    "train_loss", "train_acc", "aux_loss",
    "aux_weight", "val_loss", "val_acc",   "test_acc",   "test_ci95", "lr",
    "peak_rss_mb", "ps_domain", "pu_domain", "ft_gamma",   "ft_beta",
};
#define NLFT (sizeof lft_columns / sizeof lft_columns[0])
#define LFT_CHUNK 64

// The task's resumable state: one checkpoint section, plain data.
struct lft_stats {
    double acc_sum, aux_sum, val_sum; // epoch in progress: episode accuracies, aux losses and
    uint64_t count, aux_count, val_count; //   meta-step validation losses, and their counts
    double last_acc, last_aux, last_val_loss; // the last finished epoch's means
    double last_val_acc, last_test, last_ci;  // the latest evaluations (NaN before them)
    uint64_t ps, pu;         // this epoch's domains (indices into the seen list)
    uint64_t epoch_drawn;    // the epoch whose domains ps, pu are (+1; 0 = none yet)
    struct rng episodes, ft, hyper;
};

struct lft_task {
    const struct run_config *cfg;
    size_t nd, unseen, aux;       // domain count; unseen and aux domain indices (aux nd: none)
    struct domain d[CFG_LIST_MAX];
    struct class_index base[CFG_LIST_MAX];
    size_t seen[CFG_LIST_MAX], nseen;
    struct augment train_aug, plain;
    struct lft_model *m;
    struct lft_problem *pr;
    struct lft_optims o;
    struct hyper *hyper;
    struct optim *meta_opt;
    struct batcher auxb;
    float *xs, *xu, *xa;
    int32_t *ya;
    struct lft_stats st;
};

// ---------------------------------------------------------------------------------------------
// checks and set-up

static bool is_builtin(const struct run_config *cfg)
{
    return strcmp(cfg->data.dataset, "fashion_mnist") == 0;
}

static size_t domain_index(const struct run_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->lft.ndomains; i++) {
        if (strcmp(cfg->lft.domains[i], name) == 0) return i;
    }
    return cfg->lft.ndomains;
}

// The aux domain's index: lft.aux, or the first seen domain for "", or ndomains for "none".
static size_t aux_index(const struct run_config *cfg)
{
    const size_t u = domain_index(cfg, cfg->lft.unseen);
    if (strcmp(cfg->lft.aux, "none") == 0) return cfg->lft.ndomains;
    if (cfg->lft.aux[0] != '\0') return domain_index(cfg, cfg->lft.aux);
    return u == 0 ? 1 : 0;
}

static enum eg_status lft_check(const struct run_config *cfg, struct eg_error *err)
{
    const bool builtin = is_builtin(cfg);
    if (!builtin && strcmp(cfg->data.dataset, "imagefolder") != 0) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "data.dataset: task lft reads its domains from fashion_mnist (the "
                         "built-in domains) or imagefolder (data.root/<domain>), got %s",
                         cfg->data.dataset);
    }
    if (builtin) {
        for (size_t i = 0; i < cfg->lft.ndomains; i++) {
            size_t d;
            if (!fmnist_domain_find(cfg->lft.domains[i], &d)) {
                char names[256] = "";
                for (size_t k = 0; k < FMNIST_DOMAINS; k++) {
                    strcat(names, k ? ", " : "");
                    strcat(names, fmnist_domain_name(k));
                }
                return eg_errorf(err, EG_ERR_CONFIG,
                                 "lft.domains: '%s' is not a built-in domain (data.dataset "
                                 "fashion_mnist has %s; for your own domains use data.dataset "
                                 "imagefolder)",
                                 cfg->lft.domains[i], names);
            }
        }
    } else if (cfg->data.root[0] == '\0') {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "data.root: task lft with imagefolder needs the folder that holds the "
                         "domain folders (data.root/<domain>)");
    }
    const size_t u = domain_index(cfg, cfg->lft.unseen);
    if (u == cfg->lft.ndomains) {
        return eg_errorf(err, EG_ERR_CONFIG, "lft.unseen: '%s' is not one of lft.domains",
                         cfg->lft.unseen);
    }
    const size_t a = aux_index(cfg);
    if (a == u || (a == cfg->lft.ndomains && strcmp(cfg->lft.aux, "none") != 0)) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "lft.aux: '%s' must be a seen domain (one of lft.domains other than "
                         "lft.unseen), \"\" or none",
                         cfg->lft.aux);
    }
    enum backbone_kind kind;
    EG_ASSERT(backbone_find(cfg->backbone.name, &kind));
    bool resnet = kind == BACKBONE_RESNET10 || kind == BACKBONE_RESNET18 ||
                  kind == BACKBONE_RESNET34;
    if (!resnet && !(kind == BACKBONE_CONV4 && !cfg->lft.ft)) {
        return eg_errorf(err, EG_ERR_CONFIG,
                         "backbone.name: task lft needs resnet10, resnet18 or resnet34 (conv4 "
                         "only with lft.ft: false), got %s",
                         cfg->backbone.name);
    }
    if (strcmp(cfg->method.name, "none") != 0) {
        if (!cfg->lft.ft) {
            return eg_errorf(err, EG_ERR_CONFIG,
                             "method.name: %s learns the FT layers, but lft.ft is false",
                             cfg->method.name);
        }
        if (cfg->lft.ndomains < 3) {
            return eg_errorf(err, EG_ERR_CONFIG,
                             "lft.domains: method %s needs two seen domains (pseudo-seen and "
                             "pseudo-unseen) besides the unseen one; %zu given",
                             cfg->method.name, cfg->lft.ndomains);
        }
    }
    struct shape s = {1, 28, 28};
    if (!builtin) s = (struct shape){cfg->data.image_c, cfg->data.image_h, cfg->data.image_w};
    struct backbone_spec spec = run_backbone_spec(cfg);
    spec.features_only = true;
    spec.ft = cfg->lft.ft;
    const char *why = backbone_check(&spec, s, 2);
    if (why != NULL) {
        return eg_errorf(err, EG_ERR_CONFIG, "backbone.name: %s cannot take %zux%zux%zu images: %s",
                         cfg->backbone.name, s.c, s.h, s.w, why);
    }
    enum eg_status st = run_check_optim(&cfg->train.optimizer, "train.optimizer", err);
    if (st == EG_OK) st = run_check_optim(&cfg->meta.optimizer, "meta.optimizer", err);
    if (st != EG_OK) return st;
    struct memory_estimate e = {0};
    task_lft_memory(cfg, &e);
    return memory_check(&e, err);
}

// ---------------------------------------------------------------------------------------------
// the memory estimate

// The built-in domains (data/domains.h): 12,000 of the Fashion-MNIST training images each, about
// 6,000 of them base (20 classes) and 2,400 novel; the aux classifier of image-folder domains is
// sized for miniImageNet's 64 base classes.
enum {
    FMNIST_DOMAIN_IMAGES = 12000,
    FMNIST_BASE_IMAGES = 6000,
    FMNIST_NOVEL_IMAGES = 2400,
    FMNIST_BASE_CLASSES = 20,
    FOLDER_AUX_CLASSES = 64,
};

static size_t larger(size_t a, size_t b)
{
    return a > b ? a : b;
}

static size_t smaller(size_t a, size_t b)
{
    return a < b ? a : b;
}

// a * b, or SIZE_MAX when that overflows (lft.test_queries has no upper bound).
static size_t times(size_t a, size_t b)
{
    return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

// The episode key that scales n_way * (shot + queries) most: the largest of the three values.
static const char *episode_key(const struct run_config *c, size_t *value)
{
    if (c->lft.n_way >= c->lft.queries && c->lft.n_way >= c->lft.shot) {
        *value = c->lft.n_way;
        return "lft.n_way";
    }
    *value = c->lft.queries >= c->lft.shot ? c->lft.queries : c->lft.shot;
    return c->lft.queries >= c->lft.shot ? "lft.queries" : "lft.shot";
}

void task_lft_memory(const struct run_config *cfg, struct memory_estimate *e)
{
    const double f = (double)sizeof(float);
    const bool builtin = is_builtin(cfg);
    const struct shape img =
        builtin ? (struct shape){1, 28, 28}
                : (struct shape){cfg->data.image_c, cfg->data.image_h, cfg->data.image_w};
    const double in = (double)shape_numel(img);
    const bool has_aux = aux_index(cfg) < cfg->lft.ndomains;
    const size_t aux_classes =
        has_aux ? (builtin ? (size_t)FMNIST_BASE_CLASSES : (size_t)FOLDER_AUX_CLASSES) : 0;
    struct backbone_spec spec = run_backbone_spec(cfg);
    spec.ft = cfg->lft.ft;
    struct lft_nets nets;
    lft_model_build(&spec, img, aux_classes, &nets);
    size_t P_all = 0, H = 0, S = 0, P_rel = 0, S_rel = 0, P_aux = 0;
    net_count(nets.enc, &P_all, &H, &S);
    net_count(nets.rel, &P_rel, NULL, &S_rel);
    if (nets.aux != NULL) net_count(nets.aux, &P_aux, NULL, NULL);
    const size_t P_enc = P_all - H, P = P_enc + P_rel;
    const double fn = (double)shape_numel(net_out_shape(nets.enc));
    char v[MEMORY_VALUE_MAX];

    // The built-in domains' images and labels, the base classes' index, the aux batcher's lists
    // and the test domain's features (test); image-folder domains are not known yet.
    if (builtin) {
        const double nd = (double)cfg->lft.ndomains, sz = (double)sizeof(size_t);
        double bytes = nd * FMNIST_DOMAIN_IMAGES * (in + 8.0) + nd * FMNIST_BASE_IMAGES * sz;
        if (has_aux) bytes += 2.0 * FMNIST_BASE_IMAGES * sz;
        bytes += FMNIST_NOVEL_IMAGES * fn * f;
        memory_add(e, "lft.domains", "for the domains' images", bytes, "%zu domains",
                   cfg->lft.ndomains);
    }

    // Parameters and gradients of the three nets, the encoder's running statistics, the
    // optimisers' state (lft_optims_init), the problem's theta, lambda, hypergradient and saved
    // copy (lft_problem_new).
    const struct optim_params op = run_optim_params(&cfg->train.optimizer);
    const double blocks = 2.0 * ((double)P_all + (double)P_rel + (double)P_aux) + (double)S +
                          (double)S_rel;
    const double problem = (double)P + 2.0 * (double)H + (double)P_all + (double)P_rel;
    const double params = (blocks + problem) * f + optim_state_bytes(&op, P_enc) +
                          optim_state_bytes(&op, P_rel) + optim_state_bytes(&op, P_aux);
    const char *key = run_backbone_key(cfg, v, sizeof v);
    memory_add(e, key, "for the parameters, their gradients and copies and the optimisers' state",
               params, "%s", v);

    // The method (hyper_new on theta and lambda) and the meta optimiser.
    const struct hyper_params hp = run_hyper_params(cfg, cfg->train.optimizer.lr);
    double per_k = 0.0;
    const double rest = hp.method != HYPER_NONE ? run_hyper_bytes(&hp, P, H, &per_k) : 0.0;
    const struct optim_params mop = run_optim_params(&cfg->meta.optimizer);
    memory_add(e, "method.name", "for the method's work space",
               rest + optim_state_bytes(&mop, H > 0 ? H : 1), "%s", cfg->method.name);
    if (per_k > 0.0) {
        memory_add(e, "method.candidates", "for EvoGrad's candidate perturbations", per_k, "%zu",
                   cfg->method.candidates);
    }
    // the exact unrolled method: the problem's tangent work space (lft_train_loss_tangent: the
    // encoder's direction and the tangents of both nets' gradients)
    const bool exact = run_uses_tangents(cfg);
    if (exact) {
        memory_add(e, "method.name", "for the tangents of the gradients",
                   (2.0 * (double)P_all + (double)P_rel) * f, "%s", cfg->method.name);
    }

    // The encoder keeps buffers for its largest batch: an episode, the aux batch (both with a
    // backward) or a chunk of the test's feature extraction (forward only, after the training).
    const size_t ne = cfg->lft.n_way * (cfg->lft.shot + cfg->lft.queries);
    const size_t na = has_aux ? (builtin ? smaller(cfg->lft.aux_batch, FMNIST_BASE_IMAGES)
                                         : cfg->lft.aux_batch)
                              : 0;
    const size_t chunk = builtin ? smaller(LFT_CHUNK, FMNIST_NOVEL_IMAGES) : LFT_CHUNK;
    const size_t nb = larger(ne, na);
    // an episode's tangent pass (exact unrolled) keeps a second set of the encoder's buffers
    double enc = net_batch_bytes(nets.enc, nb, NET_PASS_BACKWARD);
    if (exact) {
        const double t = net_batch_bytes(nets.enc, ne, NET_PASS_TANGENT);
        if (t > enc) enc = t;
    }
    if (chunk > nb) {
        const double fwd = net_batch_bytes(nets.enc, chunk, NET_PASS_FORWARD);
        if (fwd > enc) enc = fwd;
    }
    size_t ev = 0;
    const char *ekey = episode_key(cfg, &ev);
    const bool aux_larger = na > ne;
    // with the episode buffers xs, xu and the episode's feature gradients (dfeat)
    memory_add(e, aux_larger ? "lft.aux_batch" : ekey, "for the encoder's activations", enc,
               "%zu", aux_larger ? cfg->lft.aux_batch : ev);
    memory_add(e, ekey, "for the episodes", (double)ne * (2.0 * in + (exact ? 2.0 : 1.0) * fn) * f,
               "%zu", ev); // xs, xu, dfeat (and tdfeat)

    // The aux classifier's buffers, the aux batch and the aux loss's work space.
    if (nets.aux != NULL) {
        const double work = (double)cfg->lft.aux_batch * (in + 1.0) * f +
                            (double)na * (2.0 + (double)aux_classes + fn) * f;
        memory_add(e, "lft.aux_batch", "for the aux batch",
                   net_batch_bytes(nets.aux, na, NET_PASS_BACKWARD_DX) + work, "%zu",
                   cfg->lft.aux_batch);
    }

    // The relation module sees every (query, class) pair of an episode as one batch: training
    // and validation episodes with a backward, test episodes forward only; its work buffers
    // (relation.c: grow) hold the larger, and a test episode's support and query features.
    const size_t nw = cfg->lft.n_way, pt = nw * nw * cfg->lft.queries;
    const size_t pe = times(nw * nw, cfg->lft.test_queries), pm = larger(pt, pe);
    double rel = net_batch_bytes(nets.rel, pt, exact ? NET_PASS_TANGENT_DX : NET_PASS_BACKWARD_DX);
    if (pe > pt) {
        const double fwd = net_batch_bytes(nets.rel, pe, NET_PASS_FORWARD);
        if (fwd > rel) rel = fwd;
    }
    rel += (double)pm * (5.0 * fn + 3.0) * f +
           (double)nw * ((double)cfg->lft.shot + (double)cfg->lft.test_queries) * fn * f;
    if (exact) rel += (double)pt * (5.0 * fn + 1.0) * f; // tproto, tpairs, tdpairs, tdscores
    const bool test_larger = pe > pt;
    const size_t q = test_larger ? cfg->lft.test_queries : cfg->lft.queries;
    const char *pkey = nw >= q ? "lft.n_way" : test_larger ? "lft.test_queries" : "lft.queries";
    memory_add(e, pkey, "for the relation module's pairs", rel, "%zu", nw >= q ? nw : q);

    net_free(nets.enc);
    net_free(nets.rel);
    net_free(nets.aux);
}

static void lft_free(void *state)
{
    struct lft_task *r = state;
    if (r == NULL) return;
    for (size_t i = 0; i < r->nd; i++) {
        class_index_deinit(&r->base[i]);
        domain_deinit(&r->d[i]);
    }
    if (r->auxb.order != NULL) batcher_deinit(&r->auxb);
    lft_problem_free(r->pr);
    lft_optims_deinit(&r->o);
    lft_model_free(r->m);
    hyper_free(r->hyper);
    optim_free(r->meta_opt);
    free(r->xs);
    free(r->xu);
    free(r->xa);
    free(r->ya);
    free(r);
}

// Can an episode of this shape be drawn from ci? The message names the domain and split.
static enum eg_status check_episodes(const struct class_index *ci, const struct domain *d,
                                     enum fewshot_split s, size_t n_way, size_t shot,
                                     size_t queries, const char *what, struct eg_error *err)
{
    struct rng probe;
    rng_seed(&probe, 1);
    struct episode ep;
    struct eg_error e;
    if (episode_sample(ci, n_way, shot, queries, 0, &probe, &ep, &e) != EG_OK) {
        return eg_errorf(err, EG_ERR_CONFIG, "%s: domain %s, %s classes: %s", what, d->name,
                         fewshot_split_name(s), e.msg);
    }
    episode_deinit(&ep);
    return EG_OK;
}

static enum eg_status load_domains(struct lft_task *r, struct eg_error *err)
{
    const struct run_config *cfg = r->cfg;
    const bool builtin = is_builtin(cfg);
    const char *root = cfg->data.root[0] != '\0' ? cfg->data.root : NULL;
    const struct shape img = {cfg->data.image_c, cfg->data.image_h, cfg->data.image_w};
    for (size_t i = 0; i < cfg->lft.ndomains; i++) {
        enum eg_status st;
        if (builtin) {
            size_t k = 0;
            EG_ASSERT(fmnist_domain_find(cfg->lft.domains[i], &k));
            st = domain_load_fmnist(root, k, &r->d[i], err);
        } else {
            char path[CFG_PATH_MAX + CFG_STR_MAX + 2];
            snprintf(path, sizeof path, "%s/%s", cfg->data.root, cfg->lft.domains[i]);
            st = domain_load_folder(path, cfg->lft.domains[i], img, &r->d[i], err);
        }
        if (st != EG_OK) return st;
        r->nd = i + 1;
        class_index_build(&r->base[i], &r->d[i].split[FEWSHOT_BASE]);
    }
    const size_t nw = cfg->lft.n_way, k = cfg->lft.shot;
    for (size_t i = 0; i < r->nd; i++) {
        if (i == r->unseen) continue;
        r->seen[r->nseen++] = i;
        enum eg_status st = check_episodes(&r->base[i], &r->d[i], FEWSHOT_BASE, nw, k,
                                           cfg->lft.queries, "lft (training episodes)", err);
        if (st != EG_OK) return st;
    }
    if (cfg->lft.val_episodes > 0) {
        const size_t v = r->aux < r->nd ? r->aux : r->seen[0];
        struct class_index ci;
        class_index_build(&ci, &r->d[v].split[FEWSHOT_VAL]);
        enum eg_status st = check_episodes(&ci, &r->d[v], FEWSHOT_VAL, nw, k, cfg->lft.queries,
                                           "lft.val_episodes", err);
        class_index_deinit(&ci);
        if (st != EG_OK) return st;
    }
    struct class_index ci;
    class_index_build(&ci, &r->d[r->unseen].split[FEWSHOT_NOVEL]);
    enum eg_status st = check_episodes(&ci, &r->d[r->unseen], FEWSHOT_NOVEL, nw, k,
                                       cfg->lft.test_queries, "lft (test episodes)", err);
    class_index_deinit(&ci);
    return st;
}

static enum eg_status build(struct lft_task *r, const struct run_config *cfg,
                            struct eg_error *err)
{
    r->cfg = cfg;
    r->unseen = domain_index(cfg, cfg->lft.unseen);
    r->aux = aux_index(cfg);
    enum eg_status st = load_domains(r, err);
    if (st != EG_OK) return st;

    r->plain = run_augment(cfg, false);
    r->train_aug = run_augment(cfg, true);

    struct rng init;
    rng_seed_stream(&init, cfg->seed, LFT_STREAM_INIT);
    struct backbone_spec spec = run_backbone_spec(cfg);
    spec.ft = cfg->lft.ft;
    const struct dataset *any = &r->d[0].split[FEWSHOT_BASE];
    size_t aux_classes = r->aux < r->nd ? r->d[r->aux].split[FEWSHOT_BASE].classes : 0;
    r->m = lft_model_new(&spec, any->shape, aux_classes, &init);
    rng_seed_stream(&r->st.ft, cfg->seed, LFT_STREAM_FT);
    rng_seed_stream(&r->st.episodes, cfg->seed, LFT_STREAM_EPISODES);
    rng_seed_stream(&r->st.hyper, cfg->seed, LFT_STREAM_HYPER);
    r->pr = lft_problem_new(r->m, &r->st.ft);
    struct optim_params op = run_optim_params(&cfg->train.optimizer);
    lft_optims_init(&r->o, r->m, &op);
    struct hyper_params hp = run_hyper_params(cfg, cfg->train.optimizer.lr);
    if (hp.method != HYPER_NONE) r->hyper = hyper_new(&hp, r->pr->mp.P, r->m->H);
    struct optim_params mop = run_optim_params(&cfg->meta.optimizer);
    r->meta_opt = optim_new(&mop, r->m->H > 0 ? r->m->H : 1);

    const size_t numel = shape_numel(any->shape);
    const size_t ne = cfg->lft.n_way * (cfg->lft.shot + cfg->lft.queries);
    r->xs = eg_xmalloc_floats(ne * numel);
    r->xu = eg_xmalloc_floats(ne * numel);
    if (r->aux < r->nd) {
        const struct dataset *ab = &r->d[r->aux].split[FEWSHOT_BASE];
        struct rng s;
        rng_seed_stream(&s, cfg->seed, LFT_STREAM_AUX);
        batcher_init(&r->auxb, ab, NULL, ab->n, true, &r->train_aug, rng_u64(&s));
        r->xa = eg_xmalloc_floats(cfg->lft.aux_batch * numel);
        r->ya = eg_xmalloc_array(cfg->lft.aux_batch, sizeof *r->ya);
    }
    r->st.last_acc = r->st.last_aux = r->st.last_val_loss = NAN;
    r->st.last_val_acc = r->st.last_test = r->st.last_ci = NAN;
    return EG_OK;
}

static enum eg_status lft_init(const struct run_config *cfg, void **state, struct eg_error *err)
{
    struct lft_task *r = eg_xcalloc(1, sizeof *r);
    *state = NULL;
    enum eg_status st = build(r, cfg, err);
    if (st != EG_OK) {
        lft_free(r);
        return st;
    }
    *state = r;
    return EG_OK;
}

static size_t lft_steps(const void *state)
{
    const struct lft_task *r = state;
    return r->cfg->lft.episodes;
}

// A loaded state's domain indices must be of the seen list.
static bool stats_valid(const void *data, const void *ctx, char *why, size_t cap)
{
    const struct lft_task *r = ctx;
    struct lft_stats st;
    memcpy(&st, data, sizeof st);
    if (st.epoch_drawn == 0 || (st.ps < r->nseen && st.pu < r->nseen)) return true;
    snprintf(why, cap, "domains %llu and %llu of %zu seen ones", (unsigned long long)st.ps,
             (unsigned long long)st.pu, r->nseen);
    return false;
}

static void lft_sections(void *state, struct ckpt_list *l)
{
    struct lft_task *r = state;
    struct lft_model *m = r->m;
    ckpt_add_checked(l, "", "lft", &r->st, sizeof r->st, stats_valid, r);
    ckpt_add(l, "", "encoder", m->enc->params, m->enc->nparams * sizeof(float));
    ckpt_add(l, "", "encoder_stats", m->enc->stats, m->enc->nstats * sizeof(float));
    ckpt_add(l, "", "relation", m->rel->net->params, m->P_rel * sizeof(float));
    if (m->aux != NULL) {
        ckpt_add(l, "", "aux", m->aux->params, m->aux->nparams * sizeof(float));
        batcher_sections(&r->auxb, "aux_", l);
    }
    optim_sections(r->o.enc, "opt_enc_", l);
    optim_sections(r->o.rel, "opt_rel_", l);
    optim_sections(r->o.aux, "opt_aux_", l);
    optim_sections(r->meta_opt, "meta_", l);
}

// ---------------------------------------------------------------------------------------------
// one iteration

// Samples an episode of domain dom's base classes into x (training augmentation).
static void next_episode(struct lft_task *r, size_t dom, float *x)
{
    const struct run_config *cfg = r->cfg;
    struct episode ep;
    struct eg_error e;
    enum eg_status st = episode_sample(&r->base[dom], cfg->lft.n_way, cfg->lft.shot,
                                       cfg->lft.queries, (int32_t)dom, &r->st.episodes, &ep, &e);
    EG_ASSERT(st == EG_OK); // checked when the domains were loaded
    episode_images(&r->d[dom].split[FEWSHOT_BASE], &ep, &r->train_aug, &r->st.episodes, x);
    episode_deinit(&ep);
}

static double aux_weight_of(const struct run_config *cfg, uint64_t epoch)
{
    double k = floor(20.0 * (double)epoch / (double)cfg->train.epochs);
    return pow(cfg->lft.aux_decay, k);
}

// One iteration (task_ops.step): the epoch's domains at its first step, a PS and a PU episode,
// an aux batch, lft_step.
static struct task_step lft_task_step(void *state, const struct task_clock *clk)
{
    struct lft_task *r = state;
    const struct run_config *cfg = r->cfg;
    struct lft_stats *st = &r->st;
    if (st->epoch_drawn != clk->epoch + 1) { // the epoch's pseudo-seen and pseudo-unseen domains
        st->ps = rng_below(&st->episodes, r->nseen);
        st->pu = r->nseen > 1 ? (st->ps + 1 + rng_below(&st->episodes, r->nseen - 1)) % r->nseen
                              : st->ps;
        st->epoch_drawn = clk->epoch + 1;
    }
    next_episode(r, r->seen[st->ps], r->xs);
    next_episode(r, r->seen[st->pu], r->xu);
    struct lft_aux aux = {.x = r->xa, .y = r->ya, .weight = (float)aux_weight_of(cfg, clk->epoch)};
    if (r->aux < r->nd) aux.n = batcher_next(&r->auxb, cfg->lft.aux_batch, r->xa, r->ya);
    lft_problem_set_episodes(r->pr, r->xs, r->xu, cfg->lft.n_way, cfg->lft.shot,
                             cfg->lft.queries);
    const struct meta_step ms = {.hyper = r->hyper,
                                 .opt = r->meta_opt,
                                 .lr = (float)cfg->meta.optimizer.lr,
                                 .rng = &st->hyper};
    struct lft_step_info info;
    double loss = lft_step(r->pr, &r->o, clk->lr, &aux, &ms, &info);
    st->acc_sum += info.episode_acc;
    st->count++;
    if (!isnan(info.aux_loss)) {
        st->aux_sum += info.aux_loss;
        st->aux_count++;
    }
    if (isfinite(info.hyper.val_loss)) {
        st->val_sum += info.hyper.val_loss;
        st->val_count++;
    }
    struct task_step s = {loss, 1, NULL};
    if (!isfinite(loss)) s.diverged = "the episode loss is not finite";
    const float *lambda = r->m->enc->params + r->m->P_enc;
    for (size_t k = 0; k < r->m->H && s.diverged == NULL; k++) {
        if (!isfinite(lambda[k])) s.diverged = "the FT parameters are not finite";
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// evaluation and results

// *acc = the mean accuracy of lft.val_episodes episodes of the validation domain's val classes.
// Polls the stop request before every episode: EG_STOPPED with *acc untouched.
static enum eg_status validate(struct lft_task *r, const struct task_clock *clk, double *acc)
{
    const struct run_config *cfg = r->cfg;
    const size_t v = r->aux < r->nd ? r->aux : r->seen[0];
    const struct dataset *d = &r->d[v].split[FEWSHOT_VAL];
    struct class_index ci;
    class_index_build(&ci, d);
    struct rng rng;
    rng_seed_stream(&rng, cfg->seed, LFT_STREAM_VAL);
    double sum = 0.0;
    for (size_t e = 0; e < cfg->lft.val_episodes; e++) {
        if (task_stop_requested(clk)) {
            class_index_deinit(&ci);
            return EG_STOPPED;
        }
        struct episode ep;
        struct eg_error ignored;
        EG_ASSERT(episode_sample(&ci, cfg->lft.n_way, cfg->lft.shot, cfg->lft.queries, 0, &rng,
                                 &ep, &ignored) == EG_OK);
        episode_images(d, &ep, &r->plain, NULL, r->xu);
        episode_deinit(&ep);
        size_t correct = 0;
        lft_episode_loss(r->m, r->xu, cfg->lft.n_way, cfg->lft.shot, cfg->lft.queries,
                         LAYER_MODE_EVAL, false, &correct);
        sum += (double)correct / (double)(cfg->lft.n_way * cfg->lft.queries);
    }
    class_index_deinit(&ci);
    *acc = sum / (double)cfg->lft.val_episodes;
    return EG_OK;
}

// The few-shot test on the unseen domain's novel classes. Polls the stop request before every
// chunk of the feature extraction and every episode: EG_STOPPED with *res untouched.
static enum eg_status test(struct lft_task *r, const struct task_clock *clk,
                           struct fewshot_result *res, struct eg_error *err)
{
    const struct run_config *cfg = r->cfg;
    const struct dataset *d = &r->d[r->unseen].split[FEWSHOT_NOVEL];
    const size_t in = shape_numel(d->shape), fn = shape_numel(r->m->feat);
    float *feats = eg_xmalloc_floats(d->n * fn), *x = eg_xmalloc_floats(LFT_CHUNK * in);
    const size_t ib = dataset_image_bytes(d);
    for (size_t i = 0; i < d->n; i += LFT_CHUNK) {
        if (task_stop_requested(clk)) {
            free(feats);
            free(x);
            return EG_STOPPED;
        }
        size_t b = d->n - i < LFT_CHUNK ? d->n - i : LFT_CHUNK;
        for (size_t k = 0; k < b; k++) {
            augment_image(&r->plain, d->shape, d->pixels + (i + k) * ib, x + k * in, NULL);
        }
        lft_features(r->m, x, b, LFT_CHUNK, feats + i * fn);
    }
    struct class_index ci;
    class_index_build(&ci, d);
    struct rng rng;
    rng_seed_stream(&rng, cfg->seed, LFT_STREAM_TEST);
    enum eg_status st = relation_evaluate(r->m->rel, feats, &ci, cfg->lft.n_way, cfg->lft.shot,
                                          cfg->lft.test_queries, cfg->lft.test_episodes, &rng,
                                          clk->stop, NULL, res, err);
    class_index_deinit(&ci);
    free(feats);
    free(x);
    return st;
}

// Mean gamma and beta of the FT layers (NaN without them).
static void ft_means(const struct lft_model *m, double *g, double *b)
{
    *g = *b = NAN;
    if (m->H == 0) return;
    double sg = 0.0, sb = 0.0;
    size_t ng = 0;
    for (size_t i = 0; i < m->enc->nlayers; i++) {
        const struct layer *l = &m->enc->layers[i];
        if (!l->ops->hyper) continue;
        const size_t C = l->nparams / 2;
        for (size_t c = 0; c < C; c++) {
            sg += (double)m->enc->params[l->param_off + c];
            sb += (double)m->enc->params[l->param_off + C + c];
        }
        ng += C;
    }
    *g = sg / (double)ng;
    *b = sb / (double)ng;
}

static enum eg_status lft_epoch_end(void *state, const struct task_clock *clk,
                                    struct eg_error *err)
{
    struct lft_task *r = state;
    struct lft_stats *st = &r->st;
    st->last_acc = st->acc_sum / (double)st->count;
    st->last_aux = st->aux_count ? st->aux_sum / (double)st->aux_count : (double)NAN;
    st->last_val_loss = st->val_count ? st->val_sum / (double)st->val_count : (double)NAN;
    st->acc_sum = st->aux_sum = st->val_sum = 0.0;
    st->count = st->aux_count = st->val_count = 0;
    if (!clk->eval) return EG_OK;
    st->last_val_acc = NAN;
    if (r->cfg->lft.val_episodes > 0) {
        enum eg_status s = validate(r, clk, &st->last_val_acc);
        if (s != EG_OK) return s;
    }
    if (clk->last) {
        struct fewshot_result t = {0};
        enum eg_status s = test(r, clk, &t, err);
        if (s != EG_OK) return s;
        st->last_test = t.mean;
        st->last_ci = t.ci95;
    }
    return EG_OK;
}

static void lft_row(const void *state, const struct task_clock *clk, struct metrics_row *r)
{
    const struct lft_task *t = state;
    const struct lft_stats *st = &t->st;
    metrics_set(r, "train_acc", st->last_acc);
    metrics_set(r, "aux_loss", st->last_aux);
    metrics_set(r, "aux_weight", aux_weight_of(t->cfg, clk->epoch - 1));
    metrics_set(r, "val_loss", st->last_val_loss);
    metrics_set(r, "val_acc", st->last_val_acc);
    metrics_set(r, "test_acc", st->last_test); // after the last epoch only
    metrics_set(r, "test_ci95", st->last_ci);
    metrics_set_text(r, "ps_domain", t->d[t->seen[st->ps]].name);
    metrics_set_text(r, "pu_domain", t->d[t->seen[st->pu]].name);
    double g, b;
    ft_means(t->m, &g, &b);
    metrics_set(r, "ft_gamma", g);
    metrics_set(r, "ft_beta", b);
}

// splits.csv: every class of every split of every domain and its role.
static enum eg_status write_splits(void *state, const char *dir, struct eg_error *err)
{
    const struct lft_task *r = state;
    const char *roles[CFG_LIST_MAX];
    for (size_t i = 0; i < r->nd; i++) {
        roles[i] = i == r->unseen ? "unseen" : i == r->aux ? "seen+aux" : "seen";
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/splits.csv", dir);
    return domains_write_splits(path, r->d, roles, r->nd, err);
}

static struct hyper *lft_hyper(void *state)
{
    return ((struct lft_task *)state)->hyper;
}

static void lft_summary(const void *state, struct task_summary *s)
{
    const struct lft_task *r = state;
    const struct run_config *cfg = r->cfg;
    // an episode's images stand for the batch size
    s->batch_size = cfg->lft.n_way * (cfg->lft.shot + cfg->lft.queries);
    s->test_acc = r->st.last_test;
    s->test_ci95 = r->st.last_ci;
    s->val_acc = r->st.last_val_acc;
    snprintf(s->result, sizeof s->result,
             "test accuracy %.4f +- %.4f (%zu %zu-way %zu-shot episodes, domain %s)",
             r->st.last_test, r->st.last_ci, cfg->lft.test_episodes, cfg->lft.n_way,
             cfg->lft.shot, cfg->lft.unseen);
}

const struct task_ops task_lft = {
    .name = "lft",
    .about = "cross-domain few-shot learning with learned feature-wise transformations",
    .learns = true,
    .check = lft_check,
    .describe = task_describe_default,
    .init = lft_init,
    .free = lft_free,
    .steps_per_epoch = lft_steps,
    .columns = lft_columns,
    .ncolumns = NLFT,
    .start = write_splits,
    .step = lft_task_step,
    .epoch_end = lft_epoch_end,
    .row = lft_row,
    .sections = lft_sections,
    .summary = lft_summary,
    .hyper = lft_hyper,
};
