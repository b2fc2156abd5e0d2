/* cifar.c - the CIFAR-10 / CIFAR-100 binary batch loader
 * (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version").
 *
 * A batch is a bare sequence of records. CIFAR-10: 1 label byte, then 3072 pixel bytes;
 * CIFAR-100: a coarse label byte, a fine label byte, then 3072 pixel bytes. The pixels are the
 * red plane, the green plane and the blue plane, each 32 x 32 row-major: exactly one NCHW image,
 * so they are read straight into the dataset. Files are concatenated in the order given.
 *
 * Two passes over the open files: the sizes of all of them are checked first (a whole, non-zero
 * number of records), so the dataset is allocated once; then the records are read with every
 * fread count checked. On failure nothing leaks and *out is untouched. */
#include "dataset.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE) // 3072 bytes per image

// What a kind reads: the label bytes before each image, their ranges, and the one kept.
struct cifar_layout {
    size_t label_bytes;   // 1 (CIFAR-10: label) or 2 (CIFAR-100: coarse, fine)
    const char *names[2]; // of each label byte, for messages
    size_t ranges[2];     // label byte k lies in [0, ranges[k]); all are checked
    size_t which;         // the label byte the dataset keeps; its range is the class count
};

static struct cifar_layout cifar_layout_of(enum cifar_kind kind)
{
    switch (kind) {
    case CIFAR_KIND_10:
        return (struct cifar_layout){
            .label_bytes = 1, .names = {"label"}, .ranges = {10}, .which = 0};
    case CIFAR_KIND_100_FINE:
        return (struct cifar_layout){.label_bytes = 2,
                                     .names = {"coarse label", "fine label"},
                                     .ranges = {20, 100},
                                     .which = 1};
    case CIFAR_KIND_100_COARSE:
        return (struct cifar_layout){.label_bytes = 2,
                                     .names = {"coarse label", "fine label"},
                                     .ranges = {20, 100},
                                     .which = 0};
    }
    EG_ASSERT(!"unknown enum cifar_kind");
    return (struct cifar_layout){0};
}

// Opens path for reading and returns its size in *size; on success the caller closes *fp.
static enum eg_status cifar_open(const char *path, FILE **fp, size_t *size, struct eg_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open CIFAR batch: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = errno;
        fclose(f);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot stat CIFAR batch: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return eg_errorf(err, EG_ERR_IO, "%s: CIFAR batch is not a regular file", path);
    }
    *fp = f;
    *size = (size_t)sb.st_size;
    return EG_OK;
}

// Checks that a file of `size` bytes holds a whole, non-zero number of records (*records).
static enum eg_status cifar_check_size(const char *path, size_t size, size_t record,
                                       size_t *records, struct eg_error *err)
{
    if (size == 0) {
        return eg_errorf(err, EG_ERR_FORMAT, "%s: empty CIFAR batch (0 bytes)", path);
    }
    if (size % record != 0) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: size %zu bytes is not a whole number of %zu-byte CIFAR records "
                         "(%zu records and %zu bytes over)",
                         path, size, record, size / record, size % record);
    }
    *records = size / record;
    return EG_OK;
}

// Reads `records` records of f into images [first, first + records) of d, checking every label
// byte against its range (lay).
static enum eg_status cifar_read_records(FILE *f, const char *path, const struct cifar_layout *lay,
                                         size_t records, struct dataset *d, size_t first,
                                         struct eg_error *err)
{
    const size_t nl = lay->label_bytes;
    for (size_t r = 0; r < records; r++) {
        uint8_t lab[2];
        uint8_t *px = d->pixels + (first + r) * CIFAR_PIXELS;
        size_t got_l = fread(lab, 1, nl, f);
        size_t got_p = got_l == nl ? fread(px, 1, CIFAR_PIXELS, f) : 0;
        if (got_l != nl || got_p != CIFAR_PIXELS) {
            if (ferror(f)) {
                return eg_errorf(err, EG_ERR_IO, "%s: read error in CIFAR record %zu: %s", path, r,
                                 strerror(errno));
            }
            // The size was checked when the file was opened, so it shrank since.
            return eg_errorf(err, EG_ERR_FORMAT,
                             "%s: truncated CIFAR batch: record %zu ends after %zu of %zu bytes",
                             path, r, got_l + got_p, nl + (size_t)CIFAR_PIXELS);
        }
        for (size_t k = 0; k < nl; k++) {
            if (lab[k] >= lay->ranges[k]) {
                return eg_errorf(err, EG_ERR_FORMAT,
                                 "%s: record %zu: %s %u is out of range [0, %zu)", path, r,
                                 lay->names[k], (unsigned)lab[k], lay->ranges[k]);
            }
        }
        d->labels[first + r] = d->clean_labels[first + r] = lab[lay->which];
    }
    return EG_OK;
}

enum eg_status cifar_load(const char *const *paths, size_t npaths, enum cifar_kind kind,
                          struct dataset *out, struct eg_error *err)
{
    const struct cifar_layout lay = cifar_layout_of(kind);
    const size_t record = lay.label_bytes + CIFAR_PIXELS;
    if (npaths == 0) {
        return eg_errorf(err, EG_ERR_ARG, "cifar_load: no CIFAR batch files given");
    }

    // Pass 1: open every file and check its size, so the dataset is allocated once. The files
    // stay open, so pass 2 reads the very files that were checked.
    FILE **files = eg_xcalloc(npaths, sizeof *files);
    size_t *records = eg_xcalloc(npaths, sizeof *records);
    size_t total = 0;
    enum eg_status st = EG_OK;
    for (size_t k = 0; k < npaths && st == EG_OK; k++) {
        size_t size = 0;
        st = cifar_open(paths[k], &files[k], &size, err);
        if (st == EG_OK) st = cifar_check_size(paths[k], size, record, &records[k], err);
        total += records[k];
    }

    // Pass 2: the records, straight into the dataset.
    if (st == EG_OK) {
        struct dataset d;
        dataset_alloc(&d, total, (struct shape){.c = 3, .h = CIFAR_SIDE, .w = CIFAR_SIDE},
                      lay.ranges[lay.which]);
        size_t first = 0;
        for (size_t k = 0; k < npaths && st == EG_OK; k++) {
            st = cifar_read_records(files[k], paths[k], &lay, records[k], &d, first, err);
            first += records[k];
        }
        if (st == EG_OK) {
            *out = d;
        } else {
            dataset_deinit(&d);
        }
    }

    for (size_t k = 0; k < npaths; k++) {
        if (files[k] != NULL) fclose(files[k]); // read-only: nothing to lose
    }
    free(files);
    free(records);
    return st;
}
