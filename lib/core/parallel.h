/* parallel.h - threads. oneDNN's convolutions and evograd's own loops (batch norm, element-wise
 * layers, im2col) run on OpenMP; OpenBLAS runs its GEMMs on its own threads. One setting drives
 * both (eg_set_threads; conv2d_set_threads gives OpenBLAS one thread when oneDNN convolves).
 *
 * The two runtimes must hand the cores back to each other quickly: by default OpenBLAS's idle
 * workers spin for about 2^28 cycles after every GEMM and OpenMP's for a while after every
 * parallel loop, and on a 2-core machine each then steals the other's core (measured: a ResNet-32
 * step 3x slower). eg_runtime_setup limits OpenBLAS's spin to 2^10 cycles and OpenMP's to
 * EG_OMP_SPINCOUNT iterations (tens of microseconds) before they sleep. Waiting passively (no spin
 * at all, the setting before oneDNN) made a oneDNN ResNet-32 step ~10% slower: each of its ~200
 * parallel regions per step then starts by waking sleeping threads. `make bench` shows the
 * effect. */
#ifndef EG_PARALLEL_H
#define EG_PARALLEL_H

#include <stddef.h>

// Sets the threads of OpenBLAS and of evograd's own loops. n >= 1.
void eg_set_threads(int n);
// The threads evograd's own loops use (OpenMP's current setting).
int eg_threads(void);
// Index of the calling thread inside a parallel region (0 outside one).
int eg_thread_index(void);

// evograd's own per-channel, per-plane and element-wise loops run on the threads when they
// touch at least this many floats; shorter ones stay on one (a parallel region costs a few
// microseconds). Each thread takes whole channels, planes or pieces and computes them exactly as
// one thread would: results do not depend on the thread count.
#define EG_PAR_FLOATS 32768

// p[0, n) = 0, split over the threads from EG_PAR_FLOATS floats.
void eg_zero_floats(float *p, size_t n);

// OpenMP's spin before an idle thread sleeps (GOMP_SPINCOUNT).
#define EG_OMP_SPINCOUNT "1000"

// Call first thing in main. Sets GOMP_SPINCOUNT=EG_OMP_SPINCOUNT (unless the user set it or
// OMP_WAIT_POLICY) and OPENBLAS_THREAD_TIMEOUT=10 (2^10 cycles) where the user has not set it
// and, because both libraries read them only when they load, then re-executes the program once
// (/proc/self/exe, same argv). Returns when nothing had to be set or when the re-execution failed
// (the program then runs with the defaults: correct, only slower).
void eg_runtime_setup(char **argv);

#endif // EG_PARALLEL_H
