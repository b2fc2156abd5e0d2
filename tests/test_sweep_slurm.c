/* test_sweep_slurm.c - the job-array script of `evograd sweep --slurm` (runner/sweep_cmd.c),
 * run here as Slurm would run its array tasks (SLURM_* variables set, a stand-in scontrol that
 * records what it was asked): its header, a run carried through several jobs by its
 * --stop-after budget and by TERM to the same numbers as an uninterrupted run, a complete run
 * left alone, the requeue limit, and the options' errors. tests/slurm.sh submits such a script
 * to a real Slurm. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(sweep_slurm, .init = e2e_setup, .fini = e2e_teardown, .timeout = 300);

// 3 epochs of 4 steps of an MLP on synthetic data, a checkpoint every epoch.
static const char tiny[] = "name: tiny\nthreads: 1\n"
                           "data: {dataset: synthetic, image_c: 3, image_h: 8, image_w: 8, "
                           "classes: 4, synthetic_train: 200, synthetic_test: 64}\n"
                           "backbone: {name: mlp, hidden: [32]}\n"
                           "train: {epochs: 3, batch_size: 50}\n";

static bool exists(const char *rel)
{
    return access(e2e_path(rel), F_OK) == 0;
}

// A scontrol that appends its arguments to scontrol.txt.
static void fake_scontrol(void)
{
    if (!exists("fakebin")) e2e_mkdir("fakebin");
    e2e_write("fakebin/scontrol", "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/../scontrol.txt\"\n");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "chmod +x '%s'", e2e_path("fakebin/scontrol"));
    cr_assert(eq(int, system(cmd), 0));
}

// `evograd sweep tiny.yaml args... --slurm job.sh`, with the stand-in scontrol; its exit status.
static int make_script(const char *const *args)
{
    e2e_write("tiny.yaml", tiny);
    fake_scontrol();
    const char *a[32] = {"sweep", "tiny.yaml"};
    size_t n = 2;
    while (*args != NULL) a[n++] = *args++;
    a[n++] = "--slurm";
    a[n++] = "job.sh";
    a[n] = NULL;
    return e2e_run(a, NULL);
}

// Starts job.sh as Slurm starts array task `task` of job array 77 after `restarts` requeues.
static pid_t start_task(int task, int restarts)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char path[1024], v[32];
        snprintf(path, sizeof path, "%s/fakebin:%s", e2e_dir, getenv("PATH"));
        setenv("PATH", path, 1);
        setenv("SLURM_ARRAY_JOB_ID", "77", 1);
        snprintf(v, sizeof v, "%d", 100 + task);
        setenv("SLURM_JOB_ID", v, 1);
        snprintf(v, sizeof v, "%d", task);
        setenv("SLURM_ARRAY_TASK_ID", v, 1);
        snprintf(v, sizeof v, "%d", restarts);
        setenv("SLURM_RESTART_COUNT", v, 1);
        if (chdir(e2e_dir) != 0 || freopen("task.out", "a", stdout) == NULL ||
            dup2(fileno(stdout), STDERR_FILENO) < 0) {
            _exit(126);
        }
        execlp("bash", "bash", "job.sh", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_task(pid_t pid)
{
    int st = 0;
    cr_assert(eq(int, waitpid(pid, &st, 0), pid));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}


Test(sweep_slurm, the_script_is_an_sbatch_array_of_the_sweeps_runs)
{
    cr_assert(eq(int, make_script((const char *[]){"seed=1..3", "train.epochs=2", "--time", "1:00:00",
                                                  "--array-max", "2", "--signal-before", "90",
                                                  "--stop-after", "5", "--sbatch",
                                                  "--partition=cpu", NULL}),
                 0),
              "%s", e2e_read("stderr.txt"));
    char *s = e2e_read("job.sh");
    cr_assert(s != NULL && strncmp(s, "#!/bin/bash\n", 12) == 0);
    const char *want[] = {"#SBATCH --job-name=evograd-tiny\n", "#SBATCH --array=1-3%2\n",
                          "/results/tiny/slurm/%A_%a.out\n", "#SBATCH --open-mode=append\n",
                          "#SBATCH --requeue\n",             "#SBATCH --signal=B:TERM@90\n",
                          "#SBATCH --time=1:00:00\n",        "#SBATCH --partition=cpu\n",
                          "\n    dir=results/tiny/none-seed3\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(s, want[i]) != NULL, "no '%s' in\n%s", want[i], s);
    cr_assert(eq(sz, count(s, " --stop-after 5 --quiet)\n"), 3), "%s", s);
    const bool logs = exists("results/tiny/slurm");
    cr_assert(logs, "the output folder is made for Slurm");
    cr_assert(access(e2e_path("job.sh"), X_OK) == 0);
    // the id is the sweep's, whatever the Slurm options: the printed commands carry the same
    const char *a[] = {"sweep", "tiny.yaml", "seed=1..3", "train.epochs=2", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0));
    char *out = e2e_read("stdout.txt");
    const char *id = strstr(out, "--sweep ");
    cr_assert(id != NULL);
    char want_id[32];
    snprintf(want_id, sizeof want_id, "%.24s", id);
    cr_assert(eq(sz, count(s, want_id), 3), "%s not in\n%s", want_id, s);
    free(out);
    free(s);
    // every form sbatch --time takes, each just longer than the 90 s of --signal-before
    const char *limits[] = {"2", "1:31", "0:01:31", "1-0", "1-0:2", "0-0:1:31"};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        cr_assert(eq(int, make_script((const char *[]){"--time", limits[i], "--signal-before",
                                                      "90", NULL}),
                     0),
                  "--time %s: %s", limits[i], e2e_read("stderr.txt"));
    }
}

Test(sweep_slurm, a_stop_after_budget_carries_the_run_through_requeues_to_the_same_numbers)
{
    const char *full[] = {"run", "tiny.yaml", "seed=2", "--out", "full", "--quiet", NULL};
    cr_assert(eq(int, make_script((const char *[]){"seed=1..2", "--stop-after", "5", NULL}), 0),
              "%s", e2e_read("stderr.txt"));
    cr_assert(eq(int, e2e_run(full, NULL), 0), "%s", e2e_read("stderr.txt"));
    // 12 steps, 5 per job: jobs stop at steps 5 and 10 and requeue; the third finishes
    int restarts = 0;
    for (; restarts < 6 && !exists("results/tiny/none-seed2/DONE"); restarts++) {
        cr_assert(eq(int, wait_task(start_task(2, restarts)), 0), "%s", e2e_read("task.out"));
    }
    cr_assert(eq(int, restarts, 3), "%s", e2e_read("task.out"));
    char *calls = e2e_read("scontrol.txt");
    cr_assert(calls != NULL && strcmp(calls, "requeue 77_2\nrequeue 77_2\n") == 0, "%s", calls);
    char *log = e2e_read("task.out");
    cr_assert(eq(sz, count(log, "requeueing array task 2"), 2), "%s", log);
    char *a = e2e_metrics_without_clock("full"),
         *b = e2e_metrics_without_clock("results/tiny/none-seed2");
    cr_assert(strcmp(a, b) == 0, "uninterrupted:\n%s\nthrough 3 jobs:\n%s", a, b);
    char *runs = e2e_read("results/tiny/runs.csv");
    cr_assert(runs != NULL);
    cr_assert(eq(sz, csv_data_rows(runs), 1), "%s", runs);
    // a requeue or resubmission of a complete run does nothing
    cr_assert(eq(int, wait_task(start_task(2, restarts)), 0));
    free(log);
    log = e2e_read("task.out");
    cr_assert(strstr(log, "results/tiny/none-seed2 is complete (DONE); nothing to do") != NULL,
              "%s", log);
    free(calls);
    calls = e2e_read("scontrol.txt");
    cr_assert(eq(sz, count(calls, "requeue"), 2));
    free(runs);
    runs = e2e_read("results/tiny/runs.csv");
    cr_assert(eq(sz, csv_data_rows(runs), 1));
    free(runs);
    free(a);
    free(b);
    free(log);
    free(calls);
}

// 20000 steps of an MLP on synthetic data, about 2 s
static const char long_yaml[] = "name: long\nthreads: 1\n"
                                "data: {dataset: synthetic, image_c: 3, image_h: 8, image_w: 8, "
                                "classes: 4, synthetic_train: 1000, synthetic_test: 64}\n"
                                "backbone: {name: mlp, hidden: [64]}\n"
                                "train: {epochs: 200, batch_size: 10}\n";

// The script of a one-run sweep of long.yaml, and its array task 1 started.
static pid_t start_long_task(void)
{
    e2e_write("long.yaml", long_yaml);
    fake_scontrol();
    const char *a[] = {"sweep", "long.yaml", "seed=1", "--slurm", "job.sh", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0), "%s", e2e_read("stderr.txt"));
    return start_task(1, 0);
}

Test(sweep_slurm, term_before_the_time_limit_checkpoints_requeues_and_resumes_identically)
{
    pid_t pid = start_long_task();
    // TERM as Slurm's --signal=B:TERM sends it: to the script, once the run is training
    const struct timespec tick = {0, 2000000};
    while (!exists("results/long/none-seed1/metrics.csv") && waitpid(pid, NULL, WNOHANG) == 0)
        nanosleep(&tick, NULL);
    kill(pid, SIGTERM);
    cr_assert(eq(int, wait_task(pid), 0), "%s", e2e_read("task.out"));
    // (20000 steps, about 2 s: TERM comes within milliseconds of the first epoch's start)
    const bool finished = exists("results/long/none-seed1/DONE");
    cr_assert(finished == false, "TERM did not stop the run: %s", e2e_read("task.out"));
    char *log = e2e_read("task.out");
    cr_assert(strstr(log, "stopped by SIGTERM") != NULL && strstr(log, "exit status 143") != NULL,
              "%s", log);
    char *calls = e2e_read("scontrol.txt");
    cr_assert(calls != NULL && strcmp(calls, "requeue 77_1\n") == 0, "%s", calls);
    cr_assert(exists("results/long/none-seed1/checkpoint.bin"));
    // the requeued job resumes and finishes: the numbers of an uninterrupted run
    cr_assert(eq(int, wait_task(start_task(1, 1)), 0), "%s", e2e_read("task.out"));
    cr_assert(exists("results/long/none-seed1/DONE"));
    const char *full[] = {"run", "long.yaml", "--out", "full", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(full, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *x = e2e_metrics_without_clock("full"),
         *y = e2e_metrics_without_clock("results/long/none-seed1");
    cr_assert(strcmp(x, y) == 0, "uninterrupted:\n%s\nstopped by TERM and resumed:\n%s", x, y);
    free(x);
    free(y);
    free(log);
    free(calls);
}

Test(sweep_slurm, term_as_the_job_starts_requeues_it_for_a_fresh_start)
{
    // Slurm may signal up to a minute before --signal-before says, so possibly before the run
    // has its handler or a checkpoint: the task is requeued all the same and starts again
    pid_t pid = start_long_task();
    const struct timespec tick = {0, 1000000};
    for (;;) { // TERM as soon as the script says it starts the run
        char *log = e2e_read("task.out");
        const bool started = log != NULL && strstr(log, "evograd sweep: array task 1") != NULL;
        free(log);
        if (started || waitpid(pid, NULL, WNOHANG) != 0) break;
        nanosleep(&tick, NULL);
    }
    kill(pid, SIGTERM);
    cr_assert(eq(int, wait_task(pid), 0), "%s", e2e_read("task.out"));
    const bool finished = exists("results/long/none-seed1/DONE");
    cr_assert(finished == false, "TERM did not stop the run: %s", e2e_read("task.out"));
    char *calls = e2e_read("scontrol.txt");
    cr_assert(calls != NULL && strcmp(calls, "requeue 77_1\n") == 0, "%s", calls);
    cr_assert(eq(int, wait_task(start_task(1, 1)), 0), "%s", e2e_read("task.out"));
    cr_assert(exists("results/long/none-seed1/DONE"), "%s", e2e_read("task.out"));
    free(calls);
}

Test(sweep_slurm, the_requeue_limit_stops_a_run_that_keeps_stopping)
{
    cr_assert(eq(int, make_script((const char *[]){"--stop-after", "5", "--max-requeues", "1",
                                                  NULL}),
                 0));
    cr_assert(eq(int, wait_task(start_task(1, 0)), 0), "%s", e2e_read("task.out"));
    cr_assert(eq(int, wait_task(start_task(1, 1)), 1), "%s", e2e_read("task.out"));
    char *log = e2e_read("task.out");
    cr_assert(strstr(log, "after 1 requeues; not requeueing again (resubmit this script") != NULL,
              "%s", log);
    char *calls = e2e_read("scontrol.txt");
    cr_assert(calls != NULL && strcmp(calls, "requeue 77_1\n") == 0, "%s", calls);
    // a task number outside the array
    cr_assert(eq(int, wait_task(start_task(2, 0)), 2));
    free(log);
    log = e2e_read("task.out");
    cr_assert(strstr(log, "SLURM_ARRAY_TASK_ID is '2', not 1 to 1") != NULL, "%s", log);
    free(log);
    free(calls);
}

Test(sweep_slurm, slurm_options_are_checked)
{
    e2e_write("tiny.yaml", tiny);
    struct {
        const char *args[8];
        const char *message;
    } bad[] = {
        {{"--stop-after", "5"}, "give --slurm FILE too"},
        {{"--slurm", "job.sh", "-j", "2"}, "choose one"},
        {{"--slurm", "job.sh", "--time", "an hour"}, "--time 'an hour': a Slurm time limit"},
        {{"--slurm", "job.sh", "--time", "1-2-3"}, "--time '1-2-3': a Slurm time limit"},
        {{"--slurm", "job.sh", "--time", "1:2:3:4"}, "--time '1:2:3:4': a Slurm time limit"},
        {{"--slurm", "job.sh", "--time", "0"}, "--time '0': a Slurm time limit"},
        {{"--slurm", "job.sh", "--time", "2"}, "--signal-before 120 is not shorter than --time 2 "
                                                 "(120 s)"},
        {{"--slurm", "job.sh", "--time", "1:30", "--signal-before", "90"},
         "--signal-before 90 is not shorter than --time 1:30 (90 s)"},
        {{"--slurm", "job.sh", "--sbatch", "partition=cpu"}, "--sbatch takes one sbatch option"},
        {{"--slurm", "job.sh", "--stop-after", "0"}, "--stop-after needs a whole number from 1"},
        {{"--slurm", "job.sh", "--array-max", "x2"}, "--array-max needs a whole number from 1 to "
                                                     "100000 (not 'x2')"},
        {{"--slurm"}, "--slurm needs a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *a[16] = {"sweep", "tiny.yaml", "seed=1..2"};
        size_t n = 3;
        for (size_t k = 0; bad[i].args[k] != NULL; k++) a[n++] = bad[i].args[k];
        a[n] = NULL;
        cr_assert(eq(int, e2e_run(a, NULL), 2), "case %zu", i);
        char *err = e2e_read("stderr.txt");
        cr_assert(strstr(err, bad[i].message) != NULL, "case %zu: %s", i, err);
        free(err);
        const bool wrote = exists("job.sh");
        cr_assert(wrote == false, "case %zu wrote a script", i);
    }
}

// sweep parses options as run does: --help, --opt=VALUE (also for --sbatch's own option), and
// the sweep id is the same whichever form the options take.
Test(sweep_slurm, options_take_either_form_and_help_is_no_error)
{
    e2e_write("tiny.yaml", tiny);
    const char *help[] = {"sweep", "--help", NULL};
    cr_assert(eq(int, e2e_run(help, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *out = e2e_read("stdout.txt");
    cr_assert(strncmp(out, "usage: evograd sweep CONFIG.yaml", 32) == 0, "%s", out);
    free(out);
    const char *spaced[] = {"sweep",  "tiny.yaml", "seed=1..2", "--slurm",  "a.sh",
                            "--time", "10",        "--sbatch",  "--qos=low", NULL};
    const char *joined[] = {"sweep",     "--slurm=b.sh", "tiny.yaml", "--time=10",
                            "seed=1..2", "--sbatch=--qos=low", NULL};
    cr_assert(eq(int, e2e_run(spaced, NULL), 0), "%s", e2e_read("stderr.txt"));
    cr_assert(eq(int, e2e_run(joined, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *a = e2e_read("a.sh"), *b = e2e_read("b.sh");
    cr_assert(a != NULL && b != NULL);
    cr_assert(strstr(b, "#SBATCH --qos=low\n") != NULL && strstr(b, "#SBATCH --time=10\n") != NULL,
              "%s", b);
    const char *ida = strstr(a, "--sweep "), *idb = strstr(b, "--sweep ");
    cr_assert(ida != NULL && idb != NULL && strncmp(ida, idb, 24) == 0, "%.24s vs %.24s", ida, idb);
    free(a);
    free(b);
}
