/* The LoRA dropout mask, shared by the CPU op and its CUDA twin so both draw the same elements:
 * element i of a group with key `seed` survives when the high 32 bits of the i-th splitmix64
 * output of `seed` are at or above p * 2^32 (probability 1 - p within 2^-32). Header-only, host
 * and device. */
#ifndef LRSA_KERNELS_LORA_MASK_H
#define LRSA_KERNELS_LORA_MASK_H
#include <stdint.h>

#ifdef __CUDACC__
#define LRSA_LORA_HD __host__ __device__
#else
#define LRSA_LORA_HD
#endif

#define LRSA_LORA_GOLDEN 0x9e3779b97f4a7c15ULL

/* splitmix64's output function: a bijective mix with full avalanche. */
static inline LRSA_LORA_HD uint64_t lrsa_lora_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The drop threshold of rate p in [0, 1). */
static inline LRSA_LORA_HD uint32_t lrsa_lora_threshold(float p) {
    return (uint32_t)((double)p * 4294967296.0);
}

/* Whether element i survives. */
static inline LRSA_LORA_HD int lrsa_lora_keep(uint64_t seed, int64_t i, uint32_t threshold) {
    return (uint32_t)(lrsa_lora_mix64(seed + LRSA_LORA_GOLDEN * (uint64_t)(i + 1)) >> 32) >=
           threshold;
}
#endif
