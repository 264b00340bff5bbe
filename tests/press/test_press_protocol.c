/* Presses end to end on a tiny random model (2 layers, GQA 6/2, Qwen2 biases) with the fixture
 * SmolLM tokenizer (1359 ids):
 *  - keep = 1 gives exactly the full-cache logits (prefill and 5 decode steps) for every method
 *    and selector (LagKV with r = 1 one-shot too; chunked within float tolerance);
 *  - truncate restores a cache equal to a fresh prefill of the shorter prompt;
 *  - the question split of the agnostic protocol on a chat prompt; no blank line -> -1;
 *  - agnostic at keep = 1 equals the aware full-cache NLL; under SnapKV the agnostic answer NLL
 *    equals compress-context + question + answer done by hand, trimming back restores the
 *    compressed cache exactly, and a second question gets the same NLL; aware differs;
 *  - LagKV under the agnostic protocol stops compressing after the context;
 *  - `lrsa eval --press snapkv --protocol agnostic --json` = the in-process figures, flags in
 *    any order, and press flag errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "data/dataset.h"
#include "eval/run/answer_nll.h"
#include "eval/run/prefill.h"
#include "eval/press/press_internal.h"
#include "test_util.h"
#include "tiny_model.h"

enum { V = 1359, T = 50, NC = 5 };

static lrsa_tokenizer *fixture_tokenizer(void) {
    char path[2048];
    snprintf(path, sizeof(path), "%s/tokenizer/smollm/tokenizer.json", LRSA_TEST_DATA);
    lrsa_err e = {{0}};
    lrsa_tokenizer *t = lrsa_tokenizer_load(path, &e);
    if (!t) fail_msg("%s", e.msg);
    return t;
}

/* Logits after the prompt and after each of NC continuation tokens: [(1 + NC), V]. */
static void run(const lrsa_model *m, const lrsa_press_spec *s, const int32_t *ids, float *logits) {
    lrsa_err e = {{0}};
    lrsa_kv_cache c;
    assert_int_equal(lrsa_press_cache_init(&c, m, s, &e), 0);
    if (lrsa_press_compress(m, &c, s, ids, T, logits, 0, NULL, &e) != 0) fail_msg("%s", e.msg);
    for (int i = 0; i < NC; i++)
        lrsa_cached_forward(m, &c, ids + T + i, 1, logits + (i + 1) * V, 0);
    lrsa_kv_cache_free(&c);
}

static void test_keep_one_is_the_full_cache(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 1, 5);
    int32_t ids[T + NC], kvzip_prompt[6];
    tiny_random_ids(ids, T + NC, V, 6);
    tiny_random_ids(kvzip_prompt, 6, V, 7);
    float *want = malloc(sizeof(float) * (1 + NC) * V), *got = malloc(sizeof(float) * (1 + NC) * V);
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_NONE);
    s.prefill = LRSA_PREFILL_ONESHOT;
    run(&m, &s, ids, want);
    for (int method = 1; method < LRSA_PRESS_COUNT; method++) {
        if (method == LRSA_PRESS_COMPRESSKV)
            continue; /* needs a per-model file: tests/press_kvzip */
        for (int variant = 0; variant < 3; variant++) {
            lrsa_press_spec_defaults(&s, (lrsa_press_method)method);
            s.keep = 1.0;
            if (s.window > 8) s.window = 8; /* shorter than the prompt, so scoring runs */
            s.lagkv = (lrsa_lagkv_params){4, 8, 1.0f, 1.0f};
            s.kvzip_prompt_ids = kvzip_prompt;
            s.n_kvzip_prompt = 6;
            s.kvzip_chunk = 16;
            s.prefill = LRSA_PREFILL_ONESHOT;
            const int layered = method == LRSA_PRESS_PYRAMIDKV;
            if (variant == 1 && !layered) s.selector = LRSA_SELECT_HEAD_ADAPTIVE;
            if (variant == 2 && !layered) s.selector = LRSA_SELECT_GLOBAL;
            if (variant > 0 && (layered || method == LRSA_PRESS_LAGKV)) continue;
            run(&m, &s, ids, got);
            char label[256];
            lrsa_press_describe_spec(&s, label, sizeof(label));
            if (memcmp(got, want, sizeof(float) * (1 + NC) * V) != 0)
                fail_msg("%s at keep 1: logits differ from the full cache (rel %.3g)", label,
                         tu_rel_err(got, want, (1 + NC) * V));
        }
    }
    /* LagKV r = 1, chunked: other chunk shapes, same rows; equal within float tolerance */
    lrsa_press_spec_defaults(&s, LRSA_PRESS_LAGKV);
    s.lagkv = (lrsa_lagkv_params){4, 8, 1.0f, 1.0f};
    s.prefill = LRSA_PREFILL_CHUNKED;
    run(&m, &s, ids, got);
    TU_ASSERT_CLOSE(got, want, (1 + NC) * V, 1e-5, "lagkv r=1 chunked");
    free(want);
    free(got);
    lrsa_model_free(&m);
}

static void assert_caches_equal(const lrsa_kv_cache *a, const lrsa_kv_cache *b) {
    assert_int_equal(a->seen, b->seen);
    for (int64_t i = 0; i < (int64_t)a->n_layers * a->n_kv_heads; i++) {
        assert_int_equal(a->heads[i].len, b->heads[i].len);
        const int64_t n = a->heads[i].len, D = a->head_dim;
        assert_memory_equal(a->heads[i].k, b->heads[i].k, n * D * sizeof(float));
        assert_memory_equal(a->heads[i].v, b->heads[i].v, n * D * sizeof(float));
        assert_memory_equal(a->heads[i].pos, b->heads[i].pos, n * sizeof(int32_t));
    }
}

static void test_truncate_restores_fresh_prefill(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 1, 8);
    int32_t ids[T + NC];
    tiny_random_ids(ids, T + NC, V, 9);
    lrsa_err e = {{0}};
    lrsa_kv_cache a, b;
    assert_int_equal(lrsa_kv_cache_for_model(&a, &m, NULL, &e), 0);
    assert_int_equal(lrsa_kv_cache_for_model(&b, &m, NULL, &e), 0);
    assert_int_equal(lrsa_prefill(&m, &a, ids, 30, LRSA_PREFILL_ONESHOT, NULL, 0, &e), 0);
    lrsa_cached_forward(&m, &a, ids + 30, 12, NULL, 0); /* a "question" */
    lrsa_cached_forward(&m, &a, ids + 42, 1, NULL, 0);  /* and an "answer" token */
    lrsa_kv_cache_truncate(&a, 30);
    assert_int_equal(lrsa_prefill(&m, &b, ids, 30, LRSA_PREFILL_ONESHOT, NULL, 0, &e), 0);
    assert_caches_equal(&a, &b);
    float la[V], lb[V];
    lrsa_cached_forward(&m, &a, ids + 30, 5, la, 0);
    lrsa_cached_forward(&m, &b, ids + 30, 5, lb, 0);
    assert_memory_equal(la, lb, sizeof(la));
    lrsa_kv_cache_free(&a);
    lrsa_kv_cache_free(&b);
    lrsa_model_free(&m);
}

/* A ChatML QA sample: user = instruction \n\n context \n\n question; assistant = answer. */
static void build_sample(const lrsa_tokenizer *tok, const char *user, const char *answer,
                         lrsa_ids *ids, lrsa_mask *mask, int64_t *prompt_len) {
    lrsa_err e = {{0}};
    lrsa_chat_msg msgs[2] = {{"user", user}, {"assistant", answer}};
    assert_int_equal(lrsa_chat_build(tok, lrsa_chat_detect(tok), msgs, 2, 0, ids, mask, &e), 0);
    *prompt_len = -1;
    for (int64_t t = 1; t < ids->n && *prompt_len < 0; t++)
        if (mask->v[t]) *prompt_len = t;
    assert_true(*prompt_len > 0);
}

static const char *USER =
    "Read the notes and answer.\n\nThe hills were quiet in the morning. A farmer walked "
    "past the old mill with two dogs. The river was high after the rain, and the bridge "
    "was closed for a day. The secret code is 4217. Later the sun came out over the "
    "fields and the birds sang.\n\nWhat is the secret code?";

static void test_question_split(void **state) {
    (void)state;
    lrsa_tokenizer *tok = fixture_tokenizer();
    lrsa_ids ids = {0};
    lrsa_mask mask = {0};
    int64_t pl;
    build_sample(tok, USER, "The code is 4217.", &ids, &mask, &pl);
    const int64_t q = lrsa_press_question_start(tok, ids.v, pl);
    assert_true(q > 10 && q < pl);
    char *before = lrsa_tokenizer_decode(tok, ids.v, q, 0);
    char *rest = lrsa_tokenizer_decode(tok, ids.v + q, pl - q, 0);
    const size_t nb = strlen(before);
    assert_true(nb > 2 && strcmp(before + nb - 2, "\n\n") == 0);
    assert_non_null(strstr(before, "The secret code is 4217."));
    if (strncmp(rest, "What is the secret code?<|im_end|>", 34) != 0)
        fail_msg("question part: '%s'", rest);
    free(before);
    free(rest);
    lrsa_ids_free(&ids);
    lrsa_mask_free(&mask);
    build_sample(tok, "No blank line in this one. What is it?", "Nothing.", &ids, &mask, &pl);
    assert_int_equal(lrsa_press_question_start(tok, ids.v, pl), -1);
    lrsa_ids_free(&ids);
    lrsa_mask_free(&mask);
    lrsa_tokenizer_free(tok);
}

static void test_agnostic_protocol(void **state) {
    (void)state;
    lrsa_tokenizer *tok = fixture_tokenizer();
    lrsa_model m;
    tiny_model_create(&m, 2, V, 1, 10);
    lrsa_ids ids = {0};
    lrsa_mask mask = {0};
    int64_t pl;
    build_sample(tok, USER, "The code is 4217.", &ids, &mask, &pl);
    const int64_t q = lrsa_press_question_start(tok, ids.v, pl);
    lrsa_err e = {{0}};
    lrsa_press_config pc = lrsa_press_config_full(LRSA_PREFILL_ONESHOT);
    double full, x, kept;
    int64_t nf, nx;
    assert_int_equal(lrsa_answer_nll(&m, ids.v, mask.v, ids.n, &pc, &full, &nf, &e), 0);
    /* keep = 1 under the agnostic protocol: the same answer NLL as the aware full cache */
    lrsa_press_spec_defaults(&pc.spec, LRSA_PRESS_SNAPKV);
    pc.spec.window = 4;
    pc.protocol = LRSA_PROTOCOL_AGNOSTIC;
    assert_int_equal(lrsa_answer_nll_press(&m, ids.v, mask.v, ids.n, q, &pc, &x, &nx, &kept, &e),
                     0);
    assert_int_equal(nx, nf);
    assert_true(fabs(x - full) <= 1e-5 * fabs(full));
    assert_float_equal(kept, 1.0, 1e-12);
    /* keep 0.3: the one-call path = the steps by hand; trimming back; a second question */
    pc.spec.keep = 0.3;
    double agn, aware;
    assert_int_equal(lrsa_answer_nll_press(&m, ids.v, mask.v, ids.n, q, &pc, &agn, &nx, &kept, &e),
                     0);
    assert_true(kept < 0.7);
    lrsa_kv_cache c, after;
    assert_int_equal(lrsa_press_cache_init(&c, &m, &pc.spec, &e), 0);
    float *logits = malloc(sizeof(float) * V);
    assert_int_equal(lrsa_press_compress(&m, &c, &pc.spec, ids.v, q, logits, 0, NULL, &e), 0);
    for (int64_t i = 0; i < (int64_t)c.n_layers * c.n_kv_heads; i++)
        assert_int_equal(c.heads[i].len, (int64_t)(0.3 * q));
    lrsa_press_freeze(&c);
    lrsa_kv_cache_clone(&after, &c);
    double n1, n2;
    int64_t k1, k2;
    assert_int_equal(lrsa_answer_nll_from(&m, &c, ids.v, mask.v, ids.n, q, logits, &n1, &k1, &e),
                     0);
    assert_true(n1 == agn);
    lrsa_kv_cache_truncate(&c, q);
    assert_caches_equal(&c, &after);
    assert_int_equal(lrsa_answer_nll_from(&m, &c, ids.v, mask.v, ids.n, q, logits, &n2, &k2, &e),
                     0);
    assert_true(n2 == n1 && k2 == k1);
    /* the aware protocol compresses the question too: another figure */
    pc.protocol = LRSA_PROTOCOL_AWARE;
    assert_int_equal(
        lrsa_answer_nll_press(&m, ids.v, mask.v, ids.n, -1, &pc, &aware, &nx, NULL, &e), 0);
    assert_true(aware != agn);
    /* the agnostic protocol needs a valid context length */
    pc.protocol = LRSA_PROTOCOL_AGNOSTIC;
    assert_int_equal(
        lrsa_answer_nll_press(&m, ids.v, mask.v, ids.n, pl + 1, &pc, &x, &nx, NULL, &e), -1);
    assert_int_equal(lrsa_answer_nll(&m, ids.v, mask.v, ids.n, &pc, &x, &nx, &e), -1);
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_free(&after);
    /* LagKV, agnostic: compressed while the context is prefilled, frozen afterwards */
    lrsa_press_spec ls;
    lrsa_press_spec_defaults(&ls, LRSA_PRESS_LAGKV);
    ls.lagkv = (lrsa_lagkv_params){2, 8, 0.25f, 1.0f};
    assert_int_equal(lrsa_press_cache_init(&c, &m, &ls, &e), 0);
    assert_int_equal(lrsa_press_compress(&m, &c, &ls, ids.v, q, logits, 0, NULL, &e), 0);
    assert_true(c.heads[0].len < q); /* compressed during the prefill */
    lrsa_press_freeze(&c);
    lrsa_kv_cache_clone(&after, &c);
    const int64_t len0 = c.heads[0].len;
    assert_int_equal(lrsa_answer_nll_from(&m, &c, ids.v, mask.v, ids.n, q, logits, &n1, &k1, &e),
                     0);
    assert_int_equal(c.heads[0].len, len0 + (c.seen - q)); /* nothing evicted after the context */
    lrsa_kv_cache_truncate(&c, q);
    assert_caches_equal(&c, &after);
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_free(&after);
    free(logits);
    lrsa_ids_free(&ids);
    lrsa_mask_free(&mask);
    lrsa_model_free(&m);
    lrsa_tokenizer_free(tok);
}

static double json_number(const char *path, const char *key) {
    lrsa_err e = {{0}};
    size_t n = 0;
    char *text = lrsa_read_file(path, &n, &e);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "results"), 0);
    cJSON *v = cJSON_GetObjectItem(row, key);
    assert_non_null(v);
    double x = v->valuedouble;
    cJSON_Delete(root);
    return x;
}

static void test_eval_command(void **state) {
    (void)state;
    char dir[1024], model_dir[2048], data[2048], json[2048], path[2048], cmd[8192];
    tu_tmpdir(dir, sizeof(dir), "press_cli");
    snprintf(model_dir, sizeof(model_dir), "%s/model", dir);
    snprintf(data, sizeof(data), "%s/qa.h5", dir);
    snprintf(json, sizeof(json), "%s/out.json", dir);
    lrsa_model m;
    tiny_model_create(&m, 2, V, 1, 11);
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_model_save(&m, model_dir, LRSA_ST_F32, &e), 0);
    snprintf(path, sizeof(path), "%s/tokenizer/smollm/tokenizer.json", LRSA_TEST_DATA);
    size_t n = 0;
    char *text = lrsa_read_file(path, &n, &e);
    snprintf(path, sizeof(path), "%s/tokenizer.json", model_dir);
    assert_int_equal(lrsa_write_file_atomic(path, text, n, &e), 0);
    free(text);
    lrsa_tokenizer *tok = fixture_tokenizer();
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    const char *users[2] = {USER,
                            "Notes follow.\n\nThe cat sat on the mat near the door. The "
                            "dog slept by the fire all day long.\n\nWhere did the dog sleep?"};
    const char *answers[2] = {"4217", "By the fire."};
    lrsa_ids ids[2] = {{0}};
    lrsa_mask mask[2] = {{0}};
    int64_t pl[2];
    for (int i = 0; i < 2; i++) {
        build_sample(tok, users[i], answers[i], &ids[i], &mask[i], &pl[i]);
        assert_int_equal(
            lrsa_dataset_writer_add(w, ids[i].v, mask[i].v, ids[i].n, pl[i], answers[i], &e), 0);
    }
    lrsa_dataset_meta meta = {.tokenizer_checksum = lrsa_tokenizer_checksum(tok),
                              .chat_template = "chatml",
                              .source = "test",
                              .task = "qa"};
    assert_int_equal(lrsa_dataset_writer_commit(w, data, &meta, &e), 0);
    lrsa_dataset_writer_free(w);
    /* --keep before --press: the flag still applies */
    snprintf(cmd, sizeof(cmd),
             "%s eval --model %s --data %s --keep 0.4 --press snapkv --window 4 --protocol "
             "agnostic --metrics nll,match --json %s 2>&1",
             LRSA_BINARY, model_dir, data, json);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("lrsa eval failed: %s", out ? out : "");
    assert_non_null(strstr(out, "agnostic"));
    free(out);
    lrsa_press_config pc = {0};
    lrsa_press_spec_defaults(&pc.spec, LRSA_PRESS_SNAPKV);
    pc.spec.keep = 0.4;
    pc.spec.window = 4;
    pc.protocol = LRSA_PROTOCOL_AGNOSTIC;
    double sum = 0.0;
    int64_t cnt = 0;
    for (int i = 0; i < 2; i++) {
        double x;
        int64_t k;
        const int64_t q = lrsa_press_question_start(tok, ids[i].v, pl[i]);
        assert_int_equal(
            lrsa_answer_nll_press(&m, ids[i].v, mask[i].v, ids[i].n, q, &pc, &x, &k, NULL, &e), 0);
        sum += x;
        cnt += k;
    }
    const double want = sum / (double)cnt, got = json_number(json, "answer_nll");
    if (!(fabs(got - want) <= 1e-6 * fabs(want)))
        fail_msg("JSON answer_nll %.9g, in-process %.9g", got, want);
    assert_float_equal(json_number(json, "keep"), 0.4, 1e-9);
    /* press flag errors name the flag */
    struct {
        const char *args, *needle;
    } bad[] = {
        {"--press snapkv --selector layer", "--selector"},
        {"--press pyramidkv --selector uniform", "per layer"},
        {"--press snapkv --protocol both", "--protocol"},
        {"--press snapkv --kernel 4", "--kernel"},
        {"--press snapkv --pool median", "--pool"},
        {"--press knorm --keep 0", "--keep"},
        {"--press compresskv", "--compresskv-file"},
        {"--press magic", "lagkv-kvpress"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd), "%s eval --model %s --data %s %s 2>&1", LRSA_BINARY, model_dir,
                 data, bad[i].args);
        int rc = tu_run(cmd, &out);
        if (rc == 0 || !out || !strstr(out, bad[i].needle))
            fail_msg("`%s`: rc %d, output lacks '%s': %s", bad[i].args, rc, bad[i].needle,
                     out ? out : "");
        free(out);
    }
    for (int i = 0; i < 2; i++) {
        lrsa_ids_free(&ids[i]);
        lrsa_mask_free(&mask[i]);
    }
    lrsa_tokenizer_free(tok);
    lrsa_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_one_is_the_full_cache),
        cmocka_unit_test(test_truncate_restores_fresh_prefill),
        cmocka_unit_test(test_question_split),
        cmocka_unit_test(test_agnostic_protocol),
        cmocka_unit_test(test_eval_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
