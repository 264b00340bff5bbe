/* KVzip on the real SmolLM2-135M-Instruct (skipped, 77, without models/smollm2-135m-instruct):
 * a ~600-token context as an open user turn, scored through the press core
 * (lrsa_press_prefill_and_score) and compressed to half with KVzip's global selector. Checks:
 *  - the reconstruction passes leave exactly the context rows, and every score is a
 *    probability or +inf (sink);
 *  - the cache KVzip keeps reconstructs the context (teacher-forced NLL of "repeat the
 *    context" + the context) far better than StreamingLLM's at the same budget, and no better
 *    than the full cache;
 * and prints KVzip's overhead as a multiple of the prefill time. CompressKV with the committed
 * configs/compresskv file: one index set per layer, the window kept, the file's layer budgets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "data/haystack.h"
#include "eval/run/prefill.h"
#include "eval/press/press.h"
#include "eval/press/press_internal.h"
#include "eval/press/press_kvzip.h"
#include "test_util.h"

static char g_model[4096];

/* Mean NLL of the context tokens when `prompt` + ctx is fed on top of the cache. */
static double reconstruction_nll(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_ids *prompt,
                                 const int32_t *ctx, int64_t n) {
    const int V = m->cfg.vocab_size;
    const int64_t N = prompt->n + n, B = 128;
    int32_t *x = malloc(N * sizeof(int32_t));
    memcpy(x, prompt->v, prompt->n * sizeof(int32_t));
    memcpy(x + prompt->n, ctx, n * sizeof(int32_t));
    float *logits = malloc(B * V * sizeof(float));
    double nll = 0.0;
    for (int64_t i0 = 0; i0 < N; i0 += B) {
        const int64_t nb = N - i0 < B ? N - i0 : B;
        lrsa_cached_forward(m, c, x + i0, nb, logits, 1);
        for (int64_t r = 0; r < nb; r++) {
            const int64_t i = i0 + r; /* predicts x[i + 1] */
            if (i + 1 < prompt->n || i + 1 >= N) continue;
            const float *l = logits + r * V;
            float mx = l[0];
            for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
            double s = 0.0;
            for (int v = 0; v < V; v++) s += exp((double)(l[v] - mx));
            nll += log(s) + mx - l[x[i + 1]];
        }
    }
    free(x);
    free(logits);
    return nll / n;
}

/* ~530 tokens of haystack text as an open user turn: the chat up to the end of the user's
 * text. Returns its length in ids. */
static int64_t build_context(const lrsa_tokenizer *tok, lrsa_chat_format fmt, lrsa_ids *ids) {
    lrsa_err e = {{0}};
    lrsa_haystack h;
    assert_int_equal(lrsa_haystack_load(&h, "/nonexistent", &e), 0); /* the built-in filler */
    char *text = calloc(1, 1 << 16);
    lrsa_ids probe = {0};
    for (int64_t j = 0; j < h.n && probe.n < 600; j++) {
        strcat(text, j ? " " : "");
        strcat(text, h.sents[(j * 7) % h.n]);
        probe.n = 0;
        assert_int_equal(lrsa_tokenizer_encode(tok, text, strlen(text), &probe, &e), 0);
    }
    lrsa_ids_free(&probe);
    lrsa_chat_msg msg = {"user", text};
    assert_int_equal(lrsa_chat_build(tok, fmt, &msg, 1, 0, ids, NULL, &e), 0);
    int32_t stop[4];
    assert_true(lrsa_chat_stop_ids(tok, fmt, stop, 4) > 0);
    int64_t n = ids->n;
    while (n > 0 && ids->v[n - 1] != stop[0]) n--;
    n--; /* drop <|im_end|> and what follows */
    assert_true(n > 500);
    free(text);
    lrsa_haystack_free(&h);
    return n;
}

static void test_kvzip_real(void **state) {
    (void)state;
    lrsa_err e = {{0}};
    lrsa_model m;
    if (lrsa_model_load(&m, g_model, &e)) fail_msg("%s", e.msg);
    lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(g_model, &e);
    assert_non_null(tok);
    const lrsa_chat_format fmt = lrsa_chat_detect(tok);
    lrsa_ids ids = {0};
    const int64_t n = build_context(tok, fmt, &ids);
    lrsa_ids prompt = {0};
    assert_int_equal(lrsa_kvzip_prompt_ids(tok, fmt, &prompt, &e), 0);

    double nll[3];
    const lrsa_press_method methods[3] = {LRSA_PRESS_NONE, LRSA_PRESS_KVZIP, LRSA_PRESS_STREAMING};
    for (int k = 0; k < 3; k++) {
        lrsa_press_spec s;
        lrsa_press_spec_defaults(&s, methods[k]);
        s.keep = methods[k] == LRSA_PRESS_NONE ? 1.0 : 0.5;
        s.kvzip_chunk = 256; /* several chunks */
        s.kvzip_prompt_ids = prompt.v;
        s.n_kvzip_prompt = prompt.n;
        if (lrsa_press_spec_check(&s, &e)) fail_msg("%s", e.msg);
        lrsa_kv_cache c;
        assert_int_equal(lrsa_press_cache_init(&c, &m, &s, &e), 0);
        lrsa_press_scores sc;
        memset(&sc, 0, sizeof sc);
        const double t0 = lrsa_now();
        if (lrsa_press_prefill_and_score(&m, &c, &s, ids.v, n, NULL, 0, &sc, &e))
            fail_msg("%s", e.msg);
        const double t = lrsa_now() - t0;
        for (int64_t i = 0; i < (int64_t)c.n_layers * c.n_kv_heads; i++)
            assert_int_equal(c.heads[i].len, n);
        assert_int_equal(c.seen, n);
        if (methods[k] == LRSA_PRESS_KVZIP) {
            for (int64_t i = 0; i < (int64_t)c.n_layers * c.n_kv_heads; i++)
                for (int64_t r = 0; r < n; r++) {
                    const float v = sc.score[i][r];
                    assert_true(r < s.sink ? isinf(v) : (v >= 0.0f && v <= 1.0f));
                }
            printf("kvzip: %lld context tokens, chunk %d: prefill %.2f s, reconstruction "
                   "scoring %.2f s = %.2fx prefill\n",
                   (long long)n, s.kvzip_chunk, t - sc.score_s, sc.score_s,
                   sc.score_s / (t - sc.score_s));
        }
        double *kept = malloc((size_t)c.n_layers * c.n_kv_heads * sizeof(double));
        if (lrsa_press_apply(&m, &c, &s, &sc, kept, &e)) fail_msg("%s", e.msg);
        double mean = 0;
        for (int64_t i = 0; i < (int64_t)c.n_layers * c.n_kv_heads; i++) mean += kept[i];
        mean /= (double)c.n_layers * c.n_kv_heads;
        nll[k] = reconstruction_nll(&m, &c, &prompt, ids.v, n);
        printf("%s: kept %.3f, reconstruction NLL %.4f\n", lrsa_press_method_name(methods[k]), mean,
               nll[k]);
        if (methods[k] != LRSA_PRESS_NONE) assert_true(fabs(mean - 0.5) < 0.01);
        free(kept);
        lrsa_press_scores_free(&sc);
        lrsa_kv_cache_free(&c);
    }
    assert_true(nll[0] <= nll[1] + 1e-3);
    assert_true(nll[1] < 0.5 * nll[2]);
    lrsa_ids_free(&prompt);
    lrsa_ids_free(&ids);
    lrsa_tokenizer_free(tok);
    lrsa_model_free(&m);
}

/* CompressKV through the press core with the committed SmolLM2 file: one index set per layer
 * shared by its KV heads, the 8-token window kept, per-layer kept rows = the file's budgets. */
static void test_compresskv_real(void **state) {
    (void)state;
    lrsa_err e = {{0}};
    lrsa_model m;
    if (lrsa_model_load(&m, g_model, &e)) fail_msg("%s", e.msg);
    lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(g_model, &e);
    assert_non_null(tok);
    lrsa_ids ids = {0};
    const int64_t n = build_context(tok, lrsa_chat_detect(tok), &ids);
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_COMPRESSKV);
    s.keep = 0.25;
    s.compresskv_file = LRSA_SOURCE_DIR "/configs/compresskv/smollm2-135m-instruct.json";
    if (lrsa_press_spec_check(&s, &e)) fail_msg("%s", e.msg);
    assert_int_equal(s.window, 8);
    lrsa_kv_cache c;
    assert_int_equal(lrsa_press_cache_init(&c, &m, &s, &e), 0);
    lrsa_press_scores sc;
    if (lrsa_press_prefill_and_score(&m, &c, &s, ids.v, n, NULL, 0, &sc, &e)) fail_msg("%s", e.msg);
    const int L = c.n_layers, Hkv = c.n_kv_heads;
    for (int l = 0; l < L; l++)
        for (int g = 1; g < Hkv; g++)
            assert_memory_equal(sc.score[l * Hkv], sc.score[l * Hkv + g], n * sizeof(float));
    int64_t *budget = malloc(L * sizeof(int64_t));
    assert_int_equal(lrsa_compresskv_layer_budgets(&s, L, n, budget, &e), 0);
    int64_t total = 0;
    for (int l = 0; l < L; l++) total += budget[l];
    assert_int_equal(total, (int64_t)(0.25 * n) * L);
    if (lrsa_press_apply(&m, &c, &s, &sc, NULL, &e)) fail_msg("%s", e.msg);
    for (int l = 0; l < L; l++) {
        const lrsa_kv_head *h0 = &c.heads[l * Hkv];
        assert_int_equal(h0->len, budget[l]);
        for (int g = 1; g < Hkv; g++) {
            assert_int_equal(c.heads[l * Hkv + g].len, h0->len);
            assert_memory_equal(c.heads[l * Hkv + g].pos, h0->pos, h0->len * sizeof(int32_t));
        }
        for (int j = 0; j < 8; j++) assert_int_equal(h0->pos[h0->len - 8 + j], n - 8 + j);
    }
    printf("compresskv: %lld rows, keep 0.25: layer budgets", (long long)n);
    for (int l = 0; l < L; l++) printf(" %lld", (long long)budget[l]);
    printf("\n");
    free(budget);
    lrsa_press_scores_free(&sc);
    lrsa_kv_cache_free(&c);
    lrsa_ids_free(&ids);
    lrsa_tokenizer_free(tok);
    lrsa_model_free(&m);
}

int main(void) {
    const char *root = getenv("LRSA_MODELS");
    snprintf(g_model, sizeof g_model, "%s/smollm2-135m-instruct",
             root ? root : LRSA_SOURCE_DIR "/models");
    char cfg[4200];
    lrsa_path_join(cfg, sizeof cfg, g_model, "config.json");
    if (!lrsa_file_exists(cfg)) {
        printf("skip: %s not found (run tools/fetch-model.sh)\n", cfg);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kvzip_real),
                                       cmocka_unit_test(test_compresskv_real)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
