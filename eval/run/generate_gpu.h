/* Generation on the GPU KV cache (`lrsa generate --device cuda`): the full cache or LagKV
 * (chunked or one-shot prefill); the other presses stay on the CPU. Compiled, never run on a
 * GPU; the cache it uses is checked in emulation (test_gpu_kv_cache, test_gpu_eval). */
#ifndef LRSA_EVAL_GENERATE_GPU_H
#define LRSA_EVAL_GENERATE_GPU_H
#include <stddef.h>

#include "eval/run/generate.h"
#include "eval/press/press.h"

/* Prefills prompt[0..split) under the press and decodes as lrsa_generate; split < n (the
 * query-agnostic protocol): the cache is frozen after prompt[0..split) and the question
 * prompt[split..n) read in one forward before decoding. stats gets one line about the cache. */
int lrsa_generate_gpu(const lrsa_model *m, const lrsa_press_spec *spec, const int32_t *prompt,
                      int64_t n, int64_t split, const lrsa_gen_options *o, lrsa_token_fn on_token,
                      void *user, lrsa_gen_result *res, char *stats, size_t cap, lrsa_err *e);
#endif
