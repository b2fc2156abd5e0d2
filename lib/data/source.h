/* source.h - the datasets evograd knows by name, where their files are, and the label-noise
 * preparation of the paper's Meta-Weight-Net experiment.
 *
 *   name           files under root (the gzipped or the raw name is accepted)
 *   mnist          train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-... (.gz)
 *   fashion_mnist  the same names; root defaults to /usr/share/datasets/fashion-mnist
 *   cifar10        data_batch_1.bin .. data_batch_5.bin, test_batch.bin (directly under root or
 *                  in root/cifar-10-batches-bin, as the archive extracts)
 *   cifar100       train.bin, test.bin (under root or root/cifar-100-binary); fine labels
 *   imagefolder    root/train and root/test, each a folder of class folders of PNGs
 *   synthetic      no files: generated from the seed (synthetic_make)
 * datasets/README.md says where to get each. */
#ifndef EG_SOURCE_H
#define EG_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "dataset.h"
#include "noise.h"

enum data_source {
    DATA_SOURCE_MNIST,
    DATA_SOURCE_FASHION_MNIST,
    DATA_SOURCE_CIFAR10,
    DATA_SOURCE_CIFAR100,
    DATA_SOURCE_IMAGEFOLDER,
    DATA_SOURCE_SYNTHETIC,
    DATA_SOURCE__COUNT
};

// "mnist", ...; and back (false when unknown).
const char *data_source_name(enum data_source s);
bool data_source_find(const char *name, enum data_source *s);
// The default root folder of a source, or NULL when it has none.
const char *data_source_default_root(enum data_source s);

struct data_spec {
    enum data_source source;
    const char *root;      // NULL: the source's default
    struct shape image;    // imagefolder and synthetic: the image shape; others: ignored
    size_t classes;        // synthetic only
    size_t synthetic_train, synthetic_test; // synthetic only: image counts
    uint64_t seed;         // synthetic only
};

// path (cap bytes) = dir/name, or dir/name.gz when the raw file is missing (the .gz name is the
// one reported when neither exists: the Debian package and the downloads are gzipped).
void data_idx_path(char *path, size_t cap, const char *dir, const char *name);

// Loads the training and test sets. On failure both are untouched and err names the file.
enum eg_status data_load(const struct data_spec *spec, struct dataset *train, struct dataset *test,
                         struct eg_error *err);

// The label-noise experiment's training data (Meta-Weight-Net's code, paper-spec 3.4 and quirk
// 7): a class-balanced clean meta set of meta_size images taken from `full` with split_rng, the
// rest as training data with noise C (noise_matrix) applied from noise_rng. meta and train are
// written (caller deinits); returns the realised noise rate through *realised.
enum eg_status data_noisy_split(const struct dataset *full, size_t meta_size, const double *C,
                                struct rng *split_rng, struct rng *noise_rng,
                                struct dataset *meta, struct dataset *train, double *realised,
                                struct eg_error *err);

// The rotation experiment's splits (paper-spec 3.2): training images [0, train_end) of `full`
// unrotated, validation images [val_begin, val_end) of `full` and every image of `test_in`
// rotated by `degrees` counter-clockwise (augment_rotate_u8: Pillow's nearest-neighbour rotate,
// zero fill, before normalisation). The paper: 40000, 50000, 60000 and +30 degrees on MNIST
// (images 40000-49999 unused). Requires train_end <= val_begin <= val_end <= full->n, else
// EG_ERR_ARG naming the ranges; outputs written on success (caller deinits).
struct rotation_ranges {
    size_t train_end, val_begin, val_end;
    double degrees;
};
enum eg_status data_rotation_split(const struct dataset *full, const struct dataset *test_in,
                                   const struct rotation_ranges *r, struct dataset *train,
                                   struct dataset *val, struct dataset *test,
                                   struct eg_error *err);

#endif // EG_SOURCE_H
