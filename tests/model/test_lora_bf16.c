/* lora.base_dtype bf16 (model/base_bf16.h): the frozen base's linear matrices stored in bf16 and
 * widened to fp32 right before each GEMM. Widening is exact, so: on a base whose matrices are
 * already bf16 values, a LoRA forward and backward with the bf16 store equals the fp32 model bit
 * for bit (loss, per-token NLL, adapter gradients, logits, the block-level API), with dense and
 * LRSA attention, recomputation, dropout, and targets that leave some linear ops unadapted;
 * with arbitrary weights the bf16 run equals an fp32 run on the rounded weights; the checksum is
 * the one of the weights as loaded; and the matrices' storage is exactly half (allocation sizes,
 * not timing). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "block_forward.h"
#include "model/base_bf16.h"
#include "model/lora.h"
#include "model/model.h"
#include "test_util.h"

static void load_base(lrsa_model *m) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/parity/llama_gqa", LRSA_TEST_DATA);
    lrsa_err e;
    if (lrsa_model_load(m, dir, &e)) fail_msg("%s", e.msg);
}

/* Rounds every linear matrix of an fp32 model to the nearest bf16 value, in place. */
static void round_matrices(lrsa_model *m) {
    for (int i = 0; i < m->table.n; i++) {
        if (m->table.desc[i].kind != LRSA_KIND_MATRIX) continue;
        float *w = lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, i);
        for (int64_t j = 0; j < m->table.desc[i].numel; j++)
            w[j] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(w[j]));
    }
}

/* An adapter with random A and B (B != 0, so every path counts). */
static void make_adapter(lrsa_lora *a, const lrsa_model *m, double dropout, unsigned targets) {
    lrsa_lora_config c = {.rank = 3, .alpha = 6, .dropout = dropout, .targets = targets};
    lrsa_err e;
    if (lrsa_lora_create(a, &m->cfg, &c, &e)) fail_msg("%s", e.msg);
    lrsa_rng r;
    lrsa_rng_seed(&r, 21);
    tu_fill_normal(a->table.arena[LRSA_ROLE_PARAM], a->table.numel, 0.1f, &r);
    a->pass_key = 99;
}

enum { B = 2, T = 16 };

typedef struct pass_out {
    double loss;
    float nll[B * T];
    float *grad;   /* the adapter's gradient arena, copied */
    float *logits; /* lrsa_model_logits of the first sequence */
    float *block;  /* the same through the block-level API */
} pass_out;

/* One training pass (forward + backward), the logits and the block-API logits of m with a
 * fresh adapter of the given settings attached. */
static void run_pass(lrsa_model *m, unsigned targets, double dropout, lrsa_attn_config attn,
                     int recompute, pass_out *o) {
    lrsa_lora a;
    make_adapter(&a, m, dropout, targets);
    m->lora = &a;
    int32_t ids[B * T];
    float w[B * T];
    lrsa_rng r;
    lrsa_rng_seed(&r, 3);
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)lrsa_rng_below(&r, (uint64_t)m->cfg.vocab_size);
        w[i] = (i % T) > 2 ? 1.0f / (B * (T - 3)) : 0.0f;
    }
    lrsa_workspace *ws = lrsa_workspace_new();
    o->loss = lrsa_model_forward_backward(m, ws, ids, w, B, T, &attn, recompute, 1, o->nll);
    const size_t gbytes = sizeof(float) * (size_t)a.table.numel;
    o->grad = malloc(gbytes);
    memcpy(o->grad, a.table.arena[LRSA_ROLE_GRAD], gbytes);
    const size_t lbytes = sizeof(float) * (size_t)T * (size_t)m->cfg.vocab_size;
    o->logits = malloc(lbytes);
    o->block = malloc(lbytes);
    lrsa_model_logits(m, ws, ids, 1, T, &attn, o->logits);
    tm_block_forward_logits(m, ids, T, o->block);
    lrsa_workspace_free(ws);
    m->lora = NULL;
    lrsa_lora_free(&a);
}

static void free_pass(pass_out *o) {
    free(o->grad);
    free(o->logits);
    free(o->block);
}

/* Every output of the two passes, bit for bit. */
static void assert_same_pass(const pass_out *x, const pass_out *y, int64_t n_grad, int64_t n_logit,
                             const char *what) {
    if (x->loss != y->loss) fail_msg("%s: loss %.17g vs %.17g", what, x->loss, y->loss);
    assert_memory_equal(x->nll, y->nll, sizeof x->nll);
    assert_memory_equal(x->grad, y->grad, sizeof(float) * (size_t)n_grad);
    assert_memory_equal(x->logits, y->logits, sizeof(float) * (size_t)n_logit);
    assert_memory_equal(x->block, y->block, sizeof(float) * (size_t)n_logit);
}

typedef struct pass_case {
    unsigned targets;
    double dropout;
    lrsa_attn_config attn;
    int recompute;
} pass_case;

static const pass_case k_cases[] = {
    {LRSA_LORA_ALL_TARGETS, 0.0, {.mode = LRSA_ATTN_DENSE}, 0},
    /* q and v only: the o, gate/up and down ops run the plain linear op on the widened matrix */
    {(1u << LRSA_LORA_Q) | (1u << LRSA_LORA_V), 0.1, {.mode = LRSA_ATTN_DENSE}, 1},
    {(1u << LRSA_LORA_K) | (1u << LRSA_LORA_UP) | (1u << LRSA_LORA_DOWN),
     0.2,
     {.mode = LRSA_ATTN_LRSA, .lagkv = {2, 3, 0.67f, 1.f}},
     0},
    {LRSA_LORA_ALL_TARGETS, 0.1, {.mode = LRSA_ATTN_LRSA, .lagkv = {2, 3, 0.67f, 1.f}}, 1},
};

/* Compares m16 (bf16 store) against m32 (fp32) on every case. */
static void compare_cases(lrsa_model *m16, lrsa_model *m32) {
    const int64_t n_logit = (int64_t)T * m32->cfg.vocab_size;
    for (size_t k = 0; k < sizeof k_cases / sizeof k_cases[0]; k++) {
        const pass_case *c = &k_cases[k];
        pass_out x, y;
        run_pass(m16, c->targets, c->dropout, c->attn, c->recompute, &x);
        run_pass(m32, c->targets, c->dropout, c->attn, c->recompute, &y);
        lrsa_lora probe;
        make_adapter(&probe, m32, c->dropout, c->targets);
        char what[64];
        snprintf(what, sizeof what, "case %zu", k);
        assert_same_pass(&x, &y, probe.table.numel, n_logit, what);
        assert_true(isfinite(x.loss) && x.loss > 0);
        lrsa_lora_free(&probe);
        free_pass(&x);
        free_pass(&y);
    }
}

/* Matrices already bf16 values: the bf16 store changes nothing, bit for bit. */
static void test_exact_on_representable_base(void **state) {
    (void)state;
    lrsa_model m16, m32;
    load_base(&m16);
    load_base(&m32);
    round_matrices(&m16);
    round_matrices(&m32);
    const uint64_t sum = lrsa_model_checksum(&m32);
    lrsa_model_store_base_bf16(&m16);
    assert_non_null(m16.base16);
    assert_null(m16.table.arena[LRSA_ROLE_PARAM]); /* the fp32 arena is gone */
    assert_true(lrsa_model_checksum(&m16) == sum);
    compare_cases(&m16, &m32);
    assert_null(m16.table.arena[LRSA_ROLE_GRAD]); /* frozen: no gradient arena for the base */
    lrsa_model_free(&m16);
    lrsa_model_free(&m32);
}

/* Arbitrary weights: the bf16 run is the fp32 run on the rounded weights (round to nearest even
 * at store time), and it differs from the unrounded model (the rounding is real). The checksum
 * stays the one of the weights as loaded. */
static void test_equals_fp32_on_rounded_weights(void **state) {
    (void)state;
    lrsa_model m16, rounded, orig;
    load_base(&m16);
    load_base(&rounded);
    load_base(&orig);
    round_matrices(&rounded);
    const uint64_t sum = lrsa_model_checksum(&orig);
    assert_true(sum != lrsa_model_checksum(&rounded));
    lrsa_model_store_base_bf16(&m16);
    assert_true(lrsa_model_checksum(&m16) == sum);
    compare_cases(&m16, &rounded);
    pass_out x, y;
    run_pass(&m16, LRSA_LORA_ALL_TARGETS, 0.0, (lrsa_attn_config){.mode = LRSA_ATTN_DENSE}, 0, &x);
    run_pass(&orig, LRSA_LORA_ALL_TARGETS, 0.0, (lrsa_attn_config){.mode = LRSA_ATTN_DENSE}, 0, &y);
    const int64_t n_logit = (int64_t)T * orig.cfg.vocab_size;
    const double rel = tu_rel_err(x.logits, y.logits, n_logit);
    printf("bf16 base vs the unrounded fp32 base: logits rel. error %.3g, loss %.7f vs %.7f\n", rel,
           x.loss, y.loss);
    assert_true(rel > 0 && rel < 1e-2);
    free_pass(&x);
    free_pass(&y);
    lrsa_model_free(&m16);
    lrsa_model_free(&rounded);
    lrsa_model_free(&orig);
}

/* The allocation sizes: the linear matrices take exactly half the bytes, everything else the
 * same, plus one widening scratch the size of the largest fused op (gate/up here). */
static void test_weight_bytes_halve(void **state) {
    (void)state;
    lrsa_model m;
    load_base(&m);
    const lrsa_model_config *c = &m.cfg;
    const lrsa_weight_bytes f = lrsa_model_weight_bytes(&m);
    int64_t mat = 0;
    for (int i = 0; i < m.table.n; i++)
        if (m.table.desc[i].kind == LRSA_KIND_MATRIX) mat += m.table.desc[i].numel;
    assert_int_equal(f.matrices, 4 * mat);
    assert_int_equal(f.matrices + f.other, 4 * m.table.numel);
    assert_int_equal(f.scratch, 0);
    lrsa_model_store_base_bf16(&m);
    const lrsa_weight_bytes h = lrsa_model_weight_bytes(&m);
    assert_int_equal(2 * h.matrices, f.matrices);
    assert_int_equal(h.other, f.other);
    const int64_t C = c->hidden_size, D = c->head_dim, I = c->intermediate_size;
    const int64_t qkv = (c->num_attention_heads + 2 * c->num_key_value_heads) * D * C,
                  o = C * c->num_attention_heads * D, gu = 2 * I * C, most = qkv > gu ? qkv : gu;
    assert_int_equal(h.scratch, 4 * (most > o ? most : o));
    printf("weight bytes: fp32 %lld (matrices %lld), bf16 base %lld (matrices %lld) + scratch "
           "%lld\n",
           (long long)(f.matrices + f.other), (long long)f.matrices,
           (long long)(h.matrices + h.other), (long long)h.matrices, (long long)h.scratch);
    lrsa_model_free(&m);
}

/* Loading straight into the store (each matrix rounded as it is read, no PARAM arena) gives
 * the store that rounding a loaded fp32 model gives, byte for byte, with the same checksum; the
 * checksum in pieces is the checksum of the whole. */
static void test_streamed_load(void **state) {
    (void)state;
    lrsa_model a, b, f32;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/parity/llama_gqa", LRSA_TEST_DATA);
    lrsa_err e;
    if (lrsa_model_load_base_bf16(&a, dir, &e)) fail_msg("%s", e.msg);
    load_base(&b);
    load_base(&f32);
    lrsa_model_store_base_bf16(&b);
    assert_null(a.table.arena[LRSA_ROLE_PARAM]);
    const lrsa_base_bf16 *x = a.base16, *y = b.base16;
    assert_int_equal(x->mat_numel, y->mat_numel);
    assert_int_equal(x->rest_numel, y->rest_numel);
    assert_memory_equal(x->mat, y->mat, sizeof(uint16_t) * (size_t)x->mat_numel);
    assert_memory_equal(x->rest, y->rest, sizeof(float) * (size_t)x->rest_numel);
    assert_true(x->checksum == y->checksum && x->checksum == lrsa_model_checksum(&f32));
    lrsa_model_free(&b);
    /* a directory without weights: the loader's error, and the half-filled store is freed */
    char nodir[4096];
    tu_tmpdir(nodir, sizeof nodir, "bf16_noweights");
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/config.json", dir);
    snprintf(dst, sizeof dst, "%s/config.json", nodir);
    char *text = lrsa_read_file(src, NULL, &e);
    assert_non_null(text);
    assert_int_equal(lrsa_write_file_atomic(dst, text, strlen(text), &e), 0);
    free(text);
    assert_int_equal(lrsa_model_load_base_bf16(&b, nodir, &e), -1);
    unsigned char bytes[37];
    for (int i = 0; i < 37; i++) bytes[i] = (unsigned char)(i * 29 + 3);
    lrsa_checksum_state whole, parts;
    lrsa_checksum_init(&whole);
    lrsa_checksum_update(&whole, bytes, sizeof bytes);
    lrsa_checksum_init(&parts);
    const size_t cuts[] = {0, 3, 5, 5, 14, 37};
    for (int i = 0; i + 1 < 6; i++)
        lrsa_checksum_update(&parts, bytes + cuts[i], cuts[i + 1] - cuts[i]);
    assert_true(lrsa_checksum_final(&whole) == lrsa_checksum_final(&parts));
    lrsa_model_free(&a);
    lrsa_model_free(&f32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_bytes_halve),
        cmocka_unit_test(test_streamed_load),
        cmocka_unit_test(test_exact_on_representable_base),
        cmocka_unit_test(test_equals_fp32_on_rounded_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
