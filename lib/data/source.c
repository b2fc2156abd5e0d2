/* source.c - named datasets: file names, default roots, loading, and the noisy split. */
#include "source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "augment.h"
#include "core/alloc.h"
#include "split.h"

static const char *const source_names[DATA_SOURCE__COUNT] = {
    [DATA_SOURCE_MNIST] = "mnist",
    [DATA_SOURCE_FASHION_MNIST] = "fashion_mnist",
    [DATA_SOURCE_CIFAR10] = "cifar10",
    [DATA_SOURCE_CIFAR100] = "cifar100",
    [DATA_SOURCE_IMAGEFOLDER] = "imagefolder",
    [DATA_SOURCE_SYNTHETIC] = "synthetic",
};

const char *data_source_name(enum data_source s)
{
    EG_ASSERT(s < DATA_SOURCE__COUNT);
    return source_names[s];
}

bool data_source_find(const char *name, enum data_source *s)
{
    for (size_t i = 0; i < DATA_SOURCE__COUNT; i++) {
        if (strcmp(source_names[i], name) == 0) {
            *s = (enum data_source)i;
            return true;
        }
    }
    return false;
}

const char *data_source_default_root(enum data_source s)
{
    return s == DATA_SOURCE_FASHION_MNIST ? "/usr/share/datasets/fashion-mnist" : NULL;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void data_idx_path(char *path, size_t cap, const char *dir, const char *name)
{
    snprintf(path, cap, "%s/%s", dir, name);
    if (exists(path)) return;
    snprintf(path, cap, "%s/%s.gz", dir, name);
}

static enum eg_status load_idx_pair(const char *root, const char *prefix, struct dataset *out,
                                    struct eg_error *err)
{
    char images[4096], labels[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    data_idx_path(images, sizeof images, root, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    data_idx_path(labels, sizeof labels, root, name);
    return idx_load(images, labels, 10, out, err);
}

// dir = root, or root/sub when the first file is only there.
static void cifar_dir(char *dir, size_t cap, const char *root, const char *sub, const char *first)
{
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/%s", root, first);
    if (exists(probe)) {
        snprintf(dir, cap, "%s", root);
        return;
    }
    snprintf(dir, cap, "%s/%s", root, sub);
}

static enum eg_status load_cifar(const char *root, bool c100, bool train, struct dataset *out,
                                 struct eg_error *err)
{
    char dir[4096], paths[5][4200];
    const char *list[5];
    size_t n = 0;
    if (c100) {
        cifar_dir(dir, sizeof dir, root, "cifar-100-binary", "train.bin");
        snprintf(paths[n++], sizeof paths[0], "%s/%s", dir, train ? "train.bin" : "test.bin");
    } else {
        cifar_dir(dir, sizeof dir, root, "cifar-10-batches-bin", "data_batch_1.bin");
        if (train) {
            for (int b = 1; b <= 5; b++) {
                snprintf(paths[n++], sizeof paths[0], "%s/data_batch_%d.bin", dir, b);
            }
        } else {
            snprintf(paths[n++], sizeof paths[0], "%s/test_batch.bin", dir);
        }
    }
    for (size_t i = 0; i < n; i++) list[i] = paths[i];
    return cifar_load(list, n, c100 ? CIFAR_KIND_100_FINE : CIFAR_KIND_10, out, err);
}

static enum eg_status load_one(const struct data_spec *spec, const char *root, bool train,
                               struct dataset *out, struct eg_error *err)
{
    switch (spec->source) {
    case DATA_SOURCE_MNIST:
    case DATA_SOURCE_FASHION_MNIST:
        return load_idx_pair(root, train ? "train" : "t10k", out, err);
    case DATA_SOURCE_CIFAR10:
    case DATA_SOURCE_CIFAR100:
        return load_cifar(root, spec->source == DATA_SOURCE_CIFAR100, train, out, err);
    case DATA_SOURCE_IMAGEFOLDER: {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, train ? "train" : "test");
        return imagefolder_load(dir, spec->image, out, err);
    }
    case DATA_SOURCE_SYNTHETIC: {
        // One generated set, split: training and test images share the class prototypes.
        size_t ntr = spec->synthetic_train, nte = spec->synthetic_test;
        struct dataset all;
        synthetic_make(&all, ntr + nte, spec->image, spec->classes, spec->seed);
        size_t *idx = eg_xmalloc_array(train ? ntr : nte, sizeof *idx);
        split_range(train ? 0 : ntr, train ? ntr : ntr + nte, idx);
        dataset_subset(&all, idx, train ? ntr : nte, out);
        free(idx);
        dataset_deinit(&all);
        return EG_OK;
    }
    default:
        return eg_errorf(err, EG_ERR_ARG, "unknown dataset source %d", (int)spec->source);
    }
}

enum eg_status data_load(const struct data_spec *spec, struct dataset *train, struct dataset *test,
                         struct eg_error *err)
{
    const char *root = spec->root != NULL ? spec->root : data_source_default_root(spec->source);
    if (root == NULL && spec->source != DATA_SOURCE_SYNTHETIC) {
        return eg_errorf(err, EG_ERR_ARG, "dataset %s needs a root folder (see datasets/README.md)",
                         data_source_name(spec->source));
    }
    struct dataset tr = {0}, te = {0};
    enum eg_status st = load_one(spec, root, true, &tr, err);
    if (st != EG_OK) return st;
    st = load_one(spec, root, false, &te, err);
    if (st != EG_OK) {
        dataset_deinit(&tr);
        return st;
    }
    if (!shape_eq(tr.shape, te.shape) || tr.classes != te.classes) {
        dataset_deinit(&tr);
        dataset_deinit(&te);
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: training and test images differ in shape or class count", root);
    }
    *train = tr;
    *test = te;
    return EG_OK;
}

enum eg_status data_noisy_split(const struct dataset *full, size_t meta_size, const double *C,
                                struct rng *split_rng, struct rng *noise_rng,
                                struct dataset *meta, struct dataset *train, double *realised,
                                struct eg_error *err)
{
    EG_ASSERT(meta_size <= full->n);
    size_t *meta_idx = eg_xmalloc_array(meta_size, sizeof *meta_idx);
    size_t *rest_idx = eg_xmalloc_array(full->n - meta_size, sizeof *rest_idx);
    enum eg_status st = split_balanced(full, meta_size, split_rng, meta_idx, rest_idx, err);
    if (st == EG_OK) {
        dataset_subset(full, meta_idx, meta_size, meta);
        dataset_subset(full, rest_idx, full->n - meta_size, train);
        *realised = noise_apply(train, C, noise_rng);
    }
    free(meta_idx);
    free(rest_idx);
    return st;
}

// out = the images [begin, end) of d, each rotated by degrees when degrees != 0.
static void range_rotated(const struct dataset *d, size_t begin, size_t end, double degrees,
                          struct dataset *out)
{
    size_t *idx = eg_xmalloc_array(end - begin, sizeof *idx);
    split_range(begin, end, idx);
    dataset_subset(d, idx, end - begin, out);
    free(idx);
    if (degrees == 0.0) return;
    size_t bytes = dataset_image_bytes(out);
    uint8_t *tmp = eg_xmalloc(bytes);
    for (size_t i = 0; i < out->n; i++) {
        memcpy(tmp, out->pixels + i * bytes, bytes);
        augment_rotate_u8(tmp, out->pixels + i * bytes, out->shape, degrees);
    }
    free(tmp);
}

enum eg_status data_rotation_split(const struct dataset *full, const struct dataset *test_in,
                                   const struct rotation_ranges *r, struct dataset *train,
                                   struct dataset *val, struct dataset *test,
                                   struct eg_error *err)
{
    if (!(r->train_end <= r->val_begin && r->val_begin <= r->val_end && r->val_end <= full->n)) {
        return eg_errorf(err, EG_ERR_ARG,
                         "rotation split: training [0, %zu) and validation [%zu, %zu) must be "
                         "ordered ranges inside the %zu training images",
                         r->train_end, r->val_begin, r->val_end, full->n);
    }
    range_rotated(full, 0, r->train_end, 0.0, train);
    range_rotated(full, r->val_begin, r->val_end, r->degrees, val);
    range_rotated(test_in, 0, test_in->n, r->degrees, test);
    return EG_OK;
}
