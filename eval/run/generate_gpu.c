/* `lrsa generate --device cuda`: prefill and decode on the GPU KV cache (kv_cache_gpu.h) with the
 * shared decoding loop (lrsa_generate_decode). Full cache or LagKV; other presses stay on the
 * CPU. */
#include "eval/run/generate_gpu.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "eval/run/eval_gpu.h"
#include "eval/run/kv_cache_gpu.h"

static void gpu_step(void *ctx, int32_t id, float *logits) {
    lrsa_kv_cache_gpu_forward(ctx, &id, 1, logits, 0);
}

int lrsa_generate_gpu(const lrsa_model *m, const lrsa_press_spec *spec, const int32_t *prompt,
                      int64_t n, int64_t split, const lrsa_gen_options *o, lrsa_token_fn on_token,
                      void *user, lrsa_gen_result *res, char *stats, size_t cap, lrsa_err *e) {
    if (lrsa_press_gpu_check(spec, "--device cuda", e) != 0) return -1;
    LRSA_CHECK(split >= 1 && split <= n);
    const lrsa_lagkv_params *p = spec->method == LRSA_PRESS_LAGKV ? &spec->lagkv : NULL;
    /* chunked LagKV feeds at most S + 2L tokens at a time; one shot or a full cache all of it;
     * the question after a split is one forward on the frozen cache */
    int64_t chunk =
        p && spec->prefill == LRSA_PREFILL_CHUNKED ? p->sink + 2 * (int64_t)p->lag : split;
    if (chunk < n - split) chunk = n - split;
    const int64_t frozen = split < n ? n - split + o->max_new : 0;
    lrsa_kv_cache_gpu *c = lrsa_kv_cache_gpu_new(m, p, n + o->max_new, chunk, frozen, e);
    if (!c) return -1;
    float *logits = lrsa_malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    double t0 = lrsa_now();
    int rc = lrsa_kv_cache_gpu_prefill(c, prompt, split, spec->prefill, logits, 0, e);
    if (!rc && split < n) { /* query-agnostic: the question on the frozen compressed context */
        lrsa_kv_cache_gpu_freeze(c);
        lrsa_kv_cache_gpu_forward(c, prompt + split, n - split, logits, 0);
    }
    if (!rc) {
        res->prefill_s = lrsa_now() - t0;
        rc = lrsa_generate_decode(gpu_step, c, m->cfg.vocab_size, logits, o, on_token, user, res);
    }
    if (!rc) {
        int64_t kept = 0, heads = (int64_t)m->cfg.num_hidden_layers * m->cfg.num_key_value_heads;
        for (int l = 0; l < m->cfg.num_hidden_layers; l++)
            for (int g = 0; g < m->cfg.num_key_value_heads; g++)
                kept += lrsa_kv_cache_gpu_head(c, l, g, NULL, NULL);
        snprintf(stats, cap,
                 "GPU cache: tokens seen %lld, kept %lld per head on average, %zu bytes of K/V "
                 "allocated on the device",
                 (long long)lrsa_kv_cache_gpu_seen(c), (long long)(heads ? kept / heads : 0),
                 lrsa_kv_cache_gpu_bytes(c));
    }
    free(logits);
    lrsa_kv_cache_gpu_free(c);
    return rc;
}
