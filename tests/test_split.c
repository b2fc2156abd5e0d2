/* test_split.c - the class-balanced meta split (counts, class order, disjoint cover, ascending
 * rest, clean labels, uniformity, determinism, error messages with untouched outputs) and
 * split_range. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/split.h"

// n 1x1x1 images in `classes` classes with uneven class sizes in a scrambled order:
// label(i) = (i * 7 + i / 3) % classes, the same for labels and clean_labels.
static void make_scrambled(struct dataset *d, size_t n, size_t classes)
{
    dataset_alloc(d, n, (struct shape){1, 1, 1}, classes);
    for (size_t i = 0; i < n; i++) {
        d->clean_labels[i] = (int32_t)((i * 7 + i / 3) % classes);
        d->labels[i] = d->clean_labels[i];
    }
}

// Checks everything split_balanced promises for (d, meta_size).
static void check_balanced(const struct dataset *d, size_t meta_size, const size_t *meta,
                           const size_t *rest)
{
    const size_t per = meta_size / d->classes, n_rest = d->n - meta_size;
    size_t *seen = eg_xcalloc(d->n, sizeof *seen);
    for (size_t t = 0; t < meta_size; t++) {
        cr_assert(lt(sz, meta[t], d->n));
        // Class order: positions [k*per, (k+1)*per) hold class k.
        cr_assert(eq(i32, d->clean_labels[meta[t]], (int32_t)(t / per)), "meta[%zu]", t);
        seen[meta[t]]++;
    }
    for (size_t t = 0; t < n_rest; t++) {
        cr_assert(lt(sz, rest[t], d->n));
        if (t > 0) cr_assert(gt(sz, rest[t], rest[t - 1]), "rest not ascending at %zu", t);
        seen[rest[t]]++;
    }
    for (size_t i = 0; i < d->n; i++)
        cr_assert(eq(sz, seen[i], 1), "index %zu seen", i);
    free(seen);
}

Test(split, balanced_takes_meta_size_over_classes_per_class_and_covers_the_rest)
{
    struct dataset d;
    make_scrambled(&d, 1000, 10);
    size_t meta[100], rest[900];
    struct rng r;
    rng_seed(&r, 1);
    struct eg_error err = {0};
    cr_assert(eq(int, split_balanced(&d, 100, &r, meta, rest, &err), EG_OK), "%s", err.msg);
    check_balanced(&d, 100, meta, rest);
    dataset_deinit(&d);
}

Test(split, balanced_goes_by_clean_labels_not_noisy_ones)
{
    struct dataset d;
    make_scrambled(&d, 300, 3);
    for (size_t i = 0; i < d.n; i++)
        d.labels[i] = 0; // noise sent everything to class 0
    size_t meta[30], rest[270];
    struct rng r;
    rng_seed(&r, 2);
    cr_assert(eq(int, split_balanced(&d, 30, &r, meta, rest, NULL), EG_OK));
    check_balanced(&d, 30, meta, rest);
    dataset_deinit(&d);
}

Test(split, balanced_with_zero_or_all_images)
{
    struct dataset d;
    dataset_alloc(&d, 12, (struct shape){1, 1, 1}, 4);
    for (size_t i = 0; i < 12; i++)
        d.clean_labels[i] = d.labels[i] = (int32_t)(i / 3);
    size_t meta[12], rest[12];
    struct rng r;
    rng_seed(&r, 3);
    cr_assert(eq(int, split_balanced(&d, 0, &r, meta, rest, NULL), EG_OK));
    check_balanced(&d, 0, meta, rest);
    cr_assert(eq(int, split_balanced(&d, 12, &r, meta, rest, NULL), EG_OK));
    check_balanced(&d, 12, meta, rest);
    dataset_deinit(&d);
}

Test(split, balanced_is_deterministic_for_a_seed)
{
    struct dataset d;
    make_scrambled(&d, 500, 5);
    size_t m1[50], r1[450], m2[50], r2[450];
    struct rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    cr_assert(eq(int, split_balanced(&d, 50, &a, m1, r1, NULL), EG_OK));
    cr_assert(eq(int, split_balanced(&d, 50, &b, m2, r2, NULL), EG_OK));
    cr_assert(memcmp(m1, m2, sizeof m1) == 0);
    cr_assert(memcmp(r1, r2, sizeof r1) == 0);
    rng_seed(&b, 43);
    cr_assert(eq(int, split_balanced(&d, 50, &b, m2, r2, NULL), EG_OK));
    cr_assert(memcmp(m1, m2, sizeof m1) != 0);
    dataset_deinit(&d);
}

Test(split, balanced_picks_each_image_of_a_class_equally_often)
{
    // 2 classes of 10 images, 3 per class: each image is taken with p = 3/10. Over 4000 splits
    // 1200 expected, sd = sqrt(4000 * 0.3 * 0.7) = 29, so +-145 is 5 sd. Within a class the
    // first meta slot is uniform too: 400 expected, sd 19, +-95.
    struct dataset d;
    dataset_alloc(&d, 20, (struct shape){1, 1, 1}, 2);
    for (size_t i = 0; i < 20; i++)
        d.clean_labels[i] = d.labels[i] = (int32_t)(i % 2);
    size_t picked[20] = {0}, first[20] = {0};
    size_t meta[6], rest[14];
    struct rng r;
    rng_seed(&r, 4);
    const size_t reps = 4000;
    for (size_t rep = 0; rep < reps; rep++) {
        cr_assert(eq(int, split_balanced(&d, 6, &r, meta, rest, NULL), EG_OK));
        for (size_t t = 0; t < 6; t++)
            picked[meta[t]]++;
        first[meta[0]]++;
    }
    for (size_t i = 0; i < 20; i++) {
        cr_assert(lt(dbl, fabs((double)picked[i] - 0.3 * reps), 145.0), "image %zu: %zu", i,
                  picked[i]);
        if (i % 2 == 0) {
            cr_assert(lt(dbl, fabs((double)first[i] - 0.1 * reps), 95.0), "image %zu first: %zu", i,
                      first[i]);
        } else {
            cr_assert(eq(sz, first[i], 0));
        }
    }
    dataset_deinit(&d);
}

// Runs split_balanced expecting EG_ERR_ARG and checks that the outputs and the rng are untouched;
// returns the message in err.
static void expect_split_error(const struct dataset *d, size_t meta_size, struct eg_error *err)
{
    size_t *meta = eg_xmalloc_array(d->n + 1, sizeof *meta);
    size_t *rest = eg_xmalloc_array(d->n + 1, sizeof *rest);
    memset(meta, 0xAB, (d->n + 1) * sizeof *meta);
    memset(rest, 0xCD, (d->n + 1) * sizeof *rest);
    struct rng r, r0;
    rng_seed(&r, 5);
    memcpy(&r0, &r, sizeof r);
    cr_assert(eq(int, split_balanced(d, meta_size, &r, meta, rest, err), EG_ERR_ARG));
    cr_assert(eq(int, err->status, EG_ERR_ARG));
    for (size_t i = 0; i <= d->n; i++) {
        cr_assert(eq(sz, meta[i], (size_t)0xABABABABABABABABu), "meta[%zu] written", i);
        cr_assert(eq(sz, rest[i], (size_t)0xCDCDCDCDCDCDCDCDu), "rest[%zu] written", i);
    }
    cr_assert(memcmp(&r, &r0, sizeof r) == 0, "rng advanced on failure");
    free(meta);
    free(rest);
}

Test(split, rejects_meta_size_not_a_multiple_of_classes)
{
    struct dataset d;
    make_scrambled(&d, 100, 10);
    struct eg_error err = {0};
    expect_split_error(&d, 25, &err);
    cr_assert(strstr(err.msg, "25") != NULL && strstr(err.msg, "multiple") != NULL &&
                  strstr(err.msg, "10") != NULL,
              "%s", err.msg);
    dataset_deinit(&d);
}

Test(split, rejects_meta_size_above_n)
{
    struct dataset d;
    make_scrambled(&d, 100, 10);
    struct eg_error err = {0};
    expect_split_error(&d, 110, &err);
    cr_assert(strstr(err.msg, "110") != NULL && strstr(err.msg, "100 images") != NULL, "%s",
              err.msg);
    dataset_deinit(&d);
}

Test(split, rejects_a_class_with_too_few_images_and_names_it)
{
    // Class sizes 5, 2, 5: a meta set of 9 needs 3 per class; class 1 has 2.
    struct dataset d;
    dataset_alloc(&d, 12, (struct shape){1, 1, 1}, 3);
    const int32_t y[12] = {0, 0, 2, 0, 1, 2, 2, 0, 1, 2, 0, 2};
    memcpy(d.clean_labels, y, sizeof y);
    memcpy(d.labels, y, sizeof y);
    struct eg_error err = {0};
    expect_split_error(&d, 9, &err);
    cr_assert(strstr(err.msg, "class 1 ") != NULL && strstr(err.msg, "has 2 images") != NULL &&
                  strstr(err.msg, "3 per class") != NULL,
              "%s", err.msg);

    // With class names the name is in the message too.
    d.class_names = eg_xcalloc(3, sizeof *d.class_names);
    d.class_names[0] = eg_xstrdup("airplane");
    d.class_names[1] = eg_xstrdup("automobile");
    d.class_names[2] = eg_xstrdup("bird");
    expect_split_error(&d, 9, &err);
    cr_assert(strstr(err.msg, "class 1 ('automobile') has 2 images") != NULL, "%s", err.msg);
    dataset_deinit(&d);
}

Test(split, range_writes_begin_to_end)
{
    size_t idx[5] = {99, 99, 99, 99, 99};
    split_range(45000, 45004, idx);
    for (size_t i = 0; i < 4; i++)
        cr_assert(eq(sz, idx[i], 45000 + i));
    cr_assert(eq(sz, idx[4], 99));
    split_range(7, 7, idx); // empty: nothing written
    cr_assert(eq(sz, idx[0], 45000));
}

Test(split, range_aborts_when_begin_exceeds_end, .signal = SIGABRT)
{
    size_t idx[1];
    split_range(3, 2, idx);
}
