/* table_cmd.c - `evograd table SOURCE [options]`: a runs table (summary rows with their config
 * columns, results/README.md) grouped by every config key that varies across its rows. The seed
 * is never a group key: each group's figures are mean and sample standard deviation over its rows
 * (its seeds), with n shown.
 *   reads  SOURCE: a runs.csv, or a results folder (its runs.csv); a run folder (dir) listed
 *          more than once counts once, with its last row. With --curve, each selected row's
 *          <dir>/metrics.csv (or --curve-file), dir as runs.csv records it (relative to the
 *          current folder), else the folder of that name beside runs.csv.
 *   writes standard output only: Markdown (the default), CSV (--format csv, --curve) or the
 *          varied keys (--keys). Errors go to standard error: 1 bad input, 2 usage.
 * Metrics: the given columns, or every figure column (final_test_acc ... peak_rss_mb) with a
 * number in some row; empty and nan cells are left out of a column's figures. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "io/csv.h"

#define TABLE_MAX_METRICS 32
#define TABLE_MAX_WHERE 16

static const char usage_text[] =
    "usage: evograd table RUNS.csv|FOLDER [--where KEY=VALUE ...] [--metric COLUMN ...]\n"
    "                     [--format md|csv] [--x KEY]\n"
    "       evograd table RUNS.csv|FOLDER [--where KEY=VALUE ...] --curve COLUMN\n"
    "                     [--curve-file NAME] [--curve-x COLUMN]\n"
    "       evograd table RUNS.csv|FOLDER [--where KEY=VALUE ...] --keys all|numeric\n";

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
        fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
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

// Frees the cells (the struct itself is the caller's).
static void free_table(struct csv_table *t)
{
    for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++) free(t->cells[i]);
    free(t->cells);
}

#define NO_COLUMN ((size_t)-1)

// The index of the column called name, or NO_COLUMN.
static size_t column(const struct csv_table *t, const char *name)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (strcmp(cell(t, 0, c), name) == 0) return c;
    }
    return NO_COLUMN;
}

// The number in a cell, or NaN for an empty or non-numeric one.
static double number(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    return end != s && *end == '\0' ? v : (double)NAN;
}

// ---------------------------------------------------------------------------------------------
// Arguments

struct table_args {
    const char *source;
    const char *metrics[TABLE_MAX_METRICS];
    size_t nmetrics;
    const char *where[TABLE_MAX_WHERE]; // "KEY=VALUE"
    size_t nwhere;
    bool csv;                           // --format csv
    const char *x;                      // --x KEY, or NULL
    const char *curve;                  // --curve COLUMN, or NULL
    const char *curve_file;             // --curve-file NAME (metrics.csv)
    const char *curve_x;                // --curve-x COLUMN (epoch)
    const char *keys;                   // --keys all|numeric, or NULL
};

// Prints "evograd table: <why>" and the usage; returns false.
static bool usage_error(const char *why, const char *what)
{
    fprintf(stderr, "evograd table: %s%s\n%s", why, what, usage_text);
    return false;
}

// The long options' codes (getopt_long's val).
enum table_opt {
    TABLE_OPT_METRIC = 256,
    TABLE_OPT_WHERE,
    TABLE_OPT_FORMAT,
    TABLE_OPT_X,
    TABLE_OPT_CURVE,
    TABLE_OPT_CURVE_FILE,
    TABLE_OPT_CURVE_X,
    TABLE_OPT_KEYS,
};

// Option code's value v into *a. False, with the usage printed, on a bad one.
static bool take_option(int code, const char *v, struct table_args *a, bool *format_md,
                        bool *curve_opts)
{
    switch (code) {
    case TABLE_OPT_METRIC:
        if (a->nmetrics == TABLE_MAX_METRICS) return usage_error("too many --metric", "");
        a->metrics[a->nmetrics++] = v;
        break;
    case TABLE_OPT_WHERE:
        if (a->nwhere == TABLE_MAX_WHERE) return usage_error("too many --where", "");
        if (v[0] == '=' || strchr(v, '=') == NULL)
            return usage_error("--where needs KEY=VALUE, got ", v);
        a->where[a->nwhere++] = v;
        break;
    case TABLE_OPT_FORMAT:
        if (strcmp(v, "md") != 0 && strcmp(v, "csv") != 0)
            return usage_error("--format is md or csv, not ", v);
        a->csv = strcmp(v, "csv") == 0;
        *format_md = !a->csv;
        break;
    case TABLE_OPT_X:
        a->x = v;
        break;
    case TABLE_OPT_CURVE:
        a->curve = v;
        break;
    case TABLE_OPT_CURVE_FILE:
    case TABLE_OPT_CURVE_X:
        *(code == TABLE_OPT_CURVE_FILE ? &a->curve_file : &a->curve_x) = v;
        *curve_opts = true;
        break;
    case TABLE_OPT_KEYS:
        if (strcmp(v, "all") != 0 && strcmp(v, "numeric") != 0)
            return usage_error("--keys is all or numeric, not ", v);
        a->keys = v;
        break;
    default:
        EG_ASSERT(false && "an option parse_args does not list");
    }
    return true;
}

// usage_error's message, as an exit status.
static int usage_fail(const char *why, const char *what)
{
    usage_error(why, what);
    return EXIT_USAGE;
}

// Reads argv into *a (getopt_long: --opt VALUE, --opt=VALUE, -- ends the options).
// ARGS_PARSED to go on; else the exit status: 0 after --help, EXIT_USAGE after a usage error.
static int parse_args(int argc, char **argv, struct table_args *a)
{
    *a = (struct table_args){.curve_file = "metrics.csv", .curve_x = "epoch"};
    bool format_md = false, curve_opts = false, ok = true, help = false;
    static const struct option opts[] = {
        {"metric", required_argument, NULL, TABLE_OPT_METRIC},
        {"where", required_argument, NULL, TABLE_OPT_WHERE},
        {"format", required_argument, NULL, TABLE_OPT_FORMAT},
        {"x", required_argument, NULL, TABLE_OPT_X},
        {"curve", required_argument, NULL, TABLE_OPT_CURVE},
        {"curve-file", required_argument, NULL, TABLE_OPT_CURVE_FILE},
        {"curve-x", required_argument, NULL, TABLE_OPT_CURVE_X},
        {"keys", required_argument, NULL, TABLE_OPT_KEYS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char **av = getopt_vector(argc, argv, "evograd table");
    int ac = argc + 1, c;
    opterr = 0;
    optind = 0; // glibc: a full reset
    while (ok && !help && (c = getopt_long(ac, av, ":h", opts, NULL)) != -1) {
        if (c >= TABLE_OPT_METRIC) {
            ok = take_option(c, optarg, a, &format_md, &curve_opts);
        } else if (c == 'h') {
            help = true;
        } else if (c == ':') {
            ok = usage_error("a value is missing after ", av[optind - 1]);
        } else {
            ok = usage_error("unknown option ", av[optind - 1]);
        }
    }
    for (int i = optind; ok && !help && i < ac; i++) {
        if (a->source != NULL) {
            ok = usage_error("a second SOURCE: ", av[i]);
        } else {
            a->source = av[i];
        }
    }
    free(av);
    if (help) {
        fputs(usage_text, stdout);
        fputs("A runs table (a runs.csv, or a results folder's) grouped by every config key that\n"
              "varies across its rows, never the seed: n and mean +- sample std per metric.\n"
              "Options take their value as --opt VALUE or --opt=VALUE; -- ends the options.\n",
              stdout);
        return EXIT_SUCCESS;
    }
    if (!ok) return EXIT_USAGE;
    if (a->source == NULL) return usage_fail("no RUNS.csv or FOLDER given", "");
    if (curve_opts && a->curve == NULL)
        return usage_fail("--curve-file and --curve-x need --curve", "");
    if (a->curve != NULL && (a->x != NULL || a->nmetrics > 0 || format_md || a->keys != NULL))
        return usage_fail("--curve writes CSV of one column: no --x, --metric, --format md or "
                           "--keys",
                           "");
    if (a->keys != NULL && (a->x != NULL || a->nmetrics > 0 || a->csv || format_md))
        return usage_fail("--keys takes only --where", "");
    return ARGS_PARSED;
}

// ---------------------------------------------------------------------------------------------
// Rows, keys and groups

// Whether cells a and b hold the same value: the same text, or equal numbers (1e-3 and 0.001).
static bool same_value(const char *a, const char *b)
{
    if (strcmp(a, b) == 0) return true;
    const double x = number(a), y = number(b);
    return !isnan(x) && x == y;
}

// The data rows (1-based) the table is made of, in file order: a row whose dir a later row
// repeats (a re-run) is dropped, then each row that fails a --where. Writes their count to *n
// and returns them (caller frees), or NULL with the message printed when a --where names no
// column of t.
static size_t *select_rows(const struct csv_table *t, const char *path,
                           const struct table_args *a, size_t *n)
{
    size_t wcol[TABLE_MAX_WHERE];
    const char *wval[TABLE_MAX_WHERE];
    for (size_t w = 0; w < a->nwhere; w++) {
        const char *eq = strchr(a->where[w], '=');
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - a->where[w]), a->where[w]);
        wcol[w] = column(t, key);
        wval[w] = eq + 1;
        if (wcol[w] == NO_COLUMN) {
            fprintf(stderr, "error: %s has no column '%s' (--where %s)\n", path, key, a->where[w]);
            return NULL;
        }
    }
    const size_t dir = column(t, "dir");
    size_t *rows = eg_xcalloc(t->nrows + 1, sizeof *rows);
    *n = 0;
    for (size_t r = 1; r <= t->nrows; r++) {
        bool keep = true;
        for (size_t later = r + 1; dir != NO_COLUMN && later <= t->nrows && keep; later++)
            keep = cell(t, r, dir)[0] == '\0' || strcmp(cell(t, r, dir), cell(t, later, dir)) != 0;
        for (size_t w = 0; w < a->nwhere && keep; w++)
            keep = same_value(cell(t, r, wcol[w]), wval[w]);
        if (keep) rows[(*n)++] = r;
    }
    return rows;
}

// The config columns (after the sweep column) whose values differ between the rows (same_value:
// a runs.csv appended to by versions that wrote 3e+01 and 30 holds one value), except
// column skip (NO_COLUMN for none), into keys (t->ncols); returns their count.
static size_t varied_keys(const struct csv_table *t, size_t sweep, const size_t *rows, size_t n,
                          size_t skip, size_t *keys)
{
    size_t nkeys = 0;
    for (size_t c = sweep + 1; c < t->ncols; c++) {
        bool varies = false;
        for (size_t i = 1; i < n && !varies; i++)
            varies = !same_value(cell(t, rows[i], c), cell(t, rows[0], c));
        if (varies && c != skip) keys[nkeys++] = c;
    }
    return nkeys;
}

// The groups of n rows: rows with the same values of every key (and the same number in column
// xcol, unless it is NO_COLUMN) form one group.
struct groups {
    size_t n;      // groups
    size_t *of;    // (rows) the group of each row
    size_t *first; // (n) the index (into rows) of each group's first row
};

// Whether rows i and j (indices into rows) agree on every key.
static bool same_keys(const struct csv_table *t, const size_t *rows, size_t i, size_t j,
                      const size_t *keys, size_t nkeys)
{
    for (size_t k = 0; k < nkeys; k++) {
        if (!same_value(cell(t, rows[i], keys[k]), cell(t, rows[j], keys[k]))) return false;
    }
    return true;
}

// Groups rows into *g (caller frees g->of and g->first): in order of first appearance of their
// keys' values, and with an x column by numeric x within each of those. Each x is a number (the
// caller checked).
static void group_rows(const struct csv_table *t, const size_t *rows, size_t n,
                       const size_t *keys, size_t nkeys, size_t xcol, struct groups *g)
{
    g->of = eg_xcalloc(n + 1, sizeof *g->of);
    g->first = eg_xcalloc(n + 1, sizeof *g->first);
    g->n = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        for (; k < g->n; k++) {
            const size_t f = g->first[k];
            if (same_keys(t, rows, i, f, keys, nkeys) &&
                (xcol == NO_COLUMN ||
                 number(cell(t, rows[i], xcol)) == number(cell(t, rows[f], xcol))))
                break;
        }
        if (k == g->n) g->first[g->n++] = i;
        g->of[i] = k;
    }
    if (xcol == NO_COLUMN) return;
    // order: the first group with the same keys (its rank among them), then x; insertion sort
    // of the group indices (a few dozen at most)
    size_t *rank = eg_xcalloc(g->n, sizeof *rank), *order = eg_xcalloc(g->n, sizeof *order);
    double *x = eg_xcalloc(g->n, sizeof *x);
    for (size_t k = 0; k < g->n; k++) {
        size_t r = 0;
        while (!same_keys(t, rows, g->first[r], g->first[k], keys, nkeys)) r++;
        rank[k] = r;
        x[k] = number(cell(t, rows[g->first[k]], xcol));
        size_t at = k;
        for (; at > 0; at--) {
            const size_t o = order[at - 1];
            if (rank[o] < rank[k] || (rank[o] == rank[k] && x[o] <= x[k])) break;
            order[at] = o;
        }
        order[at] = k;
    }
    size_t *pos = eg_xcalloc(g->n, sizeof *pos), *first = eg_xcalloc(n + 1, sizeof *first);
    for (size_t p = 0; p < g->n; p++) {
        pos[order[p]] = p;
        first[p] = g->first[order[p]];
    }
    for (size_t i = 0; i < n; i++) g->of[i] = pos[g->of[i]];
    free(g->first);
    g->first = first;
    free(pos);
    free(x);
    free(order);
    free(rank);
}

// The legend label of the group holding data row r: the method (method.name, else method), then
// each other key's value as name=value, the name being the key's last part (sigma), or the whole
// key when two keys share that part (train.optimizer.lr=0.1 meta.optimizer.lr=1). Commas become
// ';' so that the label is one cell to readers that ignore quotes (gnuplot). Returns a new
// string (caller frees).
static char *group_label(const struct csv_table *t, size_t r, const size_t *keys, size_t nkeys)
{
    size_t m = column(t, "method.name");
    if (m == NO_COLUMN) m = column(t, "method");
    const char *method = m != NO_COLUMN ? cell(t, r, m) : "";
    size_t cap = strlen(method) + 1, len = strlen(method);
    for (size_t k = 0; k < nkeys; k++)
        cap += strlen(cell(t, 0, keys[k])) + strlen(cell(t, r, keys[k])) + 2;
    char *s = eg_xmalloc(cap);
    strcpy(s, method);
    for (size_t k = 0; k < nkeys; k++) {
        const char *key = cell(t, 0, keys[k]), *last = strrchr(key, '.');
        if (keys[k] == m) continue;
        last = last != NULL ? last + 1 : key;
        for (size_t o = 0; o < nkeys && last != key; o++) {
            const char *other = cell(t, 0, keys[o]), *olast = strrchr(other, '.');
            if (o != k && strcmp(olast != NULL ? olast + 1 : other, last) == 0) last = key;
        }
        len += (size_t)snprintf(s + len, cap - len, "%s%s=%s", len > 0 ? " " : "", last,
                                cell(t, r, keys[k]));
    }
    for (char *p = strchr(s, ','); p != NULL; p = strchr(p, ',')) *p = ';';
    if (s[0] == '\0') {
        free(s);
        s = eg_xstrdup("all");
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// Figures

struct moments {
    size_t n;         // values (NaNs left out)
    double mean, std; // NaN for no value; std NaN for fewer than 2 (sample std, n - 1)
};

static struct moments moments_of(const double *v, size_t n)
{
    struct moments m = {.mean = (double)NAN, .std = (double)NAN};
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) continue;
        sum += v[i];
        m.n++;
    }
    if (m.n == 0) return m;
    m.mean = sum / (double)m.n;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(v[i])) sq += (v[i] - m.mean) * (v[i] - m.mean);
    }
    if (m.n > 1) m.std = sqrt(sq / (double)(m.n - 1));
    return m;
}

// Column c over the rows of group k. vals: (n) scratch.
static struct moments group_moments(const struct csv_table *t, const size_t *rows, size_t n,
                                    const struct groups *g, size_t k, size_t c, double *vals)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (g->of[i] == k) vals[m++] = number(cell(t, rows[i], c));
    }
    return moments_of(vals, m);
}

// v in full double precision (15 significant digits), "nan" for NaN; buf: 32 bytes.
static const char *full(char *buf, double v)
{
    if (isnan(v)) return "nan";
    snprintf(buf, 32, "%.15g", v);
    return buf;
}

// Writes one CSV record of cells[0..n) to standard output.
static void put_record(const char *const *cells, size_t n)
{
    size_t len;
    char *rec = csv_record(cells, n, &len);
    fwrite(rec, 1, len, stdout);
    free(rec);
}

// The table of the groups as Markdown or CSV: the keys' columns (and x), n, each metric's mean
// and std.
static void write_table(const struct csv_table *t, const size_t *rows, size_t n,
                        const struct groups *g, const size_t *keys, size_t nkeys, size_t xcol,
                        const char *const *metrics, const size_t *mcol, size_t nmetrics, bool csv)
{
    const size_t ncells = 2 + nkeys + 2 * nmetrics + (xcol != NO_COLUMN);
    const char **cells = eg_xcalloc(ncells, sizeof *cells);
    char (*num)[32] = eg_xcalloc(2 * nmetrics + 1, sizeof *num);
    char (*names)[80] = eg_xcalloc(2 * nmetrics, sizeof *names);
    double *vals = eg_xcalloc(n + 1, sizeof *vals);
    size_t nc = 0;
    if (csv) cells[nc++] = "group";
    for (size_t k = 0; k < nkeys; k++) cells[nc++] = cell(t, 0, keys[k]);
    if (xcol != NO_COLUMN) cells[nc++] = cell(t, 0, xcol);
    cells[nc++] = "n";
    if (csv) {
        for (size_t m = 0; m < nmetrics; m++) {
            snprintf(names[2 * m], sizeof names[0], "%s_mean", metrics[m]);
            snprintf(names[2 * m + 1], sizeof names[0], "%s_std", metrics[m]);
            cells[nc++] = names[2 * m];
            cells[nc++] = names[2 * m + 1];
        }
        put_record(cells, nc);
    } else {
        printf("|");
        for (size_t i = 0; i < nc; i++) printf(" %s |", cells[i]);
        for (size_t m = 0; m < nmetrics; m++) printf(" %s |", metrics[m]);
        printf("\n|");
        for (size_t i = 0; i < nc + nmetrics; i++) printf("---|");
        printf("\n");
    }
    for (size_t k = 0; k < g->n; k++) {
        const size_t r = rows[g->first[k]];
        char *label = csv ? group_label(t, r, keys, nkeys) : NULL;
        size_t count = 0;
        for (size_t i = 0; i < n; i++) count += g->of[i] == k;
        nc = 0;
        if (csv) cells[nc++] = label;
        for (size_t j = 0; j < nkeys; j++) cells[nc++] = cell(t, r, keys[j]);
        if (xcol != NO_COLUMN) cells[nc++] = cell(t, r, xcol);
        snprintf(num[2 * nmetrics], sizeof num[0], "%zu", count);
        cells[nc++] = num[2 * nmetrics];
        if (!csv) {
            printf("|");
            for (size_t i = 0; i < nc; i++) printf(" %s |", cells[i]);
        }
        for (size_t m = 0; m < nmetrics; m++) {
            const struct moments s = group_moments(t, rows, n, g, k, mcol[m], vals);
            if (csv) {
                cells[nc++] = full(num[2 * m], s.mean);
                cells[nc++] = full(num[2 * m + 1], s.std);
            } else if (s.n == 0) {
                printf(" |");
            } else if (s.n == 1) {
                printf(" %.6g |", s.mean);
            } else {
                printf(" %.6g ± %.3g |", s.mean, s.std);
            }
        }
        if (csv) {
            put_record(cells, nc);
        } else {
            printf("\n");
        }
        free(label);
    }
    if (!csv && nkeys == 0) printf("\n(no config key varies: one group)\n");
    free(vals);
    free(names);
    free(num);
    free(cells);
}

// ---------------------------------------------------------------------------------------------
// Curves

// One value of a run's curve: at position x, from run `run`, file row `row`.
struct point {
    double x, v;
    size_t run, row;
};

static int point_cmp(const void *pa, const void *pb)
{
    const struct point *a = pa, *b = pb;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    if (a->run != b->run) return a->run < b->run ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

// The path of file name in the run folder dir into out (cap bytes): dir/name as runs.csv wrote dir
// (relative to the current folder), else, for a relative dir, the folder of that last name
// beside runs_path. False, with the message printed (naming dir/name), when neither exists.
static bool run_file(const char *runs_path, const char *dir, const char *name, char *out,
                     size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
    if (access(out, F_OK) == 0) return true;
    if (dir[0] != '/') {
        const char *slash = strrchr(runs_path, '/'), *base = strrchr(dir, '/');
        char beside[4096];
        snprintf(beside, sizeof beside, "%.*s/%s/%s",
                 slash != NULL ? (int)(slash - runs_path) : 1, slash != NULL ? runs_path : ".",
                 base != NULL ? base + 1 : dir, name);
        if (access(beside, F_OK) == 0) {
            snprintf(out, cap, "%s", beside);
            return true;
        }
    }
    fprintf(stderr, "error: %s: no such file (a run folder listed in %s)\n", out, runs_path);
    return false;
}

// Appends group k's points to *pts (cap *cap, count *np): column a->curve along a->curve_x of
// each run's a->curve_file. False, with the message printed, when a file or column is missing.
static bool read_points(const struct csv_table *t, const char *path, const size_t *rows,
                        size_t n, const struct groups *g, size_t k, const struct table_args *a,
                        struct point **pts, size_t *np, size_t *cap)
{
    const size_t dir = column(t, "dir");
    if (dir == NO_COLUMN) {
        fprintf(stderr, "error: %s has no column 'dir' (--curve reads the run folders)\n", path);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (g->of[i] != k) continue;
        char file[4096];
        struct csv_table m;
        if (!run_file(path, cell(t, rows[i], dir), a->curve_file, file, sizeof file) ||
            !read_table(file, &m))
            return false;
        const size_t xc = column(&m, a->curve_x), vc = column(&m, a->curve);
        if (xc == NO_COLUMN || vc == NO_COLUMN) {
            fprintf(stderr, "error: %s has no column '%s'\n", file,
                    xc == NO_COLUMN ? a->curve_x : a->curve);
            free_table(&m);
            return false;
        }
        for (size_t r = 1; r <= m.nrows; r++) {
            const double x = number(cell(&m, r, xc));
            if (isnan(x)) continue;
            if (*np == *cap) {
                *cap = *cap ? 2 * *cap : 256;
                *pts = eg_xrealloc(*pts, *cap * sizeof **pts);
            }
            (*pts)[(*np)++] = (struct point){x, number(cell(&m, r, vc)), i, r};
        }
        free_table(&m);
    }
    return true;
}

// The curve table: group,<curve-x>,mean,std,n per group and x, over the group's runs (one value
// each: a run's last row at that x), x ascending; an x where no run has a value is left out.
static bool write_curves(const struct csv_table *t, const char *path, const size_t *rows,
                         size_t n, const struct groups *g, const size_t *keys, size_t nkeys,
                         const struct table_args *a)
{
    put_record((const char *[]){"group", a->curve_x, "mean", "std", "n"}, 5);
    struct point *pts = NULL;
    double *vals = eg_xcalloc(n + 1, sizeof *vals);
    bool ok = true;
    for (size_t k = 0; k < g->n && ok; k++) {
        size_t np = 0, cap = 0;
        ok = read_points(t, path, rows, n, g, k, a, &pts, &np, &cap);
        if (!ok || np == 0) continue;
        qsort(pts, np, sizeof *pts, point_cmp);
        char *label = group_label(t, rows[g->first[k]], keys, nkeys);
        for (size_t p = 0; p < np;) {
            size_t nv = 0, q = p;
            for (; q < np && pts[q].x == pts[p].x; q++) {
                if (q + 1 < np && pts[q + 1].x == pts[q].x && pts[q + 1].run == pts[q].run)
                    continue; // the run's later row at this x wins
                vals[nv++] = pts[q].v;
            }
            const struct moments s = moments_of(vals, nv);
            char x[32], mean[32], std[32], cnt[32];
            snprintf(cnt, sizeof cnt, "%zu", s.n);
            if (s.n > 0)
                put_record((const char *[]){label, full(x, pts[p].x), full(mean, s.mean),
                                            full(std, s.std), cnt},
                           5);
            p = q;
        }
        free(label);
    }
    free(vals);
    free(pts);
    return ok;
}

// ---------------------------------------------------------------------------------------------
// The command

// SOURCE's runs table: SOURCE itself, or SOURCE/runs.csv for a folder. A new string.
static char *runs_path_of(const char *source)
{
    struct stat st;
    if (stat(source, &st) != 0 || !S_ISDIR(st.st_mode)) return eg_xstrdup(source);
    size_t len = strlen(source);
    while (len > 1 && source[len - 1] == '/') len--;
    char *p = eg_xmalloc(len + sizeof "/runs.csv");
    snprintf(p, len + sizeof "/runs.csv", "%.*s/runs.csv", (int)len, source);
    return p;
}

// Prints the varied keys (all, or those whose every value is a number), one a line.
static void write_keys(const struct csv_table *t, const size_t *rows, size_t n,
                       const size_t *keys, size_t nkeys, bool numeric)
{
    for (size_t k = 0; k < nkeys; k++) {
        bool ok = true;
        for (size_t i = 0; i < n && numeric && ok; i++)
            ok = !isnan(number(cell(t, rows[i], keys[k])));
        if (ok) printf("%s\n", cell(t, 0, keys[k]));
    }
}

// The metric columns into metrics and mcol (TABLE_MAX_METRICS); returns their count, or
// (size_t)-1 with the message printed when a given one is missing.
static size_t metric_columns(const struct csv_table *t, const char *path, const size_t *rows,
                             size_t n, const struct table_args *a, const char **metrics,
                             size_t *mcol)
{
    size_t nm = 0;
    if (a->nmetrics > 0) {
        for (; nm < a->nmetrics; nm++) {
            metrics[nm] = a->metrics[nm];
            mcol[nm] = column(t, metrics[nm]);
            if (mcol[nm] == NO_COLUMN) {
                fprintf(stderr, "error: %s has no column '%s'\n", path, metrics[nm]);
                return (size_t)-1;
            }
        }
        return nm;
    }
    for (size_t k = 0; k < sizeof default_metrics / sizeof default_metrics[0]; k++) {
        const size_t c = column(t, default_metrics[k]);
        bool numeric = false;
        for (size_t i = 0; c != NO_COLUMN && i < n; i++)
            numeric = numeric || !isnan(number(cell(t, rows[i], c)));
        if (numeric) {
            metrics[nm] = default_metrics[k];
            mcol[nm++] = c;
        }
    }
    return nm;
}

// The x column (NO_COLUMN without --x) into *xcol; false, with the message printed, when it is
// missing or a row's x is not a number.
static bool x_column(const struct csv_table *t, const char *path, const size_t *rows, size_t n,
                     const char *x, size_t *xcol)
{
    *xcol = NO_COLUMN;
    if (x == NULL) return true;
    const size_t c = column(t, x);
    if (c == NO_COLUMN) {
        fprintf(stderr, "error: %s has no column '%s' (--x)\n", path, x);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(number(cell(t, rows[i], c)))) {
            fprintf(stderr, "error: %s: --x %s: '%s' (data row %zu) is not a number\n", path, x,
                    cell(t, rows[i], c), rows[i]);
            return false;
        }
    }
    *xcol = c;
    return true;
}

int cmd_table(int argc, char **argv)
{
    struct table_args a;
    int parsed = parse_args(argc, argv, &a);
    if (parsed != ARGS_PARSED) return parsed;
    char *path = runs_path_of(a.source);
    struct csv_table t;
    if (!read_table(path, &t)) {
        free(path);
        return EXIT_FAILURE;
    }
    int status = EXIT_FAILURE;
    size_t n = 0, *rows = NULL, *keys = NULL, xcol = NO_COLUMN, mcol[TABLE_MAX_METRICS];
    const char *metrics[TABLE_MAX_METRICS];
    struct groups g = {0};
    const size_t sweep = column(&t, "sweep");
    if (sweep == NO_COLUMN) {
        fprintf(stderr,
                "error: %s has no config columns (a runs table from evograd 0.3.0 or earlier, or "
                "not a runs table)\n",
                path);
        goto done;
    }
    rows = select_rows(&t, path, &a, &n);
    if (rows == NULL) goto done;
    // an empty listing or curve is an answer; an empty table is not
    if (n == 0 && a.nwhere > 0 && a.keys == NULL && a.curve == NULL) {
        fprintf(stderr, "error: %s: no row has", path);
        for (size_t w = 0; w < a.nwhere; w++) fprintf(stderr, " %s", a.where[w]);
        fprintf(stderr, "\n");
        goto done;
    }
    if (!x_column(&t, path, rows, n, a.x, &xcol)) goto done;
    keys = eg_xcalloc(t.ncols, sizeof *keys);
    const size_t nkeys = varied_keys(&t, sweep, rows, n, xcol, keys);
    if (a.keys != NULL) {
        write_keys(&t, rows, n, keys, nkeys, strcmp(a.keys, "numeric") == 0);
        status = EXIT_SUCCESS;
        goto done;
    }
    group_rows(&t, rows, n, keys, nkeys, xcol, &g);
    if (a.curve != NULL) {
        status = write_curves(&t, path, rows, n, &g, keys, nkeys, &a) ? EXIT_SUCCESS : EXIT_FAILURE;
        goto done;
    }
    const size_t nmetrics = metric_columns(&t, path, rows, n, &a, metrics, mcol);
    if (nmetrics == (size_t)-1) goto done;
    write_table(&t, rows, n, &g, keys, nkeys, xcol, metrics, mcol, nmetrics, a.csv);
    status = EXIT_SUCCESS;
done:
    free(g.of);
    free(g.first);
    free(keys);
    free(rows);
    free_table(&t);
    free(path);
    return status;
}
