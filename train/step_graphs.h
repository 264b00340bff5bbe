/* CUDA graphs for repeated work on one stream (the device trainer's per-sample forward and
 * backward, docs/CUDA.md "CUDA graphs"): a piece of host code that only enqueues device work
 * (no allocation, no synchronisation, no host-side decision on device values, every pointer it
 * uses stable) is identified by a key that holds everything its launches depend on (shapes,
 * modes). The first time a key comes it runs directly; the second time it is captured into a
 * graph (stream capture, global mode) and the graph launched; from then on only the graph is
 * launched, one call instead of hundreds of kernel launches. A key seen once never costs a
 * capture. Direct runs and graph launches enqueue the same kernels with the same arguments, so
 * the results are the same bits.
 * A capture that fails (the code did something a capture forbids: the runtime refuses the call
 * and the CUDA_CHECK at it aborts with file:line, or the end of the capture reports it) aborts:
 * it is a bug of the captured code, never a user error.
 * Status: compiled, never run on a GPU (the emulated tests run it, tests/emulate). */
#ifndef LRSA_TRAIN_STEP_GRAPHS_H
#define LRSA_TRAIN_STEP_GRAPHS_H
#include <stddef.h>
#include <stdint.h>

typedef struct lrsa_step_graphs lrsa_step_graphs;

/* A cache for work on `stream` (a cudaStream_t other than the legacy default stream). */
lrsa_step_graphs *lrsa_step_graphs_new(void *stream);
void lrsa_step_graphs_free(lrsa_step_graphs *s);
/* Runs fn(arg) for key[0..key_bytes) as above. key: compared bytewise (zero the padding). */
void lrsa_step_graphs_run(lrsa_step_graphs *s, const void *key, size_t key_bytes,
                          void (*fn)(void *arg), void *arg);

typedef struct lrsa_step_graph_stats {
    int64_t direct;   /* runs without a graph (a key's first time) */
    int64_t captured; /* graphs captured (a key's second time, or again after eviction) */
    int64_t launched; /* graph launches (captures included) */
} lrsa_step_graph_stats;
lrsa_step_graph_stats lrsa_step_graphs_stats(const lrsa_step_graphs *s);
#endif
