/* Compressed inference on the GPU (issue 17 item 5): the KV cache in device memory, bf16 rows
 * per (layer, KV head), full or LagKV-compressed with the CPU cache's rules (eval/cache/kv_cache.h,
 * ../shared/docs/lagkv-lrsa.md section 4): every forward appends its rows, attends to the cache
 * (the new rows causally), then compresses ("use, then compress"). The blocks around attention
 * are the model's own (lrsa_block_*, model.h) on the CUDA op table; the LagKV scores and top-k
 * come from the GPU selection kernel, the compaction and the cache attention are this file's
 * kernels. Memory follows the kept tokens: each head holds at most what LagKV can keep for the
 * planned length (sink + k per scored partition + the uncompressed tail and one chunk).
 * Other presses (SnapKV, H2O, TOVA, K-norm, KVzip, CompressKV, StreamingLLM, PyramidKV) stay
 * CPU-only. Compiled, never run on a GPU; checked in emulation (test_gpu_kv_cache). */
#ifndef LRSA_EVAL_KV_CACHE_GPU_H
#define LRSA_EVAL_KV_CACHE_GPU_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "eval/run/prefill.h"
#include "kernels/lagkv/lagkv.h"
#include "model/model.h"

typedef struct lrsa_kv_cache_gpu lrsa_kv_cache_gpu;

/* A cache (with the model's weights as bf16 on the device) for sequences of up to max_tokens
 * tokens fed in forwards of up to max_chunk tokens; max_frozen: the tokens that may be fed after
 * lrsa_kv_cache_gpu_freeze (0 when it is never frozen). lagkv NULL: full cache. NULL with the
 * reason in e without CUDA or a device. */
lrsa_kv_cache_gpu *lrsa_kv_cache_gpu_new(const lrsa_model *m, const lrsa_lagkv_params *lagkv,
                                         int64_t max_tokens, int64_t max_chunk, int64_t max_frozen,
                                         lrsa_err *e);
void lrsa_kv_cache_gpu_free(lrsa_kv_cache_gpu *c);
/* Empties the cache for a new sequence (keeps the allocations; compression on again, no save). */
void lrsa_kv_cache_gpu_reset(lrsa_kv_cache_gpu *c);
/* Compression off from now on (the CPU cache's lrsa_press_freeze): the query-agnostic protocol
 * feeds the question and the answer on the compressed context without compressing them. */
void lrsa_kv_cache_gpu_freeze(lrsa_kv_cache_gpu *c);
/* save: copies the cache's rows (device to device, into a second set of arrays allocated at the
 * first save) and its state; restore: puts them back, so the greedy answer starts from the
 * cache the answer NLL started from (the CPU's clone, or its truncate of a frozen cache). */
void lrsa_kv_cache_gpu_save(lrsa_kv_cache_gpu *c);
void lrsa_kv_cache_gpu_restore(lrsa_kv_cache_gpu *c);
/* Feeds N tokens at the next positions: fp32 logits (host) of every row (all_logits) or of the
 * last row, may be NULL; then runs the LagKV events that became due. */
void lrsa_kv_cache_gpu_forward(lrsa_kv_cache_gpu *c, const int32_t *ids, int64_t N, float *logits,
                               int all_logits);
/* lrsa_prefill on the GPU cache: chunked (chunk boundaries at LagKV's event points) or one
 * shot; ids are checked against the vocabulary. */
int lrsa_kv_cache_gpu_prefill(lrsa_kv_cache_gpu *c, const int32_t *ids, int64_t n,
                              lrsa_prefill_mode mode, float *logits, int all_logits, lrsa_err *e);
int64_t lrsa_kv_cache_gpu_seen(const lrsa_kv_cache_gpu *c);
/* Rows kept by (layer, KV head), their original positions (pos may be NULL; host copy) and the
 * LagKV base. */
int64_t lrsa_kv_cache_gpu_head(const lrsa_kv_cache_gpu *c, int layer, int g, int32_t *pos,
                               int64_t *base);
/* Device bytes of the K/V rows allocated (the memory the cache costs). */
size_t lrsa_kv_cache_gpu_bytes(const lrsa_kv_cache_gpu *c);
#endif
