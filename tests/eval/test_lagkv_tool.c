/* `lrsa lagkv`: its selection equals the KV cache's one-shot compression of the same K/V, its
 * scores mark the sink and unscored tokens with +inf, and bad input gives clear errors and no
 * output file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/cache/kv_cache.h"
#include "model/safetensors.h"
#include "test_util.h"

enum { LAYERS = 2, HKV = 3, D = 8 };

/* Writes k, v [LAYERS, HKV, T, D] (random) into path; optional overrides for error cases. */
static void write_kv(const char *path, int T, float *k, float *v, lrsa_st_dtype kdt, int vdim,
                     int with_v) {
    lrsa_st_writer *w = lrsa_st_writer_new();
    int64_t shape[4] = {LAYERS, HKV, T, D};
    lrsa_st_writer_add_f32(w, "k", kdt, 4, shape, k);
    if (with_v) {
        int64_t vshape[4] = {LAYERS, HKV, T, D};
        if (vdim == 3) vshape[2] = (int64_t)T * D, vshape[3] = 1;
        lrsa_st_writer_add_f32(w, "v", LRSA_ST_F32, vdim == 3 ? 3 : 4, vdim == 3 ? vshape : shape,
                               v);
    }
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_st_writer_write(w, path, &e), 0);
    lrsa_st_writer_free(w);
}

static int run_tool(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s lagkv %s 2>&1", LRSA_BINARY, args);
    return tu_run(cmd, out);
}

static void test_tool_equals_cache_oneshot(void **state) {
    (void)state;
    const struct {
        int S, L;
        float r, w;
        int T;
    } cases[] = {{4, 16, 0.5f, 1.0f, 150}, {0, 10, 0.3f, 0.5f, 97}, {16, 32, 0.25f, 1.0f, 60}};
    char dir[1024];
    tu_tmpdir(dir, sizeof(dir), "lagkv_tool");
    lrsa_rng r;
    lrsa_rng_seed(&r, 31);
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const int T = cases[ci].T;
        const int64_t n = (int64_t)LAYERS * HKV * T * D;
        float *k = malloc((size_t)n * sizeof(float)), *v = malloc((size_t)n * sizeof(float));
        tu_fill_normal(k, n, 1.0f, &r);
        tu_fill_normal(v, n, 2.0f, &r);
        char in[2048], out[2048], args[6000];
        snprintf(in, sizeof(in), "%s/kv%zu.safetensors", dir, ci);
        snprintf(out, sizeof(out), "%s/sel%zu.safetensors", dir, ci);
        write_kv(in, T, k, v, LRSA_ST_F32, 4, 1);
        snprintf(args, sizeof(args),
                 "--kv %s --sink %d --lag %d --keep %g --value-weight %g --out %s", in, cases[ci].S,
                 cases[ci].L, cases[ci].r, cases[ci].w, out);
        char *log = NULL;
        int rc = run_tool(args, &log);
        if (rc != 0) fail_msg("lrsa lagkv failed (%d): %s", rc, log ? log : "");
        free(log);

        /* The same K/V through the cache: token-major rows, one append, one event. */
        lrsa_lagkv_params p = {cases[ci].S, cases[ci].L, cases[ci].r, cases[ci].w};
        lrsa_kv_cache c;
        lrsa_err e = {{0}};
        assert_int_equal(lrsa_kv_cache_init(&c, LAYERS, HKV, D, &p, &e), 0);
        const int64_t stride = 2 * HKV * D;
        float *rows = malloc((size_t)(T * stride) * sizeof(float));
        int32_t *pos = malloc((size_t)T * sizeof(int32_t));
        for (int t = 0; t < T; t++) pos[t] = t;
        for (int l = 0; l < LAYERS; l++) {
            for (int g = 0; g < HKV; g++)
                for (int t = 0; t < T; t++) {
                    const int64_t src = (((int64_t)l * HKV + g) * T + t) * D;
                    memcpy(rows + t * stride + g * D, k + src, D * sizeof(float));
                    memcpy(rows + t * stride + HKV * D + g * D, v + src, D * sizeof(float));
                }
            lrsa_kv_cache_append(&c, l, rows, rows + HKV * D, stride, pos, T);
        }
        lrsa_kv_cache_compress(&c);

        lrsa_safetensors st;
        assert_int_equal(lrsa_st_open(&st, out, &e), 0);
        const lrsa_st_tensor *ts = lrsa_st_find(&st, "selected"),
                             *tsc = lrsa_st_find(&st, "scores");
        assert_non_null(ts);
        assert_non_null(tsc);
        assert_int_equal(ts->dtype, LRSA_ST_I32);
        assert_int_equal(ts->ndim, 3);
        const int64_t kept = lrsa_lagkv_oneshot_len(T, &p);
        assert_int_equal(ts->shape[0], LAYERS);
        assert_int_equal(ts->shape[1], HKV);
        assert_int_equal(ts->shape[2], kept);
        int32_t *sel = malloc((size_t)(LAYERS * HKV * kept) * sizeof(int32_t));
        float *scores = malloc((size_t)(LAYERS * HKV * T) * sizeof(float));
        assert_int_equal(lrsa_st_read_i32(&st, ts, sel, &e), 0);
        assert_int_equal(tsc->shape[2], T);
        assert_int_equal(lrsa_st_read_f32(&st, tsc, scores, &e), 0);
        lrsa_st_close(&st);
        const int n_part = T >= p.sink ? (T - p.sink) / p.lag : 0;
        const int64_t scored_end = n_part >= 2 ? p.sink + (int64_t)(n_part - 1) * p.lag : 0;
        for (int l = 0; l < LAYERS; l++)
            for (int g = 0; g < HKV; g++) {
                lrsa_kv_head *h = lrsa_kv_cache_head(&c, l, g);
                assert_int_equal(h->len, kept);
                const int32_t *s = sel + ((int64_t)l * HKV + g) * kept;
                assert_memory_equal(s, h->pos, (size_t)kept * sizeof(int32_t));
                const float *sc = scores + ((int64_t)l * HKV + g) * T;
                for (int t = 0; t < T; t++) {
                    int scored = t >= p.sink && t < scored_end;
                    if (scored)
                        assert_true(isfinite(sc[t]) && sc[t] > 0.0f);
                    else
                        assert_true(isinf(sc[t]) && sc[t] > 0);
                }
            }
        if (T < p.sink + 2 * p.lag) assert_int_equal(kept, T);
        free(sel);
        free(scores);
        free(rows);
        free(pos);
        lrsa_kv_cache_free(&c);
        free(k);
        free(v);
    }
}

static void expect_error(const char *args, const char *needle, const char *out_path) {
    char *log = NULL;
    int rc = run_tool(args, &log);
    if (rc == 0) fail_msg("expected failure for `%s`", args);
    if (!log || !strstr(log, needle))
        fail_msg("`%s`: message lacks '%s': %s", args, needle, log ? log : "(none)");
    free(log);
    if (out_path) assert_false(lrsa_file_exists(out_path));
}

static void test_tool_errors(void **state) {
    (void)state;
    char dir[1024], good[2048], f16[2048], nov[2048], flat[2048], mism[2048], out[2048];
    char args[12000];
    tu_tmpdir(dir, sizeof(dir), "lagkv_tool_err");
    const int T = 40;
    const int64_t n = (int64_t)LAYERS * HKV * T * D;
    float *k = malloc((size_t)n * sizeof(float)), *v = malloc((size_t)n * sizeof(float));
    lrsa_rng r;
    lrsa_rng_seed(&r, 32);
    tu_fill_normal(k, n, 1.0f, &r);
    tu_fill_normal(v, n, 1.0f, &r);
    snprintf(good, sizeof(good), "%s/good.safetensors", dir);
    snprintf(f16, sizeof(f16), "%s/f16.safetensors", dir);
    snprintf(nov, sizeof(nov), "%s/nov.safetensors", dir);
    snprintf(flat, sizeof(flat), "%s/flat.safetensors", dir);
    snprintf(mism, sizeof(mism), "%s/mism.safetensors", dir);
    snprintf(out, sizeof(out), "%s/out.safetensors", dir);
    write_kv(good, T, k, v, LRSA_ST_F32, 4, 1);
    write_kv(f16, T, k, v, LRSA_ST_F16, 4, 1);
    write_kv(nov, T, k, v, LRSA_ST_F32, 4, 0);
    write_kv(flat, T, k, v, LRSA_ST_F32, 3, 1);
    { /* v with a different T */
        lrsa_st_writer *w = lrsa_st_writer_new();
        int64_t ks[4] = {LAYERS, HKV, T, D}, vs[4] = {LAYERS, HKV, T / 2, D};
        lrsa_st_writer_add_f32(w, "k", LRSA_ST_F32, 4, ks, k);
        lrsa_st_writer_add_f32(w, "v", LRSA_ST_F32, 4, vs, v);
        lrsa_err e = {{0}};
        assert_int_equal(lrsa_st_writer_write(w, mism, &e), 0);
        lrsa_st_writer_free(w);
    }
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --out %s", f16, out);
    expect_error(args, "F32", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --out %s", nov, out);
    expect_error(args, "`v`", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --out %s", flat, out);
    expect_error(args, "dimensions", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --out %s", mism, out);
    expect_error(args, "must match", out);
    snprintf(args, sizeof(args), "--kv %s/missing.safetensors --sink 2 --lag 8 --keep 0.5 --out %s",
             dir, out);
    expect_error(args, "missing.safetensors", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0 --out %s", good, out);
    expect_error(args, "keep", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 1.5 --out %s", good, out);
    expect_error(args, "keep", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 0 --keep 0.5 --out %s", good, out);
    expect_error(args, "--lag", out);
    snprintf(args, sizeof(args), "--kv %s --sink -1 --lag 8 --keep 0.5 --out %s", good, out);
    expect_error(args, "--sink", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep abc --out %s", good, out);
    expect_error(args, "--keep", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5", good);
    expect_error(args, "--out", NULL);
    snprintf(args, sizeof(args), "--kv %s --lag 8 --keep 0.5 --out %s", good, out);
    expect_error(args, "--sink", out);
    snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --bogus 1 --out %s", good,
             out);
    expect_error(args, "--bogus", out);
    /* degenerate shapes: D = 1 (no standard deviation over channels), T = 0 */
    {
        const char *names[2] = {"d1", "t0"};
        const int64_t shapes[2][4] = {{LAYERS, HKV, T, 1}, {LAYERS, HKV, 0, D}};
        for (int i = 0; i < 2; i++) {
            char path[2100];
            snprintf(path, sizeof(path), "%s/%s.safetensors", dir, names[i]);
            lrsa_st_writer *w = lrsa_st_writer_new();
            lrsa_st_writer_add_f32(w, "k", LRSA_ST_F32, 4, shapes[i], k);
            lrsa_st_writer_add_f32(w, "v", LRSA_ST_F32, 4, shapes[i], v);
            lrsa_err e = {{0}};
            assert_int_equal(lrsa_st_writer_write(w, path, &e), 0);
            lrsa_st_writer_free(w);
            snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --out %s", path, out);
            expect_error(args, "D >= 2", out);
        }
    }
    /* not a safetensors file: a bad header, and the good file cut short */
    {
        char path[2100];
        snprintf(path, sizeof(path), "%s/garbage.safetensors", dir);
        const char junk[] = "\x10\0\0\0\0\0\0\0{\"k\": [1, 2]}xxxx";
        lrsa_err e = {{0}};
        assert_int_equal(lrsa_write_file_atomic(path, junk, sizeof(junk) - 1, &e), 0);
        snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --out %s", path, out);
        expect_error(args, "garbage.safetensors", out);
        size_t n = 0;
        char *bytes = lrsa_read_file(good, &n, &e);
        assert_non_null(bytes);
        snprintf(path, sizeof(path), "%s/cut.safetensors", dir);
        assert_int_equal(lrsa_write_file_atomic(path, bytes, n / 2, &e), 0);
        free(bytes);
        snprintf(args, sizeof(args), "--kv %s --sink 2 --lag 8 --keep 0.5 --out %s", path, out);
        expect_error(args, "cut.safetensors", out);
    }
    char *log = NULL;
    assert_int_equal(run_tool("--help", &log), 0);
    assert_non_null(strstr(log, "--value-weight"));
    free(log);
    free(k);
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_equals_cache_oneshot),
        cmocka_unit_test(test_tool_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
