/* `lrsa tokenize`: ids match the library (and so Hugging Face), decode round-trips, and bad
 * input gives a clear error with a non-zero exit. */
#include "tok_test_common.h"

#define FIX LRSA_TEST_DATA "/tokenizer/smollm"

static int run(const char *cmd, char **out) {
    char full[2048];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    return tu_run(full, out);
}

static void test_encode_decode(void **state) {
    (void)state;
    char *out = NULL;
    /* the first corpus case, "Hello world! 123": its HF ids are line 1 of expected_ids.txt */
    assert_int_equal(run("printf 'Hello world! 123' | " LRSA_BINARY " tokenize --model " FIX, &out),
                     0);
    lrsa_err e;
    size_t n;
    char *exp = lrsa_read_file(FIX "/expected_ids.txt", &n, &e);
    assert_non_null(exp);
    *strchr(exp, '\n') = 0;
    assert_int_equal(strncmp(out, exp, strlen(exp)), 0);
    assert_string_equal(out + strlen(exp), "\n");
    free(out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "echo '%s' | %s tokenize --model %s --decode", exp, LRSA_BINARY, FIX);
    assert_int_equal(run(cmd, &out), 0);
    assert_string_equal(out, "Hello world! 123");
    free(out);
    free(exp);
    /* --text, a tokenizer.json path, and --special */
    assert_int_equal(run(LRSA_BINARY " tokenize --model " FIX "/tokenizer.json --special "
                                     "--text '<|im_start|>hi'",
                         &out),
                     0);
    lrsa_tokenizer *t = tok_fixture("smollm");
    char want[64];
    snprintf(want, sizeof want, "%d ", lrsa_tokenizer_token_id(t, "<|im_start|>"));
    assert_int_equal(strncmp(out, want, strlen(want)), 0);
    free(out);
    snprintf(cmd, sizeof cmd, "echo '%d 5' | %s tokenize --model %s --decode",
             lrsa_tokenizer_token_id(t, "<|im_end|>"), LRSA_BINARY, FIX);
    assert_int_equal(run(cmd, &out), 0);
    char *five = lrsa_tokenizer_decode(t, (const int32_t[]){5}, 1, 0);
    assert_string_equal(out, five); /* the special <|im_end|> is skipped */
    free(five);
    free(out);
    lrsa_tokenizer_free(t);
    /* --add-special-tokens on the Llama-2-style fixture: <s> (id 1), then HF's ids */
    exp = lrsa_read_file(LRSA_TEST_DATA "/tokenizer/spm/expected_llama2.txt", &n, &e);
    assert_non_null(exp);
    *strchr(exp, '\n') = 0;
    assert_int_equal(run("printf 'Hello world! 123' | " LRSA_BINARY
                         " tokenize --model " LRSA_TEST_DATA "/tokenizer/spm --add-special-tokens",
                         &out),
                     0);
    assert_int_equal(strncmp(out, "1 ", 2), 0);
    assert_int_equal(strncmp(out + 2, exp, strlen(exp)), 0);
    free(out);
    free(exp);
    assert_int_equal(run(LRSA_BINARY " tokenize --model " FIX " --info", &out), 0);
    assert_non_null(strstr(out, "chat_format chatml-smollm"));
    assert_non_null(strstr(out, "vocab_size 1359"));
    free(out);
    assert_int_equal(run(LRSA_BINARY " tokenize --help", &out), 0);
    assert_non_null(strstr(out, "usage: lrsa tokenize"));
    free(out);
}

static void test_errors(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_not_equal(run(LRSA_BINARY " tokenize --text hi", &out), 0);
    assert_non_null(strstr(out, "--model"));
    free(out);
    assert_int_not_equal(run(LRSA_BINARY " tokenize --model /nonexistent --text hi", &out), 0);
    assert_non_null(strstr(out, "/nonexistent"));
    free(out);
    assert_int_not_equal(
        run("echo '1 two 3' | " LRSA_BINARY " tokenize --decode --model " FIX, &out), 0);
    assert_non_null(strstr(out, "id number 2"));
    free(out);
    assert_int_not_equal(
        run("echo '99999999' | " LRSA_BINARY " tokenize --decode --model " FIX, &out), 0);
    assert_non_null(strstr(out, "0..1358"));
    free(out);
    assert_int_not_equal(run(LRSA_BINARY " tokenize --model " FIX " --bogus", &out), 0);
    assert_non_null(strstr(out, "--bogus"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
