/* test_source.c - named datasets: loading by name (synthetic, Fashion-MNIST's default root, a
 * CIFAR-10 tree as the archive extracts), the errors, and the label-noise split. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "data/augment.h"
#include "data/noise.h"
#include "data/source.h"

Test(source, names_round_trip)
{
    for (size_t i = 0; i < DATA_SOURCE__COUNT; i++) {
        enum data_source s;
        cr_assert(data_source_find(data_source_name((enum data_source)i), &s) && s == i);
    }
    enum data_source s = DATA_SOURCE_MNIST;
    cr_assert(data_source_find("imagenet", &s) == false);
    cr_assert(strcmp(data_source_default_root(DATA_SOURCE_FASHION_MNIST),
                     "/usr/share/datasets/fashion-mnist") == 0);
    cr_assert(data_source_default_root(DATA_SOURCE_CIFAR10) == NULL);
}

Test(source, synthetic_train_and_test_share_prototypes)
{
    struct data_spec spec = {.source = DATA_SOURCE_SYNTHETIC,
                             .image = {3, 8, 8},
                             .classes = 4,
                             .synthetic_train = 40,
                             .synthetic_test = 20,
                             .seed = 7};
    struct dataset tr = {0}, te = {0};
    struct eg_error err;
    cr_assert(data_load(&spec, &tr, &te, &err) == EG_OK, "%s", err.msg);
    cr_assert(tr.n == 40 && te.n == 20 && te.classes == 4);
    // nearest class mean of the training set classifies the test set
    double mean[4][192] = {{0}};
    size_t cnt[4] = {0};
    for (size_t i = 0; i < tr.n; i++) {
        cnt[tr.labels[i]]++;
        for (size_t j = 0; j < 192; j++) mean[tr.labels[i]][j] += tr.pixels[i * 192 + j];
    }
    size_t right = 0;
    for (size_t i = 0; i < te.n; i++) {
        double best = 1e300;
        int32_t arg = -1;
        for (int32_t k = 0; k < 4; k++) {
            double d2 = 0;
            for (size_t j = 0; j < 192; j++) {
                double d = te.pixels[i * 192 + j] - mean[k][j] / (double)cnt[k];
                d2 += d * d;
            }
            if (d2 < best) {
                best = d2;
                arg = k;
            }
        }
        right += arg == te.labels[i];
    }
    cr_assert(ge(sz, right, 19), "%zu of 20", right);
    dataset_deinit(&tr);
    dataset_deinit(&te);
}

Test(source, missing_root_is_reported_with_the_dataset_name)
{
    struct data_spec spec = {.source = DATA_SOURCE_CIFAR10};
    struct dataset tr, te;
    memset(&tr, 0xA5, sizeof tr);
    struct eg_error err;
    cr_assert(data_load(&spec, &tr, &te, &err) == EG_ERR_ARG);
    cr_assert(strstr(err.msg, "cifar10") != NULL && strstr(err.msg, "root") != NULL, "%s",
              err.msg);
    spec.root = "/nonexistent/evograd";
    cr_assert(data_load(&spec, &tr, &te, &err) == EG_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/evograd/cifar-10-batches-bin/data_batch_1.bin") != NULL,
              "%s", err.msg);
    unsigned char *bytes = (unsigned char *)&tr;
    for (size_t i = 0; i < sizeof tr; i++) cr_assert(bytes[i] == 0xA5);
}

// A CIFAR-10 tree as cifar-10-binary.tar.gz extracts: root/cifar-10-batches-bin/*.bin.
Test(source, cifar10_found_in_the_extracted_folder)
{
    char root[] = "/tmp/evograd-source-XXXXXX";
    cr_assert(mkdtemp(root) != NULL);
    char dir[256], path[320];
    snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", root);
    cr_assert(mkdir(dir, 0755) == 0);
    const char *files[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                           "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    unsigned char rec[3073];
    for (size_t f = 0; f < 6; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        FILE *fp = fopen(path, "wb");
        cr_assert(fp != NULL);
        for (int r = 0; r < 2; r++) {
            memset(rec, (int)(f * 10 + (size_t)r), sizeof rec);
            rec[0] = (unsigned char)((f + (size_t)r) % 10);
            cr_assert(fwrite(rec, 1, sizeof rec, fp) == sizeof rec);
        }
        cr_assert(fclose(fp) == 0);
    }
    struct data_spec spec = {.source = DATA_SOURCE_CIFAR10, .root = root};
    struct dataset tr = {0}, te = {0};
    struct eg_error err;
    cr_assert(data_load(&spec, &tr, &te, &err) == EG_OK, "%s", err.msg);
    cr_assert(tr.n == 10 && te.n == 2 && tr.shape.c == 3 && tr.shape.h == 32);
    cr_assert(tr.labels[2] == 1 && tr.pixels[2 * 3072] == 10 && te.labels[1] == 6);
    dataset_deinit(&tr);
    dataset_deinit(&te);
    for (size_t f = 0; f < 6; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        unlink(path);
    }
    rmdir(dir);
    rmdir(root);
}

Test(source, fashion_mnist_loads_from_the_default_root)
{
    struct stat st;
    if (stat("/usr/share/datasets/fashion-mnist", &st) != 0) {
        cr_skip_test("dataset-fashion-mnist is not installed");
    }
    struct data_spec spec = {.source = DATA_SOURCE_FASHION_MNIST};
    struct dataset tr = {0}, te = {0};
    struct eg_error err;
    cr_assert(data_load(&spec, &tr, &te, &err) == EG_OK, "%s", err.msg);
    cr_assert(tr.n == 60000 && te.n == 10000 && tr.classes == 10);
    dataset_deinit(&tr);
    dataset_deinit(&te);
}

// Meta-Weight-Net's preparation: 1000 clean images, 100 per class; noise on the rest only.
Test(source, noisy_split_keeps_the_meta_set_clean)
{
    struct dataset full;
    synthetic_make(&full, 3000, (struct shape){1, 4, 4}, 10, 3);
    double C[100];
    struct rng mrng, nrng, split_rng;
    rng_seed(&mrng, 1);
    noise_matrix(NOISE_KIND_UNIF, 0.4, 10, &mrng, C);
    rng_seed(&split_rng, 1);
    rng_seed(&nrng, 2);
    struct dataset meta, train;
    double realised = -1;
    struct eg_error err;
    cr_assert(data_noisy_split(&full, 1000, C, &split_rng, &nrng, &meta, &train, &realised,
                               &err) == EG_OK,
              "%s", err.msg);
    cr_assert(meta.n == 1000 && train.n == 2000);
    size_t counts[10];
    dataset_class_counts(&meta, counts);
    for (int k = 0; k < 10; k++) cr_assert(counts[k] == 100);
    for (size_t i = 0; i < meta.n; i++) cr_assert(meta.labels[i] == meta.clean_labels[i]);
    size_t changed = 0;
    for (size_t i = 0; i < train.n; i++) changed += train.labels[i] != train.clean_labels[i];
    cr_assert(realised == (double)changed / 2000.0);
    cr_assert(realised > 0.30 && realised < 0.42, "realised %.3f", realised);
    dataset_deinit(&meta);
    dataset_deinit(&train);
    dataset_deinit(&full);
}

// Ranges as in the paper, scaled down: train [0, 40), validation [50, 60) rotated, test rotated.
Test(source, rotation_split_rotates_validation_and_test_only)
{
    struct dataset full, test_in;
    synthetic_make(&full, 60, (struct shape){1, 8, 8}, 10, 5);
    synthetic_make(&test_in, 12, (struct shape){1, 8, 8}, 10, 6);
    struct rotation_ranges r = {40, 50, 60, 30.0};
    struct dataset tr, va, te;
    struct eg_error err;
    cr_assert(data_rotation_split(&full, &test_in, &r, &tr, &va, &te, &err) == EG_OK);
    cr_assert(tr.n == 40 && va.n == 10 && te.n == 12);
    cr_assert(memcmp(tr.pixels, full.pixels, 40 * 64) == 0);
    uint8_t want[64];
    augment_rotate_u8(full.pixels + 53 * 64, want, full.shape, 30.0);
    cr_assert(memcmp(va.pixels + 3 * 64, want, 64) == 0 && va.labels[3] == full.labels[53]);
    augment_rotate_u8(test_in.pixels + 11 * 64, want, full.shape, 30.0);
    cr_assert(memcmp(te.pixels + 11 * 64, want, 64) == 0);
    dataset_deinit(&tr);
    dataset_deinit(&va);
    dataset_deinit(&te);

    struct rotation_ranges bad = {40, 30, 60, 30.0};
    memset(&tr, 0xA5, sizeof tr);
    cr_assert(data_rotation_split(&full, &test_in, &bad, &tr, &va, &te, &err) == EG_ERR_ARG);
    cr_assert(strstr(err.msg, "[30, 60)") != NULL, "%s", err.msg);
    unsigned char *bytes = (unsigned char *)&tr;
    for (size_t i = 0; i < sizeof tr; i++) cr_assert(bytes[i] == 0xA5);
    dataset_deinit(&full);
    dataset_deinit(&test_in);
}
