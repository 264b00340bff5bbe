/* CompressKV (eval/press/press_compresskv.c, eval/press/compresskv_file.c, cli/cmd_compresskv.c):
 *  - the step B allocation on weights made by hand (rounding, clipping at 3B, the +1/-1 fix-up
 *    order) and the per-layer budgets read from a file;
 *  - one layer's window scores against a naive double reference (softmax with the window's
 *    causal mask, sum over window queries, avg pooling with zero padding, mean over the SRHs,
 *    +inf for window and sink rows);
 *  - the step A statistic finds a planted retrieval head: a head whose query matches the keys
 *    of the answer span gets nearly all its mass there and ranks first in its layer;
 *  - the file loader round-trips and rejects malformed files and files of another model;
 *  - `lrsa compresskv` end to end on a tiny saved model (all probes counted), and its clear
 *    error when no probe is answered. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/press/compresskv.h"
#include "eval/press/press_internal.h"
#include "eval/tiny_model.h"
#include "test_util.h"

static void test_allocate_by_hand(void **state) {
    (void)state;
    int64_t b[4];
    const double w1[3] = {0.5, 0.3, 0.2};
    /* total 300, pool 300 - 96 = 204: extras 102, 61.2 -> 61, 40.8 -> 41 */
    lrsa_compresskv_allocate(w1, 3, 100, 32, 300, b);
    assert_int_equal(b[0], 134);
    assert_int_equal(b[1], 93);
    assert_int_equal(b[2], 73);
    /* layer 0 would get 32 + 272 = 304 > 3B: clipped to 300, the 4 missing go one at a time to
     * the others in weight order (ties: lower layer): 1, 2, 3, 1 */
    const double w2[4] = {1.0, 0.0, 0.0, 0.0};
    lrsa_compresskv_allocate(w2, 4, 100, 32, 300, b);
    assert_int_equal(b[0], 300);
    assert_int_equal(b[1], 34);
    assert_int_equal(b[2], 33);
    assert_int_equal(b[3], 33);
    /* rounding overshoots (7.5 -> 8 twice, sum 31 > 30): one removed from the least important
     * layer above lo, i.e. layer 1 (layer 2 is at lo) */
    const double w3[3] = {0.5, 0.5, 0.0};
    lrsa_compresskv_allocate(w3, 3, 10, 5, 30, b);
    assert_int_equal(b[0], 13);
    assert_int_equal(b[1], 12);
    assert_int_equal(b[2], 5);
}

static void write_text(const char *path, const char *text) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_write_file_atomic(path, text, strlen(text), &e), 0);
}

/* A valid file for the tiny model (2 layers, 6 query heads, 2 KV heads) with `weights`. */
static void write_tiny_file(const char *path, const char *weights, const char *heads0) {
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"format\": \"lrsa-compresskv\", \"version\": 1,\n"
             " \"model\": {\"name\": \"tiny\", \"model_type\": \"llama\", \"num_hidden_layers\": 2,"
             " \"num_attention_heads\": 6, \"num_key_value_heads\": 2, \"head_dim\": 16,"
             " \"hidden_size\": 48, \"vocab_size\": 61},\n"
             " \"first_k\": 2,\n"
             " \"heads\": [%s, [5, 4, 3, 2, 1, 0]],\n"
             " \"head_scores\": [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]],\n"
             " \"layer_weights\": %s}\n",
             heads0, weights);
    write_text(path, buf);
}

static void test_layer_budgets_from_file(void **state) {
    (void)state;
    char dir[1024], path[2048];
    tu_tmpdir(dir, sizeof dir, "compresskv_budgets");
    snprintf(path, sizeof path, "%s/f.json", dir);
    write_tiny_file(path, "[3, 1]", "[0, 1, 2, 3, 4, 5]"); /* normalised to 0.75, 0.25 */
    lrsa_press_spec s;
    memset(&s, 0, sizeof s);
    s.compresskv_file = path;
    s.window = 8;
    s.tokens_per_layer = 100;
    int64_t b[2];
    lrsa_err e = {{0}};
    /* lo 32, hi 300, total 200, pool 136: 32 + 102, 32 + 34 */
    assert_int_equal(lrsa_compresskv_layer_budgets(&s, 2, 1000, b, &e), 0);
    assert_int_equal(b[0], 134);
    assert_int_equal(b[1], 66);
    s.tokens_per_layer = 0;
    s.keep = 0.1; /* the same nominal 100 of 1000 */
    assert_int_equal(lrsa_compresskv_layer_budgets(&s, 2, 1000, b, &e), 0);
    assert_int_equal(b[0], 134);
    assert_int_equal(b[1], 66);
    /* a budget under 32: lo = B = 20, total 40, nothing to share */
    s.keep = 0.5;
    assert_int_equal(lrsa_compresskv_layer_budgets(&s, 2, 40, b, &e), 0);
    assert_int_equal(b[0], 20);
    assert_int_equal(b[1], 20);
    /* fewer rows than the protected window: everything */
    assert_int_equal(lrsa_compresskv_layer_budgets(&s, 2, 6, b, &e), 0);
    assert_int_equal(b[0], 6);
    assert_int_equal(b[1], 6);
    /* the wrong layer count */
    assert_int_equal(lrsa_compresskv_layer_budgets(&s, 3, 1000, b, &e), -1);
    assert_non_null(strstr(e.msg, "2 layers"));
}

static void fill_cache(lrsa_kv_cache *c, int Hkv, int D, int64_t T, float scale, uint64_t seed) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_init(c, 1, Hkv, D, NULL, &e), 0);
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    float *k = malloc(T * Hkv * D * sizeof(float)), *v = malloc(T * Hkv * D * sizeof(float));
    int32_t *pos = malloc(T * sizeof(int32_t));
    tu_fill_normal(k, T * Hkv * D, scale, &r);
    tu_fill_normal(v, T * Hkv * D, 1.0f, &r);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
    lrsa_kv_cache_append(c, 0, k, v, (int64_t)Hkv * D, pos, T);
    free(k);
    free(v);
    free(pos);
}

static void test_layer_scores_brute_force(void **state) {
    (void)state;
    enum { HKV = 2, HQ = 6, D = 16, T = 23, W = 4, K = 3, SINK = 2 };
    lrsa_kv_cache c;
    fill_cache(&c, HKV, D, T, 1.0f, 5);
    float wq[W * HQ * D];
    lrsa_rng r;
    lrsa_rng_seed(&r, 9);
    tu_fill_normal(wq, W * HQ * D, 1.0f, &r);
    const int32_t heads[2] = {4, 1}; /* KV heads 1 and 0 */
    float got[T];
    lrsa_compresskv_layer_scores(&c, 0, wq, W, HQ, heads, 2, K, LRSA_POOL_AVG, SINK, got);
    double want[T] = {0};
    for (int i = 0; i < 2; i++) {
        const lrsa_kv_head *kh = &c.heads[heads[i] / 3];
        double a[T] = {0};
        for (int j = 0; j < W; j++) {
            const int vis = T - W + j + 1;
            double p[T], mx = -INFINITY, sum = 0;
            for (int t = 0; t < vis; t++) {
                double s = 0;
                for (int d = 0; d < D; d++)
                    s += (double)wq[(j * HQ + heads[i]) * D + d] * kh->k[t * D + d];
                p[t] = s / sqrt((double)D);
                mx = p[t] > mx ? p[t] : mx;
            }
            for (int t = 0; t < vis; t++) sum += (p[t] = exp(p[t] - mx));
            for (int t = 0; t < T - W; t++) a[t] += p[t] / sum;
        }
        for (int t = 0; t < T - W; t++) {
            double pooled = 0;
            for (int u = t - K / 2; u <= t + K / 2; u++)
                if (u >= 0 && u < T - W) pooled += a[u];
            want[t] += pooled / K / 2;
        }
    }
    for (int t = 0; t < T; t++) {
        if (t < SINK || t >= T - W) {
            assert_true(isinf(got[t]) && got[t] > 0);
            continue;
        }
        if (!(fabs(got[t] - want[t]) <= 1e-6))
            fail_msg("row %d: %.8f vs brute force %.8f", t, got[t], want[t]);
    }
    lrsa_kv_cache_free(&c);
}

static void test_planted_retrieval_head(void **state) {
    (void)state;
    enum { HKV = 2, HQ = 6, D = 16, T = 40, R0 = 10, R1 = 14 };
    lrsa_kv_cache c;
    fill_cache(&c, HKV, D, T, 0.3f, 21);
    /* plant: the span's keys in KV head 1 point along u, and query head 4 asks for u */
    float u[D], q[HQ * D];
    lrsa_rng r;
    lrsa_rng_seed(&r, 22);
    tu_fill_normal(u, D, 1.0f, &r);
    tu_fill_normal(q, HQ * D, 0.3f, &r);
    for (int t = R0; t < R1; t++)
        for (int d = 0; d < D; d++) c.heads[1].k[t * D + d] = 2.0f * u[d];
    for (int d = 0; d < D; d++) q[4 * D + d] = 2.0f * u[d];
    double mass[HQ];
    lrsa_srh_step_mass(&c, 0, q, HQ, R0, R1, mass);
    for (int h = 0; h < HQ; h++) {
        printf("head %d: mass on the span %.4f\n", h, mass[h]);
        if (h != 4) assert_true(mass[h] < 0.5);
    }
    assert_true(mass[4] > 0.9);
    /* the mass is the softmax share of the span: 1 for a span covering every row */
    double all[HQ];
    lrsa_srh_step_mass(&c, 0, q, HQ, 0, T, all);
    for (int h = 0; h < HQ; h++) assert_true(fabs(all[h] - 1.0) < 1e-9);
    int32_t order[HQ];
    lrsa_srh_rank_heads(mass, 1, HQ, order);
    assert_int_equal(order[0], 4);
    for (int i = 1; i < HQ; i++) assert_true(mass[order[i - 1]] >= mass[order[i]]);
    lrsa_kv_cache_free(&c);
}

static void expect_load_error(const char *dir, const char *name, const char *text,
                              const char *needle) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_text(path, text);
    lrsa_compresskv_file f;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_compresskv_load(&f, path, &e), -1);
    if (!strstr(e.msg, needle) || !strstr(e.msg, path))
        fail_msg("%s: error '%s' lacks '%s' or the path", name, e.msg, needle);
}

static void test_file_round_trip_and_errors(void **state) {
    (void)state;
    char dir[1024], path[2048], path2[2048];
    tu_tmpdir(dir, sizeof dir, "compresskv_file");
    snprintf(path, sizeof path, "%s/good.json", dir);
    write_tiny_file(path, "[1, 3]", "[2, 0, 1, 3, 4, 5]");
    lrsa_compresskv_file f, g;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_compresskv_load(&f, path, &e), 0);
    assert_int_equal(f.n_layers, 2);
    assert_int_equal(f.first_k, 2);
    assert_int_equal(f.heads[0], 2);
    assert_int_equal(f.heads[6], 5);
    assert_true(fabs(f.layer_weight[0] - 0.25) < 1e-12 && fabs(f.layer_weight[1] - 0.75) < 1e-12);
    snprintf(path2, sizeof path2, "%s/again.json", dir);
    assert_int_equal(lrsa_compresskv_save(&f, path2, &e), 0);
    assert_int_equal(lrsa_compresskv_load(&g, path2, &e), 0);
    assert_memory_equal(f.heads, g.heads, 12 * sizeof(int32_t));
    assert_memory_equal(f.layer_weight, g.layer_weight, 2 * sizeof(double));
    /* identity: the tiny model matches, a 3-layer one does not */
    lrsa_model m;
    tiny_model_create(&m, 2, 61, 0, 1);
    assert_int_equal(lrsa_compresskv_check_model(&f, path, &m.cfg, &e), 0);
    lrsa_model_free(&m);
    tiny_model_create(&m, 3, 61, 0, 1);
    assert_int_equal(lrsa_compresskv_check_model(&f, path, &m.cfg, &e), -1);
    assert_non_null(strstr(e.msg, "made for another model"));
    assert_non_null(strstr(e.msg, "num_hidden_layers = 2"));
    lrsa_model_free(&m);
    lrsa_compresskv_free(&f);
    lrsa_compresskv_free(&g);

    expect_load_error(dir, "notjson.json", "{\"format\": ", "not valid JSON");
    expect_load_error(dir, "format.json", "{\"format\": \"other\", \"version\": 1}", "\"format\"");
    expect_load_error(dir, "version.json", "{\"format\": \"lrsa-compresskv\", \"version\": 7}",
                      "version 7");
    char bad[2048];
    snprintf(path, sizeof path, "%s/perm.json", dir);
    write_tiny_file(path, "[1, 1]", "[0, 1, 2, 3, 4, 4]");
    size_t n = 0;
    char *text = lrsa_read_file(path, &n, &e);
    expect_load_error(dir, "perm.json", text, "exactly once");
    free(text);
    snprintf(path, sizeof path, "%s/w.json", dir);
    write_tiny_file(path, "[1, 2, 3]", "[0, 1, 2, 3, 4, 5]");
    text = lrsa_read_file(path, &n, &e);
    expect_load_error(dir, "w.json", text, "layer_weights");
    free(text);
    write_tiny_file(path, "[1, -2]", "[0, 1, 2, 3, 4, 5]");
    text = lrsa_read_file(path, &n, &e);
    expect_load_error(dir, "neg.json", text, ">= 0");
    free(text);
    write_tiny_file(path, "[1, 2]", "[0, 1, 2, 3, 4]");
    text = lrsa_read_file(path, &n, &e);
    expect_load_error(dir, "short.json", text, "\"heads\"[0]");
    free(text);
    snprintf(bad, sizeof bad, "%s/missing.json", dir);
    assert_int_equal(lrsa_compresskv_load(&f, bad, &e), -1);
    assert_non_null(strstr(e.msg, "missing.json"));
}

static void test_command_end_to_end(void **state) {
    (void)state;
    char dir[1024], model_dir[2048], tok_src[2048], tok_dst[2048], out[2048], cmd[8192];
    tu_tmpdir(dir, sizeof dir, "compresskv_cmd");
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(out, sizeof out, "%s/heads.json", dir);
    lrsa_model m;
    tiny_model_create(&m, 2, 1359, 0, 61); /* the fixture tokenizer has 1359 ids */
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_model_save(&m, model_dir, LRSA_ST_F32, &e), 0);
    snprintf(tok_src, sizeof tok_src, "%s/tokenizer/smollm/tokenizer.json", LRSA_TEST_DATA);
    snprintf(tok_dst, sizeof tok_dst, "%s/tokenizer.json", model_dir);
    size_t n = 0;
    char *tok = lrsa_read_file(tok_src, &n, &e);
    assert_non_null(tok);
    assert_int_equal(lrsa_write_file_atomic(tok_dst, tok, n, &e), 0);
    free(tok);
    char *log = NULL;
    /* a random model answers nothing: a clear error, no file */
    snprintf(cmd, sizeof cmd,
             "%s compresskv --model %s --out %s --tasks passkey --samples 2 --length 200 "
             "--decode 3 2>&1",
             LRSA_BINARY, model_dir, out);
    assert_int_not_equal(tu_run(cmd, &log), 0);
    assert_non_null(strstr(log, "none of the 2 probes was answered"));
    assert_false(lrsa_file_exists(out));
    free(log);
    snprintf(cmd, sizeof cmd,
             "%s compresskv --model %s --out %s --tasks passkey,niah-single --samples 2 "
             "--length 320 --decode 3 --all-probes 2>&1",
             LRSA_BINARY, model_dir, out);
    if (tu_run(cmd, &log) != 0) fail_msg("lrsa compresskv failed: %s", log ? log : "");
    free(log);
    lrsa_compresskv_file f;
    if (lrsa_compresskv_load(&f, out, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(lrsa_compresskv_check_model(&f, out, &m.cfg, &e), 0);
    assert_int_equal(f.first_k, 4);
    double sum = 0;
    for (int l = 0; l < 2; l++) sum += f.layer_weight[l];
    assert_true(fabs(sum - 1.0) < 1e-9);
    for (int l = 0; l < 2; l++) /* ranked by score */
        for (int i = 1; i < 6; i++)
            assert_true(f.head_scores[l * 6 + f.heads[l * 6 + i - 1]] >=
                        f.head_scores[l * 6 + f.heads[l * 6 + i]]);
    assert_non_null(strstr(f.probes_json, "\"counted\":4"));
    lrsa_compresskv_free(&f);
    /* bad flags */
    snprintf(cmd, sizeof cmd, "%s compresskv --model %s --out %s --tasks nosuch 2>&1", LRSA_BINARY,
             model_dir, out);
    assert_int_not_equal(tu_run(cmd, &log), 0);
    assert_non_null(strstr(log, "unknown task 'nosuch'"));
    free(log);
    lrsa_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocate_by_hand),
        cmocka_unit_test(test_layer_budgets_from_file),
        cmocka_unit_test(test_layer_scores_brute_force),
        cmocka_unit_test(test_planted_retrieval_head),
        cmocka_unit_test(test_file_round_trip_and_errors),
        cmocka_unit_test(test_command_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
