/* What bench/comm.c shares with its GPU part (bench/comm_gpu_step.c): the options, the
 * per-rank failure print, and the barrier the idle ranks sleep in. Both files make the one
 * program bench_comm (bench/CMakeLists.txt). */
#ifndef LRSA_BENCH_COMM_BENCH_H
#define LRSA_BENCH_COMM_BENCH_H

#include <stddef.h>

#include "base/error.h"
#include "train/comm.h"

typedef struct bench_comm_opts {
    int device, step, overlap, recompute, reduce_bf16;
    double max_mb, bucket_mb;
    const char *config; /* NULL: the mode's default shape */
    int seq, samples, steps, warmup;
} bench_comm_opts;

/* A barrier over c that sleeps between polls, so ranks waiting while others compute leave the
 * cores to them (the emulated smoke test shares two cores). */
int bench_idle_barrier(const lrsa_comm *c, lrsa_err *e);

/* The NCCL communicator over c, agreed by every rank. *refused = 1 (and 0 returned) when several
 * ranks of this node share one GPU and NCCL refused that, as it does for ranks of one
 * communicator: reported on stdout as a fact of the machine, not a failure of the benchmark. */
int bench_nccl_init(lrsa_comm *c, int *refused, lrsa_err *e);
/* Device buffers for the bandwidth table (NULL-safe free); abort on failure. */
void *bench_dev_alloc(size_t bytes);
void bench_dev_free(void *p);

/* --device --step: the GPU training step's weak scaling (bench/comm_gpu_step.c). */
int bench_gpu_step(lrsa_comm *world, const bench_comm_opts *o, lrsa_err *e);

#endif
