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
// (magic 0x00000801, dims n), each gzipped (a file starting 1f 8b) or raw. A gzipped file must
// end exactly where its gzip stream does, with every member's CRC-32 and length matching.
// Labels must be < classes. Gives 1-channel images. Limits: h, w <= 65,536, h*w <= 2^24,
// n*h*w <= 4 GiB. Status EG_ERR_IO for open/read failures, EG_ERR_FORMAT for bad content (magic,
// dimensions, truncation, a truncated gzip stream, corrupt gzip data or a CRC or length mismatch,
// trailing bytes, count mismatch, label range), EG_ERR_ARG for classes == 0; the message names
// the file.
enum eg_status idx_load(const char *images_path, const char *labels_path, size_t classes,
                        struct dataset *out, struct eg_error *err);

enum cifar_kind {
    CIFAR_KIND_10,        // records: 1 label byte, 3072 pixel bytes; 10 classes
    CIFAR_KIND_100_FINE,  // records: coarse byte, fine byte, 3072 pixel bytes; 100 classes
    CIFAR_KIND_100_COARSE // the same records, the 20 coarse labels
};
// The CIFAR binary batches paths[0..npaths), concatenated in order: 3 x 32 x 32 images. Every
// file must be a whole number of records; every label byte is range-checked. npaths == 0 is
// EG_ERR_ARG.
enum eg_status cifar_load(const char *const *paths, size_t npaths, enum cifar_kind kind,
                          struct dataset *out, struct eg_error *err);

// An image folder: root/<class>/<image>.png, classes in byte order of their folder names,
// images in byte order of their file names. Names starting with '.' are skipped at both levels,
// symbolic links are followed, and only regular files ending in ".png" (any case) count; other
// files and sub-folders of a class are ignored, and a class folder without PNGs is an error.
// Conversion (decoded with libpng, colour metadata ignored): palette and 1/2/4-bit grey are
// expanded, 16-bit samples become round(v * 255 / 65535), alpha and tRNS are dropped (stored
// colours kept, as Pillow's convert("RGB")); want.c = 3 repeats grey, want.c = 1 takes Pillow's
// convert("L") luma (19595 R + 38470 G + 7471 B + 32768) >> 16. Then each image is resized to
// want.h x want.w by bilinear interpolation with half-pixel centres (source coordinate
// (d + 0.5) * in/out - 0.5, clamped; align_corners=False, no antialiasing), rounded half up;
// the same size is an exact copy. Limits: 65536 per side and 2^28 pixels per stored image.
// class_names are the folder names.
enum eg_status imagefolder_load(const char *root, struct shape want, struct dataset *out,
                                struct eg_error *err);

// n images of shape s in `classes` classes, learnable: each class has a prototype image of
// uniform random pixels and each sample is its prototype plus rounded N(0, 40^2) noise per pixel,
// clipped to [0, 255]. Labels are i % classes. Deterministic for a seed (one generator). Sets
// meant to be learned from one another must come from one call (source.c splits one set).
void synthetic_make(struct dataset *out, size_t n, struct shape s, size_t classes,
                    uint64_t seed);

#endif // EG_DATASET_H
