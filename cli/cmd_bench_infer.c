/* `lrsa bench --mode prefill|decode` (lrsa_cmd_bench hands these modes over): inference speed
 * through the full KV cache, the path `lrsa eval` and `lrsa generate` take. prefill: one forward of
 * T tokens that keeps only the last position's logits; decode: after such a prefill, greedy steps
 * of one token each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "eval/run/generate.h"
#include "eval/run/prefill.h"
#include "kernels/cpu/cpu_threads.h"
#include "cli/cmd_util.h"
#include "cli/commands.h"

static const char *BENCH_INFER_HELP =
    "usage: lrsa bench --mode prefill|decode --model DIR [--T 1024] [--steps 3] [--new 32]\n"
    "                  [--ids FILE]\n"
    "prefill: times one forward of T prompt tokens through a full KV cache, last logits only\n"
    "(mean of --steps runs after one warm-up). decode: prefills T tokens, then times --new\n"
    "greedy steps (mean seconds per token). --ids: token ids (whitespace-separated, repeated\n"
    "to T); default random ids. Threads: OPENBLAS_NUM_THREADS.\n";

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

static int run(int argc, char **argv, lrsa_err *e) {
    const char *model_dir = NULL, *mode = NULL, *ids_path = NULL;
    int T = 1024, steps = 3, n_new = 32;
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
        else if (!strcmp(a, "--T"))
            T = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--new"))
            n_new = atoi(v);
        else
            return lrsa_errorf(e, "unknown flag \"%s\"; see `lrsa bench --help`", a);
    }
    if (!model_dir) return lrsa_errorf(e, "--mode %s needs --model DIR", mode ? mode : "?");
    if (T < 1 || steps < 1 || n_new < 1)
        return lrsa_errorf(e, "--T, --steps and --new must be >= 1");
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
        printf("result prefill T %d seconds %.6f cpu_seconds %.6f\n", T, sum / steps, cpu / steps);
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
        printf("result decode context %d seconds %.6f cpu_seconds %.6f\n", T, per, cpu_per);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        printf("peak resident memory %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
    free(logits);
    free(ids);
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
    return 0;
}

int lrsa_cmd_bench_infer(int argc, char **argv) {
    return lrsa_cmd_main(argc, argv, BENCH_INFER_HELP, run);
}
