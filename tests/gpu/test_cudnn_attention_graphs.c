/* The cuDNN attention graphs (kernels/attention/attention_cudnn.c) on a machine without a GPU:
 * every tensor and operation descriptor of the forward and backward graphs is created and
 * finalized by the cuDNN library this build links (a wrong attribute type, count or value fails
 * with cuDNN's error at file:line), for SmolLM2's and the 1B Llama's heads, D 64 and 128, GQA
 * and multi-head (whose backward has no per-group reductions). Whether an engine accepts the
 * graphs needs a GPU: test_gpu_attention_cudnn. Other head dims are refused naming the key.
 * Built only with cuDNN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/attention/attention_cudnn.h"

static lrsa_attn_dims fused(int B, int T, int Hq, int Hkv, int D) {
    int64_t row = (int64_t)(Hq + 2 * Hkv) * D;
    return (lrsa_attn_dims){B, T, Hq, Hkv, D, row, row, (int64_t)Hq * D, 1.0f};
}

static void test_graphs_finalize(void **state) {
    (void)state;
    struct {
        lrsa_attn_dims d;
        int bwd_ops;
    } cases[] = {
        {fused(1, 333, 9, 3, 64), 24},   /* SmolLM2-135M */
        {fused(2, 8192, 32, 8, 64), 24}, /* Llama-3.2-1B */
        {fused(1, 257, 8, 2, 128), 24},
        {fused(2, 130, 4, 4, 64), 22}, /* no GQA: dK and dV straight from the products */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fwd = 0, bwd = 0;
        lrsa_err e = {0};
        assert_int_equal(lrsa_attention_cudnn_check_graphs(&cases[i].d, &fwd, &bwd, &e), 0);
        printf("Hq %d Hkv %d D %d: forward %d operations, backward %d\n", cases[i].d.Hq,
               cases[i].d.Hkv, cases[i].d.D, fwd, bwd);
        /* matmul, scale, 2 indices, compare, select, max, sub, exp, sum, log, add, div, matmul */
        assert_int_equal(fwd, 14);
        assert_int_equal(bwd, cases[i].bwd_ops);
    }
}

static void test_head_dim_refused(void **state) {
    (void)state;
    lrsa_attn_dims d = fused(1, 64, 4, 2, 96);
    int fwd = 0, bwd = 0;
    lrsa_err e = {0};
    assert_int_equal(lrsa_attention_cudnn_check_graphs(&d, &fwd, &bwd, &e), -1);
    assert_non_null(strstr(e.msg, "attention.impl: cudnn: head dim 96 (64 and 128 are supported)"));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_graphs_finalize),
                                       cmocka_unit_test(test_head_dim_refused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
