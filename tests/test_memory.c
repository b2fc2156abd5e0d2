/* test_memory.c - the memory check before a run (lib/run/memory.h) and the tasks' estimates:
 *   1. sizes and the limit: the size parser, EVOGRAD_MEMORY_LIMIT (and its error), the detected
 *      limit, the message;
 *   2. a network sized from its layers (net_batch_bytes) against what forward and backward
 *      allocate, before and after net_finalize;
 *   3. configs the schema allows but no machine holds are refused naming the key (the examples
 *      of issue 18), and every shipped config passes on a 24 GiB machine;
 *   4. the estimates against reality: the bytes a task holds after init, a step, an evaluation
 *      and another step (glibc's mallinfo2), for small supervised, mwn and lft runs.
 * Limits are set with EVOGRAD_MEMORY_LIMIT (each test runs in its own process). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <glob.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "helpers.h"
#include "io/config.h"
#include "meta/hyper.h"
#include "nn/backbones.h"
#include "nn/loss.h"
#include "nn/layers.h"
#include "nn/net.h"
#include "run/memory.h"
#include "run/run.h"
#include "run/task.h"
#include "run/task_lft.h"
#include "run/task_mwn.h"
#include "run/task_rotation.h"
#include "run/task_supervised.h"
#include "run/task_toy1d.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

// ---------------------------------------------------------------------------------------------
// 1. sizes and the limit

Test(memory_size, parses_bytes_and_binary_suffixes)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"1", 1},
        {"1048576", 1048576},
        {"512k", 512ull << 10},
        {"512K", 512ull << 10},
        {"300M", 300ull << 20},
        {"24G", 24ull << 30},
        {"24g", 24ull << 30},
        {"2T", 2ull << 40},
        {"8388607T", 8388607ull << 40}, // just below 2^63
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 0;
        cr_assert(memory_parse_size(good[i].text, &v), "%s", good[i].text);
        cr_assert(eq(u64, v, good[i].bytes), "%s", good[i].text);
    }
    // signs, spaces, fractions, other suffixes, 0, 2^63 and more
    // clang-format off
    static const char *const bad[] = {
        "", "G", "0", "0G", "-1", "+1", " 1", "1 ", "1.5G", "24GB", "24Gi", "1P", "abc", "1e9",
        "0x10", "8388608T", "99999999999999999999",
    };
    // clang-format on
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        cr_assert(memory_parse_size(bad[i], &v) == false, "'%s' was accepted", bad[i]);
        cr_assert(eq(u64, v, 7), "'%s': output written", bad[i]);
    }
}

Test(memory_size, formats_binary_units_with_three_digits)
{
    static const struct {
        double bytes;
        const char *text;
    } cases[] = {
        {512.0, "512 bytes"},     {1536.0, "1.50 KiB"},     {300.0 * 1048576.0, "300 MiB"},
        {23.4 * GIB, "23.4 GiB"}, {313.0 * GIB, "313 GiB"}, {4096.0 * GIB, "4.00 TiB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        memory_format(cases[i].bytes, buf, sizeof buf);
        cr_assert(strcmp(buf, cases[i].text) == 0, "%g: '%s', want '%s'", cases[i].bytes, buf,
                  cases[i].text);
    }
}

Test(memory_limit, the_environment_sets_it_and_a_bad_value_is_an_error_naming_it)
{
    struct memory_limit l = {0};
    struct eg_error err = {0};
    cr_assert(setenv("EVOGRAD_MEMORY_LIMIT", "24G", 1) == 0);
    cr_assert(memory_limit_get(&l, &err) == EG_OK);
    cr_assert(l.bytes == 24.0 * GIB && strcmp(l.source, "EVOGRAD_MEMORY_LIMIT") == 0);

    cr_assert(setenv("EVOGRAD_MEMORY_LIMIT", "lots", 1) == 0);
    struct memory_limit kept = {.bytes = 5.0, .source = "kept"};
    cr_assert(memory_limit_get(&kept, &err) == EG_ERR_ARG);
    cr_assert(strstr(err.msg, "EVOGRAD_MEMORY_LIMIT") != NULL && strstr(err.msg, "'lots'"), "%s",
              err.msg);
    cr_assert(kept.bytes == 5.0 && strcmp(kept.source, "kept") == 0, "output written");
    // the check passes the error on
    struct memory_estimate e = {0};
    memory_add(&e, "train.batch_size", "for activations", 1.0, "%d", 1);
    cr_assert(memory_check(&e, &err) == EG_ERR_ARG);
}

Test(memory_limit, without_the_environment_it_is_at_most_the_physical_memory)
{
    cr_assert(unsetenv("EVOGRAD_MEMORY_LIMIT") == 0);
    struct memory_limit l = {0};
    struct eg_error err;
    cr_assert(memory_limit_get(&l, &err) == EG_OK);
    const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    char buf[32];
    memory_format(l.bytes, buf, sizeof buf);
    cr_log_info("limit %s (%s)", buf, l.source);
    cr_assert(l.bytes > 0.0 && l.bytes <= phys, "%g of %g", l.bytes, phys);
    const char *sources[] = {"physical memory", "cgroup memory.max", "RLIMIT_AS", "RLIMIT_DATA"};
    bool known = false;
    for (size_t i = 0; i < 4; i++)
        known = known || strcmp(l.source, sources[i]) == 0;
    cr_assert(known, "%s", l.source);
}

Test(memory_check, names_the_largest_key_its_value_its_bytes_the_total_and_the_limit)
{
    cr_assert(setenv("EVOGRAD_MEMORY_LIMIT", "1G", 1) == 0);
    struct memory_estimate e = {0};
    memory_add(&e, "train.batch_size", "for activations", 0.25 * GIB, "%d", 128);
    memory_add(&e, "eval.batch_size", "for the batch buffers", 0.5 * GIB, "%d", 5000);
    struct eg_error err;
    cr_assert(memory_check(&e, &err) == EG_OK, "%s", err.msg);
    // a key added twice is one term; its text is that of its largest part
    memory_add(&e, "eval.batch_size", "for activations and their gradients", 1.0 * GIB, "%d", 1);
    cr_assert(eq(sz, e.n, 2));
    cr_assert(memory_check(&e, &err) == EG_ERR_CONFIG);
    cr_assert(strcmp(err.msg, "eval.batch_size: 5000 needs about 1.50 GiB for activations and "
                              "their gradients (the run about 1.75 GiB in all); the limit is "
                              "1.00 GiB (EVOGRAD_MEMORY_LIMIT)") == 0,
              "%s", err.msg);
}

// ---------------------------------------------------------------------------------------------
// 2. a network sized from its layers

// Bytes in use (glibc's main arena and its mmap'ed blocks).
static double heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}

// mallinfo2 sees glibc's allocator; under AddressSanitizer or valgrind, which replace malloc,
// it does not see the allocations: probed with a block of 4 MiB.
static void need_glibc_heap(void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip("AddressSanitizer replaces malloc: mallinfo2 does not see the allocations");
#endif
    const double before = heap_bytes();
    volatile char *probe = malloc((size_t)4 << 20);
    cr_assert(probe != NULL);
    probe[0] = 1;
    const double grew = heap_bytes() - before;
    free((void *)probe);
    if (grew < (double)((size_t)4 << 20)) {
        cr_skip("malloc is replaced (valgrind?): mallinfo2 does not see the allocations");
    }
}

// One network: what net_batch_bytes says against the heap's growth over a forward and backward
// of a batch of n (both passes, and with dL/dx), on the finalized net and its skeleton.
static void check_net(const struct backbone_spec *spec, struct shape in, size_t classes, size_t n)
{
    struct rng rng;
    rng_seed(&rng, 5);
    struct net *skel = backbone_build(spec, in, classes);
    const enum net_pass passes[3] = {NET_PASS_FORWARD, NET_PASS_BACKWARD, NET_PASS_BACKWARD_DX};
    for (size_t p = 0; p < 3; p++) {
        struct net *net = backbone_new(spec, in, classes, &rng);
        net->rng = &rng; // FT layers draw their noise in training mode
        size_t P = 0, S = 0;
        net_count(skel, &P, NULL, &S);
        cr_assert(P == net->nparams && S == net->nstats);
        const size_t xn = n * shape_numel(in), on = n * shape_numel(net_out_shape(net));
        float *x = eg_xmalloc_floats(xn), *dy = eg_xcalloc_floats(on), *dx = NULL;
        if (passes[p] == NET_PASS_BACKWARD_DX) dx = eg_xmalloc_floats(xn);
        rng_fill_uniform(&rng, x, xn, -0.5f, 0.5f);
        const double before = heap_bytes();
        net_forward(net, x, n, LAYER_MODE_TRAIN);
        if (passes[p] != NET_PASS_FORWARD) net_backward(net, dy, dx);
        const double used = heap_bytes() - before;
        const double want = net_batch_bytes(net, n, passes[p]);
        cr_assert(net_batch_bytes(skel, n, passes[p]) == want, "the skeleton differs");
        cr_log_info("%s pass %zu, n %zu: estimate %.0f, allocated %.0f", backbone_name(spec->kind),
                    p, n, want, used);
        // malloc's headers and alignment only
        cr_assert(used >= want && used <= want * 1.01 + 4096.0,
                  "pass %zu: %.0f allocated, %.0f estimated", p, used, want);
        free(x);
        free(dy);
        free(dx);
        net_free(net);
    }
    net_free(skel);
}

static void use_im2col(void)
{
    conv2d_set_backend(CONV2D_IM2COL);
}

// On im2col, whose every buffer the estimate models. oneDNN adds its primitives' own objects:
// the next test bounds them.
Test(memory_net, batch_bytes_match_what_forward_and_backward_allocate, .init = use_im2col)
{
    need_glibc_heap();
    struct backbone_spec lenet = backbone_defaults(BACKBONE_LENET);
    check_net(&lenet, (struct shape){1, 28, 28}, 10, 64);
    struct backbone_spec r10 = backbone_defaults(BACKBONE_RESNET10);
    r10.channels = 4;
    r10.ft = true;
    r10.features_only = true;
    check_net(&r10, (struct shape){3, 32, 32}, 0, 20);
    struct backbone_spec r32 = backbone_defaults(BACKBONE_RESNET32);
    r32.channels = 4;
    check_net(&r32, (struct shape){3, 16, 16}, 10, 9);
}

// The heap growth of a training forward + backward with oneDNN convolutions, over the same with
// im2col, per convolution layer: oneDNN's primitive objects, JIT-compiled code and library
// scratchpad, which net_batch_bytes does not count. Measured: 64 KiB per layer (ResNet-32, AVX-512);
// bounded at 1 MiB, so the estimate is off by at most that per layer.
static double grown(enum conv2d_backend b, const struct backbone_spec *spec, struct shape in,
                    size_t n, size_t *nconv)
{
    conv2d_set_backend(b);
    struct rng rng;
    rng_seed(&rng, 5);
    struct net *net = backbone_new(spec, in, 10, &rng);
    *nconv = 0;
    for (size_t i = 0; i < net->nlayers; i++)
        *nconv += strcmp(net->layers[i].ops->name, "conv2d") == 0;
    const size_t xn = n * shape_numel(in), on = n * shape_numel(net_out_shape(net));
    float *x = eg_xmalloc_floats(xn), *dy = eg_xcalloc_floats(on);
    rng_fill_uniform(&rng, x, xn, -0.5f, 0.5f);
    const double before = heap_bytes();
    net_forward(net, x, n, LAYER_MODE_TRAIN);
    net_backward(net, dy, NULL);
    const double used = heap_bytes() - before;
    free(x);
    free(dy);
    net_free(net);
    return used;
}

Test(memory_net, dnnl_objects_stay_under_a_mebibyte_per_convolution)
{
    need_glibc_heap();
    struct backbone_spec r32 = backbone_defaults(BACKBONE_RESNET32);
    const struct shape in = {3, 32, 32};
    size_t nconv = 0;
    const double im2col = grown(CONV2D_IM2COL, &r32, in, 20, &nconv);
    const double dnnl = grown(CONV2D_DNNL, &r32, in, 20, &nconv);
    cr_log_info("resnet32, batch 20: %zu convolutions, heap %.0f (im2col) and %.0f (dnnl)", nconv,
                im2col, dnnl);
    cr_assert(eq(sz, nconv, 31));
    cr_assert(le(dbl, dnnl - im2col, (double)nconv * 1048576.0),
              "oneDNN added %.0f bytes over %zu convolutions", dnnl - im2col, nconv);
}

Test(memory_net, a_skeleton_sizes_a_network_too_large_to_build)
{
    struct backbone_spec spec = backbone_defaults(BACKBONE_MLP);
    spec.hidden[0] = spec.hidden[1] = 1000000;
    struct net *skel = backbone_build(&spec, (struct shape){1, 28, 28}, 10);
    size_t P = 0;
    net_count(skel, &P, NULL, NULL);
    cr_assert(
        eq(sz, P,
           784u * 1000000u + 1000000u + 1000000ull * 1000000u + 1000000u + 1000000u * 10u + 10u));
    // activations: input, two hidden layers (ReLU in place), output, the flattened input
    const double b = net_batch_bytes(skel, 100000000, NET_PASS_FORWARD);
    cr_assert(b > 1e8 * 2e6 * 4.0, "%g", b);
    net_free(skel);
}

// ---------------------------------------------------------------------------------------------
// 3. refusals and the shipped configs

TestSuite(memory_refuses, .init = e2e_setup, .fini = e2e_teardown);

static void load(struct run_config *cfg, const char *text, const char *const *ov, size_t nov)
{
    e2e_write("c.yaml", text);
    struct eg_error err;
    cr_assert(config_load(e2e_path("c.yaml"), ov, nov, cfg, &err) == EG_OK, "%s", err.msg);
}

// run_check on text with one override under a 24 GiB limit: refused, the message starting with
// want (the key and its value) and naming the limit.
static void refused(const char *text, const char *override, const char *want)
{
    cr_assert(setenv("EVOGRAD_MEMORY_LIMIT", "24G", 1) == 0);
    struct run_config cfg;
    const char *ov[] = {override};
    load(&cfg, text, ov, override != NULL ? 1 : 0);
    struct eg_error err = {0};
    cr_assert(eq(int, run_check(&cfg, &err), EG_ERR_CONFIG), "%s: %s", override, err.msg);
    cr_log_info("%s", err.msg);
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "got: %s\nwant: %s...", err.msg, want);
    cr_assert(strstr(err.msg, "; the limit is 24.0 GiB (EVOGRAD_MEMORY_LIMIT)") != NULL, "%s",
              err.msg);
    // the same config within a limit it fits
    cr_assert(setenv("EVOGRAD_MEMORY_LIMIT", "1000000T", 1) == 0);
    cr_assert(eq(int, run_check(&cfg, &err), EG_OK), "%s", err.msg);
}

Test(memory_refuses, a_huge_evaluation_batch)
{
    refused("task: supervised\n", "eval.batch_size=100000000",
            "eval.batch_size: 100000000 needs about 297 GiB for the batch buffers");
}

Test(memory_refuses, a_huge_evograd_population)
{
    refused("task: mwn\nbackbone: {name: resnet32}\nmethod: {name: evograd}\n",
            "method.candidates=100000",
            "method.candidates: 100000 needs about 173 GiB for EvoGrad's candidate perturbations");
}

Test(memory_refuses, a_huge_channel_count)
{
    refused("task: lft\nbackbone: {name: resnet10}\nmethod: {name: evograd}\n",
            "backbone.channels=4096", "backbone.channels: 4096 needs about ");
}

Test(memory_refuses, huge_hidden_layers)
{
    refused("task: supervised\nbackbone: {name: mlp}\n", "backbone.hidden=[1000000,1000000]",
            "backbone.hidden: [1000000, 1000000] needs about 10.9 TiB for the parameters");
}

Test(memory_refuses, a_huge_synthetic_dataset_huge_episodes_and_a_huge_training_batch)
{
    refused("task: supervised\ndata: {dataset: synthetic}\n", "data.synthetic_train=100000000000",
            "data.synthetic_train: 100000000000 needs about ");
    refused("task: lft\nbackbone: {name: resnet10}\nlft: {n_way: 100}\n", "lft.test_queries=1000",
            "lft.test_queries: 1000 needs about ");
    refused("task: lft\nbackbone: {name: resnet10}\n", "lft.n_way=1000",
            "lft.n_way: 1000 needs about ");
    refused("task: supervised\ndata: {dataset: cifar10}\nbackbone: {name: resnet32}\n",
            "train.batch_size=1000000", "train.batch_size: 1000000 needs about ");
}

// Every config under ../configs matching pattern passes run_check under a 24 GiB limit.
static size_t check_shipped(const char *pattern)
{
    glob_t g;
    cr_assert(glob(pattern, 0, NULL, &g) == 0, "no configs match %s", pattern);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct run_config cfg;
        struct eg_error err;
        cr_assert(config_load(g.gl_pathv[i], NULL, 0, &cfg, &err) == EG_OK, "%s", err.msg);
        cr_assert(eq(int, run_check(&cfg, &err), EG_OK), "%s: %s", g.gl_pathv[i], err.msg);
        // what the estimate is, for the record
        struct memory_estimate e = {0};
        const struct task_ops *t = task_find(cfg.task);
        if (t == &task_supervised) task_supervised_memory(&cfg, &e);
        if (t == &task_rotation) task_rotation_memory(&cfg, &e);
        if (t == &task_mwn) task_mwn_memory(&cfg, &e);
        if (t == &task_lft) task_lft_memory(&cfg, &e);
        if (t == &task_toy1d) task_toy1d_memory(&cfg, &e);
        char total[32], top[32];
        const struct memory_term *m = memory_largest(&e);
        memory_format(memory_total(&e), total, sizeof total);
        memory_format(m->bytes, top, sizeof top);
        cr_log_info("%s: about %s (largest: %s %s, %s %s)", g.gl_pathv[i], total, m->key, m->value,
                    top, m->what);
    }
    size_t n = g.gl_pathc;
    globfree(&g);
    return n;
}

Test(memory_refuses, no_shipped_config_on_a_24_gib_machine)
{
    cr_assert(setenv("EVOGRAD_MEMORY_LIMIT", "24G", 1) == 0);
    size_t n = check_shipped("../configs/*.yaml") + check_shipped("../configs/paper/*.yaml") +
               check_shipped("../configs/smoke/*.yaml");
    cr_assert(n >= 20, "%zu configs", n);
}

// ---------------------------------------------------------------------------------------------
// 4. the estimates against what the tasks allocate

typedef void (*estimate_fn)(const struct run_config *cfg, struct memory_estimate *e);

// The task of cfg through init, a step, an evaluated last epoch end and another step (the
// network's buffers then hold the largest batch, and the gradient pool was refilled at that
// size): the heap's growth against the task's estimate. Returns estimate / allocated.
static double measure(const char *what, const char *yaml, estimate_fn estimate)
{
    need_glibc_heap();
    struct run_config cfg;
    load(&cfg, yaml, NULL, 0);
    struct eg_error err;
    cr_assert(setenv("EVOGRAD_MEMORY_LIMIT", "24G", 1) == 0);
    cr_assert(eq(int, run_check(&cfg, &err), EG_OK), "%s", err.msg);
    struct memory_estimate e = {0};
    estimate(&cfg, &e);
    const double want = memory_total(&e);
    eg_set_threads(1);
    const struct task_ops *t = task_find(cfg.task);
    const double before = heap_bytes();
    void *state = NULL;
    cr_assert(eq(int, t->init(&cfg, &state, &err), EG_OK), "%s", err.msg);
    struct task_clock clk = {
        .epoch = 0, .epochs = cfg.train.epochs, .lr = (float)cfg.train.optimizer.lr};
    // with diagnostics, both steps compute them (as the loop asks every every_steps steps)
    struct hyper *h = cfg.diagnostics.every_steps > 0 ? t->hyper(state) : NULL;
    if (h != NULL) hyper_diag_request(h);
    t->step(state, &clk);
    clk.epoch = 1;
    clk.eval = clk.last = true;
    cr_assert(eq(int, t->epoch_end(state, &clk, &err), EG_OK), "%s", err.msg);
    clk.eval = clk.last = false;
    if (h != NULL) hyper_diag_request(h);
    t->step(state, &clk);
    const double used = heap_bytes() - before;
    t->free(state);
    char a[32], b[32];
    memory_format(want, a, sizeof a);
    memory_format(used, b, sizeof b);
    cr_log_info("%s: estimate %.0f bytes (%s), allocated %.0f (%s), ratio %.4f", what, want, a,
                used, b, want / used);
    for (size_t i = 0; i < e.n; i++) {
        memory_format(e.terms[i].bytes, a, sizeof a);
        cr_log_info("  %s %s: %s", e.terms[i].key, e.terms[i].value, a);
    }
    return want / used;
}

static void need_fmnist(void)
{
    if (access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        cr_skip("Fashion-MNIST is not installed (" FMNIST_DIR ")");
    }
}

TestSuite(memory_accuracy, .init = e2e_setup, .fini = e2e_teardown, .timeout = 300);

// The estimate counts what a run holds at its largest; the heap after the steps holds the same
// blocks, so the two agree closely. The allowance covers what the estimate rounds: malloc's
// headers, the built-in domains' class sizes (about 1,200 images per garment), and the buffers
// it counts though a step has not made them yet (the test's features, a test episode).
#define RATIO_LO 0.9
#define RATIO_HI 1.25

Test(memory_accuracy, supervised_lenet)
{
    const double r = measure("supervised lenet (synthetic 1x28x28)",
                             "task: supervised\nthreads: 1\n"
                             "data: {dataset: synthetic, image_c: 1, image_h: 28, image_w: 28,\n"
                             "       synthetic_train: 3000, synthetic_test: 1000}\n"
                             "train: {batch_size: 128}\neval: {batch_size: 500}\n",
                             task_supervised_memory);
    cr_assert(r >= RATIO_LO && r <= RATIO_HI, "ratio %.3f", r);
}

Test(memory_accuracy, supervised_lenet_on_fashion_mnist)
{
    need_fmnist();
    const double r = measure("supervised lenet (fashion_mnist)", "task: supervised\nthreads: 1\n",
                             task_supervised_memory);
    cr_assert(r >= RATIO_LO && r <= RATIO_HI, "ratio %.3f", r);
}

// The three meta tasks' configs, with the method's name for %s.
static const char rotation_cfg[] =
    "task: rotation\nthreads: 1\nmethod: {name: %s}\n"
    "data: {dataset: synthetic, image_c: 1, image_h: 28, image_w: 28,\n"
    "       synthetic_train: 3000, synthetic_test: 1000}\n"
    "rotation: {train_end: 2000, val_begin: 2000, val_end: 3000}\n";
static const char mwn_cfg[] = "task: mwn\nthreads: 1\nmethod: {name: %s}\n"
                              "backbone: {name: resnet32, channels: 4}\n"
                              "data: {dataset: synthetic, synthetic_train: 2000,\n"
                              "       synthetic_test: 500, meta_size: 200,\n"
                              "       noise: {type: unif, rate: 0.4}}\n"
                              "train: {batch_size: 100}\nmeta: {batch_size: 100}\n";
static const char lft_cfg[] = "task: lft\nthreads: 1\ndata: {dataset: fashion_mnist}\n"
                              "backbone: {name: resnet10, channels: 8}\nmethod: {name: %s}\n"
                              "train: {epochs: 2, optimizer: {name: adam, lr: 0.001}}\n"
                              "meta: {optimizer: {name: adam, lr: 0.001}}\n"
                              "lft: {episodes: 10, val_episodes: 4, test_episodes: 20}\n";

// measure() on cfg_fmt with the method's name filled in, asserting the ratio's bounds.
static void measure_method(const char *what, const char *cfg_fmt, const char *method,
                           estimate_fn estimate)
{
    char cfg[1024], label[128];
    snprintf(cfg, sizeof cfg, cfg_fmt, method);
    snprintf(label, sizeof label, "%s %s", what, method);
    const double r = measure(label, cfg, estimate);
    cr_assert(r >= RATIO_LO && r <= RATIO_HI, "%s: ratio %.3f", label, r);
}

Test(memory_accuracy, rotation_lenet_evograd)
{
    measure_method("rotation lenet (synthetic)", rotation_cfg, "evograd", task_rotation_memory);
}

Test(memory_accuracy, mwn_resnet32_evograd)
{
    measure_method("mwn resnet32/4 (synthetic 3x32x32)", mwn_cfg, "evograd", task_mwn_memory);
}

Test(memory_accuracy, lft_resnet10_evograd_smoke)
{
    need_fmnist();
    measure_method("lft resnet10/8 (the smoke config, fewer episodes)", lft_cfg, "evograd",
                   task_lft_memory);
}

// Diagnostics: the exact look-ahead's vectors and the tangent passes, with any method.
Test(memory_accuracy, mwn_resnet32_evograd_with_diagnostics)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, mwn_cfg, "evograd");
    strcat(cfg, "diagnostics: {every_steps: 1, draws: 2}\n");
    const double r = measure("mwn resnet32/4 evograd with diagnostics", cfg, task_mwn_memory);
    cr_assert(r >= RATIO_LO && r <= RATIO_HI, "ratio %.3f", r);
}

// The exact unrolled method's tangent passes: a second set of activation and gradient buffers.
Test(memory_accuracy, rotation_lenet_exact_unrolled)
{
    measure_method("rotation lenet (synthetic)", rotation_cfg, "unrolled", task_rotation_memory);
}

Test(memory_accuracy, mwn_resnet32_exact_unrolled)
{
    measure_method("mwn resnet32/4 (synthetic 3x32x32)", mwn_cfg, "unrolled", task_mwn_memory);
}

Test(memory_accuracy, lft_resnet10_exact_unrolled_smoke)
{
    need_fmnist();
    measure_method("lft resnet10/8 (the smoke config, fewer episodes)", lft_cfg, "unrolled",
                   task_lft_memory);
}

