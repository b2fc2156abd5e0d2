/* lft_run.c - the run of task lft (tasks/lft.h): domains, episodes, the training loop,
 * validation, the final few-shot test, metrics, checkpoints and resume.
 *
 * Data. lft.domains are loaded (data.dataset fashion_mnist: the built-in domains of
 * data/domains.h from data.root; imagefolder: data.root/<domain> at data.image_c/h/w); lft.unseen
 * is the test domain, the others are seen. splits.csv records every class of every split of
 * every domain and its role.
 *
 * Each epoch draws two different seen domains, pseudo-seen (PS) and pseudo-unseen (PU)
 * (paper-spec 3.3); each of its lft.episodes iterations samples a PS and a PU episode from their
 * base classes (the PU episode only when a meta-method needs it, but always drawn, so every
 * method sees the same PS episodes for a seed) and an aux batch from the aux domain's base
 * classes, and calls lft_step. The aux weight is lft.aux_decay^floor(20 epoch / epochs)
 * (0.9^floor(epoch/20) at the paper's 400 epochs).
 *
 * Evaluation. Every eval.every_epochs epochs (and after the last): lft.val_episodes episodes from
 * the aux domain's val classes (the reference validates on miniImageNet's), the encoder in eval
 * mode; the same episodes every time (their generator is re-seeded). After the last epoch: the
 * unseen domain's novel images through the eval-mode encoder, lft.test_episodes episodes of
 * n_way classes, lft.shot shots and lft.test_queries queries on those features
 * (relation_evaluate): mean accuracy and its 95% interval in metrics.csv and summary.csv.
 *
 * Randomness, separate streams of the seed: model initialisation 1, episodes and augmentation 2,
 * evograd's perturbations 3, FT noise 5, validation episodes 6, test episodes 7; the aux batcher
 * has its own, seeded from stream 102. A checkpoint holds all of them. */
#include "run_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/augment.h"
#include "data/batch.h"
#include "data/domains.h"
#include "data/episode.h"
#include "io/checkpoint.h"
#include "io/csv.h"
#include "nn/backbones.h"
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
#define LFT_SECTIONS 24
#define LFT_CHUNK 64

// The loop's state: one checkpoint section, plain data.
struct lft_loop {
    uint64_t epoch, step, global_step, rows;
    double wall_s, step_s;
    double loss_sum, acc_sum, aux_sum, val_sum; // epoch in progress
    uint64_t count, aux_count, val_count;
    double last_loss, last_acc, last_aux, last_val_loss;
    double last_val_acc, last_test, last_ci; // the latest evaluations (NaN before them)
    uint64_t ps, pu;         // this epoch's domains (indices into the seen list)
    uint64_t epoch_drawn;    // the epoch whose domains ps, pu are (+1; 0 = none yet)
    struct rng episodes, ft, hyper;
};

struct lft_run {
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
    struct schedule sched;
    struct batcher auxb;
    float *xs, *xu, *xa;
    int32_t *ya;
    struct csv *metrics;
    struct lft_loop st;
    double session_start;
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

enum eg_status lft_check(const struct run_config *cfg, struct eg_error *err)
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
    struct optim_params op = run_optim_params(&cfg->train.optimizer);
    const char *bad = optim_params_check(&op);
    if (bad != NULL) return eg_errorf(err, EG_ERR_CONFIG, "train.optimizer: %s", bad);
    op = run_optim_params(&cfg->meta.optimizer);
    bad = optim_params_check(&op);
    if (bad != NULL) return eg_errorf(err, EG_ERR_CONFIG, "meta.optimizer: %s", bad);
    return EG_OK;
}

static void lft_free(struct lft_run *r)
{
    struct eg_error ignored;
    csv_close(r->metrics, &ignored);
    for (size_t i = 0; i < r->nd; i++) {
        class_index_deinit(&r->base[i]);
        domain_deinit(&r->d[i]);
    }
    if (r->aux < r->nd) batcher_deinit(&r->auxb);
    lft_problem_free(r->pr);
    lft_optims_deinit(&r->o);
    lft_model_free(r->m);
    hyper_free(r->hyper);
    optim_free(r->meta_opt);
    free(r->xs);
    free(r->xu);
    free(r->xa);
    free(r->ya);
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

static enum eg_status load_domains(struct lft_run *r, struct eg_error *err)
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

static enum eg_status lft_init(struct lft_run *r, const struct run_config *cfg,
                               struct eg_error *err)
{
    *r = (struct lft_run){.cfg = cfg};
    eg_set_threads((int)cfg->threads);
    r->unseen = domain_index(cfg, cfg->lft.unseen);
    r->aux = aux_index(cfg);
    enum eg_status st = load_domains(r, err);
    if (st != EG_OK) return st;

    const bool builtin = is_builtin(cfg);
    r->plain = augment_none();
    augment_normalisation(builtin ? "fashion_mnist" : "imagenet", &r->plain);
    r->train_aug = r->plain;
    r->train_aug.crop_pad = cfg->data.crop_pad;
    r->train_aug.hflip = cfg->data.hflip;

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
    struct hyper_params hp = run_hyper_params(cfg);
    if (hp.method != HYPER_NONE) r->hyper = hyper_new(&hp, r->pr->mp.P, r->m->H);
    struct optim_params mop = run_optim_params(&cfg->meta.optimizer);
    r->meta_opt = optim_new(&mop, r->m->H > 0 ? r->m->H : 1);
    r->sched = run_schedule(cfg);

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
    r->st.last_loss = r->st.last_acc = r->st.last_aux = r->st.last_val_loss = NAN;
    r->st.last_val_acc = r->st.last_test = r->st.last_ci = NAN;
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// checkpoints

struct lft_batcher_state {
    uint64_t pos, epoch;
    struct rng rng;
};

static size_t lft_optim_sections(struct optim *o, const char *prefix, struct ckpt_section *s,
                             char names[][32])
{
    size_t n = 0;
    if (o == NULL) return 0;
    snprintf(names[0], 32, "%s_steps", prefix);
    s[n++] = (struct ckpt_section){names[0], &o->steps, sizeof o->steps};
    if (o->buf != NULL) {
        snprintf(names[1], 32, "%s_buf", prefix);
        s[n++] = (struct ckpt_section){names[1], o->buf, o->P * sizeof(float)};
    }
    if (o->buf2 != NULL) {
        snprintf(names[2], 32, "%s_buf2", prefix);
        s[n++] = (struct ckpt_section){names[2], o->buf2, o->P * sizeof(float)};
    }
    return n;
}

static size_t lft_sections(struct lft_run *r, struct lft_batcher_state *bs,
                           struct ckpt_section *s, char names[][3][32])
{
    struct lft_model *m = r->m;
    size_t n = 0;
    s[n++] = (struct ckpt_section){"loop", &r->st, sizeof r->st};
    s[n++] = (struct ckpt_section){"encoder", m->enc->params, m->enc->nparams * sizeof(float)};
    s[n++] = (struct ckpt_section){"encoder_stats", m->enc->stats, m->enc->nstats * sizeof(float)};
    s[n++] = (struct ckpt_section){"relation", m->rel->net->params, m->P_rel * sizeof(float)};
    if (m->aux != NULL) {
        s[n++] = (struct ckpt_section){"aux", m->aux->params, m->aux->nparams * sizeof(float)};
        s[n++] = (struct ckpt_section){"aux_order", r->auxb.order, r->auxb.n * sizeof(size_t)};
        s[n++] = (struct ckpt_section){"aux_state", bs, sizeof *bs};
    }
    n += lft_optim_sections(r->o.enc, "opt_enc", s + n, names[0]);
    n += lft_optim_sections(r->o.rel, "opt_rel", s + n, names[1]);
    n += lft_optim_sections(r->o.aux, "opt_aux", s + n, names[2]);
    n += lft_optim_sections(r->meta_opt, "meta", s + n, names[3]);
    EG_ASSERT(n <= LFT_SECTIONS);
    return n;
}

static enum eg_status lft_save(struct lft_run *r, const char *dir, struct eg_error *err)
{
    struct lft_batcher_state bs = {r->auxb.pos, r->auxb.epoch, r->auxb.rng};
    struct ckpt_section s[LFT_SECTIONS];
    char names[4][3][32];
    size_t n = lft_sections(r, &bs, s, names);
    char path[CFG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    struct lft_loop keep = r->st;
    r->st.wall_s += eg_wall_seconds() - r->session_start;
    enum eg_status st = ckpt_save(path, config_hash(r->cfg), s, n, err);
    r->st = keep;
    return st;
}

static enum eg_status lft_load(struct lft_run *r, const char *dir, struct eg_error *err)
{
    struct lft_batcher_state bs;
    struct ckpt_section s[LFT_SECTIONS];
    char names[4][3][32];
    size_t n = lft_sections(r, &bs, s, names);
    char path[CFG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    enum eg_status st = ckpt_load(path, config_hash(r->cfg), s, n, err);
    if (st != EG_OK) return st;
    if (r->m->aux != NULL) {
        r->auxb.pos = bs.pos;
        r->auxb.epoch = bs.epoch;
        r->auxb.rng = bs.rng;
    }
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// the loop

// Samples an episode of domain dom's base classes into x (training augmentation).
static void next_episode(struct lft_run *r, size_t dom, float *x)
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

// One iteration; returns the PS episode loss (NaN when the FT parameters became non-finite).
static double lft_iteration(struct lft_run *r, float lr)
{
    const struct run_config *cfg = r->cfg;
    struct lft_loop *st = &r->st;
    if (st->epoch_drawn != st->epoch + 1) { // the epoch's pseudo-seen and pseudo-unseen domains
        st->ps = rng_below(&st->episodes, r->nseen);
        st->pu = r->nseen > 1 ? (st->ps + 1 + rng_below(&st->episodes, r->nseen - 1)) % r->nseen
                              : st->ps;
        st->epoch_drawn = st->epoch + 1;
    }
    next_episode(r, r->seen[st->ps], r->xs);
    next_episode(r, r->seen[st->pu], r->xu);
    size_t na = 0;
    if (r->aux < r->nd) na = batcher_next(&r->auxb, cfg->lft.aux_batch, r->xa, r->ya);
    lft_problem_set_episodes(r->pr, r->xs, r->xu, cfg->lft.n_way, cfg->lft.shot,
                             cfg->lft.queries);
    struct lft_step_info info;
    double loss = lft_step(r->pr, &r->o, lr, (float)aux_weight_of(cfg, st->epoch), r->xa, r->ya,
                           na, r->hyper, r->meta_opt, (float)cfg->meta.optimizer.lr, &st->hyper,
                           &info);
    st->loss_sum += loss;
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
    const float *lambda = r->m->enc->params + r->m->P_enc;
    for (size_t k = 0; k < r->m->H; k++) {
        if (!isfinite(lambda[k])) return NAN;
    }
    return loss;
}

// Mean accuracy of lft.val_episodes episodes of the validation domain's val classes.
static double validate(struct lft_run *r)
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
    return sum / (double)cfg->lft.val_episodes;
}

// The few-shot test on the unseen domain's novel classes.
static enum eg_status test(struct lft_run *r, struct fewshot_result *res, struct eg_error *err)
{
    const struct run_config *cfg = r->cfg;
    const struct dataset *d = &r->d[r->unseen].split[FEWSHOT_NOVEL];
    const size_t in = shape_numel(d->shape), fn = shape_numel(r->m->feat);
    float *feats = eg_xmalloc_floats(d->n * fn), *x = eg_xmalloc_floats(LFT_CHUNK * in);
    const size_t ib = dataset_image_bytes(d);
    for (size_t i = 0; i < d->n; i += LFT_CHUNK) {
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
                                          NULL, res, err);
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

static enum eg_status write_row(struct lft_run *r, double lr, double val_acc,
                                const struct fewshot_result *t, struct eg_error *err)
{
    char cells[NLFT][CFG_STR_MAX + 8];
    const char *row[NLFT];
    const struct lft_loop *st = &r->st;
    snprintf(cells[0], sizeof cells[0], "%llu", (unsigned long long)st->epoch);
    snprintf(cells[1], sizeof cells[1], "%llu", (unsigned long long)st->global_step);
    csv_fmt(cells[2], st->wall_s + eg_wall_seconds() - r->session_start);
    csv_fmt(cells[3], st->last_loss);
    csv_fmt(cells[4], st->last_acc);
    csv_fmt(cells[5], st->last_aux);
    csv_fmt(cells[6], aux_weight_of(r->cfg, st->epoch - 1));
    csv_fmt(cells[7], st->last_val_loss);
    csv_fmt(cells[8], val_acc);
    csv_fmt(cells[9], t != NULL ? t->mean : (double)NAN);
    csv_fmt(cells[10], t != NULL ? t->ci95 : (double)NAN);
    csv_fmt(cells[11], lr);
    csv_fmt(cells[12], eg_peak_rss_mb());
    snprintf(cells[13], sizeof cells[13], "%s", r->d[r->seen[st->ps]].name);
    snprintf(cells[14], sizeof cells[14], "%s", r->d[r->seen[st->pu]].name);
    double g, b;
    ft_means(r->m, &g, &b);
    csv_fmt(cells[15], g);
    csv_fmt(cells[16], b);
    for (size_t i = 0; i < NLFT; i++) {
        // empty cells for what was not measured (NaN)
        if (strcmp(cells[i], "nan") == 0) cells[i][0] = '\0';
        row[i] = cells[i];
    }
    enum eg_status s = csv_row(r->metrics, row, err);
    if (s == EG_OK) r->st.rows = csv_rows(r->metrics);
    return s;
}

static void lft_report(struct lft_run *r, const struct run_options *o, bool epoch_end)
{
    if (o->progress == NULL) return;
    const struct lft_loop *st = &r->st;
    struct run_progress p = {
        .epoch = epoch_end ? st->epoch : st->epoch + 1,
        .epochs = r->cfg->train.epochs,
        .step = epoch_end ? r->cfg->lft.episodes : st->step,
        .steps_per_epoch = r->cfg->lft.episodes,
        .global_step = st->global_step,
        .elapsed_s = st->wall_s + eg_wall_seconds() - r->session_start,
        .train_loss = epoch_end ? st->last_loss : st->loss_sum / (double)(st->count ? st->count : 1),
        .test_acc = st->last_test,
        .val_acc = st->last_val_acc,
    };
    o->progress(o->progress_ctx, &p, epoch_end);
}

static enum eg_status lft_loop(struct lft_run *r, const struct run_options *o,
                               struct run_result *res, struct eg_error *err)
{
    const struct run_config *cfg = r->cfg;
    struct lft_loop *st = &r->st;
    while (st->epoch < cfg->train.epochs) {
        float lr = schedule_lr(&r->sched, (double)st->epoch);
        while (st->step < cfg->lft.episodes) {
            double t0 = eg_wall_seconds();
            double loss = lft_iteration(r, lr);
            st->step_s += eg_wall_seconds() - t0;
            st->step++;
            st->global_step++;
            if (!isfinite(loss)) {
                return eg_errorf(err, EG_ERR_DIVERGED,
                                 "diverged: the episode loss or the FT parameters are not finite "
                                 "at epoch %llu, step %llu (global step %llu); metrics so far "
                                 "are kept",
                                 (unsigned long long)st->epoch + 1, (unsigned long long)st->step,
                                 (unsigned long long)st->global_step);
            }
            lft_report(r, o, false);
            if (o->stop != NULL && *o->stop) {
                res->stopped = true;
                return lft_save(r, o->dir, err);
            }
        }
        st->epoch++;
        st->step = 0;
        st->last_loss = st->loss_sum / (double)st->count;
        st->last_acc = st->acc_sum / (double)st->count;
        st->last_aux = st->aux_count ? st->aux_sum / (double)st->aux_count : (double)NAN;
        st->last_val_loss = st->val_count ? st->val_sum / (double)st->val_count : (double)NAN;
        st->loss_sum = st->acc_sum = st->aux_sum = st->val_sum = 0.0;
        st->count = st->aux_count = st->val_count = 0;
        const bool last = st->epoch == cfg->train.epochs;
        if (st->epoch % cfg->eval.every_epochs == 0 || last) {
            double val_acc = cfg->lft.val_episodes > 0 ? validate(r) : (double)NAN;
            st->last_val_acc = val_acc;
            struct fewshot_result t = {0};
            if (last) {
                enum eg_status s = test(r, &t, err);
                if (s != EG_OK) return s;
                st->last_test = t.mean;
                st->last_ci = t.ci95;
            }
            enum eg_status s = write_row(r, lr, val_acc, last ? &t : NULL, err);
            if (s != EG_OK) return s;
        }
        lft_report(r, o, true);
        bool ckpt = cfg->checkpoint.every_epochs > 0 &&
                    st->epoch % cfg->checkpoint.every_epochs == 0;
        bool stop = o->stop != NULL && *o->stop;
        if (ckpt || stop) {
            enum eg_status s = lft_save(r, o->dir, err);
            if (s != EG_OK) return s;
        }
        if (stop && !last) {
            res->stopped = true;
            return EG_OK;
        }
    }
    return EG_OK;
}

static enum eg_status write_splits(struct lft_run *r, const char *dir, struct eg_error *err)
{
    const char *roles[CFG_LIST_MAX];
    for (size_t i = 0; i < r->nd; i++) {
        roles[i] = i == r->unseen ? "unseen" : i == r->aux ? "seen+aux" : "seen";
    }
    char path[CFG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/splits.csv", dir);
    return domains_write_splits(path, r->d, roles, r->nd, err);
}

enum eg_status lft_run(const struct run_config *cfg, const struct run_options *opts,
                       struct run_result *res, struct eg_error *err)
{
    *res = (struct run_result){.final_acc = NAN, .best_acc = NAN, .test_ci95 = NAN};
    struct lft_run r;
    enum eg_status st = lft_check(cfg, err);
    if (st == EG_OK) {
        st = lft_init(&r, cfg, err);
    } else {
        r = (struct lft_run){.cfg = cfg};
    }
    char path[CFG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.csv", opts->dir);
    if (st == EG_OK && opts->resume) {
        st = lft_load(&r, opts->dir, err);
        if (st == EG_OK) st = csv_reopen(path, lft_columns, NLFT, (size_t)r.st.rows, &r.metrics, err);
    } else if (st == EG_OK) {
        st = write_splits(&r, opts->dir, err);
        if (st == EG_OK) st = csv_create(path, lft_columns, NLFT, &r.metrics, err);
    }
    r.session_start = eg_wall_seconds();
    if (st == EG_OK) st = lft_loop(&r, opts, res, err);
    if (st == EG_OK) {
        st = csv_close(r.metrics, err);
        r.metrics = NULL;
    }
    res->epochs_done = (size_t)r.st.epoch;
    res->global_step = (size_t)r.st.global_step;
    res->final_train_loss = r.st.last_loss;
    res->final_acc = r.st.last_test;
    res->test_ci95 = r.st.last_ci;
    res->wall_s = r.st.wall_s + eg_wall_seconds() - r.session_start;
    res->sec_per_step = r.st.global_step ? r.st.step_s / (double)r.st.global_step : 0.0;
    res->sec_per_epoch = res->sec_per_step * (double)cfg->lft.episodes;
    res->peak_rss_mb = eg_peak_rss_mb();
    lft_free(&r);
    return st;
}
