/* table_cmd.c - `evograd table RUNS.csv [--metric COLUMN ...]`: a runs table (summary rows with
 * their config columns, results/README.md) as a Markdown table grouped by every config key that
 * varies across the rows. The seed is never a group key: each group's figures are mean ± sample
 * standard deviation over its rows (its seeds), with n shown. Metrics: the given columns, or every
 * figure column (final_test_acc ... peak_rss_mb) with a number in some row. */
#include "commands.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define TABLE_MAX_METRICS 32

// The figure columns a table shows by default, in this order, when they hold numbers.
static const char *const default_metrics[] = {
    "final_test_acc", "test_acc_ci95", "best_test_acc", "angle_deg",   "test_acc_back",
    "diag_cosine_mean", "final_train_loss", "sec_per_step", "wall_s",  "peak_rss_mb",
};

struct csv_table {
    size_t ncols, nrows;
    char **cells; // (nrows + 1) x ncols, row 0 the header
};

static const char *cell(const struct csv_table *t, size_t r, size_t c)
{
    return t->cells[r * t->ncols + c];
}

// Reads an RFC 4180 file (quoted cells may hold commas, quotes as "" and newlines). False with
// the message printed when it cannot be read or a record's cell count differs from the header's.
static bool read_table(const char *path, struct csv_table *t)
{
    *t = (struct csv_table){0};
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return false;
    }
    size_t cap = 0, n = 0, rec_cells = 0, records = 0, len = 0, bcap = 64;
    char *buf = eg_xmalloc(bcap);
    bool quoted = false, ok = true, was_quoted = false;
    for (;;) {
        int ch = fgetc(f);
        const bool end = ch == EOF;
        if (end && len == 0 && rec_cells == 0 && !was_quoted) break; // ends after a newline
        if (!end && quoted) {
            if (ch != '"') {
                goto keep;
            }
            int next = fgetc(f);
            if (next == '"') goto keep; // "" inside quotes
            quoted = false;
            if (next == EOF) {
                ch = EOF;
            } else {
                ch = next;
            }
        } else if (!end && ch == '"' && len == 0 && !was_quoted) {
            quoted = was_quoted = true;
            continue;
        }
        if (ch == EOF || ch == ',' || ch == '\n') {
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                t->cells = eg_xrealloc(t->cells, cap * sizeof *t->cells);
            }
            buf[len] = '\0';
            t->cells[n++] = eg_xstrdup(buf);
            len = 0;
            was_quoted = false;
            rec_cells++;
            if (ch != ',') {
                if (records == 0) {
                    t->ncols = rec_cells;
                } else if (rec_cells != t->ncols) {
                    fprintf(stderr, "error: %s: record %zu has %zu cells, the header %zu\n", path,
                            records + 1, rec_cells, t->ncols);
                    ok = false;
                    break;
                }
                records++;
                rec_cells = 0;
            }
            if (ch == EOF) break;
            continue;
        }
        if (ch == '\r') continue;
    keep:
        if (len + 1 >= bcap) {
            bcap *= 2;
            buf = eg_xrealloc(buf, bcap);
        }
        buf[len++] = (char)ch;
    }
    fclose(f);
    free(buf);
    if (ok && records == 0) {
        fprintf(stderr, "error: %s: empty\n", path);
        ok = false;
    }
    t->nrows = records > 0 ? records - 1 : 0;
    if (!ok) {
        for (size_t i = 0; i < n; i++) free(t->cells[i]);
        free(t->cells);
        *t = (struct csv_table){0};
    }
    return ok;
}

static void free_table(struct csv_table *t)
{
    for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++) free(t->cells[i]);
    free(t->cells);
}

static size_t column(const struct csv_table *t, const char *name)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (strcmp(cell(t, 0, c), name) == 0) return c;
    }
    return (size_t)-1;
}

// The number in a cell, or NaN for an empty or non-numeric one.
static double number(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    return end != s && *end == '\0' ? v : (double)NAN;
}

int cmd_table(int argc, char **argv)
{
    const char *path = NULL, *metrics[TABLE_MAX_METRICS];
    size_t nmetrics = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--metric") == 0 && i + 1 < argc && nmetrics < TABLE_MAX_METRICS) {
            metrics[nmetrics++] = argv[++i];
        } else if (argv[i][0] == '-' || path != NULL) {
            fprintf(stderr, "usage: evograd table RUNS.csv [--metric COLUMN ...]\n");
            return EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (path == NULL) {
        fprintf(stderr, "usage: evograd table RUNS.csv [--metric COLUMN ...]\n");
        return EXIT_USAGE;
    }
    struct csv_table t;
    if (!read_table(path, &t)) return EXIT_FAILURE;
    const size_t sweep = column(&t, "sweep");
    if (sweep == (size_t)-1) {
        fprintf(stderr,
                "error: %s has no config columns (a runs table from evograd 0.3.0 or earlier, or "
                "not a runs table)\n",
                path);
        free_table(&t);
        return EXIT_FAILURE;
    }
    size_t mcol[TABLE_MAX_METRICS];
    if (nmetrics == 0) {
        for (size_t k = 0; k < sizeof default_metrics / sizeof default_metrics[0]; k++) {
            const size_t c = column(&t, default_metrics[k]);
            bool numeric = false;
            for (size_t r = 1; c != (size_t)-1 && r <= t.nrows; r++)
                numeric = numeric || !isnan(number(cell(&t, r, c)));
            if (numeric) {
                metrics[nmetrics] = default_metrics[k];
                mcol[nmetrics++] = c;
            }
        }
    } else {
        for (size_t k = 0; k < nmetrics; k++) {
            mcol[k] = column(&t, metrics[k]);
            if (mcol[k] == (size_t)-1) {
                fprintf(stderr, "error: %s has no column '%s'\n", path, metrics[k]);
                free_table(&t);
                return EXIT_FAILURE;
            }
        }
    }
    // the group keys: the config columns (after sweep) whose values differ between rows
    size_t *keys = eg_xcalloc(t.ncols, sizeof *keys), nkeys = 0;
    for (size_t c = sweep + 1; c < t.ncols; c++) {
        bool varies = false;
        for (size_t r = 2; r <= t.nrows && !varies; r++)
            varies = strcmp(cell(&t, r, c), cell(&t, 1, c)) != 0;
        if (varies) keys[nkeys++] = c;
    }
    // groups in order of first appearance
    size_t *group = eg_xcalloc(t.nrows + 1, sizeof *group), ngroups = 0;
    size_t *first = eg_xcalloc(t.nrows + 1, sizeof *first);
    for (size_t r = 1; r <= t.nrows; r++) {
        size_t g = 0;
        for (; g < ngroups; g++) {
            bool same = true;
            for (size_t k = 0; k < nkeys && same; k++)
                same = strcmp(cell(&t, r, keys[k]), cell(&t, first[g], keys[k])) == 0;
            if (same) break;
        }
        if (g == ngroups) first[ngroups++] = r;
        group[r] = g;
    }
    // the table
    printf("|");
    for (size_t k = 0; k < nkeys; k++) printf(" %s |", cell(&t, 0, keys[k]));
    printf(" n |");
    for (size_t m = 0; m < nmetrics; m++) printf(" %s |", metrics[m]);
    printf("\n|");
    for (size_t k = 0; k < nkeys + 1 + nmetrics; k++) printf("---|");
    printf("\n");
    for (size_t g = 0; g < ngroups; g++) {
        size_t n = 0;
        for (size_t r = 1; r <= t.nrows; r++) n += group[r] == g;
        printf("|");
        for (size_t k = 0; k < nkeys; k++) printf(" %s |", cell(&t, first[g], keys[k]));
        printf(" %zu |", n);
        for (size_t m = 0; m < nmetrics; m++) {
            double sum = 0.0, sq = 0.0;
            size_t cnt = 0;
            for (size_t r = 1; r <= t.nrows; r++) {
                const double v = group[r] == g ? number(cell(&t, r, mcol[m])) : (double)NAN;
                if (isnan(v)) continue;
                sum += v;
                cnt++;
            }
            const double mean = cnt > 0 ? sum / (double)cnt : (double)NAN;
            for (size_t r = 1; r <= t.nrows; r++) {
                const double v = group[r] == g ? number(cell(&t, r, mcol[m])) : (double)NAN;
                if (!isnan(v)) sq += (v - mean) * (v - mean);
            }
            if (cnt == 0) {
                printf(" |");
            } else if (cnt == 1) {
                printf(" %.6g |", mean);
            } else {
                printf(" %.6g ± %.3g |", mean, sqrt(sq / (double)(cnt - 1)));
            }
        }
        printf("\n");
    }
    if (nkeys == 0) printf("\n(no config key varies: one group)\n");
    free(keys);
    free(group);
    free(first);
    free_table(&t);
    return EXIT_SUCCESS;
}
