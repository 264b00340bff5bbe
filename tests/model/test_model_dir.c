/* A model directory's config.json and weights must agree: weights for layers beyond
 * num_hidden_layers, tensors the model would leave unused and a missing lm_head without
 * tie_word_embeddings are errors naming the tensor, the file and the field; fields left out
 * take Hugging Face's documented defaults, which the model records and `lrsa eval --verbose`
 * prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "model/model.h"
#include "test_util.h"

static char g_dir[4096];

#define TINY_CONFIG                                                                                \
    "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 16, "                        \
    "\"intermediate_size\": 24, \"num_hidden_layers\": %d, \"num_attention_heads\": 2, "           \
    "\"num_key_value_heads\": 1, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, "                \
    "\"max_position_embeddings\": 256, \"attention_bias\": false, "                                \
    "\"tie_word_embeddings\": %s}"

/* A random model of `layers` layers saved into g_dir/name; returns the directory. */
static const char *save_model(const char *name, int layers, int tied) {
    static char dir[4200];
    lrsa_path_join(dir, sizeof dir, g_dir, name);
    char json[1024], cfg_path[4300];
    snprintf(json, sizeof json, TINY_CONFIG, layers, tied ? "true" : "false");
    lrsa_err e;
    assert_int_equal(lrsa_mkdirs(dir, &e), 0);
    lrsa_path_join(cfg_path, sizeof cfg_path, dir, "config.json");
    assert_int_equal(lrsa_write_file_atomic(cfg_path, json, strlen(json), &e), 0);
    lrsa_model_config c;
    if (lrsa_config_load(&c, cfg_path, &e)) fail_msg("%s", e.msg);
    lrsa_model m;
    assert_int_equal(lrsa_model_create(&m, &c, &e), 0);
    lrsa_model_init_random(&m, 5, 0.1f);
    if (lrsa_model_save(&m, dir, LRSA_ST_F32, &e)) fail_msg("%s", e.msg);
    lrsa_model_free(&m);
    return dir;
}

/* Replaces config.json of dir with the given text. */
static void write_config(const char *dir, const char *json) {
    char path[4300];
    lrsa_path_join(path, sizeof path, dir, "config.json");
    lrsa_err e;
    assert_int_equal(lrsa_write_file_atomic(path, json, strlen(json), &e), 0);
}

static void expect_load_error(const char *dir, const char *const *needles) {
    lrsa_model m;
    lrsa_err e;
    if (lrsa_model_load(&m, dir, &e) == 0) fail_msg("%s loaded, expected an error", dir);
    for (int i = 0; needles[i]; i++)
        if (!strstr(e.msg, needles[i])) fail_msg("message lacks \"%s\": %s", needles[i], e.msg);
}

static void test_layers_beyond_config(void **state) {
    (void)state;
    const char *dir = save_model("three_layers", 3, 1);
    char json[1024];
    snprintf(json, sizeof json, TINY_CONFIG, 2, "true");
    write_config(dir, json);
    const char *needles[] = {
        "num_hidden_layers", "model.layers.2.", "config.json", "model.safetensors", "to 3", NULL};
    expect_load_error(dir, needles);
}

static void test_unused_tensor(void **state) {
    (void)state;
    const char *dir = save_model("extra", 2, 1);
    /* the same weights plus a q_proj bias the config (attention_bias: false) does not use */
    char path[4300];
    lrsa_path_join(path, sizeof path, dir, "model.safetensors");
    lrsa_model m;
    lrsa_err e;
    if (lrsa_model_load(&m, dir, &e)) fail_msg("%s", e.msg);
    lrsa_st_writer *w = lrsa_st_writer_new();
    for (int i = 0; i < m.table.n; i++)
        lrsa_st_writer_add_f32(w, m.table.desc[i].name, LRSA_ST_F32, m.table.desc[i].ndim,
                               m.table.desc[i].shape, lrsa_table_ptr(&m.table, LRSA_ROLE_PARAM, i));
    float bias[16] = {0};
    int64_t shape[1] = {16};
    lrsa_st_writer_add_f32(w, "model.layers.0.self_attn.q_proj.bias", LRSA_ST_F32, 1, shape, bias);
    if (lrsa_st_writer_write(w, path, &e)) fail_msg("%s", e.msg);
    lrsa_st_writer_free(w);
    lrsa_model_free(&m);
    const char *needles[] = {"model.layers.0.self_attn.q_proj.bias", "model.safetensors",
                             "attention_bias", "config.json", NULL};
    expect_load_error(dir, needles);
    /* a stray tensor of no known kind is refused too */
    dir = save_model("stray", 2, 1);
    lrsa_path_join(path, sizeof path, dir, "model.safetensors");
    if (lrsa_model_load(&m, dir, &e)) fail_msg("%s", e.msg);
    w = lrsa_st_writer_new();
    for (int i = 0; i < m.table.n; i++)
        lrsa_st_writer_add_f32(w, m.table.desc[i].name, LRSA_ST_F32, m.table.desc[i].ndim,
                               m.table.desc[i].shape, lrsa_table_ptr(&m.table, LRSA_ROLE_PARAM, i));
    lrsa_st_writer_add_f32(w, "model.vision_tower.weight", LRSA_ST_F32, 1, shape, bias);
    if (lrsa_st_writer_write(w, path, &e)) fail_msg("%s", e.msg);
    lrsa_st_writer_free(w);
    lrsa_model_free(&m);
    const char *needles2[] = {"model.vision_tower.weight", "not used", NULL};
    expect_load_error(dir, needles2);
}

static void test_missing_tie_word_embeddings(void **state) {
    (void)state;
    const char *dir = save_model("tied", 2, 1); /* no lm_head.weight in the file */
    write_config(dir, "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 16, "
                      "\"intermediate_size\": 24, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                      "\"rms_norm_eps\": 1e-5}");
    const char *needles[] = {"lm_head.weight", "tie_word_embeddings", "true", NULL};
    expect_load_error(dir, needles);
    /* with the field set explicitly to false, the message says that instead */
    char json[1024];
    snprintf(json, sizeof json, TINY_CONFIG, 2, "false");
    write_config(dir, json);
    const char *needles2[] = {"lm_head.weight", "\"tie_word_embeddings\": false", NULL};
    expect_load_error(dir, needles2);
}

static void test_missing_required_field(void **state) {
    (void)state;
    const char *dir = save_model("no_hidden", 2, 1);
    write_config(dir, "{\"model_type\": \"llama\", \"vocab_size\": 40, \"intermediate_size\": 24, "
                      "\"num_hidden_layers\": 2, \"num_attention_heads\": 2}");
    const char *needles[] = {"hidden_size", "config.json", NULL};
    expect_load_error(dir, needles);
}

/* Defaults: recorded in defaults_used, and printed by `lrsa eval --verbose`. */
static void test_defaults_reported(void **state) {
    (void)state;
    const char *dir = save_model("defaults", 2, 1);
    write_config(dir, "{\"model_type\": \"llama\", \"vocab_size\": 40, \"hidden_size\": 16, "
                      "\"intermediate_size\": 24, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                      "\"tie_word_embeddings\": true}");
    lrsa_model m;
    lrsa_err e;
    if (lrsa_model_load(&m, dir, &e)) fail_msg("%s", e.msg);
    assert_non_null(strstr(m.cfg.defaults_used, "rope_theta = 10000"));
    assert_non_null(strstr(m.cfg.defaults_used, "rms_norm_eps = 1e-06"));
    assert_null(strstr(m.cfg.defaults_used, "tie_word_embeddings"));
    assert_true(m.cfg.rms_norm_eps == 1e-6f);
    lrsa_model_free(&m);

    /* a tiny dataset for `lrsa eval` */
    char data[4300], cmd[16384];
    lrsa_path_join(data, sizeof data, g_dir, "tiny.h5");
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    int32_t ids[12];
    uint8_t mask[12];
    for (int i = 0; i < 12; i++) ids[i] = 3 + i, mask[i] = i >= 9;
    if (lrsa_dataset_writer_add(w, ids, mask, 12, 9, "x", &e)) fail_msg("%s", e.msg);
    lrsa_dataset_meta meta = {"test", "none", "tests/model", "copy", 0};
    if (lrsa_dataset_writer_commit(w, data, &meta, &e)) fail_msg("%s", e.msg);
    lrsa_dataset_writer_free(w);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --metrics nll --verbose 2>&1",
             LRSA_BINARY, dir, data);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("lrsa eval failed (%d): %s", rc, out ? out : "");
    if (!strstr(out, "rope_theta = 10000") || !strstr(out, "Hugging Face's defaults"))
        fail_msg("eval --verbose does not report the defaults: %s", out);
    free(out);
}

/* A default can be why the weights do not fit: Mistral's num_key_value_heads defaults to 8. */
static void test_default_named_in_mismatch(void **state) {
    (void)state;
    const char *dir = save_model("mistral", 2, 1);
    write_config(dir, "{\"model_type\": \"mistral\", \"vocab_size\": 40, \"hidden_size\": 16, "
                      "\"intermediate_size\": 24, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 8, \"head_dim\": 2, \"rms_norm_eps\": 1e-5, "
                      "\"tie_word_embeddings\": true}");
    const char *needles[] = {"num_key_value_heads = 8", "Hugging Face's defaults", NULL};
    expect_load_error(dir, needles);
}

int main(void) {
    tu_tmpdir(g_dir, sizeof g_dir, "model_dir");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_beyond_config),
        cmocka_unit_test(test_unused_tensor),
        cmocka_unit_test(test_missing_tie_word_embeddings),
        cmocka_unit_test(test_missing_required_field),
        cmocka_unit_test(test_defaults_reported),
        cmocka_unit_test(test_default_named_in_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
