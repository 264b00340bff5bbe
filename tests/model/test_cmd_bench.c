/* `lrsa bench` runs a tiny step and prints its figures; bad flags are clear errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static void test_bench_small(void **state) {
    (void)state;
    char cmd[8192];
    char *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s bench --config small --T 24 --B 2 --steps 1 --attn lrsa --sink 2 --lag 4 "
             "--keep 0.5 --loss last-quarter --recompute 2>&1",
             LRSA_BINARY);
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("`%s` exited %d: %s", cmd, rc, out ? out : "");
    const char *need[] = {"tokens/s",         "model GFLOP/s", "SGEMM GFLOP/s",
                          "ratio step/SGEMM", "attn lrsa",     "recompute 1"};
    for (int i = 0; i < 6; i++)
        if (!strstr(out, need[i])) fail_msg("output lacks \"%s\": %s", need[i], out);
    free(out);
    /* LoRA with the optimizer: the adapter's parameter count (4 layers, rank 2, q and v:
     * 2 * (256 + 256) + 2 * (256 + 128) per layer = 1792 per layer) */
    snprintf(cmd, sizeof cmd,
             "%s bench --config small --T 16 --steps 1 --optim --lora-rank 2 "
             "--lora-targets q_proj,v_proj 2>&1",
             LRSA_BINARY);
    out = NULL;
    rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("`%s` exited %d: %s", cmd, rc, out ? out : "");
    if (!strstr(out, "LoRA rank 2") || !strstr(out, "7168 trainable parameters") ||
        !strstr(out, "AdamW update"))
        fail_msg("unexpected output: %s", out);
    free(out);
    /* the base in bf16: its matrices take 4 layers x 737,280 weights x 2 bytes = 5.9 MB */
    snprintf(cmd, sizeof cmd,
             "%s bench --config small --T 16 --steps 1 --lora-rank 2 --lora-base-dtype bf16 2>&1",
             LRSA_BINARY);
    out = NULL;
    rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("`%s` exited %d: %s", cmd, rc, out ? out : "");
    if (!strstr(out, "matrices in bf16 (5.9 MB)")) fail_msg("unexpected output: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --config small --lora-base-dtype bf16 2>&1", LRSA_BINARY);
    out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "--lora-rank"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --lora-rank 2 --lora-base-dtype fp16 2>&1", LRSA_BINARY);
    out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "f32 or bf16"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --lora-rank 2 --lora-targets lm_head 2>&1", LRSA_BINARY);
    out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "lm_head"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --config nope 2>&1", LRSA_BINARY);
    out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "--config"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s bench --attn sparse 2>&1", LRSA_BINARY);
    out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "--attn"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bench_small)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
