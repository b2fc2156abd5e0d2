/* bench.c - `make bench`: speed and memory of one training step (forward, backward, SGD) of
 * the networks the paper trains, measured against OpenBLAS on the same GEMM shapes.
 *
 * For each case, in a forked child (so peak RSS is the case's own):
 *   - ms per step: median over timed steps after warm-up;
 *   - GFLOP/s: forward + backward FLOPs counted from the layer shapes (backward = 2 x forward
 *     for every layer, except 1 x for a layer reading the network's input, whose input gradient
 *     is not computed) divided by the median step time;
 *   - sgemm GFLOP/s: every cblas_sgemm call of one step is recorded (this program interposes
 *     cblas_sgemm and forwards to OpenBLAS), then the same shapes are replayed on their own;
 *     their FLOPs over their median time. The ratio of the two is how close the whole step
 *     comes to pure GEMM throughput;
 *   - peak RSS (getrusage) and a per-layer-kind time breakdown (one profiled step);
 *   - for resnet32, every step's batch comes from the data pipeline (batcher_next on a synthetic
 *     CIFAR-shaped set with the paper's crop + flip + normalisation), timed apart: the
 *     pipeline's share of a step.
 * The `data` case times loading Fashion-MNIST's 60,000 training images (when installed).
 * The `meta` case: the cost of one meta-step (hypergradient + the base training step) of
 * `evograd` (K = 2) and `unrolled` against `none` (the base step alone), on resnet32 with batch
 * 100 and per-sample loss weights as the hyperparameters (lib/meta/weighted.h); time and peak RSS,
 * each method in its own process.
 * The `mwn` case: the same three methods on one whole training iteration of the Meta-Weight-Net
 * task (lib/tasks/mwn.h: the meta-step on the weighting network's H = 301 parameters, then the
 * base step), resnet32 with a training and a meta batch of 100; time and peak RSS per method,
 * their ratios, and the targets (evograd <= 2.7x none, evograd <= 0.8x unrolled, peak RSS
 * evograd <= 1.3x none) with whether each is met.
 * The `lft` case: the paper's scaling result (ResNet-10 -> 34 with EvoGrad, paper-spec 3.3, 1.7,
 * 1.8). For resnet10, resnet18 and resnet34 (64 channels, FT layers on) at 3x224x224 and the
 * paper's shapes (5-way 5-shot 16 queries: a PS and a PU episode of 105 images each, an aux batch
 * of 16 images over 64 classes), one whole LFT iteration (lib/tasks/lft.h, lft_step: aux loss,
 * PS episode, Adam step, then the hypergradient and the FT step) for `none` (the base step
 * alone), `evograd` (K = 2, sigma 1e-3, tau 0.05) and `unrolled` (look-ahead alpha 1e-3), each
 * (backbone, method) in its own process: median seconds per iteration after 1 warm-up (default
 * --steps 2), peak RSS; per backbone the parameter counts (total, encoder weights P_enc,
 * relation module P_rel, aux classifier, FT scalars H, checked against the paper's 3,712 /
 * 5,632 / 9,344: a mismatch fails the case), the ratios evograd/none, unrolled/none and
 * evograd/unrolled of wall time, CPU time (all threads; steadier than wall time when other jobs
 * share the machine) and RSS, the RSS above none next to the work vectors each method keeps
 * (8 P floats for evograd, 5 P for unrolled); at the end three Markdown tables. Random pixels
 * (fixed seed): the cost does not depend on them. At 224 this is by far the longest case: 9
 * processes of 2 or 3 iterations of 20 s (resnet10 none) to 3.5 min (resnet34 unrolled) each;
 * --steps 1 took 29 min on the 2-core machine with a load of ~4 from other jobs, so the default
 * --steps 2 takes ~45 min, and 6-7 GB of memory at resnet34. It is part of `--case all` and so
 * of `make bench` (BENCHFLAGS="--case mwn" etc. runs one case). --lft-size S runs it at 3xSxS
 * instead (S >= 32; 64 takes ~6 min with --steps 1), --lft-backbone NAME on one backbone only.
 * The `rotation` case: one iteration of the rotation task (tasks/rotation.h) per method on LeNet,
 * a training and a validation batch of 128 1x28x28 images, Adam 1e-3 on the weights and 1e-2 on
 * the angle (configs/paper/rotation.yaml).
 * Usage: evograd-bench [--threads N] [--steps N] [--lft-size S] [--lft-backbone NAME]
 *                      [--method none|evograd|unrolled] [--conv dnnl|dnnl_direct|im2col]
 *                      [--csv]
 *                      [--case resnet32|lenet|data|meta|mwn|rotation|lft|all]
 *   --threads N  OpenMP threads, and OpenBLAS's with --conv im2col (default 2); --steps N timed
 *   steps per case (default: the case's own); --case NAME one case (default all); --method NAME
 *   only that method in the meta, mwn, rotation and lft cases; --conv the convolution backend
 *   (default dnnl, lib/nn/layers.h); --csv: one row `case,method,threads,ms,peak_rss_mb` per
 *   case x method on stdout (header first; lft's cases are lft-resnet10/18/34, resnet32 and
 *   lenet are method none), every other line on stderr. bench/peer.sh reads these rows. */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/blas.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/timer.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/source.h"
#include "meta/hyper.h"
#include "meta/weighted.h"
#include "nn/backbones.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "tasks/lft.h"
#include "tasks/mwn.h"
#include "tasks/rotation.h"

// ---------------------------------------------------------------------------------------------
// cblas_sgemm interposition. This program is the only user; the recorder is its one global.

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint,
                         const float, float *, const blasint);

struct gemm_call {
    enum CBLAS_TRANSPOSE ta, tb;
    blasint M, N, K, lda, ldb, ldc;
    float beta;
};

static struct {
    sgemm_fn real;
    bool on;
    struct gemm_call *calls;
    size_t n, cap;
} rec;

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N, const blasint K,
                 const float alpha, const float *A, const blasint lda, const float *B,
                 const blasint ldb, const float beta, float *C, const blasint ldc)
{
    if (rec.real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "cblas_sgemm");
        EG_ASSERT(sym != NULL);
        memcpy(&rec.real, &sym, sizeof sym); // POSIX: data and function pointers interconvert
        EG_ASSERT(rec.real != NULL);
    }
    if (rec.on) {
        if (rec.n == rec.cap) {
            rec.cap = rec.cap ? 2 * rec.cap : 256;
            rec.calls = eg_xrealloc(rec.calls, rec.cap * sizeof *rec.calls);
        }
        rec.calls[rec.n++] = (struct gemm_call){ta, tb, M, N, K, lda, ldb, ldc, beta};
    }
    rec.real(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ---------------------------------------------------------------------------------------------
// --csv: machine-readable rows on the real stdout, everything else on stderr.

static struct {
    FILE *csv;          // NULL: no CSV (human output on stdout)
    const char *name;   // the case being run
    const char *method; // --method: only this one (NULL: all three)
    int threads;
} out;

// One row: case,method,threads,ms,peak_rss_mb.
static void csv_row(const char *method, double seconds, double rss_mb)
{
    if (out.csv == NULL) return;
    fprintf(out.csv, "%s,%s,%d,%.3f,%.1f\n", out.name, method, out.threads, 1e3 * seconds,
            rss_mb);
    fflush(out.csv);
}

// ---------------------------------------------------------------------------------------------

struct bench_case {
    const char *name;
    enum backbone_kind kind;
    struct shape in;
    size_t classes, batch, steps;
    bool pipeline; // batches from the augmenting data pipeline (CIFAR-style)
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double step_flops(const struct net *net, size_t n)
{
    double f = 0.0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const struct layer *l = &net->layers[i];
        if (l->ops->flops == NULL) continue;
        double fwd = l->ops->flops(l, n);
        f += fwd + (l->in[0] == 0 ? 1.0 : 2.0) * fwd;
    }
    return f;
}

struct trainer {
    struct net *net;
    struct optim *opt;
    float *x, *dlogits, *losses;
    int32_t *y;
    size_t n, classes;
};

static void train_step(struct trainer *t)
{
    net_zero_grad(t->net);
    const float *logits = net_forward(t->net, t->x, t->n, LAYER_MODE_TRAIN);
    xent_forward(logits, t->y, t->n, t->classes, t->losses);
    xent_backward(logits, t->y, NULL, t->n, t->classes, t->dlogits);
    net_backward(t->net, t->dlogits, NULL);
    optim_step(t->opt, t->net->params, t->net->grads, t->opt->p.lr);
}

// SGD with momentum 0.9 over P floats.
static struct optim *sgd_new(float lr, bool nesterov, float weight_decay, size_t P)
{
    struct optim_params op = optim_defaults(OPTIM_KIND_SGD);
    op.lr = lr;
    op.momentum = 0.9f;
    op.nesterov = nesterov;
    op.weight_decay = weight_decay;
    return optim_new(&op, P);
}

// A network of the given kind and one batch of n gaussian images with random labels; t->opt is
// left to the caller.
static void trainer_init(struct trainer *t, enum backbone_kind kind, struct shape in,
                         size_t classes, size_t n, struct rng *rng)
{
    struct backbone_spec spec = backbone_defaults(kind);
    *t = (struct trainer){.n = n, .classes = classes};
    t->net = backbone_new(&spec, in, classes, rng);
    size_t nx = shape_numel(in) * n;
    t->x = eg_xmalloc_floats(nx);
    rng_fill_gaussian(rng, t->x, nx, 0.0f, 1.0f);
    t->y = eg_xmalloc_array(n, sizeof *t->y);
    for (size_t i = 0; i < n; i++) t->y[i] = (int32_t)rng_below(rng, classes);
    t->dlogits = eg_xmalloc_floats(n * classes);
    t->losses = eg_xmalloc_floats(n);
}

static void trainer_free(struct trainer *t)
{
    free(t->x);
    free(t->y);
    free(t->dlogits);
    free(t->losses);
    optim_free(t->opt);
    net_free(t->net);
}

// Replays the recorded GEMM shapes; returns the median seconds of one replay.
static double replay_gemms(size_t reps)
{
    size_t maxA = 0, maxB = 0, maxC = 0;
    for (size_t i = 0; i < rec.n; i++) {
        const struct gemm_call *c = &rec.calls[i];
        size_t rowsA = c->ta == CblasNoTrans ? (size_t)c->M : (size_t)c->K;
        size_t rowsB = c->tb == CblasNoTrans ? (size_t)c->K : (size_t)c->N;
        if (rowsA * (size_t)c->lda > maxA) maxA = rowsA * (size_t)c->lda;
        if (rowsB * (size_t)c->ldb > maxB) maxB = rowsB * (size_t)c->ldb;
        if ((size_t)c->M * (size_t)c->ldc > maxC) maxC = (size_t)c->M * (size_t)c->ldc;
    }
    float *A = eg_xcalloc_floats(maxA), *B = eg_xcalloc_floats(maxB), *C = eg_xcalloc_floats(maxC);
    double *t = eg_xmalloc_array(reps, sizeof *t);
    for (size_t r = 0; r < reps + 1; r++) {
        double t0 = eg_wall_seconds();
        for (size_t i = 0; i < rec.n; i++) {
            const struct gemm_call *c = &rec.calls[i];
            rec.real(CblasRowMajor, c->ta, c->tb, c->M, c->N, c->K, 1.0f, A, c->lda, B, c->ldb,
                     c->beta, C, c->ldc);
        }
        if (r > 0) t[r - 1] = eg_wall_seconds() - t0; // the first replay warms up
    }
    double m = median(t, reps);
    free(A);
    free(B);
    free(C);
    free(t);
    return m;
}

static void breakdown(struct trainer *t, double step_s)
{
    struct net *net = t->net;
    memset(net->prof_fwd, 0, net->nlayers * sizeof(double));
    memset(net->prof_bwd, 0, net->nlayers * sizeof(double));
    net->profile = true;
    const size_t reps = 3;
    for (size_t r = 0; r < reps; r++) train_step(t);
    net->profile = false;
    const char *names[32];
    double fwd[32] = {0}, bwd[32] = {0};
    size_t nk = 0;
    double total = 0.0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const char *nm = net->layers[i].ops->name;
        size_t k = 0;
        while (k < nk && strcmp(names[k], nm) != 0) k++;
        if (k == nk && nk < 32) names[nk++] = nm;
        if (k < 32) {
            fwd[k] += net->prof_fwd[i] / (double)reps;
            bwd[k] += net->prof_bwd[i] / (double)reps;
        }
        total += (net->prof_fwd[i] + net->prof_bwd[i]) / (double)reps;
    }
    printf("    time by layer kind (one profiled step, %% of the median step):\n");
    for (size_t k = 0; k < nk; k++) {
        printf("      %-14s fwd %7.2f ms  bwd %7.2f ms  %5.1f%%\n", names[k], 1e3 * fwd[k],
               1e3 * bwd[k], 100.0 * (fwd[k] + bwd[k]) / step_s);
    }
    printf("      %-14s %.2f ms of %.2f ms (loss, layout copies and SGD make up the rest)\n",
           "layers total", 1e3 * total, 1e3 * step_s);
}

static void run_case(const struct bench_case *bc, int threads, size_t steps)
{
    conv2d_set_threads(threads);
    struct rng rng;
    rng_seed(&rng, 1);
    struct trainer t;
    trainer_init(&t, bc->kind, bc->in, bc->classes, bc->batch, &rng);
    t.opt = sgd_new(0.01f, true, 5e-4f, t.net->nparams);

    // The data pipeline: a synthetic set of the input's shape, crop 4 + flip + normalisation.
    struct dataset data = {0};
    struct batcher batches = {0};
    if (bc->pipeline) {
        synthetic_make(&data, 300, bc->in, bc->classes, 1);
        struct augment aug = augment_none();
        EG_ASSERT(augment_normalisation("cifar10", &aug));
        aug.crop_pad = 4;
        aug.hflip = true;
        batcher_init(&batches, &data, NULL, data.n, true, &aug, 1);
    }

    for (int w = 0; w < 3; w++) train_step(&t); // warm-up: buffers, page faults, thread pool
    rec.on = true;
    train_step(&t);
    rec.on = false;
    double *times = eg_xmalloc_array(steps, sizeof *times);
    double *data_times = eg_xmalloc_array(steps, sizeof *data_times);
    for (size_t s = 0; s < steps; s++) {
        double t0 = eg_wall_seconds();
        if (bc->pipeline) {
            size_t got = 0;
            while (got < bc->batch) {
                got += batcher_next(&batches, bc->batch - got, t.x + got * shape_numel(bc->in),
                                    t.y + got);
            }
        }
        double t1 = eg_wall_seconds();
        train_step(&t);
        data_times[s] = t1 - t0;
        times[s] = eg_wall_seconds() - t1;
    }
    double step_s = median(times, steps);
    double data_s = median(data_times, steps);
    double flops = step_flops(t.net, bc->batch);
    double gemm_flops = 0.0;
    for (size_t i = 0; i < rec.n; i++) {
        gemm_flops += 2.0 * (double)rec.calls[i].M * (double)rec.calls[i].N * (double)rec.calls[i].K;
    }
    double gemm_s = replay_gemms(steps);
    double achieved = flops / step_s * 1e-9, sgemm = gemm_flops / gemm_s * 1e-9;

    csv_row("none", step_s, eg_peak_rss_mb());
    printf("%s: batch %zu, %zux%zux%zu, %zu classes, %zu parameters, %d BLAS threads, "
           "convolutions: %s\n",
           bc->name, bc->batch, bc->in.c, bc->in.h, bc->in.w, bc->classes, t.net->nparams, threads,
           conv2d_backend_name(conv2d_backend()));
    printf("    step            %8.2f ms  (median of %zu after 3 warm-up steps)\n", 1e3 * step_s,
           steps);
    printf("    achieved        %8.2f GFLOP/s (%.2f GFLOP per step from layer shapes)\n",
           achieved, flops * 1e-9);
    printf("    sgemm alone     %8.2f GFLOP/s (%zu calls per step, %.2f GFLOP, %.2f ms)\n",
           sgemm, rec.n, gemm_flops * 1e-9, 1e3 * gemm_s);
    printf("    fraction        %8.2f of sgemm throughput on the same shapes\n", achieved / sgemm);
    printf("    peak RSS        %8.1f MB  (activations and gradients %.1f MB)\n",
           eg_peak_rss_mb(), (double)net_buffer_bytes(t.net) / (1024.0 * 1024.0));
    if (bc->pipeline) {
        printf("    data pipeline   %8.2f ms per batch (crop 4, flip, normalise): %.2f%% of data + "
               "step\n",
               1e3 * data_s, 100.0 * data_s / (data_s + step_s));
        batcher_deinit(&batches);
        dataset_deinit(&data);
    }
    breakdown(&t, step_s);
    fflush(stdout);

    free(data_times);
    free(times);
    trainer_free(&t);
}

// Loading Fashion-MNIST's training set, the built-in default.
static void run_data_case(void)
{
    const char *root = data_source_default_root(DATA_SOURCE_FASHION_MNIST);
    char images[512], labels[512];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", root);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", root);
    double best = 1e30;
    struct dataset d = {0};
    for (int r = 0; r < 3; r++) {
        struct eg_error err;
        double t0 = eg_wall_seconds();
        if (idx_load(images, labels, 10, &d, &err) != EG_OK) {
            printf("data: Fashion-MNIST not loaded (%s)\n", err.msg);
            return;
        }
        double dt = eg_wall_seconds() - t0;
        if (dt < best) best = dt;
        if (r < 2) dataset_deinit(&d);
    }
    printf("data: Fashion-MNIST training set, %zu images %zux%zu from %s\n", d.n, d.shape.h,
           d.shape.w, root);
    printf("    load            %8.3f s  (best of 3; gunzip and IDX checks, %.0f MB/s of pixels)\n",
           best, (double)(d.n * dataset_image_bytes(&d)) / best / 1e6);
    dataset_deinit(&d);
    fflush(stdout); // the child leaves with _exit, which does not flush
}

// The meta cases' setting: resnet32, 10 classes, 3x32x32, a training batch (in t) and a meta
// batch of 100 gaussian images with random labels each.
struct meta_bench {
    struct rng rng;
    struct trainer t;
    float *xv;
    int32_t *yv;
};

#define META_BATCH 100

static void meta_bench_init(struct meta_bench *mb, int threads)
{
    conv2d_set_threads(threads);
    const size_t classes = 10;
    const struct shape in = {3, 32, 32};
    rng_seed(&mb->rng, 1);
    trainer_init(&mb->t, BACKBONE_RESNET32, in, classes, META_BATCH, &mb->rng);
    size_t nx = shape_numel(in) * META_BATCH;
    mb->xv = eg_xmalloc_floats(nx);
    rng_fill_gaussian(&mb->rng, mb->xv, nx, 0.0f, 1.0f);
    mb->yv = eg_xmalloc_array(META_BATCH, sizeof *mb->yv);
    for (size_t i = 0; i < META_BATCH; i++) mb->yv[i] = (int32_t)rng_below(&mb->rng, classes);
}

static void meta_bench_free(struct meta_bench *mb)
{
    free(mb->xv);
    free(mb->yv);
    trainer_free(&mb->t);
}

// The hypergradient settings both meta cases use: evograd K = 2, sigma 1e-3, tau 0.05,
// Rademacher noise; unrolled alpha 0.1.
static struct hyper_params bench_hyper_params(enum hyper_method m)
{
    return (struct hyper_params){.method = m, .candidates = 2, .sigma = 1e-3, .temperature = 0.05,
                                 .noise = HYPER_NOISE_RADEMACHER, .lookahead_lr = 0.1};
}

// CPU seconds (user + system, all threads) of this process so far.
static double cpu_seconds(void)
{
    struct timespec ts;
    EG_ASSERT(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Median seconds of iter(ctx) over `steps` calls after one warm-up call; *cpu (unless NULL) the
// median CPU seconds of the same calls (all threads: on a loaded machine the wall time grows
// with the competition, the CPU time much less).
static double median_iteration(void (*iter)(void *), void *ctx, size_t steps, double *cpu)
{
    double *times = eg_xmalloc_array(2 * steps, sizeof *times), *cpus = times + steps;
    for (size_t s = 0; s < steps + 1; s++) {
        double t0 = eg_wall_seconds(), c0 = cpu_seconds();
        iter(ctx);
        if (s > 0) { // the first is the warm-up
            times[s - 1] = eg_wall_seconds() - t0;
            cpus[s - 1] = cpu_seconds() - c0;
        }
    }
    double med = median(times, steps);
    if (cpu != NULL) *cpu = median(cpus, steps);
    free(times);
    return med;
}

// The meta case: per-sample loss weights (lib/meta/weighted.h) as lambda.
struct meta_iter {
    struct meta_bench *mb;
    struct weighted_problem *wp;
    struct hyper *h;
    enum hyper_method m;
    float *lambda, *hg, *theta;
};

static void meta_iteration(void *ctx)
{
    struct meta_iter *it = ctx;
    struct net *net = it->mb->t.net;
    if (it->m != HYPER_NONE) {
        memcpy(it->theta, net->params, net->nparams * sizeof(float));
        hyper_grad(it->h, &it->wp->mp, it->theta, it->lambda, &it->mb->rng, it->hg, NULL);
    }
    train_step(&it->mb->t);
}

// One method's meta-step (hypergradient + base step) on resnet32: median seconds.
static double run_meta_method(enum hyper_method m, const void *ctx, int threads, size_t steps,
                              double *info)
{
    (void)ctx;
    (void)info;
    struct meta_bench mb;
    meta_bench_init(&mb, threads);
    const size_t n = META_BATCH;
    mb.t.opt = sgd_new(0.01f, false, 0.0f, mb.t.net->nparams);
    struct meta_iter it = {.mb = &mb, .m = m};
    it.wp = weighted_problem_new(mb.t.net, n, LAYER_MODE_TRAIN_FROZEN, LAYER_MODE_TRAIN_FROZEN);
    weighted_problem_set_batches(it.wp, mb.t.x, mb.t.y, n, mb.xv, mb.yv, n);
    struct hyper_params hp = bench_hyper_params(m);
    it.h = hyper_new(&hp, mb.t.net->nparams, n);
    it.lambda = eg_xmalloc_floats(n);
    it.hg = eg_xmalloc_floats(n);
    for (size_t i = 0; i < n; i++) it.lambda[i] = 1.0f;
    // theta is a copy: the methods must not see the parameters they are about to overwrite
    it.theta = eg_xmalloc_floats(mb.t.net->nparams);

    double med = median_iteration(meta_iteration, &it, steps, NULL);
    free(it.theta);
    free(it.lambda);
    free(it.hg);
    hyper_free(it.h);
    weighted_problem_free(it.wp);
    meta_bench_free(&mb);
    return med;
}

// The mwn case: one whole Meta-Weight-Net iteration (mwn_step).
struct mwn_iter {
    struct meta_bench *mb;
    struct mwn_problem *pr;
    struct hyper *h; // NULL: none
    struct optim *meta_opt;
    float *lambda;
};

static void mwn_iteration(void *ctx)
{
    struct mwn_iter *it = ctx;
    struct optim *opt = it->mb->t.opt;
    const struct meta_step ms = {
        .hyper = it->h, .opt = it->meta_opt, .lr = it->meta_opt->p.lr, .rng = &it->mb->rng};
    mwn_step(it->pr, opt, opt->p.lr, &ms, it->lambda, NULL);
}

// One method's Meta-Weight-Net training iteration on resnet32: median seconds.
static double run_mwn_method(enum hyper_method m, const void *ctx, int threads, size_t steps,
                             double *info)
{
    (void)ctx;
    struct meta_bench mb;
    meta_bench_init(&mb, threads);
    const size_t P = mb.t.net->nparams, H = mwn_vnet_size(MWN_HIDDEN);
    mb.t.opt = sgd_new(0.1f, true, 5e-4f, P);
    struct mwn_iter it = {.mb = &mb};
    it.pr = mwn_problem_new(mb.t.net, MWN_HIDDEN);
    EG_ASSERT(it.pr->mp.H == H);
    mwn_problem_set_batches(it.pr, mb.t.x, mb.t.y, META_BATCH, mb.xv, mb.yv, META_BATCH);
    it.lambda = eg_xmalloc_floats(H);
    mwn_vnet_init(it.lambda, MWN_HIDDEN, &mb.rng);
    it.meta_opt = sgd_new(1e-3f, true, 5e-4f, H);
    struct hyper_params hp = bench_hyper_params(m);
    if (m != HYPER_NONE) it.h = hyper_new(&hp, P, H);

    double med = median_iteration(mwn_iteration, &it, steps, NULL);
    info[0] = (double)P;
    info[1] = (double)net_buffer_bytes(mb.t.net) / (1024.0 * 1024.0);
    hyper_free(it.h);
    optim_free(it.meta_opt);
    free(it.lambda);
    mwn_problem_free(it.pr);
    meta_bench_free(&mb);
    return med;
}

// What a method's child reports besides its median: up to METHOD_INFO case-specific numbers.
#define METHOD_INFO 8

// One method's measurement in the child: returns the median seconds per iteration and may fill
// info (METHOD_INFO values, zeroed beforehand). ctx: the case's settings (may be NULL).
typedef double (*method_fn)(enum hyper_method m, const void *ctx, int threads, size_t steps,
                            double *info);

// The methods every meta case runs, in this order (the arrays below are indexed by it).
#define NMETH 4
enum { M_NONE, M_EVOGRAD, M_EXACT, M_FD };
static const enum hyper_method bench_methods[NMETH] = {HYPER_NONE, HYPER_EVOGRAD, HYPER_UNROLLED,
                                                       HYPER_UNROLLED_FD};

// none, evograd, unrolled (exact) and unrolled_fd: each in its own process (own peak RSS), one
// line each ("<ms> ms per <per>"); the medians (seconds), peak RSS (MB) and info (unless NULL)
// come back through a pipe.
static void run_methods(method_fn method, const void *ctx, const char *per, int threads,
                        size_t steps, double med[NMETH], double rss[NMETH],
                        double info[NMETH][METHOD_INFO])
{
    fflush(stdout);
    const enum hyper_method *methods = bench_methods;
    for (size_t i = 0; i < NMETH; i++) {
        if (out.method != NULL && strcmp(out.method, hyper_method_name(methods[i])) != 0) {
            med[i] = rss[i] = NAN; // not run: the ratios print as nan
            if (info != NULL) memset(info[i], 0, METHOD_INFO * sizeof(double));
            continue;
        }
        int fd[2];
        EG_ASSERT(pipe(fd) == 0);
        pid_t pid = fork();
        EG_ASSERT(pid >= 0);
        if (pid == 0) {
            close(fd[0]);
            double v[2 + METHOD_INFO] = {0};
            v[0] = method(methods[i], ctx, threads, steps, v + 2);
            v[1] = eg_peak_rss_mb();
            bool secs = v[0] >= 10.0;
            csv_row(hyper_method_name(methods[i]), v[0], v[1]);
            printf("    %-11s %8.1f %s per %s  peak RSS %7.1f MB\n",
                   hyper_method_name(methods[i]), secs ? v[0] : 1e3 * v[0], secs ? "s " : "ms",
                   per, v[1]);
            fflush(stdout); // the child leaves with _exit, which does not flush
            ssize_t wr = write(fd[1], v, sizeof v);
            _exit(wr == (ssize_t)sizeof v ? 0 : 1);
        }
        close(fd[1]);
        double v[2 + METHOD_INFO] = {0};
        ssize_t rd = read(fd[0], v, sizeof v);
        close(fd[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        EG_ASSERT(rd == (ssize_t)sizeof v && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        med[i] = v[0];
        rss[i] = v[1];
        if (info != NULL) memcpy(info[i], v + 2, METHOD_INFO * sizeof(double));
    }
}

static void run_meta_case(int threads, size_t steps)
{
    printf("meta: resnet32, batch 100, 3x32x32, per-sample loss weights as lambda (H = 100), "
           "evograd K = 2, %d BLAS threads\n",
           threads);
    double med[NMETH], rss[NMETH];
    run_methods(run_meta_method, NULL, "meta-step (hypergradient + base step)", threads, steps, med,
                rss, NULL);
    printf("    relative to none: evograd %.2fx, unrolled %.2fx, unrolled_fd %.2fx\n",
           med[M_EVOGRAD] / med[M_NONE], med[M_EXACT] / med[M_NONE], med[M_FD] / med[M_NONE]);
    fflush(stdout);
}

static const char *target_verdict(double ratio, double target)
{
    return ratio <= target ? "met" : "NOT met";
}

// The efficiency table's rows (the efficiency case): one per problem measured.
#define EFF_ROWS 4
static struct {
    char name[48];
    double med[NMETH], rss[NMETH];
    size_t P;          // theta's size
    double act_mb;     // the activation buffers of none (MB)
} eff[EFF_ROWS];
static size_t neff;

static void eff_add(const char *name, const double *med, const double *rss, size_t P,
                    double act_mb)
{
    if (neff == EFF_ROWS) return;
    snprintf(eff[neff].name, sizeof eff[neff].name, "%s", name);
    memcpy(eff[neff].med, med, NMETH * sizeof *med);
    memcpy(eff[neff].rss, rss, NMETH * sizeof *rss);
    eff[neff].P = P;
    eff[neff].act_mb = act_mb;
    neff++;
}

static void run_mwn_case(int threads, size_t steps)
{
    printf("mwn: resnet32, batch 100 + meta batch 100, 3x32x32, Meta-Weight-Net lambda (hidden "
           "%d, H = %zu), evograd K = 2, %d BLAS threads, median of %zu after 1 warm-up\n",
           MWN_HIDDEN, mwn_vnet_size(MWN_HIDDEN), threads, steps);
    double med[NMETH], rss[NMETH], info[NMETH][METHOD_INFO];
    run_methods(run_mwn_method, NULL, "training iteration (meta-step + base step)", threads, steps,
                med, rss, info);
    const double ev_none = med[M_EVOGRAD] / med[M_NONE], ev_unr = med[M_EVOGRAD] / med[M_EXACT];
    const double rss_ev = rss[M_EVOGRAD] / rss[M_NONE];
    printf("    time: evograd/none %.2fx, unrolled/none %.2fx, unrolled_fd/none %.2fx, "
           "evograd/unrolled %.2fx\n",
           ev_none, med[M_EXACT] / med[M_NONE], med[M_FD] / med[M_NONE], ev_unr);
    printf("    peak RSS: evograd/none %.2fx, unrolled/none %.2fx, unrolled_fd/none %.2fx\n",
           rss_ev, rss[M_EXACT] / rss[M_NONE], rss[M_FD] / rss[M_NONE]);
    printf("    targets: evograd <= 2.7x none: %.2fx, %s; evograd <= 0.8x unrolled: %.2fx, %s; "
           "RSS evograd <= 1.3x none: %.2fx, %s\n",
           ev_none, target_verdict(ev_none, 2.7), ev_unr, target_verdict(ev_unr, 0.8), rss_ev,
           target_verdict(rss_ev, 1.3));
    fflush(stdout);
    const double *in = info[M_NONE];
    eff_add("MWN resnet32, batch 100 + 100", med, rss, (size_t)in[0], in[1]);
}

// ---------------------------------------------------------------------------------------------
// The rotation case: one iteration of the rotation task (rotation_step, tasks/rotation.h: the base
// Adam step on the rotated training batch, then the hypergradient on the angle around the updated
// weights and the angle's Adam step) on LeNet with a training and a validation batch of 128
// gaussian 1x28x28 images: the paper's settings (configs/paper/rotation.yaml).

#define ROT_BATCH 128

struct rotation_iter {
    struct rotation_problem *rp;
    struct optim *opt, *meta_opt;
    struct hyper *h; // NULL: none
    struct rng *rng;
    float angle;
};

static void rotation_iteration(void *ctx)
{
    struct rotation_iter *it = ctx;
    const struct meta_step ms = {
        .hyper = it->h, .opt = it->meta_opt, .lr = it->meta_opt->p.lr, .rng = it->rng};
    rotation_step(it->rp, it->opt, it->opt->p.lr, &ms, &it->angle, NULL);
}

static double run_rotation_method(enum hyper_method m, const void *ctx, int threads, size_t steps,
                                  double *info)
{
    (void)ctx;
    (void)info;
    conv2d_set_threads(threads);
    struct rng rng;
    rng_seed(&rng, 1);
    const struct shape in = {1, 28, 28};
    const size_t classes = 10, nx = shape_numel(in) * ROT_BATCH;
    struct trainer t;
    trainer_init(&t, BACKBONE_LENET, in, classes, ROT_BATCH, &rng);
    struct optim_params op = optim_defaults(OPTIM_KIND_ADAM);
    op.lr = 1e-3f;
    op.weight_decay = 0.0f;
    t.opt = optim_new(&op, t.net->nparams);
    float *xv = eg_xmalloc_floats(nx);
    int32_t *yv = eg_xmalloc_array(ROT_BATCH, sizeof *yv);
    rng_fill_gaussian(&rng, xv, nx, 0.0f, 1.0f);
    for (size_t i = 0; i < ROT_BATCH; i++) yv[i] = (int32_t)rng_below(&rng, classes);

    struct rotation_iter it = {.opt = t.opt, .rng = &rng};
    it.rp = rotation_problem_new(t.net);
    rotation_problem_set_batches(it.rp, t.x, t.y, ROT_BATCH, xv, yv, ROT_BATCH);
    struct optim_params mop = op;
    mop.lr = 0.01f;
    it.meta_opt = optim_new(&mop, 1);
    struct hyper_params hp = bench_hyper_params(m);
    hp.lookahead_lr = op.lr; // the task's look-ahead: the base learning rate
    if (m != HYPER_NONE) it.h = hyper_new(&hp, t.net->nparams, 1);

    double med = median_iteration(rotation_iteration, &it, steps, NULL);
    hyper_free(it.h);
    optim_free(it.meta_opt);
    rotation_problem_free(it.rp);
    free(xv);
    free(yv);
    trainer_free(&t);
    return med;
}

static void run_rotation_case(int threads, size_t steps)
{
    printf("rotation: lenet, batch %d + validation batch %d, 1x28x28, the learned angle (H = 1), "
           "Adam 1e-3 / 1e-2, evograd K = 2, %d threads, median of %zu after 1 warm-up\n",
           ROT_BATCH, ROT_BATCH, threads, steps);
    double med[NMETH], rss[NMETH];
    run_methods(run_rotation_method, NULL, "iteration (base step + meta-step)", threads, steps, med,
                rss, NULL);
    printf("    time: evograd/none %.2fx, unrolled/none %.2fx, unrolled_fd/none %.2fx, "
           "evograd/unrolled %.2fx\n",
           med[M_EVOGRAD] / med[M_NONE], med[M_EXACT] / med[M_NONE], med[M_FD] / med[M_NONE],
           med[M_EVOGRAD] / med[M_EXACT]);
    fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
// The lft case: one LFT iteration (lft_step, tasks/lft.h) per method on resnet10/18/34.

#define LFT_WAY 5
#define LFT_SHOT 5
#define LFT_QUERIES 16
#define LFT_AUX_BATCH 16
#define LFT_AUX_CLASSES 64

// What a child reports in info (run_methods), in this order.
enum {
    LFT_INFO_TOTAL, LFT_INFO_ENC, LFT_INFO_REL, LFT_INFO_AUX, LFT_INFO_H, LFT_INFO_ACT_MB,
    LFT_INFO_CPU // median CPU seconds per iteration
};
_Static_assert(LFT_INFO_CPU < METHOD_INFO, "run_methods carries METHOD_INFO values");

struct lft_bench {
    enum backbone_kind kind;
    size_t size; // images are 3 x size x size
};

struct lft_iter {
    struct lft_problem *pr;
    struct lft_optims o;
    struct hyper *h; // NULL: none
    struct optim *meta_opt;
    struct rng *hyper_rng;
    const float *xa;
    const int32_t *ya;
};

static void lft_iteration(void *ctx)
{
    struct lft_iter *it = ctx;
    const struct lft_aux aux = {it->xa, it->ya, LFT_AUX_BATCH, 1.0f};
    const struct meta_step ms = {
        .hyper = it->h, .opt = it->meta_opt, .lr = it->meta_opt->p.lr, .rng = it->hyper_rng};
    lft_step(it->pr, &it->o, 1e-3f, &aux, &ms, NULL);
}

// One method's LFT iteration (aux loss, PS episode, Adam step, then the hypergradient on the PS
// and PU episodes and the FT Adam step): median seconds; info: the parameter counts, the
// activation buffers (MB) of the three nets after the run and the median CPU seconds.
static double run_lft_method(enum hyper_method m, const void *ctx, int threads, size_t steps,
                             double *info)
{
    const struct lft_bench *lb = ctx;
    conv2d_set_threads(threads);
    struct rng init, ft, hrng, data;
    rng_seed_stream(&init, 1, 0);
    rng_seed_stream(&ft, 1, 1);
    rng_seed_stream(&hrng, 1, 2);
    rng_seed_stream(&data, 1, 3);
    struct backbone_spec spec = backbone_defaults(lb->kind);
    spec.ft = true;
    const struct shape image = {3, lb->size, lb->size};
    struct lft_model *model = lft_model_new(&spec, image, LFT_AUX_CLASSES, &init);

    // The episodes and the aux batch: gaussian pixels (the cost does not depend on them).
    const size_t numel = shape_numel(image), ne = LFT_WAY * (LFT_SHOT + LFT_QUERIES);
    float *xs = eg_xmalloc_floats(ne * numel), *xu = eg_xmalloc_floats(ne * numel);
    float *xa = eg_xmalloc_floats(LFT_AUX_BATCH * numel);
    int32_t *ya = eg_xmalloc_array(LFT_AUX_BATCH, sizeof *ya);
    rng_fill_gaussian(&data, xs, ne * numel, 0.0f, 1.0f);
    rng_fill_gaussian(&data, xu, ne * numel, 0.0f, 1.0f);
    rng_fill_gaussian(&data, xa, LFT_AUX_BATCH * numel, 0.0f, 1.0f);
    for (size_t i = 0; i < LFT_AUX_BATCH; i++) ya[i] = (int32_t)rng_below(&data, LFT_AUX_CLASSES);

    // The paper's settings (paper-spec 1.7, 3.3): model and FT Adam 1e-3 (FT wd 1e-8), evograd
    // K = 2, sigma 1e-3, tau 0.05; the look-ahead step alpha = the base lr 1e-3 (2.2).
    struct lft_iter it = {.xa = xa, .ya = ya, .hyper_rng = &hrng};
    it.pr = lft_problem_new(model, &ft);
    lft_problem_set_episodes(it.pr, xs, xu, LFT_WAY, LFT_SHOT, LFT_QUERIES);
    struct optim_params op = optim_defaults(OPTIM_KIND_ADAM);
    op.lr = 1e-3f;
    lft_optims_init(&it.o, model, &op);
    struct optim_params mop = op;
    mop.weight_decay = 1e-8f;
    it.meta_opt = optim_new(&mop, model->H > 0 ? model->H : 1);
    struct hyper_params hp = bench_hyper_params(m);
    hp.lookahead_lr = 1e-3;
    if (m != HYPER_NONE) it.h = hyper_new(&hp, it.pr->mp.P, model->H);

    double med = median_iteration(lft_iteration, &it, steps, &info[LFT_INFO_CPU]);
    info[LFT_INFO_TOTAL] = (double)lft_model_params(model);
    info[LFT_INFO_ENC] = (double)model->P_enc;
    info[LFT_INFO_REL] = (double)model->P_rel;
    info[LFT_INFO_AUX] = (double)model->aux->nparams;
    info[LFT_INFO_H] = (double)model->H;
    info[LFT_INFO_ACT_MB] = (double)(net_buffer_bytes(model->enc) +
                                     net_buffer_bytes(model->rel->net) +
                                     net_buffer_bytes(model->aux)) /
                            (1024.0 * 1024.0);

    hyper_free(it.h);
    optim_free(it.meta_opt);
    lft_optims_deinit(&it.o);
    lft_problem_free(it.pr);
    lft_model_free(model);
    free(xs);
    free(xu);
    free(xa);
    free(ya);
    return med;
}

// H of the paper's ResNets with FT layers at 64 base channels (paper-spec 3.3).
static size_t lft_expected_H(enum backbone_kind kind)
{
    switch (kind) {
    case BACKBONE_RESNET10: return 3712;
    case BACKBONE_RESNET18: return 5632;
    case BACKBONE_RESNET34: return 9344;
    default: return 0;
    }
}

// n with thousands separators ("9,344") into buf.
static const char *with_commas(size_t n, char buf[32])
{
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%zu", n);
    size_t o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

// The three backbones, each method in its own process; per backbone the parameter counts, the
// ratios and the memory above none next to the work vectors the methods keep; then Markdown
// tables. Returns false when a backbone's FT count is not the paper's (the case then fails).
// The first of the three methods that ran (--method runs one; the others' times are NaN).
static size_t ran_method(const double med[NMETH])
{
    for (size_t i = 0; i < NMETH; i++) {
        if (!isnan(med[i])) return i;
    }
    return 0;
}

static bool run_lft_case(int threads, size_t steps, size_t size, const char *only)
{
    const enum backbone_kind all[3] = {BACKBONE_RESNET10, BACKBONE_RESNET18, BACKBONE_RESNET34};
    enum backbone_kind kinds[3];
    size_t nk = 0;
    for (size_t b = 0; b < 3; b++) {
        if (only == NULL || strcmp(only, backbone_name(all[b])) == 0) kinds[nk++] = all[b];
    }
    if (nk == 0) {
        fprintf(stderr, "evograd-bench: --lft-backbone must be resnet10, resnet18 or resnet34\n");
        return false;
    }
    printf("lft: one LFT iteration (lft_step: aux batch of %d images over %d classes, the PS "
           "episode, Adam, then the hypergradient on the PS and PU episodes and the FT step) on "
           "%s with FT layers, %d-way %d-shot %d queries (%d images per episode), "
           "3x%zux%zu, evograd K = 2 sigma 1e-3 tau 0.05, unrolled alpha 1e-3, %d BLAS threads, "
           "median of %zu after 1 warm-up\n",
           LFT_AUX_BATCH, LFT_AUX_CLASSES, only != NULL ? only : "resnet10/18/34", LFT_WAY,
           LFT_SHOT, LFT_QUERIES,
           LFT_WAY * (LFT_SHOT + LFT_QUERIES), size, size, threads, steps);
    double med[3][NMETH], rss[3][NMETH], info[3][NMETH][METHOD_INFO];
    bool ok = true;
    char c1[32], c2[32], c3[32], c4[32], c5[32], c6[32];
    for (size_t b = 0; b < nk; b++) {
        const struct lft_bench lb = {kinds[b], size};
        char name[32]; // the CSV rows' case: lft-resnet10 etc.
        snprintf(name, sizeof name, "lft-%s", backbone_name(kinds[b]));
        out.name = name;
        printf("  %s\n", backbone_name(kinds[b]));
        run_methods(run_lft_method, &lb, "iteration", threads, steps, med[b], rss[b], info[b]);
        const double *in = info[b][ran_method(med[b])]; // the counts of a method that ran
        const size_t H = (size_t)in[LFT_INFO_H], want = lft_expected_H(kinds[b]);
        const size_t P = (size_t)in[LFT_INFO_ENC] + (size_t)in[LFT_INFO_REL];
        ok = ok && H == want;
        printf("    parameters %s: encoder weights P_enc %s, relation module P_rel %s, aux "
               "classifier %s, FT scalars H %s (paper %s: %s)\n",
               with_commas((size_t)in[LFT_INFO_TOTAL], c1), with_commas((size_t)in[LFT_INFO_ENC], c2),
               with_commas((size_t)in[LFT_INFO_REL], c3), with_commas((size_t)in[LFT_INFO_AUX], c4),
               with_commas(H, c5), with_commas(want, c6), H == want ? "ok" : "MISMATCH");
        const double *t = med[b], *r = rss[b];
        printf("    time: evograd/none %.2fx, unrolled/none %.2fx, unrolled_fd/none %.2fx, "
               "evograd/unrolled %.2fx\n",
               t[M_EVOGRAD] / t[M_NONE], t[M_EXACT] / t[M_NONE], t[M_FD] / t[M_NONE],
               t[M_EVOGRAD] / t[M_EXACT]);
        double cpu[NMETH];
        for (size_t i = 0; i < NMETH; i++) cpu[i] = info[b][i][LFT_INFO_CPU];
        printf("    CPU time (all threads): none %.1f s, evograd %.1f s, unrolled %.1f s, "
               "unrolled_fd %.1f s per iteration; evograd/none %.2fx, unrolled/none %.2fx, "
               "evograd/unrolled %.2fx\n",
               cpu[M_NONE], cpu[M_EVOGRAD], cpu[M_EXACT], cpu[M_FD], cpu[M_EVOGRAD] / cpu[M_NONE],
               cpu[M_EXACT] / cpu[M_NONE], cpu[M_EVOGRAD] / cpu[M_EXACT]);
        printf("    peak RSS: evograd/none %.2fx, unrolled/none %.2fx, unrolled_fd/none %.2fx, "
               "evograd/unrolled %.2fx\n",
               r[M_EVOGRAD] / r[M_NONE], r[M_EXACT] / r[M_NONE], r[M_FD] / r[M_NONE],
               r[M_EVOGRAD] / r[M_EXACT]);
        // The P-vectors each method touches beyond none (theta = P = P_enc + P_rel floats):
        // evograd the K perturbations, their weighted mean (double), the candidate point, g_V,
        // and the problem's theta and saved copy: K + 6 = 8 P; unrolled_fd point, grad, v,
        // theta, saved: 5 P; the exact unrolled the same 5 P, the tangent's direction and the
        // gradients' tangents (3 P), and a second set of the activation and gradient buffers.
        const double pmb = (double)P * sizeof(float) / (1024.0 * 1024.0);
        printf("    peak RSS above none: evograd %+.0f MB, unrolled %+.0f MB, unrolled_fd %+.0f MB; "
               "their work vectors 8P = %.0f MB, 8P + activations, 5P = %.0f MB (P = %s); "
               "activation buffers %.0f MB\n",
               r[M_EVOGRAD] - r[M_NONE], r[M_EXACT] - r[M_NONE], r[M_FD] - r[M_NONE], 8.0 * pmb,
               5.0 * pmb, with_commas(P, c1), in[LFT_INFO_ACT_MB]);
        fflush(stdout);
        out.name = "lft";
        char row[48];
        snprintf(row, sizeof row, "LFT %s + FT, 3x%zux%zu", backbone_name(kinds[b]), size, size);
        eff_add(row, t, r, P, info[b][M_NONE][LFT_INFO_ACT_MB]);
    }

    printf("\n  Markdown (lft, 3x%zux%zu, %d-way %d-shot %d queries + PU episode + %d aux images, "
           "%d threads, median of %zu):\n\n",
           size, size, LFT_WAY, LFT_SHOT, LFT_QUERIES, LFT_AUX_BATCH, threads, steps);
    printf("| backbone | parameters | P_enc | P_rel | aux classifier | H (FT) | paper H |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t b = 0; b < nk; b++) {
        const double *in = info[b][ran_method(med[b])];
        printf("| %s | %s | %s | %s | %s | %s | %s%s |\n", backbone_name(kinds[b]),
               with_commas((size_t)in[LFT_INFO_TOTAL], c1), with_commas((size_t)in[LFT_INFO_ENC], c2),
               with_commas((size_t)in[LFT_INFO_REL], c3), with_commas((size_t)in[LFT_INFO_AUX], c4),
               with_commas((size_t)in[LFT_INFO_H], c5), with_commas(lft_expected_H(kinds[b]), c6),
               (size_t)in[LFT_INFO_H] == lft_expected_H(kinds[b]) ? "" : " (MISMATCH)");
    }
    printf("\n| backbone | none s/it | evograd s/it | unrolled s/it | unrolled_fd s/it | "
           "evograd/none | unrolled/none | evograd/unrolled | none RSS MB | evograd RSS MB | "
           "unrolled RSS MB | unrolled_fd RSS MB | RSS evograd/unrolled |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t b = 0; b < nk; b++) {
        const double *t = med[b], *r = rss[b];
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2fx | %.2fx | %.2fx | %.0f | %.0f | %.0f | "
               "%.0f | %.2fx |\n",
               backbone_name(kinds[b]), t[M_NONE], t[M_EVOGRAD], t[M_EXACT], t[M_FD],
               t[M_EVOGRAD] / t[M_NONE], t[M_EXACT] / t[M_NONE], t[M_EVOGRAD] / t[M_EXACT],
               r[M_NONE], r[M_EVOGRAD], r[M_EXACT], r[M_FD], r[M_EVOGRAD] / r[M_EXACT]);
    }
    printf("\n| backbone | none CPU s/it | evograd CPU s/it | unrolled CPU s/it | "
           "unrolled_fd CPU s/it | evograd/none | unrolled/none | evograd/unrolled |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t b = 0; b < nk; b++) {
        double c[NMETH];
        for (size_t i = 0; i < NMETH; i++) c[i] = info[b][i][LFT_INFO_CPU];
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2fx | %.2fx | %.2fx |\n",
               backbone_name(kinds[b]), c[M_NONE], c[M_EVOGRAD], c[M_EXACT], c[M_FD],
               c[M_EVOGRAD] / c[M_NONE], c[M_EXACT] / c[M_NONE], c[M_EVOGRAD] / c[M_EXACT]);
    }
    printf("\n");
    if (!ok) printf("lft: FT parameter count differs from the paper's (MISMATCH above)\n");
    fflush(stdout);
    return ok;
}

// The efficiency case: the paper's central comparison (EvoGrad against the exact second-order
// look-ahead, time and memory, up to ResNet-34) on the CPU: the mwn and lft cases with all four
// methods, then one table of them and the memory model.
static bool run_efficiency_case(int threads, size_t steps, size_t lft_size, const char *only)
{
    neff = 0;
    run_mwn_case(threads, steps ? steps : 6);
    bool ok = run_lft_case(threads, steps ? steps : 1, lft_size, only);
    printf("\nefficiency: seconds and peak RSS per meta-iteration, each method in its own process, "
           "%d threads\n\n",
           threads);
    printf("| problem | none s | evograd (K = 2) s | unrolled (exact) s | unrolled_fd s | "
           "evograd / exact, time | none MB | evograd MB | exact MB | unrolled_fd MB | "
           "evograd / exact, RSS | exact - none MB | activations MB |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < neff; i++) {
        const double *t = eff[i].med, *r = eff[i].rss;
        printf("| %s | %.3g | %.3g | %.3g | %.3g | %.2fx | %.0f | %.0f | %.0f | %.0f | %.2fx | "
               "%+.0f | %.0f |\n",
               eff[i].name, t[M_NONE], t[M_EVOGRAD], t[M_EXACT], t[M_FD],
               t[M_EVOGRAD] / t[M_EXACT], r[M_NONE], r[M_EVOGRAD], r[M_EXACT], r[M_FD],
               r[M_EVOGRAD] / r[M_EXACT], r[M_EXACT] - r[M_NONE], eff[i].act_mb);
    }
    printf("\nmemory model (P = theta's floats, A = one set of activation and gradient buffers of "
           "the training batch): none keeps A and the optimiser's vectors; evograd adds K + 6 "
           "P-vectors (the K perturbations, their weighted mean in double, the candidate point, "
           "g_V, the problem's copies) and nothing activation-sized (its K candidates and theta* "
           "run one after another through the same buffers); unrolled_fd adds 5 P-vectors; the "
           "exact unrolled adds 8 P-vectors (unrolled_fd's and the tangent's direction and "
           "gradient tangents) and a second A (the tangents of every activation and gradient, "
           "alive through the one forward-over-reverse pass)\n");
    for (size_t i = 0; i < neff; i++) {
        const double pmb = (double)eff[i].P * sizeof(float) / (1024.0 * 1024.0);
        printf("  %s: P = %zu (%.1f MB): evograd model +%.0f MB, measured %+.0f MB; exact model "
               "+%.0f MB + A (%.0f MB), measured %+.0f MB\n",
               eff[i].name, eff[i].P, pmb, 8.0 * pmb, eff[i].rss[M_EVOGRAD] - eff[i].rss[M_NONE],
               8.0 * pmb, eff[i].act_mb, eff[i].rss[M_EXACT] - eff[i].rss[M_NONE]);
    }
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    eg_runtime_setup(argv);
    int threads = 2;
    size_t steps = 0, lft_size = 224;
    const char *which = "all", *lft_backbone = NULL;
    bool csv = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], NULL, 10);
            threads = v > 0 && v < 256 ? (int)v : 1;
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = (size_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            which = argv[++i];
        } else if (strcmp(argv[i], "--lft-size") == 0 && i + 1 < argc) {
            lft_size = (size_t)strtoul(argv[++i], NULL, 10);
            if (lft_size < 32) {
                fprintf(stderr, "evograd-bench: --lft-size must be at least 32\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--lft-backbone") == 0 && i + 1 < argc) {
            lft_backbone = argv[++i];
        } else if (strcmp(argv[i], "--method") == 0 && i + 1 < argc) {
            out.method = argv[++i];
            enum hyper_method m;
            if (!hyper_method_find(out.method, &m)) {
                fprintf(stderr, "evograd-bench: --method must be none, evograd, unrolled or unrolled_fd\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--conv") == 0 && i + 1 < argc) {
            enum conv2d_backend b;
            if (!conv2d_backend_find(argv[++i], &b)) {
                fprintf(stderr, "evograd-bench: --conv must be dnnl, dnnl_direct or im2col\n");
                return 2;
            }
            conv2d_set_backend(b);
        } else if (strcmp(argv[i], "--csv") == 0) {
            csv = true;
        } else {
            fprintf(stderr, "usage: evograd-bench [--threads N] [--steps N] [--lft-size S] "
                            "[--lft-backbone resnet10|resnet18|resnet34] "
                            "[--method none|evograd|unrolled|unrolled_fd] [--conv dnnl|dnnl_direct|im2col] "
                            "[--csv] [--case resnet32|lenet|data|meta|mwn|rotation|lft|efficiency|all]\n");
            return 2;
        }
    }
    out.threads = threads;
    if (csv) {
        // the rows go to the real stdout; every human line to stderr
        int fd = dup(STDOUT_FILENO);
        out.csv = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (out.csv == NULL || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
            perror("evograd-bench: --csv");
            return 1;
        }
        fprintf(out.csv, "case,method,threads,ms,peak_rss_mb\n");
        fflush(out.csv);
    }
    const struct bench_case cases[] = {
        {"resnet32", BACKBONE_RESNET32, {3, 32, 32}, 10, 100, 15, true},
        {"lenet", BACKBONE_LENET, {1, 28, 28}, 10, 128, 60, false},
        {"data", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 0, false},
        {"meta", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 6, false},
        {"mwn", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 6, false},
        {"rotation", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 30, false},
        {"lft", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 2, false},
        {"efficiency", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 0, false},
    };
    bool known = strcmp(which, "all") == 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        known = known || strcmp(which, cases[c].name) == 0;
    if (!known) {
        fprintf(stderr, "evograd-bench: unknown case '%s'\n", which);
        return 2;
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (strcmp(which, "all") != 0 && strcmp(which, cases[c].name) != 0) continue;
        // all: the efficiency case runs the mwn and lft cases (with its table)
        if (strcmp(which, "all") == 0 &&
            (strcmp(cases[c].name, "mwn") == 0 || strcmp(cases[c].name, "lft") == 0)) {
            continue;
        }
        out.name = cases[c].name;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            if (strcmp(cases[c].name, "meta") == 0) {
                run_meta_case(threads, steps ? steps : cases[c].steps);
            } else if (strcmp(cases[c].name, "mwn") == 0) {
                run_mwn_case(threads, steps ? steps : cases[c].steps);
            } else if (strcmp(cases[c].name, "rotation") == 0) {
                run_rotation_case(threads, steps ? steps : cases[c].steps);
            } else if (strcmp(cases[c].name, "efficiency") == 0) {
                _exit(run_efficiency_case(threads, steps, lft_size, lft_backbone) ? 0 : 1);
            } else if (strcmp(cases[c].name, "lft") == 0) {
                _exit(run_lft_case(threads, steps ? steps : cases[c].steps, lft_size,
                                    lft_backbone) ? 0 : 1);
            } else if (cases[c].kind == BACKBONE__COUNT) {
                run_data_case();
            } else {
                run_case(&cases[c], threads, steps ? steps : cases[c].steps);
            }
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "evograd-bench: case %s failed\n", cases[c].name);
            return 1;
        }
    }
    return 0;
}
