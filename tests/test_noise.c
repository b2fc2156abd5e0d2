/* test_noise.c - Meta-Weight-Net's noise matrices (exact entries per kind), their validation,
 * and the resampling of labels: realised transition frequencies against C, the realised rate,
 * determinism, and clean labels left alone. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/noise.h"

// n images of 1x1x1 pixels whose labels (current and clean) are i % classes.
static void make_cyclic(struct dataset *d, size_t n, size_t classes)
{
    dataset_alloc(d, n, (struct shape){1, 1, 1}, classes);
    for (size_t i = 0; i < n; i++) {
        d->labels[i] = (int32_t)(i % classes);
        d->clean_labels[i] = (int32_t)(i % classes);
    }
}

// Each row of C (N x N) sums to 1 and holds no negative entry.
static void assert_row_stochastic(const double *C, size_t N)
{
    for (size_t i = 0; i < N; i++) {
        double s = 0.0;
        for (size_t j = 0; j < N; j++) {
            cr_assert(ge(dbl, C[i * N + j], 0.0), "C[%zu][%zu] = %g", i, j, C[i * N + j]);
            s += C[i * N + j];
        }
        cr_assert(epsilon_eq(dbl, s, 1.0, 1e-12), "row %zu sums to %.17g", i, s);
    }
}

Test(noise, kind_names_round_trip_and_unknown_is_rejected)
{
    for (int k = 0; k < NOISE_KIND__COUNT; k++) {
        enum noise_kind got = NOISE_KIND__COUNT;
        cr_assert(noise_kind_find(noise_kind_name((enum noise_kind)k), &got));
        cr_assert(eq(int, (int)got, k));
    }
    cr_assert(strcmp(noise_kind_name(NOISE_KIND_FLIP2), "flip2") == 0);
    cr_assert(strcmp(noise_kind_name(NOISE_KIND_UNIF), "unif") == 0);
    enum noise_kind kept = NOISE_KIND_FLIP;
    cr_assert(not(noise_kind_find("hierarchical", &kept)));
    cr_assert(not(noise_kind_find("", &kept)));
    cr_assert(not(noise_kind_find("Unif", &kept)));
    cr_assert(eq(int, (int)kept, NOISE_KIND_FLIP), "kind must be untouched when not found");
}

Test(noise, check_rejects_bad_rates_and_too_few_classes)
{
    const char *r;
    r = noise_check(NOISE_KIND_UNIF, -0.01, 10);
    cr_assert(r != NULL && strstr(r, "[0, 1]") != NULL, "%s", r ? r : "NULL");
    cr_assert(noise_check(NOISE_KIND_UNIF, 1.01, 10) != NULL);
    cr_assert(noise_check(NOISE_KIND_FLIP, NAN, 10) != NULL);
    cr_assert(noise_check(NOISE_KIND_NONE, NAN, 10) != NULL);
    cr_assert(noise_check(NOISE_KIND_UNIF, INFINITY, 10) != NULL);
    cr_assert(noise_check(NOISE_KIND_UNIF, 0.4, 0) != NULL);
    r = noise_check(NOISE_KIND_FLIP, 0.4, 1);
    cr_assert(r != NULL && strstr(r, "flip") != NULL && strstr(r, "2") != NULL, "%s",
              r ? r : "NULL");
    r = noise_check(NOISE_KIND_FLIP2, 0.4, 2);
    cr_assert(r != NULL && strstr(r, "flip2") != NULL && strstr(r, "3") != NULL, "%s",
              r ? r : "NULL");
    cr_assert(noise_check((enum noise_kind)NOISE_KIND__COUNT, 0.4, 10) != NULL);

    // The boundaries are valid.
    cr_assert(noise_check(NOISE_KIND_UNIF, 0.0, 1) == NULL);
    cr_assert(noise_check(NOISE_KIND_UNIF, 1.0, 10) == NULL);
    cr_assert(noise_check(NOISE_KIND_NONE, 0.4, 1) == NULL);
    cr_assert(noise_check(NOISE_KIND_FLIP, 1.0, 2) == NULL);
    cr_assert(noise_check(NOISE_KIND_FLIP2, 0.0, 3) == NULL);
}

Test(noise, unif_matrix_is_rate_over_n_plus_identity)
{
    const size_t N = 10;
    double C[100];
    struct rng r;
    rng_seed(&r, 1);
    noise_matrix(NOISE_KIND_UNIF, 0.4, N, &r, C);
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            double want = i == j ? 0.6 + 0.04 : 0.04;
            cr_assert(epsilon_eq(dbl, C[i * N + j], want, 1e-15), "C[%zu][%zu] = %.17g", i, j,
                      C[i * N + j]);
        }
    }
    assert_row_stochastic(C, N);
}

Test(noise, none_matrix_is_identity_whatever_the_rate)
{
    const size_t N = 5;
    double C[25];
    struct rng r;
    rng_seed(&r, 1);
    noise_matrix(NOISE_KIND_NONE, 0.7, N, &r, C);
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++)
            cr_assert(eq(dbl, C[i * N + j], i == j ? 1.0 : 0.0));
    }
}

Test(noise, flip_matrix_moves_rate_to_one_other_class_per_row)
{
    const size_t N = 10;
    const double rate = 0.4;
    double C[100];
    struct rng r;
    rng_seed(&r, 1);
    noise_matrix(NOISE_KIND_FLIP, rate, N, &r, C);
    assert_row_stochastic(C, N);
    for (size_t i = 0; i < N; i++) {
        cr_assert(epsilon_eq(dbl, C[i * N + i], 1.0 - rate, 1e-15));
        size_t targets = 0;
        for (size_t j = 0; j < N; j++) {
            if (j == i || C[i * N + j] == 0.0) continue;
            cr_assert(eq(dbl, C[i * N + j], rate), "C[%zu][%zu] = %g", i, j, C[i * N + j]);
            targets++;
        }
        cr_assert(eq(sz, targets, 1), "row %zu has %zu flip targets", i, targets);
    }
}

Test(noise, flip2_matrix_splits_rate_over_two_distinct_other_classes)
{
    const size_t N = 10;
    const double rate = 0.4;
    double C[100];
    struct rng r;
    rng_seed(&r, 2);
    for (int rep = 0; rep < 50; rep++) {
        noise_matrix(NOISE_KIND_FLIP2, rate, N, &r, C);
        assert_row_stochastic(C, N);
        for (size_t i = 0; i < N; i++) {
            cr_assert(epsilon_eq(dbl, C[i * N + i], 1.0 - rate, 1e-15));
            size_t targets = 0;
            for (size_t j = 0; j < N; j++) {
                if (j == i || C[i * N + j] == 0.0) continue;
                cr_assert(eq(dbl, C[i * N + j], rate / 2), "C[%zu][%zu] = %g", i, j, C[i * N + j]);
                targets++;
            }
            cr_assert(eq(sz, targets, 2), "rep %d row %zu has %zu flip2 targets", rep, i, targets);
        }
    }
}

Test(noise, flip_targets_are_uniform_over_the_other_classes)
{
    // 2000 matrices; each row's target is one of the 9 others with p = 1/9: 222 expected,
    // sd = sqrt(2000 * 1/9 * 8/9) = 14, so +-70 is 5 sd.
    const size_t N = 10, reps = 2000;
    double C[100];
    size_t counts[10][10] = {{0}};
    struct rng r;
    rng_seed(&r, 3);
    for (size_t rep = 0; rep < reps; rep++) {
        noise_matrix(NOISE_KIND_FLIP, 0.3, N, &r, C);
        for (size_t i = 0; i < N; i++) {
            for (size_t j = 0; j < N; j++) {
                if (j != i && C[i * N + j] > 0.0) counts[i][j]++;
            }
        }
    }
    for (size_t i = 0; i < N; i++) {
        cr_assert(eq(sz, counts[i][i], 0));
        for (size_t j = 0; j < N; j++) {
            if (j == i) continue;
            double dev = fabs((double)counts[i][j] - (double)reps / 9.0);
            cr_assert(lt(dbl, dev, 70.0), "row %zu target %zu: %zu times", i, j, counts[i][j]);
        }
    }
}

Test(noise, flip2_target_pairs_are_uniform)
{
    // 4 classes: each row picks one of the 3 pairs of other classes with p = 1/3.
    // 3000 matrices: 1000 expected per pair, sd = 25.8, so +-130 is 5 sd.
    const size_t N = 4, reps = 3000;
    double C[16];
    size_t pair_counts[4][4] = {{0}}; // [row][the other class left out]
    struct rng r;
    rng_seed(&r, 4);
    for (size_t rep = 0; rep < reps; rep++) {
        noise_matrix(NOISE_KIND_FLIP2, 0.5, N, &r, C);
        for (size_t i = 0; i < N; i++) {
            size_t out = N, zeros = 0;
            for (size_t j = 0; j < N; j++) {
                if (j != i && C[i * N + j] == 0.0) {
                    out = j;
                    zeros++;
                }
            }
            cr_assert(eq(sz, zeros, 1));
            pair_counts[i][out]++;
        }
    }
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            if (j == i) continue;
            double dev = fabs((double)pair_counts[i][j] - (double)reps / 3.0);
            cr_assert(lt(dbl, dev, 130.0), "row %zu without %zu: %zu", i, j, pair_counts[i][j]);
        }
    }
}

Test(noise, flip_matrix_is_deterministic_for_a_seed)
{
    double A[49], B[49];
    struct rng r1, r2;
    rng_seed(&r1, 1);
    rng_seed(&r2, 1);
    noise_matrix(NOISE_KIND_FLIP2, 0.4, 7, &r1, A);
    noise_matrix(NOISE_KIND_FLIP2, 0.4, 7, &r2, B);
    cr_assert(memcmp(A, B, sizeof A) == 0);
}

// Resamples 200,000 cyclic labels (20,000 per class) through C and checks every cell of the
// realised transition table against C within 5 standard errors sqrt(p(1-p)/n_row); cells with
// p = 0 must never occur.
static void check_transition_frequencies(const double *C, size_t N, uint64_t seed)
{
    const size_t n = 200000, n_row = n / N;
    struct dataset d;
    make_cyclic(&d, n, N);
    struct rng r;
    rng_seed(&r, seed);
    double realised = noise_apply(&d, C, &r);
    size_t *T = eg_xcalloc(N * N, sizeof *T);
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(d.labels[i] >= 0 && (size_t)d.labels[i] < N);
        T[(size_t)d.clean_labels[i] * N + (size_t)d.labels[i]]++;
        changed += d.labels[i] != d.clean_labels[i];
    }
    cr_assert(eq(dbl, realised, (double)changed / (double)n));
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            double p = C[i * N + j], f = (double)T[i * N + j] / (double)n_row;
            if (p == 0.0) {
                cr_assert(eq(sz, T[i * N + j], 0), "cell (%zu, %zu) has p = 0", i, j);
                continue;
            }
            double se = sqrt(p * (1.0 - p) / (double)n_row);
            cr_assert(le(dbl, fabs(f - p), 5.0 * se + 1e-12), "cell (%zu, %zu): %g vs %g", i, j, f,
                      p);
        }
    }
    free(T);
    dataset_deinit(&d);
}

Test(noise, apply_matches_transition_matrix_for_each_kind)
{
    const size_t N = 10;
    double C[100];
    struct rng r;
    rng_seed(&r, 1);
    noise_matrix(NOISE_KIND_UNIF, 0.4, N, &r, C);
    check_transition_frequencies(C, N, 10);
    noise_matrix(NOISE_KIND_FLIP, 0.4, N, &r, C);
    check_transition_frequencies(C, N, 11);
    noise_matrix(NOISE_KIND_FLIP2, 0.4, N, &r, C);
    check_transition_frequencies(C, N, 12);
}

Test(noise, apply_matches_an_arbitrary_row_stochastic_matrix)
{
    // Uneven rows, zeros first, in the middle and last.
    const double C[9] = {
        0.0, 0.25, 0.75, //
        0.1, 0.0,  0.9,  //
        0.5, 0.5,  0.0,  //
    };
    check_transition_frequencies(C, 3, 13);
}

Test(noise, unif_realised_rate_is_rate_times_n_minus_1_over_n)
{
    // unif 0.4 over 10 classes keeps a label with 0.6 + 0.04, so 0.4 * 9/10 = 0.36 change;
    // sd of the fraction = sqrt(0.36 * 0.64 / 200000) = 0.0011, so 0.006 is over 5 sd.
    struct dataset d;
    make_cyclic(&d, 200000, 10);
    double C[100];
    struct rng r;
    rng_seed(&r, 5);
    noise_matrix(NOISE_KIND_UNIF, 0.4, 10, &r, C);
    double realised = noise_apply(&d, C, &r);
    cr_assert(lt(dbl, fabs(realised - 0.36), 0.006), "realised rate %g", realised);
    dataset_deinit(&d);
}

Test(noise, apply_is_deterministic_for_a_seed)
{
    struct dataset a, b;
    make_cyclic(&a, 5000, 10);
    make_cyclic(&b, 5000, 10);
    double C[100];
    struct rng r;
    rng_seed(&r, 1);
    noise_matrix(NOISE_KIND_FLIP2, 0.4, 10, &r, C);
    struct rng ra, rb;
    rng_seed(&ra, 99);
    rng_seed(&rb, 99);
    double fa = noise_apply(&a, C, &ra), fb = noise_apply(&b, C, &rb);
    cr_assert(eq(dbl, fa, fb));
    cr_assert(memcmp(a.labels, b.labels, 5000 * sizeof *a.labels) == 0);

    // Another seed gives other labels.
    rng_seed(&rb, 100);
    noise_apply(&b, C, &rb);
    cr_assert(memcmp(a.labels, b.labels, 5000 * sizeof *a.labels) != 0);
    dataset_deinit(&a);
    dataset_deinit(&b);
}

Test(noise, apply_leaves_clean_labels_untouched_and_resamples_from_them)
{
    struct dataset d;
    make_cyclic(&d, 3000, 10);
    int32_t *before = eg_xmalloc_array(3000, sizeof *before);
    memcpy(before, d.clean_labels, 3000 * sizeof *before);
    double C[100];
    struct rng r;
    rng_seed(&r, 6);
    noise_matrix(NOISE_KIND_UNIF, 1.0, 10, &r, C);
    noise_apply(&d, C, &r);
    cr_assert(memcmp(before, d.clean_labels, 3000 * sizeof *before) == 0);
    // A second application starts again from the clean labels: identity restores them.
    noise_matrix(NOISE_KIND_NONE, 0.0, 10, &r, C);
    cr_assert(eq(dbl, noise_apply(&d, C, &r), 0.0));
    cr_assert(memcmp(before, d.labels, 3000 * sizeof *before) == 0);
    free(before);
    dataset_deinit(&d);
}

Test(noise, none_keeps_every_label)
{
    struct dataset d;
    make_cyclic(&d, 1000, 7);
    for (size_t i = 0; i < d.n; i++)
        d.labels[i] = 0; // whatever training saw before
    double C[49];
    struct rng r;
    rng_seed(&r, 7);
    noise_matrix(NOISE_KIND_NONE, 0.4, 7, &r, C);
    cr_assert(eq(dbl, noise_apply(&d, C, &r), 0.0));
    for (size_t i = 0; i < d.n; i++)
        cr_assert(eq(i32, d.labels[i], d.clean_labels[i]));
    dataset_deinit(&d);
}

Test(noise, rounding_short_row_never_picks_a_zero_probability_class)
{
    // A row summing to 1 - 1e-3 (as if rounded down): draws past the sum fall to the last class
    // that has a probability, never to the trailing zero.
    const double C[9] = {
        0.5, 0.499, 0.0, //
        0.0, 1.0,   0.0, //
        0.0, 0.0,   1.0, //
    };
    struct dataset d;
    dataset_alloc(&d, 20000, (struct shape){1, 1, 1}, 3);
    struct rng r;
    rng_seed(&r, 8);
    noise_apply(&d, C, &r);
    for (size_t i = 0; i < d.n; i++)
        cr_assert(ne(i32, d.labels[i], 2), "i=%zu", i);
    dataset_deinit(&d);
}

Test(noise, apply_aborts_on_out_of_range_clean_label, .signal = SIGABRT)
{
    struct dataset d;
    make_cyclic(&d, 4, 2);
    d.clean_labels[3] = 2;
    const double C[4] = {1, 0, 0, 1};
    struct rng r;
    rng_seed(&r, 1);
    noise_apply(&d, C, &r);
}
