/* `lrsa eval --device cuda` (eval/run/eval_gpu.h) against the CPU evaluator on the same samples:
 * two short chat samples (context, a blank line, the question; a 3-4 token answer; the fixture
 * SmolLM tokenizer) and a tiny head_dim-64 model, under the full cache, LagKV (sink 4, lag 16,
 * keep 0.25: events in the prefill and while answering) chunked and one-shot (query-aware) and
 * LagKV chunked query-agnostic (the frozen GPU cache), with the answer NLL and a 6-token greedy
 * answer in one run, as `lrsa eval --metrics nll,match` does; then the eval grid with device: cpu
 * and device: cuda. Kept short: emulation is slow (about 20 s of CPU).
 *
 * Part A, the records of lrsa_eval_dataset on each device: same samples, answer token counts and
 * kept fractions (the cache structure does not depend on the arithmetic), and the per-token answer
 * NLL within NLL_TOL. Why NLL_TOL = 5e-2 nats: the GPU keeps weights, activations and K/V rows in
 * bf16 (rounding 2^-9 relative), so its logits are within 3e-2 of the CPU's fp32 ones by norm
 * (test_gpu_kv_cache's bound; about 20 roundings lie on a path to a logit), with largest entry
 * errors of 4e-2 to 8e-2 here (part B prints them). A token's NLL, logsumexp minus the target's
 * logit, moves by at most twice the largest entry error in the worst case, but the errors of the
 * entries largely cancel between the two terms: 1.6e-3 to 6.5e-3 nats per token were measured in
 * emulation (2026-12-06). 5e-2 is about 8x that and 0.6% of the NLL (about 8 nats), while a real
 * difference in what is cached shows far above it (LagKV with lag 8 here, where the GPU's
 * selections on its own keys flipped rows, moved the NLL by up to 0.2 nats).
 *
 * LagKV selects on the GPU's bf16 keys, so a near-tie may keep another row than the CPU: the kept
 * positions must agree on at least 97% of the rows (test_gpu_kv_cache's floor), and a sample
 * whose caches differ at all is left out of the NLL, logits and prediction comparisons (each
 * configuration must compare at least one sample).
 *
 * Part B, the greedy answers: a bf16 near-tie may make the GPU pick another token than the CPU, so
 * texts need not be equal; what must hold is that every token the GPU picked is the CPU's argmax
 * up to the logit error measured at that step. The GPU cache decodes greedily again (its tokens
 * must decode to part A's GPU prediction) while the CPU cache is fed the same tokens: at each
 * step the GPU's logits are within 3e-2 (norm-relative) of the CPU's, and the CPU's argmax beats
 * the GPU's token by at most twice the largest logit error of the step. When no step of a sample
 * had a CPU top-2 gap within that error (no near-tie), the CPU must have made the same choices,
 * so part A's predictions must be equal. Under the query-agnostic protocol, lrsa_generate_gpu
 * (`lrsa generate --device cuda --protocol agnostic`) must decode the same tokens.
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
#include "eval/run/generate_gpu.h"
#include "eval/run/grid.h"
#include "gpu_tiny_model.h"
#include "test_util.h"

enum { N_SAMPLES = 2, V = 1359, MAX_NEW = 6 };
static const double NLL_TOL = 5e-2, LOGIT_TOL = 3e-2, AGREE_MIN = 0.97;
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
    o.max_new = MAX_NEW;
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

/* The share of the CPU cache's kept rows whose original position the GPU cache holds at the same
 * row of the same head (1 when both compressed alike). */
static double same_rows(const ctx *x, lrsa_kv_cache *cc, const lrsa_kv_cache_gpu *gc) {
    int64_t rows = 0, match = 0;
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)(lrsa_kv_cache_gpu_seen(gc) + 1));
    for (int l = 0; l < x->m.cfg.num_hidden_layers; l++)
        for (int g = 0; g < x->m.cfg.num_key_value_heads; g++) {
            const lrsa_kv_head *h = lrsa_kv_cache_head(cc, l, g);
            const int64_t len = lrsa_kv_cache_gpu_head(gc, l, g, pos, NULL);
            rows += h->len > len ? h->len : len;
            for (int64_t r = 0; r < len && r < h->len; r++) match += pos[r] == h->pos[r];
        }
    free(pos);
    return rows ? (double)match / (double)rows : 1.0;
}

/* Part B for one sample: the GPU decodes greedily while the CPU is fed its tokens. Returns 1 when
 * some step was a near-tie (the CPU's top two within the step's error). *agree: the share of kept
 * rows at the same positions on both devices after the prefix or after the answer, the smaller
 * (LagKV's selections; 1 without). */
static int greedy_check(ctx *x, const lrsa_press_config *press, int64_t i, const char *gpu_text,
                        const char *name, double *agree) {
    const lrsa_press_spec *s = &press->spec;
    const lrsa_lagkv_params *p = s->method == LRSA_PRESS_LAGKV ? &s->lagkv : NULL;
    const int32_t *ids = lrsa_dataset_ids(&x->d, i);
    const int64_t pl = lrsa_dataset_prompt_len(&x->d, i);
    const int64_t split =
        press->protocol == LRSA_PROTOCOL_AGNOSTIC ? lrsa_press_question_start(x->tok, ids, pl) : pl;
    lrsa_err e = {{0}};
    lrsa_kv_cache_gpu *gc = lrsa_kv_cache_gpu_new(&x->m, p, pl + MAX_NEW, pl, pl + MAX_NEW, &e);
    lrsa_kv_cache cc;
    if (!gc || lrsa_press_cache_init(&cc, &x->m, s, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    float *lc = malloc(sizeof(float) * V), *lg = malloc(sizeof(float) * V);
    if (lrsa_prefill(&x->m, &cc, ids, split, s->prefill, lc, 0, &e) ||
        lrsa_kv_cache_gpu_prefill(gc, ids, split, s->prefill, lg, 0, &e))
        exit(1);
    *agree = same_rows(x, &cc, gc);
    if (split < pl) {
        lrsa_press_freeze(&cc);
        lrsa_kv_cache_gpu_freeze(gc);
        lrsa_cached_forward(&x->m, &cc, ids + split, pl - split, lc, 0);
        lrsa_kv_cache_gpu_forward(gc, ids + split, pl - split, lg, 0);
    }
    double worst_rel = 0, worst_abs = 0, worst_gap = 0;
    int near_tie = 0, explained = 1, n = 0;
    int32_t out[MAX_NEW];
    for (int t = 0; t < MAX_NEW; t++) {
        double rel = tu_rel_err(lg, lc, V), mx = 0;
        for (int k = 0; k < V; k++) mx = fmax(mx, fabs((double)lg[k] - lc[k]));
        worst_rel = fmax(worst_rel, rel);
        worst_abs = fmax(worst_abs, mx);
        const int32_t pick = lrsa_argmax(lg, V), best = lrsa_argmax(lc, V);
        float second = -INFINITY;
        for (int k = 0; k < V; k++)
            if (k != best && lc[k] > second) second = lc[k];
        const double gap = (double)lc[best] - lc[pick];
        worst_gap = fmax(worst_gap, gap);
        explained &= gap <= 2 * mx;
        near_tie |= (double)lc[best] - second <= 2 * mx;
        int stop = 0;
        for (int k = 0; k < x->n_stop; k++) stop |= pick == x->stop[k];
        if (stop) break;
        out[n++] = pick;
        if (n == MAX_NEW) break; /* no forward for a token nobody samples after */
        lrsa_cached_forward(&x->m, &cc, &pick, 1, lc, 0);
        lrsa_kv_cache_gpu_forward(gc, &pick, 1, lg, 0);
    }
    const double agree_end = same_rows(x, &cc, gc);
    if (split < pl) { /* `lrsa generate --device cuda --protocol agnostic` decodes the same */
        lrsa_gen_options go = {.max_new = MAX_NEW, .stop_ids = x->stop, .n_stop = x->n_stop};
        lrsa_gen_result res = {0};
        char stats[256], gw[200];
        int ok = lrsa_generate_gpu(&x->m, s, ids, pl, split, &go, NULL, NULL, &res, stats,
                                   sizeof stats, &e) == 0 &&
                 res.n == n && (n == 0 || !memcmp(res.ids, out, sizeof(int32_t) * (size_t)n));
        snprintf(gw, sizeof gw, "%s sample %lld: lrsa_generate_gpu (agnostic) gives these tokens",
                 name, (long long)i);
        expect(ok, gw, ok, 1);
        free(res.ids);
    }
    char what[200], *text = lrsa_tokenizer_decode(x->tok, out, n, 1);
    snprintf(what, sizeof what,
             "%s sample %lld: kept rows at the CPU's positions after the prefix (%.4f after the "
             "answer)",
             name, (long long)i, agree_end);
    expect(*agree >= AGREE_MIN, what, *agree, AGREE_MIN);
    snprintf(what, sizeof what, "%s sample %lld: greedy decode again gives the eval's GPU answer",
             name, (long long)i);
    int same = text && !strcmp(text, gpu_text);
    expect(same, what, same, 1);
    snprintf(what, sizeof what,
             "%s sample %lld: greedy logits rel err over %d tokens (largest entry error %.2e)",
             name, (long long)i, n, worst_abs);
    if (agree_end == 1)
        expect(worst_rel <= LOGIT_TOL, what, worst_rel, LOGIT_TOL);
    else /* a row the other device dropped: not a bf16 difference any more */
        printf("     %s: %.3g, not checked: the caches kept different rows\n", what, worst_rel);
    if (agree_end < *agree) *agree = agree_end;
    snprintf(what, sizeof what,
             "%s sample %lld: CPU argmax beats the GPU's token by at most 2x the step's error",
             name, (long long)i);
    expect(explained, what, worst_gap, 2 * worst_abs);
    free(text);
    free(lc);
    free(lg);
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
    int structure = 1, checked_all = 1, checked = 0;
    for (int64_t i = 0; i < rc.n && i < rg.n; i++) {
        const lrsa_sample_record *a = &rc.v[i], *b = &rg.v[i];
        structure &= a->index == b->index && a->answer_tokens == b->answer_tokens &&
                     a->answer_tokens > 0 && a->kept_fraction == b->kept_fraction &&
                     a->has_needle_kept == b->has_needle_kept && b->has_answer && b->max_new > 0;
        double agree = 1;
        const int tie = greedy_check(x, press, a->index, b->prediction, name, &agree);
        if (agree == 1)
            worst = fmax(worst, fabs(a->nll_sum - b->nll_sum) / (double)a->answer_tokens);
        else
            checked_all = 0;
        checked += agree == 1;
        printf("     %s sample %lld: NLL/token cpu %.5f gpu %.5f, kept %.4f, needle kept cpu %.3f "
               "gpu %.3f, prediction cpu '%s' gpu '%s'\n",
               name, (long long)a->index, a->nll_sum / a->answer_tokens,
               b->nll_sum / b->answer_tokens, b->kept_fraction, a->needle_kept, b->needle_kept,
               a->prediction, b->prediction);
        if (!tie && agree == 1) {
            snprintf(what, sizeof what, "%s sample %lld: no near-tie, so equal predictions", name,
                     (long long)a->index);
            int eq = !strcmp(a->prediction, b->prediction);
            expect(eq, what, eq, 1);
        }
    }
    /* LagKV selects on the GPU's own keys: a near-tie may flip a kept row (the 0.97 floor
     * above), and a sample whose caches differ is not compared; at least one must be */
    snprintf(what, sizeof what, "%s: samples whose caches kept the same rows (compared)", name);
    expect(checked >= 1, what, checked, 1);
    snprintf(what, sizeof what, "%s: samples, answer tokens and kept fractions equal", name);
    expect(structure, what, structure, 1);
    snprintf(what, sizeof what, "%s: answer NLL per token, |gpu - cpu| (nats)%s", name,
             checked_all ? "" : " over the samples whose caches kept the same rows");
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
                     "tasks: [{file: %s, n: 2, name: qa, max_new: %d}]\n"
                     "protocols: [query-aware, query-agnostic]\n"
                     "batch: 2\n"
                     "device: cpu\n",
                     dir, model_dir, data, MAX_NEW);
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

/* Two chat samples: user "CONTEXT\n\nQUESTION", assistant ANSWER (masked), with a needle span
 * over the context's first words. */
static int write_samples(const lrsa_tokenizer *tok, const char *path, lrsa_err *e) {
    static const char *ctx_text[N_SAMPLES] = {
        "The pass key is 4821. Remember it, the garden is green and the river runs past the old "
        "mill where the baker sells bread every morning.",
        "Anna keeps the blue key in the kitchen drawer. The weather was cold, so the children "
        "stayed inside and read books by the fire all day."};
    static const char *question[N_SAMPLES] = {"What is the pass key?", "Where is the blue key?"};
    static const char *answer[N_SAMPLES] = {"4821", "In the kitchen drawer."};
    const lrsa_chat_format fmt = lrsa_chat_detect(tok);
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    int rc = 0;
    for (int i = 0; i < N_SAMPLES && rc == 0; i++) {
        char user[512];
        snprintf(user, sizeof user, "%s\n\n%s", ctx_text[i], question[i]);
        lrsa_chat_msg msgs[2] = {{"user", user}, {"assistant", answer[i]}};
        lrsa_ids prompt = {0}, ids = {0};
        lrsa_mask mask = {0};
        rc = lrsa_chat_build(tok, fmt, msgs, 1, 1, &prompt, NULL, e) ||
             lrsa_chat_build(tok, fmt, msgs, 2, 0, &ids, &mask, e) ||
             lrsa_dataset_writer_add(w, ids.v, mask.v, ids.n, prompt.n, answer[i], e) ||
             lrsa_dataset_writer_add_span(w, i, 3, 8, e);
        lrsa_ids_free(&prompt);
        lrsa_ids_free(&ids);
        lrsa_mask_free(&mask);
    }
    lrsa_dataset_meta meta = {.tokenizer_checksum = lrsa_tokenizer_checksum(tok),
                              .chat_template = lrsa_chat_format_name(fmt),
                              .source = "test",
                              .task = "qa"};
    if (rc == 0) rc = lrsa_dataset_writer_commit(w, path, &meta, e);
    lrsa_dataset_writer_free(w);
    return rc;
}

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    char dir[1024], model_dir[1100], data[1100], cmd[1200];
    tu_tmpdir(dir, sizeof dir, "gpu_eval");
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(data, sizeof data, "%s/qa.h5", dir);
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
    if (!(x.tok = lrsa_tokenizer_load_dir(model_dir, &e)) || write_samples(x.tok, data, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    if (lrsa_dataset_open(&x.d, data, &e)) {
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
