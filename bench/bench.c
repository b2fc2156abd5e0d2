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
 * Usage: evograd-bench [--threads N] [--steps N] [--case resnet32|lenet|data|meta|all] */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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
#include "nn/loss.h"
#include "nn/net.h"
#include "nn/optim.h"

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
    eg_set_threads(threads);
    struct rng rng;
    rng_seed(&rng, 1);
    struct backbone_spec spec = backbone_defaults(bc->kind);
    struct trainer t = {.n = bc->batch, .classes = bc->classes};
    t.net = backbone_new(&spec, bc->in, bc->classes, &rng);
    struct optim_params op = optim_defaults(OPTIM_KIND_SGD);
    op.lr = 0.01f;
    op.momentum = 0.9f;
    op.nesterov = true;
    op.weight_decay = 5e-4f;
    t.opt = optim_new(&op, t.net->nparams);
    size_t nx = shape_numel(bc->in) * bc->batch;
    t.x = eg_xmalloc_floats(nx);
    rng_fill_gaussian(&rng, t.x, nx, 0.0f, 1.0f);
    t.y = eg_xmalloc_array(bc->batch, sizeof *t.y);
    for (size_t i = 0; i < bc->batch; i++) t.y[i] = (int32_t)rng_below(&rng, bc->classes);
    t.dlogits = eg_xmalloc_floats(bc->batch * bc->classes);
    t.losses = eg_xmalloc_floats(bc->batch);

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

    printf("%s: batch %zu, %zux%zux%zu, %zu classes, %zu parameters, %d BLAS threads\n", bc->name,
           bc->batch, bc->in.c, bc->in.h, bc->in.w, bc->classes, t.net->nparams, threads);
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
    free(t.x);
    free(t.y);
    free(t.dlogits);
    free(t.losses);
    optim_free(t.opt);
    net_free(t.net);
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

// One method's meta-step on resnet32: median seconds over `steps` after a warm-up; prints a line.
static double run_meta_method(enum hyper_method m, int threads, size_t steps)
{
    eg_set_threads(threads);
    const size_t n = 100, classes = 10;
    const struct shape in = {3, 32, 32};
    struct rng rng;
    rng_seed(&rng, 1);
    struct backbone_spec spec = backbone_defaults(BACKBONE_RESNET32);
    struct trainer t = {.n = n, .classes = classes};
    t.net = backbone_new(&spec, in, classes, &rng);
    struct optim_params op = optim_defaults(OPTIM_KIND_SGD);
    op.lr = 0.01f;
    op.momentum = 0.9f;
    t.opt = optim_new(&op, t.net->nparams);
    size_t nx = shape_numel(in) * n;
    t.x = eg_xmalloc_floats(nx);
    float *xv = eg_xmalloc_floats(nx);
    rng_fill_gaussian(&rng, t.x, nx, 0.0f, 1.0f);
    rng_fill_gaussian(&rng, xv, nx, 0.0f, 1.0f);
    t.y = eg_xmalloc_array(n, sizeof *t.y);
    int32_t *yv = eg_xmalloc_array(n, sizeof *yv);
    for (size_t i = 0; i < n; i++) {
        t.y[i] = (int32_t)rng_below(&rng, classes);
        yv[i] = (int32_t)rng_below(&rng, classes);
    }
    t.dlogits = eg_xmalloc_floats(n * classes);
    t.losses = eg_xmalloc_floats(n);

    struct weighted_problem *wp =
        weighted_problem_new(t.net, n, LAYER_MODE_TRAIN_FROZEN, LAYER_MODE_TRAIN_FROZEN);
    weighted_problem_set_batches(wp, t.x, t.y, n, xv, yv, n);
    struct hyper_params hp = {.method = m, .candidates = 2, .sigma = 1e-3, .temperature = 0.05,
                              .noise = HYPER_NOISE_RADEMACHER, .lookahead_lr = 0.1};
    struct hyper *h = hyper_new(&hp, t.net->nparams, n);
    float *lambda = eg_xmalloc_floats(n), *hg = eg_xmalloc_floats(n);
    for (size_t i = 0; i < n; i++) lambda[i] = 1.0f;
    // theta is a copy: the methods must not see the parameters they are about to overwrite
    float *theta = eg_xmalloc_floats(t.net->nparams);

    double *times = eg_xmalloc_array(steps, sizeof *times);
    for (size_t s = 0; s < steps + 1; s++) {
        double t0 = eg_wall_seconds();
        if (m != HYPER_NONE) {
            memcpy(theta, t.net->params, t.net->nparams * sizeof(float));
            hyper_grad(h, &wp->mp, theta, lambda, &rng, hg, NULL);
        }
        train_step(&t);
        if (s > 0) times[s - 1] = eg_wall_seconds() - t0; // the first is the warm-up
    }
    double med = median(times, steps);
    printf("    %-9s %8.1f ms per meta-step (hypergradient + base step)  peak RSS %6.1f MB\n",
           hyper_method_name(m), 1e3 * med, eg_peak_rss_mb());
    fflush(stdout);
    free(times);
    free(theta);
    free(lambda);
    free(hg);
    hyper_free(h);
    weighted_problem_free(wp);
    free(xv);
    free(yv);
    free(t.x);
    free(t.y);
    free(t.dlogits);
    free(t.losses);
    optim_free(t.opt);
    net_free(t.net);
    return med;
}

// Each method in its own process (own peak RSS); the medians come back through a pipe.
static void run_meta_case(int threads, size_t steps)
{
    printf("meta: resnet32, batch 100, 3x32x32, per-sample loss weights as lambda (H = 100), "
           "evograd K = 2, %d BLAS threads\n",
           threads);
    fflush(stdout);
    const enum hyper_method methods[3] = {HYPER_NONE, HYPER_EVOGRAD, HYPER_UNROLLED};
    double med[3] = {0};
    for (size_t i = 0; i < 3; i++) {
        int fd[2];
        EG_ASSERT(pipe(fd) == 0);
        pid_t pid = fork();
        EG_ASSERT(pid >= 0);
        if (pid == 0) {
            close(fd[0]);
            double v = run_meta_method(methods[i], threads, steps);
            ssize_t wr = write(fd[1], &v, sizeof v);
            _exit(wr == (ssize_t)sizeof v ? 0 : 1);
        }
        close(fd[1]);
        ssize_t rd = read(fd[0], &med[i], sizeof med[i]);
        close(fd[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        EG_ASSERT(rd == (ssize_t)sizeof med[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    printf("    relative to none: evograd %.2fx, unrolled %.2fx\n", med[1] / med[0],
           med[2] / med[0]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    eg_runtime_setup(argv);
    int threads = 2;
    size_t steps = 0;
    const char *which = "all";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], NULL, 10);
            threads = v > 0 && v < 256 ? (int)v : 1;
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = (size_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            which = argv[++i];
        } else {
            fprintf(stderr, "usage: evograd-bench [--threads N] [--steps N] [--case NAME|all]\n");
            return 2;
        }
    }
    const struct bench_case cases[] = {
        {"resnet32", BACKBONE_RESNET32, {3, 32, 32}, 10, 100, 15, true},
        {"lenet", BACKBONE_LENET, {1, 28, 28}, 10, 128, 60, false},
        {"data", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 0, false},
        {"meta", BACKBONE__COUNT, {0, 0, 0}, 0, 0, 6, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (strcmp(which, "all") != 0 && strcmp(which, cases[c].name) != 0) continue;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            if (strcmp(cases[c].name, "meta") == 0) {
                run_meta_case(threads, steps ? steps : cases[c].steps);
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
