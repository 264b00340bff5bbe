/* Synthetic long-context QA: determinism, lengths, needles at the requested depth, answers
 * present in the context, haystack loading. Uses the tokenizer fixture of data/tok. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "data/haystack.h"
#include "data/tokenizer.h"
#include "prepare_cli.h"
#include "test_util.h"

#define MODEL  PREPARE_MODEL
#define LENGTH 600

static lrsa_tokenizer *tok;
static char dir[1024];

static int setup(void **state) {
    lrsa_err e;
    tok = lrsa_tokenizer_load_dir(MODEL, &e);
    if (!tok) fprintf(stderr, "cannot load %s: %s\n", MODEL, e.msg);
    tu_tmpdir(dir, sizeof dir, "synthetic");
    return tok ? 0 : -1;
}
static int teardown(void **state) {
    lrsa_tokenizer_free(tok);
    return 0;
}

/* The built-in filler unless --haystack (LRSA_CACHE points at an empty place). */
static int prepare(const char *args, char **out) {
    return prepare_cli(dir, args, out);
}

static char *gen(const char *task, const char *name, const char *extra) {
    static char path[1200];
    char args[4096];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    snprintf(args, sizeof args, "--synthetic %s --n 3 --length %d --out %s %s", task, LENGTH, path,
             extra);
    char *o;
    if (prepare(args, &o) != 0) fail_msg("prepare %s failed: %s", args, o);
    free(o);
    return path;
}

static char *slurp(const char *path, size_t *n) {
    lrsa_err e;
    char *s = lrsa_read_file(path, n, &e);
    if (!s) fail_msg("%s", e.msg);
    return s;
}

static void test_same_seed_same_bytes(void **state) {
    char a[1200], b[1200], c[1200];
    snprintf(a, sizeof a, "%s", gen("niah-multikey", "det_a", "--seed 5"));
    snprintf(b, sizeof b, "%s", gen("niah-multikey", "det_b", "--seed 5"));
    snprintf(c, sizeof c, "%s", gen("niah-multikey", "det_c", "--seed 6"));
    size_t na, nb, nc;
    char *x = slurp(a, &na), *y = slurp(b, &nb), *z = slurp(c, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    assert_true(na != nc || memcmp(x, z, na) != 0);
    free(x);
    free(y);
    free(z);
}

/* Relative position of `needle` within the context part of the decoded prompt. */
static double depth_of(const char *prompt, const char *needle) {
    const char *user = strstr(prompt, "<|im_start|>user\n");
    assert_non_null(user);
    const char *ctx = strstr(user, "\n\n");
    assert_non_null(ctx);
    ctx += 2;
    const char *end = NULL;
    for (const char *p = ctx; (p = strstr(p, "\n\n")); p++) end = p;
    assert_non_null(end);
    const char *at = strstr(ctx, needle);
    if (!at || at > end) fail_msg("needle '%s' not in the context", needle);
    return (double)(at - ctx) / (double)(end - ctx);
}

/* The question's key ("... for KEY mentioned ...") of a niah sample: the question follows the
 * context's last blank line. */
static void question_key(const char *prompt, char *key, size_t cap) {
    const char *q = NULL;
    for (const char *p = prompt; (p = strstr(p, "\n\n")); p++) q = p;
    assert_non_null(q);
    q = strstr(q, " for ");
    assert_non_null(q);
    q += 5;
    size_t n = strcspn(q, " ");
    snprintf(key, cap, "%.*s", (int)n, q);
}

/* /needle_spans: each span lies in the prompt, decodes to text holding the answer-bearing needle
 * (key and value), and is tight (dropping its first or last token loses part of the needle).
 * passkey, niah-single, niah-multikey: one span, the asked needle; niah-multivalue: one span per
 * value, in answer order; vartrack: the four assignments; every task: the spans' texts hold every
 * part of the answer. */
static void check_spans(const char *task, const lrsa_dataset *d, int64_t i, const char *prompt) {
    const int64_t *rows;
    int64_t n = lrsa_dataset_needle_spans(d, i, &rows);
    const char *answer = lrsa_dataset_answer(d, i);
    int64_t expect = !strcmp(task, "niah-multivalue") || !strcmp(task, "vartrack") ? 4
                     : !strcmp(task, "niah-multiquery")                            ? 2
                     : !strcmp(task, "factqa")                                     ? n
                                                                                   : 1;
    assert_int_equal(n, expect);
    if (!strcmp(task, "factqa")) assert_true(n >= 1 && n <= 2); /* city, or city and country */
    char all[4096] = "";
    char parts[256];
    snprintf(parts, sizeof parts, "%s", answer);
    char *save = NULL, *part = strtok_r(parts, ", ", &save);
    for (int64_t j = 0; j < n; j++) {
        const int64_t *r = rows + 3 * j;
        assert_int_equal(r[0], i);
        assert_true(r[1] >= 0 && r[1] < r[2] && r[2] <= lrsa_dataset_prompt_len(d, i));
        const int32_t *ids = lrsa_dataset_ids(d, i);
        char *text = lrsa_tokenizer_decode(tok, ids + r[1], r[2] - r[1], 0);
        char *head = lrsa_tokenizer_decode(tok, ids + r[1] + 1, r[2] - r[1] - 1, 0);
        char *tail = lrsa_tokenizer_decode(tok, ids + r[1], r[2] - r[1] - 1, 0);
        const char *marker = !strcmp(task, "passkey")    ? "The pass key is"
                             : !strcmp(task, "vartrack") ? "VAR "
                             : !strcmp(task, "factqa")   ? "city of"
                                                         : "One of the special magic numbers for";
        if (!strstr(text, marker)) fail_msg("%s sample %lld span %lld: '%s'", task, i, j, text);
        if (!strcmp(task, "passkey") || !strncmp(task, "niah-", 5))
            assert_null(strstr(head, marker)); /* the first token starts the needle */
        assert_true(text[strlen(text) - 1] == '.');
        assert_true(tail[strlen(tail) - 1] != '.'); /* the last token ends it */
        if (!strcmp(task, "niah-multivalue") || !strcmp(task, "vartrack")) {
            /* span j holds part j of the answer */
            assert_non_null(part);
            if (!strstr(text, part)) fail_msg("%s span %lld '%s' lacks '%s'", task, j, text, part);
            part = strtok_r(NULL, ", ", &save);
        }
        if (!strncmp(task, "niah-", 5) && j == 0 && strcmp(task, "niah-multiquery") != 0) {
            char key[64], want[128];
            question_key(prompt, key, sizeof key);
            snprintf(want, sizeof want, "for %s is: ", key);
            if (!strstr(text, want)) fail_msg("%s span '%s' is not about %s", task, text, key);
        }
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s|", text);
        free(text);
        free(head);
        free(tail);
    }
    snprintf(parts, sizeof parts, "%s", answer);
    for (char *p = strtok_r(parts, ", ", &save); p; p = strtok_r(NULL, ", ", &save))
        if (!strstr(all, p)) fail_msg("%s sample %lld: no span holds '%s' (%s)", task, i, p, all);
}

static void check_task(const char *task) {
    static const double depths[3] = {0.1, 0.5, 0.9};
    char *path = gen(task, task, "--depths 0.1,0.5,0.9 --seed 3");
    lrsa_dataset d;
    lrsa_err e;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 3);
    assert_string_equal(d.task, task);
    assert_non_null(strstr(d.source, "builtin-filler"));
    assert_non_null(strstr(d.source, "seed=3"));
    for (int64_t i = 0; i < d.n; i++) {
        int64_t len = lrsa_dataset_len(&d, i);
        if (len > LENGTH || len < LENGTH * 85 / 100)
            fail_msg("%s sample %lld has %lld tokens, target %d", task, (long long)i,
                     (long long)len, LENGTH);
        char *prompt =
            lrsa_tokenizer_decode(tok, lrsa_dataset_ids(&d, i), lrsa_dataset_prompt_len(&d, i), 0);
        char *rest = lrsa_tokenizer_decode(tok, lrsa_dataset_ids(&d, i) + d.prompt_len[i],
                                           len - d.prompt_len[i], 0);
        const char *answer = lrsa_dataset_answer(&d, i);
        /* The target is the answer and the end of turn. */
        char expect[512];
        snprintf(expect, sizeof expect, "%s<|im_end|>", answer);
        assert_int_equal(strncmp(rest, expect, strlen(expect)), 0);
        /* Every comma-separated part of the answer is stated in the context. */
        char parts[256];
        snprintf(parts, sizeof parts, "%s", answer);
        for (char *p = strtok(parts, ", "); p; p = strtok(NULL, ", ")) {
            double pos = depth_of(prompt, p);
            assert_true(pos >= 0.0 && pos <= 1.0);
        }
        /* The needle the question is about sits at the requested depth. */
        char needle[512] = "";
        if (!strcmp(task, "passkey"))
            snprintf(needle, sizeof needle, "The pass key is %s.", answer);
        else if (!strcmp(task, "niah-single") || !strcmp(task, "niah-multikey")) {
            /* The whole needle sentence: from its start up to the asked value. */
            char value[64];
            snprintf(value, sizeof value, "is: %s.", answer);
            const char *v = strstr(prompt, value), *start = NULL;
            assert_non_null(v);
            for (const char *p = prompt; (p = strstr(p, "One of the special")) && p < v; p++)
                start = p;
            assert_non_null(start);
            snprintf(needle, sizeof needle, "%.*s", (int)(v - start), start);
        } else if (!strcmp(task, "vartrack")) {
            snprintf(needle, sizeof needle, "VAR %.5s = ", answer);
        }
        if (needle[0]) {
            double pos = depth_of(prompt, needle);
            if (pos < depths[i % 3] - 0.1 || pos > depths[i % 3] + 0.1)
                fail_msg("%s sample %lld: needle at %.3f, asked for %.2f", task, (long long)i, pos,
                         depths[i % 3]);
        }
        check_spans(task, &d, i, prompt);
        free(prompt);
        free(rest);
    }
    lrsa_dataset_close(&d);
}

static void test_passkey(void **state) {
    check_task("passkey");
}
static void test_niah_single(void **state) {
    check_task("niah-single");
}
static void test_niah_multikey(void **state) {
    check_task("niah-multikey");
}
static void test_niah_multivalue(void **state) {
    check_task("niah-multivalue");
}
static void test_niah_multiquery(void **state) {
    check_task("niah-multiquery");
}
static void test_vartrack(void **state) {
    check_task("vartrack");
}
static void test_factqa(void **state) {
    check_task("factqa");
}

/* Essays in a haystack directory are split into sentences and used instead of the filler. */
static void test_haystack_dir(void **state) {
    char hay[1200], path[1300], args[4096];
    snprintf(hay, sizeof hay, "%s/hay", dir);
    lrsa_err e;
    assert_int_equal(lrsa_mkdirs(hay, &e), 0);
    snprintf(path, sizeof path, "%s/b.txt", hay);
    const char *essay = "Zebras wander the open plain at dawn.\n\nA second   sentence follows "
                        "here! Does a third one ask a question? Short.\n";
    assert_int_equal(lrsa_write_file_atomic(path, essay, strlen(essay), &e), 0);
    snprintf(path, sizeof path, "%s/a.txt", hay);
    const char *essay2 = "Aardvarks dig for ants in the evening.";
    assert_int_equal(lrsa_write_file_atomic(path, essay2, strlen(essay2), &e), 0);
    lrsa_haystack h;
    assert_int_equal(lrsa_haystack_load(&h, hay, &e), 0);
    assert_int_equal(h.builtin, 0);
    assert_int_equal(h.n_files, 2);
    assert_int_equal(h.n, 4); /* "Short." is too short to count as a sentence */
    assert_string_equal(h.sents[0], essay2);
    assert_string_equal(h.sents[2], "A second sentence follows here!");
    lrsa_haystack_free(&h);

    snprintf(path, sizeof path, "%s/empty", dir);
    assert_int_equal(lrsa_haystack_load(&h, path, &e), 0);
    assert_int_equal(h.builtin, 1);
    assert_true(h.n > 10);
    lrsa_haystack_free(&h);

    snprintf(path, sizeof path, "%s/hay.h5", dir);
    snprintf(args, sizeof args, "--synthetic passkey --n 1 --length 300 --haystack %s --out %s",
             hay, path);
    assert_int_equal(prepare(args, NULL), 0);
    lrsa_dataset d;
    assert_int_equal(lrsa_dataset_open(&d, path, &e), 0);
    assert_non_null(strstr(d.source, "paul-graham-essays(2 files"));
    char *text = lrsa_tokenizer_decode(tok, lrsa_dataset_ids(&d, 0), lrsa_dataset_len(&d, 0), 0);
    assert_non_null(strstr(text, "Zebras wander the open plain at dawn."));
    free(text);
    lrsa_dataset_close(&d);
}

static void test_errors(void **state) {
    char *o;
    assert_int_not_equal(prepare("--synthetic bogus --n 1 --length 100 --out x.h5", &o), 0);
    assert_non_null(strstr(o, "unknown task"));
    assert_non_null(strstr(o, "passkey"));
    free(o);
    char args[2048];
    snprintf(args, sizeof args, "--synthetic passkey --n 1 --length 20 --out %s/small.h5", dir);
    assert_int_not_equal(prepare(args, &o), 0);
    assert_non_null(strstr(o, "--length 20 is too small"));
    free(o);
    snprintf(args, sizeof args, "%s/small.h5", dir);
    assert_false(lrsa_file_exists(args));
    assert_int_not_equal(
        prepare("--synthetic passkey --n 1 --length 100 --depth 1.5 --out x.h5", &o), 0);
    assert_non_null(strstr(o, "--depth"));
    free(o);
    assert_int_not_equal(prepare("--synthetic passkey --length 100 --out x.h5", &o), 0);
    assert_non_null(strstr(o, "--n"));
    free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_passkey),
        cmocka_unit_test(test_niah_single),
        cmocka_unit_test(test_niah_multikey),
        cmocka_unit_test(test_niah_multivalue),
        cmocka_unit_test(test_niah_multiquery),
        cmocka_unit_test(test_vartrack),
        cmocka_unit_test(test_factqa),
        cmocka_unit_test(test_haystack_dir),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
