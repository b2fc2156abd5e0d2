/* parallel.c - thread settings over OpenMP and OpenBLAS. */
#include "parallel.h"

#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "status.h"

void eg_set_threads(int n)
{
    EG_ASSERT(n >= 1);
    eg_blas_set_threads(n);
    omp_set_num_threads(n);
}

int eg_threads(void)
{
    return omp_get_max_threads();
}

int eg_thread_index(void)
{
    return omp_get_thread_num();
}

#define ZERO_PIECE 16384 // floats per piece (64 KiB)

void eg_zero_floats(float *p, size_t n)
{
    const size_t pieces = (n + ZERO_PIECE - 1) / ZERO_PIECE;
#pragma omp parallel for schedule(static) if (n >= EG_PAR_FLOATS)
    for (size_t i = 0; i < pieces; i++) {
        const size_t lo = i * ZERO_PIECE;
        memset(p + lo, 0, (n - lo < ZERO_PIECE ? n - lo : ZERO_PIECE) * sizeof(float));
    }
}

void eg_runtime_setup(char **argv)
{
    // EVOGRAD_RUNTIME_SET marks the re-executed process, so this can never loop.
    if (getenv("EVOGRAD_RUNTIME_SET") != NULL) return;
    bool changed = false;
    // OpenMP's spin: a user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins
    if (getenv("OMP_WAIT_POLICY") == NULL && getenv("GOMP_SPINCOUNT") == NULL) {
        setenv("GOMP_SPINCOUNT", EG_OMP_SPINCOUNT, 1);
        changed = true;
    }
    if (getenv("OPENBLAS_THREAD_TIMEOUT") == NULL) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "10", 1);
        changed = true;
    }
    if (!changed) return;
    setenv("EVOGRAD_RUNTIME_SET", "1", 1);
    execv("/proc/self/exe", argv);
    // execv failed: carry on with the libraries' defaults.
}
