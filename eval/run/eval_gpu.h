/* `lrsa eval --device cuda`: one sample's answer NLL and greedy answer on the GPU KV cache
 * (kv_cache_gpu.h), the same steps as the CPU evaluator (eval_dataset.c): the prefix (the prompt,
 * or the context under the query-agnostic protocol, where the cache is then frozen) prefilled
 * under the press, the question in one forward, the answer fed token by token (teacher forcing)
 * for the NLL from the GPU's logits, then the greedy answer from the same compressed prefix.
 * Full cache and LagKV only. Compiled, never run on a GPU; checked in emulation
 * (test_gpu_eval). */
#ifndef LRSA_EVAL_EVAL_GPU_H
#define LRSA_EVAL_EVAL_GPU_H
#include <stdint.h>

#include "eval/press/press.h"
#include "eval/run/generate.h"
#include "eval/run/kv_cache_gpu.h"

/* 0 when the press runs on the GPU cache (none/full, lagkv); otherwise an error naming the press
 * and `--device cpu`. `what` names the option that asked for the GPU ("--device cuda"). */
int lrsa_press_gpu_check(const lrsa_press_spec *s, const char *what, lrsa_err *e);

/* One sample: ids[len] with its answer mask, prompt_len, and split = the tokens compressed (the
 * first answer token or the prompt, or the question's start under the agnostic protocol). */
typedef struct lrsa_gpu_sample {
    const int32_t *ids;
    const uint8_t *mask;
    int64_t len, prompt_len, split;
    int want_nll, want_match;
    lrsa_gen_options gen;      /* the greedy answer's budget and stop ids (want_match) */
    const int64_t *needle;     /* the sample's needle spans (sample, start, end) rows, or NULL */
    int64_t n_needle;          /* spans */
    double nll;                /* out: summed NLL of the answer tokens */
    int64_t nll_tokens;        /* out */
    double kept;               /* out: kept rows / rows of an uncompressed cache (as the CPU's) */
    double needle_kept;        /* out: (layer, KV head, span) triples holding a needle token */
    double needle_tokens_kept; /* out: (layer, KV head, span token) rows kept (as the CPU's) */
    lrsa_gen_result answer;    /* out: the greedy answer (answer.ids malloc'd, caller frees) */
    double *head_kept;         /* NULL or [layers * KV heads], out: rows / prefix tokens per head
                                  after the press (the CPU press's per-head kept fraction) */
    double prefill_s;          /* out: the prefix's prefill under the press */
    size_t peak_bytes;         /* out: live K/V bytes (bf16 rows) after the answer NLL and after
                                  the greedy answer, the larger */
} lrsa_gpu_sample;

/* The token counts a cache for these samples must be planned for (lrsa_kv_cache_gpu_new):
 * folds one sample into *max_tokens, *max_chunk and *max_frozen (start them at 0). */
void lrsa_gpu_sample_plan(const lrsa_gpu_sample *s, const lrsa_press_spec *spec,
                          lrsa_press_protocol proto, int64_t *max_tokens, int64_t *max_chunk,
                          int64_t *max_frozen);

/* Runs one sample on c (reset first) under spec (prefill mode) and proto. */
int lrsa_gpu_sample_run(const lrsa_model *m, lrsa_kv_cache_gpu *c, const lrsa_press_spec *spec,
                        lrsa_press_protocol proto, lrsa_gpu_sample *s, lrsa_err *e);
#endif
