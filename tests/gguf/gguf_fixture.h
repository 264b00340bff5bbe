/* A tiny llama/qwen2 model written as GGUF for the tests: Q8_0 embeddings, Q4_1 (or F32)
 * matrices, F32 norms and biases, a byte-level vocabulary with three merges, special and
 * user-defined tokens. The Hugging Face-order fp32 weights are kept for comparison. */
#ifndef LRSA_TESTS_GGUF_FIXTURE_H
#define LRSA_TESTS_GGUF_FIXTURE_H
#include <stdint.h>

#include "model/gguf.h"

#define TINY_MAX_TENSORS 64

typedef struct tiny_model {
    int qwen2, tied;
    int L, C, Hq, Hkv, D, I, V;
    int n;
    char hf_name[TINY_MAX_TENSORS][128], gg_name[TINY_MAX_TENSORS][96];
    int64_t rows[TINY_MAX_TENSORS], cols[TINY_MAX_TENSORS]; /* cols 0: 1-D */
    uint32_t type[TINY_MAX_TENSORS];
    int perm_heads[TINY_MAX_TENSORS]; /* llama q/k: heads whose rows the GGUF interleaves */
    float *hf[TINY_MAX_TENSORS];      /* HF order, before quantization */
} tiny_model;

/* matrix_type: the ggml type of the 2-D layer weights (Q4_1, Q8_0 or F32). */
lrsa_gguf_writer *tiny_model_build(tiny_model *m, int qwen2, int tied, uint32_t matrix_type,
                                   uint64_t seed);
/* The same with a given tokenizer.ggml.pre (tiny_model_build uses "smollm"). */
lrsa_gguf_writer *tiny_model_build_pre(tiny_model *m, int qwen2, int tied, uint32_t matrix_type,
                                       uint64_t seed, const char *pre);
void tiny_model_free(tiny_model *m);
/* Index of an HF name in m, or -1. */
int tiny_model_find(const tiny_model *m, const char *hf_name);
/* GGUF row order -> HF row order written out by hand from formats.md 3.5 (independent of the
 * library's permutation code): hf[h*hd + c*hd/2 + i] = gg[h*hd + 2i + c]. */
void tiny_unpermute(const float *gg, float *hf, int n_head, int hd, int64_t cols);
#endif
