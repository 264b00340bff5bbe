/* Determinism of a threaded training step (kernels/cpu/cpu_threads.h): a step of a small model
 * (forward, backward, AdamW), dense and LRSA, with recomputation and without, run twice with
 * the same thread count gives the same loss, per-row NLL, gradients and updated weights bit for
 * bit (1 and 3 threads; a race or a schedule-dependent sum would break it). Across thread
 * counts the results agree to fp32 rounding but not bit for bit: OpenBLAS partitions an SGEMM
 * by its thread count and its edge kernels round differently (docs/KERNELS.md, "Threads"); the
 * lrsa kernels themselves are bit-identical across thread counts (tests/attention/
 * test_attention_threads.c, tests/kernels). Sizes are chosen so that every threaded op (norms,
 * RoPE, SwiGLU, the LM-head softmax, attention, AdamW) runs above its threading threshold. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/cpu/cpu_threads.h"
#include "model/model.h"
#include "test_util.h"
#include "train/optim.h"

enum { B = 2, T = 160, V = 301 };

static void make_model(lrsa_model *m) {
    lrsa_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = LRSA_ARCH_QWEN2; /* q/k/v biases: the bias gradient's row sums too */
    c.vocab_size = V;
    c.hidden_size = 96;
    c.intermediate_size = 160;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rms_norm_eps = 1e-6f;
    c.rope.theta = 10000.f;
    c.rope.type = LRSA_ROPE_DEFAULT;
    c.tie_word_embeddings = 1;
    c.attention_bias = 1;
    c.max_position_embeddings = 512;
    lrsa_err e;
    if (lrsa_model_create(m, &c, &e)) fail_msg("%s", e.msg);
    lrsa_model_init_random(m, 5, 0.1f);
}

typedef struct {
    double loss;
    float *nll, *grad, *param;
} step_result;

static void one_step(int threads, const lrsa_attn_config *attn, int recompute, step_result *r) {
    lrsa_cpu_set_threads(threads);
    lrsa_model m;
    make_model(&m);
    int32_t ids[B * T];
    float w[B * T];
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 17);
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)lrsa_rng_below(&rng, V);
        w[i] = i % T >= 20 ? 1.0f / (B * (T - 20)) : 0.0f; /* a prompt part without loss */
    }
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_table_alloc(&m.table, LRSA_ROLE_GRAD);
    lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
    r->nll = malloc(sizeof(float) * B * T);
    r->loss = lrsa_model_forward_backward(&m, ws, ids, w, B, T, attn, recompute, 1, r->nll);
    const int64_t n = m.table.numel;
    r->grad = malloc(sizeof(float) * (size_t)n);
    memcpy(r->grad, m.table.arena[LRSA_ROLE_GRAD], sizeof(float) * (size_t)n);
    lrsa_adamw opt;
    lrsa_adamw_init(&opt, &m.table, 0, 1, 0.9, 0.95, 1e-8, 0.1);
    for (int s = 0; s < 2; s++)
        lrsa_adamw_step(&opt, m.table.arena[LRSA_ROLE_PARAM], m.table.arena[LRSA_ROLE_GRAD], 1e-3,
                        0.5);
    r->param = malloc(sizeof(float) * (size_t)n);
    memcpy(r->param, m.table.arena[LRSA_ROLE_PARAM], sizeof(float) * (size_t)n);
    lrsa_adamw_free(&opt);
    lrsa_workspace_free(ws);
    lrsa_model_free(&m);
}

static void free_result(step_result *r) {
    free(r->nll), free(r->grad), free(r->param);
}

/* Two runs with the same thread count: the same bits everywhere. */
static void assert_same(const step_result *a, const step_result *b, size_t bytes, const char *label,
                        int t) {
    if (a->loss != b->loss || memcmp(a->nll, b->nll, sizeof(float) * B * T) ||
        memcmp(a->grad, b->grad, bytes) || memcmp(a->param, b->param, bytes))
        fail_msg("%s: two runs with %d threads differ", label, t);
}

/* Another thread count: equal to fp32 rounding (OpenBLAS's SGEMM rounds by its thread count). */
static void assert_close(const step_result *one, const step_result *r, int64_t n, const char *label,
                         int t) {
    if (!(fabs(r->loss - one->loss) <= 1e-6 * one->loss))
        fail_msg("%s: loss %.17g with 1 thread, %.17g with %d", label, one->loss, r->loss, t);
    char what[128];
    snprintf(what, sizeof what, "%s: gradients with %d threads", label, t);
    TU_ASSERT_CLOSE(r->grad, one->grad, n, 1e-5, what);
}

static void check(const lrsa_attn_config *attn, int recompute, const char *label) {
    const int saved = lrsa_cpu_threads();
    lrsa_model m;
    make_model(&m);
    const int64_t n = m.table.numel;
    const size_t bytes = sizeof(float) * (size_t)n;
    lrsa_model_free(&m);
    step_result one, one_again, three, three_again, two;
    one_step(1, attn, recompute, &one);
    one_step(1, attn, recompute, &one_again);
    one_step(3, attn, recompute, &three);
    one_step(3, attn, recompute, &three_again);
    one_step(2, attn, recompute, &two);
    assert_true(one.loss > 0.0);
    assert_same(&one, &one_again, bytes, label, 1);
    assert_same(&three, &three_again, bytes, label, 3);
    assert_close(&one, &three, n, label, 3);
    assert_close(&one, &two, n, label, 2);
    step_result *all[] = {&one, &one_again, &three, &three_again, &two};
    for (int i = 0; i < 5; i++) free_result(all[i]);
    lrsa_cpu_set_threads(saved);
}

static void test_dense_step(void **state) {
    (void)state;
    lrsa_attn_config a = {.mode = LRSA_ATTN_DENSE, .lagkv = {16, 128, 0.25f, 1.0f}};
    check(&a, 0, "dense");
    check(&a, 1, "dense, recompute");
}

static void test_lrsa_step(void **state) {
    (void)state;
    lrsa_attn_config a = {.mode = LRSA_ATTN_LRSA, .lagkv = {4, 16, 0.25f, 1.0f}};
    check(&a, 0, "LRSA");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_step),
        cmocka_unit_test(test_lrsa_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
