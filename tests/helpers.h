/* helpers.h - shared test utilities: float comparison with a located report, PyTorch reference
 * files (tests/data, format in tests/data/README.md), and the generic finite-difference
 * gradient check for any layer. Tests run with tests/ as the working directory. */
#ifndef EG_TEST_HELPERS_H
#define EG_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nn/layer.h"

struct rng;

// Asserts |got[i] - want[i]| <= atol + rtol*|want[i]| for all i; on failure reports what, the
// first bad index, the values and the largest difference (cr_assert_fail).
void assert_close(const char *what, const float *got, const double *want, size_t n, double atol,
                  double rtol);
// Same for a float reference.
void assert_close_f(const char *what, const float *got, const float *want, size_t n, double atol,
                    double rtol);

// A parsed reference file: sections "name: v0 v1 ...". Aborts the test if it cannot be read.
struct ref;
struct ref *ref_load(const char *path);
void ref_free(struct ref *r);
// The values of a section and their count (*n); the test fails if the section is missing.
const double *ref_get(const struct ref *r, const char *name, size_t *n);
// Copies a section into a new float array (caller frees); checks that it has exactly n values.
float *ref_floats(const struct ref *r, const char *name, size_t n);

// Finite-difference check of one layer's backward pass, in double precision:
// L = sum_i g_i * y_i (accumulated in double) for a fixed random g; analytic dL/dx[i] and
// dL/dparams from ops->backward are compared with central differences (L(v+h) - L(v-h)) / 2h
// for every input element and every parameter. Then the tangent passes (layer.h: tforward,
// tbackward, required of every layer) along a random direction of the inputs, parameters and
// dy (and once more with no input tangent), against central differences of forward and
// backward along it, with the same h and tol. Running statistics are restored before every
// forward, so LAYER_MODE_TRAIN may be checked. Returns nothing; fails the test with the worst
// element when max|fd - analytic| > tol * max(1, max|analytic|).
//   x: NULL for U(-1, 1) inputs, or x[i] = (in_shape[i], n) CNHW values chosen by the test
//      (e.g. kept away from ReLU / max-pool kinks); params: NULL for ops->init, else (nparams).
struct gradcheck_opts {
    size_t n;            // batch size
    enum layer_mode mode;
    double h;            // finite-difference step (1e-2 suits float32 layers with O(1) values)
    double tol;
    unsigned long seed;
    const float *const *x;
    const float *params;
};
void gradcheck_layer(const char *what, struct layer *l, const struct gradcheck_opts *o);

struct meta_problem;
// A meta-problem's train_loss_tangent (problem.h) along random directions u (|u| = 1) against
// central differences of train_loss's dtheta and dlambda at theta +- h u, in double from the
// float gradients, for 8 directions of seed's generator: hvp and mixed must agree to tol of the
// largest finite difference, plus the rounding floor of float gradients differenced over h (4
// units of 2^-24 of the gradient's size, / h). A direction along which the two one-sided
// differences disagree straddles a ReLU or max-pool kink and is skipped; more than 4 such
// directions fail. Also checks that the tangent pass returns train_loss's loss. A task's noise
// (p->rng) is replayed from its state at the call for every evaluation (one draw).
void check_problem_tangent(const char *what, struct meta_problem *p, const float *theta,
                           const float *lambda, double h, double tol, unsigned long seed);

// Runs ops->forward with fresh buffers: a convenience for tests. y: (out_shape, n) written.
void layer_run_forward(struct layer *l, size_t n, enum layer_mode mode, const float *params,
                       float *stats, const float *const *x, float *y);

// Frees l->state the way the net does (ops->destroy, else free).
void layer_release(struct layer *l);

// Init of the suites whose checks take float32 finite differences through whole networks: their
// convolutions run oneDNN direct. Winograd's transforms (the default on AVX-512) round each
// output to ~1e-6 of the layer's scale, which a float difference quotient at these steps cannot
// tell from a ReLU kink; Winograd's own gradients are compared with im2col on every backbone
// convolution in test_conv2d.c.
void use_direct_convolutions(void);

// End-to-end runs of the evograd binary (EVOGRAD_BIN, set by `make test`) in a fresh temporary
// folder e2e_dir (e2e_setup / e2e_teardown as a suite's .init / .fini).
extern char e2e_dir[64];
void e2e_setup(void);
void e2e_teardown(void);
const char *e2e_bin(void);
// e2e_dir/rel, in one of 8 rotating buffers (valid for the next 7 calls).
const char *e2e_path(const char *rel);
// Creates the folder e2e_dir/rel; writes n bytes to the file e2e_dir/rel.
void e2e_mkdir(const char *rel);
void e2e_write_bytes(const char *rel, const void *data, size_t n);
// Writes / reads (caller frees; NULL when missing) a file at e2e_dir/rel.
void e2e_write(const char *rel, const char *text);
char *e2e_read(const char *rel);
// The whole file e2e_dir/rel (caller frees), with a NUL after its *n bytes so that a text file
// is also a string; n may be NULL. Fails the test if the file cannot be read (e2e_read returns
// NULL instead).
void *e2e_read_bytes(const char *rel, size_t *n);
// dir/metrics.csv (dir relative to e2e_dir) with its clock columns, wall_s and peak_rss_mb (3
// and 9), blanked: what a resumed run must reproduce exactly (caller frees).
char *e2e_metrics_without_clock(const char *dir);
// Runs the binary with args (NULL-terminated) in e2e_dir, stdout to stdout.txt and stderr to
// stderr.txt there. Returns the exit status (128 + signal if killed). If kill_when (a path) is
// not NULL, sends SIGTERM as soon as that file exists.
int e2e_run(const char *const *args, const char *kill_when);
// Starts the binary with args (NULL-terminated, the binary's name excluded) in e2e_dir, without
// waiting: stdout to /dev/null, stderr to err_file (relative to e2e_dir, or /dev/null). Returns
// the child's pid for e2e_wait, which returns its exit status (128 + signal if killed).
pid_t e2e_spawn(const char *const *args, const char *err_file);
int e2e_wait(pid_t pid);
// The number in column col (0-based) of data row r (1-based; 0 the header) of a CSV text; NAN
// for an empty cell. Fails the test when the row or column does not exist.
double csv_cell(const char *text, size_t r, size_t col);
// Data rows of a CSV text (lines after the header).
size_t csv_data_rows(const char *text);
// RFC 4180 reading of a CSV text, written apart from lib/io/csv.c so that it can check it: a
// cell is either plain (up to the next ',' or '\n') or quoted ('"' ... '"', with '""' for a
// quote and any ',', '\r' or '\n' inside). The number of records, the header included; a last
// record without its '\n' counts too. Fails the test on malformed quoting.
size_t csv_text_records(const char *text);
// Cell col (0-based) of record r (0 the header), unquoted, as a new string (caller frees); NULL
// when that record or column does not exist. Fails the test on malformed quoting.
char *csv_text_cell(const char *text, size_t r, size_t col);

// A PNG exactly as stored: data holds h rows of packed samples (16-bit ones big-endian, as in
// the file; sub-byte ones packed from the high bits).
struct png_spec {
    uint32_t w, h;
    int color_type, bit_depth; // libpng's PNG_COLOR_TYPE_*, 1..16
    const uint8_t *data;
    const void *palette;       // png_color[npalette], or NULL
    int npalette;
    const uint8_t *trns;       // palette alpha, ntrns entries, or NULL
    int ntrns;
    bool interlace;            // Adam7
};
// Writes the PNG s at path (libpng); fails the test if it cannot.
void png_write_spec(const char *path, const struct png_spec *s);
// An 8-bit grey PNG of h x w pixels (row-major) at path.
void png_write_grey(const char *path, size_t h, size_t w, const uint8_t *pix);

#endif // EG_TEST_HELPERS_H
