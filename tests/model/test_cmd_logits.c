/* `lrsa logits` end to end on every parity fixture: the written logits, loss and gradients match
 * transformers' reference; bad input gives a clear error and a non-zero exit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/safetensors.h"
#include "test_util.h"

static char g_dir[4096];

static void read_expected(lrsa_safetensors *st, const char *fixture) {
    char path[4096];
    snprintf(path, sizeof path, "%s/parity/%s/expected.safetensors", LRSA_TEST_DATA, fixture);
    lrsa_err e;
    if (lrsa_st_open(st, path, &e)) fail_msg("%s", e.msg);
}

static float *read_all(const lrsa_safetensors *st, const char *name, int64_t *n) {
    const lrsa_st_tensor *t = lrsa_st_find(st, name);
    if (!t) fail_msg("%s lacks %s", st->path, name);
    *n = (int64_t)(t->end - t->begin) / 4;
    float *v = malloc((size_t)(*n > 0 ? *n : 1) * sizeof(float));
    lrsa_err e;
    if (lrsa_st_read_f32(st, t, v, &e)) fail_msg("%s", e.msg);
    return v;
}

/* Writes the fixture's ids and loss mask as text files. */
static void write_inputs(const lrsa_safetensors *st, const char *ids_path, const char *mask_path) {
    const lrsa_st_tensor *t = lrsa_st_find(st, "input_ids");
    int B = (int)t->shape[0], T = (int)t->shape[1];
    int32_t *ids = malloc((size_t)B * T * sizeof(int32_t));
    lrsa_err e;
    assert_int_equal(lrsa_st_read_i32(st, t, ids, &e), 0);
    const lrsa_st_tensor *mk = lrsa_st_find(st, "loss_mask");
    uint8_t *mask = malloc((size_t)B * T);
    fseeko(st->f, (off_t)(st->data_start + mk->begin), SEEK_SET);
    assert_int_equal(fread(mask, 1, (size_t)B * T, st->f), (size_t)B * T);
    FILE *fi = fopen(ids_path, "w"), *fm = fopen(mask_path, "w");
    for (int b = 0; b < B; b++) {
        for (int t2 = 0; t2 < T; t2++) {
            fprintf(fi, "%s%d", t2 ? " " : "", ids[b * T + t2]);
            fprintf(fm, "%s%d", t2 ? "\t" : "", mask[b * T + t2]);
        }
        fprintf(fi, "\n");
        fprintf(fm, "\n");
    }
    fclose(fi);
    fclose(fm);
    free(ids);
    free(mask);
}

static void check_fixture(const char *fixture) {
    lrsa_safetensors ex;
    read_expected(&ex, fixture);
    char ids[4096], mask[4096], out[4096], cmd[16384];
    lrsa_path_join(ids, sizeof ids, g_dir, "ids.txt");
    lrsa_path_join(mask, sizeof mask, g_dir, "mask.txt");
    lrsa_path_join(out, sizeof out, g_dir, "out.safetensors");
    write_inputs(&ex, ids, mask);
    snprintf(cmd, sizeof cmd,
             "%s logits --model %s/parity/%s --ids %s --loss-mask %s --out %s --grads 2>&1",
             LRSA_BINARY, LRSA_TEST_DATA, fixture, ids, mask, out);
    char *output = NULL;
    int rc = tu_run(cmd, &output);
    if (rc != 0) fail_msg("`%s` exited %d: %s", cmd, rc, output ? output : "");
    free(output);
    lrsa_safetensors got;
    lrsa_err e;
    if (lrsa_st_open(&got, out, &e)) fail_msg("%s", e.msg);
    int64_t n1, n2;
    float *a = read_all(&got, "logits", &n1), *b = read_all(&ex, "logits", &n2);
    assert_int_equal(n1, n2);
    assert_int_equal(lrsa_st_find(&got, "logits")->ndim, 3);
    TU_ASSERT_CLOSE(a, b, n1, 1e-4, "logits");
    free(a);
    free(b);
    a = read_all(&got, "loss", &n1);
    b = read_all(&ex, "loss", &n2);
    assert_true(fabsf(a[0] - b[0]) <= 1e-4f * fabsf(b[0]));
    free(a);
    free(b);
    int n_grads = 0;
    for (int i = 0; i < ex.n; i++) {
        const char *name = ex.tensors[i].name;
        if (strncmp(name, "grad.", 5) != 0) continue;
        a = read_all(&got, name, &n1);
        b = read_all(&ex, name, &n2);
        assert_int_equal(n1, n2);
        TU_ASSERT_CLOSE(a, b, n1, 1e-3, name);
        free(a);
        free(b);
        n_grads++;
    }
    assert_true(n_grads > 10);
    lrsa_st_close(&got);
    lrsa_st_close(&ex);
}

/* Every parity fixture: GQA untied, tied with q/k/v/o biases, llama3 rope, head_dim != hidden /
 * heads, Qwen2. */
static void test_logits_and_grads(void **state) {
    (void)state;
    const char *fixtures[] = {"llama_gqa", "llama_tied_bias", "llama3_rope", "llama_headdim",
                              "qwen2_bias"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) check_fixture(fixtures[i]);
}

static void expect_fail(const char *args, const char *needle) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s logits %s 2>&1", LRSA_BINARY, args);
    char *output = NULL;
    int rc = tu_run(cmd, &output);
    if (rc == 0) fail_msg("`%s` succeeded", cmd);
    if (!output || !strstr(output, needle))
        fail_msg("`%s`: output \"%s\" lacks \"%s\"", cmd, output ? output : "", needle);
    free(output);
}

static void test_errors(void **state) {
    (void)state;
    char bad[4096], ragged[4096], args[16384];
    lrsa_path_join(bad, sizeof bad, g_dir, "bad_ids.txt");
    lrsa_path_join(ragged, sizeof ragged, g_dir, "ragged.txt");
    assert_int_equal(lrsa_write_file_atomic(bad, "1 2 x3\n", 7, NULL), 0);
    assert_int_equal(lrsa_write_file_atomic(ragged, "1 2 3\n4 5\n", 10, NULL), 0);
    expect_fail("--ids /nonexistent", "--model");
    snprintf(args, sizeof args, "--model %s/parity/llama_gqa --ids %s --out %s/o.st",
             LRSA_TEST_DATA, bad, g_dir);
    expect_fail(args, "not an integer");
    snprintf(args, sizeof args, "--model %s/parity/llama_gqa --ids %s --out %s/o.st",
             LRSA_TEST_DATA, ragged, g_dir);
    expect_fail(args, "same length");
    char big[4096];
    lrsa_path_join(big, sizeof big, g_dir, "big.txt");
    assert_int_equal(lrsa_write_file_atomic(big, "1 2 99999\n", 10, NULL), 0);
    snprintf(args, sizeof args, "--model %s/parity/llama_gqa --ids %s --out %s/o.st",
             LRSA_TEST_DATA, big, g_dir);
    expect_fail(args, "vocabulary");
    snprintf(args, sizeof args, "--model %s --ids %s --out %s/o.st", g_dir, big, g_dir);
    expect_fail(args, "config.json");
    snprintf(args, sizeof args,
             "--model %s/parity/llama_gqa --ids %s --out %s/o.st --attn lrsa --keep 2",
             LRSA_TEST_DATA, big, g_dir);
    expect_fail(args, "keep");
    expect_fail("--bogus", "--bogus");
    char *output = NULL;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s logits --help", LRSA_BINARY);
    assert_int_equal(tu_run(cmd, &output), 0);
    assert_non_null(strstr(output, "--loss-mask"));
    free(output);
}

int main(void) {
    tu_tmpdir(g_dir, sizeof g_dir, "cmd_logits");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_and_grads),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
