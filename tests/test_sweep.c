/* test_sweep.c - `evograd sweep` (runner/sweep_cmd.c) end to end through the binary: the grid's
 * expansion and order, the axis forms, list keys kept whole, labels and folders, errors before
 * anything runs, and -j running a grid to completion with one runs table. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

TestSuite(sweep, .init = e2e_setup, .fini = e2e_teardown, .timeout = 300);

// A toy1d config: the whole run takes milliseconds.
static const char toy[] = "name: toy\nseed: 1\ntask: toy1d\n"
                          "method: {name: evograd, candidates: 2, sigma: 0.5, temperature: 0.5}\n"
                          "toy1d: {trials: 5, grid_points: 3, steps: 2}\n";

// Line i (0-based) of text, as a new string (caller frees); NULL past the end.
static char *line_of(const char *text, size_t i)
{
    const char *p = text;
    for (size_t k = 0; k < i; k++) {
        p = strchr(p, '\n');
        if (p == NULL) return NULL;
        p++;
    }
    if (*p == '\0') return NULL;
    const char *e = strchr(p, '\n');
    size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0'; p++) n += *p == '\n';
    return n;
}

// Runs `evograd sweep toy.yaml args...` (NULL-terminated) and returns its exit status; stdout
// in stdout.txt.
static int sweep(const char *const *args)
{
    e2e_write("toy.yaml", toy);
    const char *a[32] = {"sweep", "toy.yaml"};
    size_t n = 2;
    while (*args != NULL) a[n++] = *args++;
    a[n] = NULL;
    return e2e_run(a, NULL);
}

Test(sweep, prints_the_grid_last_axis_fastest_with_labelled_folders)
{
    cr_assert(eq(int, sweep((const char *[]){"method.sigma=0.1,0.5", "seed=1..3", "toy1d.steps=3",
                                            NULL}),
                 0));
    char *out = e2e_read("stdout.txt");
    cr_assert(out != NULL);
    cr_assert(eq(sz, count_lines(out), 6), "%s", out);
    const char *want[6][2] = {{"method.sigma=0.1 seed=1", "evograd-sigma0.1-seed1"},
                              {"method.sigma=0.1 seed=2", "evograd-sigma0.1-seed2"},
                              {"method.sigma=0.1 seed=3", "evograd-sigma0.1-seed3"},
                              {"method.sigma=0.5 seed=1", "evograd-sigma0.5-seed1"},
                              {"method.sigma=0.5 seed=2", "evograd-sigma0.5-seed2"},
                              {"method.sigma=0.5 seed=3", "evograd-sigma0.5-seed3"}};
    for (size_t i = 0; i < 6; i++) {
        char *l = line_of(out, i);
        char folder[128];
        snprintf(folder, sizeof folder, "--out results/toy/%s --runs results/toy/runs.csv",
                 want[i][1]);
        cr_assert(strstr(l, " run toy.yaml toy1d.steps=3 ") != NULL, "fixed first: %s", l);
        cr_assert(strstr(l, want[i][0]) != NULL, "line %zu: %s", i, l);
        cr_assert(strstr(l, folder) != NULL, "line %zu: %s", i, l);
        free(l);
    }
    free(out);
}

Test(sweep, ranges_and_log_ranges_expand_and_list_keys_stay_whole)
{
    cr_assert(eq(int, sweep((const char *[]){"toy1d.lr=0.1:0.3:3", "method.sigma=log(1e-4,1e-2,3)",
                                            NULL}),
                 0));
    char *out = e2e_read("stdout.txt");
    cr_assert(eq(sz, count_lines(out), 9), "%s", out);
    char *l = line_of(out, 4);
    cr_assert(strstr(l, "toy1d.lr=0.2 method.sigma=0.001 ") != NULL, "%s", l);
    cr_assert(strstr(l, "results/toy/evograd-lr0.2-sigma0.001-seed1") != NULL, "%s", l);
    free(l);
    l = line_of(out, 8);
    cr_assert(strstr(l, "toy1d.lr=0.3 method.sigma=0.01 ") != NULL, "%s", l);
    free(l);
    free(out);
    // a list key's commas are its items: one run
    e2e_write("lft.yaml", "name: l\ntask: lft\nbackbone: {name: resnet10}\n");
    const char *list[] = {"sweep", "lft.yaml", "lft.domains=fmnist-plain,fmnist-edges,fmnist-blurred",
                          "lft.unseen=fmnist-edges", NULL};
    cr_assert(eq(int, e2e_run(list, NULL), 0), "%s", e2e_read("stderr.txt"));
    out = e2e_read("stdout.txt");
    cr_assert(eq(sz, count_lines(out), 1), "%s", out);
    cr_assert(strstr(out, "lft.domains=fmnist-plain,fmnist-edges,fmnist-blurred") != NULL, "%s",
              out);
    free(out);
}

Test(sweep, a_clash_of_last_names_uses_the_whole_key)
{
    cr_assert(eq(int, sweep((const char *[]){"toy1d.lr=0.1,0.2", "meta.optimizer.lr=1,2", NULL}),
                 0));
    char *out = e2e_read("stdout.txt");
    char *l = line_of(out, 1);
    cr_assert(strstr(l, "evograd-toy1d-lr0.1-meta-optimizer-lr2-seed1") != NULL, "%s", l);
    free(l);
    free(out);
}

// Exit status 1 or 2, the message, and nothing run or printed.
static void refused(const char *const *args, int status, const char *want)
{
    cr_assert(eq(int, sweep(args), status));
    char *err = e2e_read("stderr.txt"), *out = e2e_read("stdout.txt");
    cr_assert(strstr(err, want) != NULL, "want '%s' in: %s", want, err);
    cr_assert(out == NULL || out[0] == '\0', "printed: %s", out);
    cr_assert(e2e_read("results/toy/runs.csv") == NULL);
    free(err);
    free(out);
}

Test(sweep, bad_grids_are_errors_before_anything_runs)
{
    refused((const char *[]){"method.sigma=0.5,-1", "-j", "2", NULL}, 1,
            "error: sweep run 2 (method.sigma=-1): override 'method.sigma=-1': method.sigma: "
            "expected a number > 0, got '-1'");
    refused((const char *[]){"seed=3..1", NULL}, 2, "seed=3..1: i..j needs i <= j");
    refused((const char *[]){"method.sigma=log(0,1,3)", NULL}, 2,
            "log(lo,hi,n) needs lo, hi > 0 and n >= 2");
    refused((const char *[]){"toy1d.lr=0.1:0.2:1", NULL}, 2, "lo:hi:n needs finite lo, hi and n >= 2");
    refused((const char *[]){"method.sigma=0.1,,0.2", NULL}, 2, "an empty value in the list");
    refused((const char *[]){"methd.sigma=1,2", NULL}, 1, "methd: unknown key");
    refused((const char *[]){"-j", "0", NULL}, 2, "-j needs a whole number from 1 to 1024");
}

Test(sweep, j_runs_the_grid_into_its_folders_and_one_runs_table)
{
    cr_assert(eq(int, sweep((const char *[]){"method.candidates=2,3", "seed=1..2", "-j", "2", NULL}),
                 0),
              "%s", e2e_read("stderr.txt"));
    const char *dirs[] = {"evograd-candidates2-seed1", "evograd-candidates2-seed2",
                          "evograd-candidates3-seed1", "evograd-candidates3-seed2"};
    for (size_t i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof p, "results/toy/%s/DONE", dirs[i]);
        char *done = e2e_read(p);
        cr_assert(done != NULL, "%s missing", p);
        free(done);
    }
    char *runs = e2e_read("results/toy/runs.csv");
    cr_assert(runs != NULL);
    cr_assert(eq(sz, csv_data_rows(runs), 4), "%s", runs);
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "sweep: 4 runs, 4 done, 0 failed") != NULL, "%s", err);
    free(err);
    free(runs);
    // a second time: every folder holds a complete run, so every run refuses (exit 1) and the
    // sweep reports them and fails
    cr_assert(eq(int, sweep((const char *[]){"method.candidates=2,3", "seed=1..2", "-j", "2", NULL}),
                 3));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "sweep: 4 runs, 0 done, 4 failed") != NULL, "%s", err);
    free(err);
}

// Cell (r, c) of a CSV text as a number (RFC 4180: quoted cells with commas count as one).
static double num_at(const char *text, size_t r, size_t c)
{
    char *cell = csv_text_cell(text, r, c);
    cr_assert(cell != NULL);
    double v = strtod(cell, NULL);
    free(cell);
    return v;
}

// Column index of name in a CSV text's header; fails when absent.
static size_t column_of(const char *text, const char *name)
{
    for (size_t c = 0;; c++) {
        char *h = csv_text_cell(text, 0, c);
        cr_assert(h != NULL, "no column %s", name);
        const bool found = strcmp(h, name) == 0;
        free(h);
        if (found) return c;
    }
}

Test(sweep, every_row_records_the_sweep_and_every_config_key)
{
    cr_assert(eq(int, sweep((const char *[]){"method.sigma=0.1,0.5", "toy1d.steps=3", "-j", "2",
                                            NULL}),
                 0));
    char *runs = e2e_read("results/toy/runs.csv");
    cr_assert(runs != NULL && csv_data_rows(runs) == 2, "%s", runs);
    const size_t sw = column_of(runs, "sweep"), sg = column_of(runs, "method.sigma");
    const size_t st = column_of(runs, "toy1d.steps"), dr = column_of(runs, "data.root");
    cr_assert(eq(sz, sw, 24), "after the figures and dir");
    char *id1 = csv_text_cell(runs, 1, sw), *id2 = csv_text_cell(runs, 2, sw);
    cr_assert(strlen(id1) == 16 && strcmp(id1, id2) == 0, "%s %s", id1, id2);
    double s1 = num_at(runs, 1, sg), s2 = num_at(runs, 2, sg);
    const bool both = (s1 == 0.1 && s2 == 0.5) || (s1 == 0.5 && s2 == 0.1);
    cr_assert(both, "%g %g", s1, s2);
    cr_assert(eq(dbl, num_at(runs, 1, st), 3.0));
    char *root = csv_text_cell(runs, 1, dr);
    cr_assert(root != NULL && root[0] == '\0', "an empty string is an empty cell: '%s'", root);
    // the printed lines carry the same id
    cr_assert(eq(int, sweep((const char *[]){"method.sigma=0.1,0.5", "toy1d.steps=3", NULL}), 0));
    char *out = e2e_read("stdout.txt"), want[40];
    snprintf(want, sizeof want, "--sweep %s\n", id1);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    free(out);
    free(root);
    free(id1);
    free(id2);
    free(runs);
    // a plain run has an empty sweep cell; a bad id is a usage error
    e2e_write("toy.yaml", toy);
    const char *a[] = {"run", "toy.yaml", "--out", "plain", "--quiet", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0));
    char *sum = e2e_read("plain/summary.csv");
    char *cell = csv_text_cell(sum, 1, column_of(sum, "sweep"));
    cr_assert(cell != NULL && cell[0] == '\0');
    free(cell);
    free(sum);
    const char *b[] = {"run", "toy.yaml", "--out", "bad", "--sweep", "a,b", NULL};
    cr_assert(eq(int, e2e_run(b, NULL), 2));
}

// A runs table with other columns (an earlier evograd's) is refused before the run starts, with
// the way on; nothing is trained or written.
Test(sweep, a_runs_table_of_other_columns_is_refused_before_the_run)
{
    e2e_write("toy.yaml", toy);
    e2e_write("runs.csv", "name,task,dataset,backbone,method,dir\nold,toy1d,none,none,none,x\n");
    const char *a[] = {"run", "toy.yaml", "--out", "r", "--runs", "runs.csv", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 1));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "runs.csv: its columns are not this run's") != NULL, "%s", err);
    cr_assert(strstr(err, "mv runs.csv runs.csv.old") != NULL, "%s", err);
    free(err);
    char *m = e2e_read("r/config.yaml");
    cr_assert(m == NULL, "nothing written");
    char *runs = e2e_read("runs.csv");
    cr_assert(eq(sz, csv_data_rows(runs), 1));
    free(runs);
}

// ---------------------------------------------------------------------------------------------
// evograd table

Test(sweep, table_groups_by_the_varied_keys_with_mean_and_std_over_seeds)
{
    // a runs table as the runs write it, reduced: figures, dir, sweep, config keys; a quoted
    // cell with a comma (a list key) in the middle
    e2e_write("t.csv", "name,seed,final_test_acc,dir,sweep,method.sigma,lft.domains,threads\n"
                       "a,1,0.5,d1,s,0.1,\"[x, y]\",1\n"
                       "a,2,0.7,d2,s,0.1,\"[x, y]\",1\n"
                       "a,1,0.2,d3,s,0.5,\"[x, y]\",1\n"
                       "a,2,,d4,s,0.5,\"[x, y]\",1\n");
    const char *a[] = {"table", "t.csv", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0), "%s", e2e_read("stderr.txt"));
    char *out = e2e_read("stdout.txt");
    const char *want = "| method.sigma | n | final_test_acc |\n"
                       "|---|---|---|\n"
                       "| 0.1 | 2 | 0.6 ± 0.141 |\n"
                       "| 0.5 | 2 | 0.2 |\n";
    cr_assert(strcmp(out, want) == 0, "got:\n%s\nwant:\n%s", out, want);
    free(out);
    // an older table (no config columns) and a missing metric are errors naming them
    e2e_write("old.csv", "name,seed,final_test_acc,dir\na,1,0.5,d\n");
    const char *b[] = {"table", "old.csv", NULL};
    cr_assert(eq(int, e2e_run(b, NULL), 1));
    char *err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "old.csv has no config columns") != NULL, "%s", err);
    free(err);
    const char *c[] = {"table", "t.csv", "--metric", "accuracy", NULL};
    cr_assert(eq(int, e2e_run(c, NULL), 1));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "t.csv has no column 'accuracy'") != NULL, "%s", err);
    free(err);
    e2e_write("bad.csv", "name,sweep,x\na,s\n");
    const char *d[] = {"table", "bad.csv", NULL};
    cr_assert(eq(int, e2e_run(d, NULL), 1));
    err = e2e_read("stderr.txt");
    cr_assert(strstr(err, "bad.csv: record 2 has 2 cells, the header 3") != NULL, "%s", err);
    free(err);
}

Test(sweep, table_of_a_real_sweep_has_one_row_per_varied_value)
{
    cr_assert(eq(int, sweep((const char *[]){"method.candidates=2,3", "seed=1..3", "-j", "2", NULL}),
                 0));
    const char *a[] = {"table", "results/toy/runs.csv", "--metric", "wall_s", NULL};
    cr_assert(eq(int, e2e_run(a, NULL), 0));
    char *out = e2e_read("stdout.txt");
    cr_assert(strncmp(out, "| method.candidates | n | wall_s |\n", 35) == 0, "%s", out);
    cr_assert(strstr(out, "\n| 2 | 3 | ") != NULL && strstr(out, "\n| 3 | 3 | ") != NULL, "%s", out);
    free(out);
}
