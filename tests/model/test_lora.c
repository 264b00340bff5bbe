/* LoRA on the model (model/lora*): adapter gradients equal the chain rule through the merged
 * weights (dA = s B^T dL/dW, dB = s dL/dW A^T, exactly, for every projection); recomputation is
 * bit-identical with dropout; the merged model and the block-level inference API give the
 * adapter's logits; PEFT adapter directories round-trip and bad ones are refused with a clear
 * message; and parity with PEFT/torch on the committed fixture (tools/make_lora_fixtures.py):
 * logits and A/B gradients. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "kernels/attention/attention.h"
#include "block_forward.h"
#include "model/lora.h"
#include "model/model.h"
#include "test_util.h"

static const lrsa_attn_config k_dense = {.mode = LRSA_ATTN_DENSE};

static void load_base(lrsa_model *m) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/parity/llama_gqa", LRSA_TEST_DATA);
    lrsa_err e;
    if (lrsa_model_load(m, dir, &e)) fail_msg("%s", e.msg);
}

/* An adapter with random A and B (B != 0, unlike PEFT's initialisation, so every path counts). */
static void make_adapter(lrsa_lora *a, const lrsa_model *m, int rank, double dropout,
                         unsigned targets, uint64_t seed) {
    lrsa_lora_config c = {
        .rank = rank, .alpha = 2.0 * rank, .dropout = dropout, .targets = targets};
    lrsa_err e;
    if (lrsa_lora_create(a, &m->cfg, &c, &e)) fail_msg("%s", e.msg);
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    tu_fill_normal(a->table.arena[LRSA_ROLE_PARAM], a->table.numel, 0.1f, &r);
}

static void make_batch(const lrsa_model *m, int B, int T, int32_t *ids, float *w) {
    lrsa_rng r;
    lrsa_rng_seed(&r, 3);
    int n = 0;
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)lrsa_rng_below(&r, (uint64_t)m->cfg.vocab_size);
        w[i] = (i % T) > 2 ? 1.0f : 0.0f;
        n += w[i] != 0;
    }
    for (int i = 0; i < B * T; i++) w[i] /= (float)n;
}

/* The base weight of projection t in layer l. */
static int weight_index(const lrsa_model *m, int l, int t) {
    const lrsa_layer_index *L = &m->layers[l];
    const int idx[LRSA_LORA_NUM_TARGETS] = {L->q, L->k, L->v, L->o, L->gate, L->up, L->down};
    return idx[t];
}

/* y = x (W + s B A)^T, so with G = dL/dW' of the merged model: dA = s B^T G and dB = s G A^T.
 * This checks the whole wiring (groups, columns, the fused q/k/v and gate/up outputs, the
 * frozen base) against the full model's own gradient, to fp32 rounding. */
static void check_chain_rule(unsigned targets, lrsa_attn_config attn) {
    lrsa_model m, merged;
    load_base(&m);
    load_base(&merged);
    lrsa_lora a;
    make_adapter(&a, &m, 3, 0.0, targets, 5);
    lrsa_lora_merge(&a, &merged);
    enum { B = 2, T = 16 };
    int32_t ids[B * T];
    float w[B * T];
    make_batch(&m, B, T, ids, w);
    lrsa_workspace *ws = lrsa_workspace_new();
    m.lora = &a;
    double l1 = lrsa_model_forward_backward(&m, ws, ids, w, B, T, &attn, 0, 1, NULL);
    assert_null(m.table.arena[LRSA_ROLE_GRAD]); /* frozen: the base has no gradient arena */
    lrsa_table_alloc(&merged.table, LRSA_ROLE_GRAD);
    double l2 = lrsa_model_forward_backward(&merged, ws, ids, w, B, T, &attn, 0, 1, NULL);
    assert_true(fabs(l1 - l2) <= 1e-5 * fabs(l2));
    int checked = 0;
    for (int l = 0; l < a.n_layers; l++)
        for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++) {
            int ia = a.layers[l].A[t], ib = a.layers[l].B[t];
            if (!(targets & (1u << t))) {
                assert_int_equal(ia, -1);
                continue;
            }
            const int r = (int)a.table.desc[ia].shape[0], in = (int)a.table.desc[ia].shape[1],
                      out = (int)a.table.desc[ib].shape[0];
            const float *G = lrsa_table_ptr(&merged.table, LRSA_ROLE_GRAD, weight_index(&m, l, t));
            const float *A = lrsa_table_ptr(&a.table, LRSA_ROLE_PARAM, ia);
            const float *Bm = lrsa_table_ptr(&a.table, LRSA_ROLE_PARAM, ib);
            float *dA = malloc(sizeof(float) * (size_t)r * in),
                  *dB = malloc(sizeof(float) * (size_t)out * r);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, out, a.scale, Bm, r, G, in,
                        0.0f, dA, in);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, out, r, in, a.scale, G, in, A, in,
                        0.0f, dB, r);
            char label[256];
            snprintf(label, sizeof label, "layer %d %s dA", l, lrsa_lora_target_name(t));
            TU_ASSERT_CLOSE(lrsa_table_ptr(&a.table, LRSA_ROLE_GRAD, ia), dA, (int64_t)r * in, 1e-4,
                            label);
            snprintf(label, sizeof label, "layer %d %s dB", l, lrsa_lora_target_name(t));
            TU_ASSERT_CLOSE(lrsa_table_ptr(&a.table, LRSA_ROLE_GRAD, ib), dB, (int64_t)out * r,
                            1e-4, label);
            free(dA);
            free(dB);
            checked++;
        }
    assert_true(checked > 0);
    lrsa_workspace_free(ws);
    lrsa_lora_free(&a);
    lrsa_model_free(&m);
    lrsa_model_free(&merged);
}

static void test_chain_rule_through_merged_weights(void **state) {
    (void)state;
    check_chain_rule(LRSA_LORA_ALL_TARGETS, k_dense);
    lrsa_attn_config lr = {.mode = LRSA_ATTN_LRSA, .lagkv = {2, 3, 0.67f, 1.f}};
    check_chain_rule((1u << LRSA_LORA_K) | (1u << LRSA_LORA_O) | (1u << LRSA_LORA_UP), lr);
    check_chain_rule(LRSA_LORA_ALL_TARGETS, lr);
}

/* Recomputation regenerates the dropout masks: losses and adapter gradients bit-identical. */
static void test_recompute_with_dropout(void **state) {
    (void)state;
    lrsa_model m;
    load_base(&m);
    lrsa_lora a;
    make_adapter(&a, &m, 4, 0.25, LRSA_LORA_ALL_TARGETS, 6);
    a.pass_key = 77;
    m.lora = &a;
    enum { B = 2, T = 16 };
    int32_t ids[B * T];
    float w[B * T];
    make_batch(&m, B, T, ids, w);
    lrsa_workspace *ws = lrsa_workspace_new();
    const size_t bytes = sizeof(float) * (size_t)a.table.numel;
    float *g0 = malloc(bytes);
    double l0 = lrsa_model_forward_backward(&m, ws, ids, w, B, T, &k_dense, 0, 1, NULL);
    memcpy(g0, a.table.arena[LRSA_ROLE_GRAD], bytes);
    lrsa_table_zero(&a.table, LRSA_ROLE_GRAD);
    double l1 = lrsa_model_forward_backward(&m, ws, ids, w, B, T, &k_dense, 1, 1, NULL);
    assert_true(l0 == l1);
    assert_memory_equal(g0, a.table.arena[LRSA_ROLE_GRAD], bytes);
    /* dropout is on in training passes: another pass key draws other masks, another loss; an
     * evaluation (no gradient) has no dropout */
    a.pass_key = 78;
    double l2 = lrsa_model_forward_backward(&m, ws, ids, w, B, T, &k_dense, 0, 1, NULL);
    assert_true(l2 != l0);
    double e1 = lrsa_model_forward_backward(&m, ws, ids, w, B, T, &k_dense, 0, 0, NULL);
    a.cfg.dropout = 0;
    double e2 = lrsa_model_forward_backward(&m, ws, ids, w, B, T, &k_dense, 0, 1, NULL);
    assert_true(e1 == e2);
    free(g0);
    lrsa_workspace_free(ws);
    lrsa_lora_free(&a);
    lrsa_model_free(&m);
}

/* Logits: a fresh adapter (B = 0) leaves the base's; an adapter attached, the merged model and
 * the block-level inference API with the adapter attached agree. */
static void test_merge_and_block_api(void **state) {
    (void)state;
    lrsa_model m, merged;
    load_base(&m);
    load_base(&merged);
    const lrsa_model_config *c = &m.cfg;
    enum { T = 16 };
    int32_t ids[T];
    float w[T];
    make_batch(&m, 1, T, ids, w);
    const int V = c->vocab_size;
    float *base = malloc(sizeof(float) * T * V), *lg = malloc(sizeof(float) * T * V),
          *lm = malloc(sizeof(float) * T * V), *lb = malloc(sizeof(float) * T * V);
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_model_logits(&m, ws, ids, 1, T, &k_dense, base);
    lrsa_lora a;
    lrsa_lora_config lc = {.rank = 4, .alpha = 8, .targets = LRSA_LORA_ALL_TARGETS};
    lrsa_err e;
    if (lrsa_lora_create(&a, c, &lc, &e)) fail_msg("%s", e.msg);
    lrsa_lora_init(&a, 9);
    m.lora = &a;
    lrsa_model_logits(&m, ws, ids, 1, T, &k_dense, lg);
    assert_true(tu_max_abs_diff(lg, base, (int64_t)T * V) == 0.0);
    lrsa_rng r;
    lrsa_rng_seed(&r, 10);
    tu_fill_normal(a.table.arena[LRSA_ROLE_PARAM], a.table.numel, 0.1f, &r);
    lrsa_model_logits(&m, ws, ids, 1, T, &k_dense, lg);
    assert_true(tu_rel_err(lg, base, (int64_t)T * V) > 1e-2); /* the adapter matters */
    lrsa_lora_merge(&a, &merged);
    lrsa_model_logits(&merged, ws, ids, 1, T, &k_dense, lm);
    TU_ASSERT_CLOSE(lm, lg, (int64_t)T * V, 1e-5, "merged vs attached");
    /* block-level API (what the KV-cache evaluation runs) with the adapter attached */
    tm_block_forward_logits(&m, ids, T, lb);
    TU_ASSERT_CLOSE(lb, lg, (int64_t)T * V, 1e-6, "block API with adapter");
    free(base), free(lg), free(lm), free(lb);
    lrsa_workspace_free(ws);
    lrsa_lora_free(&a);
    lrsa_model_free(&m);
    lrsa_model_free(&merged);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[4200];
    lrsa_path_join(path, sizeof path, dir, name);
    lrsa_err e;
    if (lrsa_write_file_atomic(path, text, strlen(text), &e)) fail_msg("%s", e.msg);
}

static void expect_load_error(const lrsa_model *m, const char *dir, const char *needle) {
    lrsa_lora b;
    lrsa_err e;
    assert_int_equal(lrsa_lora_load_peft(&b, &m->cfg, dir, &e), -1);
    if (!strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

/* save_peft -> load_peft: the same tensors bit for bit and the same configuration (F32); what
 * lrsa cannot apply is refused with a message naming it. */
static void test_peft_round_trip_and_refusals(void **state) {
    (void)state;
    lrsa_model m;
    load_base(&m);
    lrsa_lora a, b;
    const unsigned targets = (1u << LRSA_LORA_Q) | (1u << LRSA_LORA_V) | (1u << LRSA_LORA_DOWN);
    make_adapter(&a, &m, 4, 0.05, targets, 11);
    a.cfg.alpha = 16;
    char dir[4096];
    tu_tmpdir(dir, sizeof dir, "lora_peft");
    lrsa_err e;
    if (lrsa_lora_save_peft(&a, dir, "/some/base", LRSA_ST_F32, &e)) fail_msg("%s", e.msg);
    if (lrsa_lora_load_peft(&b, &m.cfg, dir, &e)) fail_msg("%s", e.msg);
    assert_int_equal(b.cfg.rank, 4);
    assert_true(b.cfg.alpha == 16 && b.cfg.dropout == 0.05 && b.cfg.targets == targets);
    assert_true(b.scale == 4.0f);
    assert_int_equal(b.table.numel, a.table.numel);
    assert_memory_equal(b.table.arena[LRSA_ROLE_PARAM], a.table.arena[LRSA_ROLE_PARAM],
                        sizeof(float) * (size_t)a.table.numel);
    lrsa_lora_free(&b);
    char path[4200];
    lrsa_path_join(path, sizeof path, dir, "adapter_config.json");
    char *cfg = lrsa_read_file(path, NULL, &e);
    assert_non_null(cfg);
    assert_non_null(strstr(cfg, "\"peft_type\":\t\"LORA\""));
    assert_non_null(strstr(cfg, "\"task_type\":\t\"CAUSAL_LM\""));
    assert_non_null(strstr(cfg, "\"base_model_name_or_path\":\t\"/some/base\""));
    free(cfg);
    /* tensors under PEFT's names */
    lrsa_safetensors st;
    lrsa_path_join(path, sizeof path, dir, "adapter_model.safetensors");
    if (lrsa_st_open(&st, path, &e)) fail_msg("%s", e.msg);
    assert_non_null(
        lrsa_st_find(&st, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert_non_null(
        lrsa_st_find(&st, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    assert_int_equal(st.n, 2 * 2 * 3);
    lrsa_st_close(&st);

    /* adapter_config.json variants over the same tensors (q, v, down at rank 4) */
    static const struct {
        const char *config, *needle;
    } bad[] = {
        {"{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"q_proj\", \"v_proj\", "
         "\"down_proj\"], \"use_dora\": true}",
         "use_dora"},
        {"{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"q_proj\", \"lm_head\"]}",
         "unknown LoRA target 'lm_head'"},
        {"{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": \".*proj\"}",
         "regular expressions"},
        /* the config names k_proj, which the file lacks */
        {"{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"q_proj\", \"k_proj\", "
         "\"v_proj\", \"down_proj\"]}",
         "k_proj.lora_A.weight\" is missing"},
        /* the config leaves out down_proj, which the file has */
        {"{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"q_proj\", \"v_proj\"]}",
         "down_proj.lora_A.weight\" is not a LoRA A/B matrix"},
        /* another rank than the tensors have */
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"target_modules\": [\"q_proj\", \"v_proj\", "
         "\"down_proj\"]}",
         "has shape [4, 32] but r = 8"},
        {"{\"peft_type\": \"PREFIX_TUNING\"}", "only LORA adapters load"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(dir, "adapter_config.json", bad[i].config);
        expect_load_error(&m, dir, bad[i].needle);
    }
    lrsa_lora_free(&a);
    lrsa_model_free(&m);
}

/* Parity with PEFT/torch (tests/fixtures/lora, tools/make_lora_fixtures.py): the adapter as PEFT
 * saved it, on the llama_gqa base: logits (1e-4) and loss unmerged and merged, and every
 * lora_A / lora_B gradient (1e-3). */
static void test_parity_with_peft(void **state) {
    (void)state;
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/lora/adapter", LRSA_TEST_DATA);
    lrsa_model m, merged;
    load_base(&m);
    load_base(&merged);
    lrsa_lora a;
    lrsa_err e;
    if (lrsa_lora_load_peft(&a, &m.cfg, dir, &e)) fail_msg("%s", e.msg);
    assert_int_equal(a.cfg.rank, 4);
    assert_int_equal(a.cfg.targets, LRSA_LORA_ALL_TARGETS);
    lrsa_safetensors st;
    snprintf(path, sizeof path, "%s/lora/expected.safetensors", LRSA_TEST_DATA);
    if (lrsa_st_open(&st, path, &e)) fail_msg("%s", e.msg);
    const lrsa_st_tensor *ti = lrsa_st_find(&st, "input_ids"), *tm = lrsa_st_find(&st, "loss_mask");
    assert_non_null(ti);
    assert_non_null(tm);
    const int B = (int)ti->shape[0], T = (int)ti->shape[1], V = m.cfg.vocab_size;
    const int64_t N = (int64_t)B * T;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
    uint8_t *mask = malloc((size_t)N);
    float *w = calloc((size_t)N, sizeof(float)), *ref = malloc(sizeof(float) * (size_t)(N * V)),
          *lg = malloc(sizeof(float) * (size_t)(N * V)), loss_ref;
    assert_int_equal(lrsa_st_read_i32(&st, ti, ids, &e), 0);
    fseeko(st.f, (off_t)(st.data_start + tm->begin), SEEK_SET);
    assert_int_equal(fread(mask, 1, (size_t)N, st.f), (size_t)N);
    int count = 0;
    for (int64_t i = 0; i < N; i++) count += i % T != 0 && mask[i];
    for (int64_t i = 0; i < N; i++) w[i] = i % T != 0 && mask[i] ? 1.0f / (float)count : 0.0f;
    assert_int_equal(lrsa_st_read_f32(&st, lrsa_st_find(&st, "logits"), ref, &e), 0);
    assert_int_equal(lrsa_st_read_f32(&st, lrsa_st_find(&st, "loss"), &loss_ref, &e), 0);

    lrsa_workspace *ws = lrsa_workspace_new();
    m.lora = &a;
    lrsa_model_logits(&m, ws, ids, B, T, &k_dense, lg);
    TU_ASSERT_CLOSE(lg, ref, N * V, 1e-4, "PEFT logits (adapter attached)");
    double loss = lrsa_model_forward_backward(&m, ws, ids, w, B, T, &k_dense, 0, 1, NULL);
    if (!(fabs(loss - loss_ref) <= 1e-4 * fabs(loss_ref)))
        fail_msg("loss %.8f, PEFT %.8f", loss, loss_ref);
    int n = 0;
    for (int i = 0; i < a.table.n; i++) {
        char gname[200];
        snprintf(gname, sizeof gname, "grad.%s", a.table.desc[i].name);
        const lrsa_st_tensor *t = lrsa_st_find(&st, gname);
        if (!t) fail_msg("expected.safetensors lacks %s", gname);
        float *g = malloc(sizeof(float) * (size_t)a.table.desc[i].numel);
        assert_int_equal(lrsa_st_read_f32(&st, t, g, &e), 0);
        TU_ASSERT_CLOSE(lrsa_table_ptr(&a.table, LRSA_ROLE_GRAD, i), g, a.table.desc[i].numel, 1e-3,
                        gname);
        free(g);
        n++;
    }
    assert_int_equal(n, 2 * 7 * m.cfg.num_hidden_layers);
    lrsa_lora_merge(&a, &merged);
    lrsa_model_logits(&merged, ws, ids, B, T, &k_dense, lg);
    TU_ASSERT_CLOSE(lg, ref, N * V, 1e-4, "PEFT logits (merged)");
    free(ids), free(mask), free(w), free(ref), free(lg);
    lrsa_st_close(&st);
    lrsa_workspace_free(ws);
    lrsa_lora_free(&a);
    lrsa_model_free(&m);
    lrsa_model_free(&merged);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_rule_through_merged_weights),
        cmocka_unit_test(test_recompute_with_dropout),
        cmocka_unit_test(test_merge_and_block_api),
        cmocka_unit_test(test_peft_round_trip_and_refusals),
        cmocka_unit_test(test_parity_with_peft),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
