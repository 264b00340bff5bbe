/* A downloaded checkpoint (models/smollm2-135m-instruct, from tools/fetch-model.sh) against
 * transformers' top-8 logits stored by `tools/make_parity_fixtures.py --real`. Exits 77 (skip)
 * when the model is absent or was converted with another dtype than the reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/model.h"
#include "test_util.h"

#define K 8

static char g_model[4096];

static void test_real_model_topk(void **state) {
    (void)state;
    char ref_path[4096];
    snprintf(ref_path, sizeof ref_path, "%s/parity/real_smollm2-135m-instruct_topk.safetensors",
             LRSA_TEST_DATA);
    lrsa_safetensors ref;
    lrsa_err e;
    if (lrsa_st_open(&ref, ref_path, &e)) fail_msg("%s", e.msg);
    const lrsa_st_tensor *ti = lrsa_st_find(&ref, "input_ids");
    assert_non_null(ti);
    const int T = (int)ti->shape[1];
    int32_t *ids = malloc((size_t)T * sizeof(int32_t)), *top = malloc((size_t)T * K * 4);
    float *want = malloc((size_t)T * K * sizeof(float));
    assert_int_equal(lrsa_st_read_i32(&ref, ti, ids, &e), 0);
    assert_int_equal(lrsa_st_read_i32(&ref, lrsa_st_find(&ref, "topk_ids"), top, &e), 0);
    assert_int_equal(lrsa_st_read_f32(&ref, lrsa_st_find(&ref, "topk_logits"), want, &e), 0);
    lrsa_st_close(&ref);

    lrsa_model m;
    if (lrsa_model_load(&m, g_model, &e)) fail_msg("%s", e.msg);
    const int V = m.cfg.vocab_size;
    float *logits = malloc((size_t)T * V * sizeof(float));
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_attn_config a;
    memset(&a, 0, sizeof a);
    lrsa_model_logits(&m, ws, ids, 1, T, &a, logits);
    float *got = malloc((size_t)T * K * sizeof(float));
    for (int t = 0; t < T; t++) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[(size_t)t * V + v] > logits[(size_t)t * V + best]) best = v;
        /* same argmax unless transformers' top two are within rounding of each other */
        if (best != top[t * K] && want[t * K] - want[t * K + 1] > 1e-3f)
            fail_msg("position %d: argmax %d, transformers %d", t, best, top[t * K]);
        for (int j = 0; j < K; j++) got[t * K + j] = logits[(size_t)t * V + top[t * K + j]];
    }
    TU_ASSERT_CLOSE(got, want, (int64_t)T * K, 1e-4, "top-8 logits");
    free(got);
    free(logits);
    lrsa_workspace_free(ws);
    lrsa_model_free(&m);
    free(ids);
    free(top);
    free(want);
}

int main(void) {
    const char *root = getenv("LRSA_MODELS");
    snprintf(g_model, sizeof g_model, "%s/smollm2-135m-instruct",
             root ? root : LRSA_SOURCE_DIR "/models");
    char cfg[4096];
    lrsa_path_join(cfg, sizeof cfg, g_model, "config.json");
    if (!lrsa_file_exists(cfg)) {
        printf("skip: %s not found (run tools/fetch-model.sh)\n", cfg);
        return 77;
    }
    /* the reference was computed from a bf16 conversion; another dtype rounds differently */
    lrsa_model_config c;
    lrsa_err e;
    if (lrsa_config_load(&c, cfg, &e) == 0 && strcmp(c.torch_dtype, "bfloat16") != 0) {
        printf("skip: %s is %s, the reference is for bfloat16\n", g_model, c.torch_dtype);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_real_model_topk)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
