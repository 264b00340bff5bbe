// The CUDA runtime API of the emulation: one device with an H100's limits, device memory as host
// allocations (registered, so copies and library calls can check their ranges, and filled with
// 0xFF on allocation: code that relies on fresh memory being zero fails here), synchronous
// streams, host-clock events, stream capture into graphs (recorded operation lists, replayed by a
// graph launch; what the real runtime forbids during a capture fails and invalidates it), and the
// launch checks of the real runtime (block and grid sizes, dynamic shared memory above 48 KiB
// only after opting in).
// LRSA_EMU_DEVICES=N in the environment makes it report N devices (0: none; default 1); they all
// share the host memory, so a device only says which one a rank chose (the data-parallel tests run
// 2 ranks on 2 emulated devices).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "emu_internal.h"

namespace {

constexpr int kOptinSmem = 232448;  // H100: 227 KiB per block after opting in
constexpr int kDefaultSmem = 49152; // without opting in
constexpr size_t kTotalMem = (size_t)80 << 30;

std::map<uintptr_t, size_t> allocations; // device allocations: start -> bytes
size_t allocated = 0;
std::map<const void *, int> max_dynamic_smem; // per kernel, from cudaFuncSetAttribute
cudaError_t last_error = cudaSuccess;
uint64_t launches = 0;

std::map<uintptr_t, size_t> pinned; // cudaMallocHost blocks: start -> bytes

// A captured graph: the operations issued on the capturing stream, each with its arguments
// taken by value when it was issued, run in order by a launch.
struct Graph {
    std::vector<std::function<void()>> ops;
};
// One capture at a time (the project captures one stream); global mode: the calls the runtime
// forbids during any capture fail from every stream.
cudaStreamCaptureStatus capture_state = cudaStreamCaptureStatusNone;
cudaStream_t capture_stream = nullptr;
Graph *capture = nullptr;
uint64_t graph_launches = 0;

struct Event {
    std::chrono::steady_clock::time_point t;
    bool captured = false; // last recorded inside a capture: it has no time and cannot be waited on
};

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

int device_count() {
    const char *v = getenv("LRSA_EMU_DEVICES");
    return !v ? 1 : (atoi(v) > 0 ? atoi(v) : 0);
}

bool devices_present() {
    return device_count() > 0;
}

int current_device = 0;

// The allocation holding [p, p + bytes), or allocations.end().
std::map<uintptr_t, size_t>::const_iterator find_range(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return allocations.end();
    --it;
    if (a < it->first || a + bytes > it->first + it->second) return allocations.end();
    return it;
}

bool is_device(const void *p, size_t bytes) {
    return find_range(p, bytes) != allocations.end();
}

bool capturing() {
    return capture_state != cudaStreamCaptureStatusNone;
}

// A call the runtime does not permit while a stream is being captured (global capture mode):
// it fails with cudaErrorStreamCaptureUnsupported and invalidates the capture, so that
// cudaStreamEndCapture fails too. Said on stderr with the call's name, since the code that
// checks the error only has the error's name.
cudaError_t forbidden_in_capture(const char *call) {
    if (!capturing()) return cudaSuccess;
    fprintf(stderr,
            "lrsa CUDA emulation: %s while a stream is being captured: not permitted (the capture "
            "is invalidated)\n",
            call);
    capture_state = cudaStreamCaptureStatusInvalidated;
    return set_error(cudaErrorStreamCaptureUnsupported);
}

// Records `op` while `stream` is being captured, else runs it. The legacy default stream
// synchronises implicitly with every other stream, which a capture does not allow.
cudaError_t issue(cudaStream_t stream, std::function<void()> op) {
    if (capturing() && stream == capture_stream) {
        if (capture_state == cudaStreamCaptureStatusInvalidated)
            return set_error(cudaErrorStreamCaptureInvalidated);
        capture->ops.push_back(std::move(op));
        return cudaSuccess;
    }
    if (capturing() && stream == nullptr) {
        fprintf(stderr, "lrsa CUDA emulation: work on the legacy default stream while a stream "
                        "is being captured (the capture is invalidated)\n");
        capture_state = cudaStreamCaptureStatusInvalidated;
        return set_error(cudaErrorStreamCaptureImplicit);
    }
    op();
    return cudaSuccess;
}

bool is_pinned(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = pinned.upper_bound(a);
    if (it == pinned.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

cudaError_t check_copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                       cudaStream_t stream) {
    if (kind == cudaMemcpyDefault)
        kind = is_device(dst, bytes)
                   ? (is_device(src, bytes) ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                   : (is_device(src, bytes) ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !is_device(dst, bytes)) || (src_dev && !is_device(src, bytes))) {
        fprintf(stderr,
                "lrsa CUDA emulation: cudaMemcpy of %zu bytes (kind %d): the %s range is not "
                "inside one device allocation\n",
                bytes, (int)kind, dst_dev && !is_device(dst, bytes) ? "destination" : "source");
        return set_error(cudaErrorInvalidValue);
    }
    // A captured copy reads its host side when the graph runs, not when it is captured: a
    // pageable staging buffer would be reused by then. Stricter than the runtime, which also
    // rejects some pageable copies in graphs: only pinned host memory is accepted here.
    const void *host = !dst_dev ? dst : (!src_dev ? src : nullptr);
    if (capturing() && stream == capture_stream && host && !is_pinned(host, bytes))
        return forbidden_in_capture("a copy to or from pageable host memory");
    return cudaSuccess;
}

} // namespace

namespace lrsa_emu {

void launch(const LaunchSite &s, const void *kernel_id, std::function<void()> body) {
    launches++;
    const char *bad = nullptr;
    uint64_t threads = (uint64_t)s.block.x * s.block.y * s.block.z;
    if (threads == 0 || threads > 1024 || s.block.z > 64)
        bad = "block size outside 1..1024 threads (z <= 64)";
    else if (s.grid.x == 0 || s.grid.y == 0 || s.grid.z == 0 || s.grid.x > 2147483647u ||
             s.grid.y > 65535 || s.grid.z > 65535)
        bad = "grid size outside 1..2^31-1 x 1..65535 x 1..65535";
    cudaError_t err = bad ? cudaErrorInvalidConfiguration : cudaSuccess;
    if (!bad) {
        auto it = max_dynamic_smem.find(kernel_id);
        int limit = it != max_dynamic_smem.end() ? it->second : kDefaultSmem;
        if (s.smem > (size_t)limit) {
            bad = "dynamic shared memory above the kernel's limit (48 KiB unless raised with "
                  "cudaFuncSetAttribute)";
            err = cudaErrorInvalidValue;
        }
    }
    if (bad) {
        fprintf(stderr,
                "lrsa CUDA emulation: launch at %s:%d fails: %s (grid %u,%u,%u block %u,%u,%u, "
                "%zu bytes of shared memory)\n",
                s.file, s.line, bad, s.grid.x, s.grid.y, s.grid.z, s.block.x, s.block.y, s.block.z,
                s.smem);
        set_error(err);
        return;
    }
    issue((cudaStream_t)s.stream, [s, body]() { run_launch(s, body); });
}

cudaError_t enqueue(cudaStream_t stream, std::function<void()> op) {
    return issue(stream, std::move(op));
}

bool stream_capturing(cudaStream_t stream) {
    return capturing() && (stream == capture_stream || stream == nullptr);
}

} // namespace lrsa_emu

cudaError_t lrsa_emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > kOptinSmem) return set_error(cudaErrorInvalidValue);
        max_dynamic_smem[kernel] = value;
    }
    return cudaSuccess;
}

extern "C" {

void lrsa_emu_check_device_range(const void *p, size_t bytes, const char *what) {
    if (bytes == 0 || is_device(p, bytes)) return;
    fprintf(stderr,
            "lrsa CUDA emulation: %s: %zu bytes at %p are not inside one device allocation\n", what,
            bytes, p);
    abort();
}

uint64_t lrsa_emu_launch_count(void) {
    return launches;
}

uint64_t lrsa_emu_graph_launch_count(void) {
    return graph_launches;
}

cudaError_t cudaGetDeviceCount(int *count) {
    *count = device_count();
    return devices_present() ? cudaSuccess : set_error(cudaErrorNoDevice);
}

cudaError_t cudaGetDevice(int *device) {
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= device_count()) return set_error(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    if (device < 0 || device >= device_count()) return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "lrsa CUDA emulation on the host (H100 limits)");
    p->totalGlobalMem = kTotalMem;
    p->sharedMemPerBlock = kDefaultSmem;
    p->sharedMemPerBlockOptin = kOptinSmem;
    p->multiProcessorCount = 132;
    p->major = 9;
    p->minor = 0;
    p->maxThreadsPerBlock = 1024;
    p->warpSize = 32;
    p->l2CacheSize = 50 << 20;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return cudaErrorInvalidDevice;
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock:
            *value = p.maxThreadsPerBlock;
            break;
        case cudaDevAttrMaxSharedMemoryPerBlock:
            *value = (int)p.sharedMemPerBlock;
            break;
        case cudaDevAttrMultiProcessorCount:
            *value = p.multiProcessorCount;
            break;
        case cudaDevAttrL2CacheSize:
            *value = p.l2CacheSize;
            break;
        case cudaDevAttrComputeCapabilityMajor:
            *value = p.major;
            break;
        case cudaDevAttrComputeCapabilityMinor:
            *value = p.minor;
            break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin:
            *value = (int)p.sharedMemPerBlockOptin;
            break;
        default:
            return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *total_bytes = kTotalMem;
    *free_bytes = kTotalMem - allocated;
    return cudaSuccess;
}

const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
        case cudaSuccess:
            return "no error";
        case cudaErrorInvalidValue:
            return "invalid argument";
        case cudaErrorMemoryAllocation:
            return "out of memory";
        case cudaErrorInvalidConfiguration:
            return "invalid configuration argument";
        case cudaErrorInvalidDevicePointer:
            return "invalid device pointer";
        case cudaErrorNoDevice:
            return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice:
            return "invalid device ordinal";
        case cudaErrorStreamCaptureUnsupported:
            return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated:
            return "operation failed due to a previous error during capture";
        case cudaErrorStreamCaptureUnmatched:
            return "capture was not ended in the same stream as it began";
        case cudaErrorStreamCaptureImplicit:
            return "operation would make the legacy stream depend on a capturing blocking stream";
        default:
            return "unknown error (emulation)";
    }
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    return last_error;
}

cudaError_t cudaDeviceSynchronize(void) {
    return forbidden_in_capture("cudaDeviceSynchronize");
}

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    *ptr = nullptr;
    if (forbidden_in_capture("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
    if (bytes == 0) return cudaSuccess;
    if (bytes > kTotalMem - allocated) return set_error(cudaErrorMemoryAllocation);
    void *p = nullptr; // exactly `bytes`, so AddressSanitizer sees a read one element past the end
    if (posix_memalign(&p, 256, bytes)) return set_error(cudaErrorMemoryAllocation);
    memset(p, 0xFF, bytes);
    allocations[(uintptr_t)p] = bytes;
    allocated += bytes;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (forbidden_in_capture("cudaFree")) return cudaErrorStreamCaptureUnsupported;
    if (!ptr) return cudaSuccess;
    auto it = allocations.find((uintptr_t)ptr);
    if (it == allocations.end()) return set_error(cudaErrorInvalidDevicePointer);
    allocated -= it->second;
    allocations.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t bytes) {
    *ptr = nullptr;
    if (forbidden_in_capture("cudaMallocHost")) return cudaErrorStreamCaptureUnsupported;
    *ptr = malloc(bytes ? bytes : 1);
    if (!*ptr) return set_error(cudaErrorMemoryAllocation);
    pinned[(uintptr_t)*ptr] = bytes ? bytes : 1;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr) {
    if (forbidden_in_capture("cudaFreeHost")) return cudaErrorStreamCaptureUnsupported;
    if (!ptr) return cudaSuccess;
    if (!pinned.erase((uintptr_t)ptr)) return set_error(cudaErrorInvalidValue);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (bytes == 0) return cudaSuccess;
    cudaError_t e = check_copy(dst, src, bytes, kind, stream);
    if (e != cudaSuccess) return e;
    return issue(stream, [dst, src, bytes]() { memmove(dst, src, bytes); });
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
    if (forbidden_in_capture("cudaMemcpy (synchronous)")) return cudaErrorStreamCaptureUnsupported;
    return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return cudaSuccess;
    if (!is_device(ptr, bytes)) {
        fprintf(stderr,
                "lrsa CUDA emulation: cudaMemset of %zu bytes outside a device allocation\n",
                bytes);
        return set_error(cudaErrorInvalidValue);
    }
    return issue(stream, [ptr, value, bytes]() { memset(ptr, value, bytes); });
}

cudaError_t cudaMemset(void *ptr, int value, size_t bytes) {
    if (forbidden_in_capture("cudaMemset (synchronous)")) return cudaErrorStreamCaptureUnsupported;
    return cudaMemsetAsync(ptr, value, bytes, nullptr);
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    *stream = (cudaStream_t)malloc(1);
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
    (void)flags;
    return cudaStreamCreate(stream);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    free(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (lrsa_emu::stream_capturing(stream)) return forbidden_in_capture("cudaStreamSynchronize");
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    if (lrsa_emu::stream_capturing(stream)) return forbidden_in_capture("cudaStreamQuery");
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status) {
    *status = capturing() && stream == capture_stream ? capture_state : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
    (void)stream, (void)event, (void)flags;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    *event = (cudaEvent_t) new Event();
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
    (void)flags;
    return cudaEventCreate(event);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete (Event *)event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    Event *ev = (Event *)event;
    ev->captured = capturing() && stream == capture_stream;
    return issue(stream, [ev]() { ev->t = std::chrono::steady_clock::now(); });
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (((Event *)event)->captured && capturing())
        return forbidden_in_capture("cudaEventSynchronize on an event recorded in the capture");
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    if (((Event *)event)->captured && capturing())
        return forbidden_in_capture("cudaEventQuery on an event recorded in the capture");
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    auto d = ((Event *)end)->t - ((Event *)start)->t;
    *ms = (float)std::chrono::duration<double, std::milli>(d).count();
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
    (void)mode; // every capture is checked as in the strictest (global) mode
    if (capturing() || !stream) return set_error(cudaErrorStreamCaptureUnsupported);
    capture_state = cudaStreamCaptureStatusActive;
    capture_stream = stream;
    capture = new Graph();
    return cudaSuccess;
}

// Ends the capture; an invalidated one gives no graph and cudaErrorStreamCaptureInvalidated.
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    *graph = nullptr;
    if (!capturing() || stream != capture_stream) return set_error(cudaErrorStreamCaptureUnmatched);
    bool valid = capture_state == cudaStreamCaptureStatusActive;
    if (valid)
        *graph = (cudaGraph_t)capture;
    else
        delete capture;
    capture = nullptr;
    capture_state = cudaStreamCaptureStatusNone;
    capture_stream = nullptr;
    return valid ? cudaSuccess : set_error(cudaErrorStreamCaptureInvalidated);
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags) {
    (void)flags;
    *exec = nullptr;
    if (!graph) return set_error(cudaErrorInvalidValue);
    if (forbidden_in_capture("cudaGraphInstantiate")) return cudaErrorStreamCaptureUnsupported;
    *exec = (cudaGraphExec_t) new Graph(*(Graph *)graph);
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (!exec) return set_error(cudaErrorInvalidValue);
    graph_launches++;
    for (auto &op : ((Graph *)exec)->ops) {
        cudaError_t e = issue(stream, op);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete (Graph *)exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete (Graph *)graph;
    return cudaSuccess;
}

} // extern "C"
