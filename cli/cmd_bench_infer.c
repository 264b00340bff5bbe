/* `lrsa bench --mode prefill|decode|attention` (lrsa_cmd_bench hands these modes over): inference
 * speed through the full KV cache, the path `lrsa eval` and `lrsa generate` take. prefill: one
 * forward of T tokens that keeps only the last position's logits; decode: after such a prefill,
 * greedy steps of one token each; attention: the cached attention of one layer alone (the part of
 * a prefill that grows with T squared), so its growth with context can be compared with other
 * attention kernels' (bench/vs_torch.py's attn cases). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "cli/cli_flags.h"
#include "eval/run/generate.h"
#include "eval/run/prefill.h"
#include "kernels/attention/attention_cache.h"
#include "kernels/cpu/cpu_threads.h"
#include "cli/cmd_util.h"
#include "cli/commands.h"

static const char *BENCH_INFER_HELP =
    "usage: lrsa bench --mode prefill|decode|attention --model DIR [--T 1024] [--steps 3]\n"
    "                  [--new 32] [--ids FILE]\n"
    "prefill: times one forward of T prompt tokens through a full KV cache, last logits only\n"
    "(mean of --steps runs after one warm-up). decode: prefills T tokens, then times --new\n"
    "greedy steps (mean seconds per token). attention: times the causal attention of T new\n"
    "positions of one layer alone (the model's query/KV heads and head size from DIR's\n"
    "config.json; random q, k, v; no weights read), the part of a prefill that grows with\n"
    "T squared. --ids: token ids (whitespace-separated, repeated to T); default random ids.\n"
    "Threads: OPENBLAS_NUM_THREADS.\n";

/* T prompt ids: the file's ids repeated, or random ones. */
static int32_t *prompt_ids(const char *path, int T, int vocab, lrsa_err *e) {
    int32_t *ids = lrsa_malloc(sizeof(int32_t) * (size_t)T);
    if (!path) {
        lrsa_rng r;
        lrsa_rng_seed(&r, 3);
        for (int i = 0; i < T; i++) ids[i] = (int32_t)lrsa_rng_below(&r, (uint64_t)vocab);
        return ids;
    }
    int rows, cols;
    int32_t *src = lrsa_read_int_rows(path, &rows, &cols, e);
    if (!src) {
        free(ids);
        return NULL;
    }
    int64_t n = (int64_t)rows * cols;
    for (int i = 0; i < T; i++) ids[i] = src[i % n];
    free(src);
    for (int i = 0; i < T; i++)
        if (ids[i] < 0 || ids[i] >= vocab) {
            lrsa_errorf(e, "%s: token id %d is outside the model's vocabulary [0, %d)", path,
                        ids[i], vocab);
            free(ids);
            return NULL;
        }
    return ids;
}

/* CPU seconds of the whole process (all threads), as `lrsa bench` prints for training. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One prefill of ids into a fresh full cache; returns its seconds, adds its CPU seconds. */
static double prefill_once(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int T,
                           float *logits, double *cpu) {
    lrsa_kv_cache_reset(c);
    double t0 = lrsa_now(), c0 = cpu_seconds();
    lrsa_cached_forward(m, c, ids, T, logits, 0);
    *cpu += cpu_seconds() - c0;
    return lrsa_now() - t0;
}

/* --mode attention: lrsa_attention_cache_forward_cpu (what lrsa_cached_forward runs per layer)
 * on T new positions over their own K/V rows, random values of the model's head shapes. */
static int bench_attention(const char *model_dir, int T, int steps, lrsa_err *e) {
    char path[4096];
    lrsa_path_join(path, sizeof path, model_dir, "config.json");
    lrsa_model_config cfg;
    if (lrsa_config_load(&cfg, path, e)) return -1;
    const int Hq = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, D = cfg.head_dim;
    const int64_t qs = (int64_t)Hq * D, n = (int64_t)T * D;
    float *q = lrsa_alloc_aligned(sizeof(float) * (size_t)(T * qs));
    float *out = lrsa_alloc_aligned(sizeof(float) * (size_t)(T * qs));
    float *kv = lrsa_alloc_aligned(sizeof(float) * (size_t)(2 * Hkv * n));
    lrsa_rng r;
    lrsa_rng_seed(&r, 5);
    for (int64_t i = 0; i < T * qs; i++) q[i] = lrsa_rng_normal(&r);
    for (int64_t i = 0; i < 2 * Hkv * n; i++) kv[i] = lrsa_rng_normal(&r);
    lrsa_attn_kv_rows *rows = lrsa_malloc(sizeof *rows * (size_t)Hkv);
    for (int g = 0; g < Hkv; g++)
        rows[g] = (lrsa_attn_kv_rows){kv + 2 * g * n, kv + (2 * g + 1) * n, T};
    printf("model: %s  mode attention  T %d  heads %d (KV %d)  head_dim %d  threads %d\n",
           model_dir, T, Hq, Hkv, D, lrsa_cpu_threads());
    lrsa_attention_cache_forward_cpu(out, qs, q, qs, Hq, T, rows, Hkv, D); /* warm-up */
    double t0 = lrsa_now(), c0 = cpu_seconds();
    for (int s = 0; s < steps; s++)
        lrsa_attention_cache_forward_cpu(out, qs, q, qs, Hq, T, rows, Hkv, D);
    const double sec = (lrsa_now() - t0) / steps, cpu = (cpu_seconds() - c0) / steps;
    /* score pairs of the causal triangle, two products of D multiply-adds each */
    const double flop = 4.0 * D * Hq * ((double)T * (T + 1) / 2);
    printf("causal attention of %d positions, one layer: %.4f s (mean of %d after one warm-up); "
           "%.2f GFLOP/s in its products; CPU time %.4f s (all threads)\n",
           T, sec, steps, flop / sec / 1e9, cpu);
    printf("result attention T %d seconds %.6f cpu_seconds %.6f peak_rss_mib %.1f\n", T, sec, cpu,
           lrsa_peak_rss_mib());
    free(rows);
    free(kv);
    free(out);
    free(q);
    return 0;
}

static int run(int argc, char **argv, lrsa_err *e) {
    const char *model_dir = NULL, *mode = NULL, *ids_path = NULL;
    int T = 1024, steps = 3, n_new = 32;
    long long n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return lrsa_errorf(e, "unknown flag or missing value: %s", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--ids"))
            ids_path = v;
        else if (!strcmp(a, "--T") || !strcmp(a, "--steps") || !strcmp(a, "--new")) {
            if (lrsa_flag_int(a, v, 1, a[2] == 'T' ? 1 << 24 : 1 << 20, &n, e)) return -1;
            *(a[2] == 'T' ? &T : a[2] == 's' ? &steps : &n_new) = (int)n;
        } else
            return lrsa_errorf(e, "unknown flag \"%s\"; see `lrsa bench --help`", a);
    }
    if (!model_dir) return lrsa_errorf(e, "--mode %s needs --model DIR", mode ? mode : "?");
    if (!strcmp(mode, "attention")) return bench_attention(model_dir, T, steps, e);
    lrsa_model m;
    if (lrsa_model_load(&m, model_dir, e)) return -1;
    const int V = m.cfg.vocab_size;
    int32_t *ids = prompt_ids(ids_path, T, V, e);
    if (!ids) {
        lrsa_model_free(&m);
        return -1;
    }
    lrsa_kv_cache c;
    if (lrsa_kv_cache_for_model(&c, &m, NULL, e)) {
        free(ids);
        lrsa_model_free(&m);
        return -1;
    }
    float *logits = lrsa_malloc(sizeof(float) * (size_t)V);
    const char *wait = getenv("OMP_WAIT_POLICY"), *idle = getenv("OPENBLAS_THREAD_TIMEOUT");
    printf("model: %s  mode %s  T %d  threads %d  OMP_WAIT_POLICY %s  OPENBLAS_THREAD_TIMEOUT %s\n",
           model_dir, mode, T, lrsa_cpu_threads(), wait ? wait : "(unset)",
           idle ? idle : "(unset)");
    if (!strcmp(mode, "prefill")) {
        double cpu = 0.0, warm = prefill_once(&m, &c, ids, T, logits, &cpu), sum = 0.0;
        cpu = 0.0;
        for (int s = 0; s < steps; s++) sum += prefill_once(&m, &c, ids, T, logits, &cpu);
        printf("first prefill %.3f s; mean of %d prefills %.4f s; %.1f tokens/s; CPU time %.3f s "
               "per prefill (all threads)\n",
               warm, steps, sum / steps, T / (sum / steps), cpu / steps);
        printf("result prefill T %d seconds %.6f cpu_seconds %.6f peak_rss_mib %.1f\n", T,
               sum / steps, cpu / steps, lrsa_peak_rss_mib());
    } else {
        double cpu = 0.0, pre = prefill_once(&m, &c, ids, T, logits, &cpu);
        int32_t tok = lrsa_argmax(logits, V);
        lrsa_cached_forward(&m, &c, &tok, 1, logits, 0); /* warm-up step */
        tok = lrsa_argmax(logits, V);
        double t0 = lrsa_now(), c0 = cpu_seconds();
        for (int s = 0; s < n_new; s++) {
            lrsa_cached_forward(&m, &c, &tok, 1, logits, 0);
            tok = lrsa_argmax(logits, V);
        }
        double per = (lrsa_now() - t0) / n_new, cpu_per = (cpu_seconds() - c0) / n_new;
        printf("prefill of %d tokens %.3f s; %d greedy steps: %.5f s per token (%.2f tokens/s); "
               "CPU time %.5f s per token (all threads)\n",
               T, pre, n_new, per, 1.0 / per, cpu_per);
        printf("result decode context %d seconds %.6f cpu_seconds %.6f peak_rss_mib %.1f\n", T, per,
               cpu_per, lrsa_peak_rss_mib());
    }
    printf("peak resident memory %.1f MiB\n", lrsa_peak_rss_mib());
    free(logits);
    free(ids);
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
    return 0;
}

int lrsa_cmd_bench_infer(int argc, char **argv) {
    return lrsa_cmd_main(argc, argv, BENCH_INFER_HELP, run);
}
