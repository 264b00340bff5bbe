// The CUDA C++ device language on the host (C++ part of lrsa_emu_cuda.h; include that one).
//
// Execution model (emu_runtime.cpp): a launch runs its blocks one after another, in a shuffled
// order; a block's threads are cooperative fibers on one OS thread. A thread runs until it
// reaches __syncthreads or a warp-level operation (shuffle, ballot, mma, ldmatrix), where it
// waits for the others; the threads run in a new random order after every barrier, so a missing
// barrier shows up as a wrong result. A barrier reached at different source lines, a warp
// operation with lanes at different places, or a deadlock aborts with the kernel's location.
// Dynamic shared memory is fresh and filled with 0xFF (NaN) for every block.
#ifndef LRSA_EMU_DEVICE_H
#define LRSA_EMU_DEVICE_H
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <math.h>
#include <tuple>
#include <type_traits>
#include <utility>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;
struct float2 {
    float x, y;
};
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
struct int2 {
    int x, y;
};
struct __attribute__((aligned(16))) uint4 {
    unsigned x, y, z, w;
};
struct __attribute__((aligned(8))) uint2 {
    unsigned x, y;
};
inline float2 make_float2(float x, float y) {
    return float2{x, y};
}

// ---- qualifiers ---------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__   static
#define __constant__ static
#define __grid_constant__
constexpr int warpSize = 32;

namespace lrsa_emu {
extern dim3 thread_idx, block_idx, block_dim, grid_dim;
// Source location of a device-side operation, for the error messages.
struct Site {
    const char *file;
    int line;
};
[[noreturn]] void fail(const Site &s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void syncthreads(const Site &s);
// Warp-level collective: every lane in `mask` posts `rec`; when all have, fn(recs, mask) runs
// once (recs[lane] is each lane's record) and the lanes continue.
typedef void (*CollectiveFn)(void **recs, unsigned mask);
void warp_collective(const Site &s, unsigned mask, void *rec, CollectiveFn fn);
unsigned lane_id();
void *dynamic_smem();

struct ShflRec {
    uint64_t value, result;
    int src;
};
void shfl_exchange(void **recs, unsigned mask);
struct BallotRec {
    int pred;
    unsigned result;
};
void ballot_exchange(void **recs, unsigned mask);
void syncwarp_exchange(void **recs, unsigned mask);

// The lane a shuffle reads, per the PTX rules (segments of `width` lanes).
enum ShflKind { SHFL_IDX, SHFL_XOR, SHFL_DOWN, SHFL_UP };
inline int shfl_source(int lane, ShflKind kind, int arg, int width) {
    int base = lane & ~(width - 1), in = lane - base;
    switch (kind) {
        case SHFL_IDX:
            return base + (arg % width);
        case SHFL_XOR: {
            int s = lane ^ arg;
            return s >= base + width || s < base ? lane : s;
        }
        case SHFL_DOWN:
            return in + arg < width ? lane + arg : lane;
        case SHFL_UP:
            return in - arg >= 0 ? lane - arg : lane;
    }
    return lane;
}

// Bound to a source location by the __shfl_*_sync / __ballot_sync macros below.
struct WarpOps : Site {
    template <class T> T shfl(unsigned mask, T v, ShflKind kind, int arg, int width) const {
        static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle type");
        if (width < 1 || width > 32 || (width & (width - 1)))
            fail(*this, "shuffle width %d is not a power of two <= 32", width);
        ShflRec r;
        r.value = 0;
        std::memcpy(&r.value, &v, sizeof v);
        r.src = shfl_source((int)lane_id(), kind, arg, width);
        warp_collective(*this, mask, &r, shfl_exchange);
        T out;
        std::memcpy(&out, &r.result, sizeof out);
        return out;
    }
    template <class T> T shfl_xor(unsigned m, T v, int lm, int w = 32) const {
        return shfl(m, v, SHFL_XOR, lm, w);
    }
    template <class T> T shfl_idx(unsigned m, T v, int src, int w = 32) const {
        return shfl(m, v, SHFL_IDX, src, w);
    }
    template <class T> T shfl_down(unsigned m, T v, unsigned d, int w = 32) const {
        return shfl(m, v, SHFL_DOWN, (int)d, w);
    }
    template <class T> T shfl_up(unsigned m, T v, unsigned d, int w = 32) const {
        return shfl(m, v, SHFL_UP, (int)d, w);
    }
    unsigned ballot(unsigned mask, int pred) const {
        BallotRec r{pred != 0, 0};
        warp_collective(*this, mask, &r, ballot_exchange);
        return r.result;
    }
    int any(unsigned mask, int pred) const { return ballot(mask, pred) != 0; }
    int all(unsigned mask, int pred) const { return ballot(mask, pred) == ballot(mask, 1); }
    void syncwarp(unsigned mask = 0xffffffffu) const {
        warp_collective(*this, mask, nullptr, syncwarp_exchange);
    }
};
} // namespace lrsa_emu

#define threadIdx             (::lrsa_emu::thread_idx)
#define blockIdx              (::lrsa_emu::block_idx)
#define blockDim              (::lrsa_emu::block_dim)
#define gridDim               (::lrsa_emu::grid_dim)
#define LRSA_EMU_SITE         (::lrsa_emu::Site{__FILE__, __LINE__})
#define LRSA_EMU_WARP         (::lrsa_emu::WarpOps{{__FILE__, __LINE__}})
#define __syncthreads()       ::lrsa_emu::syncthreads(LRSA_EMU_SITE)
#define __syncwarp(...)       LRSA_EMU_WARP.syncwarp(__VA_ARGS__)
#define __shfl_xor_sync       LRSA_EMU_WARP.shfl_xor
#define __shfl_sync           LRSA_EMU_WARP.shfl_idx
#define __shfl_down_sync      LRSA_EMU_WARP.shfl_down
#define __shfl_up_sync        LRSA_EMU_WARP.shfl_up
#define __ballot_sync         LRSA_EMU_WARP.ballot
#define __any_sync            LRSA_EMU_WARP.any
#define __all_sync            LRSA_EMU_WARP.all
#define __trap()              ::lrsa_emu::fail(LRSA_EMU_SITE, "__trap() (a device-side assertion)")
#define __threadfence()       ((void)0)
#define __threadfence_block() ((void)0)

// ---- arithmetic intrinsics: IEEE single precision, as on the GPU (no contraction: the
// emulated sources are compiled with -ffp-contract=off) --------------------------------------
inline float __fadd_rn(float a, float b) {
    return a + b;
}
inline float __fsub_rn(float a, float b) {
    return a - b;
}
inline float __fmul_rn(float a, float b) {
    return a * b;
}
inline float __fdiv_rn(float a, float b) {
    return a / b;
}
inline float __fsqrt_rn(float a) {
    return sqrtf(a);
}
inline float __fmaf_rn(float a, float b, float c) {
    return fmaf(a, b, c);
}
inline float __frcp_rn(float a) {
    return 1.0f / a;
}
inline float __fdividef(float a, float b) {
    return a / b;
}
inline float __expf(float a) {
    return expf(a);
}
inline float __logf(float a) {
    return logf(a);
}
inline float rsqrtf(float a) {
    return 1.0f / sqrtf(a);
}
inline float __saturatef(float a) {
    return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a);
}
inline double __dadd_rn(double a, double b) {
    return a + b;
}
inline int __popc(unsigned x) {
    return __builtin_popcount(x);
}
inline int __clz(unsigned x) {
    return x ? __builtin_clz(x) : 32;
}
inline int __ffs(unsigned x) {
    return __builtin_ffs((int)x);
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline int __float_as_int(float f) {
    return (int)__float_as_uint(f);
}
inline float __int_as_float(int i) {
    return __uint_as_float((unsigned)i);
}

// CUDA's min/max overloads for mixed integer types in device code.
template <class A, class B> inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type R;
    return (R)b < (R)a ? (R)b : (R)a;
}
template <class A, class B> inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type R;
    return (R)a < (R)b ? (R)b : (R)a;
}

// ---- atomics: a thread switches only at barriers and warp operations, so a plain
// read-modify-write is atomic here ------------------------------------------------------------
template <class T> inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <class T> inline T atomicMin(T *p, T v) {
    T old = *p;
    *p = v < old ? v : old;
    return old;
}
template <class T> inline T atomicMax(T *p, T v) {
    T old = *p;
    *p = old < v ? v : old;
    return old;
}
template <class T> inline T atomicExch(T *p, T v) {
    T old = *p;
    *p = v;
    return old;
}
template <class T> inline T atomicCAS(T *p, T cmp, T v) {
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}

// ---- bf16 (storage type with conversions, as cuda_bf16.h) -----------------------------------
struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f); // round to nearest even
    operator float() const {
        uint32_t u = (uint32_t)__x << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
};
typedef __nv_bfloat16 nv_bfloat16;
struct __align__(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
typedef __nv_bfloat162 nv_bfloat162;

// The device's cvt.rn.bf16.f32: round to nearest even; any NaN becomes the canonical 0x7FFF.
inline unsigned short lrsa_emu_f32_to_bf16_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
inline __nv_bfloat16::__nv_bfloat16(float f) : __x(lrsa_emu_f32_to_bf16_bits(f)) {}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    return __nv_bfloat16(f);
}
inline __nv_bfloat16 __float2bfloat16(float f) {
    return __nv_bfloat16(f);
}
inline float __bfloat162float(__nv_bfloat16 h) {
    return (float)h;
}
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 h;
    h.__x = u;
    return h;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) {
    return h.__x;
}
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(b)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) {
    return __floats2bfloat162_rn(f.x, f.y);
}
inline float2 __bfloat1622float2(__nv_bfloat162 h) {
    return float2{(float)h.x, (float)h.y};
}
inline float __low2float(__nv_bfloat162 h) {
    return (float)h.x;
}
inline float __high2float(__nv_bfloat162 h) {
    return (float)h.y;
}

// ---- launches -----------------------------------------------------------------------------
namespace lrsa_emu {
struct LaunchSite {
    const char *file;
    int line;
    dim3 grid, block;
    size_t smem;
    void *stream;
};
// Runs (or, while the stream is captured, records) a launch: `body` runs one thread.
void launch(const LaunchSite &s, const void *kernel_id, std::function<void()> body);
// The same for any other work on a stream (the library stand-ins: cuBLASLt, CUB): `op` holds its
// arguments by value and runs now, or when the graph it was captured into is launched.
cudaError_t enqueue(cudaStream_t stream, std::function<void()> op);
// Whether work on `stream` would be captured (or refused) now.
bool stream_capturing(cudaStream_t stream);

template <class... A> struct Pending {
    LaunchSite site;
    std::tuple<A...> args;
};
struct LaunchCfg {
    LaunchSite s;
    template <class G, class B>
    LaunchCfg(const char *f, int l, G g, B b, size_t smem = 0, void *st = nullptr)
        : s{f, l, to_dim3(g), to_dim3(b), smem, st} {}
    template <class G, class B, class S>
    LaunchCfg(const char *f, int l, G g, B b, size_t smem, S *st)
        : s{f, l, to_dim3(g), to_dim3(b), smem, (void *)st} {}
    static dim3 to_dim3(dim3 d) { return d; }
    template <class I> static dim3 to_dim3(I i) {
        static_assert(std::is_integral<I>::value || std::is_enum<I>::value, "launch dimension");
        return dim3((unsigned)i);
    }
    template <class... A> Pending<typename std::decay<A>::type...> operator()(A &&...a) const {
        return {s, std::tuple<typename std::decay<A>::type...>(std::forward<A>(a)...)};
    }
};

// `kernel<<<cfg>>>(args)` is rewritten to `kernel, LaunchCfg(cfg)(args)`: the arguments are
// converted to the kernel's parameter types once (as a launch copies them), then every thread
// calls the kernel on its own copy.
template <class... P, class... A> void operator,(void (*k)(P...), Pending<A...> &&pl) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong argument count");
    std::tuple<P...> params = std::make_from_tuple<std::tuple<P...>>(std::move(pl.args));
    launch(pl.site, reinterpret_cast<const void *>(k), [k, params]() { std::apply(k, params); });
}
} // namespace lrsa_emu

// cudaMalloc / cudaFuncSetAttribute as the C++ runtime API overloads them.
template <class T> inline cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t lrsa_emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value);
template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*k)(P...), cudaFuncAttribute attr, int value) {
    return lrsa_emu_func_set_attribute(reinterpret_cast<const void *>(k), attr, value);
}

#include "lrsa_emu_mma.h"
#endif
