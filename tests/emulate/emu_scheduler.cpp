// Kernel launches of the CUDA emulation: blocks one after another in a shuffled order, each
// block's threads as cooperative fibers on the calling OS thread (lrsa_emu_device.h describes the
// model). A fiber switch is a few instructions (x86-64 assembly below; ucontext elsewhere), so a
// barrier costs about a microsecond per block, not an OS thread wake-up per thread.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <vector>

#include "emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define LRSA_EMU_ASAN 1
#else
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size)) /* no redzones */
#endif
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace lrsa_emu {

dim3 thread_idx, block_idx, block_dim, grid_dim;

namespace {

enum State { RUNNABLE, WAIT_BLOCK, WAIT_WARP, DONE };

struct Fiber {
    void *sp;
    State state;
    unsigned linear;
    dim3 tid;
    Site at; // where it waits
#if !defined(__x86_64__)
    ucontext_t uc;
#endif
};

struct Warp {
    unsigned mask, arrived;
    CollectiveFn fn;
    Site at;
    void *rec[32];
};

constexpr size_t kStackBytes = 256 << 10; // per fiber, with a guard page below
constexpr int kMaxThreads = 1024;

struct Block {
    int n = 0, live = 0, arrived = 0;
    Site bar{nullptr, 0};
    std::vector<Fiber> fibers;
    Warp warps[kMaxThreads / 32];
    std::vector<unsigned char> smem;
    const std::function<void()> *body = nullptr;
    const LaunchSite *site = nullptr;
};

Block blk;
Fiber *cur = nullptr;
void *sched_sp = nullptr;
char *stacks = nullptr;
uint64_t rng_state = 0x9e3779b97f4a7c15ull;
#if !defined(__x86_64__)
ucontext_t sched_uc;
#endif
#ifdef LRSA_EMU_ASAN
const void *main_bottom = nullptr;
size_t main_size = 0;
#endif

uint64_t next_random() {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

template <class T> void shuffle(std::vector<T> &v) {
    for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[next_random() % i]);
}

char *stack_base(unsigned i) {
    return stacks + (size_t)i * kStackBytes;
}

void ensure_stacks() {
    if (stacks) return;
    size_t bytes = kStackBytes * kMaxThreads;
    void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "lrsa CUDA emulation: cannot map %zu bytes of fiber stacks\n", bytes);
        abort();
    }
    stacks = (char *)p;
    for (int i = 0; i < kMaxThreads; i++) mprotect(stack_base(i), 4096, PROT_NONE); // guard
}

} // namespace
} // namespace lrsa_emu

#if defined(__x86_64__)
// lrsa_emu_switch(save, to): saves the callee-saved registers on the current stack, stores the
// stack pointer in *save, switches to `to` and restores the registers saved there.
extern "C" void lrsa_emu_switch(void **save, void *to);
__asm__(".text\n"
        ".globl lrsa_emu_switch\n"
        ".hidden lrsa_emu_switch\n"
        ".type lrsa_emu_switch,@function\n"
        "lrsa_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size lrsa_emu_switch,.-lrsa_emu_switch\n");
#endif

namespace lrsa_emu {
namespace {

[[noreturn]] void fiber_main();

#if defined(__x86_64__)
extern "C" void lrsa_emu_fiber_entry() {
    fiber_main();
}
#else
void fiber_entry_uc() {
    fiber_main();
}
#endif

// Switches from the current context (scheduler or fiber) to `to`. dying: the current fiber ends.
void switch_to(void **save, void *to, Fiber *to_fiber, bool dying) {
#ifdef LRSA_EMU_ASAN
    void *fake = nullptr;
    const void *bottom = to_fiber ? stack_base(to_fiber->linear) + 4096 : main_bottom;
    size_t size = to_fiber ? kStackBytes - 4096 : main_size;
    __sanitizer_start_switch_fiber(dying ? nullptr : &fake, bottom, size);
#else
    (void)dying;
#endif
#if defined(__x86_64__)
    lrsa_emu_switch(save, to);
#else
    (void)save;
    (void)to;
    Fiber *me = cur;
    ucontext_t *from = to_fiber ? &sched_uc : &me->uc;
    swapcontext(from, to_fiber ? &to_fiber->uc : &sched_uc);
#endif
#ifdef LRSA_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void yield() {
    switch_to(&cur->sp, sched_sp, nullptr, false);
}

void fiber_main() {
#ifdef LRSA_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &main_bottom, &main_size);
#endif
    (*blk.body)();
    Fiber *me = cur;
    me->state = DONE;
    blk.live--;
    // Exited threads no longer count at a barrier (as on the GPU).
    if (blk.arrived > 0 && blk.arrived == blk.live) {
        for (auto &f : blk.fibers)
            if (f.state == WAIT_BLOCK) f.state = RUNNABLE;
        blk.arrived = 0;
    }
    switch_to(&me->sp, sched_sp, nullptr, true);
    abort(); // never resumed
}

void start_fiber(Fiber &f) {
    // A fiber that ended never returned from its frames, so AddressSanitizer still holds their
    // redzones as poisoned: clear the reused stack before laying out the new fiber's first frame.
    ASAN_UNPOISON_MEMORY_REGION(stack_base(f.linear) + 4096, kStackBytes - 4096);
#if defined(__x86_64__)
    uintptr_t top = ((uintptr_t)stack_base(f.linear) + kStackBytes) & ~(uintptr_t)15;
    void **sp = (void **)(top - 16);
    sp[1] = nullptr;                       // a null return address ends unwinding
    sp[0] = (void *)&lrsa_emu_fiber_entry; // where the first switch "returns" to
    sp -= 6;                               // rbp rbx r12 r13 r14 r15 (zero)
    for (int i = 0; i < 6; i++) sp[i] = nullptr;
    f.sp = sp;
#else
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = stack_base(f.linear) + 4096;
    f.uc.uc_stack.ss_size = kStackBytes - 4096;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, fiber_entry_uc, 0);
#endif
}

const char *state_name(State s) {
    return s == WAIT_BLOCK ? "__syncthreads" : s == WAIT_WARP ? "a warp operation" : "?";
}

[[noreturn]] void deadlock() {
    std::string what;
    int shown = 0;
    for (auto &f : blk.fibers) {
        if (f.state == DONE || shown >= 6) continue;
        char line[256];
        snprintf(line, sizeof line, "\n  thread %u waits at %s (%s:%d)", f.linear,
                 state_name(f.state), f.at.file ? f.at.file : "?", f.at.line);
        what += line;
        shown++;
    }
    fail(Site{blk.site->file, blk.site->line},
         "deadlock: no thread can continue (a barrier or warp operation not reached by all the "
         "threads it waits for):%s",
         what.c_str());
}

void run_block(dim3 b) {
    block_idx = b;
    const unsigned bx = block_dim.x, by = block_dim.y;
    for (int i = 0; i < blk.n; i++) {
        Fiber &f = blk.fibers[i];
        f.state = RUNNABLE;
        f.linear = (unsigned)i;
        f.tid = dim3(i % bx, (i / bx) % by, i / (bx * by));
        f.at = Site{nullptr, 0};
        start_fiber(f);
    }
    for (auto &w : blk.warps) w.arrived = 0;
    blk.live = blk.n;
    blk.arrived = 0;
    if (!blk.smem.empty()) memset(blk.smem.data(), 0xFF, blk.smem.size());
    std::vector<unsigned> order(blk.n);
    for (int i = 0; i < blk.n; i++) order[i] = (unsigned)i;
    while (blk.live > 0) {
        shuffle(order);
        bool ran = false;
        for (unsigned i : order) {
            Fiber &f = blk.fibers[i];
            if (f.state != RUNNABLE) continue;
            cur = &f;
            thread_idx = f.tid;
            switch_to(&sched_sp, f.sp, &f, false);
            ran = true;
        }
        if (!ran) deadlock();
    }
    cur = nullptr;
}

} // namespace

unsigned lane_id() {
    return cur->linear & 31;
}

void *dynamic_smem() {
    return blk.smem.empty() ? nullptr : blk.smem.data();
}

void fail(const Site &s, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cur)
        fprintf(stderr,
                "lrsa CUDA emulation: %s:%d: block (%u,%u,%u) thread (%u,%u,%u) of the launch at "
                "%s:%d: %s\n",
                s.file ? s.file : "?", s.line, block_idx.x, block_idx.y, block_idx.z, thread_idx.x,
                thread_idx.y, thread_idx.z, blk.site ? blk.site->file : "?",
                blk.site ? blk.site->line : 0, msg);
    else
        fprintf(stderr, "lrsa CUDA emulation: %s:%d: %s\n", s.file ? s.file : "?", s.line, msg);
    fflush(stderr);
    abort();
}

static bool same_site(const Site &a, const Site &b) {
    return a.line == b.line && (a.file == b.file || !strcmp(a.file, b.file));
}

void syncthreads(const Site &s) {
    Fiber *me = cur;
    if (!me) fail(s, "__syncthreads outside a kernel");
    if (blk.arrived == 0)
        blk.bar = s;
    else if (!same_site(blk.bar, s))
        fail(s, "divergent __syncthreads: other threads wait at %s:%d", blk.bar.file, blk.bar.line);
    blk.arrived++;
    if (blk.arrived == blk.live) {
        for (auto &f : blk.fibers)
            if (f.state == WAIT_BLOCK) f.state = RUNNABLE;
        blk.arrived = 0;
        return;
    }
    me->state = WAIT_BLOCK;
    me->at = s;
    yield();
}

void warp_collective(const Site &s, unsigned mask, void *rec, CollectiveFn fn) {
    Fiber *me = cur;
    if (!me) fail(s, "warp operation outside a kernel");
    unsigned lane = me->linear & 31, w = me->linear >> 5;
    unsigned present = 0;
    for (unsigned l = 0; l < 32; l++) {
        unsigned t = w * 32 + l;
        if ((int)t < blk.n && blk.fibers[t].state != DONE) present |= 1u << l;
    }
    if (!(mask & (1u << lane)))
        fail(s, "lane %u executes a warp operation whose mask 0x%08x excludes it", lane, mask);
    if ((mask & present) != mask)
        fail(s,
             "warp operation mask 0x%08x names lanes that do not exist or have exited (live "
             "lanes 0x%08x)",
             mask, present);
    Warp &W = blk.warps[w];
    if (W.arrived == 0) {
        W.mask = mask;
        W.fn = fn;
        W.at = s;
    } else if (W.mask != mask || W.fn != fn || !same_site(W.at, s)) {
        fail(s, "divergent warp operation: other lanes of warp %u wait at %s:%d (mask 0x%08x)", w,
             W.at.file, W.at.line, W.mask);
    }
    W.rec[lane] = rec;
    W.arrived |= 1u << lane;
    if (W.arrived == W.mask) {
        W.fn(W.rec, W.mask);
        W.arrived = 0;
        for (unsigned l = 0; l < 32; l++) {
            if (!(mask & (1u << l)) || l == lane) continue;
            Fiber &f = blk.fibers[w * 32 + l];
            if (f.state == WAIT_WARP) f.state = RUNNABLE;
        }
        return;
    }
    me->state = WAIT_WARP;
    me->at = s;
    yield();
}

void run_launch(const LaunchSite &s, const std::function<void()> &body) {
    ensure_stacks();
    const unsigned n = s.block.x * s.block.y * s.block.z;
    blk.n = (int)n;
    blk.fibers.resize(n);
    blk.body = &body;
    blk.site = &s;
    blk.smem.assign(s.smem, 0);
    grid_dim = s.grid;
    block_dim = s.block;
    const uint64_t nblocks = (uint64_t)s.grid.x * s.grid.y * s.grid.z;
    std::vector<uint64_t> order(nblocks);
    for (uint64_t i = 0; i < nblocks; i++) order[i] = i;
    shuffle(order); // blocks of a grid may run in any order on the GPU
    for (uint64_t i : order) {
        dim3 b((unsigned)(i % s.grid.x), (unsigned)(i / s.grid.x % s.grid.y),
               (unsigned)(i / ((uint64_t)s.grid.x * s.grid.y)));
        run_block(b);
    }
    blk.body = nullptr;
    blk.site = nullptr;
}

} // namespace lrsa_emu
