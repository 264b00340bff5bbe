/* The thread policy of the CPU kernels (docs/KERNELS.md, "Threads").
 *
 * One count for the whole process: OpenBLAS's (OPENBLAS_NUM_THREADS, or every core when it is
 * unset). OpenMP regions run between BLAS calls, never beside them, with that many threads; a
 * region whose threads call BLAS themselves (the attention tiles) switches OpenBLAS to one
 * thread for its duration, so the machine never runs more threads than the count. Every
 * region splits its work into pieces fixed by the problem (rows, heads, query tiles), never by
 * the thread count, and each output element is computed by one thread in a fixed order: the
 * results are the same bits for any thread count. */
#ifndef LRSA_KERNELS_CPU_THREADS_H
#define LRSA_KERNELS_CPU_THREADS_H
#include <stdint.h>

/* Threads an OpenMP region may use: OpenBLAS's count outside a parallel region, 1 inside one. */
int lrsa_cpu_threads(void);
/* Sets the count (OpenBLAS's too). For tests and benchmarks that compare thread counts. */
void lrsa_cpu_set_threads(int n);

/* Threads for an elementwise region over n elements of roughly `cost` flops each: 1 when the
 * work is too small to pay for waking the other threads (about 20k flops per thread). */
int lrsa_cpu_threads_for(int64_t n, int64_t cost);

/* Around a parallel region whose threads call BLAS: returns the thread count the region should
 * use (OpenBLAS's count) and switches OpenBLAS to one thread until lrsa_blas_serial_end(that
 * count). Inside a parallel region it returns 1 and changes nothing. */
int lrsa_blas_serial_begin(void);
void lrsa_blas_serial_end(int threads);
#endif
