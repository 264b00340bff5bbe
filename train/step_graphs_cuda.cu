// CUDA graphs keyed by shape (step_graphs.h). Compiled, never run on a GPU (runs in the emulated
// CI tests, whose runtime records a capture and refuses what a capture forbids).
#include "kernels/device/cuda_check.h"
extern "C" {
#include "train/step_graphs.h"
}
#include <stdlib.h>
#include <string.h>

namespace {

// Instantiated graphs kept at once (least recently used goes first). A graph holds only its
// nodes' parameters (the memory it uses is the caller's), so a few dozen cost little; a training
// run sees one shape per distinct sample length and attention mode.
constexpr int kGraphs = 32;
// Keys remembered as seen once (a ring: the oldest is forgotten first).
constexpr int kSeen = 128;

struct Key {
    void *bytes;
    size_t n;
};

bool key_is(const Key &k, const void *key, size_t n) {
    return k.bytes && k.n == n && !memcmp(k.bytes, key, n);
}

void key_store(Key *k, const void *key, size_t n) {
    free(k->bytes);
    k->bytes = lrsa_malloc(n ? n : 1);
    memcpy(k->bytes, key, n);
    k->n = n;
}

struct Slot {
    Key key;
    cudaGraphExec_t exec;
    uint64_t used; // clock of the last launch
};

} // namespace

struct lrsa_step_graphs {
    cudaStream_t stream;
    Slot slots[kGraphs];
    Key seen[kSeen];
    int seen_next;
    uint64_t clock;
    lrsa_step_graph_stats stats;
};

extern "C" lrsa_step_graphs *lrsa_step_graphs_new(void *stream) {
    LRSA_CHECK(stream, "(graphs need a created stream: the legacy stream cannot be captured)");
    lrsa_step_graphs *s = (lrsa_step_graphs *)lrsa_calloc(1, sizeof *s);
    s->stream = (cudaStream_t)stream;
    return s;
}

extern "C" void lrsa_step_graphs_free(lrsa_step_graphs *s) {
    if (!s) return;
    for (Slot &g : s->slots) {
        if (g.exec) CUDA_CHECK(cudaGraphExecDestroy(g.exec));
        free(g.key.bytes);
    }
    for (Key &k : s->seen) free(k.bytes);
    free(s);
}

// fn's work captured into an instantiated graph (the work is not run by the capture).
static cudaGraphExec_t capture_graph(lrsa_step_graphs *s, void (*fn)(void *), void *arg) {
    CUDA_CHECK(cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeGlobal));
    fn(arg);
    cudaGraph_t graph = NULL;
    cudaError_t end = cudaStreamEndCapture(s->stream, &graph);
    if (end != cudaSuccess)
        lrsa_fatal(__FILE__, __LINE__,
                   "capturing the step into a CUDA graph failed: %s (the captured code did "
                   "something a capture forbids; LRSA_CUDA_GRAPHS=0 runs without graphs)",
                   cudaGetErrorString(end));
    cudaGraphExec_t exec = NULL;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    return exec;
}

extern "C" void lrsa_step_graphs_run(lrsa_step_graphs *s, const void *key, size_t key_bytes,
                                     void (*fn)(void *), void *arg) {
    s->clock++;
    Slot *hit = NULL, *victim = &s->slots[0];
    for (Slot &g : s->slots) {
        if (key_is(g.key, key, key_bytes)) hit = &g;
        if (g.used < victim->used) victim = &g;
    }
    if (!hit) {
        int seen = -1;
        for (int i = 0; i < kSeen && seen < 0; i++)
            if (key_is(s->seen[i], key, key_bytes)) seen = i;
        if (seen < 0) { // first time: run directly, remember the key
            key_store(&s->seen[s->seen_next], key, key_bytes);
            s->seen_next = (s->seen_next + 1) % kSeen;
            s->stats.direct++;
            fn(arg);
            return;
        }
        if (victim->exec) CUDA_CHECK(cudaGraphExecDestroy(victim->exec));
        victim->exec = capture_graph(s, fn, arg);
        key_store(&victim->key, key, key_bytes);
        s->stats.captured++;
        hit = victim;
    }
    hit->used = s->clock;
    CUDA_CHECK(cudaGraphLaunch(hit->exec, s->stream));
    s->stats.launched++;
}

extern "C" lrsa_step_graph_stats lrsa_step_graphs_stats(const lrsa_step_graphs *s) {
    return s->stats;
}
