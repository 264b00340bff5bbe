/* Parity with Hugging Face transformers on the committed fixtures (tools/make_parity_fixtures.py):
 * logits, loss and every parameter gradient. Also, on the same models: recomputation is
 * bit-identical, the block-level inference API reproduces the logits, and save/load round
 * trips (F32 exact, BF16 to bf16 rounding). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "kernels/attention/attention.h"
#include "block_forward.h"
#include "model/model.h"
#include "test_util.h"

static const char *k_fixtures[] = {"llama_gqa", "llama_tied_bias", "llama3_rope", "llama_headdim",
                                   "qwen2_bias"};
#define N_FIX (int)(sizeof k_fixtures / sizeof k_fixtures[0])

typedef struct expected {
    int B, T;
    int32_t *ids;
    float *weight; /* loss weight per target token: mask / count */
    float *logits;
    float loss;
    lrsa_safetensors st;
} expected;

static void fixture_dir(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/parity/%s", LRSA_TEST_DATA, name);
}

static void load_expected(expected *x, const char *dir) {
    char path[4096];
    lrsa_err e;
    lrsa_path_join(path, sizeof path, dir, "expected.safetensors");
    if (lrsa_st_open(&x->st, path, &e)) fail_msg("%s", e.msg);
    const lrsa_st_tensor *t = lrsa_st_find(&x->st, "input_ids");
    assert_non_null(t);
    x->B = (int)t->shape[0];
    x->T = (int)t->shape[1];
    int64_t N = (int64_t)x->B * x->T;
    x->ids = malloc((size_t)N * sizeof(int32_t));
    assert_int_equal(lrsa_st_read_i32(&x->st, t, x->ids, &e), 0);
    const lrsa_st_tensor *mk = lrsa_st_find(&x->st, "loss_mask");
    assert_non_null(mk);
    assert_int_equal(mk->dtype, LRSA_ST_U8);
    uint8_t *mask = malloc((size_t)N);
    fseeko(x->st.f, (off_t)(x->st.data_start + mk->begin), SEEK_SET);
    assert_int_equal(fread(mask, 1, (size_t)N, x->st.f), (size_t)N);
    int count = 0;
    for (int64_t i = 0; i < N; i++) count += (i % x->T != 0) && mask[i];
    assert_true(count > 0);
    x->weight = calloc((size_t)N, sizeof(float));
    for (int64_t i = 0; i < N; i++)
        if (i % x->T != 0 && mask[i]) x->weight[i] = 1.0f / (float)count;
    free(mask);
    const lrsa_st_tensor *lg = lrsa_st_find(&x->st, "logits");
    assert_non_null(lg);
    x->logits = malloc((size_t)(lg->end - lg->begin));
    assert_int_equal(lrsa_st_read_f32(&x->st, lg, x->logits, &e), 0);
    assert_int_equal(lrsa_st_read_f32(&x->st, lrsa_st_find(&x->st, "loss"), &x->loss, &e), 0);
}

static void free_expected(expected *x) {
    free(x->ids);
    free(x->weight);
    free(x->logits);
    lrsa_st_close(&x->st);
}

static void load_model(lrsa_model *m, const char *dir) {
    lrsa_err e;
    if (lrsa_model_load(m, dir, &e)) fail_msg("%s", e.msg);
}

static lrsa_attn_config dense(void) {
    lrsa_attn_config a;
    memset(&a, 0, sizeof a);
    a.mode = LRSA_ATTN_DENSE;
    return a;
}

static lrsa_attn_config lrsa_mode(void) {
    lrsa_attn_config a = dense();
    a.mode = LRSA_ATTN_LRSA;
    a.lagkv.sink = 2;
    a.lagkv.lag = 3;
    a.lagkv.keep = 0.67f;
    a.lagkv.value_weight = 1.f;
    return a;
}

static void test_parity_with_transformers(void **state) {
    (void)state;
    for (int f = 0; f < N_FIX; f++) {
        char dir[4096];
        fixture_dir(dir, sizeof dir, k_fixtures[f]);
        expected x;
        load_expected(&x, dir);
        lrsa_model m;
        load_model(&m, dir);
        lrsa_workspace *ws = lrsa_workspace_new();
        lrsa_attn_config a = dense();
        const int64_t N = (int64_t)x.B * x.T, V = m.cfg.vocab_size;
        float *logits = malloc((size_t)(N * V) * sizeof(float));
        lrsa_model_logits(&m, ws, x.ids, x.B, x.T, &a, logits);
        char label[256];
        snprintf(label, sizeof label, "%s logits", k_fixtures[f]);
        TU_ASSERT_CLOSE(logits, x.logits, N * V, 1e-4, label);

        lrsa_table_alloc(&m.table, LRSA_ROLE_GRAD);
        lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
        double loss =
            lrsa_model_forward_backward(&m, ws, x.ids, x.weight, x.B, x.T, &a, 0, 1, NULL);
        if (!(fabs(loss - x.loss) <= 1e-4 * fabs(x.loss)))
            fail_msg("%s: loss %.8f, transformers %.8f", k_fixtures[f], loss, x.loss);
        int n_grads = 0;
        for (int i = 0; i < m.table.n; i++) {
            const lrsa_param_desc *d = &m.table.desc[i];
            char gname[160];
            snprintf(gname, sizeof gname, "grad.%s", d->name);
            const lrsa_st_tensor *t = lrsa_st_find(&x.st, gname);
            if (!t) fail_msg("%s: expected.safetensors lacks %s", k_fixtures[f], gname);
            assert_int_equal(t->end - t->begin, d->numel * 4);
            float *g = malloc((size_t)d->numel * sizeof(float));
            lrsa_err e;
            assert_int_equal(lrsa_st_read_f32(&x.st, t, g, &e), 0);
            snprintf(label, sizeof label, "%s %s", k_fixtures[f], gname);
            TU_ASSERT_CLOSE(lrsa_table_ptr(&m.table, LRSA_ROLE_GRAD, i), g, d->numel, 1e-3, label);
            free(g);
            n_grads++;
        }
        /* every HF parameter gradient is one of ours (the counts match) */
        int n_expected = 0;
        for (int i = 0; i < x.st.n; i++)
            n_expected += strncmp(x.st.tensors[i].name, "grad.", 5) == 0;
        assert_int_equal(n_grads, n_expected);
        free(logits);
        lrsa_workspace_free(ws);
        lrsa_model_free(&m);
        free_expected(&x);
    }
}

/* Gradients (and loss) with recompute=1 must equal recompute=0 bit for bit. */
static void check_recompute(const char *fix, lrsa_attn_config a) {
    char dir[4096];
    fixture_dir(dir, sizeof dir, fix);
    expected x;
    load_expected(&x, dir);
    lrsa_model m;
    load_model(&m, dir);
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_table_alloc(&m.table, LRSA_ROLE_GRAD);
    const int64_t N = (int64_t)x.B * x.T;
    float *nll0 = malloc((size_t)N * sizeof(float)), *nll1 = malloc((size_t)N * sizeof(float));
    lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
    double l0 = lrsa_model_forward_backward(&m, ws, x.ids, x.weight, x.B, x.T, &a, 0, 1, nll0);
    float *g0 = malloc((size_t)m.table.numel * sizeof(float));
    memcpy(g0, m.table.arena[LRSA_ROLE_GRAD], (size_t)m.table.numel * sizeof(float));
    lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
    double l1 = lrsa_model_forward_backward(&m, ws, x.ids, x.weight, x.B, x.T, &a, 1, 1, nll1);
    assert_true(l0 == l1);
    assert_memory_equal(nll0, nll1, (size_t)N * sizeof(float));
    assert_memory_equal(g0, m.table.arena[LRSA_ROLE_GRAD], (size_t)m.table.numel * sizeof(float));
    /* the gradient is not trivially zero */
    double norm = 0;
    for (int64_t i = 0; i < m.table.numel; i++) norm += (double)g0[i] * g0[i];
    assert_true(norm > 0);
    /* nll is per target token: zero at t = 0 and where the weight is zero */
    for (int64_t i = 0; i < N; i++)
        if (x.weight[i] == 0)
            assert_true(nll0[i] == 0.f);
        else
            assert_true(nll0[i] > 0.f);
    /* accumulation: a second call adds the same gradient again */
    lrsa_model_forward_backward(&m, ws, x.ids, x.weight, x.B, x.T, &a, 1, 1, NULL);
    for (int64_t i = 0; i < m.table.numel; i++) g0[i] *= 2;
    TU_ASSERT_CLOSE(m.table.arena[LRSA_ROLE_GRAD], g0, m.table.numel, 1e-5, "accumulated");
    free(g0);
    free(nll0);
    free(nll1);
    lrsa_workspace_free(ws);
    lrsa_model_free(&m);
    free_expected(&x);
}

static void test_recompute_bit_identical(void **state) {
    (void)state;
    check_recompute("llama_gqa", dense());
    check_recompute("qwen2_bias", dense());
    check_recompute("llama_tied_bias", lrsa_mode());
}

/* A forward assembled from the block-level API with plain causal attention gives the same
 * logits as lrsa_model_logits. */
static void test_block_api_matches_logits(void **state) {
    (void)state;
    for (int f = 0; f < N_FIX; f++) {
        char dir[4096];
        fixture_dir(dir, sizeof dir, k_fixtures[f]);
        expected x;
        load_expected(&x, dir);
        lrsa_model m;
        load_model(&m, dir);
        const int T = x.T, V = m.cfg.vocab_size;
        float *ref = malloc((size_t)T * V * sizeof(float));
        lrsa_workspace *ws = lrsa_workspace_new();
        lrsa_attn_config a = dense();
        lrsa_model_logits(&m, ws, x.ids, 1, T, &a, ref); /* first sequence */
        float *lg = malloc((size_t)T * V * sizeof(float));
        tm_block_forward_logits(&m, x.ids, T, lg);
        TU_ASSERT_CLOSE(lg, ref, (int64_t)T * V, 1e-6, k_fixtures[f]);
        free(ref);
        free(lg);
        lrsa_workspace_free(ws);
        lrsa_model_free(&m);
        free_expected(&x);
    }
}

/* LRSA with keep = 1 keeps every token: the model must equal the dense model (logits and
 * gradients); with keep < 1 it must differ (the selection really is applied). */
static void test_lrsa_keep_one_is_dense(void **state) {
    (void)state;
    char dir[4096];
    fixture_dir(dir, sizeof dir, "llama_gqa");
    expected x;
    load_expected(&x, dir);
    lrsa_model m;
    load_model(&m, dir);
    lrsa_workspace *ws = lrsa_workspace_new();
    const int64_t N = (int64_t)x.B * x.T, V = m.cfg.vocab_size;
    float *ld = malloc((size_t)(N * V) * sizeof(float)),
          *ll = malloc((size_t)(N * V) * sizeof(float));
    lrsa_attn_config d = dense(), l = lrsa_mode();
    l.lagkv.keep = 1.0f;
    lrsa_model_logits(&m, ws, x.ids, x.B, x.T, &d, ld);
    lrsa_model_logits(&m, ws, x.ids, x.B, x.T, &l, ll);
    TU_ASSERT_CLOSE(ll, ld, N * V, 1e-5, "lrsa keep=1 logits");
    lrsa_table_alloc(&m.table, LRSA_ROLE_GRAD);
    lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
    lrsa_model_forward_backward(&m, ws, x.ids, x.weight, x.B, x.T, &d, 0, 1, NULL);
    float *g0 = malloc((size_t)m.table.numel * sizeof(float));
    memcpy(g0, m.table.arena[LRSA_ROLE_GRAD], (size_t)m.table.numel * sizeof(float));
    lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
    lrsa_model_forward_backward(&m, ws, x.ids, x.weight, x.B, x.T, &l, 0, 1, NULL);
    TU_ASSERT_CLOSE(m.table.arena[LRSA_ROLE_GRAD], g0, m.table.numel, 1e-5, "lrsa keep=1 grads");
    l.lagkv.keep = 0.34f; /* one of three kept: T = 16 has 4 partitions after the sink */
    lrsa_model_logits(&m, ws, x.ids, x.B, x.T, &l, ll);
    assert_true(tu_rel_err(ll, ld, N * V) > 1e-3);
    free(g0);
    free(ld);
    free(ll);
    lrsa_workspace_free(ws);
    lrsa_model_free(&m);
    free_expected(&x);
}

/* Every fixture model (GQA untied, tied with biases, llama3 rope from rope_parameters, head_dim
 * != hidden/heads, Qwen2) saved and reloaded: F32 bit-identical weights, the same config, and
 * bit-identical logits; BF16 equal to the bf16 rounding of every weight. */
static void test_save_load_round_trip(void **state) {
    (void)state;
    const char *const *fix = k_fixtures;
    for (int f = 0; f < N_FIX; f++) {
        char dir[4096], out[4096], out16[4096];
        fixture_dir(dir, sizeof dir, fix[f]);
        lrsa_model m, r;
        load_model(&m, dir);
        tu_tmpdir(out, sizeof out, "model_save_f32");
        tu_tmpdir(out16, sizeof out16, "model_save_bf16");
        lrsa_err e;
        if (lrsa_model_save(&m, out, LRSA_ST_F32, &e)) fail_msg("%s", e.msg);
        load_model(&r, out);
        assert_int_equal(r.table.numel, m.table.numel);
        assert_memory_equal(&r.cfg, &m.cfg, offsetof(lrsa_model_config, torch_dtype));
        assert_memory_equal(r.table.arena[LRSA_ROLE_PARAM], m.table.arena[LRSA_ROLE_PARAM],
                            (size_t)m.table.numel * sizeof(float));
        {
            const int B = 1, T = 9, V = m.cfg.vocab_size;
            int32_t ids[9];
            for (int t = 0; t < T; t++) ids[t] = (int32_t)((7 * t + 3) % V);
            float *la = malloc((size_t)T * V * sizeof(float)),
                  *lb = malloc((size_t)T * V * sizeof(float));
            lrsa_workspace *ws = lrsa_workspace_new();
            lrsa_attn_config a = dense();
            lrsa_model_logits(&m, ws, ids, B, T, &a, la);
            lrsa_model_logits(&r, ws, ids, B, T, &a, lb);
            assert_memory_equal(la, lb, (size_t)T * V * sizeof(float));
            lrsa_workspace_free(ws);
            free(la);
            free(lb);
        }
        lrsa_model_free(&r);
        if (lrsa_model_save(&m, out16, LRSA_ST_BF16, &e)) fail_msg("%s", e.msg);
        load_model(&r, out16);
        assert_string_equal(r.cfg.torch_dtype, "bfloat16");
        int64_t differ = 0;
        for (int64_t i = 0; i < m.table.numel; i++) {
            float o = m.table.arena[LRSA_ROLE_PARAM][i];
            float want = lrsa_bf16_to_f32(lrsa_f32_to_bf16(o));
            assert_true(r.table.arena[LRSA_ROLE_PARAM][i] == want);
            differ += want != o;
        }
        assert_true(differ > 0); /* really stored as bf16 */
        lrsa_model_free(&r);
        lrsa_model_free(&m);
    }
}

/* A sharded checkpoint (index + two shards, BF16 and F32 mixed) loads like a single file. */
static void test_load_sharded(void **state) {
    (void)state;
    char dir[4096], out[4096], path[4096];
    fixture_dir(dir, sizeof dir, "qwen2_bias");
    lrsa_model m, r;
    load_model(&m, dir);
    tu_tmpdir(out, sizeof out, "model_sharded");
    lrsa_err e;
    lrsa_path_join(path, sizeof path, out, "config.json");
    assert_int_equal(lrsa_config_save(&m.cfg, path, "float32", &e), 0);
    const char *shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    char index[16384];
    int k = snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    for (int s = 0; s < 2; s++) {
        lrsa_st_writer *w = lrsa_st_writer_new();
        for (int i = 0; i < m.table.n; i++) {
            if ((i < m.table.n / 2) != (s == 0)) continue;
            const lrsa_param_desc *d = &m.table.desc[i];
            lrsa_st_writer_add_f32(w, d->name, s == 0 ? LRSA_ST_BF16 : LRSA_ST_F32, d->ndim,
                                   d->shape, lrsa_table_ptr(&m.table, LRSA_ROLE_PARAM, i));
            k += snprintf(index + k, sizeof index - (size_t)k, "%s\"%s\": \"%s\"", i ? ", " : "",
                          d->name, shard[s]);
        }
        lrsa_path_join(path, sizeof path, out, shard[s]);
        assert_int_equal(lrsa_st_writer_write(w, path, &e), 0);
        lrsa_st_writer_free(w);
    }
    snprintf(index + k, sizeof index - (size_t)k, "}}");
    lrsa_path_join(path, sizeof path, out, "model.safetensors.index.json");
    assert_int_equal(lrsa_write_file_atomic(path, index, strlen(index), &e), 0);
    if (lrsa_model_load(&r, out, &e)) fail_msg("%s", e.msg);
    for (int i = 0; i < m.table.n; i++) {
        const float *a = lrsa_table_ptr(&m.table, LRSA_ROLE_PARAM, i);
        const float *b = lrsa_table_ptr(&r.table, LRSA_ROLE_PARAM, i);
        for (int64_t j = 0; j < m.table.desc[i].numel; j++)
            assert_true(b[j] ==
                        (i < m.table.n / 2 ? lrsa_bf16_to_f32(lrsa_f32_to_bf16(a[j])) : a[j]));
    }
    lrsa_model_free(&r);
    lrsa_model_free(&m);
}

static void test_load_errors(void **state) {
    (void)state;
    char dir[4096], out[4096];
    fixture_dir(dir, sizeof dir, "llama_gqa");
    lrsa_model m, r;
    load_model(&m, dir);
    tu_tmpdir(out, sizeof out, "model_bad");
    lrsa_err e;
    assert_int_equal(lrsa_model_save(&m, out, LRSA_ST_F32, &e), 0);
    /* a config whose vocabulary disagrees with the weights: the error names the tensor */
    char cfg[4096];
    lrsa_path_join(cfg, sizeof cfg, out, "config.json");
    lrsa_model_config c = m.cfg;
    c.vocab_size += 1;
    assert_int_equal(lrsa_config_save(&c, cfg, "float32", &e), 0);
    assert_int_equal(lrsa_model_load(&r, out, &e), -1);
    assert_non_null(strstr(e.msg, "model.embed_tokens.weight"));
    assert_non_null(strstr(e.msg, "shape"));
    /* a tied config over an untied checkpoint loads (the stored lm_head copy is ignored) */
    c = m.cfg;
    c.tie_word_embeddings = 1;
    assert_int_equal(lrsa_config_save(&c, cfg, "float32", &e), 0);
    assert_int_equal(lrsa_model_load(&r, out, &e), 0);
    assert_int_equal(r.lm_head, r.embed);
    lrsa_model_free(&r);
    /* a tied model's stored lm_head copy with another shape is an error naming it */
    {
        char out3[4096], st3[4096];
        tu_tmpdir(out3, sizeof out3, "model_bad3");
        lrsa_model tm;
        c = m.cfg;
        c.tie_word_embeddings = 1;
        assert_int_equal(lrsa_model_create(&tm, &c, &e), 0);
        lrsa_st_writer *w = lrsa_st_writer_new();
        for (int i = 0; i < tm.table.n; i++)
            lrsa_st_writer_add_f32(w, tm.table.desc[i].name, LRSA_ST_F32, tm.table.desc[i].ndim,
                                   tm.table.desc[i].shape,
                                   lrsa_table_ptr(&tm.table, LRSA_ROLE_PARAM, i));
        int64_t bad_shape[2] = {c.vocab_size, c.hidden_size - 1};
        float *junk = calloc((size_t)(bad_shape[0] * bad_shape[1]), sizeof(float));
        lrsa_st_writer_add_f32(w, "lm_head.weight", LRSA_ST_F32, 2, bad_shape, junk);
        lrsa_path_join(st3, sizeof st3, out3, "model.safetensors");
        assert_int_equal(lrsa_st_writer_write(w, st3, &e), 0);
        lrsa_st_writer_free(w);
        free(junk);
        lrsa_path_join(st3, sizeof st3, out3, "config.json");
        assert_int_equal(lrsa_config_save(&c, st3, "float32", &e), 0);
        assert_int_equal(lrsa_model_load(&r, out3, &e), -1);
        assert_non_null(strstr(e.msg, "lm_head.weight"));
        lrsa_model_free(&tm);
    }
    /* missing tensor: an untied config over a tied checkpoint */
    char dir2[4096], out2[4096];
    fixture_dir(dir2, sizeof dir2, "llama3_rope");
    lrsa_model t;
    load_model(&t, dir2);
    tu_tmpdir(out2, sizeof out2, "model_bad2");
    assert_int_equal(lrsa_model_save(&t, out2, LRSA_ST_F32, &e), 0);
    c = t.cfg;
    c.tie_word_embeddings = 0;
    lrsa_path_join(cfg, sizeof cfg, out2, "config.json");
    assert_int_equal(lrsa_config_save(&c, cfg, "float32", &e), 0);
    assert_int_equal(lrsa_model_load(&r, out2, &e), -1);
    assert_non_null(strstr(e.msg, "lm_head.weight"));
    assert_non_null(strstr(e.msg, "missing"));
    lrsa_model_free(&t);
    lrsa_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_with_transformers),
        cmocka_unit_test(test_recompute_bit_identical),
        cmocka_unit_test(test_block_api_matches_logits),
        cmocka_unit_test(test_lrsa_keep_one_is_dense),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_load_sharded),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
