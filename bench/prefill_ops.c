/* Where a full-cache prefill spends its time, per block of the cached forward: the q/k/v block
 * (RMSNorm, the fused q/k/v GEMM, RoPE), the append to the cache, the cached attention, the
 * output block (o GEMM, residual, RMSNorm, gate/up GEMM, SwiGLU, down GEMM, residual) and the
 * last-position LM head. The steps are those of lrsa_cached_forward (eval/cache/cached_forward.c)
 * for one sequence, timed one by one in CPU seconds of the process (all threads), so the figures
 * mean something on a shared machine where wall time does not. A SmolLM2-135M-shaped model with
 * random weights and fewer layers (every layer costs the same; multiply by 30 for the real
 * model), or a real model directory with --model.
 *
 *   bench_prefill_ops [--layers 2] [--tokens 4096] [--reps 1] [--decode 0] [--model DIR]
 *   (threads: OPENBLAS_NUM_THREADS) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "eval/cache/cache_attention.h"
#include "eval/cache/cached_forward.h"
#include "eval/run/generate.h"
#include "eval/run/prefill.h"
#include "kernels/cpu/cpu_threads.h"
#include "random_model.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { OP_EMBED, OP_QKV, OP_APPEND, OP_ATTN, OP_OUT, OP_HEAD, N_OPS };
static const char *OP_NAMES[N_OPS] = {"embedding",
                                      "q/k/v block (norm, GEMM, RoPE)",
                                      "append to cache",
                                      "cached attention",
                                      "output block (o, norm, gate/up, SwiGLU, down)",
                                      "LM head, last position"};

/* One forward of T new tokens over the cache (a prefill into an empty cache, or a decode step),
 * the steps of lrsa_cached_forward timed apart (added to t). */
static void forward_timed(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t T,
                          float *logits, double *t) {
    const lrsa_model_config *cfg = &m->cfg;
    const int C = cfg->hidden_size, D = cfg->head_dim;
    const int Hq = cfg->num_attention_heads, Hkv = cfg->num_key_value_heads;
    const int64_t row = (int64_t)(Hq + 2 * Hkv) * D;
    float *x = lrsa_malloc((size_t)T * C * sizeof(float));
    float *qkv = lrsa_malloc((size_t)T * row * sizeof(float));
    float *att = lrsa_malloc((size_t)T * Hq * D * sizeof(float));
    int32_t *pos = lrsa_malloc((size_t)T * sizeof(int32_t));
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)(c->seen + i);
    double t0 = cpu_now(), t1;
#define LAP(op)                                                                                    \
    do {                                                                                           \
        t1 = cpu_now();                                                                            \
        t[op] += t1 - t0;                                                                          \
        t0 = t1;                                                                                   \
    } while (0)
    lrsa_model_embed(m, ids, T, x);
    lrsa_block_env env;
    lrsa_model_cpu_env_init(m, &env, T);
    LAP(OP_EMBED);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        lrsa_block_layer_qkv(m, &env, l, x, pos, T, qkv);
        LAP(OP_QKV);
        lrsa_kv_cache_append(c, l, qkv + (int64_t)Hq * D, qkv + (int64_t)(Hq + Hkv) * D, row, pos,
                             T);
        LAP(OP_APPEND);
        lrsa_cache_attention(c, l, qkv, row, Hq, T, att, (int64_t)Hq * D);
        LAP(OP_ATTN);
        lrsa_block_layer_out(m, &env, l, x, att, T);
        LAP(OP_OUT);
    }
    lrsa_model_cpu_env_free(&env);
    lrsa_model_final_logits(m, x + (T - 1) * C, 1, logits);
    LAP(OP_HEAD);
#undef LAP
    free(x);
    free(qkv);
    free(att);
    free(pos);
}

/* FNV-1a 64 of the logits' bits: equal hashes = the same numbers, bit for bit. */
static uint64_t logits_fnv(const float *logits, int V) {
    uint64_t hash = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)logits;
    for (size_t i = 0; i < sizeof(float) * (size_t)V; i++) hash = (hash ^ b[i]) * 1099511628211ull;
    return hash;
}

int main(int argc, char **argv) {
    int layers = 2, T = 4096, reps = 1, decode = 0;
    const char *model_dir = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_prefill_ops: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--layers"))
            layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens"))
            T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode"))
            decode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model"))
            model_dir = argv[i + 1];
        else {
            fprintf(stderr, "bench_prefill_ops: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (layers < 1 || T < 1 || reps < 1 || decode < 0) {
        fprintf(stderr, "bench_prefill_ops: --layers, --tokens and --reps must be >= 1, "
                        "--decode >= 0\n");
        return 2;
    }
    lrsa_err e = {{0}};
    lrsa_model m;
    if ((model_dir ? lrsa_model_load(&m, model_dir, &e)
                   : bench_random_smollm2(&m, layers, 32768, &e)) != 0) {
        lrsa_err_print(&e);
        return 1;
    }
    const int V = m.cfg.vocab_size;
    int32_t *ids = lrsa_malloc((size_t)T * sizeof(int32_t));
    lrsa_rng r;
    lrsa_rng_seed(&r, 2);
    for (int i = 0; i < T; i++) ids[i] = (int32_t)lrsa_rng_below(&r, (uint64_t)V);
    lrsa_kv_cache c;
    if (lrsa_kv_cache_for_model(&c, &m, NULL, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    double t[N_OPS] = {0};
    for (int rep = 0; rep < reps; rep++) {
        lrsa_kv_cache_reset(&c);
        forward_timed(&m, &c, ids, T, logits, t);
    }
    const uint64_t prefill_hash = logits_fnv(logits, V);
    double td[N_OPS] = {0}; /* greedy decode steps after the last prefill */
    for (int s = 0; s < decode; s++) {
        int32_t tok = lrsa_argmax(logits, V);
        forward_timed(&m, &c, &tok, 1, logits, td);
    }
    const int L = m.cfg.num_hidden_layers;
    double total = 0.0;
    for (int op = 0; op < N_OPS; op++) total += t[op];
    printf("%s, %d layers; full-cache prefill of %d tokens, %d threads; CPU seconds per prefill "
           "(mean of %d)\n",
           model_dir ? model_dir : "random SmolLM2-135M shape", L, T, lrsa_cpu_threads(), reps);
    printf("%-46s %10s %10s %7s\n", "step", "CPU s", "per layer", "share");
    for (int op = 0; op < N_OPS; op++) {
        int per_layer = op != OP_EMBED && op != OP_HEAD;
        printf("%-46s %10.3f %10.4f %6.1f%%\n", OP_NAMES[op], t[op] / reps,
               per_layer ? t[op] / reps / L : 0.0, 100.0 * t[op] / total);
    }
    printf("%-46s %10.3f\n", "total", total / reps);
    printf("result prefill_ops T %d layers %d cpu_seconds %.6f attention %.6f logits_fnv %016llx\n",
           T, L, total / reps, t[OP_ATTN] / reps, (unsigned long long)prefill_hash);
    if (decode > 0) {
        double dt = 0.0;
        for (int op = 0; op < N_OPS; op++) dt += td[op];
        printf("\n%d decode steps after the prefill (context %d): CPU ms per token\n", decode, T);
        for (int op = 0; op < N_OPS; op++)
            printf("%-46s %10.3f %6.1f%%\n", OP_NAMES[op], 1e3 * td[op] / decode,
                   100.0 * td[op] / dt);
        printf("%-46s %10.3f\n", "total", 1e3 * dt / decode);
        printf("result decode_ops context %d layers %d cpu_seconds %.6f attention %.6f "
               "logits_fnv %016llx\n",
               T, L, dt / decode, td[OP_ATTN] / decode, (unsigned long long)logits_fnv(logits, V));
    }
    free(logits);
    free(ids);
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
    return 0;
}
