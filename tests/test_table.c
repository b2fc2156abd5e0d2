/* test_table.c - `evograd table` (runner/table_cmd.c) end to end through the binary, on runs
 * tables written by hand in a fresh folder: groups by the varied config keys with n, mean and
 * sample std over the seeds, CSV in full precision, --x ordering, --where, a re-run counted once,
 * --curve over the runs' metrics.csv, --keys, and the errors (1 bad input, 2 usage). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

TestSuite(table, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

// A runs table's shape in short: some figure columns, dir, sweep, then config columns.
#define HEADER                                                                                     \
    "name,task,method,seed,final_test_acc,angle_deg,dir,sweep,method.name,method.sigma,"           \
    "data.root\n"

// Two sigmas of evograd, two seeds each (accuracies 0.5 and 0.7, 0.2 and 0.4), rows interleaved.
static const char two_sigmas[] =
    HEADER "r,rotation,evograd,1,0.5,10,results/r/a1,s,evograd,0.001,\n"
           "r,rotation,evograd,1,0.2,20,results/r/b1,s,evograd,0.01,\n"
           "r,rotation,evograd,2,0.7,14,results/r/a2,s,evograd,0.001,\n"
           "r,rotation,evograd,2,0.4,,results/r/b2,s,evograd,0.01,\n";

// Runs `evograd table args...` (NULL-terminated) in the test folder; returns the exit status,
// standard output in *out and standard error in *err (both caller-freed; may be NULL).
static int table(const char *const *args, char **out, char **err)
{
    const char *a[32] = {"table"};
    size_t n = 1;
    while (*args != NULL)
        a[n++] = *args++;
    a[n] = NULL;
    const int status = e2e_run(a, NULL);
    *out = e2e_read("stdout.txt");
    *err = e2e_read("stderr.txt");
    return status;
}

// The number in cell (r, c) of CSV text (RFC 4180); NaN for "nan".
static double at(const char *text, size_t r, size_t c)
{
    char *s = csv_text_cell(text, r, c);
    cr_assert(s != NULL, "no cell (%zu, %zu) in:\n%s", r, c, text);
    const double v = strtod(s, NULL);
    free(s);
    return v;
}

// Asserts that cell (r, c) of CSV text is the string want.
static void cell_is(const char *text, size_t r, size_t c, const char *want)
{
    char *s = csv_text_cell(text, r, c);
    cr_assert(s != NULL && strcmp(s, want) == 0, "cell (%zu, %zu) is '%s', want '%s' in:\n%s", r, c,
              s, want, text);
    free(s);
}

// The Markdown table of final_test_acc of the runs table text (`evograd table runs.csv --metric
// final_test_acc`, which must succeed), as a new string (caller frees).
static char *accuracy_table(const char *runs)
{
    e2e_write("runs.csv", runs);
    char *out, *err;
    cr_assert(
        eq(int, table((const char *[]){"runs.csv", "--metric", "final_test_acc", NULL}, &out, &err),
           0),
        "%s", err);
    free(err);
    return out;
}

Test(table, markdown_groups_by_the_varied_key_with_n_mean_and_seed_std)
{
    char *out = accuracy_table(two_sigmas);
    // std of {0.5, 0.7} and of {0.2, 0.4}: sqrt(0.02) = 0.141421...
    const char *want = "| method.sigma | n | final_test_acc |\n"
                       "|---|---|---|\n"
                       "| 0.001 | 2 | 0.6 ± 0.141 |\n"
                       "| 0.01 | 2 | 0.3 ± 0.141 |\n";
    cr_assert(strcmp(out, want) == 0, "%s", out);
    free(out);
}

// One value written two ways (3e+01 by a version that wrote numbers as the shortest %g, 30 by
// one that writes them plainly) is one value: one group, not two.
Test(table, one_value_in_two_notations_is_one_group)
{
    char *out = accuracy_table(HEADER "r,rotation,evograd,1,0.5,10,results/r/a1,s,evograd,1e-03,\n"
                                      "r,rotation,evograd,2,0.7,14,results/r/a2,s,evograd,0.001,\n"
                                      "r,rotation,evograd,1,0.2,20,results/r/b1,s,evograd,0.01,\n");
    const char *want = "| method.sigma | n | final_test_acc |\n"
                       "|---|---|---|\n"
                       "| 1e-03 | 2 | 0.6 ± 0.141 |\n"
                       "| 0.01 | 1 | 0.2 |\n";
    cr_assert(strcmp(out, want) == 0, "%s", out);
    free(out);
    // and with no other value, the key does not vary
    out = accuracy_table(HEADER "r,rotation,evograd,1,0.5,10,results/r/a1,s,evograd,1e-03,\n"
                                "r,rotation,evograd,2,0.7,14,results/r/a2,s,evograd,0.001,\n");
    cr_assert(strstr(out, "no config key varies") != NULL, "%s", out);
    free(out);
}

Test(table, csv_has_the_label_keys_n_and_full_precision_mean_and_std)
{
    e2e_write("runs.csv", two_sigmas);
    char *out, *err;
    cr_assert(eq(int,
                 table((const char *[]){"runs.csv", "--format", "csv", "--metric", "final_test_acc",
                                        "--metric", "angle_deg", NULL},
                       &out, &err),
                 0),
              "%s", err);
    cr_assert(eq(sz, csv_text_records(out), 3), "%s", out);
    const char *head[] = {
        "group",          "method.sigma", "n", "final_test_acc_mean", "final_test_acc_std",
        "angle_deg_mean", "angle_deg_std"};
    for (size_t c = 0; c < 7; c++)
        cell_is(out, 0, c, head[c]);
    cell_is(out, 1, 0, "evograd sigma=0.001");
    cell_is(out, 2, 1, "0.01");
    cr_assert(eq(dbl, at(out, 1, 2), 2.0));
    cr_assert(epsilon_eq(dbl, at(out, 1, 3), 0.6, 1e-14));
    cr_assert(epsilon_eq(dbl, at(out, 1, 4), sqrt(0.02), 1e-14));
    cr_assert(epsilon_eq(dbl, at(out, 1, 5), 12.0, 1e-14));
    cr_assert(epsilon_eq(dbl, at(out, 1, 6), sqrt(8.0), 1e-14));
    // the second group's angle has one value: its mean, and no std
    cr_assert(epsilon_eq(dbl, at(out, 2, 3), 0.3, 1e-14));
    cr_assert(eq(dbl, at(out, 2, 5), 20.0));
    cell_is(out, 2, 6, "nan");
    free(out);
    free(err);
}

Test(table, x_orders_rows_by_number_within_groups_in_order_of_appearance)
{
    e2e_write("runs.csv", HEADER "r,rotation,none,1,0.1,,d1,s,none,0.01,\n"
                                 "r,rotation,evograd,1,0.2,,d2,s,evograd,0.01,\n"
                                 "r,rotation,none,1,0.3,,d3,s,none,1e-4,\n"
                                 "r,rotation,evograd,1,0.4,,d4,s,evograd,0.001,\n"
                                 "r,rotation,evograd,2,0.6,,d5,s,evograd,1e-3,\n"
                                 "r,rotation,evograd,1,0.5,,d6,s,evograd,0.0001,\n");
    char *out, *err;
    cr_assert(eq(int,
                 table((const char *[]){"runs.csv", "--format", "csv", "--x", "method.sigma",
                                        "--metric", "final_test_acc", NULL},
                       &out, &err),
                 0),
              "%s", err);
    // none first (it appears first), x ascending; 0.001 and 1e-3 are one point
    cell_is(out, 0, 0, "group");
    cell_is(out, 0, 1, "method.name");
    cell_is(out, 0, 2, "method.sigma");
    cr_assert(eq(sz, csv_text_records(out), 6), "%s", out);
    const char *group[] = {"none", "none", "evograd", "evograd", "evograd"};
    const double x[] = {1e-4, 0.01, 1e-4, 1e-3, 0.01}, n[] = {1, 1, 1, 2, 1};
    const double mean[] = {0.3, 0.1, 0.5, 0.5, 0.2};
    for (size_t r = 0; r < 5; r++) {
        cell_is(out, r + 1, 0, group[r]);
        cr_assert(eq(dbl, at(out, r + 1, 2), x[r]), "row %zu", r + 1);
        cr_assert(eq(dbl, at(out, r + 1, 3), n[r]), "row %zu", r + 1);
        cr_assert(epsilon_eq(dbl, at(out, r + 1, 4), mean[r], 1e-14), "row %zu", r + 1);
    }
    free(out);
    free(err);
    // a key that does not vary is still the x column (one group, the method's)
    e2e_write("runs.csv", two_sigmas);
    cr_assert(eq(int,
                 table((const char *[]){"runs.csv", "--format", "csv", "--x", "method.name",
                                        "--metric", "final_test_acc", NULL},
                       &out, &err),
                 1));
    cr_assert(strstr(err, "--x method.name: 'evograd' (data row 1) is not a number") != NULL, "%s",
              err);
    free(out);
    free(err);
    cr_assert(eq(int,
                 table((const char *[]){"runs.csv", "--format", "csv", "--x", "seed", "--metric",
                                        "final_test_acc", NULL},
                       &out, &err),
                 0));
    cr_assert(eq(sz, csv_text_records(out), 5), "%s", out);
    cell_is(out, 0, 1, "method.sigma");
    cell_is(out, 0, 2, "seed");
    cr_assert(eq(dbl, at(out, 1, 1), 0.001));
    cr_assert(eq(dbl, at(out, 1, 2), 1.0));
    cr_assert(eq(dbl, at(out, 2, 2), 2.0));
    cr_assert(eq(dbl, at(out, 2, 4), 0.7));
    free(out);
    free(err);
}

Test(table, a_rerun_counts_once_with_its_last_row_and_where_keeps_matching_rows)
{
    e2e_mkdir("results");
    e2e_mkdir("results/r");
    e2e_write("results/r/runs.csv",
              HEADER "r,rotation,evograd,1,0.5,,results/r/a1,s,evograd,0.001,\n"
                     "r,mwn,evograd,1,0.9,,results/r/m1,s,evograd,0.001,\n"
                     "r,rotation,evograd,2,0.7,,results/r/a2,s,evograd,0.001,\n"
                     "r,rotation,evograd,1,0.1,,results/r/a1,s,evograd,0.001,\n"
                     "r,rotation,evograd,1,0.3,,results/r/b1,s,evograd,0.01,\n");
    char *out, *err;
    // the folder stands for its runs.csv; 1e-3 matches 0.001
    cr_assert(eq(int,
                 table((const char *[]){"results/r/", "--where", "task=rotation", "--where",
                                        "method.sigma=1e-3", "--format", "csv", "--metric",
                                        "final_test_acc", NULL},
                       &out, &err),
                 0),
              "%s", err);
    cr_assert(eq(sz, csv_text_records(out), 2), "%s", out);
    cell_is(out, 0, 1, "n");
    cr_assert(eq(dbl, at(out, 1, 1), 2.0), "a1 once (its re-run), and a2");
    cr_assert(epsilon_eq(dbl, at(out, 1, 2), 0.4, 1e-14), "(0.1 + 0.7) / 2: a1's last row");
    free(out);
    free(err);
    // nothing matches: an error naming the condition
    cr_assert(
        eq(int, table((const char *[]){"results/r", "--where", "task=lft", NULL}, &out, &err), 1));
    cr_assert(strstr(err, "results/r/runs.csv: no row has task=lft") != NULL, "%s", err);
    free(out);
    free(err);
}

// Run folder rel with a metrics.csv of text.
static void run_folder(const char *rel, const char *metrics)
{
    char p[256];
    e2e_mkdir(rel);
    snprintf(p, sizeof p, "%s/metrics.csv", rel);
    e2e_write(p, metrics);
}

Test(table, curve_aggregates_a_metrics_column_per_epoch_over_each_groups_runs)
{
    e2e_mkdir("results");
    e2e_mkdir("results/r");
    e2e_write("results/r/runs.csv",
              HEADER "r,rotation,evograd,1,0.5,,results/r/a1,s,evograd,0.001,\n"
                     "r,rotation,evograd,2,0.7,,results/r/a2,s,evograd,0.001,\n"
                     "r,rotation,none,1,0.3,,old/place/results/r/b1,s,none,0.001,\n");
    run_folder("results/r/a1", "epoch,angle_deg\n1,2\n2,4\n3,6\n");
    // a2: an empty cell, a nan, and epoch 2 logged twice (a resumed run: its later row counts)
    run_folder("results/r/a2", "epoch,angle_deg\n1,\n2,99\n2,8\n3,nan\n");
    // b1's dir was written elsewhere: it is found beside runs.csv
    run_folder("results/r/b1", "epoch,angle_deg\n1,1.5\n");
    char *out, *err;
    cr_assert(
        eq(int, table((const char *[]){"results/r", "--curve", "angle_deg", NULL}, &out, &err), 0),
        "%s", err);
    const char *want = "group,epoch,mean,std,n\n"
                       "evograd,1,2,nan,1\n"
                       "evograd,2,6,2.82842712474619,2\n"
                       "evograd,3,6,nan,1\n"
                       "none,1,1.5,nan,1\n";
    cr_assert(strcmp(out, want) == 0, "%s", out);
    free(out);
    free(err);
    // another file and x column
    e2e_write("results/r/a1/weight_curve.csv", "loss,weight\n0,1\n5,0.5\n");
    e2e_write("results/r/a2/weight_curve.csv", "loss,weight\n0,0.5\n5,0.25\n");
    cr_assert(eq(int,
                 table((const char *[]){"results/r", "--where", "method.name=evograd", "--curve",
                                        "weight", "--curve-file", "weight_curve.csv", "--curve-x",
                                        "loss", NULL},
                       &out, &err),
                 0),
              "%s", err);
    cr_assert(strcmp(out, "group,loss,mean,std,n\nevograd,0,0.75,0.353553390593274,2\n"
                          "evograd,5,0.375,0.176776695296637,2\n") == 0,
              "%s", out);
    free(out);
    free(err);
    // no run matches: only the header
    cr_assert(eq(int, table((const char *[]){"results/r", "--where", "method.name=unrolled",
                                             "--curve", "angle_deg", NULL},
                            &out, &err),
                 0));
    cr_assert(strcmp(out, "group,epoch,mean,std,n\n") == 0, "%s", out);
    free(out);
    free(err);
    // a missing file is named; so is a missing column
    cr_assert(eq(int,
                 table((const char *[]){"results/r", "--curve", "weight", "--curve-file",
                                        "weight_curve.csv", "--curve-x", "loss", NULL},
                       &out, &err),
                 1));
    cr_assert(strstr(err, "error: old/place/results/r/b1/weight_curve.csv: no such file") != NULL,
              "%s", err);
    free(out);
    free(err);
    cr_assert(
        eq(int, table((const char *[]){"results/r", "--curve", "test_acc", NULL}, &out, &err), 1));
    cr_assert(strstr(err, "error: results/r/a1/metrics.csv has no column 'test_acc'") != NULL, "%s",
              err);
    free(out);
    free(err);
}

Test(table, keys_lists_the_varied_keys_all_or_numeric)
{
    e2e_write("runs.csv", HEADER "r,rotation,none,1,0.1,,d1,s,none,0.01,a\n"
                                 "r,rotation,evograd,1,0.2,,d2,s,evograd,0.001,b\n");
    char *out, *err;
    cr_assert(eq(int, table((const char *[]){"runs.csv", "--keys", "all", NULL}, &out, &err), 0));
    cr_assert(strcmp(out, "method.name\nmethod.sigma\ndata.root\n") == 0, "%s", out);
    free(out);
    free(err);
    cr_assert(
        eq(int, table((const char *[]){"runs.csv", "--keys", "numeric", NULL}, &out, &err), 0));
    cr_assert(strcmp(out, "method.sigma\n") == 0, "%s", out);
    free(out);
    free(err);
    // no matching row: nothing to list
    cr_assert(eq(int,
                 table((const char *[]){"runs.csv", "--where", "task=mwn", "--keys", "all", NULL},
                       &out, &err),
                 0));
    cr_assert(out == NULL || out[0] == '\0', "%s", out);
    free(out);
    free(err);
}

// The exit status and a piece of the message of `evograd table args...`.
static void fails(const char *const *args, int status, const char *want)
{
    char *out, *err;
    cr_assert(eq(int, table(args, &out, &err), status), "%s", err);
    cr_assert(err != NULL && strstr(err, want) != NULL, "want '%s' in: %s", want, err);
    free(out);
    free(err);
}

Test(table, bad_input_and_usage_errors)
{
    e2e_write("runs.csv", two_sigmas);
    fails((const char *[]){"runs.csv", "--metric", "accuracy", NULL}, 1,
          "error: runs.csv has no column 'accuracy'");
    fails((const char *[]){"runs.csv", "--where", "method.sgma=1", NULL}, 1,
          "error: runs.csv has no column 'method.sgma' (--where method.sgma=1)");
    fails((const char *[]){"runs.csv", "--x", "method.sgma", NULL}, 1,
          "error: runs.csv has no column 'method.sgma' (--x)");
    fails((const char *[]){"nowhere.csv", NULL}, 1, "error: nowhere.csv: No such file");
    e2e_mkdir("empty");
    fails((const char *[]){"empty", NULL}, 1, "error: empty/runs.csv: No such file");
    fails((const char *[]){NULL}, 2, "no RUNS.csv or FOLDER given");
    fails((const char *[]){"runs.csv", "--format", "xml", NULL}, 2,
          "--format is md or csv, not xml");
    fails((const char *[]){"runs.csv", "--where", "task", NULL}, 2, "--where needs KEY=VALUE");
    fails((const char *[]){"runs.csv", "--bogus", "1", NULL}, 2, "unknown option --bogus");
    fails((const char *[]){"runs.csv", "--metric", NULL}, 2, "a value is missing after --metric");
    fails((const char *[]){"runs.csv", "other.csv", NULL}, 2, "a second SOURCE: other.csv");
    fails((const char *[]){"runs.csv", "--curve", "test_acc", "--x", "method.sigma", NULL}, 2,
          "--curve writes CSV of one column");
    fails((const char *[]){"runs.csv", "--curve-x", "step", NULL}, 2,
          "--curve-file and --curve-x need --curve");
    fails((const char *[]){"runs.csv", "--keys", "some", NULL}, 2, "--keys is all or numeric");
}

// Options as GNU programs take them: --opt=VALUE is --opt VALUE, options may come before SOURCE,
// -- ends them, and --help is no error.
Test(table, options_take_either_form_and_help_is_no_error)
{
    e2e_write("runs.csv", two_sigmas);
    char *out, *err, *out2, *err2;
    cr_assert(eq(int,
                 table((const char *[]){"runs.csv", "--format", "csv", "--where",
                                        "method.sigma=0.01", NULL},
                       &out, &err),
                 0),
              "%s", err);
    cr_assert(eq(int,
                 table((const char *[]){"--where=method.sigma=0.01", "--format=csv", "--",
                                        "runs.csv", NULL},
                       &out2, &err2),
                 0),
              "%s", err2);
    cr_assert(strcmp(out, out2) == 0, "%s\nvs\n%s", out, out2);
    cr_assert(eq(sz, csv_text_records(out), 2), "%s", out);
    free(out);
    free(err);
    free(out2);
    free(err2);
    cr_assert(eq(int, table((const char *[]){"--help", NULL}, &out, &err), 0), "%s", err);
    cr_assert(strncmp(out, "usage: evograd table ", 21) == 0, "%s", out);
    free(out);
    free(err);
}
