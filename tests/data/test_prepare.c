/* `lrsa prepare` on JSONL: samples, loss masks, errors with line numbers, --skip-bad, --max-len
 * (middle truncation and dropping), atomic output. Uses the tokenizer fixture of data/tok. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "data/jsonl.h"
#include "data/tokenizer.h"
#include "prepare_cli.h"
#include "test_util.h"

#define MODEL PREPARE_MODEL

static lrsa_tokenizer *tok;

static int setup(void **state) {
    lrsa_err e;
    tok = lrsa_tokenizer_load_dir(MODEL, &e);
    if (!tok) fprintf(stderr, "cannot load %s: %s\n", MODEL, e.msg);
    return tok ? 0 : -1;
}
static int teardown(void **state) {
    lrsa_tokenizer_free(tok);
    return 0;
}

static void write_text(const char *path, const char *text) {
    lrsa_err e;
    assert_int_equal(lrsa_write_file_atomic(path, text, strlen(text), &e), 0);
}

/* Runs `lrsa prepare ARGS`; returns the exit status, output in *out (may be NULL). */
static int prepare(const char *args, char **out) {
    return prepare_cli(NULL, args, out);
}

static char *decode(const int32_t *ids, int64_t n) {
    return lrsa_tokenizer_decode(tok, ids, n, 0);
}

/* The text of the masked tokens of sample i. */
static char *masked_text(const lrsa_dataset *d, int64_t i) {
    const int32_t *ids = lrsa_dataset_ids(d, i);
    const uint8_t *m = lrsa_dataset_mask(d, i);
    int64_t n = lrsa_dataset_len(d, i), k = 0;
    int32_t *sel = malloc((size_t)n * sizeof(int32_t));
    for (int64_t t = 0; t < n; t++)
        if (m[t]) sel[k++] = ids[t];
    char *s = decode(sel, k);
    free(sel);
    return s;
}

static void test_happy_path_and_loss_mask(void **state) {
    char dir[1024], in[1100], out[1100];
    tu_tmpdir(dir, sizeof dir, "prep_ok");
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    /* Starts with a UTF-8 byte-order mark, as some editors write. */
    write_text(
        in,
        "\xEF\xBB\xBF{\"context\": \"The sky was blue and the grass was green.\", \"question\": "
        "\"What colour was the sky?\", \"answer\": \"blue\"}\n"
        "\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi there\"}, {\"role\": "
        "\"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": "
        "\"Say yes\"}, {\"role\": \"assistant\", \"content\": \"yes\"}]}\n");
    char *o;
    char args[4096];
    snprintf(args, sizeof args, "--input %s --out %s", in, out);
    int rc = prepare(args, &o);
    if (rc != 0) fail_msg("prepare failed: %s", o);
    free(o);
    lrsa_dataset d;
    lrsa_err e;
    if (lrsa_dataset_open(&d, out, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 2);
    assert_string_equal(lrsa_dataset_answer(&d, 0), "blue");
    assert_string_equal(lrsa_dataset_answer(&d, 1), "yes");
    assert_string_equal(d.task, "jsonl");
    assert_string_equal(d.tokenizer_checksum, lrsa_tokenizer_checksum(tok));
    assert_string_equal(d.chat_template, "chatml-smollm");

    /* Sample 0: the loss covers exactly the answer and its end token. */
    char *m = masked_text(&d, 0);
    assert_string_equal(m, "blue<|im_end|>");
    free(m);
    char *prompt = decode(lrsa_dataset_ids(&d, 0), lrsa_dataset_prompt_len(&d, 0));
    assert_non_null(strstr(prompt, "The sky was blue and the grass was green.\n\nWhat colour was "
                                   "the sky?<|im_end|>"));
    const char *tail = "<|im_start|>assistant\n";
    assert_true(strlen(prompt) > strlen(tail));
    assert_string_equal(prompt + strlen(prompt) - strlen(tail), tail);
    free(prompt);
    /* Sample 1 (chat form): every assistant turn is in the loss by default. */
    m = masked_text(&d, 1);
    assert_string_equal(m, "Hello!<|im_end|>yes<|im_end|>");
    free(m);
    lrsa_dataset_close(&d);

    /* --loss last: only the final answer. */
    snprintf(args, sizeof args, "--input %s --out %s --loss last", in, out);
    assert_int_equal(prepare(args, NULL), 0);
    assert_int_equal(lrsa_dataset_open(&d, out, &e), 0);
    m = masked_text(&d, 1);
    assert_string_equal(m, "yes<|im_end|>");
    free(m);
    lrsa_dataset_close(&d);
}

/* Each bad record is rejected with file:line and a hint. */
static void test_record_errors(void **state) {
    static const struct {
        const char *line, *expect;
    } cases[] = {
        {"{\"context\": \"c\", \"question\": \"q\", \"answer\": \"a\"", "invalid JSON"},
        {"not json", "invalid JSON"},
        {"[1, 2]", "not an object"},
        {"{\"context\": \"c\", \"answer\": \"a\"}", "missing field \"question\""},
        {"{\"context\": \"c\", \"question\": \"q\"}", "missing field \"answer\""},
        {"{\"context\": 3, \"question\": \"q\", \"answer\": \"a\"}",
         "\"context\" must be a string"},
        {"{\"context\": \"c\", \"question\": \"q\", \"answer\": \"\"}", "\"answer\" is empty"},
        {"{\"context\": \"c\", \"question\": \"q\", \"answer\": \"a\"} x", "unexpected text"},
        {"{\"messages\": []}", "non-empty list"},
        {"{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}", "not one of"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "last message"},
        {"{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}", "no \"user\" turn"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 1}, {\"role\": \"assistant\", "
         "\"content\": \"x\"}]}",
         "\"content\" must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lrsa_qa_record r;
        lrsa_err e;
        int rc = lrsa_jsonl_parse_record(cases[i].line, strlen(cases[i].line), "f.jsonl",
                                         (int64_t)i + 7, &r, &e);
        if (rc != -1) fail_msg("case %zu accepted: %s", i, cases[i].line);
        char where[64];
        snprintf(where, sizeof where, "f.jsonl:%zu", i + 7);
        if (!strstr(e.msg, where) || !strstr(e.msg, cases[i].expect))
            fail_msg("case %zu: message '%s' lacks '%s' or '%s'", i, e.msg, where, cases[i].expect);
    }
    lrsa_qa_record r;
    lrsa_err e;
    /* a raw NUL inside a string would cut the context short without a word: refused */
    const char nul[] = "{\"context\": \"c\0d\", \"question\": \"q\", \"answer\": \"a\"}";
    assert_int_equal(lrsa_jsonl_parse_record(nul, sizeof nul - 1, "f.jsonl", 3, &r, &e), -1);
    if (!strstr(e.msg, "f.jsonl:3:15") || !strstr(e.msg, "NUL")) fail_msg("message: %s", e.msg);
    /* What cJSON takes silently is refused with the field and the column: an escaped NUL (it
     * would cut the field), invalid raw UTF-8, and a lone surrogate escape (named as such, not
     * as a quoting problem). */
    static const struct {
        const char *line, *needle[3];
    } text_cases[] = {
        {"{\"context\": \"ab\\u0000cd\", \"question\": \"q\", \"answer\": \"a\"}",
         {"f.jsonl:5:16", "field \"context\"", "\\u0000"}},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
         "\"content\": \"x\\u0000\"}]}",
         {"f.jsonl:5:", "field \"messages[1].content\"", "NUL"}},
        {"{\"context\": \"caf\xe9!\", \"question\": \"q\", \"answer\": \"a\"}",
         {"f.jsonl:5:17", "0xe9", "not valid UTF-8"}},
        {"{\"context\": \"c\", \"question\": \"q\", \"answer\": \"\xf0\x9f\x98\"}",
         {"field \"answer\"", "0xf0", "UTF-8"}},
        {"{\"context\": \"c\", \"question\": \"\\ud83d!\", \"answer\": \"a\"}",
         {"f.jsonl:5:31", "\\uD83D", "lone UTF-16 surrogate"}},
        {"{\"context\": \"c\", \"question\": \"q\", \"answer\": \"\\udc00\"}",
         {"field \"answer\"", "\\uDC00", "no high surrogate"}},
        {"{\"context\": \"\\u12g4\", \"question\": \"q\", \"answer\": \"a\"}",
         {"field \"context\"", "four hex digits", NULL}},
    };
    for (size_t i = 0; i < sizeof text_cases / sizeof text_cases[0]; i++) {
        const char *line = text_cases[i].line;
        if (lrsa_jsonl_parse_record(line, strlen(line), "f.jsonl", 5, &r, &e) != -1)
            fail_msg("text case %zu accepted: %s", i, line);
        for (int k = 0; k < 3 && text_cases[i].needle[k]; k++)
            if (!strstr(e.msg, text_cases[i].needle[k]))
                fail_msg("text case %zu: message lacks '%s': %s", i, text_cases[i].needle[k],
                         e.msg);
        assert_null(strstr(e.msg, "quotes, commas and braces"));
    }
    /* valid escapes and raw UTF-8 pass whole: a pair, an escaped backslash before "u0000" */
    const char *fine = "{\"context\": \"\\ud83d\\ude00 \xc3\xa9 \\\\u0000\", \"question\": \"q\", "
                       "\"answer\": \"a\"}";
    assert_int_equal(lrsa_jsonl_parse_record(fine, strlen(fine), "f", 1, &r, &e), 0);
    assert_string_equal(r.msgs[0].content, "\xf0\x9f\x98\x80 \xc3\xa9 \\u0000\n\nq");
    lrsa_qa_record_free(&r);
    assert_int_equal(lrsa_jsonl_parse_record("  \r", 3, "f", 1, &r, &e), 1);
    const char *ok = "{\"context\": \"\", \"question\": \"q?\", \"answer\": \"a\", \"system\": "
                     "\"s\", \"extra\": 1}";
    assert_int_equal(lrsa_jsonl_parse_record(ok, strlen(ok), "f", 1, &r, &e), 0);
    assert_int_equal(r.n_msgs, 3);
    assert_string_equal(r.msgs[1].content, "q?"); /* empty context: just the question */
    assert_string_equal(r.answer, "a");
    lrsa_qa_record_free(&r);
}

static int count_files(const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    char *o = NULL;
    tu_run(cmd, &o);
    int n = o ? atoi(o) : -1;
    free(o);
    return n;
}

static void test_bad_line_fails_atomically_and_skip_bad_counts(void **state) {
    char dir[1024], in[1100], out[1100], args[4096];
    tu_tmpdir(dir, sizeof dir, "prep_bad");
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    write_text(in, "{\"context\": \"c\", \"question\": \"q\", \"answer\": \"a\"}\n"
                   "{\"context\": \"c\", \"question\": \"q\", \"answer\": 5}\n"
                   "{\"context\": \"c\", \"question\": \"q\", \"answer\": \"b\"}\n"
                   "{oops\n"
                   "{\"context\": \"\xff\", \"question\": \"q\", \"answer\": \"c\"}\n");
    snprintf(args, sizeof args, "--input %s --out %s", in, out);
    char *o;
    assert_int_not_equal(prepare(args, &o), 0);
    char where[1200];
    snprintf(where, sizeof where, "%s:2", in);
    if (!strstr(o, where) || !strstr(o, "--skip-bad")) fail_msg("unexpected message: %s", o);
    free(o);
    assert_false(lrsa_file_exists(out));
    assert_int_equal(count_files(dir), 1); /* only the input: no temporary file left */

    snprintf(args, sizeof args, "--input %s --out %s --skip-bad", in, out);
    assert_int_equal(prepare(args, &o), 0);
    if (!strstr(o, "3 bad lines skipped") || !strstr(o, "wrote 2 samples"))
        fail_msg("unexpected summary: %s", o);
    snprintf(where, sizeof where, "%s:4", in);
    assert_non_null(strstr(o, where));            /* each skipped line is reported */
    snprintf(where, sizeof where, "%s:5:14", in); /* invalid UTF-8 counts as a bad line */
    assert_non_null(strstr(o, where));
    free(o);
    lrsa_dataset d;
    lrsa_err e;
    assert_int_equal(lrsa_dataset_open(&d, out, &e), 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(lrsa_dataset_answer(&d, 1), "b");
    lrsa_dataset_close(&d);

    /* Unknown flags and a missing input are clear errors. */
    assert_int_not_equal(prepare("--input /nonexistent.jsonl --out x.h5", &o), 0);
    assert_non_null(strstr(o, "/nonexistent.jsonl"));
    free(o);
    assert_int_not_equal(prepare("--bogus 1", &o), 0);
    assert_non_null(strstr(o, "--bogus"));
    free(o);
}

/* A long context is cut in its middle: beginning, end, question and answer survive. */
static void test_middle_truncation_and_drop(void **state) {
    char dir[1024], in[1100], out[1100], args[4096];
    tu_tmpdir(dir, sizeof dir, "prep_trunc");
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    char line[8192];
    size_t n = (size_t)snprintf(line, sizeof line, "{\"context\": \"Opening words here.");
    for (int i = 0; i < 40; i++) n += (size_t)snprintf(line + n, sizeof line - n, " filler %d", i);
    n += (size_t)snprintf(line + n, sizeof line - n, " Middlemost.");
    for (int i = 0; i < 40; i++) n += (size_t)snprintf(line + n, sizeof line - n, " padding %d", i);
    n += (size_t)snprintf(line + n, sizeof line - n,
                          " Closing words here.\", \"question\": \"Which words open it?\", "
                          "\"answer\": \"Opening words\"}\n{\"context\": \"short\", "
                          "\"question\": \"q\", \"answer\": \"a\"}\n");
    /* A question too long to fit whatever happens to the context. */
    n += (size_t)snprintf(line + n, sizeof line - n, "{\"context\": \"c\", \"question\": \"");
    for (int i = 0; i < 60; i++) n += (size_t)snprintf(line + n, sizeof line - n, "why %d ", i);
    snprintf(line + n, sizeof line - n, "\", \"answer\": \"a\"}\n");
    write_text(in, line);
    snprintf(args, sizeof args, "--input %s --out %s --max-len 110", in, out);
    char *o;
    if (prepare(args, &o) != 0) fail_msg("%s", o);
    assert_non_null(strstr(o, "1 truncated"));
    assert_non_null(strstr(o, "1 dropped: question + answer alone exceed"));
    free(o);
    lrsa_dataset d;
    lrsa_err e;
    assert_int_equal(lrsa_dataset_open(&d, out, &e), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.max_len, 110);
    assert_true(lrsa_dataset_len(&d, 0) <= 110);
    assert_true(lrsa_dataset_len(&d, 0) >= 95); /* cut only as much as needed */
    char *text = decode(lrsa_dataset_ids(&d, 0), lrsa_dataset_len(&d, 0));
    assert_non_null(strstr(text, "Opening words"));
    assert_non_null(strstr(text, "Closing words here.\n\nWhich words open it?<|im_end|>"));
    assert_null(strstr(text, "Middlemost"));
    free(text);
    char *m = masked_text(&d, 0);
    assert_string_equal(m, "Opening words<|im_end|>");
    free(m);
    lrsa_dataset_close(&d);

    snprintf(args, sizeof args, "--input %s --out %s --max-len 80 --overflow drop", in, out);
    assert_int_equal(prepare(args, &o), 0);
    assert_non_null(strstr(o, "2 over --max-len dropped"));
    free(o);
    assert_int_equal(lrsa_dataset_open(&d, out, &e), 0);
    assert_int_equal(d.n, 1);
    assert_string_equal(lrsa_dataset_answer(&d, 0), "a");
    lrsa_dataset_close(&d);
}

/* --out in a directory that does not exist yet: prepare creates it, but only on success. */
static void test_out_directory_is_created_on_success_only(void **state) {
    char dir[1024], in[1100], out[1200], args[4096];
    tu_tmpdir(dir, sizeof dir, "prep_mkdir");
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    write_text(in, "{\"context\": \"c\", \"question\": \"q\", \"answer\": 5}\n");
    snprintf(out, sizeof out, "%s/bad/sub/out.h5", dir);
    snprintf(args, sizeof args, "--input %s --out %s", in, out);
    char *o;
    assert_int_not_equal(prepare(args, &o), 0);
    free(o);
    char parent[1200];
    snprintf(parent, sizeof parent, "%s/bad", dir);
    assert_false(lrsa_file_exists(parent)); /* a failed run creates nothing */

    write_text(in, "{\"context\": \"c\", \"question\": \"q\", \"answer\": \"a\"}\n");
    snprintf(out, sizeof out, "%s/new/sub/out.h5", dir);
    snprintf(args, sizeof args, "--input %s --out %s", in, out);
    if (prepare(args, &o) != 0) fail_msg("prepare failed: %s", o);
    free(o);
    lrsa_dataset d;
    lrsa_err e;
    if (lrsa_dataset_open(&d, out, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 1);
    lrsa_dataset_close(&d);
}

/* A SentencePiece-style tokenizer with --template llama2 / mistral: the loss covers the answer
 * (with the space the template puts after it, for Llama 2) and </s>; the prompt ends with
 * [/INST]. */
static void test_llama2_and_mistral_templates(void **state) {
    const char *spm = LRSA_TEST_DATA "/tokenizer/spm";
    lrsa_err e;
    lrsa_tokenizer *t = lrsa_tokenizer_load_dir(spm, &e);
    if (!t) fail_msg("%s", e.msg);
    char dir[1024], in[1100], out[1100], cmd[8192];
    tu_tmpdir(dir, sizeof dir, "prep_inst");
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    write_text(in, "{\"context\": \"The sky was blue.\", \"question\": \"What colour?\", "
                   "\"answer\": \"blue\"}\n");
    const char *fmt[2] = {"llama2", "mistral"}, *want[2] = {"blue </s>", "blue</s>"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s prepare --model %s --template %s --input %s --out %s 2>&1",
                 LRSA_BINARY, spm, fmt[k], in, out);
        char *o = NULL;
        if (tu_run(cmd, &o) != 0) fail_msg("prepare failed: %s", o);
        free(o);
        lrsa_dataset d;
        if (lrsa_dataset_open(&d, out, &e) != 0) fail_msg("%s", e.msg);
        assert_string_equal(d.chat_template, fmt[k]);
        const int32_t *ids = lrsa_dataset_ids(&d, 0);
        const uint8_t *m = lrsa_dataset_mask(&d, 0);
        int64_t n = lrsa_dataset_len(&d, 0), p = lrsa_dataset_prompt_len(&d, 0), k2 = 0;
        int32_t sel[256];
        for (int64_t i = 0; i < n && k2 < 256; i++)
            if (m[i]) sel[k2++] = ids[i];
        char *answer = lrsa_tokenizer_decode(t, sel, k2, 0);
        assert_string_equal(answer, want[k]);
        char *prompt = lrsa_tokenizer_decode(t, ids, p, 0);
        const char *end = " [/INST]";
        assert_string_equal(prompt + strlen(prompt) - strlen(end), end);
        assert_int_equal(ids[0], 1); /* <s> */
        free(answer);
        free(prompt);
        lrsa_dataset_close(&d);
    }
    lrsa_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_and_mistral_templates),
        cmocka_unit_test(test_happy_path_and_loss_mask),
        cmocka_unit_test(test_record_errors),
        cmocka_unit_test(test_bad_line_fails_atomically_and_skip_bad_counts),
        cmocka_unit_test(test_middle_truncation_and_drop),
        cmocka_unit_test(test_out_directory_is_created_on_success_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
