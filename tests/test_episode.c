/* test_episode.c - per-class image lists and N-way K-shot Q-query episodes: structure (distinct
 * classes and images, class-major blocks), uniformity of classes and images over many draws,
 * the shortfall error with *ep untouched, determinism and the EG_ASSERT contracts. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/episode.h"

// A 1x1x1-pixel dataset with the given class sizes; images of different classes interleave
// (image i goes to the next class, round robin, that still wants images).
static void make_sized(struct dataset *d, const size_t *sizes, size_t classes)
{
    size_t n = 0;
    for (size_t k = 0; k < classes; k++)
        n += sizes[k];
    dataset_alloc(d, n, (struct shape){1, 1, 1}, classes);
    size_t *left = eg_xmalloc_array(classes, sizeof *left);
    memcpy(left, sizes, classes * sizeof *left);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        while (left[k] == 0)
            k = (k + 1) % classes;
        d->labels[i] = d->clean_labels[i] = (int32_t)k;
        left[k]--;
        k = (k + 1) % classes;
    }
    free(left);
}

// Pearson's chi-square of counts against equal expectations over m cells.
static double chi_square_uniform(const size_t *counts, size_t m)
{
    double total = 0.0;
    for (size_t i = 0; i < m; i++)
        total += (double)counts[i];
    double e = total / (double)m, chi2 = 0.0;
    for (size_t i = 0; i < m; i++)
        chi2 += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
    return chi2;
}

// A loose upper bound for chi-square with df degrees of freedom: mean + 6 sd.
static double chi_square_bound(size_t df)
{
    return (double)df + 6.0 * sqrt(2.0 * (double)df);
}

// Checks the structure of an episode sampled from d with the class index ci.
static void check_episode(const struct episode *ep, const struct dataset *d, size_t n_way,
                          size_t k_shot, size_t q_query, int32_t domain)
{
    cr_assert(eq(sz, ep->n_way, n_way));
    cr_assert(eq(sz, ep->k_shot, k_shot));
    cr_assert(eq(sz, ep->q_query, q_query));
    cr_assert(eq(i32, ep->domain, domain));
    bool *class_seen = eg_xcalloc(d->classes, sizeof *class_seen);
    bool *image_seen = eg_xcalloc(d->n, sizeof *image_seen);
    for (size_t c = 0; c < n_way; c++) {
        size_t k = ep->classes[c];
        cr_assert(lt(sz, k, d->classes));
        cr_assert(not(class_seen[k]), "class %zu drawn twice", k);
        class_seen[k] = true;
        // Class-major: block c of support and of query holds images of classes[c] (label c).
        for (size_t s = 0; s < k_shot + q_query; s++) {
            size_t i =
                s < k_shot ? ep->support[c * k_shot + s] : ep->query[c * q_query + s - k_shot];
            cr_assert(lt(sz, i, d->n));
            cr_assert(eq(i32, d->labels[i], (int32_t)k), "image %zu in block %zu", i, c);
            cr_assert(not(image_seen[i]), "image %zu drawn twice", i);
            image_seen[i] = true;
        }
    }
    free(class_seen);
    free(image_seen);
}

Test(episode, class_index_lists_each_class_in_increasing_order)
{
    const size_t sizes[5] = {3, 0, 7, 1, 4};
    struct dataset d;
    make_sized(&d, sizes, 5);
    struct class_index ci;
    class_index_build(&ci, &d);
    cr_assert(eq(sz, ci.classes, 5));
    cr_assert(eq(sz, ci.offsets[0], 0));
    cr_assert(eq(sz, ci.offsets[5], d.n));
    size_t *seen = eg_xcalloc(d.n, sizeof *seen);
    for (size_t k = 0; k < 5; k++) {
        cr_assert(eq(sz, ci.offsets[k + 1] - ci.offsets[k], sizes[k]), "class %zu", k);
        for (size_t t = ci.offsets[k]; t < ci.offsets[k + 1]; t++) {
            cr_assert(eq(i32, d.labels[ci.idx[t]], (int32_t)k));
            if (t > ci.offsets[k]) cr_assert(gt(sz, ci.idx[t], ci.idx[t - 1]));
            seen[ci.idx[t]]++;
        }
    }
    for (size_t i = 0; i < d.n; i++)
        cr_assert(eq(sz, seen[i], 1));
    free(seen);
    class_index_deinit(&ci);
    cr_assert(ci.offsets == NULL && ci.idx == NULL && ci.classes == 0);
    class_index_deinit(&ci); // twice is fine
    class_index_deinit(NULL);
    dataset_deinit(&d);
}

Test(episode, episodes_have_distinct_classes_and_images_in_class_major_blocks)
{
    const size_t sizes[8] = {20, 25, 19, 30, 20, 40, 21, 22};
    struct dataset d;
    make_sized(&d, sizes, 8);
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng r;
    rng_seed(&r, 1);
    for (int rep = 0; rep < 200; rep++) {
        struct episode ep;
        struct eg_error err = {0};
        cr_assert(eq(int, episode_sample(&ci, 5, 3, 15, 2, &r, &ep, &err), EG_OK), "%s", err.msg);
        check_episode(&ep, &d, 5, 3, 15, 2);
        episode_deinit(&ep);
        cr_assert(ep.classes == NULL && ep.support == NULL && ep.query == NULL);
    }
    // q_query = 0 and every class at once.
    struct episode ep;
    cr_assert(eq(int, episode_sample(&ci, 8, 19, 0, -1, &r, &ep, NULL), EG_OK));
    check_episode(&ep, &d, 8, 19, 0, -1);
    episode_deinit(&ep);
    class_index_deinit(&ci);
    dataset_deinit(&d);
}

Test(episode, classes_are_uniform_among_those_with_enough_images)
{
    // 10 classes; classes 2 and 7 have 4 images, too few for 1 shot + 4 query. A 3-way episode
    // draws from the other 8: each appears with p = 3/8, and the first slot is uniform over 8.
    const size_t sizes[10] = {6, 5, 4, 9, 5, 12, 5, 4, 7, 5};
    struct dataset d;
    make_sized(&d, sizes, 10);
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng r;
    rng_seed(&r, 2);
    size_t appear[10] = {0}, first[10] = {0};
    const size_t reps = 8000;
    for (size_t rep = 0; rep < reps; rep++) {
        struct episode ep;
        cr_assert(eq(int, episode_sample(&ci, 3, 1, 4, 0, &r, &ep, NULL), EG_OK));
        for (size_t c = 0; c < 3; c++)
            appear[ep.classes[c]]++;
        first[ep.classes[0]]++;
        episode_deinit(&ep);
    }
    cr_assert(eq(sz, appear[2], 0));
    cr_assert(eq(sz, appear[7], 0));
    size_t ok_appear[8], ok_first[8], m = 0;
    for (size_t k = 0; k < 10; k++) {
        if (k == 2 || k == 7) continue;
        ok_appear[m] = appear[k];
        ok_first[m] = first[k];
        // 3000 expected, sd = sqrt(8000 * 3/8 * 5/8) = 43, so +-220 is 5 sd.
        cr_assert(lt(dbl, fabs((double)appear[k] - 3000.0), 220.0), "class %zu: %zu", k, appear[k]);
        m++;
    }
    double c1 = chi_square_uniform(ok_appear, 8), c2 = chi_square_uniform(ok_first, 8);
    cr_assert(lt(dbl, c1, chi_square_bound(7)), "chi2 of appearances %g", c1);
    cr_assert(lt(dbl, c2, chi_square_bound(7)), "chi2 of first slots %g", c2);
    class_index_deinit(&ci);
    dataset_deinit(&d);
}

Test(episode, images_are_uniform_within_a_class_and_between_support_and_query)
{
    // 4 classes of 20 images, 4-way 1-shot 4-query: every class every time. Each image appears
    // with p = 5/20 and is the support image with p = 1/20.
    const size_t sizes[4] = {20, 20, 20, 20};
    struct dataset d;
    make_sized(&d, sizes, 4);
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng r;
    rng_seed(&r, 3);
    size_t appear[80] = {0}, support[80] = {0};
    const size_t reps = 4000;
    for (size_t rep = 0; rep < reps; rep++) {
        struct episode ep;
        cr_assert(eq(int, episode_sample(&ci, 4, 1, 4, 0, &r, &ep, NULL), EG_OK));
        for (size_t t = 0; t < 4; t++) {
            appear[ep.support[t]]++;
            support[ep.support[t]]++;
        }
        for (size_t t = 0; t < 16; t++)
            appear[ep.query[t]]++;
        episode_deinit(&ep);
    }
    for (size_t i = 0; i < 80; i++) {
        // 1000 expected, sd 27, +-140; support 200 expected, sd 13.8, +-70.
        cr_assert(lt(dbl, fabs((double)appear[i] - 1000.0), 140.0), "image %zu: %zu", i, appear[i]);
        cr_assert(lt(dbl, fabs((double)support[i] - 200.0), 70.0), "image %zu support: %zu", i,
                  support[i]);
    }
    double c = chi_square_uniform(support, 80);
    cr_assert(lt(dbl, c, chi_square_bound(79)), "chi2 of support images %g", c);
    class_index_deinit(&ci);
    dataset_deinit(&d);
}

Test(episode, shortfall_is_an_error_naming_the_counts_and_leaves_ep_untouched)
{
    // Only classes 0, 3 and 4 have 20 images (5 shot + 15 query).
    const size_t sizes[6] = {20, 19, 5, 25, 40, 0};
    struct dataset d;
    make_sized(&d, sizes, 6);
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng r, r0;
    rng_seed(&r, 4);
    memcpy(&r0, &r, sizeof r);
    struct episode ep, before;
    memset(&ep, 0x5A, sizeof ep);
    memcpy(&before, &ep, sizeof ep);
    struct eg_error err = {0};
    cr_assert(eq(int, episode_sample(&ci, 5, 5, 15, 1, &r, &ep, &err), EG_ERR_ARG));
    cr_assert(eq(int, err.status, EG_ERR_ARG));
    cr_assert(strstr(err.msg, "5-way") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "at least 20 images") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "only 3 of the 6 classes") != NULL, "%s", err.msg);
    cr_assert(memcmp(&ep, &before, sizeof ep) == 0, "*ep written on failure");
    cr_assert(memcmp(&r, &r0, sizeof r) == 0, "rng advanced on failure");

    // Exactly enough classes succeeds.
    cr_assert(eq(int, episode_sample(&ci, 3, 5, 15, 1, &r, &ep, &err), EG_OK), "%s", err.msg);
    check_episode(&ep, &d, 3, 5, 15, 1);
    episode_deinit(&ep);
    class_index_deinit(&ci);
    dataset_deinit(&d);
}

Test(episode, sampling_is_deterministic_for_a_seed)
{
    const size_t sizes[6] = {30, 30, 30, 30, 30, 30};
    struct dataset d;
    make_sized(&d, sizes, 6);
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng a, b;
    rng_seed(&a, 7);
    rng_seed(&b, 7);
    struct episode e1, e2;
    cr_assert(eq(int, episode_sample(&ci, 5, 2, 6, 0, &a, &e1, NULL), EG_OK));
    cr_assert(eq(int, episode_sample(&ci, 5, 2, 6, 0, &b, &e2, NULL), EG_OK));
    cr_assert(memcmp(e1.classes, e2.classes, 5 * sizeof *e1.classes) == 0);
    cr_assert(memcmp(e1.support, e2.support, 10 * sizeof *e1.support) == 0);
    cr_assert(memcmp(e1.query, e2.query, 30 * sizeof *e1.query) == 0);
    episode_deinit(&e2);
    // A different seed gives a different episode.
    rng_seed(&b, 8);
    cr_assert(eq(int, episode_sample(&ci, 5, 2, 6, 0, &b, &e2, NULL), EG_OK));
    cr_assert(memcmp(e1.support, e2.support, 10 * sizeof *e1.support) != 0 ||
              memcmp(e1.query, e2.query, 30 * sizeof *e1.query) != 0);
    episode_deinit(&e1);
    episode_deinit(&e2);
    episode_deinit(NULL);
    class_index_deinit(&ci);
    dataset_deinit(&d);
}

Test(episode, zero_way_aborts, .signal = SIGABRT)
{
    const size_t sizes[2] = {5, 5};
    struct dataset d;
    make_sized(&d, sizes, 2);
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng r;
    rng_seed(&r, 1);
    struct episode ep;
    episode_sample(&ci, 0, 1, 1, 0, &r, &ep, NULL);
}

Test(episode, zero_shot_aborts, .signal = SIGABRT)
{
    const size_t sizes[2] = {5, 5};
    struct dataset d;
    make_sized(&d, sizes, 2);
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng r;
    rng_seed(&r, 1);
    struct episode ep;
    episode_sample(&ci, 2, 0, 1, 0, &r, &ep, NULL);
}
