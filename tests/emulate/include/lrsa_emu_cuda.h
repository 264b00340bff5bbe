/* Host emulation of the CUDA runtime API and of the CUDA C++ device language, so that the
 * project's .cu files compile with the host C++ compiler and their kernels run on the CPU
 * against the CPU references (tests/emulate/README.md). It checks logic (indexing, masking,
 * tiling, barriers, warp-level data exchange, launch limits), never GPU hardware behaviour
 * (memory model between blocks, timing, the real compilers' code).
 *
 * This header stands in for <cuda_runtime.h>, <cuda_runtime_api.h> and <cuda_bf16.h> in the
 * emulated build only (tests/emulate/include is on that build's include path, never on a real
 * CUDA build's). The first part is plain C (the C tests and host code see it); the second part,
 * C++ only, is the device language: thread/block indices, __syncthreads, warp shuffles, bf16,
 * the tensor-core matrix instructions used by the kernels (lrsa_emu_mma.h) and the launch
 * syntax (the build rewrites `k<<<cfg>>>(args)` to `k, LaunchCfg(cfg)(args)`, see
 * cu_to_cpp.cmake). */
#ifndef LRSA_EMU_CUDA_H
#define LRSA_EMU_CUDA_H
#include <stddef.h>
#include <stdint.h>

#define LRSA_CUDA_EMULATION 1
#define CUDART_VERSION      13000

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureUnmatched = 903,
    cudaErrorStreamCaptureImplicit = 906,
} cudaError_t;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrL2CacheSize = 38,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};

#define cudaStreamNonBlocking  0x01
#define cudaEventDisableTiming 0x02

typedef struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin;
    int multiProcessorCount, major, minor, maxThreadsPerBlock, warpSize, l2CacheSize;
} cudaDeviceProp;

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
const char *cudaGetErrorString(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t bytes);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemset(void *ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
/* Streams are synchronous here: every stream is always idle (cudaSuccess). */
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

/* CUDA graphs: a capture records the launches, copies, memsets, event records and library calls
 * (cuBLASLt, CUB) issued on the stream, their arguments by value; a launch of the instantiated
 * graph replays them in order. The calls the runtime forbids during a capture (allocation and
 * freeing, synchronisation of the capturing or the legacy stream or the device, synchronous
 * copies and memsets, queries of the capturing stream or of events recorded in it, work on the
 * legacy stream, copies with pageable host memory on the capturing stream) fail with
 * cudaErrorStreamCaptureUnsupported (the legacy stream: cudaErrorStreamCaptureImplicit) and
 * invalidate the capture: cudaStreamEndCapture then gives no graph and
 * cudaErrorStreamCaptureInvalidated. One capture at a time, checked as in global mode. */
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

/* Emulation only: aborts naming `what` unless [p, p + bytes) lies inside one device allocation
 * (the cuBLASLt and CUB stand-ins check their operands with it). */
void lrsa_emu_check_device_range(const void *p, size_t bytes, const char *what);
/* Emulation only: number of kernel launches so far (tests check a step launches kernels). */
uint64_t lrsa_emu_launch_count(void);
/* Emulation only: number of cudaGraphLaunch calls so far (tests check that graphs were used). */
uint64_t lrsa_emu_graph_launch_count(void);

#ifdef __cplusplus
} /* extern "C" */
#include "lrsa_emu_device.h"
#endif
#endif
