// Self-test of the CUDA host emulation (tests/emulate): the device-language pieces the kernels
// rely on give the results the CUDA and PTX documentation define (warp shuffles and ballots, the
// mma.sync m16n8k16 and ldmatrix fragment layouts through kernels/device/mma_cuda.cuh), and the
// checks that make it worth running catch what they should: a missing barrier (a race), a
// divergent barrier, a deadlock between a barrier and a warp operation, a shuffle naming an exited
// lane, launch-configuration errors, copies outside an allocation, and stream capture.
// Built only in the emulated build (this file is rewritten by cu_to_cpp.cmake like every .cu).
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/device/mma_cuda.cuh"

static int failures = 0;

static void check(bool ok, const char *what) {
    printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) failures++;
}

template <class T> static T *dev_copy(const T *host, size_t n) {
    T *d = NULL;
    cudaMalloc(&d, sizeof(T) * n);
    cudaMemcpy(d, host, sizeof(T) * n, cudaMemcpyHostToDevice);
    return d;
}

template <class T> static void host_copy(T *host, const T *dev, size_t n) {
    cudaMemcpy(host, dev, sizeof(T) * n, cudaMemcpyDeviceToHost);
}

// ---- warp shuffles and ballots ----------------------------------------------------------------
__global__ void warp_ops_kernel(int *out) {
    int l = threadIdx.x, v = l;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[l] = v;
    out[32 + l] = __shfl_down_sync(0xffffffffu, l, 3, 16);
    out[64 + l] = __shfl_up_sync(0xffffffffu, l, 5, 16);
    out[96 + l] = __shfl_sync(0xffffffffu, l, 7, 16);
    out[128 + l] = (int)__ballot_sync(0xffffffffu, l % 3 == 0);
}

static void test_warp_ops() {
    int *d = NULL, h[160];
    cudaMalloc(&d, sizeof h);
    warp_ops_kernel<<<1, 32>>>(d);
    host_copy(h, d, 160);
    bool sum = true, down = true, up = true, idx = true, ballot = true;
    unsigned want_ballot = 0;
    for (int l = 0; l < 32; l += 3) want_ballot |= 1u << l;
    for (int l = 0; l < 32; l++) {
        int seg = l & ~15, in = l - seg;
        sum &= h[l] == 496;
        down &= h[32 + l] == (in + 3 < 16 ? l + 3 : l);
        up &= h[64 + l] == (in >= 5 ? l - 5 : l);
        idx &= h[96 + l] == seg + 7;
        ballot &= (unsigned)h[128 + l] == want_ballot;
    }
    check(sum, "shfl_xor butterfly sum reaches every lane");
    check(down && up && idx, "shfl_down/up/idx with width 16 (segments, edges)");
    check(ballot, "ballot_sync");
    cudaFree(d);
}

// ---- tensor cores -----------------------------------------------------------------------------
// d[16x8] = A[16x16] B[16x8] + 0.5, fragments filled element by element from the documented
// layout (A, B row-major in global memory).
__global__ void mma_direct_kernel(float *d, const __nv_bfloat16 *A, const __nv_bfloat16 *B) {
    int l = threadIdx.x, g = l / 4, t = l % 4;
    auto a_at = [&](int r, int c) { return __bfloat162float(A[r * 16 + c]); };
    auto b_at = [&](int r, int c) { return __bfloat162float(B[r * 8 + c]); };
    uint32_t a[4] = {lrsa_pack_bf16x2(a_at(g, 2 * t), a_at(g, 2 * t + 1)),
                     lrsa_pack_bf16x2(a_at(g + 8, 2 * t), a_at(g + 8, 2 * t + 1)),
                     lrsa_pack_bf16x2(a_at(g, 2 * t + 8), a_at(g, 2 * t + 9)),
                     lrsa_pack_bf16x2(a_at(g + 8, 2 * t + 8), a_at(g + 8, 2 * t + 9))};
    uint32_t b[2] = {lrsa_pack_bf16x2(b_at(2 * t, g), b_at(2 * t + 1, g)),
                     lrsa_pack_bf16x2(b_at(2 * t + 8, g), b_at(2 * t + 9, g))};
    float c[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    lrsa_mma_bf16_16816(c, a, b, c);
    d[g * 8 + 2 * t] = c[0];
    d[g * 8 + 2 * t + 1] = c[1];
    d[(g + 8) * 8 + 2 * t] = c[2];
    d[(g + 8) * 8 + 2 * t + 1] = c[3];
}

// The attention pattern through ldmatrix: S[16x8] = Q[16x16] K[8x16]^T (Q, K row-major: B comes
// from K's rows without a transpose), then O[16x8] = P[16x16] V[16x8] (V row-major [key][dim]:
// B through ldmatrix.trans).
__global__ void mma_ldmatrix_kernel(float *s_out, float *o_out, const __nv_bfloat16 *Q,
                                    const __nv_bfloat16 *K, const __nv_bfloat16 *P,
                                    const __nv_bfloat16 *V) {
    __shared__ __align__(16) __nv_bfloat16 q[16 * 16], k[8 * 16], p[16 * 16], v[16 * 8];
    int l = threadIdx.x, g = l / 4, t = l % 4;
    for (int i = l; i < 256; i += 32) q[i] = Q[i], p[i] = P[i];
    for (int i = l; i < 128; i += 32) k[i] = K[i], v[i] = V[i];
    __syncthreads();
    uint32_t a[4], b[2];
    lrsa_ldmatrix<4, false>(a, &q[(l % 16) * 16 + 8 * (l / 16)]);
    lrsa_ldmatrix<2, false>(b, &k[(l % 8) * 16 + 8 * ((l / 8) % 2)]);
    float s[4] = {0, 0, 0, 0};
    lrsa_mma_bf16_16816(s, a, b, s);
    lrsa_ldmatrix<4, false>(a, &p[(l % 16) * 16 + 8 * (l / 16)]);
    lrsa_ldmatrix<2, true>(b, &v[(l % 16) * 8]);
    float o[4] = {0, 0, 0, 0};
    lrsa_mma_bf16_16816(o, a, b, o);
    int r0 = g * 8 + 2 * t, r1 = (g + 8) * 8 + 2 * t;
    s_out[r0] = s[0], s_out[r0 + 1] = s[1], s_out[r1] = s[2], s_out[r1 + 1] = s[3];
    o_out[r0] = o[0], o_out[r0 + 1] = o[1], o_out[r1] = o[2], o_out[r1 + 1] = o[3];
}

static float rnd_bf16(unsigned *state, __nv_bfloat16 *bits) {
    *state = *state * 1664525u + 1013904223u;
    float x = (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
    *bits = __float2bfloat16_rn(x);
    return __bfloat162float(*bits);
}

static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void test_mma() {
    unsigned st = 12345;
    __nv_bfloat16 hb[4][256];
    float A[256], B[128], Q[256], K[128], P[256], V[128];
    for (int i = 0; i < 256; i++) A[i] = rnd_bf16(&st, &hb[0][i]);
    for (int i = 0; i < 128; i++) B[i] = rnd_bf16(&st, &hb[1][i]);
    __nv_bfloat16 *dA = dev_copy(hb[0], 256), *dB = dev_copy(hb[1], 128);
    float *dD = NULL, D[128], want[128];
    cudaMalloc(&dD, sizeof D);
    mma_direct_kernel<<<1, 32>>>(dD, dA, dB);
    host_copy(D, dD, 128);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double s = 0.5;
            for (int kk = 0; kk < 16; kk++) s += (double)A[i * 16 + kk] * B[kk * 8 + j];
            want[i * 8 + j] = (float)s;
        }
    check(max_diff(D, want, 128) < 1e-5, "mma m16n8k16 bf16 with the documented fragments");

    for (int i = 0; i < 256; i++) Q[i] = rnd_bf16(&st, &hb[0][i]);
    for (int i = 0; i < 128; i++) K[i] = rnd_bf16(&st, &hb[1][i]);
    for (int i = 0; i < 256; i++) P[i] = rnd_bf16(&st, &hb[2][i]);
    for (int i = 0; i < 128; i++) V[i] = rnd_bf16(&st, &hb[3][i]);
    __nv_bfloat16 *dQ = dev_copy(hb[0], 256), *dK = dev_copy(hb[1], 128);
    __nv_bfloat16 *dP = dev_copy(hb[2], 256), *dV = dev_copy(hb[3], 128);
    float *dS = NULL, *dO = NULL, S[128], O[128], ws[128], wo[128];
    cudaMalloc(&dS, sizeof S);
    cudaMalloc(&dO, sizeof O);
    mma_ldmatrix_kernel<<<1, 32>>>(dS, dO, dQ, dK, dP, dV);
    host_copy(S, dS, 128);
    host_copy(O, dO, 128);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double s = 0, o = 0;
            for (int kk = 0; kk < 16; kk++) {
                s += (double)Q[i * 16 + kk] * K[j * 16 + kk];
                o += (double)P[i * 16 + kk] * V[kk * 8 + j];
            }
            ws[i * 8 + j] = (float)s;
            wo[i * 8 + j] = (float)o;
        }
    check(max_diff(S, ws, 128) < 1e-5, "ldmatrix.x4 + x2 (rows of K): S = Q K^T");
    check(max_diff(O, wo, 128) < 1e-5, "ldmatrix.x4 + x2.trans (V): O = P V");
    void *bufs[] = {dA, dB, dD, dQ, dK, dP, dV, dS, dO};
    for (void *b : bufs) cudaFree(b);
}

// ---- races and barriers -------------------------------------------------------------------
// Each thread writes its slot and reads its neighbour's: wrong without the barrier (dynamic
// shared memory starts as NaN), right with it.
__global__ void neighbour_kernel(float *out, int with_barrier) {
    extern __shared__ float s[];
    int t = threadIdx.x, n = blockDim.x;
    s[t] = (float)t;
    if (with_barrier) __syncthreads();
    out[t] = s[(t + 1) % n];
}

static void test_race() {
    float *d = NULL, h[128];
    cudaMalloc(&d, sizeof h);
    int wrong[2] = {0, 0};
    for (int b = 0; b < 2; b++) {
        neighbour_kernel<<<1, 128, 128 * sizeof(float)>>>(d, b);
        host_copy(h, d, 128);
        for (int t = 0; t < 128; t++) wrong[b] += h[t] != (float)((t + 1) % 128);
    }
    check(wrong[0] > 0,
          "a missing __syncthreads gives wrong results (threads run in random order)");
    check(wrong[1] == 0, "with the barrier every thread reads its neighbour's value");
    cudaFree(d);
}

__global__ void divergent_barrier_kernel() {
    if (threadIdx.x < 32)
        __syncthreads();
    else
        __syncthreads();
}

__global__ void barrier_vs_shuffle_kernel(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x == 0)
        __syncthreads();
    else
        v += __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

__global__ void exited_lane_kernel(float *out) {
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}

// Runs fn in a child process; true when the child aborted (the emulation's verdict on a bug).
template <class F> static bool aborts(F fn) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        fn();
        cudaDeviceSynchronize();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void test_fatal_errors() {
    float *d = NULL;
    cudaMalloc(&d, sizeof(float) * 160); // warp_ops_kernel writes 160 values (ASan found 64)
    check(aborts([] { divergent_barrier_kernel<<<1, 64>>>(); }),
          "__syncthreads at two different places aborts");
    check(aborts([d] { barrier_vs_shuffle_kernel<<<1, 32>>>(d); }),
          "a barrier waiting on a lane stuck in a shuffle is reported as a deadlock");
    check(aborts([d] { exited_lane_kernel<<<1, 32>>>(d); }),
          "a full-mask shuffle after a lane exited aborts");
    check(!aborts([d] { warp_ops_kernel<<<1, 32>>>((int *)d); }), "a correct kernel does not");
    cudaFree(d);
}

// ---- launch checks, memory checks, capture --------------------------------------------------
__global__ void fill_kernel(float *x, float v) {
    x[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

static void test_runtime_checks() {
    float *d = NULL, h[256];
    cudaMalloc(&d, sizeof h);
    cudaGetLastError();
    fill_kernel<<<1, 2048>>>(d, 1.0f);
    check(cudaGetLastError() == cudaErrorInvalidConfiguration,
          "a 2048-thread block fails to launch");
    neighbour_kernel<<<1, 64, 64 * 1024>>>(d, 1);
    check(cudaGetLastError() == cudaErrorInvalidValue,
          "64 KiB of dynamic shared memory without opting in fails to launch");
    cudaFuncSetAttribute(neighbour_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
    neighbour_kernel<<<1, 64, 64 * 1024>>>(d, 1);
    check(cudaGetLastError() == cudaSuccess, "... and launches after cudaFuncSetAttribute");
    check(cudaMemcpy(h, d, sizeof h + 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
          "a copy past the end of an allocation fails");
    cudaGetLastError();
    cudaMemset(d, 0, sizeof h);
    cudaStream_t st;
    cudaStreamCreate(&st);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
    fill_kernel<<<2, 128, 0, st>>>(d, 3.0f);
    cudaStreamEndCapture(st, &graph);
    host_copy(h, d, 256);
    check(h[0] == 0.0f && h[255] == 0.0f, "a captured launch does not run");
    cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphLaunch(exec, st);
    cudaStreamSynchronize(st);
    host_copy(h, d, 256);
    check(h[0] == 3.0f && h[255] == 3.0f, "the graph launch runs it");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(st);
    cudaFree(d);
}

// ---- stream capture: arguments by value, copies at launch time, forbidden calls ------------
static bool capture_refuses(cudaStream_t st, const char *what, cudaError_t want,
                            cudaError_t (*call)(cudaStream_t, float *), float *d) {
    cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
    cudaError_t got = call(st, d);
    cudaGraph_t graph = (cudaGraph_t)1;
    cudaError_t end = cudaStreamEndCapture(st, &graph);
    bool ok = got == want && end == cudaErrorStreamCaptureInvalidated && graph == nullptr;
    // the stream is out of capture again: work runs at once
    fill_kernel<<<1, 4, 0, st>>>(d, 2.0f);
    float h = 0;
    ok = ok && cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess && h == 2.0f;
    cudaGetLastError();
    char line[160];
    snprintf(line, sizeof line, "%s during a capture fails and invalidates the capture", what);
    check(ok, line);
    return ok;
}

static void test_capture() {
    float *d = NULL, *pinned = NULL, h[256];
    cudaMalloc(&d, sizeof h);
    cudaMallocHost((void **)&pinned, sizeof h);
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    for (int i = 0; i < 256; i++) pinned[i] = 1.0f;
    float v = 5.0f;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
    cudaMemcpyAsync(d, pinned, sizeof h, cudaMemcpyHostToDevice, st);
    fill_kernel<<<1, 128, 0, st>>>(d, v); // the first half: v as it is now
    cudaStreamCaptureStatus status;
    cudaStreamIsCapturing(st, &status);
    check(cudaStreamEndCapture(st, &graph) == cudaSuccess &&
              status == cudaStreamCaptureStatusActive,
          "a capture of a copy and a launch ends with a graph");
    v = 9.0f;
    for (int i = 0; i < 256; i++) pinned[i] = 4.0f;
    cudaGraphInstantiate(&exec, graph, 0);
    uint64_t launches = lrsa_emu_graph_launch_count();
    cudaGraphLaunch(exec, st);
    host_copy(h, d, 256);
    check(h[0] == 5.0f && h[127] == 5.0f && h[128] == 4.0f && h[255] == 4.0f &&
              lrsa_emu_graph_launch_count() == launches + 1,
          "a graph launch uses the kernel arguments of the capture and the pinned source as it is "
          "at launch");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);

    capture_refuses(
        st, "cudaMalloc", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t, float *) {
            void *p;
            return cudaMalloc(&p, 64);
        },
        d);
    capture_refuses(
        st, "cudaFree", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t, float *) { return cudaFree(nullptr); }, d);
    capture_refuses(
        st, "cudaMallocHost", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t, float *) {
            void *p;
            return cudaMallocHost(&p, 64);
        },
        d);
    capture_refuses(
        st, "cudaStreamSynchronize of the capturing stream", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t s, float *) { return cudaStreamSynchronize(s); }, d);
    capture_refuses(
        st, "cudaStreamQuery of the capturing stream", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t s, float *) { return cudaStreamQuery(s); }, d);
    capture_refuses(
        st, "cudaDeviceSynchronize", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t, float *) { return cudaDeviceSynchronize(); }, d);
    capture_refuses(
        st, "a synchronous cudaMemcpy", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t, float *p) {
            float x;
            return cudaMemcpy(&x, p, sizeof x, cudaMemcpyDeviceToHost);
        },
        d);
    capture_refuses(
        st, "a synchronous cudaMemset", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t, float *p) { return cudaMemset(p, 0, 4); }, d);
    capture_refuses(
        st, "a copy to pageable host memory", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t s, float *p) {
            static float x;
            return cudaMemcpyAsync(&x, p, sizeof x, cudaMemcpyDeviceToHost, s);
        },
        d);
    capture_refuses(
        st, "cudaEventSynchronize on an event recorded in it", cudaErrorStreamCaptureUnsupported,
        [](cudaStream_t s, float *) {
            cudaEvent_t ev;
            cudaEventCreate(&ev);
            cudaEventRecord(ev, s);
            cudaError_t e = cudaEventSynchronize(ev);
            cudaEventDestroy(ev);
            return e;
        },
        d);
    capture_refuses(
        st, "an async copy on the legacy stream", cudaErrorStreamCaptureImplicit,
        [](cudaStream_t, float *p) { return cudaMemsetAsync(p, 0, 4, nullptr); }, d);
    cudaStreamDestroy(st);
    cudaFreeHost(pinned);
    cudaFree(d);
}

int main() {
    test_warp_ops();
    test_mma();
    test_race();
    test_fatal_errors();
    test_runtime_checks();
    test_capture();
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
