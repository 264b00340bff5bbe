/* config.json reading (both rope forms, defaults, errors) and writing (round trip). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/config.h"
#include "test_util.h"

static char g_dir[4096];

static const char *write_cfg(const char *name, const char *json) {
    static char path[4096];
    lrsa_path_join(path, sizeof path, g_dir, name);
    lrsa_err e;
    if (lrsa_write_file_atomic(path, json, strlen(json), &e)) fail_msg("%s", e.msg);
    return path;
}

#define BASE                                                                                       \
    "\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 96, "                        \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4"

static void expect_error(const char *json, const char *needle) {
    lrsa_model_config c;
    lrsa_err e;
    const char *p = write_cfg("bad.json", json);
    if (lrsa_config_load(&c, p, &e) != -1) fail_msg("accepted: %s", json);
    if (!strstr(e.msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
    assert_non_null(strstr(e.msg, "bad.json")); /* names the file */
}

static void test_defaults_and_legacy_rope(void **state) {
    (void)state;
    lrsa_model_config c;
    lrsa_err e;
    const char *p = write_cfg("a.json", "{\"model_type\": \"llama\", " BASE
                                        ", \"rope_theta\": 500000, \"rope_scaling\": {\"type\": "
                                        "\"linear\", \"factor\": 2.0}, \"eos_token_id\": [5, 7]}");
    assert_int_equal(lrsa_config_load(&c, p, &e), 0);
    assert_int_equal(c.arch, LRSA_ARCH_LLAMA);
    assert_int_equal(c.num_key_value_heads, 4); /* missing -> heads */
    assert_int_equal(c.head_dim, 16);           /* hidden / heads */
    assert_true(c.rope.theta == 500000.f);
    assert_int_equal(c.rope.type, LRSA_ROPE_LINEAR);
    assert_true(c.rope.factor == 2.f);
    assert_int_equal(c.tie_word_embeddings, 0);
    assert_int_equal(c.attention_bias, 0);
    assert_int_equal(c.n_eos, 2);
    assert_int_equal(c.eos_token_ids[1], 7);
    assert_int_equal(c.bos_token_id, -1);
    /* Hugging Face's LlamaConfig defaults, each recorded for --verbose */
    assert_true(fabsf(c.rms_norm_eps - 1e-6f) == 0);
    assert_int_equal(c.max_position_embeddings, 2048);
    const char *noted[] = {"num_key_value_heads = 4",     "head_dim = 16",
                           "rms_norm_eps = 1e-06",        "max_position_embeddings = 2048",
                           "tie_word_embeddings = false", "attention_bias = false"};
    for (size_t i = 0; i < sizeof noted / sizeof noted[0]; i++)
        if (!strstr(c.defaults_used, noted[i]))
            fail_msg("defaults_used lacks \"%s\": %s", noted[i], c.defaults_used);
    assert_null(strstr(c.defaults_used, "rope_theta")); /* given */
    assert_int_equal(c.tie_word_embeddings_given, 0);
}

static void test_rope_parameters_and_qwen2(void **state) {
    (void)state;
    lrsa_model_config c;
    lrsa_err e;
    const char *p = write_cfg(
        "b.json", "{\"model_type\": \"qwen2\", " BASE
                  ", \"num_key_value_heads\": 2, \"head_dim\": 24, \"tie_word_embeddings\": true, "
                  "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"llama3\", "
                  "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                  "\"original_max_position_embeddings\": 8192}, \"eos_token_id\": 3}");
    assert_int_equal(lrsa_config_load(&c, p, &e), 0);
    assert_int_equal(c.arch, LRSA_ARCH_QWEN2);
    assert_int_equal(c.attention_bias, 1); /* Qwen2: always q/k/v biases */
    assert_int_equal(c.o_proj_bias, 0);
    assert_int_equal(c.head_dim, 24);
    assert_int_equal(c.tie_word_embeddings, 1);
    assert_true(c.rope.theta == 1e6f);
    assert_int_equal(c.rope.type, LRSA_ROPE_LLAMA3);
    assert_true(c.rope.factor == 8.f && c.rope.high_freq_factor == 4.f);
    assert_int_equal(c.rope.original_max_position_embeddings, 8192);
    assert_int_equal(c.n_eos, 1);
    assert_true(fabsf(c.rms_norm_eps - 1e-6f) == 0); /* Qwen2 default */
    /* params: embed 6400 (tied) + 2 layers + norm */
    long long C = 64, QKV = (4 + 4) * 24, layer = C + QKV * C + QKV + 4 * 24 * C + C + 3 * 96 * C;
    assert_int_equal(lrsa_config_num_params(&c), 100 * C + 2 * layer + C);
}

static void test_llama_attention_bias(void **state) {
    (void)state;
    lrsa_model_config c;
    lrsa_err e;
    const char *p = write_cfg("c.json", "{\"model_type\": \"mistral\", " BASE
                                        ", \"num_key_value_heads\": 2, \"attention_bias\": true, "
                                        "\"rope_scaling\": null}");
    assert_int_equal(lrsa_config_load(&c, p, &e), 0);
    assert_int_equal(c.arch, LRSA_ARCH_MISTRAL);
    assert_int_equal(c.attention_bias, 1);
    assert_int_equal(c.o_proj_bias, 1);
    assert_int_equal(c.rope.type, LRSA_ROPE_DEFAULT);
}

static void test_errors(void **state) {
    (void)state;
    expect_error("{\"model_type\": \"gpt2\", " BASE "}", "model_type");
    expect_error("{\"model_type\": \"llama\", \"hidden_size\": 64}", "vocab_size");
    expect_error("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"rope_type\": "
                 "\"dynamic\", \"factor\": 2}}",
                 "dynamic");
    expect_error("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"yarn\", "
                 "\"factor\": 2}}",
                 "yarn");
    expect_error("{\"model_type\": \"llama\", " BASE ", \"mlp_bias\": true}", "mlp_bias");
    expect_error("{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 3}",
                 "num_key_value_heads");
    expect_error("{\"model_type\": \"llama\", " BASE ", \"head_dim\": 7}", "head_dim");
    expect_error("{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": \"4\"}",
                 "num_key_value_heads");
    expect_error("{\"model_type\": \"llama\", " BASE ", }", "JSON");
    expect_error("[1, 2]", "object");
    expect_error("{\"model_type\": \"llama\", " BASE ", \"eos_token_id\": \"x\"}", "eos_token_id");
}

static void test_save_round_trip(void **state) {
    (void)state;
    lrsa_model_config c, r;
    lrsa_err e;
    const char *p = write_cfg(
        "d.json", "{\"model_type\": \"llama\", " BASE
                  ", \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-5, \"rope_theta\": 100000, "
                  "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0, "
                  "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                  "\"original_max_position_embeddings\": 8192}, \"tie_word_embeddings\": true, "
                  "\"bos_token_id\": 1, \"eos_token_id\": [2, 9], \"pad_token_id\": 2}");
    assert_int_equal(lrsa_config_load(&c, p, &e), 0);
    char out[4096];
    lrsa_path_join(out, sizeof out, g_dir, "saved.json");
    assert_int_equal(lrsa_config_save(&c, out, "bfloat16", &e), 0);
    assert_int_equal(lrsa_config_load(&r, out, &e), 0);
    assert_string_equal(r.torch_dtype, "bfloat16");
    memcpy(r.torch_dtype, c.torch_dtype, sizeof r.torch_dtype);
    /* the saved file spells out every field, so nothing of it comes from a default */
    assert_string_equal(r.defaults_used, "");
    assert_int_equal(r.tie_word_embeddings_given, 1);
    memcpy(r.defaults_used, c.defaults_used, sizeof r.defaults_used);
    assert_memory_equal(&r, &c, sizeof c);
    char *text = lrsa_read_file(out, NULL, &e);
    assert_non_null(strstr(text, "\"LlamaForCausalLM\""));
    assert_non_null(strstr(text, "\"rms_norm_eps\":\t1e-05"));
    free(text);
}

int main(void) {
    tu_tmpdir(g_dir, sizeof g_dir, "model_config");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_legacy_rope),
        cmocka_unit_test(test_rope_parameters_and_qwen2),
        cmocka_unit_test(test_llama_attention_bias),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_save_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
