/* The converted SmolLM2-135M-Instruct (models/smollm2-135m-instruct, from tools/fetch-model.sh;
 * LRSA_MODELS overrides the folder) as a person uses it:
 *  - `lrsa generate` builds the ChatML prompt for "What is the capital of France?", decodes
 *    greedily through the core forward and streams text that names Paris;
 *  - its perplexity on a fixed English paragraph (tests/fixtures/text/english_paragraph.txt,
 *    written for this test) is in the range of a working 135M model. A model with a broken
 *    layer (wrong RoPE, un-permuted q/k, wrong norm) lands in the hundreds or thousands; the
 *    measured value is recorded in docs/MODEL.md.
 * Exits 77 (skipped) when the model folder is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "test_util.h"

static char g_model[4096];

static void test_chat_answers_paris(void **state) {
    (void)state;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s generate --model %s --prompt 'What is the capital of France?' --max-new 24 "
             "2>/dev/null",
             LRSA_BINARY, g_model);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("`%s` exited %d", cmd, rc);
    printf("answer: %s\n", out);
    if (!strstr(out, "Paris")) fail_msg("the answer does not name Paris: \"%s\"", out);
    free(out);
}

static void test_paragraph_perplexity(void **state) {
    (void)state;
    lrsa_err e;
    size_t n = 0;
    char *text = lrsa_read_file(LRSA_TEST_DATA "/text/english_paragraph.txt", &n, &e);
    if (!text) fail_msg("%s", e.msg);
    lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(g_model, &e);
    if (!tok) fail_msg("%s", e.msg);
    lrsa_ids ids = {0};
    assert_int_equal(lrsa_tokenizer_encode(tok, text, n, &ids, &e), 0);
    const int T = (int)ids.n;
    assert_true(T > 150 && T < 400);
    lrsa_model m;
    if (lrsa_model_load(&m, g_model, &e)) fail_msg("%s", e.msg);
    /* mean NLL of every token after the first (target-side weights, summing to 1) */
    float *w = calloc((size_t)T, sizeof(float));
    for (int t = 1; t < T; t++) w[t] = 1.0f / (float)(T - 1);
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_attn_config dense = {.mode = LRSA_ATTN_DENSE};
    double nll = lrsa_model_forward_backward(&m, ws, ids.v, w, 1, T, &dense, 0, 0, NULL);
    double ppl = exp(nll);
    printf("paragraph: %d tokens, mean NLL %.4f, perplexity %.2f\n", T, nll, ppl);
    assert_true(isfinite(ppl));
    /* 22.5 measured (docs/MODEL.md); small models score roughly 10-40 on plain English prose */
    assert_true(ppl > 3.0 && ppl < 40.0);
    lrsa_workspace_free(ws);
    lrsa_model_free(&m);
    free(w);
    lrsa_ids_free(&ids);
    lrsa_tokenizer_free(tok);
    free(text);
}

int main(void) {
    const char *env = getenv("LRSA_MODELS");
    snprintf(g_model, sizeof g_model, "%s/smollm2-135m-instruct",
             env && *env ? env : LRSA_SOURCE_DIR "/models");
    char cfg[4200];
    lrsa_path_join(cfg, sizeof cfg, g_model, "model.safetensors");
    if (!lrsa_file_exists(cfg)) {
        fprintf(stderr, "skipped: %s not found (run tools/fetch-model.sh)\n", cfg);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_answers_paris),
        cmocka_unit_test(test_paragraph_perplexity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
