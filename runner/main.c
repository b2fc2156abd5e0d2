/* main.c - the `evograd` command. Only the runner prints final errors and calls exit; the
 * library returns statuses. Exit status: 0 success, 1 bad input, 2 usage, 3 the run failed. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "core/parallel.h"
#include "io/config.h"
#include "meta/hyper.h"
#include "core/rng.h"
#include "evograd/evograd.h"
#include "nn/backbones.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "run/task.h"

static void usage(FILE *f)
{
    fputs("usage: evograd <command> [arguments]\n"
          "\n"
          "EvoGrad (Bohdal, Yang, Hospedales, NeurIPS 2021) experiment runner: gradient-based\n"
          "meta-learning and hyperparameter optimisation on the CPU.\n"
          "\n"
          "commands:\n"
          "  run CONFIG.yaml [key.path=value ...] [--out DIR] [--runs FILE] [--resume]\n"
          "      [--quiet] [--stop-after STEPS] [--sweep ID]\n"
          "                                train as the config says; results go to\n"
          "                                results/<name>/<method>-seed<seed>[-N]/ (or --out):\n"
          "                                config.yaml, metrics.csv, summary.csv, DONE, and a\n"
          "                                row in results/<name>/runs.csv (with --out: only in\n"
          "                                --runs FILE, if given). One run at a time holds a\n"
          "                                folder. SIGINT/SIGTERM checkpoint and stop; --resume\n"
          "                                continues exactly; the stop message says how (the\n"
          "                                folder's own config.yaml). Prints the run directory\n"
          "                                on standard output. --quiet: only errors and the\n"
          "                                final line (done, or stopped) on standard error.\n"
          "                                --stop-after: checkpoint and stop (exit 0, no DONE)\n"
          "                                after STEPS steps of this invocation, e.g. to fit a\n"
          "                                job's time limit; --sweep: the sweep id its\n"
          "                                summary row records (evograd sweep sets it)\n"
          "  check CONFIG.yaml [key.path=value ...]\n"
          "                                validate and print the resolved config (the\n"
          "                                keys the task reads)\n"
          "  sweep CONFIG.yaml [key=a,b,c | key=lo:hi:n | key=log(lo,hi,n) | key=i..j\n"
          "        | key=value ...] [-j N | --slurm FILE [--time LIMIT] [--array-max M]\n"
          "        [--signal-before SECONDS] [--stop-after STEPS] [--max-requeues R]\n"
          "        [--sbatch OPTION ...]]\n"
          "                                the grid of runs over the varied keys (last\n"
          "                                fastest), each checked first: prints one evograd\n"
          "                                run line per run (for xargs -P, parallel, a\n"
          "                                scheduler), or runs them N at a time with -j N\n"
          "                                (--jobs N);\n"
          "                                folders results/<name>/<method>-<key><value>...\n"
          "                                -seed<seed>, rows in results/<name>/runs.csv.\n"
          "                                --slurm FILE: an sbatch job-array script, one\n"
          "                                task per run (at most M at once); TERM at\n"
          "                                SECONDS (120) before the time limit checkpoints\n"
          "                                the run, STEPS is each job's budget, and a run\n"
          "                                that stopped so is requeued (at most R times, 100)\n"
          "                                and resumed; --sbatch adds an #SBATCH line\n"
          "  table RUNS.csv|FOLDER [--where KEY=VALUE ...] [--metric COLUMN ...]\n"
          "        [--format md|csv] [--x KEY]\n"
          "                                a runs table (FOLDER: its runs.csv; a re-run counts\n"
          "                                once, its last row) grouped by every config key\n"
          "                                that varies; mean +- std over seeds, n shown.\n"
          "                                --where: rows whose column KEY holds VALUE;\n"
          "                                --format csv: label, keys, n, <metric>_mean and\n"
          "                                _std in full precision; --x KEY: KEY is the x\n"
          "                                column, rows by number within each group\n"
          "  table RUNS.csv|FOLDER --curve COLUMN [--curve-file metrics.csv]\n"
          "        [--curve-x epoch] [--where KEY=VALUE ...]\n"
          "                                CSV group,epoch,mean,std,n: COLUMN of each run's\n"
          "                                metrics.csv per epoch over each group's seeds\n"
          "  table RUNS.csv|FOLDER --keys all|numeric [--where KEY=VALUE ...]\n"
          "                                the config keys that vary, one a line\n",
          f);
    fputs("  list config                   every config key: type, default, bounds, meaning\n"
          "  list [tasks|methods|backbones|optimizers]\n"
          "                                what this build provides (all of it by default);\n"
          "                                backbones with parameter counts at the input shape\n"
          "                                the paper uses them with\n"
          "  list BACKBONE                 the layers of one backbone (e.g. list resnet32)\n"
          "\n"
          "tasks (config key task): supervised, toy1d (the 1-D illustration), rotation (a\n"
          "learned rotation), mwn (label noise with Meta-Weight-Net), lft (cross-domain\n"
          "few-shot learning with learned feature-wise transformations; built-in domains\n"
          "from Fashion-MNIST); configs/ and configs/paper/ hold ready-made experiments,\n"
          "configs/REFERENCE.md every key\n"
          "\n"
          "methods (method.name): none, evograd, unrolled (the exact second-order one-step\n"
          "look-ahead), unrolled_fd (the same with a finite-difference mixed derivative);\n"
          "diagnostics.every_steps=N compares the method's hypergradient with the exact one\n"
          "every N steps (hypergrad_diag.csv in the run folder)\n"
          "\n"
          "options:\n"
          "  -h, --help      this text (evograd COMMAND --help: the command's own)\n"
          "  -V, --version   the version\n"
          "\n"
          "exit status: 0 success, 1 bad input (the run could not start: config, data,\n"
          "checkpoint, run folder), 2 usage error, 3 the run failed after it started (diverged,\n"
          "or an output could not be written), 130/143 stopped by SIGINT/SIGTERM\n",
          f);
}

// Builds each backbone at its default input (10 classes, or features only) and prints its size.
static void list_backbones(void)
{
    printf("backbones (parameters at the default input; head over 10 classes):\n");
    for (size_t k = 0; k < BACKBONE__COUNT; k++) {
        struct backbone_spec spec = backbone_defaults((enum backbone_kind)k);
        struct shape in = backbone_default_input(spec.kind);
        struct rng rng;
        rng_seed(&rng, 1);
        struct net *net = backbone_new(&spec, in, 10, &rng);
        char input[32];
        snprintf(input, sizeof input, "%zux%zux%zu", in.c, in.h, in.w);
        printf("  %-9s %10zu params  input %-9s  %s\n", backbone_name(spec.kind), net->nparams,
               input, backbone_describe(spec.kind));
        net_free(net);
    }
}

// The layers of one backbone at its default input.
static void list_layers(enum backbone_kind kind)
{
    struct backbone_spec spec = backbone_defaults(kind);
    struct shape in = backbone_default_input(kind);
    struct rng rng;
    rng_seed(&rng, 1);
    struct net *net = backbone_new(&spec, in, 10, &rng);
    printf("%s at input %zux%zux%zu, 10 classes (node 0 is the input):\n", backbone_name(kind),
           in.c, in.h, in.w);
    net_print_summary(net, stdout);
    net_free(net);
}

static void list_optimizers(void)
{
    printf("optimizers (PyTorch update rules, coupled L2 weight decay):\n"
           "  sgd       momentum, nesterov, weight_decay\n"
           "  adam      beta1, beta2, eps, weight_decay\n"
           "learning-rate schedules:\n"
           "  constant, step (milestones, gamma), cosine (total epochs, min lr)\n");
}

static void list_tasks(void)
{
    printf("tasks (the config's task):\n");
    for (size_t i = 0; i < task_count(); i++) {
        printf("  %-11s %s\n", task_at(i)->name, task_at(i)->about);
    }
}

static void list_methods(void)
{
    printf("hypergradient methods (method.name):\n");
    for (size_t m = 0; m < HYPER__COUNT; m++) {
        printf("  %-12s %s\n", hyper_method_name((enum hyper_method)m),
               hyper_method_about((enum hyper_method)m));
    }
}

static int cmd_list(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "evograd list: too many arguments\n");
        return EXIT_USAGE;
    }
    const char *what = argc == 1 ? argv[0] : "all";
    if (strcmp(what, "-h") == 0 || strcmp(what, "--help") == 0) {
        printf("usage: evograd list [tasks|methods|backbones|optimizers|config|BACKBONE]\n"
               "What this build provides (all but config and the layers by default).\n");
        return EXIT_SUCCESS;
    }
    bool all = strcmp(what, "all") == 0;
    enum backbone_kind kind;
    if (strcmp(what, "config") == 0) {
        config_write_reference(stdout, false);
        return EXIT_SUCCESS;
    }
    if (backbone_find(what, &kind)) {
        list_layers(kind);
        return EXIT_SUCCESS;
    }
    const char *const topics[] = {"tasks", "methods", "backbones", "optimizers"};
    bool known = all;
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        known = known || strcmp(what, topics[i]) == 0;
    }
    if (!known) {
        fprintf(stderr,
                "evograd list: unknown topic '%s' (tasks, methods, backbones, optimizers, config "
                "or a backbone's name)\n",
                what);
        return EXIT_USAGE;
    }
    if (all || strcmp(what, "tasks") == 0) list_tasks();
    if (all || strcmp(what, "methods") == 0) list_methods();
    if (all || strcmp(what, "backbones") == 0) list_backbones();
    if (all || strcmp(what, "optimizers") == 0) list_optimizers();
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    eg_runtime_setup(argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("evograd %s\n", EVOGRAD_VERSION);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "list") == 0) return cmd_list(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "check") == 0) return cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "sweep") == 0) return cmd_sweep(argc - 2, argv + 2, argv[0]);
    if (strcmp(cmd, "table") == 0) return cmd_table(argc - 2, argv + 2);
    fprintf(stderr, "evograd: unknown command '%s' (try evograd --help)\n", cmd);
    return EXIT_USAGE;
}
