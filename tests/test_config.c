/* test_config.c - the config loader (lib/io/config.c): good configs in block and flow style,
 * a table of broken configs (each asserts the status, the exact "file:line:col: key.path: "
 * prefix, a fragment of the explanation and an untouched *out), overrides and their errors,
 * the write -> load round trip (with a guard that it changes every key of the schema, as
 * config_write lists them), the hash, robustness against mutated input, and that
 * configs/REFERENCE.md is in sync with the tables.
 * Config files are written by the tests into the shared temporary folder e2e_dir (helpers.h:
 * e2e_setup in .init makes a fresh one per test, e2e_teardown in .fini removes it), so parallel
 * test processes never share files. Tests run with tests/ as the working directory. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "helpers.h"
#include "io/config.h"

// ---------------------------------------------------------------------------------------------
// fixtures

TestSuite(config, .init = e2e_setup, .fini = e2e_teardown);

// Loads text (written to a file) with overrides; expects success.
static void load_ok(const char *text, const char *const *ov, size_t nov, struct run_config *c)
{
    e2e_write("ok.yaml", text);
    const char *path = e2e_path("ok.yaml");
    struct eg_error err = {0};
    memset(c, 0, sizeof *c);
    enum eg_status st = config_load(path, ov, nov, c, &err);
    cr_assert(st == EG_OK, "config_load failed: %s\n--- config:\n%s", err.msg, text);
}

// A struct filled with a pattern no load produces, to check that failures leave *out alone.
static void fill_sentinel(struct run_config *c)
{
    memset(c, 0xA5, sizeof *c);
}

static bool is_sentinel(const struct run_config *c)
{
    struct run_config s;
    fill_sentinel(&s);
    return memcmp(c, &s, sizeof s) == 0;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

// ---------------------------------------------------------------------------------------------
// good configs

Test(config, name_only_gives_every_default)
{
    struct run_config c;
    load_ok("name: x\n", NULL, 0, &c);
    cr_assert(strcmp(c.name, "x") == 0);
    cr_assert(eq(u64, c.seed, 1));
    cr_assert(eq(sz, c.threads, 2));
    cr_assert(strcmp(c.task, "supervised") == 0);
    cr_assert(strcmp(c.data.dataset, "fashion_mnist") == 0);
    cr_assert(strcmp(c.data.root, "") == 0);
    cr_assert(eq(sz, c.data.train_size, 0));
    cr_assert(eq(sz, c.data.image_c, 3));
    cr_assert(eq(sz, c.data.image_h, 32));
    cr_assert(eq(sz, c.data.image_w, 32));
    cr_assert(eq(sz, c.data.classes, 10));
    cr_assert(eq(sz, c.data.synthetic_train, 1000));
    cr_assert(eq(sz, c.data.synthetic_test, 200));
    cr_assert(eq(sz, c.data.crop_pad, 0));
    cr_assert(c.data.hflip == false);
    cr_assert(strcmp(c.backbone.name, "lenet") == 0);
    cr_assert(eq(sz, c.backbone.width, 1));
    cr_assert(eq(sz, c.backbone.channels, 0));
    cr_assert(eq(sz, c.backbone.nhidden, 2));
    cr_assert(eq(sz, c.backbone.hidden[0], 256));
    cr_assert(eq(sz, c.backbone.hidden[1], 256));
    cr_assert(eq(sz, c.backbone.hidden[2], 0)); // unused slots are zero
    cr_assert(strcmp(c.method.name, "none") == 0);
    cr_assert(eq(sz, c.method.candidates, 2));
    cr_assert(c.method.sigma == 0.001 && c.method.temperature == 0.05);
    cr_assert(strcmp(c.method.noise, "rademacher") == 0);
    cr_assert(c.method.lookahead_lr == 0.0);
    cr_assert(eq(sz, c.meta.batch_size, 100));
    const struct optim_config *mo = &c.meta.optimizer;
    cr_assert(strcmp(mo->name, "sgd") == 0);
    cr_assert(mo->lr == 1e-3 && mo->momentum == 0.9 && mo->nesterov == true);
    cr_assert(mo->weight_decay == 5e-4 && mo->beta1 == 0.9 && mo->beta2 == 0.999);
    cr_assert(eq(sz, c.toy1d.trials, 100));
    cr_assert(eq(sz, c.toy1d.grid_points, 100));
    cr_assert(c.toy1d.lambda_min == 0.1 && c.toy1d.lambda_max == 2.0);
    cr_assert(eq(sz, c.toy1d.steps, 5));
    cr_assert(c.toy1d.lr == 0.1);
    cr_assert(c.rotation.degrees == 30.0 && c.rotation.init_deg == 0.0);
    cr_assert(eq(sz, c.rotation.train_end, 40000));
    cr_assert(eq(sz, c.rotation.val_begin, 50000));
    cr_assert(eq(sz, c.rotation.val_end, 60000));
    cr_assert(eq(sz, c.train.epochs, 10));
    cr_assert(eq(sz, c.train.batch_size, 128));
    const struct optim_config *o = &c.train.optimizer;
    cr_assert(strcmp(o->name, "sgd") == 0);
    cr_assert(o->lr == 0.1 && o->momentum == 0.9 && o->nesterov == false);
    cr_assert(o->weight_decay == 0.0 && o->beta1 == 0.9 && o->beta2 == 0.999 && o->eps == 1e-8);
    const struct schedule_config *s = &c.train.schedule;
    cr_assert(strcmp(s->type, "constant") == 0);
    cr_assert(eq(sz, s->nmilestones, 0));
    cr_assert(s->gamma == 0.1 && s->min_lr == 0.0);
    cr_assert(eq(sz, c.eval.every_epochs, 1));
    cr_assert(eq(sz, c.eval.batch_size, 500));
    cr_assert(eq(sz, c.checkpoint.every_epochs, 1));
}

// Every key set to a non-default value, block style.
static const char full_block[] = "# a comment\n"
                                 "name: run-1.b_c\n"
                                 "seed: 18446744073709551615\n"
                                 "threads: 256\n"
                                 "task: supervised\n"
                                 "data:\n"
                                 "  dataset: synthetic\n"
                                 "  root: \"/data/my sets\"   # quoted: has a space\n"
                                 "  train_size: 5000\n"
                                 "  image_c: 1\n"
                                 "  image_h: 28\n"
                                 "  image_w: 4096\n"
                                 "  classes: 100000\n"
                                 "  synthetic_train: 64\n"
                                 "  synthetic_test: 32\n"
                                 "  crop_pad: 4\n"
                                 "  hflip: true\n"
                                 "backbone:\n"
                                 "  name: resnet32\n"
                                 "  width: 4\n"
                                 "  channels: 16\n"
                                 "  hidden:\n"
                                 "    - 512\n"
                                 "    - 128\n"
                                 "    - 1000000\n"
                                 "method:\n"
                                 "  name: none\n"
                                 "train:\n"
                                 "  epochs: 60\n"
                                 "  batch_size: 100\n"
                                 "  optimizer:\n"
                                 "    name: adam\n"
                                 "    lr: 1.0e-3\n"
                                 "    momentum: 0\n"
                                 "    nesterov: false\n"
                                 "    weight_decay: 5e-4\n"
                                 "    beta1: 0.5\n"
                                 "    beta2: 0.99\n"
                                 "    eps: 1e-6\n"
                                 "  schedule:\n"
                                 "    type: step\n"
                                 "    milestones: [40, 50]\n"
                                 "    gamma: 1\n"
                                 "    min_lr: 0.001\n"
                                 "eval:\n"
                                 "  every_epochs: 5\n"
                                 "  batch_size: 1000\n"
                                 "checkpoint:\n"
                                 "  every_epochs: 0\n";

// The same config in flow style, keys in another order.
static const char full_flow[] =
    "{checkpoint: {every_epochs: 0}, eval: {batch_size: 1000, every_epochs: 5},\n"
    " train: {schedule: {milestones: [40, 50], type: step, gamma: 1.0, min_lr: 1e-3},\n"
    "         optimizer: {name: adam, lr: 0.001, momentum: 0.0, nesterov: false,\n"
    "                     weight_decay: 0.0005, beta1: 0.5, beta2: 0.99, eps: 0.000001},\n"
    "         epochs: 60, batch_size: 100},\n"
    " method: {name: none},\n"
    " backbone: {name: resnet32, width: 4, channels: 16, hidden: [512, 128, 1000000]},\n"
    " data: {dataset: synthetic, root: '/data/my sets', train_size: 5000, image_c: 1,\n"
    "        image_h: 28, image_w: 4096, classes: 100000, synthetic_train: 64,\n"
    "        synthetic_test: 32, crop_pad: 4, hflip: true},\n"
    " task: supervised, threads: 256, seed: 18446744073709551615, name: \"run-1.b_c\"}\n";

Test(config, block_style_sets_every_key)
{
    struct run_config c;
    load_ok(full_block, NULL, 0, &c);
    cr_assert(strcmp(c.name, "run-1.b_c") == 0);
    cr_assert(eq(u64, c.seed, UINT64_MAX));
    cr_assert(eq(sz, c.threads, 256));
    cr_assert(strcmp(c.data.dataset, "synthetic") == 0);
    cr_assert(strcmp(c.data.root, "/data/my sets") == 0);
    cr_assert(eq(sz, c.data.train_size, 5000));
    cr_assert(eq(sz, c.data.image_c, 1));
    cr_assert(eq(sz, c.data.image_h, 28));
    cr_assert(eq(sz, c.data.image_w, 4096));
    cr_assert(eq(sz, c.data.classes, 100000));
    cr_assert(eq(sz, c.data.synthetic_train, 64));
    cr_assert(eq(sz, c.data.synthetic_test, 32));
    cr_assert(eq(sz, c.data.crop_pad, 4));
    cr_assert(c.data.hflip == true);
    cr_assert(strcmp(c.backbone.name, "resnet32") == 0);
    cr_assert(eq(sz, c.backbone.width, 4));
    cr_assert(eq(sz, c.backbone.channels, 16));
    cr_assert(eq(sz, c.backbone.nhidden, 3));
    cr_assert(eq(sz, c.backbone.hidden[0], 512));
    cr_assert(eq(sz, c.backbone.hidden[1], 128));
    cr_assert(eq(sz, c.backbone.hidden[2], 1000000));
    cr_assert(eq(sz, c.train.epochs, 60));
    cr_assert(eq(sz, c.train.batch_size, 100));
    const struct optim_config *o = &c.train.optimizer;
    cr_assert(strcmp(o->name, "adam") == 0);
    cr_assert(o->lr == 1e-3 && o->momentum == 0.0 && o->nesterov == false);
    cr_assert(o->weight_decay == 5e-4 && o->beta1 == 0.5 && o->beta2 == 0.99 && o->eps == 1e-6);
    const struct schedule_config *s = &c.train.schedule;
    cr_assert(strcmp(s->type, "step") == 0);
    cr_assert(eq(sz, s->nmilestones, 2));
    cr_assert(eq(sz, s->milestones[0], 40));
    cr_assert(eq(sz, s->milestones[1], 50));
    cr_assert(s->gamma == 1.0 && s->min_lr == 0.001);
    cr_assert(eq(sz, c.eval.every_epochs, 5));
    cr_assert(eq(sz, c.eval.batch_size, 1000));
    cr_assert(eq(sz, c.checkpoint.every_epochs, 0));
}

Test(config, flow_style_equals_block_style)
{
    struct run_config a, b;
    load_ok(full_block, NULL, 0, &a);
    load_ok(full_flow, NULL, 0, &b);
    cr_assert(memcmp(&a, &b, sizeof a) == 0);
}

Test(config, accepts_markers_plus_sign_empty_sections_and_empty_lists)
{
    struct run_config c;
    load_ok("%YAML 1.1\n---\nname: x\nseed: +7\ntrain:\nmethod: {}\n"
            "backbone: {hidden: []}\n...\n",
            NULL, 0, &c);
    cr_assert(eq(u64, c.seed, 7));
    cr_assert(eq(sz, c.train.epochs, 10)); // `train:` alone keeps the defaults
    cr_assert(eq(sz, c.backbone.nhidden, 0));
    cr_assert(eq(sz, c.backbone.hidden[0], 0));
    load_ok("{}", NULL, 0, &c); // an empty map is all defaults
    cr_assert(strcmp(c.name, "default") == 0);
}

Test(config, bounds_themselves_are_accepted)
{
    struct run_config c;
    load_ok(
        "threads: 1\ndata: {image_c: 4, crop_pad: 64, classes: 2}\n"
        "train: {epochs: 100000, batch_size: 1000000,\n"
        "        optimizer: {momentum: 0, weight_decay: 0, beta1: 0, beta2: 0.9999999999999999},\n"
        "        schedule: {gamma: 1, min_lr: 0, milestones: [1]}}\n"
        "backbone: {width: 64, channels: 4096, hidden: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
        "1, 1, 1, 1]}\n",
        NULL, 0, &c);
    cr_assert(eq(sz, c.backbone.nhidden, 16));
    cr_assert(c.train.optimizer.beta2 < 1.0);
}

// ---------------------------------------------------------------------------------------------
// the lft section: a list of strings and its cross-key rules

static const char *const lft_default_domains[] = {"fmnist-plain", "fmnist-inverted", "fmnist-edges",
                                                  "fmnist-blurred", "fmnist-dilated"};

Test(config, lft_section_defaults)
{
    struct run_config c;
    load_ok("task: lft\n", NULL, 0, &c);
    cr_assert(strcmp(c.task, "lft") == 0);
    cr_assert(eq(sz, c.lft.ndomains, 5));
    for (size_t i = 0; i < 5; i++)
        cr_assert(strcmp(c.lft.domains[i], lft_default_domains[i]) == 0, "%s", c.lft.domains[i]);
    for (size_t i = 5; i < CFG_LIST_MAX; i++)
        cr_assert(c.lft.domains[i][0] == '\0'); // unused slots are zero
    cr_assert(strcmp(c.lft.unseen, "fmnist-edges") == 0);
    cr_assert(strcmp(c.lft.aux, "") == 0);
    cr_assert(c.lft.ft == true);
    cr_assert(eq(sz, c.lft.n_way, 5));
    cr_assert(eq(sz, c.lft.shot, 5));
    cr_assert(eq(sz, c.lft.queries, 16));
    cr_assert(eq(sz, c.lft.episodes, 100));
    cr_assert(eq(sz, c.lft.aux_batch, 16));
    cr_assert(c.lft.aux_decay == 0.9);
    cr_assert(eq(sz, c.lft.val_episodes, 100));
    cr_assert(eq(sz, c.lft.test_episodes, 1000));
    cr_assert(eq(sz, c.lft.test_queries, 15));
}

// Every lft key set, the list in block style (a quoted number is a name).
static const char lft_block[] = "task: lft\n"
                                "lft:\n"
                                "  domains:\n"
                                "    - plain\n"
                                "    - \"5\"\n"
                                "    - 'true'\n"
                                "    - edges.v2\n"
                                "  unseen: edges.v2\n"
                                "  aux: \"5\"\n"
                                "  ft: false\n"
                                "  n_way: 1000\n"
                                "  shot: 1\n"
                                "  queries: 1000\n"
                                "  episodes: 1\n"
                                "  aux_batch: 1\n"
                                "  aux_decay: 1\n"
                                "  val_episodes: 0\n"
                                "  test_episodes: 1\n"
                                "  test_queries: 1\n";

// The same in flow style.
static const char lft_flow[] =
    "{task: lft, lft: {test_queries: 1, test_episodes: 1, val_episodes: 0, aux_decay: 1.0, aux_batch: 1,\n"
    "       episodes: 1, queries: 1000, shot: 1, n_way: 1000, ft: false, aux: '5',\n"
    "       unseen: edges.v2, domains: [plain, '5', \"true\", edges.v2]}}\n";

Test(config, lft_list_in_block_and_flow_style)
{
    struct run_config a, b;
    load_ok(lft_block, NULL, 0, &a);
    load_ok(lft_flow, NULL, 0, &b);
    cr_assert(memcmp(&a, &b, sizeof a) == 0);
    cr_assert(eq(sz, a.lft.ndomains, 4));
    cr_assert(strcmp(a.lft.domains[0], "plain") == 0);
    cr_assert(strcmp(a.lft.domains[1], "5") == 0);
    cr_assert(strcmp(a.lft.domains[2], "true") == 0);
    cr_assert(strcmp(a.lft.domains[3], "edges.v2") == 0);
    cr_assert(a.lft.domains[4][0] == '\0');
    cr_assert(strcmp(a.lft.unseen, "edges.v2") == 0);
    cr_assert(strcmp(a.lft.aux, "5") == 0);
    cr_assert(a.lft.ft == false);
    cr_assert(eq(sz, a.lft.n_way, 1000));
    cr_assert(eq(sz, a.lft.shot, 1));
    cr_assert(eq(sz, a.lft.queries, 1000));
    cr_assert(eq(sz, a.lft.episodes, 1));
    cr_assert(eq(sz, a.lft.aux_batch, 1));
    cr_assert(a.lft.aux_decay == 1.0);
    cr_assert(eq(sz, a.lft.val_episodes, 0));
    cr_assert(eq(sz, a.lft.test_episodes, 1));
    cr_assert(eq(sz, a.lft.test_queries, 1));

    // the fewest and the most items; aux none and ""
    struct run_config c;
    load_ok("task: lft\nlft: {domains: [a, fmnist-edges], aux: none}\n", NULL, 0, &c);
    cr_assert(eq(sz, c.lft.ndomains, 2));
    cr_assert(strcmp(c.lft.aux, "none") == 0);
    load_ok("task: lft\nlft: {domains: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, fmnist-edges],\n"
            "      aux: ''}\n",
            NULL, 0, &c);
    cr_assert(eq(sz, c.lft.ndomains, 16));
    cr_assert(strcmp(c.lft.domains[15], "fmnist-edges") == 0);
    cr_assert(strcmp(c.lft.aux, "") == 0);
    // 63 characters fit
    load_ok("task: lft\nlft:\n  domains: [fmnist-edges,\n"
            "    a23456789012345678901234567890123456789012345678901234567890123]\n",
            NULL, 0, &c);
    cr_assert(eq(sz, strlen(c.lft.domains[1]), 63));
}

Test(config, lft_list_overrides)
{
    // bare, bracketed and spaced forms give the same list; a list is replaced whole
    const char *const forms[] = {"lft.domains=a,b,fmnist-edges", "lft.domains=[a, b, fmnist-edges]",
                                 "lft.domains= a ,\tb , fmnist-edges ",
                                 "lft.domains=[a, 'b', \"fmnist-edges\"]"};
    struct run_config first;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct run_config c;
        load_ok("task: lft\nlft: {domains: [p, q, r, s, fmnist-edges]}\n", &forms[i], 1, &c);
        cr_assert(eq(sz, c.lft.ndomains, 3), "%s", forms[i]);
        cr_assert(strcmp(c.lft.domains[0], "a") == 0, "%s", forms[i]);
        cr_assert(strcmp(c.lft.domains[1], "b") == 0, "%s", forms[i]);
        cr_assert(strcmp(c.lft.domains[2], "fmnist-edges") == 0, "%s", forms[i]);
        cr_assert(c.lft.domains[3][0] == '\0' && c.lft.domains[4][0] == '\0', "%s", forms[i]);
        if (i == 0) first = c;
        cr_assert(memcmp(&c, &first, sizeof c) == 0, "%s", forms[i]);
    }

    // the cross-key rules run after every override: the file alone is invalid
    const char *ov[] = {"lft.domains=x,y", "lft.unseen=y", "lft.aux=x", "lft.aux=", "task=lft"};
    struct run_config c;
    load_ok("lft: {unseen: y, aux: fmnist-edges}\n", ov, sizeof ov / sizeof ov[0], &c);
    cr_assert(eq(sz, c.lft.ndomains, 2));
    cr_assert(strcmp(c.lft.unseen, "y") == 0);
    cr_assert(strcmp(c.lft.aux, "") == 0);
    cr_assert(strcmp(c.task, "lft") == 0);

    const char *sixteen[] = {"lft.domains=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,fmnist-edges",
                             "lft.aux=none"};
    load_ok("task: lft\n", sixteen, 2, &c);
    cr_assert(eq(sz, c.lft.ndomains, 16));
    cr_assert(strcmp(c.lft.aux, "none") == 0);
}

// ---------------------------------------------------------------------------------------------
// broken configs

struct bad_case {
    const char *yaml;
    size_t len;           // 0: strlen(yaml)
    const char *where;    // expected message after "<file>:": "line:col: key.path: "
    const char *fragment; // expected somewhere after it
};

static const struct bad_case bad_cases[] = {
    // unknown keys
    {"trian: 3\n", 0, "1:1: trian: ",
     "unknown key; did you mean 'train'? (known keys: name, "
     "seed, threads, conv_backend, task, data, backbone, method, train, meta, eval, "
     "checkpoint, diagnostics, toy1d, rotation, mwn, lft)"},
    {"name: x\ntrain:\n  optimzer: {lr: 1}\n", 0, "3:3: train.optimzer: ",
     "unknown key; did you mean 'train.optimizer'? (known keys in train: epochs, batch_size, "
     "diverge_factor, optimizer, schedule)"},
    {"train: {optimizer: {lrate: 1}}\n", 0, "1:21: train.optimizer.lrate: ",
     "unknown key (known keys in train.optimizer: name, lr, momentum, nesterov"},
    {"epochs: 3\n", 0, "1:1: epochs: ", "unknown key; did you mean 'train.epochs'?"},
    {"train: {train: 1}\n", 0, "1:9: train.train: ", "unknown key (known keys in train:"},
    {"{[a]: 1}\n", 0, "1:2: ", "expected a key name, got a list"},
    // duplicate keys
    {"seed: 1\nseed: 2\n", 0, "2:1: seed: ", "duplicate key (first at line 1)"},
    {"train:\n  epochs: 3\n  batch_size: 4\n  epochs: 5\n", 0,
     "4:3: train.epochs: ", "duplicate key (first at line 2)"},
    {"train: {epochs: 1}\ntrain: {batch_size: 2}\n", 0,
     "2:1: train: ", "duplicate key (first at line 1)"},
    {"train: {optimizer: {lr: 1, lr: 2}}\n", 0,
     "1:28: train.optimizer.lr: ", "duplicate key (first at line 1)"},
    // wrong kinds
    {"train: {optimizer: {lr: fast}}\n", 0,
     "1:25: train.optimizer.lr: ", "expected a number > 0, got 'fast'"},
    {"threads: {a: 1}\n", 0, "1:10: threads: ", "expected an integer in [1, 256], got a map"},
    {"threads: [1]\n", 0, "1:10: threads: ", "expected an integer in [1, 256], got a list"},
    {"train: 3\n", 0, "1:8: train: ", "expected a map, got '3'"},
    {"train: ~\n", 0, "1:8: train: ", "expected a map, got '~'"},
    {"data: [1]\n", 0, "1:7: data: ", "expected a map, got a list"},
    {"backbone: {hidden: 256}\n", 0, "1:20: backbone.hidden: ",
     "expected a list of at most 16 integers in [1, 1000000], got '256'"},
    {"backbone: {hidden: [64, {a: 1}]}\n", 0,
     "1:25: backbone.hidden[1]: ", "expected an integer in [1, 1000000], got a map"},
    {"name: [a]\n", 0, "1:7: name: ", "got a list"},
    {"data: {hflip: {}}\n", 0, "1:15: data.hflip: ", "expected true or false, got a map"},
    // out of range, each kind of bound
    {"threads: 257\n", 0, "1:10: threads: ", "expected an integer in [1, 256], got '257'"},
    {"threads: 0\n", 0, "1:10: threads: ", "expected an integer in [1, 256], got '0'"},
    {"eval: {every_epochs: 0}\n", 0,
     "1:22: eval.every_epochs: ", "expected an integer >= 1, got '0'"},
    {"data: {image_c: 5}\n", 0, "1:17: data.image_c: ", "expected an integer in [1, 4], got '5'"},
    {"train: {optimizer: {lr: 0}}\n", 0,
     "1:25: train.optimizer.lr: ", "expected a number > 0, got '0'"},
    {"train: {optimizer: {lr: -1}}\n", 0,
     "1:25: train.optimizer.lr: ", "expected a number > 0, got '-1'"},
    {"train: {optimizer: {weight_decay: -1e-3}}\n", 0,
     "1:35: train.optimizer.weight_decay: ", "expected a number >= 0, got '-1e-3'"},
    {"train: {optimizer: {momentum: 1}}\n", 0,
     "1:31: train.optimizer.momentum: ", "expected a number in [0, 1), got '1'"},
    {"train: {optimizer: {beta2: 1.0}}\n", 0,
     "1:28: train.optimizer.beta2: ", "expected a number in [0, 1), got '1.0'"},
    {"train: {schedule: {gamma: 0}}\n", 0,
     "1:27: train.schedule.gamma: ", "expected a number in (0, 1], got '0'"},
    {"train: {schedule: {gamma: 1.5}}\n", 0,
     "1:27: train.schedule.gamma: ", "expected a number in (0, 1], got '1.5'"},
    {"train: {optimizer: {name: sgdd}}\n", 0,
     "1:27: train.optimizer.name: ", "expected one of sgd, adam, got 'sgdd'"},
    {"data: {dataset: MNIST}\n", 0, "1:17: data.dataset: ",
     "expected one of mnist, fashion_mnist, cifar10, cifar100, imagefolder, synthetic, got "
     "'MNIST'"},
    {"task: maml\n", 0,
     "1:7: task: ", "expected one of supervised, toy1d, rotation, mwn, lft, got 'maml'"},
    // non-finite and malformed numbers
    {"train: {optimizer: {lr: .nan}}\n", 0,
     "1:25: train.optimizer.lr: ", "expected a finite number > 0, got '.nan'"},
    {"train: {optimizer: {lr: .inf}}\n", 0,
     "1:25: train.optimizer.lr: ", "expected a finite number > 0, got '.inf'"},
    {"train: {optimizer: {weight_decay: -.Inf}}\n", 0,
     "1:35: train.optimizer.weight_decay: ", "expected a finite number >= 0, got '-.Inf'"},
    {"train: {optimizer: {lr: 1e999}}\n", 0,
     "1:25: train.optimizer.lr: ",
     "expected a number > 0, got '1e999': 1e999 overflows a 32-bit float"},
    {"train: {optimizer: {lr: 1e-400}}\n", 0,
     "1:25: train.optimizer.lr: ", "got '1e-400': 1e-400 is 0 as a 32-bit float"},
    {"train: {optimizer: {lr: nan}}\n", 0,
     "1:25: train.optimizer.lr: ", "expected a number > 0, got 'nan'"},
    {"train: {optimizer: {lr: 0x1p-3}}\n", 0, "1:25: train.optimizer.lr: ", "got '0x1p-3'"},
    {"train: {optimizer: {lr: 0.1.2}}\n", 0, "1:25: train.optimizer.lr: ", "got '0.1.2'"},
    {"train: {optimizer: {lr: }}\n", 0, "1:25: train.optimizer.lr: ", "got ''"},
    {"train: {optimizer: {lr: ' 0.1'}}\n", 0, "1:25: train.optimizer.lr: ", "got ' 0.1'"},
    // integers
    {"train: {epochs: 1.5}\n", 0,
     "1:17: train.epochs: ", "expected an integer in [1, 100000], got '1.5'"},
    {"train: {epochs: 1e3}\n", 0,
     "1:17: train.epochs: ", "expected an integer in [1, 100000], got '1e3'"},
    {"seed: -1\n", 0, "1:7: seed: ", "expected an integer >= 0, got '-1'"},
    {"seed: 0x10\n", 0, "1:7: seed: ", "got '0x10'"},
    {"seed: 18446744073709551616\n", 0,
     "1:7: seed: ", "expected an integer >= 0, got '18446744073709551616' (too large)"},
    {"seed: 99999999999999999999999999999999999999999999999999999999999999999\n", 0,
     "1:7: seed: ", "got '999999999999999999999999999999999999999999999999...' (too large)"},
    {"seed:\n", 0, "1:6: seed: ", "expected an integer >= 0, got ''"},
    // booleans
    {"data: {hflip: yes}\n", 0, "1:15: data.hflip: ", "expected true or false, got 'yes'"},
    {"data: {hflip: True}\n", 0, "1:15: data.hflip: ", "expected true or false, got 'True'"},
    {"data: {hflip: 1}\n", 0, "1:15: data.hflip: ", "expected true or false, got '1'"},
    // strings
    {"name: a/b\n", 0,
     "1:7: name: ", "expected 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got 'a/b'"},
    {"name: ..\n", 0, "1:7: name: ", "got '..'"},
    {"name: ''\n", 0, "1:7: name: ", "got ''"},
    {"name: a234567890123456789012345678901234567890123456789012345678901234\n", 0,
     "1:7: name: ", "got 'a23456789012345678901234567890123456789012345678...'"},
    {"name: \"a\\0b\"\n", 0, "1:7: name: ", "got 'a\\x00b' (contains a NUL character)"},
    // malformed YAML
    {"data: {dataset: [1, 2\n", 0, "2:1: ",
     "malformed YAML: did not find expected ',' or ']' (while parsing a flow sequence started at "
     "line 1, column 17)"},
    {"train: {epochs: 3\n", 0, "2:1: ", "malformed YAML: did not find expected ',' or '}'"},
    {"train:\n  epochs: 3\n batch_size: 4\n", 0, "3:2: ",
     "malformed YAML: did not find expected key (while parsing a block mapping started at line 1"},
    {"name: x\n  seed: 2\n", 0, "2:7: ", "malformed YAML: mapping values are not allowed"},
    {"train:\n\tepochs: 3\n", 0, "2:1: ",
     "malformed YAML: found character that cannot start any "
     "token"},
    {"train:\n\tepochs: 3\n", 0, "2:1: ", "a tab: YAML indents with spaces only"},
    {"name: a\x01\n", 0, "1:8: ", "malformed YAML: control characters are not allowed (#1)"},
    {"name: a\0b\n", 10, "1:8: ", "malformed YAML: control characters are not allowed (#0)"},
    {"seed: 1\nname: \xc3\x28\n", 0, "2:8: ", "malformed YAML: invalid trailing UTF-8 octet"},
    {"data: {root: *nowhere}\n", 0, "1:14: ", "malformed YAML: found undefined alias"},
    {"name: x\n---\nname: y\n", 0, "3:1: ", "malformed YAML: more than one YAML document"},
    {"name: 'x\n", 0, "2:1: ", "malformed YAML: found unexpected end of stream"},
    // empty and wrong top level
    {"", 0, "1:1: ", "empty config"},
    {"# only\n# comments\n\n", 0, "1:1: ", "empty config"},
    {"   \n\n", 0, "1:1: ", "empty config"},
    {"---\n", 0, "1:1: ", "empty config"},
    {"- a\n- b\n", 0, "1:1: ", "expected a map of keys at the top level, got a list"},
    {"# lead\nhello\n", 0, "2:1: ", "expected a map of keys at the top level, got 'hello'"},
    // cross-key and list rules
    {"train:\n  optimizer:\n    momentum: 0\n    nesterov: true\n", 0,
     "4:15: train.optimizer.nesterov: ",
     "true requires train.optimizer.momentum > 0, but momentum is 0 (set at line 3, column 15)"},
    {"meta:\n  optimizer: {momentum: 0}\ntask: rotation\n", 0, "2:25: meta.optimizer.nesterov: ",
     "true requires meta.optimizer.momentum > 0, but momentum is 0 (set at line 2, column 25)"},
    {"toy1d:\n  lambda_min: 1\n  lambda_max: 0.5\ntask: toy1d\n", 0, "3:15: toy1d.lambda_max: ",
     "0.5 must be greater than toy1d.lambda_min = 1 (set at line 2, column 15)"},
    {"toy1d: {lambda_min: 2}\ntask: toy1d\n", 0,
     "1:21: toy1d.lambda_min: ", "2 must be smaller than toy1d.lambda_max = 2 (the default)"},
    {"method: {name: maml}\n", 0,
     "1:16: method.name: ", "expected one of none, evograd, unrolled, unrolled_fd, got 'maml'"},
    {"train: {schedule: {milestones: [40, 30]}}\n", 0, "1:37: train.schedule.milestones[1]: ",
     "expected an integer > 40 (the list must be strictly ascending), got '30'"},
    {"train: {schedule: {milestones: [40, 40]}}\n", 0,
     "1:37: train.schedule.milestones[1]: ", "expected an integer > 40"},
    {"train: {schedule: {milestones: [0]}}\n", 0,
     "1:33: train.schedule.milestones[0]: ", "expected an integer >= 1, got '0'"},
    {"backbone: {hidden: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]}\n", 0,
     "1:20: backbone.hidden: ", "expected at most 16 items, got 17"},
    {"backbone: {hidden: [1, 0]}\n", 0,
     "1:24: backbone.hidden[1]: ", "expected an integer in [1, 1000000], got '0'"},
    // lft: the list of strings
    {"lft: {domains: {a: 1}}\n", 0, "1:16: lft.domains: ",
     "expected a list of 2 to 16 distinct strings, each 1 to 63 characters from A-Z a-z 0-9 . _ "
     "- (not . or ..), got a map"},
    {"lft:\n  domains: a,b\n", 0, "2:12: lft.domains: ", "got 'a,b'"}, // bare: overrides only
    {"lft: {domains: 5}\n", 0, "1:16: lft.domains: ", "got '5'"},
    {"lft: {domains: [a, {b: 1}]}\n", 0, "1:20: lft.domains[1]: ",
     "expected 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got a map"},
    {"lft: {domains: [a, [b]]}\n", 0, "1:20: lft.domains[1]: ", "got a list"},
    {"lft: {domains: [a, 5]}\n", 0, "1:20: lft.domains[1]: ",
     "expected a string, got the number '5'; quote it to use it as a string"},
    {"lft: {domains: [-1.5e3, a]}\n", 0, "1:17: lft.domains[0]: ", "got the number '-1.5e3'"},
    {"lft: {domains: [a, .inf]}\n", 0, "1:20: lft.domains[1]: ", "got the number '.inf'"},
    {"lft:\n  domains:\n    - a\n    - 2\n", 0, "4:7: lft.domains[1]: ", "got the number '2'"},
    {"lft:\n  domains:\n    - a\n    - x: 1\n", 0, "4:7: lft.domains[1]: ", "got a map"},
    {"lft: {domains: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]}\n", 0,
     "1:16: lft.domains: ", "expected at most 16 items, got 17"},
    {"lft: {domains: [a, b/c]}\n", 0, "1:20: lft.domains[1]: ",
     "expected 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got 'b/c'"},
    {"lft: {domains: [a, '..']}\n", 0, "1:20: lft.domains[1]: ", "got '..'"},
    {"lft: {domains: [a, '']}\n", 0, "1:20: lft.domains[1]: ", "got ''"},
    {"lft: {domains: [a, \"b\\0c\"]}\n", 0,
     "1:20: lft.domains[1]: ", "got 'b\\x00c' (contains a NUL character)"},
    {"lft: {domains: [a, a234567890123456789012345678901234567890123456789012345678901234]}\n", 0,
     "1:20: lft.domains[1]: ", "got 'a23456789012345678901234567890123456789012345678...'"},
    {"lft: {domains: [a, b, a]}\n", 0,
     "1:23: lft.domains[2]: ", "expected distinct items, got 'a' again (first as lft.domains[0])"},
    {"lft:\n  domains:\n  - fmnist-edges\n  - b\n  - 'b'\n", 0,
     "5:5: lft.domains[2]: ", "expected distinct items, got 'b' again (first as lft.domains[1])"},
    {"lft: {domains: [fmnist-edges]}\n", 0,
     "1:16: lft.domains: ", "expected at least 2 items, got 1"},
    {"lft: {domains: []}\n", 0, "1:16: lft.domains: ", "expected at least 2 items, got 0"},
    {"lft: {domains: }\n", 0, "1:16: lft.domains: ", "got ''"},
    // lft: the other keys
    {"lft: {unseen: a/b}\n", 0, "1:15: lft.unseen: ",
     "expected 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got 'a/b'"},
    {"lft: {unseen: ''}\n", 0, "1:15: lft.unseen: ", "got ''"},
    {"lft: {aux: a/b}\n", 0, "1:12: lft.aux: ",
     "expected \"\" or 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got 'a/b'"},
    {"lft: {aux: [a]}\n", 0, "1:12: lft.aux: ", "got a list"},
    {"lft: {ft: 1}\n", 0, "1:11: lft.ft: ", "expected true or false, got '1'"},
    {"lft: {n_way: 1}\n", 0, "1:14: lft.n_way: ", "expected an integer in [2, 1000], got '1'"},
    {"lft: {n_way: 1001}\n", 0, "1:14: lft.n_way: ", "got '1001'"},
    {"lft: {shot: 0}\n", 0, "1:13: lft.shot: ", "expected an integer in [1, 1000], got '0'"},
    {"lft: {queries: 1001}\n", 0,
     "1:16: lft.queries: ", "expected an integer in [1, 1000], got '1001'"},
    {"lft: {episodes: 0}\n", 0, "1:17: lft.episodes: ", "expected an integer >= 1, got '0'"},
    {"lft: {aux_batch: 0}\n", 0, "1:18: lft.aux_batch: ", "expected an integer >= 1, got '0'"},
    {"lft: {aux_decay: 0}\n", 0, "1:18: lft.aux_decay: ", "expected a number in (0, 1], got '0'"},
    {"lft: {aux_decay: 1.5}\n", 0, "1:18: lft.aux_decay: ", "got '1.5'"},
    {"lft: {val_episodes: -1}\n", 0,
     "1:21: lft.val_episodes: ", "expected an integer >= 0, got '-1'"},
    {"lft: {test_episodes: 0}\n", 0,
     "1:22: lft.test_episodes: ", "expected an integer >= 1, got '0'"},
    {"lft: {test_queries: 0}\n", 0,
     "1:21: lft.test_queries: ", "expected an integer >= 1, got '0'"},
    // lft: cross-key rules
    {"lft: {domains: [a, b], unseen: c}\ntask: lft\n", 0,
     "1:32: lft.unseen: ", "'c' is not one of lft.domains = [a, b] (set at line 1, column 16)"},
    {"lft: {unseen: c}\ntask: lft\n", 0, "1:15: lft.unseen: ",
     "'c' is not one of lft.domains = [fmnist-plain, fmnist-inverted, fmnist-edges, "
     "fmnist-blurred, fmnist-dilated] (the default)"},
    {"lft:\n  domains: [a, b]\ntask: lft\n", 0,
     "2:12: lft.domains: ", "[a, b] does not include lft.unseen = 'fmnist-edges' (the default)"},
    {"lft: {aux: fmnist-edges}\ntask: lft\n", 0, "1:12: lft.aux: ",
     "'fmnist-edges' is lft.unseen (the default), the test domain; expected \"\", none or a seen "
     "domain: [fmnist-plain, fmnist-inverted, fmnist-blurred, fmnist-dilated]"},
    {"lft:\n  unseen: b\n  domains: [a, b, c]\n  aux: b\ntask: lft\n", 0, "4:8: lft.aux: ",
     "'b' is lft.unseen (set at line 2, column 11), the test domain; expected \"\", none or a "
     "seen domain: [a, c]"},
    {"lft: {aux: x}\ntask: lft\n", 0, "1:12: lft.aux: ",
     "'x' is not one of lft.domains (the default); expected \"\", none or a seen domain: "
     "[fmnist-plain, fmnist-inverted, fmnist-blurred, fmnist-dilated]"},
};

Test(config, rejects_broken_configs_with_located_messages)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *bc = &bad_cases[i];
        size_t len = bc->len != 0 ? bc->len : strlen(bc->yaml);
        e2e_write_bytes("bad.yaml", bc->yaml, len);
        const char *path = e2e_path("bad.yaml");
        struct run_config c;
        fill_sentinel(&c);
        struct eg_error err = {0};
        enum eg_status st = config_load(path, NULL, 0, &c, &err);
        char prefix[512];
        snprintf(prefix, sizeof prefix, "%s:%s", path, bc->where);
        cr_expect(st == EG_ERR_CONFIG, "case %zu: status %s, message '%s'", i, eg_status_name(st),
                  err.msg);
        cr_expect(starts_with(err.msg, prefix), "case %zu:\n   got: %s\n  want: %s...", i, err.msg,
                  prefix);
        cr_expect(strstr(err.msg + strlen(prefix), bc->fragment) != NULL,
                  "case %zu:\n   got: %s\n  want: ...%s...", i, err.msg, bc->fragment);
        cr_expect(is_sentinel(&c), "case %zu: *out was written", i);
    }
}

Test(config, missing_file_and_directory_are_io_errors)
{
    struct run_config c;
    fill_sentinel(&c);
    struct eg_error err = {0};
    const char *path = e2e_path("missing.yaml");
    enum eg_status st = config_load(path, NULL, 0, &c, &err);
    cr_assert(st == EG_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    cr_assert(strcmp(err.msg, want) == 0, "%s", err.msg);
    cr_assert(is_sentinel(&c));

    st = config_load(e2e_dir, NULL, 0, &c, &err);
    cr_assert(st == EG_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", e2e_dir);
    cr_assert(strcmp(err.msg, want) == 0, "%s", err.msg);
    cr_assert(is_sentinel(&c));
}

Test(config, rejects_files_over_a_megabyte)
{
    size_t n = (1u << 20) + 10;
    char *big = malloc(n);
    cr_assert(big != NULL);
    memset(big, '#', n);
    e2e_write_bytes("big.yaml", big, n);
    const char *path = e2e_path("big.yaml");
    free(big);
    struct run_config c;
    fill_sentinel(&c);
    struct eg_error err = {0};
    cr_assert(config_load(path, NULL, 0, &c, &err) == EG_ERR_CONFIG);
    cr_assert(strstr(err.msg, "larger than 1048576 bytes") != NULL, "%s", err.msg);
    cr_assert(is_sentinel(&c));
}

// ---------------------------------------------------------------------------------------------
// overrides

struct bad_override {
    const char *file;    // config text
    const char *ov[2];   // overrides (second may be NULL)
    const char *message; // the whole expected message; "%s" stands for the file's path
};

static const struct bad_override bad_overrides[] = {
    {"name: x\n",
     {"train.epochs=abc"},
     "override 'train.epochs=abc': train.epochs: expected an integer in [1, 100000], got 'abc'"},
    {"name: x\n",
     {"train.epochs=1.5"},
     "override 'train.epochs=1.5': train.epochs: expected an integer in [1, 100000], got '1.5'"},
    {"name: x\n",
     {"train.epoch=3"},
     "override 'train.epoch=3': train.epoch: unknown key; did you mean 'train.epochs'? (known "
     "keys in train: epochs, batch_size, diverge_factor, optimizer, schedule)"},
    {"name: x\n",
     {"trian.epochs=3"},
     "override 'trian.epochs=3': trian: unknown key; did you mean 'train'? (known keys: name, "
     "seed, threads, conv_backend, task, data, backbone, method, train, meta, eval, checkpoint, "
     "diagnostics, toy1d, rotation, mwn, lft)"},
    {"name: x\n",
     {"lr=0.1"},
     "override 'lr=0.1': lr: unknown key; did you mean 'train.optimizer.lr'? (known keys: name, "
     "seed, threads, conv_backend, task, data, backbone, method, train, meta, eval, checkpoint, "
     "diagnostics, toy1d, rotation, mwn, lft)"},
    {"name: x\n", {"train.epochs"}, "override 'train.epochs': expected key.path=value"},
    {"name: x\n", {"=3"}, "override '=3': expected key.path=value"},
    {"name: x\n",
     {"train=3"},
     "override 'train=3': train: is a section, not a value; override one of its keys: epochs, "
     "batch_size, diverge_factor, optimizer, schedule"},
    {"name: x\n",
     {"train.optimizer={lr: 1}"},
     "override 'train.optimizer={lr: 1}': train.optimizer: is a section, not a value; override "
     "one of its keys: name, lr, momentum, nesterov, weight_decay, beta1, beta2, eps"},
    {"name: x\n",
     {"train.epochs.x=3"},
     "override 'train.epochs.x=3': train.epochs.x: unknown key (train.epochs is a value, not a "
     "section)"},
    {"name: x\n",
     {"train.optimizer.lr=.inf"},
     "override 'train.optimizer.lr=.inf': train.optimizer.lr: expected a finite number > 0, got "
     "'.inf'"},
    {"name: x\n",
     {"data.hflip=yes"},
     "override 'data.hflip=yes': data.hflip: expected true or false, got 'yes'"},
    {"name: x\n",
     {"train.epochs={a: 1}"},
     "override 'train.epochs={a: 1}': train.epochs: expected an integer in [1, 100000], got a "
     "map"},
    {"name: x\n",
     {"train.epochs="},
     "override 'train.epochs=': train.epochs: expected an integer in [1, 100000], got ''"},
    {"name: x\n",
     {"backbone.hidden=256"},
     "override 'backbone.hidden=256': backbone.hidden: expected a list of at most 16 integers in "
     "[1, 1000000], got '256'"},
    {"name: x\n",
     {"train.schedule.milestones=[40, 30]"},
     "override 'train.schedule.milestones=[40, 30]': train.schedule.milestones[1]: expected an "
     "integer > 40 (the list must be strictly ascending), got '30'"},
    {"name: x\n",
     {"train.schedule.milestones=[40, 50"},
     "override 'train.schedule.milestones=[40, 50': train.schedule.milestones: malformed YAML "
     "value: did not find expected ',' or ']' (while parsing a flow sequence started at line 1, "
     "column 1)"},
    {"name: x\n",
     {"data.root=#x"},
     "override 'data.root=#x': data.root: the value is a YAML comment; quote a value starting "
     "with '#'"},
    {"name: x\n",
     {"name=a/b"},
     "override 'name=a/b': name: expected 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or "
     ".."
     "), got 'a/b'"},
    {"name: x\n",
     {"train.optimizer.momentum=0", "train.optimizer.nesterov=true"},
     "override 'train.optimizer.nesterov=true': train.optimizer.nesterov: true requires "
     "train.optimizer.momentum > 0, but momentum is 0 (set by override "
     "'train.optimizer.momentum=0')"},
    // located in the file when the file set nesterov
    {"train:\n  optimizer: {nesterov: true}\n",
     {"train.optimizer.momentum=0"},
     "%s:2:25: train.optimizer.nesterov: true requires train.optimizer.momentum > 0, but "
     "momentum is 0 (set by override 'train.optimizer.momentum=0')"},
    // lft.domains, a list of strings: bare (comma-separated) and bracketed
    {"name: x\n",
     {"lft.domains=fmnist-edges"},
     "override 'lft.domains=fmnist-edges': lft.domains: expected at least 2 items, got 1"},
    {"name: x\n",
     {"lft.domains=[fmnist-edges]"},
     "override 'lft.domains=[fmnist-edges]': lft.domains: expected at least 2 items, got 1"},
    {"name: x\n",
     {"lft.domains=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"},
     "override 'lft.domains=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q': lft.domains: expected at most 16 "
     "items, got 17"},
    {"name: x\n",
     {"lft.domains=[a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]"},
     "override 'lft.domains=[a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]': lft.domains: expected at most "
     "16 items, got 17"},
    {"name: x\n",
     {"lft.domains=a,b/c"},
     "override 'lft.domains=a,b/c': lft.domains[1]: expected 1 to 63 characters from A-Z a-z 0-9 "
     ". _ - (not . or ..), got 'b/c'"},
    {"name: x\n",
     {"lft.domains=a,,b"},
     "override 'lft.domains=a,,b': lft.domains[1]: expected 1 to 63 characters from A-Z a-z 0-9 "
     ". _ - (not . or ..), got ''"},
    {"name: x\n",
     {"lft.domains=a, 5"},
     "override 'lft.domains=a, 5': lft.domains[1]: expected a string, got the number '5'; quote "
     "it to use it as a string"},
    {"name: x\n",
     {"lft.domains=[a, 5]"},
     "override 'lft.domains=[a, 5]': lft.domains[1]: expected a string, got the number '5'; "
     "quote it to use it as a string"},
    {"name: x\n",
     {"lft.domains=[a, {b: 1}]"},
     "override 'lft.domains=[a, {b: 1}]': lft.domains[1]: expected 1 to 63 characters from A-Z "
     "a-z 0-9 . _ - (not . or ..), got a map"},
    {"name: x\n",
     {"lft.domains={a: 1}"},
     "override 'lft.domains={a: 1}': lft.domains: expected a list of 2 to 16 distinct strings, "
     "each 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got a map"},
    {"name: x\n",
     {"lft.domains='a,b'"},
     "override 'lft.domains='a,b'': lft.domains: expected a list of 2 to 16 distinct strings, "
     "each 1 to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got 'a,b'"},
    {"name: x\n",
     {"lft.domains="},
     "override 'lft.domains=': lft.domains: expected a list of 2 to 16 distinct strings, each 1 "
     "to 63 characters from A-Z a-z 0-9 . _ - (not . or ..), got ''"},
    {"name: x\n",
     {"lft.domains=a,b,a"},
     "override 'lft.domains=a,b,a': lft.domains[2]: expected distinct items, got 'a' again "
     "(first as lft.domains[0])"},
    {"name: x\n",
     {"lft.domains=[a, b, 'a']"},
     "override 'lft.domains=[a, b, 'a']': lft.domains[2]: expected distinct items, got 'a' again "
     "(first as lft.domains[0])"},
    {"name: x\n",
     {"lft.domains=[a, b"},
     "override 'lft.domains=[a, b': lft.domains: malformed YAML value: did not find expected ',' "
     "or ']' (while parsing a flow sequence started at line 1, column 1)"},
    // lft cross-key rules, located at the override that broke them
    {"task: lft\n",
     {"lft.domains=a,b"},
     "override 'lft.domains=a,b': lft.domains: [a, b] does not include lft.unseen = "
     "'fmnist-edges' (the default)"},
    {"task: lft\n",
     {"lft.unseen=x"},
     "override 'lft.unseen=x': lft.unseen: 'x' is not one of lft.domains = [fmnist-plain, "
     "fmnist-inverted, fmnist-edges, fmnist-blurred, fmnist-dilated] (the default)"},
    {"lft: {domains: [a, b, c]}\ntask: lft\n",
     {"lft.unseen=d"},
     "override 'lft.unseen=d': lft.unseen: 'd' is not one of lft.domains = [a, b, c] (set at "
     "line 1, column 16)"},
    {"task: lft\n",
     {"lft.aux=fmnist-edges"},
     "override 'lft.aux=fmnist-edges': lft.aux: 'fmnist-edges' is lft.unseen (the default), the "
     "test domain; expected \"\", none or a seen domain: [fmnist-plain, fmnist-inverted, "
     "fmnist-blurred, fmnist-dilated]"},
    {"lft: {aux: fmnist-plain}\ntask: lft\n",
     {"lft.domains=[fmnist-inverted, fmnist-edges]"},
     "%s:1:12: lft.aux: 'fmnist-plain' is not one of lft.domains (set by override "
     "'lft.domains=[fmnist-inverted, fmnist-edges]'); expected \"\", none or a seen domain: "
     "[fmnist-inverted]"},
    {"lft: {aux: fmnist-plain}\ntask: lft\n",
     {"lft.unseen=fmnist-plain"},
     "%s:1:12: lft.aux: 'fmnist-plain' is lft.unseen (set by override 'lft.unseen=fmnist-plain'), "
     "the test domain; expected \"\", none or a seen domain: [fmnist-inverted, fmnist-edges, "
     "fmnist-blurred, fmnist-dilated]"},
    // a key the task never reads, set to another value than its default: named with the task
    // and the tasks that read it, located where it was set
    {"name: x\n",
     {"rotation.degrees=45"},
     "override 'rotation.degrees=45': rotation.degrees: 45 is set, but task supervised never "
     "reads this key (only task rotation does); remove it, or set task: rotation"},
    {"task: mwn\nlft:\n  shot: 1\n",
     {"seed=2"},
     "%s:3:9: lft.shot: 1 is set, but task mwn never reads this key (only task lft does); "
     "remove it, or set task: lft"},
    {"task: lft\n",
     {"data.train_size=100"},
     "override 'data.train_size=100': data.train_size: 100 is set, but task lft never reads this "
     "key (only tasks supervised, rotation and mwn do); remove it, or choose one of those tasks"},
    {"data: {noise: {type: unif}}\n",
     {"task=rotation"},
     "%s:1:22: data.noise.type: unif is set, but task rotation never reads this key (only task "
     "mwn does); remove it, or set task: mwn"},
    {"train: {epochs: 3}\n",
     {"task=toy1d"},
     "%s:1:17: train.epochs: 3 is set, but task toy1d never reads this key (only tasks "
     "supervised, rotation, mwn and lft do); remove it, or choose one of those tasks"},
    // the first bad override stops the load
    {"name: x\n",
     {"seed=x", "threads=0"},
     "override 'seed=x': seed: expected an integer >= 0, got 'x'"},
};

Test(config, rejects_bad_overrides_with_exact_messages)
{
    for (size_t i = 0; i < sizeof bad_overrides / sizeof bad_overrides[0]; i++) {
        const struct bad_override *bo = &bad_overrides[i];
        e2e_write("ov.yaml", bo->file);
        const char *path = e2e_path("ov.yaml");
        size_t nov = bo->ov[1] != NULL ? 2 : 1;
        struct run_config c;
        fill_sentinel(&c);
        struct eg_error err = {0};
        enum eg_status st = config_load(path, bo->ov, nov, &c, &err);
        char want[1024];
        if (strstr(bo->message, "%s") != NULL) {
            snprintf(want, sizeof want, "%s%s", path, bo->message + 2);
        } else {
            snprintf(want, sizeof want, "%s", bo->message);
        }
        cr_expect(st == EG_ERR_CONFIG, "case %zu: status %s", i, eg_status_name(st));
        cr_expect(strcmp(err.msg, want) == 0, "case %zu:\n   got: %s\n  want: %s", i, err.msg,
                  want);
        cr_expect(is_sentinel(&c), "case %zu: *out was written", i);
    }
}

Test(config, overrides_apply_after_the_file_in_order)
{
    const char *ov[] = {
        "train.epochs=3",
        "train.epochs=7", // later wins
        "train.schedule.milestones=[40, 50]",
        "train.schedule.milestones=[5]", // a list is replaced whole
        "data.root=/a b/c",
        "name=\"quoted-name\"",
        "train.optimizer.lr=2.5e-2",
        "data.hflip=true",
        "seed=+42",
    };
    struct run_config c;
    load_ok("name: x\ntrain: {epochs: 5, schedule: {milestones: [1, 2, 3]}}\ndata: {root: /r}\n",
            ov, sizeof ov / sizeof ov[0], &c);
    cr_assert(eq(sz, c.train.epochs, 7));
    cr_assert(eq(sz, c.train.schedule.nmilestones, 1));
    cr_assert(eq(sz, c.train.schedule.milestones[0], 5));
    cr_assert(eq(sz, c.train.schedule.milestones[1], 0));
    cr_assert(strcmp(c.data.root, "/a b/c") == 0);
    cr_assert(strcmp(c.name, "quoted-name") == 0);
    cr_assert(c.train.optimizer.lr == 2.5e-2);
    cr_assert(c.data.hflip == true);
    cr_assert(eq(u64, c.seed, 42));

    const char *empty_root[] = {"data.root="};
    load_ok("data: {root: /r}\n", empty_root, 1, &c);
    cr_assert(strcmp(c.data.root, "") == 0);
}

Test(config, cross_key_check_runs_after_the_overrides)
{
    // the file alone is invalid (nesterov with momentum 0); the override fixes it
    const char *ov[] = {"train.optimizer.momentum=0.5"};
    struct run_config c;
    load_ok("train: {optimizer: {momentum: 0, nesterov: true}}\n", ov, 1, &c);
    cr_assert(c.train.optimizer.nesterov == true && c.train.optimizer.momentum == 0.5);
}

// ---------------------------------------------------------------------------------------------
// round trip and hash

// Writes c with config_write, loads it back and checks the struct is byte-identical.
static void assert_round_trip(const struct run_config *c)
{
    const char *path = e2e_path("resolved.yaml");
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    config_write(c, f);
    cr_assert(fclose(f) == 0);
    struct run_config back;
    memset(&back, 0, sizeof back);
    struct eg_error err = {0};
    char *text = config_to_string(c);
    cr_assert(config_load(path, NULL, 0, &back, &err) == EG_OK, "%s\n--- written:\n%s", err.msg,
              text);
    cr_assert(memcmp(c, &back, sizeof back) == 0, "round trip changed the config:\n%s", text);
    char *again = config_to_string(&back);
    cr_assert(strcmp(text, again) == 0);
    free(text);
    free(again);
}

Test(config, write_then_load_gives_the_same_struct)
{
    struct run_config c;
    load_ok("{}\n", NULL, 0, &c);
    assert_round_trip(&c);
    load_ok(full_block, NULL, 0, &c);
    assert_round_trip(&c);

    // awkward doubles and strings
    const char *ov[] = {
        "train.optimizer.lr=0.30000000000000004",
        "train.optimizer.weight_decay=1.1754943508222875e-38", // FLT_MIN: the smallest allowed
        "train.optimizer.eps=3.4028234663852886e38",           // FLT_MAX: the largest
        "train.optimizer.beta2=0.99999999999999989",
        "train.schedule.min_lr=-0.0",
        "name=123",
        "data.root=\"dir \\\"q\\\" \\\\ \\t\\n\\r\\x01\\x7f\\x85\\u2028\\u2029\\uFEFF\\uFFFE é "
        "日本 \\U0001F600 # : - [x]\"",
    };
    load_ok("{}\n", ov, sizeof ov / sizeof ov[0], &c);
    cr_assert(strstr(c.data.root, "\t\n\r\x01\x7f") != NULL, "%s", c.data.root);
    cr_assert(signbit(c.train.schedule.min_lr));
    assert_round_trip(&c);

    // list items that must be quoted to read back as the same strings
    const char *items[] = {"lft.domains=['5', '-1', '.inf', 'true', \"null\", _x, a.b, "
                           "fmnist-edges]",
                           "lft.aux=-1", "task=lft"};
    load_ok("{}\n", items, 3, &c);
    cr_assert(eq(sz, c.lft.ndomains, 8));
    char *text = config_to_string(&c);
    cr_assert(strstr(text, "  domains: [\"5\", \"-1\", \".inf\", \"true\", \"null\", _x, a.b, "
                           "fmnist-edges]\n") != NULL,
              "%s", text);
    free(text);
    assert_round_trip(&c);

    const char *plainish[] = {"data.root=true", "name=null"};
    load_ok("{}\n", plainish, 2, &c);
    text = config_to_string(&c);
    cr_assert(strstr(text, "  root: \"true\"\n") != NULL, "%s", text);
    cr_assert(strstr(text, "name: \"null\"\n") != NULL, "%s", text);
    free(text);
    assert_round_trip(&c);
}

// One override per key, each a non-default value. assert_every_key_changed checks this against
// the schema itself, so a key added to a table in lib/io/config.c must be added here too.
static const char *const every_key[] = {
    "name=other",
    "seed=2",
    "threads=3",
    "conv_backend=im2col",
    "task=toy1d",
    "data.dataset=cifar10",
    "data.root=/x",
    "data.train_size=100",
    "data.image_c=1",
    "data.image_h=31",
    "data.image_w=33",
    "data.classes=11",
    "data.synthetic_train=999",
    "data.synthetic_test=201",
    "data.crop_pad=4",
    "data.hflip=true",
    "data.noise.type=unif",
    "data.noise.rate=0.2",
    "data.meta_size=500",
    "data.split_seed=2",
    "backbone.name=mlp",
    "backbone.width=2",
    "backbone.channels=8",
    "backbone.hidden=[256]",
    "method.name=evograd",
    "method.candidates=10",
    "method.sigma=1",
    "method.temperature=0.5",
    "method.noise=gaussian",
    "method.lookahead_lr=0.01",
    "train.epochs=11",
    "train.batch_size=129",
    "train.diverge_factor=50",
    "train.optimizer.name=adam",
    "train.optimizer.lr=0.2",
    "train.optimizer.momentum=0.8",
    "train.optimizer.nesterov=true",
    "train.optimizer.weight_decay=1e-4",
    "train.optimizer.beta1=0.8",
    "train.optimizer.beta2=0.99",
    "train.optimizer.eps=1e-7",
    "train.schedule.type=cosine",
    "train.schedule.milestones=[3]",
    "train.schedule.gamma=0.5",
    "train.schedule.min_lr=1e-5",
    "meta.batch_size=50",
    "meta.optimizer.name=adam",
    "meta.optimizer.lr=0.1",
    "meta.optimizer.momentum=0.8",
    "meta.optimizer.nesterov=false",
    "meta.optimizer.weight_decay=0",
    "meta.optimizer.beta1=0.8",
    "meta.optimizer.beta2=0.99",
    "meta.optimizer.eps=1e-7",
    "eval.every_epochs=2",
    "eval.batch_size=100",
    "checkpoint.every_epochs=5",
    "diagnostics.every_steps=10",
    "diagnostics.draws=3",
    "toy1d.trials=10",
    "toy1d.grid_points=7",
    "toy1d.lambda_min=0.2",
    "toy1d.lambda_max=3",
    "toy1d.steps=6",
    "toy1d.lr=0.05",
    "rotation.degrees=45",
    "rotation.train_end=100",
    "rotation.val_begin=200",
    "rotation.val_end=300",
    "rotation.init_deg=5",
    "mwn.hidden=50",
    "mwn.uniform_weights=true",
    // each alone and all together satisfy the lft cross-key rules
    "lft.domains=[fmnist-inverted, fmnist-plain, fmnist-edges]",
    "lft.unseen=fmnist-plain",
    "lft.aux=fmnist-inverted",
    "lft.ft=false",
    "lft.n_way=6",
    "lft.shot=1",
    "lft.queries=15",
    "lft.episodes=50",
    "lft.aux_batch=32",
    "lft.aux_decay=1",
    "lft.val_episodes=0",
    "lft.test_episodes=600",
    "lft.test_queries=16",
};
#define NEVERY (sizeof every_key / sizeof every_key[0])

enum { KEYS_MAX = 256, KEY_DEPTH_MAX = 4 };

// One key of a config_write text: its dotted path and its value as written (value[0..value_len),
// pointing into the text).
struct written_key {
    char path[128];
    const char *value;
    size_t value_len;
};

// Splits a config_write text into its keys, in order: "name:" alone opens a section whose keys
// are indented two spaces more, "name: value" is a key, '#' starts a comment line. Any other line
// fails the test, so a change of the format cannot hide keys. out: (KEYS_MAX) written; returns
// the number of keys.
static size_t written_keys(const char *text, struct written_key *out)
{
    char section[KEY_DEPTH_MAX][64] = {{0}}; // section[d]: the section open at depth d
    size_t n = 0;
    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        size_t indent = strspn(line, " ");
        const char *name = line + indent;
        size_t name_len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_");
        size_t depth = indent / 2;
        if (*name != '#') {
            cr_assert(indent % 2 == 0 && depth < KEY_DEPTH_MAX && name_len > 0 &&
                          name_len < sizeof section[0] && name[name_len] == ':',
                      "not a line of config_write: '%.*s'", (int)len, line);
            if (indent + name_len + 1 == len) {
                snprintf(section[depth], sizeof section[0], "%.*s", (int)name_len, name);
            } else {
                cr_assert(name[name_len + 1] == ' ' && n < KEYS_MAX, "'%.*s'", (int)len, line);
                struct written_key *k = &out[n++];
                size_t used = 0;
                for (size_t d = 0; d < depth; d++) {
                    used +=
                        (size_t)snprintf(k->path + used, sizeof k->path - used, "%s.", section[d]);
                }
                snprintf(k->path + used, sizeof k->path - used, "%.*s", (int)name_len, name);
                k->value = name + name_len + 2;
                k->value_len = len - indent - name_len - 2;
            }
        }
        line += len + (line[len] == '\n');
    }
    return n;
}

// The tasks, and the one a config needs for key path to be read (the first that reads it).
static const char *const all_tasks[] = {"supervised", "toy1d", "rotation", "mwn", "lft"};
#define NTASKS (sizeof all_tasks / sizeof all_tasks[0])

static const char *a_reader(const char *override)
{
    char path[128];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(override, "="), override);
    for (size_t t = 0; t < NTASKS; t++) {
        if (config_task_reads(all_tasks[t], path)) return all_tasks[t];
    }
    cr_assert(false, "no task reads %s", path);
    return NULL;
}

// Every key of c with its value (config_each_value), in the schema's order.
struct key_list {
    size_t n;
    char path[KEYS_MAX][128];
    char value[KEYS_MAX][160];
};

static void add_key(void *ctx, const char *path, const char *value)
{
    struct key_list *l = ctx;
    cr_assert(l->n < KEYS_MAX);
    snprintf(l->path[l->n], sizeof l->path[0], "%s", path);
    snprintf(l->value[l->n++], sizeof l->value[0], "%s", value);
}

// Loads, with task=task, every override of every_key whose key that task reads.
static void load_every_key_of(const char *task, struct run_config *c)
{
    const char *ov[NEVERY + 1];
    size_t n = 0;
    char task_ov[64];
    snprintf(task_ov, sizeof task_ov, "task=%s", task);
    for (size_t i = 0; i < NEVERY; i++) {
        char path[128];
        snprintf(path, sizeof path, "%.*s", (int)strcspn(every_key[i], "="), every_key[i]);
        if (strcmp(path, "task") != 0 && config_task_reads(task, path)) ov[n++] = every_key[i];
    }
    ov[n++] = task_ov;
    load_ok("{}\n", ov, n, c);
}

// The guard on every_key: each key of the schema (config_each_value: every key of every table
// in lib/io/config.c) must be written by config_write with another value than its default for
// at least one task, with every_key's overrides of the keys that task reads; every_key must hold
// one override per key; and config_write must write exactly the keys each task reads. Fails
// naming every key left at its default.
static void assert_every_key_changed(const struct run_config *defaults,
                                     const struct run_config all[NTASKS])
{
    static struct key_list d;
    memset(&d, 0, sizeof d);
    config_each_value(defaults, add_key, &d);
    bool changed[KEYS_MAX] = {false};
    for (size_t t = 0; t < NTASKS; t++) {
        char *atext = config_to_string(&all[t]);
        struct written_key a[KEYS_MAX];
        size_t na = written_keys(atext, a), nreads = 0;
        for (size_t k = 0; k < d.n; k++)
            nreads += config_task_reads(all_tasks[t], d.path[k]);
        cr_assert(eq(sz, na, nreads), "task %s: %zu keys written, it reads %zu:\n%s",
                  all_tasks[t], na, nreads, atext);
        for (size_t i = 0; i < na; i++) {
            size_t k = 0;
            while (k < d.n && strcmp(d.path[k], a[i].path) != 0)
                k++;
            cr_assert(k < d.n && config_task_reads(all_tasks[t], a[i].path), "task %s: %s",
                      all_tasks[t], a[i].path);
            bool same = a[i].value_len == strlen(d.value[k]) &&
                        memcmp(a[i].value, d.value[k], a[i].value_len) == 0;
            changed[k] = changed[k] || !same;
        }
        free(atext);
    }
    char *missing = NULL; // the paths of the keys left at their defaults, ", "-separated
    size_t missing_len = 0, nmissing = 0;
    FILE *m = open_memstream(&missing, &missing_len);
    cr_assert(m != NULL);
    for (size_t k = 0; k < d.n; k++) {
        if (!changed[k]) fprintf(m, "%s%s", nmissing++ > 0 ? ", " : "", d.path[k]);
    }
    cr_assert(fclose(m) == 0);
    cr_assert(nmissing == 0,
              "every_key leaves %zu of the schema's %zu keys at their defaults; give each a "
              "non-default override in every_key: %s",
              nmissing, d.n, missing);
    cr_assert(eq(sz, NEVERY, d.n), "every_key should hold one override per key of the schema");
    free(missing);
}

Test(config, every_key_changed_round_trips_and_each_change_changes_the_hash)
{
    struct run_config base, all[NTASKS];
    load_ok("{}\n", NULL, 0, &base);
    for (size_t t = 0; t < NTASKS; t++) {
        load_every_key_of(all_tasks[t], &all[t]);
        assert_round_trip(&all[t]);
        cr_assert(config_hash(&all[t]) != config_hash(&base));
    }
    assert_every_key_changed(&base, all);

    // hashes[NEVERY] is the defaults'; every single change (with the task that reads its key)
    // must give a different hash
    uint64_t hashes[NEVERY + 1];
    hashes[NEVERY] = config_hash(&base);
    cr_assert(eq(u64, config_hash(&base), hashes[NEVERY])); // deterministic
    for (size_t i = 0; i < NEVERY; i++) {
        char task_ov[64];
        snprintf(task_ov, sizeof task_ov, "task=%s", a_reader(every_key[i]));
        const char *ov[] = {task_ov, every_key[i]};
        struct run_config c;
        load_ok("{}\n", ov, 2, &c);
        cr_assert(memcmp(&c, &base, sizeof c) != 0, "%s changed nothing", every_key[i]);
        hashes[i] = config_hash(&c);
    }
    for (size_t i = 0; i < NEVERY; i++) {
        for (size_t j = i + 1; j <= NEVERY; j++) {
            cr_assert(hashes[i] != hashes[j], "%s: same hash as %s", every_key[i],
                      j == NEVERY ? "the defaults" : every_key[j]);
        }
    }
}

Test(config, to_string_starts_with_a_comment_and_lists_the_keys_the_task_reads)
{
    struct run_config c;
    load_ok("{}\n", NULL, 0, &c);
    char *s = config_to_string(&c);
    cr_assert(s[0] == '#');
    const char *want[] = {
        "every key task supervised reads",
        "\nname: default\n",
        "\ndata:\n  dataset: fashion_mnist\n",
        "  root: \"\"\n",
        "  hidden: [256, 256]\n",
        "\ntrain:\n  epochs: 10\n  batch_size: 128\n  diverge_factor: 100\n  optimizer:\n"
        "    name: sgd\n",
        "    lr: 0.1\n",
        "    eps: 1e-08\n",
        "    milestones: []\n",
        "\ncheckpoint:\n  every_epochs: 1\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert(strstr(s, want[i]) != NULL, "missing '%s' in\n%s", want[i], s);
    }
    // the sections and keys supervised training never reads
    const char *never[] = {"\nmeta:", "\ntoy1d:", "\nrotation:", "\nmwn:", "\nlft:", "  noise:\n",
                           "  meta_size:", "  split_seed:", "e+"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        cr_assert(strstr(s, never[i]) == NULL, "'%s' in\n%s", never[i], s);
    }
    free(s);

    const char *lft[] = {"task=lft"};
    load_ok("{}\n", lft, 1, &c);
    s = config_to_string(&c);
    cr_assert(strstr(s, "\nlft:\n  domains: [fmnist-plain, fmnist-inverted, fmnist-edges, "
                        "fmnist-blurred, fmnist-dilated]\n  unseen: fmnist-edges\n  aux: \"\"\n"
                        "  ft: true\n") != NULL,
              "%s", s);
    cr_assert(strstr(s, "train_size") == NULL && strstr(s, "\nrotation:") == NULL, "%s", s);
    free(s);
    const char *toy[] = {"task=toy1d"};
    load_ok("{}\n", toy, 1, &c);
    s = config_to_string(&c);
    cr_assert(strstr(s, "\nmeta:\n  optimizer:\n") != NULL && strstr(s, "\ntoy1d:\n") != NULL &&
                  strstr(s, "\ndata:") == NULL && strstr(s, "\ntrain:") == NULL,
              "%s", s);
    free(s);
}

// Numbers are shown in plain notation where that reads back the same; the hash reads the
// canonical form, which has not changed: a checkpoint's config keeps its identity.
Test(config, numbers_are_plain_and_the_hash_is_the_canonical_forms)
{
    const char *ov[] = {"task=rotation", "rotation.degrees=30", "train.optimizer.lr=1e-5",
                        "train.optimizer.eps=1e-8", "train.diverge_factor=1e3",
                        "meta.optimizer.lr=0.00012", "rotation.init_deg=-2.5e1"};
    struct run_config c;
    load_ok("{}\n", ov, sizeof ov / sizeof ov[0], &c);
    char *s = config_to_string(&c);
    const char *want[] = {"  degrees: 30\n", "    lr: 0.00001\n", "    eps: 1e-08\n",
                          "  diverge_factor: 1000\n", "    lr: 0.00012\n", "  init_deg: -25\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert(strstr(s, want[i]) != NULL, "missing '%s' in\n%s", want[i], s);
    }
    free(s);
    assert_round_trip(&c);
    // the defaults' hash as every earlier version computed it (the canonical text of every key,
    // numbers as the shortest %g: "degrees: 3e+01"), as the binary before this change computed it
    struct run_config d;
    load_ok("{}\n", NULL, 0, &d);
    cr_assert(eq(u64, config_hash(&d), UINT64_C(0x481edd961b35ebd1)));
}

// ---------------------------------------------------------------------------------------------
// numbers: every number key's message names the key, the value as written, the location and
// the schema's bound; values a 32-bit float cannot hold are refused as such

// Loads text (or, when ov is not NULL, "name: x" with the one override ov) into a sentinel
// struct; the load must fail with EG_ERR_CONFIG and leave it untouched. Returns the message in
// err; *path_out (may be NULL) the file's path.
static void load_fails(const char *text, const char *ov, struct eg_error *err,
                       const char **path_out)
{
    e2e_write("bad.yaml", ov != NULL ? "name: x\n" : text);
    const char *path = e2e_path("bad.yaml");
    if (path_out != NULL) *path_out = path;
    struct run_config c;
    fill_sentinel(&c);
    memset(err, 0, sizeof *err);
    const char *ovs[1] = {ov};
    enum eg_status st = config_load(path, ovs, ov != NULL ? 1 : 0, &c, err);
    cr_assert(st == EG_ERR_CONFIG, "status %s for %s: %s", eg_status_name(st),
              ov != NULL ? ov : text, err->msg);
    cr_assert(is_sentinel(&c), "*out was written for %s", ov != NULL ? ov : text);
}

// The YAML text setting the dotted key path to value in flow style ("a: {b: {c: V}}"), and
// *col the 1-based column of the value.
static void nested_text(const char *path, const char *value, char *buf, size_t cap, size_t *col)
{
    size_t used = 0, depth = 0;
    for (const char *p = path;;) {
        size_t n = strcspn(p, ".");
        used += (size_t)snprintf(buf + used, cap - used, "%.*s: ", (int)n, p);
        if (p[n] == '\0') break;
        used += (size_t)snprintf(buf + used, cap - used, "{");
        depth++;
        p += n + 1;
    }
    *col = used + 1;
    used += (size_t)snprintf(buf + used, cap - used, "%s", value);
    for (size_t d = 0; d < depth; d++)
        used += (size_t)snprintf(buf + used, cap - used, "}");
    snprintf(buf + used, cap - used, "\n");
    cr_assert(used + 1 < cap);
}

// Sets path to value in a file and as an override; both must fail with "<where>: <path>:
// expected <want>, got '<value>'<tail>" exactly, where is file:1:col or override '<path>=<value>'.
static void check_number_message(const char *path, const char *value, const char *want,
                                 const char *tail)
{
    char text[512], msg[1024], ov[256];
    size_t col = 0;
    nested_text(path, value, text, sizeof text, &col);
    struct eg_error err;
    const char *file = NULL;
    load_fails(text, NULL, &err, &file);
    snprintf(msg, sizeof msg, "%s:1:%zu: %s: expected %s, got '%s'%s", file, col, path, want,
             value, tail);
    cr_expect(strcmp(err.msg, msg) == 0, "file:\n   got: %s\n  want: %s", err.msg, msg);
    snprintf(ov, sizeof ov, "%s=%s", path, value);
    load_fails(NULL, ov, &err, NULL);
    snprintf(msg, sizeof msg, "override '%s': %s: expected %s, got '%s'%s", ov, path, want, value,
             tail);
    cr_expect(strcmp(err.msg, msg) == 0, "override:\n   got: %s\n  want: %s", err.msg, msg);
}

// One number key as the plain reference lists it: "path number default allowed".
struct number_key {
    char path[128], allowed[64];
    double lo, hi;      // hi = HUGE_VAL: no upper bound
    bool lo_open, hi_open;
};

// Every number key of the schema, from `evograd list config`'s text (config_write_reference):
// out (64) written; returns the count.
static size_t number_keys(struct number_key *out)
{
    char *ref = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&ref, &len);
    cr_assert(m != NULL);
    config_write_reference(m, false);
    cr_assert(fclose(m) == 0);
    size_t n = 0;
    for (char *line = ref; *line != '\0';) {
        size_t l = strcspn(line, "\n");
        char path[128], type[16], def[64], allowed[64];
        char saved = line[l];
        line[l] = '\0';
        if (line[0] != ' ' &&
            sscanf(line, "%127s %15s %63s %63[^\n]", path, type, def, allowed) == 4 &&
            strcmp(type, "number") == 0) {
            cr_assert(n < 64);
            struct number_key *k = &out[n++];
            snprintf(k->path, sizeof k->path, "%s", path);
            snprintf(k->allowed, sizeof k->allowed, "%s", allowed);
            char open = 0, close = 0;
            if (sscanf(allowed, "%c%lf, %lf%c", &open, &k->lo, &k->hi, &close) == 4 &&
                (open == '[' || open == '(')) {
                k->lo_open = open == '(';
                k->hi_open = close == ')';
            } else {
                k->lo_open = allowed[1] != '=';
                cr_assert(sscanf(allowed + (k->lo_open ? 1 : 2), "%lf", &k->lo) == 1, "%s",
                          allowed);
                k->hi = HUGE_VAL;
            }
        }
        line[l] = saved;
        line += l + (saved == '\n');
    }
    free(ref);
    return n;
}

Test(config, every_number_key_names_the_value_the_location_and_the_real_bound)
{
    struct number_key keys[64];
    size_t n = number_keys(keys);
    cr_assert(ge(sz, n, 25), "only %zu number keys found in the reference", n);
    for (size_t i = 0; i < n; i++) {
        const struct number_key *k = &keys[i];
        char want[128], value[64];
        bool bounded = k->hi != HUGE_VAL;
        snprintf(want, sizeof want, "a number %s%s", bounded ? "in " : "", k->allowed);
        // just outside: the open bound itself, else one past a closed one
        if (k->lo_open) {
            snprintf(value, sizeof value, "%g", k->lo);
        } else if (bounded && k->hi_open) {
            snprintf(value, sizeof value, "%g", k->hi);
        } else if (bounded) {
            snprintf(value, sizeof value, "%g", k->hi + 1);
        } else {
            snprintf(value, sizeof value, "%g", k->lo - 1);
        }
        check_number_message(k->path, value, want, "");
        // beyond a float: overflow where there is no upper bound, else simply out of range
        check_number_message(k->path, "3.4e39", want,
                             bounded ? ""
                                     : ": 3.4e39 overflows a 32-bit float (the largest is "
                                       "3.40282347e+38)");
        // a positive value in range that a float holds as 0, or only as a subnormal
        if (k->lo < 1e-50 && (!bounded || k->hi > 1e-40)) {
            check_number_message(k->path, "1e-50", want,
                                 ": 1e-50 is 0 as a 32-bit float (the smallest normal float is "
                                 "1.17549435e-38)");
            check_number_message(k->path, "1e-40", want,
                                 ": 1e-40 is subnormal as a 32-bit float, with lost precision "
                                 "(the smallest normal float is 1.17549435e-38)");
        }
    }
}

Test(config, lr_that_a_float_cannot_hold_is_refused_and_float_limits_are_accepted)
{
    // The cases: 3.4e39 became inf, 1e-50 became 0, with no location in the message.
    check_number_message("train.optimizer.lr", "3.4e39", "a number > 0",
                         ": 3.4e39 overflows a 32-bit float (the largest is 3.40282347e+38)");
    check_number_message("train.optimizer.lr", "1e-50", "a number > 0",
                         ": 1e-50 is 0 as a 32-bit float (the smallest normal float is "
                         "1.17549435e-38)");
    check_number_message("train.optimizer.lr", "1e-400", "a number > 0",
                         ": 1e-400 is 0 as a 32-bit float (the smallest normal float is "
                         "1.17549435e-38)");
    check_number_message("rotation.degrees", "-1e-45", "a number in [-360, 360]",
                         ": -1e-45 is subnormal as a 32-bit float, with lost precision (the "
                         "smallest normal float is 1.17549435e-38)");
    // The float limits themselves, as %.9g prints them, and zero where the bound allows it.
    const char *ov[] = {"train.optimizer.lr=3.40282347e+38", "meta.optimizer.lr=1.17549435e-38",
                        "train.optimizer.weight_decay=0", "rotation.init_deg=-0"};
    struct run_config c;
    load_ok("task: rotation\n", ov, sizeof ov / sizeof ov[0], &c);
    float largest = (float)c.train.optimizer.lr, smallest = (float)c.meta.optimizer.lr;
    cr_assert(largest == FLT_MAX && smallest == FLT_MIN);
    cr_assert(c.train.optimizer.weight_decay == 0.0);
}

// ---------------------------------------------------------------------------------------------
// train.diverge_factor and the hash

Test(config, diverge_factor_defaults_to_100_takes_0_for_off_and_refuses_negatives)
{
    struct run_config c;
    load_ok("name: x\n", NULL, 0, &c);
    cr_assert(c.train.diverge_factor == 100.0);
    load_ok("train: {diverge_factor: 0}\n", NULL, 0, &c);
    cr_assert(c.train.diverge_factor == 0.0);
    const char *ov[] = {"train.diverge_factor=2.5"};
    load_ok("train: {diverge_factor: 0}\n", ov, 1, &c);
    cr_assert(c.train.diverge_factor == 2.5);
    check_number_message("train.diverge_factor", "-1", "a number >= 0", "");
    char *text = config_to_string(&c);
    cr_assert(strstr(text, "\ntrain:\n  epochs: 10\n  batch_size: 128\n  diverge_factor: 2.5\n") !=
                  NULL,
              "%s", text);
    free(text);
    assert_round_trip(&c);
}

// ---------------------------------------------------------------------------------------------
// bounds on the input: nesting depth and anchors, refused before libyaml builds a document

// text (len bytes) must be refused with exactly "<file>:<line>:<col>: <what>".
static void check_refused_at(const char *text, size_t len, size_t line, size_t col,
                             const char *what)
{
    e2e_write_bytes("deep.yaml", text, len);
    const char *path = e2e_path("deep.yaml");
    struct run_config c;
    fill_sentinel(&c);
    struct eg_error err = {0};
    cr_assert(config_load(path, NULL, 0, &c, &err) == EG_ERR_CONFIG, "%s", err.msg);
    char want[1024];
    snprintf(want, sizeof want, "%s:%zu:%zu: %s", path, line, col, what);
    cr_assert(strcmp(err.msg, want) == 0, "\n   got: %s\n  want: %s", err.msg, want);
    cr_assert(is_sentinel(&c));
}

#define NESTING "nesting limit exceeded: lists and maps may nest at most 32 levels deep"

// A buffer of n copies of unit after prefix, then suffix (caller frees); *len its length.
static char *repeated(const char *prefix, const char *unit, size_t n, const char *suffix,
                      size_t *len)
{
    size_t lp = strlen(prefix), lu = strlen(unit), ls = strlen(suffix);
    char *buf = malloc(lp + n * lu + ls + 1);
    cr_assert(buf != NULL);
    memcpy(buf, prefix, lp);
    for (size_t i = 0; i < n; i++)
        memcpy(buf + lp + i * lu, unit, lu);
    memcpy(buf + lp + n * lu, suffix, ls + 1);
    *len = lp + n * lu + ls;
    return buf;
}

Test(config, refuses_100000_open_brackets_at_the_33rd_with_the_nesting_limit)
{
    // Took 12 s of CPU before: libyaml's scanner walks every open '[' on each token.
    size_t len;
    char *text = repeated("", "[", 100000, "", &len);
    check_refused_at(text, len, 1, 33, NESTING); // the 33rd '[' opens level 33
    free(text);
}

Test(config, refuses_400_kb_of_nested_maps_and_lists_with_the_nesting_limit)
{
    // 400 kB, well-formed: took over a minute of CPU before it was refused.
    size_t len, len2;
    char *open = repeated("train: ", "{a: [", 60000, "", &len);
    char *text = repeated(open, "]}", 60000, "\n", &len2);
    cr_assert(gt(sz, len2, 400000));
    // levels: the top-level map 1, then '{' 2k and '[' 2k+1 (k = 1, 2, ...) at columns 8 + 5(k-1)
    // and 12 + 5(k-1); level 33 is the '[' of k = 16, at column 87
    check_refused_at(text, len2, 1, 87, NESTING);
    free(text);
    free(open);
    // block style: "- - - ... x" on one line nests a sequence per dash (level 33: the 32nd, at
    // column 63), and a map per indented line (level 33: line 33, column 33)
    text = repeated("train:\n", "- ", 200000, "x\n", &len);
    check_refused_at(text, len, 2, 63, NESTING);
    free(text);
    char block[40 * 64 + 1];
    size_t used = 0;
    for (size_t d = 0; d < 40; d++)
        used += (size_t)snprintf(block + used, sizeof block - used, "%*sa:\n", (int)d, "");
    check_refused_at(block, used, 33, 33, NESTING);
}

Test(config, nesting_limit_counts_the_top_level_map_and_allows_32_levels)
{
    size_t len, len2;
    char *open = repeated("train: ", "[", 31, "", &len);
    char *text = repeated(open, "]", 31, "\n", &len2);
    e2e_write("ok32.yaml", text);
    struct run_config c;
    struct eg_error err = {0};
    cr_assert(config_load(e2e_path("ok32.yaml"), NULL, 0, &c, &err) == EG_ERR_CONFIG);
    cr_assert(strstr(err.msg, ":1:8: train: expected a map, got a list") != NULL, "%s", err.msg);
    free(text);
    free(open);
    open = repeated("train: ", "[", 32, "", &len);
    text = repeated(open, "]", 32, "\n", &len2);
    check_refused_at(text, len2, 1, 39, NESTING);
    free(text);
    free(open);
}

Test(config, refuses_a_deeply_nested_override_value)
{
    size_t len;
    char *ov = repeated("train.optimizer.lr=", "[", 100000, "", &len);
    struct eg_error err;
    load_fails(NULL, ov, &err, NULL);
    cr_assert(starts_with(err.msg, "override 'train.optimizer.lr=[[[["), "%s", err.msg);
    cr_assert(strstr(err.msg, "...': train.optimizer.lr: " NESTING) != NULL, "%s", err.msg);
    free(ov);
}

Test(config, refuses_more_than_64_anchors)
{
    // libyaml compares each anchor with every earlier one: quadratic in their number.
    char text[65 * 16 + 64];
    size_t used = (size_t)snprintf(text, sizeof text, "x: [");
    for (int i = 0; i < 64; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "&a%d 1, ", i);
    size_t col = used + 1;
    snprintf(text + used, sizeof text - used, "&b 1]\n");
    check_refused_at(text, strlen(text), 1, col,
                     "anchor limit exceeded: at most 64 YAML anchors (&name) in a document");
    // 64 are fine: the unknown key x is the first problem
    snprintf(text + used, sizeof text - used, "1]\n");
    e2e_write("anchors.yaml", text);
    struct run_config c;
    struct eg_error err = {0};
    cr_assert(config_load(e2e_path("anchors.yaml"), NULL, 0, &c, &err) == EG_ERR_CONFIG);
    cr_assert(strstr(err.msg, ":1:1: x: unknown key") != NULL, "%s", err.msg);
}

// ---------------------------------------------------------------------------------------------
// robustness: mutated configs must load or fail cleanly (ASan/LSan check crashes and leaks)

Test(config, mutated_input_never_crashes_and_accepted_input_round_trips)
{
    size_t n0 = strlen(full_block);
    char *buf = malloc(n0 + 64);
    cr_assert(buf != NULL);
    unsigned long long x = 0x9E3779B97F4A7C15ull;
    size_t accepted = 0;
    static const char inserts[] = "\0\t\n:{}[],'\"&*!|>-#%@` 9.e\x80\xff";
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(buf, full_block, n0);
        size_t n = n0;
        int nmut = 1 + iter % 4;
        for (int m = 0; m < nmut; m++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t pos = (size_t)(x >> 8) % n;
            switch (x % 4) {
            case 0:
                buf[pos] = inserts[(x >> 40) % (sizeof inserts - 1)];
                break;
            case 1:
                n = pos + 1;
                break; // truncate
            case 2:    // delete a byte
                memmove(buf + pos, buf + pos + 1, n - pos - 1);
                n--;
                break;
            default:
                buf[pos] = (char)(x >> 32);
                break;
            }
            if (n == 0) n = 1;
        }
        e2e_write_bytes("fuzz.yaml", buf, n);
        const char *path = e2e_path("fuzz.yaml");
        struct run_config c;
        memset(&c, 0, sizeof c);
        struct eg_error err = {0};
        enum eg_status st = config_load(path, NULL, 0, &c, &err);
        cr_assert(st == EG_OK || st == EG_ERR_CONFIG, "status %d", st);
        if (st == EG_OK) {
            accepted++;
            assert_round_trip(&c);
        } else {
            cr_assert(starts_with(err.msg, path), "%s", err.msg);
        }
    }
    free(buf);
    cr_assert(accepted > 0);
}

// ---------------------------------------------------------------------------------------------
// reference documentation

Test(config, reference_md_is_in_sync_with_the_tables)
{
    char *gen = NULL;
    size_t gen_len = 0;
    FILE *m = open_memstream(&gen, &gen_len);
    cr_assert(m != NULL);
    config_write_reference(m, true);
    cr_assert(fclose(m) == 0);

    FILE *f = fopen("../configs/REFERENCE.md", "rb");
    cr_assert(f != NULL, "cannot open ../configs/REFERENCE.md (regenerate it with "
                         "config_write_reference(f, true))");
    char *file = malloc(gen_len + 2);
    cr_assert(file != NULL);
    size_t file_len = fread(file, 1, gen_len + 1, f);
    fclose(f);
    bool same = file_len == gen_len && memcmp(file, gen, gen_len) == 0;
    cr_assert(same, "configs/REFERENCE.md is out of date: regenerate it with "
                    "config_write_reference(f, true)");
    free(file);
    free(gen);
}

Test(config, reference_lists_every_key_in_both_formats)
{
    for (int md = 0; md < 2; md++) {
        char *s = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&s, &len);
        config_write_reference(m, md == 1);
        cr_assert(fclose(m) == 0);
        for (size_t i = 0; i < NEVERY; i++) {
            char key[64];
            size_t n = strcspn(every_key[i], "=");
            snprintf(key, sizeof key, "%.*s", (int)n, every_key[i]);
            cr_assert(strstr(s, key) != NULL, "%s missing from the reference", key);
        }
        cr_assert(strstr(s, "task") != NULL && strstr(s, "method.name") != NULL);
        if (md == 1) { // every_key names every key: one table row each
            size_t rows = 0;
            for (const char *p = strstr(s, "\n| `"); p != NULL; p = strstr(p + 1, "\n| `"))
                rows++;
            cr_assert(eq(sz, rows, NEVERY));
        }
        free(s);
    }
}

Test(config, first_difference_names_the_first_key_in_schema_order_with_both_values)
{
    struct run_config a, b;
    load_ok("{}\n", NULL, 0, &a);
    load_ok("{}\n", NULL, 0, &b);
    char path[160], va[256], vb[256];
    const bool differ = config_first_difference(&a, &b, path, sizeof path, va, vb, sizeof va);
    cr_assert(differ == false);
    const char *ov[] = {"train.optimizer.lr=0.25", "rotation.degrees=45", "task=rotation"};
    load_ok("{}\n", ov, 3, &b);
    cr_assert(config_first_difference(&a, &b, path, sizeof path, va, vb, sizeof va));
    cr_assert(strcmp(path, "task") == 0 && strcmp(va, "supervised") == 0 &&
              strcmp(vb, "rotation") == 0, "%s: %s / %s", path, va, vb);
    load_ok("{}\n", ov, 1, &b);
    cr_assert(config_first_difference(&a, &b, path, sizeof path, va, vb, sizeof va));
    cr_assert(strcmp(path, "train.optimizer.lr") == 0 && strcmp(va, "0.1") == 0 &&
              strcmp(vb, "0.25") == 0, "%s: %s / %s", path, va, vb);
}
