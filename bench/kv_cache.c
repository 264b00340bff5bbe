/* KV-cache benchmark: memory after an 8K-token chunked prefill under LagKV (r = 1/4, L = 128)
 * against the section-4 size formula, and decode tokens/s with the compressed cache vs the full
 * cache. Model: SmolLM2-135M-shaped with random weights (fewer layers by default: this is CPU
 * code and the CI machine is slow), or a real model directory with --model.
 *
 *   bench_kv_cache [--layers N] [--tokens T] [--decode N] [--keep r] [--lag L] [--sink S]
 *                  [--model DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "eval/run/generate.h"
#include "eval/run/prefill.h"
#include "random_model.h"

static double decode_rate(const lrsa_model *m, lrsa_kv_cache *c, int steps, int V) {
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    int32_t id = 1;
    double t0 = lrsa_now();
    for (int s = 0; s < steps; s++) {
        lrsa_cached_forward(m, c, &id, 1, logits, 0);
        id = lrsa_argmax(logits, V);
    }
    double dt = lrsa_now() - t0;
    free(logits);
    return steps / dt;
}

int main(int argc, char **argv) {
    int layers = 4, T = 8192, decode = 32;
    lrsa_lagkv_params p = {.sink = 16, .lag = 128, .keep = 0.25f, .value_weight = 1.0f};
    const char *model_dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--layers"))
            layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens"))
            T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode"))
            decode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--keep"))
            p.keep = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--lag"))
            p.lag = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sink"))
            p.sink = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model"))
            model_dir = argv[i + 1];
        else {
            fprintf(stderr, "bench_kv_cache: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    lrsa_err e = {{0}};
    lrsa_model m;
    if (model_dir) {
        if (lrsa_model_load(&m, model_dir, &e) != 0) {
            lrsa_err_print(&e);
            return 1;
        }
    } else {
        if (bench_random_smollm2(&m, layers, 8192, &e) != 0) {
            lrsa_err_print(&e);
            return 1;
        }
    }
    const int V = m.cfg.vocab_size;
    int32_t *ids = lrsa_malloc((size_t)T * sizeof(int32_t));
    lrsa_rng r;
    lrsa_rng_seed(&r, 2);
    for (int i = 0; i < T; i++) ids[i] = (int32_t)lrsa_rng_below(&r, (uint64_t)V);
    printf("model: %s, %d layers, %d KV heads, head_dim %d; %d prompt tokens; "
           "LagKV S=%d L=%d r=%g (k=%d)\n",
           model_dir ? model_dir : "random SmolLM2-135M shape", m.cfg.num_hidden_layers,
           m.cfg.num_key_value_heads, m.cfg.head_dim, T, p.sink, p.lag, p.keep, lrsa_lagkv_k(&p));

    lrsa_press_config lag = lrsa_press_config_lagkv(p, LRSA_PREFILL_CHUNKED);
    lrsa_press_config full = lrsa_press_config_full(LRSA_PREFILL_ONESHOT);
    lrsa_kv_cache cl, cf;
    if (lrsa_kv_cache_for_model(&cl, &m, &lag, &e) || lrsa_kv_cache_for_model(&cf, &m, &full, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    double t0 = lrsa_now();
    lrsa_prefill(&m, &cl, ids, T, LRSA_PREFILL_CHUNKED, NULL, 0, &e);
    double t_lag = lrsa_now() - t0;
    t0 = lrsa_now();
    lrsa_prefill(&m, &cf, ids, T, LRSA_PREFILL_ONESHOT, NULL, 0, &e);
    double t_full = lrsa_now() - t0;

    const size_t bpt = lrsa_kv_cache_bytes_per_token(&cl);
    const int64_t formula = lrsa_lagkv_oneshot_len(T, &p);
    printf("bytes per token (fp32 K+V, all layers): %zu\n", bpt);
    printf("full cache:  %lld tokens, %.2f MiB live\n", (long long)lrsa_kv_cache_max_len(&cf),
           lrsa_kv_cache_live_bytes(&cf) / 1048576.0);
    printf("lagkv cache: %lld tokens per head, %.2f MiB live, %.2f MiB allocated; formula %lld "
           "tokens x %zu B = %.2f MiB (%s)\n",
           (long long)lrsa_kv_cache_max_len(&cl), lrsa_kv_cache_live_bytes(&cl) / 1048576.0,
           lrsa_kv_cache_alloc_bytes(&cl) / 1048576.0, (long long)formula, bpt,
           formula * (double)bpt / 1048576.0,
           lrsa_kv_cache_live_bytes(&cl) == (size_t)formula * bpt ? "equal" : "DIFFERENT");
    printf("prefill: chunked+lagkv %.2f s (%.0f tok/s), one-shot full %.2f s (%.0f tok/s)\n", t_lag,
           T / t_lag, t_full, T / t_full);
    double r_lag = decode_rate(&m, &cl, decode, V);
    double r_full = decode_rate(&m, &cf, decode, V);
    printf("decode (%d steps, 1 token each, greedy, incl. LM head): lagkv %.2f tok/s, full %.2f "
           "tok/s (x%.2f)\n",
           decode, r_lag, r_full, r_lag / r_full);
    lrsa_kv_cache_free(&cl);
    lrsa_kv_cache_free(&cf);
    free(ids);
    lrsa_model_free(&m);
    return 0;
}
