/* Parity with Hugging Face `tokenizers`: for four small byte-level BPE vocabularies configured
 * like GPT-2, SmolLM, Llama-3 and Qwen2 (tools/make_tokenizer_fixtures.py), every corpus case
 * must encode to exactly the ids HF produced, and decode back to the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_test_common.h"

static void check_tokenizer(const char *name) {
    tok_corpus c;
    tok_load_corpus(&c);
    lrsa_tokenizer *t = tok_fixture(name);
    lrsa_err e;
    char path[512];
    snprintf(path, sizeof path, LRSA_TEST_DATA "/tokenizer/%s/expected_ids.txt", name);
    size_t n;
    char *exp = lrsa_read_file(path, &n, &e);
    if (!exp) fail_msg("%s", e.msg);
    const char *line = exp;
    int failures = 0;
    static int32_t want[4096];
    for (int k = 0; k < c.n; k++) {
        assert_non_null(line);
        int nw = tok_parse_ids(line, want, 4096);
        lrsa_ids got = {0};
        /* plain encode must agree wherever the text holds no added-token string */
        int plain_too = !tok_find(c.text[k], c.text[k] + c.len[k], "<|", 2);
        failures += tok_check_encode(t, name, &c, k, want, nw, plain_too, &got);
        /* decoding gives the text back (NFC-normalized for Qwen2) */
        char *back = lrsa_tokenizer_decode(t, got.v, got.n, 0);
        const char *text = c.text[k];
        size_t len = c.len[k];
        utf8proc_uint8_t *nfc = NULL;
        if (strcmp(name, "qwen2") == 0) {
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                              &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            assert_true(m >= 0);
            text = (const char *)nfc, len = (size_t)m;
        }
        if (memcmp(back, text, len) != 0 || back[len] != 0) {
            failures++;
            fprintf(stderr, "%s case %d: decode differs: [%s]\n", name, k, back);
        }
        free(nfc);
        free(back);
        lrsa_ids_free(&got);
        line = strchr(line, '\n');
        if (line) line++;
    }
    assert_true(line == NULL || *line == 0); /* as many expected lines as cases */
    assert_true(c.n > 60);
    if (failures) fail_msg("%s: %d of %d cases differ from Hugging Face", name, failures, c.n);
    free(exp);
    free(c.buf);
    lrsa_tokenizer_free(t);
}

static void test_fixture(void **state) {
    check_tokenizer(*state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TOK_FIXTURE_TEST("test_gpt2", test_fixture, "gpt2"),
        TOK_FIXTURE_TEST("test_smollm", test_fixture, "smollm"),
        TOK_FIXTURE_TEST("test_llama3", test_fixture, "llama3"),
        TOK_FIXTURE_TEST("test_qwen2", test_fixture, "qwen2"),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
