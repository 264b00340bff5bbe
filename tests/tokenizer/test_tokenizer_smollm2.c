/* The real SmolLM2-135M-Instruct tokenizer (models/smollm2-135m-instruct, made by
 * tools/fetch-model.sh; or $LRSA_SMOLLM2_DIR). Skipped (exit 77) when it is absent.
 * Checks the published ids, the whole parity corpus against ids from Hugging Face tokenizers
 * (smollm2_expected_ids.txt), and the chat template's special ids. */
#include <unistd.h>

#include "data/chat.h"
#include "tok_test_common.h"

static char g_dir[1024];

static lrsa_tokenizer *load(void) {
    lrsa_err e;
    lrsa_tokenizer *t = lrsa_tokenizer_load_dir(g_dir, &e);
    if (!t) fail_msg("%s", e.msg);
    return t;
}

static void expect(const lrsa_tokenizer *t, const char *text, const int32_t *want, int n) {
    lrsa_ids ids = {0};
    lrsa_err e;
    assert_int_equal(lrsa_tokenizer_encode(t, text, strlen(text), &ids, &e), 0);
    assert_int_equal(ids.n, n);
    assert_memory_equal(ids.v, want, (size_t)n * sizeof *want);
    char *d = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
    assert_string_equal(d, text);
    free(d);
    lrsa_ids_free(&ids);
}

static void test_known_ids(void **state) {
    (void)state;
    lrsa_tokenizer *t = load();
    assert_int_equal(lrsa_tokenizer_vocab_size(t), 49152);
    expect(t, "Hello world! 123", (const int32_t[]){19556, 905, 17, 216, 33, 34, 35}, 7);
    expect(t, "\n", (const int32_t[]){198}, 1);
    expect(t, "  multiple   spaces", (const int32_t[]){216, 2701, 256, 5600}, 4);
    expect(t, "The capital of France is", (const int32_t[]){504, 3575, 282, 4649, 314}, 5);
    lrsa_tokenizer_free(t);
}

static void test_corpus(void **state) {
    (void)state;
    const char *path = LRSA_TEST_DATA "/tokenizer/smollm2_expected_ids.txt";
    if (!lrsa_file_exists(path)) skip();
    lrsa_tokenizer *t = load();
    tok_corpus c;
    tok_load_corpus(&c);
    lrsa_err e;
    size_t n;
    char *exp = lrsa_read_file(path, &n, &e);
    assert_non_null(exp);
    const char *line = exp;
    int bad = 0;
    for (int k = 0; k < c.n; k++) {
        assert_non_null(line);
        lrsa_ids want = {0}, got = {0};
        for (const char *p = line; *p && *p != '\n';) {
            char *end;
            lrsa_ids_push(&want, (int32_t)strtol(p, &end, 10));
            p = end;
            while (*p == ' ') p++;
        }
        assert_int_equal(lrsa_tokenizer_encode_with_special(t, c.text[k], c.len[k], &got, &e), 0);
        if (!tok_ids_equal(&want, &got)) {
            bad++;
            fprintf(stderr, "smollm2 case %d [%.*s] differs\n", k, (int)c.len[k], c.text[k]);
        }
        lrsa_ids_free(&want);
        lrsa_ids_free(&got);
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (bad) fail_msg("%d of %d corpus cases differ from Hugging Face", bad, c.n);
    free(exp);
    free(c.buf);
    lrsa_tokenizer_free(t);
}

static void test_chat(void **state) {
    (void)state;
    lrsa_tokenizer *t = load();
    assert_int_equal(lrsa_chat_detect(t), LRSA_CHAT_CHATML_SMOLLM);
    assert_int_equal(lrsa_tokenizer_token_id(t, "<|endoftext|>"), 0);
    assert_int_equal(lrsa_tokenizer_token_id(t, "<|im_start|>"), 1);
    assert_int_equal(lrsa_tokenizer_token_id(t, "<|im_end|>"), 2);
    int32_t stop[4];
    assert_int_equal(lrsa_chat_stop_ids(t, LRSA_CHAT_CHATML_SMOLLM, stop, 4), 1);
    assert_int_equal(stop[0], 2);
    lrsa_chat_msg m[2] = {{"user", "What is the capital of France?"},
                          {"assistant", "The capital of France is Paris."}};
    lrsa_ids ids = {0};
    lrsa_mask mask = {0};
    lrsa_err e;
    assert_int_equal(lrsa_chat_build(t, LRSA_CHAT_CHATML_SMOLLM, m, 2, 0, &ids, &mask, &e), 0);
    assert_int_equal(ids.v[0], 1);
    char *d = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
    assert_string_equal(d, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                           "trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the "
                           "capital of France?<|im_end|>\n<|im_start|>assistant\nThe capital of "
                           "France is Paris.<|im_end|>\n");
    free(d);
    /* the trained tokens are exactly the answer and its <|im_end|> */
    lrsa_ids trained = {0};
    for (int64_t i = 0; i < ids.n; i++)
        if (mask.v[i]) lrsa_ids_push(&trained, ids.v[i]);
    d = lrsa_tokenizer_decode(t, trained.v, trained.n, 0);
    assert_string_equal(d, "The capital of France is Paris.<|im_end|>");
    free(d);
    lrsa_ids_free(&trained);
    lrsa_ids_free(&ids);
    lrsa_mask_free(&mask);
    lrsa_tokenizer_free(t);
}

int main(void) {
    const char *env = getenv("LRSA_SMOLLM2_DIR");
    snprintf(g_dir, sizeof g_dir, "%s",
             env && *env ? env : LRSA_SOURCE_DIR "/models/smollm2-135m-instruct");
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", g_dir);
    if (access(probe, R_OK) != 0) {
        printf("skipped: no SmolLM2 tokenizer at %s (run tools/fetch-model.sh)\n", g_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_ids),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_chat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
