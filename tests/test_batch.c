/* test_batch.c - the mini-batch iterator: epochs cover every index once, short last batches,
 * reshuffling, determinism for a seed, labels travelling with their images, and augmentation
 * with the documented draw order. Images encode their own index in every pixel. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "io/checkpoint.h"

#define CLASSES 10

// n images of shape s whose every pixel holds the image index (n <= 256); label = 3i mod 10.
static void make_indexed(struct dataset *d, size_t n, struct shape s)
{
    dataset_alloc(d, n, s, CLASSES);
    size_t numel = shape_numel(s);
    for (size_t i = 0; i < n; i++) {
        memset(d->pixels + i * numel, (int)i, numel);
        d->labels[i] = d->clean_labels[i] = (int32_t)(3 * i % CLASSES);
    }
}

// The index an image of make_indexed came from, read back from x/255 (augment_none).
static size_t decode(const float *x)
{
    return (size_t)lroundf(x[0] * 255.0f);
}

// Runs one epoch of batches of bs; writes the indices in order into seen (n) and checks the
// batch sizes and the epoch counter. Returns the number of batches.
static size_t run_epoch(struct batcher *b, size_t bs, size_t *seen, size_t want_epoch)
{
    const size_t numel = shape_numel(b->d->shape);
    float *x = eg_xmalloc_floats(bs * numel);
    int32_t *y = eg_xmalloc_array(bs, sizeof *y);
    size_t got = 0, batches = 0;
    while (got < b->n) {
        size_t m = batcher_next(b, bs, x, y);
        size_t want_m = b->n - got < bs ? b->n - got : bs;
        cr_assert(eq(sz, m, want_m), "batch %zu", batches);
        cr_assert(eq(sz, b->epoch, want_epoch));
        for (size_t i = 0; i < m; i++) {
            size_t k = decode(x + i * numel);
            for (size_t j = 1; j < numel; j++)
                cr_assert(x[i * numel + j] == x[i * numel]);
            cr_assert(eq(i32, y[i], (int32_t)(3 * k % CLASSES)), "label of image %zu", k);
            seen[got + i] = k;
        }
        got += m;
        batches++;
    }
    free(x);
    free(y);
    return batches;
}

static void assert_permutation_of(const size_t *seen, const size_t *list, size_t n)
{
    int count[256] = {0};
    for (size_t i = 0; i < n; i++)
        count[seen[i]]++;
    for (size_t i = 0; i < n; i++) {
        cr_assert(eq(int, count[list[i]], 1), "index %zu seen %d times", list[i], count[list[i]]);
    }
}

Test(batch, every_index_once_per_epoch_with_a_short_last_batch)
{
    struct dataset d;
    make_indexed(&d, 23, (struct shape){1, 2, 3});
    struct augment none = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 23, true, &none, 1);
    cr_assert(eq(sz, b.epoch, 0));
    cr_assert(eq(sz, batcher_batches_per_epoch(&b, 5), 5));
    size_t all[23], seen[23];
    for (size_t i = 0; i < 23; i++)
        all[i] = i;
    for (size_t e = 1; e <= 4; e++) {
        cr_assert(eq(sz, run_epoch(&b, 5, seen, e), 5)); // 5 5 5 5 3
        assert_permutation_of(seen, all, 23);
    }
    batcher_deinit(&b);
    dataset_deinit(&d);
}

Test(batch, batches_per_epoch_rounds_up)
{
    struct dataset d;
    make_indexed(&d, 10, (struct shape){1, 1, 1});
    struct augment none = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 10, false, &none, 1);
    cr_assert(eq(sz, batcher_batches_per_epoch(&b, 1), 10));
    cr_assert(eq(sz, batcher_batches_per_epoch(&b, 3), 4));
    cr_assert(eq(sz, batcher_batches_per_epoch(&b, 5), 2));
    cr_assert(eq(sz, batcher_batches_per_epoch(&b, 10), 1));
    cr_assert(eq(sz, batcher_batches_per_epoch(&b, 11), 1));
    // A batch larger than the list: the whole epoch at once, every call.
    float x[16];
    int32_t y[16];
    cr_assert(eq(sz, batcher_next(&b, 16, x, y), 10));
    cr_assert(eq(sz, batcher_next(&b, 16, x, y), 10));
    cr_assert(eq(sz, b.epoch, 2));
    batcher_deinit(&b);
    dataset_deinit(&d);
}

Test(batch, new_epoch_reshuffles_only_when_shuffling)
{
    struct dataset d;
    make_indexed(&d, 40, (struct shape){1, 2, 2});
    struct augment none = augment_none();
    size_t e1[40], e2[40], all[40];
    for (size_t i = 0; i < 40; i++)
        all[i] = i;

    struct batcher b;
    batcher_init(&b, &d, NULL, 40, true, &none, 11);
    run_epoch(&b, 16, e1, 1);
    run_epoch(&b, 16, e2, 2);
    cr_assert(memcmp(e1, all, sizeof e1) != 0, "the first epoch is shuffled");
    cr_assert(memcmp(e1, e2, sizeof e1) != 0, "the second epoch has another order");
    batcher_deinit(&b);

    batcher_init(&b, &d, NULL, 40, false, &none, 11);
    run_epoch(&b, 16, e1, 1);
    run_epoch(&b, 16, e2, 2);
    cr_assert(memcmp(e1, all, sizeof e1) == 0, "index order");
    cr_assert(memcmp(e2, all, sizeof e2) == 0, "the same order again");
    batcher_deinit(&b);
    dataset_deinit(&d);
}

Test(batch, draws_only_from_the_index_list)
{
    struct dataset d;
    make_indexed(&d, 30, (struct shape){1, 3, 3});
    struct augment none = augment_none();
    const size_t list[7] = {29, 3, 17, 0, 8, 21, 12};
    size_t seen[7];
    struct batcher b;
    batcher_init(&b, &d, list, 7, false, &none, 1);
    run_epoch(&b, 3, seen, 1);
    cr_assert(memcmp(seen, list, sizeof list) == 0, "the list's order");
    batcher_deinit(&b);

    batcher_init(&b, &d, list, 7, true, &none, 2);
    for (size_t e = 1; e <= 3; e++) {
        run_epoch(&b, 4, seen, e);
        assert_permutation_of(seen, list, 7);
    }
    batcher_deinit(&b);
    dataset_deinit(&d);
}

Test(batch, same_seed_same_batches_other_seed_differs)
{
    struct rng data;
    rng_seed(&data, 3);
    struct dataset d;
    const struct shape s = {3, 8, 8};
    dataset_alloc(&d, 50, s, CLASSES);
    for (size_t i = 0; i < 50 * shape_numel(s); i++)
        d.pixels[i] = (uint8_t)rng_below(&data, 256);
    for (size_t i = 0; i < 50; i++)
        d.labels[i] = (int32_t)(i % CLASSES);
    struct augment a;
    cr_assert(augment_normalisation("cifar10", &a));
    a.crop_pad = 2;
    a.hflip = true;
    struct batcher b1, b2, b3;
    batcher_init(&b1, &d, NULL, 50, true, &a, 99);
    batcher_init(&b2, &d, NULL, 50, true, &a, 99);
    batcher_init(&b3, &d, NULL, 50, true, &a, 100);
    const size_t bs = 16, numel = shape_numel(s);
    float *x1 = eg_xmalloc_floats(bs * numel), *x2 = eg_xmalloc_floats(bs * numel);
    float *x3 = eg_xmalloc_floats(bs * numel);
    int32_t y1[16], y2[16], y3[16];
    int differ = 0;
    for (int t = 0; t < 12; t++) { // three epochs of 4 batches
        size_t m1 = batcher_next(&b1, bs, x1, y1);
        size_t m2 = batcher_next(&b2, bs, x2, y2);
        batcher_next(&b3, bs, x3, y3);
        cr_assert(eq(sz, m1, m2));
        cr_assert(memcmp(x1, x2, m1 * numel * sizeof *x1) == 0, "batch %d", t);
        cr_assert(memcmp(y1, y2, m1 * sizeof *y1) == 0, "batch %d", t);
        differ += memcmp(x1, x3, m1 * numel * sizeof *x1) != 0;
    }
    cr_assert(eq(int, differ, 12));
    batcher_deinit(&b1);
    batcher_deinit(&b2);
    batcher_deinit(&b3);
    free(x1);
    free(x2);
    free(x3);
    dataset_deinit(&d);
}

Test(batch, labels_travel_with_their_images)
{
    struct dataset d;
    make_indexed(&d, 200, (struct shape){1, 4, 4});
    struct augment none = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 200, true, &none, 5);
    size_t seen[200], all[200];
    for (size_t i = 0; i < 200; i++)
        all[i] = i;
    run_epoch(&b, 64, seen, 1); // checks y[i] against the index decoded from x[i]
    assert_permutation_of(seen, all, 200);
    batcher_deinit(&b);
    dataset_deinit(&d);
}

Test(batch, normalisation_is_applied)
{
    // Pixel value v in channel c of image i is (i + 40c) mod 256: known bytes, three channels.
    struct dataset d;
    const struct shape s = {3, 2, 2};
    dataset_alloc(&d, 9, s, CLASSES);
    for (size_t i = 0; i < 9; i++) {
        for (size_t c = 0; c < 3; c++)
            memset(d.pixels + i * 12 + c * 4, (int)(i * 29 + 40 * c), 4);
    }
    struct augment a;
    cr_assert(augment_normalisation("cifar10", &a));
    const double cm[3] = {125.3, 123.0, 113.9}, cs[3] = {63.0, 62.1, 66.7};
    struct batcher b;
    batcher_init(&b, &d, NULL, 9, false, &a, 1);
    float x[9 * 12];
    int32_t y[9];
    cr_assert(eq(sz, batcher_next(&b, 9, x, y), 9));
    for (size_t i = 0; i < 9; i++) {
        for (size_t c = 0; c < 3; c++) {
            for (size_t p = 0; p < 4; p++) {
                uint8_t v = d.pixels[i * 12 + c * 4 + p];
                double want = ((double)v - cm[c]) / cs[c]; // (v/255 - m/255) / (s/255)
                float got = x[i * 12 + c * 4 + p];
                cr_assert(fabs((double)got - want) < 1e-5, "i=%zu c=%zu", i, c);
                cr_assert(got == ((float)v / 255.0f - a.mean[c]) / a.std[c], "i=%zu c=%zu", i, c);
            }
        }
    }
    batcher_deinit(&b);
    dataset_deinit(&d);
}

Test(batch, augmentation_draws_follow_the_epoch_shuffle)
{
    // The batcher's stream: the epoch's shuffle, then crop and flip draws image by image.
    struct rng data;
    rng_seed(&data, 8);
    struct dataset d;
    const struct shape s = {3, 32, 32};
    const size_t n = 13, numel = shape_numel(s);
    dataset_alloc(&d, n, s, CLASSES);
    for (size_t i = 0; i < n * numel; i++)
        d.pixels[i] = (uint8_t)rng_below(&data, 256);
    struct augment a;
    cr_assert(augment_normalisation("cifar10", &a));
    a.crop_pad = 4;
    a.hflip = true;
    struct batcher b;
    batcher_init(&b, &d, NULL, n, true, &a, 21);

    struct rng r;
    rng_seed(&r, 21);
    size_t order[13];
    float *got = eg_xmalloc_floats(5 * numel), *want = eg_xmalloc_floats(numel);
    int32_t y[5];
    for (size_t e = 0; e < 2; e++) {
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        rng_shuffle(&r, order, n);
        for (size_t pos = 0; pos < n;) {
            size_t m = batcher_next(&b, 5, got, y);
            for (size_t i = 0; i < m; i++) {
                augment_image(&a, s, d.pixels + order[pos + i] * numel, want, &r);
                cr_assert(memcmp(got + i * numel, want, numel * sizeof *want) == 0,
                          "epoch %zu image %zu", e, pos + i);
                cr_assert(eq(i32, y[i], d.labels[order[pos + i]]));
            }
            pos += m;
        }
    }
    free(got);
    free(want);
    batcher_deinit(&b);
    dataset_deinit(&d);
}

Test(batch, deinit_is_null_safe_and_zeroes)
{
    batcher_deinit(NULL);
    struct dataset d;
    make_indexed(&d, 3, (struct shape){1, 1, 1});
    struct augment none = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 3, true, &none, 1);
    batcher_deinit(&b);
    cr_assert(b.order == NULL && b.idx == NULL && b.n == 0);
    dataset_deinit(&d);
}

Test(batch, empty_list_aborts, .signal = SIGABRT)
{
    struct dataset d;
    make_indexed(&d, 3, (struct shape){1, 1, 1});
    struct augment none = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 0, true, &none, 1);
}

Test(batch, zero_batch_size_aborts, .signal = SIGABRT)
{
    struct dataset d;
    make_indexed(&d, 3, (struct shape){1, 1, 1});
    struct augment none = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 3, true, &none, 1);
    batcher_batches_per_epoch(&b, 0);
}

Test(batch, zero_batch_size_in_next_aborts, .signal = SIGABRT)
{
    struct dataset d;
    make_indexed(&d, 3, (struct shape){1, 1, 1});
    struct augment none = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 3, true, &none, 1);
    float x[3];
    int32_t y[3];
    batcher_next(&b, 0, x, y);
}

Test(batch, index_out_of_range_aborts, .signal = SIGABRT)
{
    struct dataset d;
    make_indexed(&d, 3, (struct shape){1, 1, 1});
    struct augment none = augment_none();
    const size_t list[2] = {0, 3};
    struct batcher b;
    batcher_init(&b, &d, list, 2, false, &none, 1);
}

Test(batch, sections_restore_the_data_stream_exactly)
{
    struct dataset d;
    const struct shape s = {1, 2, 2};
    make_indexed(&d, 30, s);
    struct augment a = augment_none();
    a.hflip = true; // draws from the batcher's generator too
    struct batcher b;
    batcher_init(&b, &d, NULL, 30, true, &a, 5);
    struct ckpt_list l = {.n = 0};
    batcher_sections(&b, "batch_", &l);
    static const char *const names[] = {"batch_order", "batch_pos", "batch_epoch", "batch_rng"};
    cr_assert(eq(sz, l.n, 4));
    for (size_t i = 0; i < 4; i++) cr_assert(strcmp(l.s[i].name, names[i]) == 0, "%s", names[i]);
    const size_t bs = 7, numel = shape_numel(s);
    float x[7 * 4], first[9][7 * 4];
    int32_t y[7];
    size_t m[9];
    for (int t = 0; t < 5; t++) batcher_next(&b, bs, x, y); // into the second epoch
    // the state as a checkpoint would hold it
    unsigned char saved[4][256];
    cr_assert(l.s[0].bytes <= sizeof saved[0]);
    for (size_t i = 0; i < 4; i++) memcpy(saved[i], l.s[i].data, l.s[i].bytes);
    for (int t = 0; t < 9; t++) m[t] = batcher_next(&b, bs, first[t], y);
    for (size_t i = 0; i < 4; i++) memcpy(l.s[i].data, saved[i], l.s[i].bytes);
    for (int t = 0; t < 9; t++) {
        cr_assert(eq(sz, batcher_next(&b, bs, x, y), m[t]));
        cr_assert(memcmp(x, first[t], m[t] * numel * sizeof *x) == 0, "batch %d after restore", t);
    }
    batcher_deinit(&b);
    dataset_deinit(&d);
}

// The checks a checkpoint's batcher sections carry: an order naming an image outside the
// dataset, or a position past the epoch, is refused with the value; a real state passes.
Test(batch, sections_refuse_an_order_or_position_out_of_range)
{
    struct dataset d;
    make_indexed(&d, 12, (struct shape){1, 2, 2});
    struct augment a = augment_none();
    struct batcher b;
    batcher_init(&b, &d, NULL, 12, true, &a, 5);
    struct ckpt_list l = {.n = 0};
    batcher_sections(&b, "", &l);
    cr_assert(l.s[0].valid != NULL && l.s[1].valid != NULL);
    char why[256] = "";
    cr_assert(l.s[0].valid(b.order, l.s[0].ctx, why, sizeof why));
    cr_assert(l.s[1].valid(&b.pos, l.s[1].ctx, why, sizeof why));
    size_t order[12];
    memcpy(order, b.order, sizeof order);
    order[7] = 12;
    cr_assert(l.s[0].valid(order, l.s[0].ctx, why, sizeof why) == false);
    cr_assert(strcmp(why, "entry 7 is image 12 of a dataset of 12") == 0, "%s", why);
    size_t pos = 13;
    cr_assert(l.s[1].valid(&pos, l.s[1].ctx, why, sizeof why) == false);
    cr_assert(strcmp(why, "position 13 in an epoch of 12 images") == 0, "%s", why);
    pos = 12; // used up: the next batch starts an epoch
    cr_assert(l.s[1].valid(&pos, l.s[1].ctx, why, sizeof why));
    batcher_deinit(&b);
    dataset_deinit(&d);
}
