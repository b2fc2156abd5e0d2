/* test_data_formats.c - the IDX and CIFAR loaders and the synthetic dataset.
 * Fixture files are written by the tests (IDX gzipped with zlib and raw, CIFAR batches) into the
 * shared temporary folder e2e_dir (helpers.h: e2e_setup in .init makes a fresh one per test,
 * e2e_teardown in .fini removes it), so parallel test processes never share files. Every error
 * test checks the status, that the message names the file and the problem, and that *out is left
 * untouched. The Fashion-MNIST tests are skipped when the data set is not installed. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "core/alloc.h"
#include "core/status.h"
#include "data/dataset.h"
#include "helpers.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

// ---------------------------------------------------------------------------------------------
// fixture folder (e2e_dir, helpers.h) and the gzip writer

TestSuite(idx, .init = e2e_setup, .fini = e2e_teardown);
TestSuite(cifar, .init = e2e_setup, .fini = e2e_teardown);

// Writes len bytes gzipped (zlib) to the fixture file e2e_dir/rel.
static void write_gz(const char *rel, const void *bytes, size_t len)
{
    const char *path = e2e_path(rel);
    gzFile g = gzopen(path, "wb");
    cr_assert(g != NULL, "cannot create %s", path);
    cr_assert(eq(int, gzwrite(g, bytes, (unsigned)len), (int)len));
    cr_assert(eq(int, gzclose(g), Z_OK));
}

// ---------------------------------------------------------------------------------------------
// IDX fixtures: 7 images of 5 x 4 and their labels, in memory as IDX byte strings

enum { FX_N = 7, FX_H = 5, FX_W = 4 };

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// An IDX file in buf: magic, ndim sizes, then len data bytes. Returns its length.
static size_t idx_bytes(uint8_t *buf, uint32_t magic, const uint32_t *dims, int ndim,
                        const uint8_t *data, size_t len)
{
    put_be32(buf, magic);
    for (int k = 0; k < ndim; k++)
        put_be32(buf + 4 + 4 * k, dims[k]);
    if (len > 0) memcpy(buf + 4 + 4 * ndim, data, len);
    return 4 + 4 * (size_t)ndim + len;
}

static uint8_t fx_pixel(size_t i, size_t y, size_t x)
{
    return (uint8_t)(i * 37 + y * 11 + x * 3 + (i * y * x) % 7);
}

static uint8_t fx_label(size_t i)
{
    return (uint8_t)((i * 3 + 1) % 10);
}

// The fixture images file (n images; pixel data cut to `keep` bytes, then `extra` bytes added).
static size_t fx_images(uint8_t *buf, uint32_t n, size_t keep, size_t extra)
{
    uint8_t px[FX_N * FX_H * FX_W + 16] = {0};
    for (size_t i = 0; i < FX_N; i++) {
        for (size_t y = 0; y < FX_H; y++) {
            for (size_t x = 0; x < FX_W; x++)
                px[(i * FX_H + y) * FX_W + x] = fx_pixel(i, y, x);
        }
    }
    const uint32_t dims[3] = {n, FX_H, FX_W};
    return idx_bytes(buf, 0x00000803, dims, 3, px, keep + extra);
}

static size_t fx_labels(uint8_t *buf, uint32_t n, size_t extra)
{
    uint8_t lb[FX_N + 16] = {0};
    for (size_t i = 0; i < FX_N; i++)
        lb[i] = fx_label(i);
    const uint32_t dims[1] = {n};
    return idx_bytes(buf, 0x00000801, dims, 1, lb, n + extra);
}

#define FX_PIXELS ((size_t)FX_N * FX_H * FX_W)

static void check_shape(struct shape got, size_t c, size_t h, size_t w)
{
    cr_assert(got.c == c && got.h == h && got.w == w, "shape %zu x %zu x %zu, want %zu x %zu x %zu",
              got.c, got.h, got.w, c, h, w);
}

// Writes the standard good pair as images.idx(.gz) and labels.idx(.gz).
static void write_good_pair(bool gz, const char **images, const char **labels)
{
    uint8_t buf[512];
    const char *image_name = gz ? "images.idx.gz" : "images.idx";
    const char *label_name = gz ? "labels.idx.gz" : "labels.idx";
    size_t n = fx_images(buf, FX_N, FX_PIXELS, 0);
    (gz ? write_gz : e2e_write_bytes)(image_name, buf, n);
    n = fx_labels(buf, FX_N, 0);
    (gz ? write_gz : e2e_write_bytes)(label_name, buf, n);
    *images = e2e_path(image_name);
    *labels = e2e_path(label_name);
}

static void check_fixture_dataset(const struct dataset *d)
{
    cr_assert(eq(sz, d->n, FX_N));
    check_shape(d->shape, 1, FX_H, FX_W);
    cr_assert(eq(sz, d->classes, 10));
    cr_assert(d->class_names == NULL);
    for (size_t i = 0; i < FX_N; i++) {
        cr_assert(eq(i32, d->labels[i], fx_label(i)), "label %zu", i);
        cr_assert(eq(i32, d->clean_labels[i], fx_label(i)), "clean label %zu", i);
        for (size_t y = 0; y < FX_H; y++) {
            for (size_t x = 0; x < FX_W; x++) {
                cr_assert(eq(u8, d->pixels[(i * FX_H + y) * FX_W + x], fx_pixel(i, y, x)),
                          "pixel (%zu, %zu, %zu)", i, y, x);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// failure checks: status, message (path + problem words), *out untouched

#define UNTOUCHED 0xA5

static void poison(struct dataset *d)
{
    memset(d, UNTOUCHED, sizeof *d);
}

// Checks a failed load: status, err.status, every NULL-terminated needle in err.msg, and that
// every byte of *out still holds the poison pattern.
static void check_failure(enum eg_status got, enum eg_status want, const struct eg_error *err,
                          const struct dataset *out, ...)
{
    cr_assert(eq(int, got, want), "status %s, want %s (%s)", eg_status_name(got),
              eg_status_name(want), err->msg);
    cr_assert(eq(int, err->status, want));
    va_list ap;
    va_start(ap, out);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;) {
        cr_assert(strstr(err->msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err->msg,
                  needle);
    }
    va_end(ap);
    const uint8_t *b = (const uint8_t *)out;
    for (size_t k = 0; k < sizeof *out; k++) {
        cr_assert(eq(u8, b[k], UNTOUCHED), "*out was written (byte %zu)", k);
    }
}

// idx_load with a poisoned output; the failure is checked against want and the needles.
#define IDX_FAILS(images, labels, classes, want, ...)                                              \
    do {                                                                                           \
        struct dataset out_;                                                                       \
        struct eg_error err_ = {0};                                                                \
        poison(&out_);                                                                             \
        enum eg_status st_ = idx_load((images), (labels), (classes), &out_, &err_);                \
        check_failure(st_, (want), &err_, &out_, __VA_ARGS__, (const char *)NULL);                 \
    } while (0)

// ---------------------------------------------------------------------------------------------
// IDX: round trips

Test(idx, loads_gzipped_pair_pixel_for_pixel)
{
    const char *images, *labels;
    write_good_pair(true, &images, &labels);
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, idx_load(images, labels, 10, &d, &err), EG_OK), "%s", err.msg);
    check_fixture_dataset(&d);
    dataset_deinit(&d);
}

Test(idx, loads_raw_pair_pixel_for_pixel)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, idx_load(images, labels, 10, &d, &err), EG_OK), "%s", err.msg);
    check_fixture_dataset(&d);
    dataset_deinit(&d);
}

Test(idx, loads_gzipped_images_with_raw_labels)
{
    const char *gz_images, *gz_labels, *images, *labels;
    write_good_pair(true, &gz_images, &gz_labels);
    write_good_pair(false, &images, &labels);
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, idx_load(gz_images, labels, 10, &d, &err), EG_OK), "%s", err.msg);
    check_fixture_dataset(&d);
    dataset_deinit(&d);
}

// ---------------------------------------------------------------------------------------------
// IDX: errors

Test(idx, rejects_missing_images_file)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    const char *missing = e2e_path("no-such-images.gz");
    IDX_FAILS(missing, labels, 10, EG_ERR_IO, missing, "cannot open", "No such file");
}

Test(idx, rejects_missing_labels_file)
{
    const char *images, *labels;
    write_good_pair(true, &images, &labels);
    const char *missing = e2e_path("no-such-labels.gz");
    IDX_FAILS(images, missing, 10, EG_ERR_IO, missing, "labels", "No such file");
}

Test(idx, rejects_unreadable_file)
{
    // A folder opens but cannot be read (permission bits would not stop a root test run).
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    const char *folder = e2e_path("a-folder");
    cr_assert(mkdir(folder, 0700) == 0);
    IDX_FAILS(folder, labels, 10, EG_ERR_IO, folder, "read error", "Is a directory");
}

Test(idx, rejects_bad_images_magic_naming_found_and_expected)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    uint8_t buf[512];
    size_t n = fx_images(buf, FX_N, FX_PIXELS, 0);
    put_be32(buf, 0x89504e47); // a PNG signature
    e2e_write_bytes("bad-magic.idx", buf, n);
    const char *bad = e2e_path("bad-magic.idx");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "bad magic", "0x89504e47", "0x00000803");
}

Test(idx, rejects_bad_labels_magic)
{
    const char *images, *labels;
    write_good_pair(true, &images, &labels);
    uint8_t buf[512];
    size_t n = fx_labels(buf, FX_N, 0);
    put_be32(buf, 0x00000d01); // element type 0x0d (float), 1 dimension
    write_gz("bad-magic-labels.gz", buf, n);
    const char *bad = e2e_path("bad-magic-labels.gz");
    IDX_FAILS(images, bad, 10, EG_ERR_FORMAT, bad, "bad magic", "0x00000d01", "0x00000801");
}

Test(idx, rejects_wrong_number_of_dimensions)
{
    // The labels file given as the images file: unsigned bytes, but 1 dimension, not 3.
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    IDX_FAILS(labels, labels, 10, EG_ERR_FORMAT, labels, "has 1 dimension (", "expected 3",
              "0x00000801");
    IDX_FAILS(images, images, 10, EG_ERR_FORMAT, images, "labels file has 3 dimensions",
              "expected 1");
}

Test(idx, rejects_zero_dimension)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    uint8_t buf[512];
    const uint32_t dims[3] = {FX_N, 0, FX_W};
    size_t n = idx_bytes(buf, 0x00000803, dims, 3, NULL, 0);
    e2e_write_bytes("zero-h.idx", buf, n);
    const char *bad = e2e_path("zero-h.idx");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "zero dimension", "h=0");
}

Test(idx, rejects_absurd_sizes_without_allocating_them)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    uint8_t buf[512];
    // n*h*w = 2^32 * 2^32 / 2 overflows 64 bits if multiplied blindly; h*w alone is absurd.
    const uint32_t huge_image[3] = {0xffffffffu, 0xffffu, 0xffffu};
    size_t n = idx_bytes(buf, 0x00000803, huge_image, 3, NULL, 0);
    e2e_write_bytes("huge-image.idx", buf, n);
    const char *bad = e2e_path("huge-image.idx");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "absurd", "h=65535");
    // Small images but 4 billion of them: 16 GiB of pixels.
    const uint32_t many[3] = {0xffffffffu, 2, 2};
    n = idx_bytes(buf, 0x00000803, many, 3, NULL, 0);
    e2e_write_bytes("many-images.idx", buf, n);
    bad = e2e_path("many-images.idx");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "absurd", "n=4294967295");
}

Test(idx, rejects_truncated_raw_pixels_with_expected_and_got)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    uint8_t buf[512];
    size_t n = fx_images(buf, FX_N, FX_PIXELS - 61, 0);
    e2e_write_bytes("short.idx", buf, n);
    const char *bad = e2e_path("short.idx");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "truncated", "expected 140 bytes", "got 79");
}

Test(idx, rejects_truncated_labels)
{
    const char *images, *labels;
    write_good_pair(true, &images, &labels);
    uint8_t buf[512];
    size_t n = fx_labels(buf, FX_N, 0) - 2;
    write_gz("short-labels.gz", buf, n);
    const char *bad = e2e_path("short-labels.gz");
    IDX_FAILS(images, bad, 10, EG_ERR_FORMAT, bad, "truncated", "labels", "expected 7 bytes",
              "got 5");
}

Test(idx, rejects_truncated_header_and_empty_file)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    uint8_t buf[512];
    fx_images(buf, FX_N, FX_PIXELS, 0);
    e2e_write_bytes("short-header.idx", buf, 10);
    const char *bad = e2e_path("short-header.idx");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "truncated", "dimension sizes",
              "expected 12 bytes", "got 6");
    e2e_write_bytes("empty.idx", buf, 0);
    const char *empty = e2e_path("empty.idx");
    IDX_FAILS(empty, labels, 10, EG_ERR_FORMAT, empty, "truncated", "magic", "got 0");
}

Test(idx, rejects_trailing_bytes)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    uint8_t buf[512];
    size_t n = fx_images(buf, FX_N, FX_PIXELS, 3);
    write_gz("long.idx.gz", buf, n);
    const char *bad = e2e_path("long.idx.gz");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "3 trailing bytes");
    n = fx_labels(buf, FX_N, 1);
    e2e_write_bytes("long-labels.idx", buf, n);
    bad = e2e_path("long-labels.idx");
    IDX_FAILS(images, bad, 10, EG_ERR_FORMAT, bad, "1 trailing byte after", "labels");
}

Test(idx, rejects_count_mismatch_naming_both_files)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    uint8_t buf[512];
    size_t n = fx_labels(buf, FX_N - 1, 0);
    e2e_write_bytes("six-labels.idx", buf, n);
    const char *six = e2e_path("six-labels.idx");
    IDX_FAILS(images, six, 10, EG_ERR_FORMAT, images, six, "7 images", "6 labels");
}

Test(idx, rejects_label_out_of_range_naming_index_and_value)
{
    const char *images, *labels;
    write_good_pair(false, &images, &labels);
    // Fixture labels are (3i + 1) % 10: index 3 has label 0, index 2 has label 7.
    IDX_FAILS(images, labels, 7, EG_ERR_FORMAT, labels, "label 7 at index 2", "[0, 7)");
    IDX_FAILS(images, labels, 0, EG_ERR_ARG, labels, "0 classes");
}

// A compressible images file (200 images of 5 x 4), gzipped, as BIG_GZ in the fixture folder; its
// bytes are returned (caller frees), *len their count.
#define BIG_GZ "big.idx.gz"
static uint8_t *write_big_gz(size_t *len)
{
    enum { N = 200 };
    uint8_t *buf = eg_xmalloc(16 + N * FX_H * FX_W);
    const uint32_t dims[3] = {N, FX_H, FX_W};
    put_be32(buf, 0x00000803);
    for (int k = 0; k < 3; k++)
        put_be32(buf + 4 + 4 * k, dims[k]);
    for (size_t j = 0; j < (size_t)N * FX_H * FX_W; j++)
        buf[16 + j] = (uint8_t)(j % 61 + j / 97);
    write_gz(BIG_GZ, buf, 16 + (size_t)N * FX_H * FX_W);
    free(buf);
    return e2e_read_bytes(BIG_GZ, len);
}

static const char *write_big_labels(void)
{
    uint8_t buf[8 + 200];
    const uint32_t dims[1] = {200};
    uint8_t lb[200];
    for (size_t i = 0; i < 200; i++)
        lb[i] = (uint8_t)(i % 10);
    e2e_write_bytes("big-labels.idx", buf, idx_bytes(buf, 0x00000801, dims, 1, lb, 200));
    const char *path = e2e_path("big-labels.idx");
    return path;
}

Test(idx, loads_larger_gzip_fixture)
{
    // The base of the two gzip-damage tests below must itself be fine.
    const char *labels = write_big_labels();
    const char *images = e2e_path(BIG_GZ);
    size_t len;
    free(write_big_gz(&len));
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, idx_load(images, labels, 10, &d, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(sz, d.n, 200));
    for (size_t j = 0; j < d.n * FX_H * FX_W; j++) {
        cr_assert(eq(u8, d.pixels[j], (uint8_t)(j % 61 + j / 97)), "pixel %zu", j);
    }
    dataset_deinit(&d);
}

Test(idx, rejects_corrupt_gzip_with_zlib_message)
{
    const char *labels = write_big_labels();
    const char *images = e2e_path(BIG_GZ);
    size_t len;
    uint8_t *gz = write_big_gz(&len);
    cr_assert(gt(sz, len, 60));
    // Bytes flipped inside the deflate data: caught at the latest by the CRC-32 in the trailer.
    for (size_t k = len / 2 - 4; k < len / 2 + 4; k++)
        gz[k] ^= 0x5a;
    e2e_write_bytes(BIG_GZ, gz, len);
    IDX_FAILS(images, labels, 10, EG_ERR_FORMAT, images, "corrupt gzip");
    // The first deflate block header (after the 10-byte gzip header) given the reserved
    // block type 3: caught by inflate itself.
    for (size_t k = len / 2 - 4; k < len / 2 + 4; k++)
        gz[k] ^= 0x5a;
    gz[10] |= 0x06;
    e2e_write_bytes(BIG_GZ, gz, len);
    free(gz);
    IDX_FAILS(images, labels, 10, EG_ERR_FORMAT, images, "corrupt gzip", "invalid block type");
}

Test(idx, rejects_gzip_cut_in_half)
{
    const char *labels = write_big_labels();
    const char *images = e2e_path(BIG_GZ);
    size_t len;
    uint8_t *gz = write_big_gz(&len);
    e2e_write_bytes(BIG_GZ, gz, len / 2);
    free(gz);
    IDX_FAILS(images, labels, 10, EG_ERR_FORMAT, images, "truncated", "unexpected end of file",
              "expected 4000 bytes");
}

Test(idx, rejects_gzip_missing_its_trailer)
{
    // All the data is there; only the 8-byte CRC-32 and length trailer is cut off.
    const char *labels = write_big_labels();
    const char *images = e2e_path(BIG_GZ);
    size_t len;
    uint8_t *gz = write_big_gz(&len);
    e2e_write_bytes(BIG_GZ, gz, len - 8);
    free(gz);
    IDX_FAILS(images, labels, 10, EG_ERR_FORMAT, images, "truncated gzip");
}

// ---------------------------------------------------------------------------------------------
// IDX: the gzip trailer (CRC-32 and length) of every gzipped file is checked

// A gzipped pair of 1,400 images of 28 x 28 (1.1 MB of pixels, more than zlib's gzread buffers,
// the size at which it used to skip the trailer check) and their labels: GZ_IMAGES, GZ_LABELS.
#define GZ_IMAGES "pair-images.idx.gz"
#define GZ_LABELS "pair-labels.idx.gz"
enum { GZ_N = 1400, GZ_SIDE = 28 };

static uint8_t gz_pixel(size_t j)
{
    return (uint8_t)(j % 251 + j / 4099);
}

static void write_large_gz_pair(const char **images, const char **labels)
{
    size_t npx = (size_t)GZ_N * GZ_SIDE * GZ_SIDE;
    uint8_t *buf = eg_xmalloc(16 + npx);
    const uint32_t idims[3] = {GZ_N, GZ_SIDE, GZ_SIDE};
    for (size_t j = 0; j < npx; j++)
        buf[16 + j] = gz_pixel(j);
    write_gz(GZ_IMAGES, buf, idx_bytes(buf, 0x00000803, idims, 3, buf + 16, npx));
    const uint32_t ldims[1] = {GZ_N};
    for (size_t i = 0; i < GZ_N; i++)
        buf[8 + i] = (uint8_t)(i % 10);
    write_gz(GZ_LABELS, buf, idx_bytes(buf, 0x00000801, ldims, 1, buf + 8, GZ_N));
    free(buf);
    *images = e2e_path(GZ_IMAGES);
    *labels = e2e_path(GZ_LABELS);
}

// A path kept out of e2e_path's rotating buffers (the damage loops below call it many times).
struct kept_path {
    char s[512];
};

static struct kept_path keep_path(const char *path)
{
    struct kept_path k;
    snprintf(k.s, sizeof k.s, "%s", path);
    return k;
}

// Rewrites the fixture file rel as bad_rel with its last `cut` bytes removed and, unless
// flip == 0, the byte `flip_at` bytes before the (cut) end XORed with flip. Returns its path.
static struct kept_path damaged_copy(const char *rel, const char *bad_rel, size_t cut,
                                     size_t flip_at, uint8_t flip)
{
    size_t len = 0;
    uint8_t *bytes = e2e_read_bytes(rel, &len);
    cr_assert(gt(sz, len, cut + flip_at), "%s has only %zu bytes", rel, len);
    len -= cut;
    if (flip != 0) bytes[len - flip_at] ^= flip;
    e2e_write_bytes(bad_rel, bytes, len);
    free(bytes);
    return keep_path(e2e_path(bad_rel));
}

// Loads the pair in which the images file (which == 0) or the labels file (which == 1) is
// replaced by bad; it must fail with EG_ERR_FORMAT, naming bad and the needle.
static void check_damaged(const char *images, const char *labels, int which, const char *bad,
                          const char *needle)
{
    if (which == 0) {
        IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, needle);
    } else {
        IDX_FAILS(images, bad, 10, EG_ERR_FORMAT, bad, needle);
    }
}

// Every cut of 1..9 bytes (the 8-byte trailer, then into the deflate data) of both files.
static void check_all_cuts(const char *images_path, const char *labels_path,
                           const char *const rel[2])
{
    struct kept_path images = keep_path(images_path), labels = keep_path(labels_path);
    for (int which = 0; which < 2; which++) {
        for (size_t cut = 1; cut <= 9; cut++) {
            struct kept_path bad = damaged_copy(rel[which], "cut.idx.gz", cut, 0, 0);
            check_damaged(images.s, labels.s, which, bad.s, "truncated gzip stream");
        }
    }
}

Test(idx, loads_large_gzip_pair)
{
    // The base of the damage tests below must itself load, pixel for pixel.
    const char *images, *labels;
    write_large_gz_pair(&images, &labels);
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, idx_load(images, labels, 10, &d, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(sz, d.n, GZ_N));
    check_shape(d.shape, 1, GZ_SIDE, GZ_SIDE);
    for (size_t j = 0; j < d.n * GZ_SIDE * GZ_SIDE; j++) {
        cr_assert(eq(u8, d.pixels[j], gz_pixel(j)), "pixel %zu", j);
    }
    cr_assert(eq(i32, d.labels[GZ_N - 1], (GZ_N - 1) % 10));
    dataset_deinit(&d);
}

Test(idx, rejects_large_gzip_cut_by_1_to_9_bytes_naming_the_file)
{
    const char *images, *labels;
    write_large_gz_pair(&images, &labels);
    const char *const rel[2] = {GZ_IMAGES, GZ_LABELS};
    check_all_cuts(images, labels, rel);
}

Test(idx, rejects_small_gzip_cut_by_1_to_9_bytes_naming_the_file)
{
    const char *images, *labels;
    write_good_pair(true, &images, &labels);
    const char *const rel[2] = {"images.idx.gz", "labels.idx.gz"};
    check_all_cuts(images, labels, rel);
}

Test(idx, rejects_crc_or_length_mismatch_in_the_gzip_trailer)
{
    // Trailer: CRC-32 (the last 8 to 5 bytes), then the length mod 2^32 (the last 4), both
    // little-endian. One flipped bit in any of the 8 bytes of either file is refused.
    const char *path_a, *path_b;
    write_large_gz_pair(&path_a, &path_b);
    struct kept_path images = keep_path(path_a), labels = keep_path(path_b);
    write_good_pair(true, &path_a, &path_b);
    struct kept_path small_images = keep_path(path_a), small_labels = keep_path(path_b);
    const char *const rel[2] = {GZ_IMAGES, GZ_LABELS};
    const char *const small_rel[2] = {"images.idx.gz", "labels.idx.gz"};
    for (int which = 0; which < 2; which++) {
        for (size_t at = 1; at <= 8; at++) {
            const char *needle = at > 4 ? "CRC mismatch" : "length mismatch";
            struct kept_path bad = damaged_copy(rel[which], "flip.idx.gz", 0, at, 0x01);
            check_damaged(images.s, labels.s, which, bad.s, needle);
            bad = damaged_copy(small_rel[which], "flip.idx.gz", 0, at, 0x80);
            check_damaged(small_images.s, small_labels.s, which, bad.s, needle);
        }
    }
}

Test(idx, rejects_bytes_after_the_gzip_stream)
{
    // zlib's gzread ignores anything after a gzip member that is not another member.
    const char *images, *labels;
    write_good_pair(true, &images, &labels);
    size_t len = 0;
    uint8_t *bytes = e2e_read_bytes("images.idx.gz", &len);
    uint8_t *longer = eg_xmalloc(len + 3);
    memcpy(longer, bytes, len);
    memcpy(longer + len, "\0\0\n", 3);
    e2e_write_bytes("padded.idx.gz", longer, len + 3);
    free(longer);
    free(bytes);
    const char *bad = e2e_path("padded.idx.gz");
    IDX_FAILS(bad, labels, 10, EG_ERR_FORMAT, bad, "trailing bytes after the gzip stream");
}

Test(idx, loads_gzip_file_of_two_members)
{
    // RFC 1952: a gzip file is a series of members; `cat a.gz b.gz` decompresses to a then b.
    const char *images, *labels_path;
    write_good_pair(true, &images, &labels_path);
    struct kept_path labels = keep_path(labels_path);
    uint8_t buf[512];
    size_t n = fx_images(buf, FX_N, FX_PIXELS, 0);
    write_gz("part1.gz", buf, 50);
    write_gz("part2.gz", buf + 50, n - 50);
    size_t len1 = 0, len2 = 0;
    uint8_t *p1 = e2e_read_bytes("part1.gz", &len1);
    uint8_t *p2 = e2e_read_bytes("part2.gz", &len2);
    uint8_t *both = eg_xmalloc(len1 + len2);
    memcpy(both, p1, len1);
    memcpy(both + len1, p2, len2);
    e2e_write_bytes("two-members.idx.gz", both, len1 + len2);
    free(both);
    free(p1);
    free(p2);
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, idx_load(e2e_path("two-members.idx.gz"), labels.s, 10, &d, &err), EG_OK),
              "%s", err.msg);
    check_fixture_dataset(&d);
    dataset_deinit(&d);
}

// ---------------------------------------------------------------------------------------------
// IDX: the real Fashion-MNIST files

static void skip_without_fashion_mnist(void)
{
    struct stat sb;
    if (stat(FASHION_DIR "/t10k-images-idx3-ubyte.gz", &sb) != 0) {
        cr_skip_test("Fashion-MNIST is not installed in " FASHION_DIR);
    }
}

Test(fashion_mnist, t10k_has_10000_images_of_28x28_and_1000_per_class)
{
    skip_without_fashion_mnist();
    struct dataset d;
    struct eg_error err = {0};
    enum eg_status st = idx_load(FASHION_DIR "/t10k-images-idx3-ubyte.gz",
                                 FASHION_DIR "/t10k-labels-idx1-ubyte.gz", 10, &d, &err);
    cr_assert(eq(int, st, EG_OK), "%s", err.msg);
    cr_assert(eq(sz, d.n, 10000));
    check_shape(d.shape, 1, 28, 28);
    size_t counts[10];
    dataset_class_counts(&d, counts);
    for (size_t k = 0; k < 10; k++)
        cr_assert(eq(sz, counts[k], 1000), "class %zu", k);
    // Not all black: real images have ink.
    size_t lit = 0;
    for (size_t j = 0; j < 28 * 28; j++)
        lit += d.pixels[j] > 0;
    cr_assert(gt(sz, lit, 100));
    dataset_deinit(&d);
}

Test(fashion_mnist, first_training_label_is_ankle_boot)
{
    // Fashion-MNIST README: label 9 is "Ankle boot", the first training image.
    skip_without_fashion_mnist();
    struct dataset d;
    struct eg_error err = {0};
    enum eg_status st = idx_load(FASHION_DIR "/train-images-idx3-ubyte.gz",
                                 FASHION_DIR "/train-labels-idx1-ubyte.gz", 10, &d, &err);
    cr_assert(eq(int, st, EG_OK), "%s", err.msg);
    cr_assert(eq(sz, d.n, 60000));
    cr_assert(eq(i32, d.labels[0], 9));
    size_t counts[10];
    dataset_class_counts(&d, counts);
    for (size_t k = 0; k < 10; k++)
        cr_assert(eq(sz, counts[k], 6000), "class %zu", k);
    dataset_deinit(&d);
}

// ---------------------------------------------------------------------------------------------
// CIFAR

#define CIFAR_IMG 3072

static uint8_t cifar_pixel(size_t rec, size_t j)
{
    return (uint8_t)(rec * 101 + j * 7 + j / 1024);
}

// A batch of `records` records with the given label bytes (lb bytes per record), pixels
// cifar_pixel(first + r, j). Returns its path.
static const char *write_cifar(const char *name, size_t records, size_t lb, const uint8_t *labels,
                               size_t first)
{
    size_t rec = lb + CIFAR_IMG;
    uint8_t *buf = eg_xmalloc(records * rec);
    for (size_t r = 0; r < records; r++) {
        memcpy(buf + r * rec, labels + r * lb, lb);
        for (size_t j = 0; j < CIFAR_IMG; j++)
            buf[r * rec + lb + j] = cifar_pixel(first + r, j);
    }
    e2e_write_bytes(name, buf, records * rec);
    free(buf);
    return e2e_path(name);
}

// Checks images [0, n) of d against cifar_pixel (NCHW: the file's planes as they are).
static void check_cifar_pixels(const struct dataset *d)
{
    check_shape(d->shape, 3, 32, 32);
    for (size_t i = 0; i < d->n; i++) {
        for (size_t c = 0; c < 3; c++) {
            for (size_t y = 0; y < 32; y++) {
                for (size_t x = 0; x < 32; x++) {
                    size_t j = (c * 32 + y) * 32 + x;
                    cr_assert(eq(u8, d->pixels[i * CIFAR_IMG + j], cifar_pixel(i, j)),
                              "image %zu c=%zu y=%zu x=%zu", i, c, y, x);
                }
            }
        }
    }
}

#define CIFAR_FAILS(paths, npaths, kind, want, ...)                                                \
    do {                                                                                           \
        struct dataset out_;                                                                       \
        struct eg_error err_ = {0};                                                                \
        poison(&out_);                                                                             \
        enum eg_status st_ = cifar_load((paths), (npaths), (kind), &out_, &err_);                  \
        check_failure(st_, (want), &err_, &out_, __VA_ARGS__, (const char *)NULL);                 \
    } while (0)

Test(cifar, loads_cifar10_batch_as_nchw)
{
    const uint8_t labels[4] = {3, 9, 0, 6};
    const char *paths[1] = {write_cifar("data_batch_1.bin", 4, 1, labels, 0)};
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, cifar_load(paths, 1, CIFAR_KIND_10, &d, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(sz, d.n, 4));
    cr_assert(eq(sz, d.classes, 10));
    cr_assert(d.class_names == NULL);
    for (size_t i = 0; i < 4; i++) {
        cr_assert(eq(i32, d.labels[i], labels[i]));
        cr_assert(eq(i32, d.clean_labels[i], labels[i]));
    }
    check_cifar_pixels(&d);
    dataset_deinit(&d);
}

Test(cifar, concatenates_cifar10_files_in_order)
{
    const uint8_t la[2] = {1, 2}, lb[3] = {7, 8, 9};
    const char *paths[2] = {write_cifar("a.bin", 2, 1, la, 0), write_cifar("b.bin", 3, 1, lb, 2)};
    struct dataset d;
    struct eg_error err = {0};
    cr_assert(eq(int, cifar_load(paths, 2, CIFAR_KIND_10, &d, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(sz, d.n, 5));
    const int32_t want[5] = {1, 2, 7, 8, 9};
    for (size_t i = 0; i < 5; i++)
        cr_assert(eq(i32, d.labels[i], want[i]), "label %zu", i);
    check_cifar_pixels(&d);
    dataset_deinit(&d);
}

Test(cifar, loads_cifar100_fine_and_coarse_labels)
{
    const uint8_t labels[3 * 2] = {19, 99, 0, 0, 7, 42}; // (coarse, fine) per record
    const char *paths[1] = {write_cifar("train.bin", 3, 2, labels, 0)};
    struct dataset fine, coarse;
    struct eg_error err = {0};
    cr_assert(eq(int, cifar_load(paths, 1, CIFAR_KIND_100_FINE, &fine, &err), EG_OK), "%s",
              err.msg);
    cr_assert(eq(int, cifar_load(paths, 1, CIFAR_KIND_100_COARSE, &coarse, &err), EG_OK), "%s",
              err.msg);
    cr_assert(eq(sz, fine.classes, 100));
    cr_assert(eq(sz, coarse.classes, 20));
    for (size_t i = 0; i < 3; i++) {
        cr_assert(eq(i32, coarse.labels[i], labels[2 * i]), "coarse %zu", i);
        cr_assert(eq(i32, fine.labels[i], labels[2 * i + 1]), "fine %zu", i);
        cr_assert(eq(i32, fine.clean_labels[i], fine.labels[i]));
        cr_assert(eq(i32, coarse.clean_labels[i], coarse.labels[i]));
    }
    check_cifar_pixels(&fine);
    check_cifar_pixels(&coarse);
    dataset_deinit(&fine);
    dataset_deinit(&coarse);
}

Test(cifar, rejects_missing_file)
{
    const uint8_t labels[1] = {0};
    const char *paths[2] = {write_cifar("ok.bin", 1, 1, labels, 0), e2e_path("data_batch_9.bin")};
    CIFAR_FAILS(paths, 2, CIFAR_KIND_10, EG_ERR_IO, paths[1], "cannot open", "No such file");
}

Test(cifar, rejects_size_not_whole_records)
{
    const uint8_t labels[2] = {0, 1};
    const char *path = write_cifar("odd.bin", 2, 1, labels, 0);
    uint8_t extra[5] = {0};
    FILE *f = fopen(path, "ab");
    cr_assert(f != NULL && fwrite(extra, 1, 5, f) == 5 && fclose(f) == 0);
    const char *paths[1] = {path};
    CIFAR_FAILS(paths, 1, CIFAR_KIND_10, EG_ERR_FORMAT, path, "size 6151 bytes",
                "not a whole number of 3073-byte", "5 bytes over");
    // The same file read as CIFAR-100 has 3074-byte records.
    CIFAR_FAILS(paths, 1, CIFAR_KIND_100_FINE, EG_ERR_FORMAT, path, "3074-byte");
}

Test(cifar, rejects_empty_file)
{
    const uint8_t nothing[1] = {0};
    e2e_write_bytes("empty.bin", nothing, 0);
    const char *path = e2e_path("empty.bin");
    const char *paths[1] = {path};
    CIFAR_FAILS(paths, 1, CIFAR_KIND_10, EG_ERR_FORMAT, path, "empty");
}

Test(cifar, rejects_folder)
{
    const char *folder = e2e_path("batches");
    cr_assert(mkdir(folder, 0700) == 0);
    const char *paths[1] = {folder};
    CIFAR_FAILS(paths, 1, CIFAR_KIND_10, EG_ERR_IO, folder, "not a regular file");
}

Test(cifar, rejects_label_out_of_range_naming_record_and_value)
{
    const uint8_t good[2] = {0, 1}, bad[3] = {4, 10, 2};
    const char *paths[2] = {write_cifar("good.bin", 2, 1, good, 0),
                            write_cifar("bad.bin", 3, 1, bad, 2)};
    CIFAR_FAILS(paths, 2, CIFAR_KIND_10, EG_ERR_FORMAT, paths[1], "record 1", "label 10",
                "[0, 10)");
}

Test(cifar, rejects_cifar100_labels_out_of_range)
{
    const uint8_t bad_fine[4] = {3, 99, 3, 100}, bad_coarse[4] = {20, 5, 0, 0};
    const char *fine[1] = {write_cifar("bad-fine.bin", 2, 2, bad_fine, 0)};
    const char *coarse[1] = {write_cifar("bad-coarse.bin", 2, 2, bad_coarse, 0)};
    CIFAR_FAILS(fine, 1, CIFAR_KIND_100_FINE, EG_ERR_FORMAT, fine[0], "record 1", "fine label 100",
                "[0, 100)");
    // A bad coarse byte is an error even when only the fine labels are used.
    CIFAR_FAILS(coarse, 1, CIFAR_KIND_100_FINE, EG_ERR_FORMAT, coarse[0], "record 0",
                "coarse label 20", "[0, 20)");
    CIFAR_FAILS(coarse, 1, CIFAR_KIND_100_COARSE, EG_ERR_FORMAT, coarse[0], "coarse label 20");
}

Test(cifar, rejects_empty_file_list)
{
    CIFAR_FAILS(NULL, 0, CIFAR_KIND_10, EG_ERR_ARG, "no CIFAR batch files");
}

// ---------------------------------------------------------------------------------------------
// synthetic

Test(synthetic, same_seed_same_bytes_different_seed_differs)
{
    const struct shape s = {.c = 3, .h = 8, .w = 8};
    struct dataset a, b, c;
    synthetic_make(&a, 50, s, 5, 11);
    synthetic_make(&b, 50, s, 5, 11);
    synthetic_make(&c, 50, s, 5, 12);
    size_t bytes = 50 * shape_numel(s);
    cr_assert(memcmp(a.pixels, b.pixels, bytes) == 0);
    cr_assert(memcmp(a.labels, b.labels, 50 * sizeof *a.labels) == 0);
    size_t differ = 0;
    for (size_t j = 0; j < bytes; j++)
        differ += a.pixels[j] != c.pixels[j];
    cr_assert(gt(sz, differ, bytes * 9 / 10), "%zu of %zu bytes differ", differ, bytes);
    dataset_deinit(&a);
    dataset_deinit(&b);
    dataset_deinit(&c);
}

Test(synthetic, labels_are_balanced_and_shape_is_kept)
{
    const struct shape s = {.c = 1, .h = 6, .w = 5};
    struct dataset d;
    synthetic_make(&d, 103, s, 10, 1);
    cr_assert(eq(sz, d.n, 103));
    cr_assert(shape_eq(d.shape, s));
    cr_assert(eq(sz, d.classes, 10));
    cr_assert(d.class_names == NULL);
    for (size_t i = 0; i < d.n; i++) {
        cr_assert(eq(i32, d.labels[i], (int32_t)(i % 10)));
        cr_assert(eq(i32, d.clean_labels[i], d.labels[i]));
    }
    size_t counts[10];
    dataset_class_counts(&d, counts);
    for (size_t k = 0; k < 10; k++)
        cr_assert(eq(sz, counts[k], k < 3 ? 11 : 10), "class %zu", k);
    dataset_deinit(&d);
}

Test(synthetic, is_noisy_but_nearest_class_mean_learns_it)
{
    // Class means from the first 1000 samples classify the next 1000; the noise is real
    // (same-class samples differ by tens of grey levels) but the classes are separable.
    const struct shape s = {.c = 1, .h = 8, .w = 8};
    enum { K = 10, TRAIN = 1000, TEST = 1000, D = 64 };
    struct dataset d;
    synthetic_make(&d, TRAIN + TEST, s, K, 3);
    double mean[K][D] = {{0}};
    for (size_t i = 0; i < TRAIN; i++) {
        for (size_t j = 0; j < D; j++)
            mean[d.labels[i]][j] += (double)d.pixels[i * D + j] / (TRAIN / K);
    }
    double within = 0.0;
    for (size_t j = 0; j < D; j++)
        within += abs(d.pixels[j] - d.pixels[K * D + j]);
    within /= D; // mean |difference| of two class-0 samples: about 40 * 2/sqrt(pi) = 45
    cr_assert(within > 25.0 && within < 65.0, "within-class difference %g", within);
    size_t correct = 0;
    for (size_t i = TRAIN; i < TRAIN + TEST; i++) {
        size_t best = 0;
        double best_d = INFINITY;
        for (size_t k = 0; k < K; k++) {
            double dist = 0.0;
            for (size_t j = 0; j < D; j++) {
                double e = d.pixels[i * D + j] - mean[k][j];
                dist += e * e;
            }
            if (dist < best_d) {
                best_d = dist;
                best = k;
            }
        }
        correct += (int32_t)best == d.labels[i];
    }
    cr_assert(gt(sz, correct, TEST * 95 / 100), "%zu of %d correct", correct, TEST);
    dataset_deinit(&d);
}
