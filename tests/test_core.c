/* test_core.c - status messages, assertions, the random generator and the BLAS wrappers. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/blas.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/timer.h"
#include "helpers.h"

Test(status, errorf_formats_message_and_returns_status)
{
    struct eg_error err = {0};
    enum eg_status s = eg_errorf(&err, EG_ERR_FORMAT, "%s: bad IDX magic 0x%08x", "f.gz", 0u);
    cr_assert(eq(int, s, EG_ERR_FORMAT));
    cr_assert(eq(int, err.status, EG_ERR_FORMAT));
    cr_assert(strcmp(err.msg, "f.gz: bad IDX magic 0x00000000") == 0, "%s", err.msg);
    cr_assert(strcmp(eg_status_name(EG_ERR_CONFIG), "config") == 0);
}

Test(status, assert_aborts, .signal = SIGABRT)
{
    int one = 1;
    EG_ASSERT(one == 2);
}

Test(rng, same_seed_same_stream_different_seed_different_stream)
{
    struct rng a, b, c;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_u64(&a);
        cr_assert(eq(u64, x, rng_u64(&b)));
        differ += x != rng_u64(&c);
    }
    cr_assert(gt(int, differ, 95));
}

Test(rng, gaussian_uniform_and_rademacher_moments)
{
    struct rng r;
    rng_seed(&r, 7);
    const size_t n = 200000;
    double s = 0, s2 = 0, u = 0, rs = 0;
    for (size_t i = 0; i < n; i++) {
        double g = rng_gaussian(&r);
        s += g;
        s2 += g * g;
        double x = rng_uniform(&r);
        cr_assert(x >= 0.0 && x < 1.0);
        u += x;
        rs += (double)rng_rademacher(&r);
    }
    // 5-sigma bounds: mean of N(0,1) has sd 1/sqrt(n) = 0.0022
    cr_assert(lt(dbl, fabs(s / n), 0.012));
    cr_assert(lt(dbl, fabs(s2 / n - 1.0), 0.02));
    cr_assert(lt(dbl, fabs(u / n - 0.5), 0.004));
    cr_assert(lt(dbl, fabs(rs / n), 0.012));
    float v[100];
    rng_fill_rademacher(&r, v, 100, 0.001f);
    for (int i = 0; i < 100; i++) cr_assert(v[i] == 0.001f || v[i] == -0.001f);
}

Test(rng, below_is_in_range_and_shuffle_is_a_permutation)
{
    struct rng r;
    rng_seed(&r, 3);
    size_t counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[rng_below(&r, 7)]++;
    for (int k = 0; k < 7; k++) cr_assert(counts[k] > 9500 && counts[k] < 10500, "k=%d", k);
    size_t idx[50];
    rng_permutation(&r, idx, 50);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[idx[i]]++;
    for (int i = 0; i < 50; i++) cr_assert(eq(int, seen[i], 1));
}

Test(blas, sgemm_matches_naive_for_all_transposes)
{
    struct rng r;
    rng_seed(&r, 11);
    const size_t M = 13, N = 17, K = 29, ld = 40;
    float *A = eg_xmalloc_floats(ld * ld), *B = eg_xmalloc_floats(ld * ld);
    float *C1 = eg_xmalloc_floats(M * ld), *C2 = eg_xmalloc_floats(M * ld);
    rng_fill_uniform(&r, A, ld * ld, -1, 1);
    rng_fill_uniform(&r, B, ld * ld, -1, 1);
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        rng_fill_uniform(&r, C1, M * ld, -1, 1);
        memcpy(C2, C1, M * ld * sizeof(float));
        eg_sgemm(ta, tb, M, N, K, 0.5f, A, ld, B, ld, 0.25f, C1, ld);
        eg_sgemm_naive(ta, tb, M, N, K, 0.5f, A, ld, B, ld, 0.25f, C2, ld);
        assert_close_f("sgemm", C1, C2, M * ld, 1e-5, 1e-5);
    }
    free(A);
    free(B);
    free(C1);
    free(C2);
}

Test(timer, clock_advances_and_rss_is_positive)
{
    double t0 = eg_wall_seconds();
    volatile double x = 0;
    for (int i = 0; i < 1000000; i++) x += i;
    cr_assert(ge(dbl, eg_wall_seconds(), t0));
    cr_assert(gt(dbl, eg_peak_rss_mb(), 0.5));
    cr_assert(gt(dbl, eg_current_rss_mb(), 0.5));
}
