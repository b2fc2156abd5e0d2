/* dataset.h - a labelled image dataset held in memory, and the loaders that fill one.
 *
 * Images are stored as 8-bit pixels, NCHW: image i, channel c, row y, column x at
 * pixels[((i*C + c)*H + y)*W + x]. Floats are made only when a batch is assembled (batch.h), so
 * CIFAR's 50,000 training images take 150 MB rather than 600. Labels are class indices in
 * [0, classes). `clean_labels` keeps the original labels when label noise has been applied
 * (noise.h); before that it equals `labels`.
 *
 * Ownership: a struct dataset is caller-owned storage; loaders fill it on success (the caller
 * releases it with dataset_deinit) and leave it untouched on failure. */
#ifndef EG_DATASET_H
#define EG_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "nn/layer.h"

struct rng;

struct dataset {
    size_t n;               // number of images
    struct shape shape;     // per image (c, h, w)
    size_t classes;         // labels lie in [0, classes)
    uint8_t *pixels;        // (n, c, h, w), owned
    int32_t *labels;        // (n), owned: the labels training sees (possibly noisy)
    int32_t *clean_labels;  // (n), owned: the original labels
    char **class_names;     // (classes) owned strings, or NULL (IDX, CIFAR, synthetic)
};

// Allocates storage for n images of shape s and `classes` classes; pixels and labels zeroed,
// class_names NULL. d is overwritten (not freed first).
void dataset_alloc(struct dataset *d, size_t n, struct shape s, size_t classes);
// Frees everything d owns and zeroes it. NULL-safe, and safe on a zeroed struct.
void dataset_deinit(struct dataset *d);
// Bytes of one image.
size_t dataset_image_bytes(const struct dataset *d);
// out = the images idx[0..m) of d, in that order (pixels and both label arrays copied, class
// names duplicated). out is overwritten; caller deinits it. Indices must be < d->n (EG_ASSERT).
void dataset_subset(const struct dataset *d, const size_t *idx, size_t m, struct dataset *out);
// counts: (classes) written with the number of images of each (current) label.
void dataset_class_counts(const struct dataset *d, size_t *counts);

// ---------------------------------------------------------------------------------------------
// Loaders. Each returns EG_OK, or an error status with a message naming the file and what is
// wrong (err); *out is filled only on success.

// An IDX image file (magic 0x00000803, unsigned bytes, dims n x h x w) and its IDX label file
// (magic 0x00000801, dims n), gzipped or raw (zlib reads both). Labels must be < classes.
// Gives 1-channel images.
enum eg_status idx_load(const char *images_path, const char *labels_path, size_t classes,
                        struct dataset *out, struct eg_error *err);

enum cifar_kind {
    CIFAR_KIND_10,        // records: 1 label byte, 3072 pixel bytes; 10 classes
    CIFAR_KIND_100_FINE,  // records: coarse byte, fine byte, 3072 pixel bytes; 100 classes
    CIFAR_KIND_100_COARSE // the same records, the 20 coarse labels
};
// The CIFAR binary batches paths[0..npaths), concatenated in order: 3 x 32 x 32 images.
enum eg_status cifar_load(const char *const *paths, size_t npaths, enum cifar_kind kind,
                          struct dataset *out, struct eg_error *err);

// An image folder: root/<class>/<image>.png, classes in byte order of their folder names,
// images in byte order of their file names (other files are ignored; a class folder without
// PNGs is an error). Every image is converted to want.c channels (1: grey, 3: RGB; palette,
// 16-bit and alpha are converted, alpha dropped; grey -> RGB repeats the grey value, RGB -> grey
// is ITU-R 601 luma L = (299 R + 587 G + 114 B) / 1000 as PIL's convert("L")) and resized to
// want.h x want.w by bilinear interpolation with half-pixel centres (align_corners=False, no
// antialiasing). class_names are the folder names.
enum eg_status imagefolder_load(const char *root, struct shape want, struct dataset *out,
                                struct eg_error *err);

// n images of shape s in `classes` classes, learnable: each class has a random prototype image
// and each sample is its prototype plus noise, clipped to [0, 255]. Labels are i % classes.
// Deterministic for a seed.
void synthetic_make(struct dataset *out, size_t n, struct shape s, size_t classes,
                    uint64_t seed);

#endif // EG_DATASET_H
