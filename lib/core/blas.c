/* blas.c - CBLAS (OpenBLAS) wrappers and their naive references. */
#include "blas.h"

#include <cblas.h>
#include <limits.h>

#include "status.h"

static int to_int(size_t v)
{
    EG_ASSERT(v <= (size_t)INT_MAX);
    return (int)v;
}

void eg_sgemm(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
              size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                to_int(M), to_int(N), to_int(K), alpha, A, to_int(lda), B, to_int(ldb), beta, C,
                to_int(ldc));
}

void eg_sgemm_naive(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                    size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += (double)a * (double)b;
            }
            float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = (float)((double)alpha * acc) + prev;
        }
    }
}

void eg_saxpy(size_t n, float alpha, const float *x, float *y)
{
    cblas_saxpy(to_int(n), alpha, x, 1, y, 1);
}

void eg_sscal(size_t n, float alpha, float *x)
{
    cblas_sscal(to_int(n), alpha, x, 1);
}

double eg_dot(size_t n, const float *x, const float *y)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)x[i] * (double)y[i];
    return acc;
}

void eg_blas_set_threads(int n)
{
    EG_ASSERT(n >= 1);
    openblas_set_num_threads(n);
}

int eg_blas_threads(void)
{
    return openblas_get_num_threads();
}
