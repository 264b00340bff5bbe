/* The real SmolLM2-135M-Instruct Q4_1 GGUF (tools/fetch-model.sh puts it in $LRSA_CACHE or
 * <repo>/.cache): metadata and tensor types as docs/MODEL.md records them, and the converted
 * model completes "The capital of France is" with " Paris" (which needs the q/k rows un-permuted
 * correctly). Exits 77 (skipped) when the file has not been fetched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "convert/gguf_convert.h"
#include "model/quant.h"
#include "model/model.h"
#include "test_util.h"

static char g_path[4096];

static void test_metadata(void **state) {
    (void)state;
    lrsa_gguf g;
    lrsa_err e;
    if (lrsa_gguf_open(&g, g_path, &e)) fail_msg("%s", e.msg);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.size, 98362432);
    assert_int_equal(g.alignment, 32);
    assert_int_equal(g.n_kv, 33);
    assert_int_equal(g.n_tensors, 272);
    const char *s;
    int64_t v;
    assert_int_equal(lrsa_gguf_get_str(&g, "general.architecture", &s, &e), 0);
    assert_string_equal(s, "llama");
    assert_int_equal(lrsa_gguf_get_str(&g, "tokenizer.ggml.pre", &s, &e), 0);
    assert_string_equal(s, "smollm");
    assert_int_equal(lrsa_gguf_get_str(&g, "tokenizer.ggml.model", &s, &e), 0);
    assert_string_equal(s, "gpt2");
    assert_int_equal(lrsa_gguf_get_int(&g, "general.file_type", &v, &e), 0);
    assert_int_equal(v, 3); /* mostly Q4_1 */
    const lrsa_gguf_value *a;
    assert_int_equal(lrsa_gguf_get_array(&g, "tokenizer.ggml.tokens", LRSA_GGUF_STRING, &a, &e), 0);
    assert_int_equal(a->n, 49152);
    assert_string_equal(a->items[2].s, "<|im_end|>");
    assert_int_equal(lrsa_gguf_get_array(&g, "tokenizer.ggml.merges", LRSA_GGUF_STRING, &a, &e), 0);
    assert_int_equal(a->n, 48900);
    int n_q41 = 0, n_q80 = 0, n_f32 = 0;
    for (int64_t i = 0; i < g.n_tensors; i++) {
        const lrsa_gguf_tensor *t = &g.tensors[i];
        if (t->type == LRSA_GGML_Q4_1) {
            n_q41++;
            assert_int_equal(t->n_dims, 2);
        } else if (t->type == LRSA_GGML_Q8_0) {
            n_q80++;
            assert_string_equal(t->name, "token_embd.weight");
        } else if (t->type == LRSA_GGML_F32) {
            n_f32++;
            assert_int_equal(t->n_dims, 1);
        } else {
            fail_msg("unexpected type %u for %s", t->type, t->name);
        }
    }
    assert_int_equal(n_q41, 210);
    assert_int_equal(n_q80, 1);
    assert_int_equal(n_f32, 61);
    lrsa_model_config c;
    if (lrsa_gguf_model_config(&g, &c, &e)) fail_msg("%s", e.msg);
    assert_int_equal(c.num_hidden_layers, 30);
    assert_int_equal(c.hidden_size, 576);
    assert_int_equal(c.intermediate_size, 1536);
    assert_int_equal(c.num_attention_heads, 9);
    assert_int_equal(c.num_key_value_heads, 3);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.vocab_size, 49152);
    assert_int_equal(c.max_position_embeddings, 8192);
    assert_true(c.rope.theta == 100000.0f);
    assert_true(c.tie_word_embeddings);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.eos_token_ids[0], 2);
    assert_int_equal(lrsa_config_num_params(&c), 134515008);
    lrsa_gguf_close(&g);
}

static void test_converted_model_predicts(void **state) {
    (void)state;
    char dir[512], out[1024];
    tu_tmpdir(dir, sizeof dir, "gguf_smollm2");
    snprintf(out, sizeof out, "%s/hf", dir);
    lrsa_err e;
    if (lrsa_gguf_convert(g_path, out, LRSA_ST_F32, 0, &e)) fail_msg("%s", e.msg);
    lrsa_model m;
    if (lrsa_model_load(&m, out, &e)) fail_msg("%s", e.msg);
    /* "The capital of France is" (ids from the converted tokenizer.json) */
    const int32_t ids[5] = {504, 3575, 282, 4649, 314};
    const int V = m.cfg.vocab_size;
    float *logits = malloc((size_t)5 * V * sizeof(float));
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_attn_config attn = {.mode = LRSA_ATTN_DENSE};
    lrsa_model_logits(&m, ws, ids, 1, 5, &attn, logits);
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[4 * V + v] > logits[4 * V + best]) best = v;
    assert_int_equal(best, 7042); /* " Paris" */
    lrsa_workspace_free(ws);
    free(logits);
    lrsa_model_free(&m);
}

int main(void) {
    const char *cache = getenv("LRSA_CACHE");
    snprintf(g_path, sizeof g_path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf",
             cache && *cache ? cache : LRSA_SOURCE_DIR "/.cache");
    if (!lrsa_file_exists(g_path)) {
        fprintf(stderr, "skipped: %s not found (run tools/fetch-model.sh)\n", g_path);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_converted_model_predicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
