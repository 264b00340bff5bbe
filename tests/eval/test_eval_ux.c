/* What `lrsa eval` and `lrsa generate` tell their user (issue 14): the warnings for presses that
 * do less than asked (LagKV on sequences shorter than sink + 2*lag, lagkv-kvpress below sink +
 * tail, LRSA training on short samples), the progress line on a terminal and only there, the
 * --json path checked before the run, `--flag=value` read like `--flag value`, NLL without
 * tokenizer.json, and `generate --protocol agnostic`. A tiny random model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "eval/run/press_notes.h"
#include "test_util.h"
#include "tiny_model.h"
#include "train/attn_mix.h"

enum { V = 97 };

static char dir[1024], model_dir[1200], data[1200];

/* Three samples of 80, 45 and 61 tokens, answers of 7, 5 and 9 tokens at the end, written as
 * `lrsa prepare` would (a tokenizer checksum in the file). */
static void write_data(const char *path) {
    lrsa_err e = {{0}};
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    const int lens[3] = {80, 45, 61}, ans[3] = {7, 5, 9};
    for (int s = 0; s < 3; s++) {
        int32_t ids[80];
        uint8_t mask[80];
        tiny_random_ids(ids, lens[s], V, 50 + s);
        for (int t = 0; t < lens[s]; t++) mask[t] = t >= lens[s] - ans[s];
        assert_int_equal(lrsa_dataset_writer_add(w, ids, mask, lens[s], lens[s] - ans[s], "x", &e),
                         0);
    }
    lrsa_dataset_meta meta = {.tokenizer_checksum = "0123456789abcdef",
                              .chat_template = "chatml",
                              .source = "test",
                              .task = "random"};
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &meta, &e), 0);
    lrsa_dataset_writer_free(w);
}

static int setup(void **state) {
    (void)state;
    tu_tmpdir(dir, sizeof dir, "eval_ux");
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(data, sizeof data, "%s/qa.h5", dir);
    tiny_model_save_dir(model_dir, 2, V, 0, 41, 0); /* no tokenizer.json */
    write_data(data);
    return 0;
}

/* `lrsa eval --model M --data D ARGS`, stderr merged; returns the exit status. */
static int eval(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s %s 2>&1", LRSA_BINARY, model_dir, data,
             args);
    return tu_run(cmd, out);
}

static double json_number(const char *path, const char *key) {
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(path, NULL, &e);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "results"), 0);
    const cJSON *v = cJSON_GetObjectItem(row, key);
    if (!cJSON_IsNumber(v)) fail_msg("%s: no number '%s'", path, key);
    double x = v->valuedouble;
    cJSON_Delete(root);
    return x;
}

static int count_of(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void must_contain(const char *out, const char *needle, const char *what) {
    if (!out || !strstr(out, needle)) fail_msg("%s: output lacks '%s':\n%s", what, needle, out);
}

/* The NLL needs no tokenizer (this model directory has none, the data has a checksum); an
 * unwritable --json fails before the run; `--flag=value` gives the same row as `--flag value`. */
static void test_json_path_and_equals_flags(void **state) {
    (void)state;
    char json1[1400], json2[1400], args[4096];
    snprintf(json1, sizeof json1, "%s/a.json", dir);
    snprintf(json2, sizeof json2, "%s/b.json", dir);
    char *out = NULL;
    snprintf(args, sizeof args,
             "--metrics nll --press lagkv --sink 2 --lag 8 --keep 0.25 --json %s", json1);
    if (eval(args, &out) != 0) fail_msg("eval without tokenizer.json: %s", out);
    free(out);
    snprintf(args, sizeof args,
             "--metrics=nll --press=lagkv --sink=2 --lag=8 --keep=0.25 --json=%s", json2);
    if (eval(args, &out) != 0) fail_msg("eval with --flag=value: %s", out);
    free(out);
    assert_true(json_number(json1, "answer_nll") == json_number(json2, "answer_nll"));
    assert_true(json_number(json1, "kept_fraction") < 1.0);

    /* what does need the tokenizer says why, and how to do without */
    assert_int_not_equal(eval("--press lagkv --lag 8 --protocol agnostic", &out), 0);
    must_contain(out, "--protocol agnostic needs the model's tokenizer", "agnostic");
    must_contain(out, "to find where each question starts", "agnostic");
    must_contain(out, "tokenizer.json", "agnostic");
    free(out);

    /* --keep=0 is refused like --keep 0, naming the flag */
    assert_int_not_equal(eval("--press lagkv --keep=0", &out), 0);
    must_contain(out, "keep", "--keep=0");
    assert_null(strstr(out, "unknown argument"));
    free(out);

    /* a --json that cannot be written: refused before the model is even read */
    const char *bad[] = {"--json /nonexistent-lrsa-dir/out.json", "--json=/nonexistent-lrsa-dir/x"};
    for (int i = 0; i < 2; i++) {
        assert_int_not_equal(eval(bad[i], &out), 0);
        must_contain(out, "/nonexistent-lrsa-dir", bad[i]);
        must_contain(out, "does not exist", bad[i]);
        assert_null(strstr(out, "answer_nll")); /* no results table: nothing ran */
        free(out);
    }
    snprintf(args, sizeof args, "--json %s", dir);
    assert_int_not_equal(eval(args, &out), 0);
    must_contain(out, "is a directory", "--json DIR");
    free(out);
}

/* LagKV on prompts shorter than sink + 2*lag keeps everything: said once, with the lengths and
 * the lag that would compress them; not said when the prompts are long enough. */
static void test_short_prompt_warning(void **state) {
    (void)state;
    char json[1400], args[4096];
    snprintf(json, sizeof json, "%s/short.json", dir);
    char *out = NULL;
    snprintf(args, sizeof args, "--n 2 --press lagkv --sink 2 --lag 64 --keep 0.5 --json %s", json);
    if (eval(args, &out) != 0) fail_msg("%s", out);
    /* prompts (before the answer) of 73 and 40 tokens; lag (40 - 2) / 2 = 19 compresses both */
    must_contain(out, "lrsa: warning: 2 of 2 prompts (40 to 73 tokens)", "short");
    must_contain(out, "sink + 2*lag = 2 + 2*64 = 130", "short");
    must_contain(out, "--lag 19 or less (with --sink 2)", "short");
    assert_int_equal(count_of(out, "lrsa: warning:"), 1); /* once per run, not per sample */
    free(out);
    assert_true(json_number(json, "kept_fraction") == 1.0); /* what the warning is about */
    if (eval("--n 2 --press lagkv --sink 2 --lag 19 --keep 0.5", &out) != 0) fail_msg("%s", out);
    assert_null(strstr(out, "warning"));
    free(out);
    /* lagkv-kvpress under sink + tail: the note names the rows each tool keeps */
    if (eval("--n 2 --press lagkv-kvpress --sink 2 --lag 8 --keep 0.2", &out) != 0)
        fail_msg("%s", out);
    must_contain(out, "lrsa: note: lagkv-kvpress: in 2 of 2 sequences", "kvpress");
    must_contain(out, "e.g. 14 of 73 rows kept, sink 2 + tail 15", "kvpress");
    must_contain(out, "drops some sink rows", "kvpress");
    free(out);
}

/* A progress line on a terminal (run under script(1)'s pseudo-terminal), none in a pipe. */
static void test_progress_on_terminal_only(void **state) {
    (void)state;
    char *out = NULL;
    if (eval("--n 2", &out) != 0) fail_msg("%s", out);
    assert_null(strstr(out, "ETA"));
    free(out);
    if (tu_run("command -v script >/dev/null 2>&1", NULL) != 0) {
        print_message("script(1) not found: the terminal half of the test is skipped\n");
        return;
    }
    char cmd[8192];
    /* --batch 1: a line before each sample (batched runs print one before each batch) */
    snprintf(cmd, sizeof cmd,
             "script -qec '%s eval --model %s --data %s --n 2 --batch 1' /dev/null 2>&1",
             LRSA_BINARY, model_dir, data);
    if (tu_run(cmd, &out) != 0) fail_msg("%s", out);
    must_contain(out, "eval: sample 1/2", "tty");
    must_contain(out, "eval: sample 2/2", "tty");
    must_contain(out, "ETA", "tty");
    must_contain(out, "eval: 2 samples in", "tty");
    free(out);
}

/* The notes themselves: the example (keep 1/4 of an 873-token prompt, S 16, L 128),
 * LRSA training on short samples, and silence where nothing is lost. */
static void test_notes(void **state) {
    (void)state;
    char buf[1024];
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_LAGKV_KVPRESS);
    s.lagkv = (lrsa_lagkv_params){16, 128, 0.25f, 1.0f};
    lrsa_press_set_keep(&s, 0.25);
    const int64_t lens[2] = {873, 2000};
    assert_int_equal(lrsa_kvpress_tail_note(&s, lens, 2, buf, sizeof buf), 1);
    /* n = 6 partitions, tail = 873 - 16 - 5*128 = 217 rows, budget (int)(0.25*873) = 218 */
    must_contain(buf, "in 1 of 2 sequences", "873");
    must_contain(buf, "218 of 873 rows kept, sink 16 + tail 217", "873");
    lrsa_press_set_keep(&s, 0.5);
    assert_int_equal(lrsa_kvpress_tail_note(&s, lens, 2, buf, sizeof buf), 0);
    s.method = LRSA_PRESS_SNAPKV;
    assert_int_equal(lrsa_kvpress_tail_note(&s, lens, 2, buf, sizeof buf), 0);

    const lrsa_lagkv_params p = {16, 128, 0.25f, 1.0f};
    const int64_t some[3] = {300, 100, 271}, tiny[1] = {17};
    assert_int_equal(
        lrsa_lagkv_short_note(&p, some, 3, "prompt", "x", "--sink", "--lag", buf, sizeof buf), 1);
    must_contain(buf, "2 of 3 prompts (100 to 271 tokens)", "short");
    must_contain(buf, "--lag 42 or less (with --sink 16)", "short");
    assert_int_equal(
        lrsa_lagkv_short_note(&p, tiny, 1, "prompt", "x", "--sink", "--lag", buf, sizeof buf), 1);
    must_contain(buf, "the prompt (17 tokens) is shorter", "tiny");
    must_contain(buf, "lower --sink (now 16)", "tiny");
    assert_int_equal(
        lrsa_lagkv_short_note(&p, some, 1, "prompt", "x", "--sink", "--lag", buf, sizeof buf), 0);

    /* training: the samples of this dataset (80, 45, 61 tokens) against attention.lag */
    lrsa_dataset d;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_dataset_open(&d, data, &e), 0);
    lrsa_attn_mix m = {.base = {.mode = LRSA_ATTN_LRSA, .lagkv = {16, 32, 0.5f, 1.0f}}};
    assert_int_equal(lrsa_attn_mix_short_note(&m, &d, 0, buf, sizeof buf), 1);
    must_contain(buf, "2 of 3 training samples (45 to 61 tokens)", "train");
    must_contain(buf, "dense attention", "train");
    must_contain(buf, "attention.lag 14 or less (with attention.sink 16)", "train");
    assert_int_equal(lrsa_attn_mix_short_note(&m, &d, 50, buf, sizeof buf), 1); /* max_len 50 */
    must_contain(buf, "the training sample (45 tokens) is shorter", "max_len");
    m.base.lagkv.keep = 1.0f; /* keep 1 is dense by design: no warning */
    assert_int_equal(lrsa_attn_mix_short_note(&m, &d, 0, buf, sizeof buf), 0);
    m.base = (lrsa_attn_config){.mode = LRSA_ATTN_DENSE, .lagkv = {16, 32, 0.5f, 1.0f}};
    assert_int_equal(lrsa_attn_mix_short_note(&m, &d, 0, buf, sizeof buf), 0);
    lrsa_dataset_close(&d);
}

/* generate --protocol agnostic compresses the context before the question, as eval does; a
 * prompt without a blank line before the question is refused. */
static void test_generate_agnostic(void **state) {
    (void)state;
    char gen_model[1200], cmd[8192];
    snprintf(gen_model, sizeof gen_model, "%s/gen_model", dir);
    tiny_model_save_dir(gen_model, 2, 1359, 1, 61, 1);
    const char *context = "The hills were green and the river ran slowly past the old mill, "
                          "where the miller kept his books and counted the sacks of grain.";
    snprintf(cmd, sizeof cmd,
             "%s generate --model %s --prompt '%s\n\nWhere did the miller work?' --max-new 8 "
             "--press lagkv --sink 2 --lag 8 --keep 0.5 --protocol agnostic 2>&1",
             LRSA_BINARY, gen_model, context);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("%s", out);
    must_contain(out, "protocol agnostic", "agnostic");
    const char *ctx = strstr(out, "(context ");
    if (!ctx) fail_msg("no context/question split reported:\n%s", out);
    long long n_ctx = 0, n_q = 0, seen = 0, kept = 0;
    assert_int_equal(
        sscanf(ctx, "(context %lld compressed, then the question's %lld read)", &n_ctx, &n_q), 2);
    assert_true(n_ctx > 18 && n_q > 3); /* the context is long enough for LagKV to act */
    const char *st = strstr(out, "tokens seen");
    assert_non_null(st);
    assert_int_equal(sscanf(st, "tokens seen %lld, tokens kept %lld", &seen, &kept), 2);
    assert_true(kept < seen);
    free(out);
    snprintf(cmd, sizeof cmd,
             "%s generate --model %s --prompt 'no blank line here' --protocol agnostic "
             "--press lagkv 2>&1",
             LRSA_BINARY, gen_model);
    assert_int_not_equal(tu_run(cmd, &out), 0);
    must_contain(out, "--protocol agnostic", "refused");
    must_contain(out, "blank line", "refused");
    free(out);
}

/* `lrsa --help` promises no GPU training: the trainer refuses device: cuda today. */
static void test_main_help(void **state) {
    (void)state;
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s --help", LRSA_BINARY);
    assert_int_equal(tu_run(cmd, &out), 0);
    const char *train = strstr(out, "  train ");
    assert_non_null(train);
    const char *eol = strchr(train, '\n');
    if (strstr(train, "GPU") && (!eol || strstr(train, "GPU") < eol))
        fail_msg("`lrsa --help` promises GPU training: %.*s", (int)(eol ? eol - train : 80), train);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_path_and_equals_flags),
        cmocka_unit_test(test_short_prompt_warning),
        cmocka_unit_test(test_progress_on_terminal_only),
        cmocka_unit_test(test_notes),
        cmocka_unit_test(test_generate_agnostic),
        cmocka_unit_test(test_main_help),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
