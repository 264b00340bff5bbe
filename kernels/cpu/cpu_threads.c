/* Thread policy (cpu_threads.h): OpenBLAS's thread count is the one count of the process. */
#include "kernels/cpu/cpu_threads.h"

#include <cblas.h>
#include <omp.h>

int lrsa_cpu_threads(void) {
    if (omp_in_parallel()) return 1;
    int n = openblas_get_num_threads();
    return n > 0 ? n : 1;
}

void lrsa_cpu_set_threads(int n) {
    openblas_set_num_threads(n > 0 ? n : 1);
}

int lrsa_cpu_threads_for(int64_t n, int64_t cost) {
    const int64_t per_thread = 20000; /* flops that cover a region's start-up (a few us) */
    int t = lrsa_cpu_threads();
    int64_t work = n * (cost > 0 ? cost : 1);
    if (work / per_thread < t) t = (int)(work / per_thread);
    return t > 1 ? t : 1;
}

int lrsa_blas_serial_begin(void) {
    int n = lrsa_cpu_threads();
    if (n > 1) openblas_set_num_threads(1);
    return n;
}

void lrsa_blas_serial_end(int threads) {
    if (threads > 1) openblas_set_num_threads(threads);
}
