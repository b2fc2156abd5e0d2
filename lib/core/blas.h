/* blas.h - thin wrappers over the CBLAS routines evograd uses, with a naive reference of each
 * (tests check that the two agree). All matrices are row-major; sizes are size_t and are cast to
 * int only at the cblas call. No cblas header leaks out of this module. */
#ifndef EG_BLAS_H
#define EG_BLAS_H

#include <stdbool.h>
#include <stddef.h>

// C = alpha * op(A) * op(B) + beta * C, row-major.
//   op(A): (M, K), stored (M, lda) or, if ta, (K, lda) and transposed
//   op(B): (K, N), stored (K, ldb) or, if tb, (N, ldb) and transposed
//   C: (M, ldc), first N columns used
// With beta == 0, C is written without being read (NaNs in C do not propagate).
void eg_sgemm(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
              size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
// Same contract, triple loop with double accumulation; for tests.
void eg_sgemm_naive(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                    size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

// y = alpha * x + y;  x, y: (n)
void eg_saxpy(size_t n, float alpha, const float *x, float *y);
// x = alpha * x;  x: (n)
void eg_sscal(size_t n, float alpha, float *x);
// sum_i x[i] * y[i], accumulated in double; x, y: (n)
double eg_dot(size_t n, const float *x, const float *y);

// Sets / reads OpenBLAS's thread count (openblas_set_num_threads). n >= 1.
void eg_blas_set_threads(int n);
int eg_blas_threads(void);

#endif // EG_BLAS_H
