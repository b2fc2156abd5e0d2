/* test_csv.c - the CSV result writer (metrics.csv: create, flush per row, RFC 4180 quoting,
 * reopen for a resumed run counting records rather than lines, write errors) and the locked
 * append for the shared runs.csv (header rules, a cut-off last row, rollback of a failed write,
 * 8 concurrent processes). Files live in the shared temporary folder e2e_dir (helpers.h:
 * e2e_setup in .init makes a fresh one per test, e2e_teardown in .fini removes it); quoted files
 * are read back with helpers.h's own RFC 4180 reader (csv_text_records, csv_text_cell). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "helpers.h"
#include "io/csv.h"

// ---------------------------------------------------------------------------------------------
// fixture folder: e2e_dir (helpers.h)

TestSuite(csv, .init = e2e_setup, .fini = e2e_teardown);
TestSuite(csv_append, .init = e2e_setup, .fini = e2e_teardown);

static const char *const COLS[] = {"epoch", "step", "train_loss"};

// Writes rows "i,10*i,0.5" for i in [from, to).
static void put_rows(struct csv *c, int from, int to)
{
    struct eg_error err = {0};
    for (int i = from; i < to; i++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%d", i);
        snprintf(b, sizeof b, "%d", 10 * i);
        const char *cells[] = {a, b, "0.5"};
        cr_assert(eq(int, csv_row(c, cells, &err), EG_OK), "%s", err.msg);
    }
}

// ---------------------------------------------------------------------------------------------
// metrics.csv

Test(csv, header_and_rows_round_trip_exactly)
{
    const char *p = e2e_path("m.csv");
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create(p, COLS, 3, &c, &err), EG_OK), "%s", err.msg);
    char v[32];
    const char *row[] = {"1", "100", csv_fmt(v, (double)1.25f)};
    cr_assert(eq(int, csv_row(c, row, &err), EG_OK), "%s", err.msg);
    put_rows(c, 2, 4);
    cr_assert(eq(sz, csv_rows(c), 3));
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, "epoch,step,train_loss\n1,100,1.25\n2,20,0.5\n3,30,0.5\n") == 0, "%s", s);
    free(s);
    cr_assert(eq(int, csv_close(NULL, &err), EG_OK));
}

Test(csv, each_row_is_flushed_before_close)
{
    const char *p = e2e_path("m.csv");
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create(p, COLS, 3, &c, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, "epoch,step,train_loss\n") == 0, "%s", s);
    free(s);
    put_rows(c, 7, 8);
    s = e2e_read_bytes("m.csv", NULL); // still open: the row must already be in the file
    cr_assert(strcmp(s, "epoch,step,train_loss\n7,70,0.5\n") == 0, "%s", s);
    free(s);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
}

Test(csv, reopen_keeps_first_rows_and_appends_after_them)
{
    const char *p = e2e_path("m.csv");
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create(p, COLS, 3, &c, &err), EG_OK), "%s", err.msg);
    put_rows(c, 0, 5);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);

    c = NULL;
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 2, &c, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(sz, csv_rows(c), 2));
    char *s = e2e_read_bytes("m.csv", NULL); // the rows after the checkpoint are gone at once
    cr_assert(strcmp(s, "epoch,step,train_loss\n0,0,0.5\n1,10,0.5\n") == 0, "%s", s);
    free(s);
    put_rows(c, 8, 10);
    cr_assert(eq(sz, csv_rows(c), 4));
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, "epoch,step,train_loss\n0,0,0.5\n1,10,0.5\n8,80,0.5\n9,90,0.5\n") == 0,
              "%s", s);
    free(s);

    // keeping every row, and keeping none
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 4, &c, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 0, &c, &err), EG_OK), "%s", err.msg);
    put_rows(c, 1, 2);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, "epoch,step,train_loss\n1,10,0.5\n") == 0, "%s", s);
    free(s);
}

Test(csv, reopen_drops_a_cut_off_last_row)
{
    const char *p = e2e_path("m.csv");
    e2e_write("m.csv", "epoch,step,train_loss\n0,0,0.5\n1,1");
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 2, &c, &err), EG_ERR_FORMAT));
    cr_assert(c == NULL);
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 1, &c, &err), EG_OK), "%s", err.msg);
    put_rows(c, 1, 2);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, "epoch,step,train_loss\n0,0,0.5\n1,10,0.5\n") == 0, "%s", s);
    free(s);
}

Test(csv, reopen_with_a_different_header_fails_naming_the_file)
{
    const char *p = e2e_path("m.csv");
    const char *text = "epoch,step,val_loss\n0,0,0.5\n";
    e2e_write("m.csv", text);
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 1, &c, &err), EG_ERR_FORMAT));
    cr_assert(c == NULL);
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    // both headers from the first column that differs
    cr_assert(strstr(err.msg, "from column 3 on: has 'val_loss', expected 'train_loss'") != NULL,
              "%s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, text) == 0, "the file was modified: %s", s);
    free(s);

    // fewer columns with the same prefix is a different header too
    const char *const two[] = {"epoch", "step"};
    cr_assert(eq(int, csv_reopen(p, two, 2, 1, &c, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
}

Test(csv, reopen_asking_for_more_rows_than_exist_fails)
{
    const char *p = e2e_path("m.csv");
    const char *text = "epoch,step,train_loss\n0,0,0.5\n1,10,0.5\n";
    e2e_write("m.csv", text);
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 3, &c, &err), EG_ERR_FORMAT));
    cr_assert(c == NULL);
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "2 complete data rows") != NULL, "%s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, text) == 0, "the file was modified: %s", s);
    free(s);
}

Test(csv, reopen_of_a_missing_or_empty_file_fails)
{
    struct csv *c = NULL;
    struct eg_error err = {0};
    const char *p = e2e_path("missing.csv");
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 0, &c, &err), EG_ERR_IO));
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    const char *e = e2e_path("empty.csv");
    e2e_write("empty.csv", "");
    cr_assert(eq(int, csv_reopen(e, COLS, 3, 0, &c, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, e) != NULL, "%s", err.msg);
    cr_assert(c == NULL);
}

Test(csv, write_to_a_full_device_is_reported)
{
    struct csv *c = NULL;
    struct eg_error err = {0};
    enum eg_status s = csv_create("/dev/full", COLS, 3, &c, &err);
    if (s == EG_OK) { // the header may sit in a buffer; then the first row or close must fail
        const char *row[] = {"1", "2", "3"};
        s = csv_row(c, row, &err);
        enum eg_status sc = csv_close(c, s == EG_OK ? &err : NULL);
        if (s == EG_OK) s = sc;
    }
    cr_assert(eq(int, s, EG_ERR_IO));
    cr_assert(strstr(err.msg, "/dev/full") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "No space left on device") != NULL, "%s", err.msg);
}

Test(csv, row_past_the_file_size_limit_is_reported)
{
    // RLIMIT_FSIZE makes write() fail with EFBIG once the file reaches 64 bytes (this test runs
    // in its own process, so the limit ends with it).
    signal(SIGXFSZ, SIG_IGN);
    const char *p = e2e_path("m.csv");
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create(p, COLS, 3, &c, &err), EG_OK), "%s", err.msg);
    struct rlimit rl = {.rlim_cur = 64, .rlim_max = RLIM_INFINITY};
    cr_assert(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    enum eg_status s = EG_OK;
    int i = 0;
    for (; i < 20 && s == EG_OK; i++) {
        const char *row[] = {"1", "2", "0.123456789"};
        s = csv_row(c, row, &err);
    }
    cr_assert(eq(int, s, EG_ERR_IO), "20 rows of 16 bytes fit under a 64-byte limit?");
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    cr_assert(lt(sz, csv_rows(c), (size_t)i));
    csv_close(c, NULL);
}

// Asserts that record r of text holds exactly cells[0..n) (read back with helpers.h's reader).
static void assert_record(const char *text, size_t r, const char *const *cells, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *got = csv_text_cell(text, r, i);
        cr_assert(got != NULL, "record %zu has no column %zu", r, i);
        cr_assert(strcmp(got, cells[i]) == 0, "record %zu column %zu: '%s', wrote '%s'", r, i, got,
                  cells[i]);
        free(got);
    }
    char *extra = csv_text_cell(text, r, n);
    cr_assert(extra == NULL, "record %zu has a column %zu: '%s'", r, n, extra);
}

Test(csv, cells_needing_quotes_are_quoted_and_read_back)
{
    const char *p = e2e_path("m.csv");
    const char *const cols[] = {"dir", "a,b", "note"};
    const char *const r1[] = {"results/a,b/none-seed1", "say \"hi\"", "two\nlines"};
    const char *const r2[] = {"cr\rhere", "\"", ""};
    const char *const r3[] = {"1.5", " spaced ", "tab\there;x|y'z"};
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create(p, cols, 3, &c, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_row(c, r1, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_row(c, r2, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_row(c, r3, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(sz, csv_rows(c), 3));
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);

    char *s = e2e_read_bytes("m.csv", NULL);
    const char *want = "dir,\"a,b\",note\n"
                       "\"results/a,b/none-seed1\",\"say \"\"hi\"\"\",\"two\nlines\"\n"
                       "\"cr\rhere\",\"\"\"\",\n"
                       "1.5, spaced ,tab\there;x|y'z\n";
    cr_assert(strcmp(s, want) == 0, "%s", s);
    cr_assert(eq(sz, csv_text_records(s), 4));
    assert_record(s, 0, cols, 3);
    assert_record(s, 1, r1, 3);
    assert_record(s, 2, r2, 3);
    assert_record(s, 3, r3, 3);
    free(s);
}

Test(csv, plain_cells_are_written_unquoted_byte_for_byte)
{
    // every printable ASCII byte but ',' and '"', a tab, UTF-8, and an empty cell
    char ascii[128];
    size_t n = 0;
    for (int ch = 32; ch < 127; ch++) {
        if (ch != ',' && ch != '"') ascii[n++] = (char)ch;
    }
    ascii[n] = '\0';
    const char *const row[] = {ascii, "\t\xc3\xa9", ""};
    const char *p = e2e_path("m.csv");
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create(p, COLS, 3, &c, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_row(c, row, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    char want[256];
    snprintf(want, sizeof want, "epoch,step,train_loss\n%s,\t\xc3\xa9,\n", ascii);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, want) == 0, "%s", s);
    free(s);
}

// The rows of reopen_counts_records_not_lines: cells with quoted newlines and commas.
static const char *const QROWS[4][3] = {
    {"0", "a\nb", "0.5"},
    {"1", "c,d\n\ne", "0.5"},
    {"2", "\"\n\"", "0.5"},
    {"3", "x", "0.5"},
};

Test(csv, reopen_counts_records_not_lines)
{
    const char *p = e2e_path("m.csv");
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create(p, COLS, 3, &c, &err), EG_OK), "%s", err.msg);
    for (size_t i = 0; i < 4; i++) {
        cr_assert(eq(int, csv_row(c, QROWS[i], &err), EG_OK), "%s", err.msg);
    }
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    char *full = e2e_read_bytes("m.csv", NULL);

    // more rows than records is an error, however many lines the file has
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 5, &c, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, "has 4 complete data rows") != NULL, "%s", err.msg);
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 4, &c, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, full) == 0, "keeping every row changed the file: %s", s);
    free(s);

    cr_assert(eq(int, csv_reopen(p, COLS, 3, 2, &c, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(sz, csv_rows(c), 2));
    s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, "epoch,step,train_loss\n0,\"a\nb\",0.5\n1,\"c,d\n\ne\",0.5\n") == 0, "%s",
              s);
    free(s);
    put_rows(c, 8, 9);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("m.csv", NULL);
    cr_assert(eq(sz, csv_text_records(s), 4));
    assert_record(s, 1, QROWS[0], 3);
    assert_record(s, 2, QROWS[1], 3);
    assert_record(s, 3, (const char *const[]){"8", "80", "0.5"}, 3);
    free(s);
    free(full);
}

// m.csv holding text has `complete` whole data rows: keeping one more is refused, keeping them
// works, and a row appended after them gives want.
static void reopen_keeps_complete_rows(const char *text, size_t complete, const char *want)
{
    const char *p = e2e_path("m.csv");
    e2e_write("m.csv", text);
    struct csv *c = NULL;
    struct eg_error err = {0};
    char says[64];
    snprintf(says, sizeof says, "has %zu complete data rows", complete);
    cr_assert(eq(int, csv_reopen(p, COLS, 3, complete + 1, &c, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, says) != NULL, "%s", err.msg);
    cr_assert(eq(int, csv_reopen(p, COLS, 3, complete, &c, &err), EG_OK), "%s", err.msg);
    put_rows(c, 1, 2);
    cr_assert(eq(int, csv_close(c, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, want) == 0, "%s", s);
    free(s);
}

Test(csv, reopen_drops_a_row_cut_off_inside_quotes)
{
    reopen_keeps_complete_rows("epoch,step,train_loss\n0,0,0.5\n1,\"a\nb", 1,
                               "epoch,step,train_loss\n0,0,0.5\n1,10,0.5\n");
}

Test(csv, reopen_rejects_a_kept_row_with_broken_quoting)
{
    const char *p = e2e_path("m.csv");
    const char *text = "epoch,step,train_loss\n0,0,0.5\n1,a\"b,0.5\n";
    e2e_write("m.csv", text);
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_reopen(p, COLS, 3, 2, &c, &err), EG_ERR_FORMAT));
    cr_assert(c == NULL);
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, ":3:") != NULL, "the line is named: %s", err.msg);
    char *s = e2e_read_bytes("m.csv", NULL);
    cr_assert(strcmp(s, text) == 0, "the file was modified: %s", s);
    free(s);
}

Test(csv, reopen_accepts_a_header_without_its_newline)
{
    reopen_keeps_complete_rows("epoch,step,train_loss", 0, "epoch,step,train_loss\n1,10,0.5\n");
}

Test(csv, fmt_prints_shortest_round_trip_and_special_values)
{
    char b[32];
    cr_assert(strcmp(csv_fmt(b, 0.1), "0.1") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, (double)0.1f), "0.100000001") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, 0.0), "0") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, -2.5), "-2.5") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, 123456789.0), "123456789") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, 1e-20), "1e-20") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, -1.7976931348623157e308), "-1.79769313e+308") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, (double)NAN), "nan") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, (double)-NAN), "nan") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, (double)INFINITY), "inf") == 0, "%s", b);
    cr_assert(strcmp(csv_fmt(b, -(double)INFINITY), "-inf") == 0, "%s", b);
    // %.9g round-trips every float
    const float vals[] = {0.1f, 1.0f / 3.0f, 3.14159274f, 1e-38f, 3.4e38f, -7.0e-45f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        cr_assert(strtof(csv_fmt(b, (double)vals[i]), NULL) == vals[i], "%s", b);
    }
}

// No fixture folder: an aborted test never reaches .fini. /dev/null swallows the header.
Test(csv_contract, null_cell_is_a_bug, .signal = SIGABRT)
{
    struct csv *c = NULL;
    struct eg_error err = {0};
    cr_assert(eq(int, csv_create("/dev/null", COLS, 3, &c, &err), EG_OK), "%s", err.msg);
    const char *row[] = {"1", NULL, "4"};
    csv_row(c, row, &err);
}

// ---------------------------------------------------------------------------------------------
// runs.csv

static const char *const RUN_COLS[] = {"method", "seed", "final_acc"};

Test(csv_append, creates_the_file_with_a_header_then_adds_rows_only)
{
    const char *p = e2e_path("runs.csv");
    struct eg_error err = {0};
    const char *r1[] = {"evograd", "1", "0.91"};
    const char *r2[] = {"none", "2", "0.88"};
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r1, 3, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\nevograd,1,0.91\n") == 0, "%s", s);
    free(s);
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r2, 3, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\nevograd,1,0.91\nnone,2,0.88\n") == 0, "%s", s);
    free(s);

    // an existing empty file gets the header too
    const char *e = e2e_path("empty.csv");
    e2e_write("empty.csv", "");
    cr_assert(eq(int, csv_append_locked(e, RUN_COLS, r2, 3, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("empty.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\nnone,2,0.88\n") == 0, "%s", s);
    free(s);
}

Test(csv_append, mismatched_header_is_an_error_naming_the_file)
{
    const char *p = e2e_path("runs.csv");
    const char *text = "method,seed,best_acc\nnone,1,0.5\n";
    e2e_write("runs.csv", text);
    struct eg_error err = {0};
    const char *r[] = {"evograd", "1", "0.91"};
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    // both headers from the first column that differs
    cr_assert(strstr(err.msg, "from column 3 on: has 'best_acc', expected 'final_acc'") != NULL,
              "%s", err.msg);
    char *s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, text) == 0, "the file was modified: %s", s);
    free(s);

    // a file shorter than the header, and a header that is only a prefix of the line
    e2e_write("runs.csv", "meth");
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT));
    e2e_write("runs.csv", "method,seed,final_acc,extra\n");
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "has 'final_acc,extra', expected 'final_acc'") != NULL, "%s",
              err.msg);

    // without a final newline the message is just as clear
    e2e_write("runs.csv", "method,seed,best_acc");
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, "from column 3 on: has 'best_acc', expected 'final_acc'") != NULL,
              "%s", err.msg);
    e2e_write("runs.csv", "method,seed");
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, "has 'seed', expected 'seed,final_acc'") != NULL, "%s", err.msg);
    // invisible bytes are shown escaped (a file saved with CRLF line ends)
    e2e_write("runs.csv", "method,seed,final_acc\r\nnone,1,0.5\r\n");
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, "has 'final_acc\\r', expected 'final_acc'") != NULL, "%s", err.msg);
    s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\r\nnone,1,0.5\r\n") == 0, "modified: %s", s);
    free(s);
}

Test(csv_append, header_without_its_newline_is_completed)
{
    const char *p = e2e_path("runs.csv");
    e2e_write("runs.csv", "method,seed,final_acc");
    struct eg_error err = {0};
    const char *r[] = {"evograd", "1", "0.91"};
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\nevograd,1,0.91\n") == 0, "%s", s);
    free(s);
}

Test(csv_append, cells_needing_quotes_are_quoted)
{
    const char *p = e2e_path("runs.csv");
    struct eg_error err = {0};
    const char *const r1[] = {"evograd", "1", "results/a,b"};
    const char *const r2[] = {"none", "say \"x\"", "two\nlines"};
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r1, 3, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r2, 3, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r1, 3, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("runs.csv", NULL);
    const char *want = "method,seed,final_acc\n"
                       "evograd,1,\"results/a,b\"\n"
                       "none,\"say \"\"x\"\"\",\"two\nlines\"\n"
                       "evograd,1,\"results/a,b\"\n";
    cr_assert(strcmp(s, want) == 0, "%s", s);
    cr_assert(eq(sz, csv_text_records(s), 4));
    assert_record(s, 2, r2, 3);
    free(s);

    // a header cell that needs quotes still matches itself
    const char *q = e2e_path("q.csv");
    const char *const cols[] = {"a,b", "c\"d", "e"};
    cr_assert(eq(int, csv_append_locked(q, cols, r1, 3, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_append_locked(q, cols, r2, 3, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("q.csv", NULL);
    cr_assert(eq(sz, csv_text_records(s), 3));
    assert_record(s, 0, cols, 3);
    assert_record(s, 2, r2, 3);
    free(s);
}

Test(csv_append, cut_off_last_row_is_dropped_before_appending)
{
    const char *p = e2e_path("runs.csv");
    struct eg_error err = {0};
    const char *r[] = {"evograd", "3", "0.9"};
    const char *const torn[] = {
        "method,seed,final_acc\nnone,1,0.91\nnone,2,0.",          // cut inside a plain cell
        "method,seed,final_acc\nnone,1,0.91\nnone,2,",            // cut after a comma
        "method,seed,final_acc\nnone,1,0.91\nnone,2,0.5",         // cut just before its '\n'
        "method,seed,final_acc\nnone,1,0.91\nnone,\"a\nb",        // cut inside quotes
        "method,seed,final_acc\nnone,1,0.91\nnone,\"a\nb\"\"c\"", // ... or just after them
    };
    for (size_t i = 0; i < sizeof torn / sizeof torn[0]; i++) {
        e2e_write("runs.csv", torn[i]);
        cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_OK), "%zu: %s", i,
                  err.msg);
        char *s = e2e_read_bytes("runs.csv", NULL);
        cr_assert(strcmp(s, "method,seed,final_acc\nnone,1,0.91\nevograd,3,0.9\n") == 0,
                  "%zu: %s", i, s);
        free(s);
    }

    // a cut-off first row, and a last row whose quoted newline ends the file: that one is whole
    e2e_write("runs.csv", "method,seed,final_acc\nno");
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_OK), "%s", err.msg);
    char *s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\nevograd,3,0.9\n") == 0, "%s", s);
    free(s);
    e2e_write("runs.csv", "method,seed,final_acc\nnone,1,\"a\n\"\n");
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\nnone,1,\"a\n\"\nevograd,3,0.9\n") == 0, "%s", s);
    free(s);
}

Test(csv_append, a_tail_that_is_no_cut_off_row_or_broken_quoting_is_an_error)
{
    const char *p = e2e_path("runs.csv");
    struct eg_error err = {0};
    const char *r[] = {"evograd", "3", "0.9"};
    // more cells than the columns: not the start of one of our rows, so it is not dropped
    const char *text = "method,seed,final_acc\nnone,1,0.91\na,b,c,d";
    e2e_write("runs.csv", text);
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, ":3:") != NULL, "the line is named: %s", err.msg);
    char *s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, text) == 0, "the file was modified: %s", s);
    free(s);

    // a quote inside a plain cell, or text after a closing quote: the records cannot be found
    const char *const bad[] = {
        "method,seed,final_acc\nno\"ne,1,0.91\nnone,2,0.5\n",
        "method,seed,final_acc\n\"none\"x,1,0.91\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e2e_write("runs.csv", bad[i]);
        cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_FORMAT), "%zu", i);
        cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
        cr_assert(strstr(err.msg, ":2:") != NULL, "the line is named: %s", err.msg);
        s = e2e_read_bytes("runs.csv", NULL);
        cr_assert(strcmp(s, bad[i]) == 0, "the file was modified: %s", s);
        free(s);
    }
}

// Runs csv_append_locked(path, RUN_COLS, cells) in a child process whose files may not grow past
// limit bytes (RLIMIT_FSIZE, with SIGXFSZ ignored so that write() fails with EFBIG instead of
// killing it). Returns the child's status and copies its error into *err.
static enum eg_status append_in_limited_child(const char *path, const char *const *cells,
                                              rlim_t limit, struct eg_error *err)
{
    int fds[2];
    cr_assert(pipe(fds) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        struct eg_error e = {0};
        if (getrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        rl.rlim_cur = limit;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        e.status = csv_append_locked(path, RUN_COLS, cells, 3, &e);
        // a pipe is not a file: the limit does not apply, and sizeof e < PIPE_BUF is atomic
        _exit(write(fds[1], &e, sizeof e) == (ssize_t)sizeof e ? 0 : 4);
    }
    close(fds[1]);
    size_t got = 0;
    while (got < sizeof *err) {
        ssize_t n = read(fds[0], (char *)err + got, sizeof *err - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int st = 0;
    cr_assert(waitpid(pid, &st, 0) == pid);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    cr_assert(ok, "child failed (status %d)", st);
    cr_assert(eq(sz, got, sizeof *err));
    return err->status;
}

Test(csv_append, failed_write_is_rolled_back)
{
    const char *p = e2e_path("runs.csv");
    const char *text = "method,seed,final_acc\nnone,1,0.91\n";
    const char *r[] = {"evograd", "2", "0.93"};
    e2e_write("runs.csv", text);
    struct eg_error err = {0};
    // 5 bytes of the 15-byte row fit: write() lands them, then fails
    cr_assert(eq(int, append_in_limited_child(p, r, strlen(text) + 5, &err), EG_ERR_IO));
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, strerror(EFBIG)) != NULL, "the cause is reported: %s", err.msg);
    char *s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, text) == 0, "a torn row was left: %s", s);
    free(s);
    // the next append, with room, lands a whole row after the old ones
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_OK), "%s", err.msg);
    s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, "method,seed,final_acc\nnone,1,0.91\nevograd,2,0.93\n") == 0, "%s", s);
    free(s);

    // an empty file stays empty: the header written with the row is undone too
    const char *e = e2e_path("empty.csv");
    e2e_write("empty.csv", "");
    cr_assert(eq(int, append_in_limited_child(e, r, 10, &err), EG_ERR_IO));
    cr_assert(strstr(err.msg, e) != NULL, "%s", err.msg);
    size_t n = 1;
    free(e2e_read_bytes("empty.csv", &n));
    cr_assert(eq(sz, n, 0));

    // a cut-off last row is dropped first, so the file ends at its last whole row
    e2e_write("runs.csv", "method,seed,final_acc\nnone,1,0.91\nnone,2,0.");
    cr_assert(eq(int, append_in_limited_child(p, r, strlen(text) + 5, &err), EG_ERR_IO));
    s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strcmp(s, text) == 0, "%s", s);
    free(s);
}

Test(csv_append, a_device_gets_the_record_and_its_errors_are_reported)
{
    // --runs /dev/null discards the row; a device has no size to check or cut back to
    struct eg_error err = {0};
    const char *r[] = {"evograd", "1", "0.91"};
    cr_assert(eq(int, csv_append_locked("/dev/null", RUN_COLS, r, 3, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, csv_append_locked("/dev/full", RUN_COLS, r, 3, &err), EG_ERR_IO));
    cr_assert(strstr(err.msg, "/dev/full") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, strerror(ENOSPC)) != NULL, "%s", err.msg);
}

Test(csv_append, missing_folder_is_an_io_error_naming_the_file)
{
    const char *p = e2e_path("no/such/runs.csv");
    struct eg_error err = {0};
    const char *r[] = {"evograd", "1", "0.91"};
    cr_assert(eq(int, csv_append_locked(p, RUN_COLS, r, 3, &err), EG_ERR_IO));
    cr_assert(strstr(err.msg, p) != NULL, "%s", err.msg);
}

enum { APPENDERS = 8, ROWS_EACH = 200, PAYLOAD = 300 };

// One appender process: rows "c<child>,<i>,<PAYLOAD copies of a letter>". Returns its exit code.
static int appender(const char *path, int child)
{
    char name[16], idx[16], payload[PAYLOAD + 1];
    snprintf(name, sizeof name, "c%d", child);
    memset(payload, 'a' + child, PAYLOAD);
    payload[PAYLOAD] = '\0';
    const char *const cols[] = {"child", "i", "payload"};
    for (int i = 0; i < ROWS_EACH; i++) {
        snprintf(idx, sizeof idx, "%d", i);
        const char *cells[] = {name, idx, payload};
        struct eg_error err;
        if (csv_append_locked(path, cols, cells, 3, &err) != EG_OK) {
            fprintf(stderr, "child %d: %s\n", child, err.msg);
            return 1;
        }
    }
    return 0;
}

Test(csv_append, concurrent_appenders_each_land_whole_distinct_rows)
{
    const char *p = e2e_path("runs.csv");
    pid_t pids[APPENDERS];
    for (int k = 0; k < APPENDERS; k++) {
        pids[k] = fork();
        cr_assert(pids[k] >= 0, "fork failed");
        if (pids[k] == 0) _exit(appender(p, k));
    }
    for (int k = 0; k < APPENDERS; k++) {
        int st = 0;
        cr_assert(waitpid(pids[k], &st, 0) == pids[k]);
        bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        cr_assert(ok, "child %d failed", k);
    }

    char *s = e2e_read_bytes("runs.csv", NULL);
    size_t lines = 0;
    for (const char *q = s; *q != '\0'; q++) lines += *q == '\n';
    cr_assert(eq(sz, lines, (size_t)(1 + APPENDERS * ROWS_EACH)));
    bool seen[APPENDERS][ROWS_EACH] = {{false}};
    size_t rows = 0;
    char *save = NULL;
    char *line = strtok_r(s, "\n", &save);
    cr_assert(line != NULL && strcmp(line, "child,i,payload") == 0, "header: %s", line);
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        int child = -1, i = -1, used = 0;
        cr_assert(sscanf(line, "c%d,%d,%n", &child, &i, &used) == 2, "torn row: %.40s", line);
        cr_assert(child >= 0 && child < APPENDERS && i >= 0 && i < ROWS_EACH, "%.40s", line);
        const char *pay = line + used;
        cr_assert(eq(sz, strlen(pay), (size_t)PAYLOAD), "torn row: %.40s", line);
        size_t j = 0;
        while (j < PAYLOAD && pay[j] == 'a' + child) j++;
        cr_assert(eq(sz, j, (size_t)PAYLOAD), "mixed row at c%d,%d", child, i);
        cr_assert(seen[child][i] == false, "duplicate row c%d,%d", child, i);
        seen[child][i] = true;
        rows++;
    }
    cr_assert(eq(sz, rows, (size_t)(APPENDERS * ROWS_EACH)));
    free(s);
}

enum { ONE_ROW_APPENDERS = 8 };

Test(csv_append, concurrent_appenders_each_land_one_quoted_row)
{
    // The children wait on a pipe that the parent closes once all exist, so they append at once.
    const char *p = e2e_path("runs.csv");
    int gate[2];
    cr_assert(pipe(gate) == 0);
    pid_t pids[ONE_ROW_APPENDERS];
    for (int k = 0; k < ONE_ROW_APPENDERS; k++) {
        pids[k] = fork();
        cr_assert(pids[k] >= 0, "fork failed");
        if (pids[k] == 0) {
            close(gate[1]);
            char go;
            while (read(gate[0], &go, 1) < 0 && errno == EINTR) {}
            char seed[16], dir[64];
            snprintf(seed, sizeof seed, "%d", k);
            snprintf(dir, sizeof dir, "out \"%d\",\nline %d", k, k);
            const char *cells[] = {"evograd", seed, dir};
            struct eg_error err;
            if (csv_append_locked(p, RUN_COLS, cells, 3, &err) != EG_OK) {
                fprintf(stderr, "child %d: %s\n", k, err.msg);
                _exit(1);
            }
            _exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]);
    for (int k = 0; k < ONE_ROW_APPENDERS; k++) {
        int st = 0;
        cr_assert(waitpid(pids[k], &st, 0) == pids[k]);
        bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        cr_assert(ok, "child %d failed", k);
    }

    char *s = e2e_read_bytes("runs.csv", NULL);
    cr_assert(strncmp(s, "method,seed,final_acc\n", 22) == 0, "%s", s);
    cr_assert(strstr(s + 1, "method,seed") == NULL, "a second header: %s", s);
    cr_assert(eq(sz, csv_text_records(s), (size_t)(1 + ONE_ROW_APPENDERS)), "%s", s);
    bool seen[ONE_ROW_APPENDERS] = {false};
    for (size_t r = 1; r <= ONE_ROW_APPENDERS; r++) {
        char *seed = csv_text_cell(s, r, 1);
        cr_assert(seed != NULL, "record %zu", r);
        char *end = NULL;
        long k = strtol(seed, &end, 10);
        cr_assert(end[0] == '\0' && k >= 0 && k < ONE_ROW_APPENDERS && !seen[k], "record %zu: %s",
                  r, seed);
        seen[k] = true;
        char want[64];
        snprintf(want, sizeof want, "out \"%ld\",\nline %ld", k, k);
        assert_record(s, r, (const char *const[]){"evograd", seed, want}, 3);
        free(seed);
    }
    free(s);
}
