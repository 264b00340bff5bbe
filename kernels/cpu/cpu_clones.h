/* Function multi-versioning for the exp-heavy loops (the attention tiles' online softmax and its
 * backward): gcc compiles the marked function twice, for the default x86-64 target (SSE2) and for
 * AVX2, and picks one when the program loads (an ifunc), so one binary runs everywhere and uses
 * 8-lane vectors where the CPU has them.
 *
 * The results are the same bits in both versions: the loops are IEEE fp32 adds, multiplies and
 * bit operations (lrsa_vexpf, the fixed-lane reductions of vrow.h), the "avx2" target does not
 * enable FMA, and the build is -std=c11, where gcc does not contract a * b + c (-ffp-contract=off).
 * Other compilers and other architectures get the plain function. */
#ifndef LRSA_KERNELS_CPU_CLONES_H
#define LRSA_KERNELS_CPU_CLONES_H
#ifndef LRSA_AVX2_CLONES /* -DLRSA_AVX2_CLONES= builds the plain functions only */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LRSA_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LRSA_AVX2_CLONES
#endif
#endif
/* For the helpers of a cloned function: inlined into each version, so they get its target. */
#define LRSA_INLINE_HELPER static inline __attribute__((always_inline))
#endif
