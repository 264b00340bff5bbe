/* `lrsa eval --device cuda` (eval/run/eval_gpu.h) against the CPU evaluator on the same samples:
 * three synthetic passkey samples (the fixture SmolLM tokenizer) and a tiny head_dim-64 model,
 * under the full cache, LagKV chunked and one-shot (query-aware) and LagKV chunked query-agnostic
 * (the frozen GPU cache), with the answer NLL and the greedy answer in one run, as `lrsa eval
 * --metrics nll,match` does.
 *
 * Part A, the records of lrsa_eval_dataset on each device: same samples, answer token counts and
 * kept fractions (the cache structure does not depend on the arithmetic), and the per-token answer
 * NLL within NLL_TOL. Why NLL_TOL = 5e-2 nats: the GPU keeps weights, activations and K/V rows in
 * bf16, so its logits differ from the CPU's fp32 ones by up to 3e-2 of their norm
 * (test_gpu_kv_cache: about 20 bf16 roundings of 2^-9 on a path to a logit); a token's NLL is
 * logsumexp(logits) minus its logit, so it moves by at most twice the largest logit error, and this
 * model's logits are O(1) (norm about 1 per token of a 1359-entry vector: the largest entry error
 * measured in part B is printed); 5e-2 nats is 0.7% of the NLL of about 7.2 (ln 1359).
 *
 * Part B, the greedy answers: a bf16 near-tie may make the GPU pick another token than the CPU, so
 * texts need not be equal; what must hold is that every token the GPU picked is the CPU's argmax
 * up to the logit error measured at that step. Both devices are teacher-forced with the GPU's
 * answer: at each step the GPU's logits are within 3e-2 (norm-relative) of the CPU's, the GPU's
 * token is the argmax of its own logits, and the CPU's argmax beats it by at most twice the
 * largest logit error of the step. When no step of a sample had a CPU top-2 gap within that error
 * (no near-tie), the CPU must have made the same choices, so part A's predictions must be equal.
 *
 * And the refusals: a press the GPU cache does not run (SnapKV) fails naming --device cpu. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "base/fileio.h"
#include "data/chat.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "eval/press/press.h"
#include "eval/run/eval_dataset.h"
#include "eval/run/eval_gpu.h"
#include "eval/run/generate.h"
#include "eval/run/grid.h"
#include "gpu_tiny_model.h"
#include "test_util.h"

enum { N_SAMPLES = 3, V = 1359 };
static const double NLL_TOL = 5e-2, LOGIT_TOL = 3e-2;
static int failures = 0;

static void expect(int ok, const char *what, double v, double tol) {
    printf("%-4s %s: %.3g (tol %.3g)\n", ok ? "ok" : "FAIL", what, v, tol);
    failures += !ok;
}

typedef struct ctx {
    lrsa_model m;
    lrsa_dataset d;
    lrsa_tokenizer *tok;
    int32_t stop[16];
    int n_stop;
} ctx;

static void records(ctx *x, const lrsa_press_config *press, int cuda, lrsa_sample_records *r) {
    lrsa_eval_options o = {0};
    o.n_samples = N_SAMPLES;
    o.want_nll = o.want_match = 1;
    o.tok = x->tok;
    o.stop_ids = x->stop;
    o.n_stop = x->n_stop;
    o.records = r;
    o.batch = 2; /* the GPU runs a batch's samples one after another */
    o.device_cuda = cuda;
    lrsa_eval_result res;
    lrsa_err e = {{0}};
    if (lrsa_eval_dataset(&x->m, &x->d, press, &o, &res, &e) != 0) {
        fprintf(stderr, "eval (%s): %s\n", cuda ? "cuda" : "cpu", e.msg);
        exit(1);
    }
}

static int32_t argmax(const float *x) {
    return lrsa_argmax(x, V);
}

/* Part B for one sample: the GPU's greedy answer, then both devices teacher-forced with it.
 * Returns 1 when some step was a near-tie (the CPU's top two within the step's error). */
static int greedy_check(ctx *x, const lrsa_press_config *press, int64_t i, const char *name) {
    const lrsa_press_spec *s = &press->spec;
    const lrsa_lagkv_params *p = s->method == LRSA_PRESS_LAGKV ? &s->lagkv : NULL;
    const int32_t *ids = lrsa_dataset_ids(&x->d, i);
    const int64_t pl = lrsa_dataset_prompt_len(&x->d, i), len = lrsa_dataset_len(&x->d, i);
    const int64_t split =
        press->protocol == LRSA_PROTOCOL_AGNOSTIC ? lrsa_press_question_start(x->tok, ids, pl) : pl;
    lrsa_gpu_sample g = {0};
    g.ids = ids;
    g.mask = lrsa_dataset_mask(&x->d, i);
    g.len = len;
    g.prompt_len = pl;
    g.split = split;
    g.want_match = 1;
    g.gen.max_new = lrsa_eval_max_new(0, &x->d, i);
    g.gen.stop_ids = x->stop;
    g.gen.n_stop = x->n_stop;
    int64_t mt = 0, mc = 0, mf = 0;
    lrsa_gpu_sample_plan(&g, s, press->protocol, &mt, &mc, &mf);
    lrsa_err e = {{0}};
    lrsa_kv_cache_gpu *gc = lrsa_kv_cache_gpu_new(&x->m, p, mt, mc, mf, &e);
    if (!gc || lrsa_gpu_sample_run(&x->m, gc, s, press->protocol, &g, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    lrsa_kv_cache cc;
    if (lrsa_press_cache_init(&cc, &x->m, s, &e) != 0) exit(1);
    float *lc = malloc(sizeof(float) * V), *lg = malloc(sizeof(float) * V);
    lrsa_kv_cache_gpu_reset(gc);
    if (lrsa_prefill(&x->m, &cc, ids, split, s->prefill, lc, 0, &e) ||
        lrsa_kv_cache_gpu_prefill(gc, ids, split, s->prefill, lg, 0, &e))
        exit(1);
    if (split < pl) {
        lrsa_press_freeze(&cc);
        lrsa_kv_cache_gpu_freeze(gc);
        lrsa_cached_forward(&x->m, &cc, ids + split, pl - split, lc, 0);
        lrsa_kv_cache_gpu_forward(gc, ids + split, pl - split, lg, 0);
    }
    double worst_rel = 0, worst_abs = 0, worst_gap = 0;
    int near_tie = 0, consistent = 1, explained = 1;
    const int64_t steps = g.answer.n + (g.answer.stopped ? 1 : 0);
    for (int64_t t = 0; t < steps; t++) {
        double rel = tu_rel_err(lg, lc, V), mx = 0;
        for (int k = 0; k < V; k++) mx = fmax(mx, fabs((double)lg[k] - lc[k]));
        worst_rel = fmax(worst_rel, rel);
        worst_abs = fmax(worst_abs, mx);
        const int32_t pick = argmax(lg); /* the GPU's choice (a stop id at the last step) */
        if (t < g.answer.n) consistent &= pick == g.answer.ids[t];
        const int32_t best = argmax(lc);
        float second = -INFINITY;
        for (int k = 0; k < V; k++)
            if (k != best && lc[k] > second) second = lc[k];
        const double gap = (double)lc[best] - lc[pick];
        worst_gap = fmax(worst_gap, gap);
        explained &= gap <= 2 * mx;
        near_tie |= (double)lc[best] - second <= 2 * mx;
        if (t < g.answer.n) {
            int32_t id = g.answer.ids[t];
            lrsa_cached_forward(&x->m, &cc, &id, 1, lc, 0);
            lrsa_kv_cache_gpu_forward(gc, &id, 1, lg, 0);
        }
    }
    char what[200];
    snprintf(what, sizeof what,
             "%s sample %lld: greedy logits rel err over %lld steps (largest entry error %.2e)",
             name, (long long)i, (long long)steps, worst_abs);
    expect(worst_rel <= LOGIT_TOL, what, worst_rel, LOGIT_TOL);
    snprintf(what, sizeof what, "%s sample %lld: GPU tokens are its logits' argmax", name,
             (long long)i);
    expect(consistent, what, consistent, 1);
    snprintf(what, sizeof what,
             "%s sample %lld: CPU argmax beats the GPU's token by at most 2x the step's error",
             name, (long long)i);
    expect(explained, what, worst_gap, 2 * worst_abs);
    free(lc);
    free(lg);
    free(g.answer.ids);
    lrsa_kv_cache_free(&cc);
    lrsa_kv_cache_gpu_free(gc);
    return near_tie;
}

static void compare(ctx *x, const lrsa_press_config *press, const char *name) {
    lrsa_sample_records rc = {0}, rg = {0};
    records(x, press, 0, &rc);
    records(x, press, 1, &rg);
    int same = rc.n == N_SAMPLES && rg.n == N_SAMPLES;
    char what[200];
    snprintf(what, sizeof what, "%s: %d records on each device", name, N_SAMPLES);
    expect(same, what, (double)rg.n, N_SAMPLES);
    double worst = 0;
    int structure = 1;
    for (int64_t i = 0; i < rc.n && i < rg.n; i++) {
        const lrsa_sample_record *a = &rc.v[i], *b = &rg.v[i];
        structure &= a->index == b->index && a->answer_tokens == b->answer_tokens &&
                     a->answer_tokens > 0 && a->kept_fraction == b->kept_fraction &&
                     a->has_needle_kept == b->has_needle_kept && b->has_answer && b->max_new > 0;
        worst = fmax(worst, fabs(a->nll_sum - b->nll_sum) / (double)a->answer_tokens);
        printf("     %s sample %lld: NLL/token cpu %.5f gpu %.5f, kept %.4f, needle kept cpu %.3f "
               "gpu %.3f, prediction cpu '%s' gpu '%s'\n",
               name, (long long)a->index, a->nll_sum / a->answer_tokens,
               b->nll_sum / b->answer_tokens, b->kept_fraction, a->needle_kept, b->needle_kept,
               a->prediction, b->prediction);
        if (greedy_check(x, press, a->index, name) == 0) {
            snprintf(what, sizeof what, "%s sample %lld: no near-tie, so equal predictions", name,
                     (long long)a->index);
            int eq = !strcmp(a->prediction, b->prediction);
            expect(eq, what, eq, 1);
        }
    }
    snprintf(what, sizeof what, "%s: samples, answer tokens and kept fractions equal", name);
    expect(structure, what, structure, 1);
    snprintf(what, sizeof what, "%s: answer NLL per token, |gpu - cpu| (nats)", name);
    expect(worst <= NLL_TOL, what, worst, NLL_TOL);
    lrsa_sample_records_free(&rc);
    lrsa_sample_records_free(&rg);
}

/* The rows of a grid's results.jsonl (a cJSON array, caller deletes). */
static cJSON *grid_rows(const char *run_dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/results.jsonl", run_dir);
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(path, NULL, &e);
    if (!text) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    cJSON *rows = cJSON_CreateArray();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        cJSON_AddItemToArray(rows, cJSON_Parse(line));
    free(text);
    return rows;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The grid with device: cpu and device: cuda (none and LagKV, both protocols): the same cells,
 * each sample's answer tokens and kept fraction equal, its NLL per token within NLL_TOL. */
static void grid(const char *dir, const char *model_dir, const char *data) {
    char cfg[1200], text[4096];
    snprintf(cfg, sizeof cfg, "%s/grid.yaml", dir);
    int n = snprintf(text, sizeof text,
                     "run_dir: %s/grid-cpu\n"
                     "models: [{name: tiny, path: %s}]\n"
                     "methods: [none, {name: lagkv, sink: 4, lag: 16}]\n"
                     "budgets: {keep: [0.25]}\n"
                     "tasks: [{file: %s, n: 2, name: passkey}]\n"
                     "protocols: [query-aware, query-agnostic]\n"
                     "batch: 2\n"
                     "device: cpu\n",
                     dir, model_dir, data);
    lrsa_err e = {{0}};
    if (lrsa_write_file_atomic(cfg, text, (size_t)n, &e)) exit(1);
    char run_cuda[1200], dev[32] = "device=cuda", quiet[] = "--quiet", eval[] = "eval";
    snprintf(run_cuda, sizeof run_cuda, "run_dir=%s/grid-cuda", dir);
    char *argv_cpu[] = {eval, cfg, quiet};
    char *argv_cuda[] = {eval, cfg, run_cuda, dev, quiet};
    int ok = lrsa_grid_main(3, argv_cpu) == 0 && lrsa_grid_main(5, argv_cuda) == 0;
    expect(ok, "grid runs with device: cpu and device=cuda", ok, 1);
    if (!ok) return;
    char cpu_dir[1200], cuda_dir[1200];
    snprintf(cpu_dir, sizeof cpu_dir, "%s/grid-cpu", dir);
    snprintf(cuda_dir, sizeof cuda_dir, "%s/grid-cuda", dir);
    cJSON *rc = grid_rows(cpu_dir), *rg = grid_rows(cuda_dir);
    int same = cJSON_GetArraySize(rc) == 4 && cJSON_GetArraySize(rg) == 4;
    double worst = 0;
    for (int i = 0; i < cJSON_GetArraySize(rc) && i < cJSON_GetArraySize(rg); i++) {
        const cJSON *a = cJSON_GetArrayItem(rc, i), *b = cJSON_GetArrayItem(rg, i);
        same &= !strcmp(cJSON_GetObjectItem(a, "key")->valuestring,
                        cJSON_GetObjectItem(b, "key")->valuestring);
        same &= !strcmp(cJSON_GetObjectItem(b, "device")->valuestring, "cuda");
        const cJSON *sa = cJSON_GetObjectItem(a, "samples"),
                    *sb = cJSON_GetObjectItem(b, "samples");
        same &= cJSON_GetArraySize(sa) == 2 && cJSON_GetArraySize(sb) == 2;
        for (int k = 0; k < cJSON_GetArraySize(sa) && k < cJSON_GetArraySize(sb); k++) {
            const cJSON *x = cJSON_GetArrayItem(sa, k), *y = cJSON_GetArrayItem(sb, k);
            const double tok = num(x, "answer_tokens");
            same &= tok > 0 && tok == num(y, "answer_tokens") &&
                    num(x, "kept_fraction") == num(y, "kept_fraction");
            const double d = fabs(num(x, "answer_nll_sum") - num(y, "answer_nll_sum")) / tok;
            worst = !(d <= worst) ? d : worst;
        }
        printf("     grid %s: kept %.4f / %.4f, answer NLL %.5f / %.5f (cpu / cuda)\n",
               cJSON_GetObjectItem(a, "key")->valuestring, num(a, "kept_fraction"),
               num(b, "kept_fraction"), num(a, "answer_nll"), num(b, "answer_nll"));
    }
    expect(same, "grid: 4 cells, same keys, samples, answer tokens and kept fractions", same, 1);
    expect(worst <= NLL_TOL, "grid: answer NLL per token, |cuda - cpu| (nats)", worst, NLL_TOL);
    cJSON_Delete(rc);
    cJSON_Delete(rg);
}

static void refusal(ctx *x) {
    lrsa_press_config press = lrsa_press_config_full(LRSA_PREFILL_CHUNKED);
    lrsa_press_spec_defaults(&press.spec, LRSA_PRESS_SNAPKV);
    lrsa_eval_options o = {0};
    o.want_nll = 1;
    o.n_samples = 1;
    o.device_cuda = 1;
    lrsa_eval_result r;
    lrsa_err e = {{0}};
    int rc = lrsa_eval_dataset(&x->m, &x->d, &press, &o, &r, &e);
    int ok = rc != 0 && strstr(e.msg, "--device cpu") && strstr(e.msg, "snapkv");
    printf("     refusal: %s\n", e.msg);
    expect(ok, "SnapKV with the GPU cache refused, naming --device cpu", ok, 1);
}

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    char dir[1024], model_dir[1100], data[1100], cmd[4096];
    tu_tmpdir(dir, sizeof dir, "gpu_eval");
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(data, sizeof data, "%s/passkey.h5", dir);
    ctx x;
    gtm_create_vocab(&x.m, 1, 0, 23, 0.1f, V);
    lrsa_err e = {{0}};
    if (lrsa_model_save(&x.m, model_dir, LRSA_ST_F32, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    size_t n = 0;
    char *tj = lrsa_read_file(LRSA_TEST_DATA "/tokenizer/smollm/tokenizer.json", &n, &e);
    snprintf(cmd, sizeof cmd, "%s/tokenizer.json", model_dir);
    if (!tj || lrsa_write_file_atomic(cmd, tj, n, &e)) return 1;
    free(tj);
    snprintf(cmd, sizeof cmd,
             "LRSA_CACHE=%s/nocache %s prepare --model %s --synthetic passkey --n %d --length 256 "
             "--seed 5 --out %s 2>&1",
             dir, LRSA_BINARY, model_dir, N_SAMPLES, data);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) {
        fprintf(stderr, "prepare: %s\n", out ? out : "");
        return 1;
    }
    free(out);
    if (lrsa_dataset_open(&x.d, data, &e) || !(x.tok = lrsa_tokenizer_load_dir(model_dir, &e))) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    x.n_stop = lrsa_chat_stop_ids(x.tok, lrsa_chat_detect(x.tok), x.stop, 16);

    lrsa_lagkv_params lag = {4, 16, 0.25f, 1.0f};
    lrsa_press_config full = lrsa_press_config_full(LRSA_PREFILL_CHUNKED);
    compare(&x, &full, "full cache");
    lrsa_press_config chunked = lrsa_press_config_lagkv(lag, LRSA_PREFILL_CHUNKED);
    compare(&x, &chunked, "LagKV chunked");
    lrsa_press_config oneshot = lrsa_press_config_lagkv(lag, LRSA_PREFILL_ONESHOT);
    compare(&x, &oneshot, "LagKV one-shot");
    lrsa_press_config agnostic = chunked;
    agnostic.protocol = LRSA_PROTOCOL_AGNOSTIC;
    compare(&x, &agnostic, "LagKV chunked, query-agnostic");
    grid(dir, model_dir, data);
    refusal(&x);

    lrsa_tokenizer_free(x.tok);
    lrsa_dataset_close(&x.d);
    lrsa_model_free(&x.m);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
