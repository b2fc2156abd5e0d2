/* parallel.h - threads. OpenBLAS runs its GEMMs on its own threads; evograd's own memory-bound
 * loops (im2col, col2im) are split with OpenMP. One setting drives both.
 *
 * The two runtimes must hand the cores back to each other quickly: by default OpenBLAS's idle
 * workers spin for about 2^28 cycles after every GEMM and OpenMP's for a while after every
 * parallel loop, and on a 2-core machine each then steals the other's core (measured: a ResNet-32
 * step 3x slower). eg_runtime_setup makes both wait passively; `make bench` shows the effect. */
#ifndef EG_PARALLEL_H
#define EG_PARALLEL_H

// Sets the threads of OpenBLAS and of evograd's own loops. n >= 1.
void eg_set_threads(int n);
// The threads evograd's own loops use (OpenMP's current setting).
int eg_threads(void);
// Index of the calling thread inside a parallel region (0 outside one).
int eg_thread_index(void);

// Call first thing in main. Sets OMP_WAIT_POLICY=passive and OPENBLAS_THREAD_TIMEOUT=10 (2^10
// cycles) where the user has not set them and, because both libraries read them only when they
// load, then re-executes the program once (/proc/self/exe, same argv). Returns when nothing had
// to be set or when the re-execution failed (the program then runs with the defaults: correct,
// only slower).
void eg_runtime_setup(char **argv);

#endif // EG_PARALLEL_H
