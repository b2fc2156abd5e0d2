/* parallel.c - thread settings over OpenMP and OpenBLAS. */
#include "parallel.h"

#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
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

void eg_runtime_setup(char **argv)
{
    static const char *const settings[][2] = {
        {"OMP_WAIT_POLICY", "passive"},
        {"OPENBLAS_THREAD_TIMEOUT", "10"},
    };
    // EVOGRAD_RUNTIME_SET marks the re-executed process, so this can never loop.
    if (getenv("EVOGRAD_RUNTIME_SET") != NULL) return;
    bool changed = false;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        if (getenv(settings[i][0]) == NULL) {
            setenv(settings[i][0], settings[i][1], 1);
            changed = true;
        }
    }
    if (!changed) return;
    setenv("EVOGRAD_RUNTIME_SET", "1", 1);
    execv("/proc/self/exe", argv);
    // execv failed: carry on with the libraries' defaults.
}
