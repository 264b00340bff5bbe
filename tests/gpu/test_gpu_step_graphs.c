/* The CUDA graph cache of the GPU trainer (train/step_graphs.h): work runs directly the first
 * time its key comes, is captured the second time and launched as a graph from then on; a graph
 * launch reads the device buffers as they are when it runs (it replays operations, not values);
 * another key gets its own graph and the first one stays cached; and work that does something a
 * capture forbids (here a stream synchronisation) is refused by the runtime and aborts naming
 * the call, in the emulation (tests/emulate) as on a GPU. The refusal runs in a child process
 * started with --forbidden (a fresh process: CUDA does not survive fork). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "autograd/tensor.h"
#include "kernels/device/cuda_check.h"
#include "kernels/device/device_buffer.h"
#include "train/step_graphs.h"

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

typedef struct work {
    cudaStream_t st;
    const float *src;
    lrsa_bf16 *dst;
    int64_t n;
    int sync; /* synchronise the stream inside the work (forbidden in a capture) */
} work;

static void convert(void *arg) {
    work *w = arg;
    lrsa_bf16_from_f32_cuda(w->dst, w->src, w->n, w->st);
    if (w->sync) CUDA_CHECK(cudaStreamSynchronize(w->st));
}

/* Runs the key (n) with source values v0 + i, then checks dst[0..n) against the host rounding. */
static int run_and_check(lrsa_step_graphs *g, work *w, float *host, float v0) {
    for (int64_t i = 0; i < w->n; i++) host[i] = v0 + 0.37f * (float)i;
    lrsa_dev_upload((void *)w->src, host, sizeof(float) * (size_t)w->n);
    int64_t key = w->n;
    lrsa_step_graphs_run(g, &key, sizeof key, convert, w);
    CUDA_CHECK(cudaStreamSynchronize(w->st));
    lrsa_bf16 *out = malloc(sizeof(lrsa_bf16) * (size_t)w->n);
    lrsa_dev_download(out, w->dst, sizeof(lrsa_bf16) * (size_t)w->n);
    int bad = 0;
    for (int64_t i = 0; i < w->n; i++) bad += out[i] != lrsa_f32_to_bf16(host[i]);
    free(out);
    return bad == 0;
}

static int stats_are(const lrsa_step_graphs *g, int64_t direct, int64_t captured,
                     int64_t launched) {
    lrsa_step_graph_stats s = lrsa_step_graphs_stats(g);
    return s.direct == direct && s.captured == captured && s.launched == launched;
}

/* The child: the same key twice with a synchronisation inside; the second run is a capture. */
static int forbidden(void) {
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    work w = {st, lrsa_dev_alloc(sizeof(float) * 64), lrsa_dev_alloc(sizeof(lrsa_bf16) * 64), 64,
              1};
    lrsa_dev_fill_bytes((void *)w.src, 0, sizeof(float) * 64);
    lrsa_step_graphs *g = lrsa_step_graphs_new(st);
    int64_t key = 1;
    lrsa_step_graphs_run(g, &key, sizeof key, convert, &w);
    printf("first run (direct) passed\n");
    fflush(stdout);
    lrsa_step_graphs_run(g, &key, sizeof key, convert, &w);
    printf("the capture did not fail\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--forbidden")) return forbidden();
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    const int64_t n = 1000;
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    float *host = malloc(sizeof(float) * (size_t)n);
    work w = {st, lrsa_dev_alloc(sizeof(float) * n), lrsa_dev_alloc(sizeof(lrsa_bf16) * n), n, 0};
    lrsa_step_graphs *g = lrsa_step_graphs_new(st);
    check(run_and_check(g, &w, host, 1.0f) && stats_are(g, 1, 0, 0),
          "a key's first run is direct and right");
    check(run_and_check(g, &w, host, -5.0f) && stats_are(g, 1, 1, 1),
          "its second run is captured and launched, on the new source values");
    check(run_and_check(g, &w, host, 123.25f) && stats_are(g, 1, 1, 2),
          "its third run launches the cached graph, which reads the buffers as they are now");
    work half = w;
    half.n = n / 2;
    check(run_and_check(g, &half, host, 7.0f) && run_and_check(g, &half, host, 9.0f) &&
              stats_are(g, 2, 2, 3),
          "another key (half the elements) gets its own graph");
    check(run_and_check(g, &w, host, -0.5f) && stats_are(g, 2, 2, 4),
          "the first key's graph is still cached");
    lrsa_step_graphs_free(g);
    lrsa_dev_free((void *)w.src);
    lrsa_dev_free(w.dst);
    CUDA_CHECK(cudaStreamDestroy(st));
    free(host);

    char cmd[4200], out[8192] = "";
    snprintf(cmd, sizeof cmd, "'%s' --forbidden 2>&1", argv[0]);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[got] = '\0';
    int status = p ? pclose(p) : -1;
    int failed = status != 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    check(failed && strstr(out, "first run (direct) passed") &&
              strstr(out, "operation not permitted when stream is capturing") &&
              !strstr(out, "the capture did not fail"),
          "a synchronisation inside captured work is refused and aborts with the runtime's error");
    printf("child said:\n%s\n", out);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
