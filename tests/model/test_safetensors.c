/* safetensors: writer round trip and alignment, unaligned/F16/BF16 reading, sharded index, and
 * hand-made malformed files, each rejected with a clear error (never a crash). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/safetensors.h"
#include "test_util.h"

static char g_dir[4096];

/* Writes 8-byte length + header (exact length hlen_claim unless < 0) + data bytes. */
static const char *write_raw(const char *name, const char *hdr, int64_t hlen_claim,
                             const void *data, size_t n) {
    static char path[4096];
    lrsa_path_join(path, sizeof path, g_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t h = hlen_claim >= 0 ? (uint64_t)hlen_claim : strlen(hdr);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(h >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

static void expect_bad(const char *name, const char *hdr, int64_t claim, size_t ndata,
                       const char *needle) {
    static unsigned char zeros[256];
    const char *p = write_raw(name, hdr, claim, zeros, ndata);
    lrsa_safetensors st;
    lrsa_err e;
    if (lrsa_st_open(&st, p, &e) != -1) fail_msg("%s: accepted", name);
    if (!strstr(e.msg, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", name, e.msg, needle);
    assert_non_null(strstr(e.msg, name)); /* names the file */
}

static void test_malformed(void **state) {
    (void)state;
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* truncated: fewer than 8 bytes */
    {
        char path[4096];
        lrsa_path_join(path, sizeof path, g_dir, "short.safetensors");
        assert_int_equal(lrsa_write_file_atomic(path, "abc", 3, NULL), 0);
        lrsa_safetensors st;
        lrsa_err e;
        assert_int_equal(lrsa_st_open(&st, path, &e), -1);
        assert_non_null(strstr(e.msg, "too short"));
    }
    expect_bad("trunc_data.safetensors", ok, -1, 4, "cover");  /* data cut short */
    expect_bad("extra_data.safetensors", ok, -1, 12, "cover"); /* trailing bytes */
    expect_bad("hlen_past_end.safetensors", ok, 5000, 8, "past the end");
    expect_bad("hlen_huge.safetensors", ok, 200ll * 1000 * 1000, 8, "100 MB");
    expect_bad("not_object.safetensors", "[1, 2, 3]", -1, 0, "'{'");
    expect_bad("bad_json.safetensors", "{\"a\": {\"dtype\": ", -1, 0, "JSON");
    expect_bad("bad_dtype.safetensors",
               "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", -1, 2,
               "dtype");
    expect_bad("shape_size.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8, "need");
    expect_bad("overlap.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               -1, 12, "overlap");
    expect_bad("hole.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
               -1, 16, "hole");
    expect_bad("dup.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               -1, 8, "twice");
    expect_bad("neg_offsets.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", -1, 8,
               "data_offsets");
    expect_bad("bad_meta.safetensors",
               "{\"__metadata__\":{\"format\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
               "\"data_offsets\":[0,4]}}",
               -1, 4, "__metadata__");
    expect_bad("missing_fields.safetensors", "{\"a\":{\"dtype\":\"F32\"}}", -1, 0, "shape");
}

static void test_write_read_round_trip(void **state) {
    (void)state;
    float a[6] = {1.f, -2.5f, 3.25f, 1e-8f, 65504.f, -0.f};
    float scalar = 42.f;
    int32_t ids[3] = {7, -1, 123456};
    int64_t sa[2] = {2, 3}, si[1] = {3};
    char path[4096];
    lrsa_path_join(path, sizeof path, g_dir, "rt.safetensors");
    lrsa_st_writer *w = lrsa_st_writer_new();
    lrsa_st_writer_add_f32(w, "a.f32", LRSA_ST_F32, 2, sa, a);
    lrsa_st_writer_add_f32(w, "a.bf16", LRSA_ST_BF16, 2, sa, a);
    lrsa_st_writer_add_f32(w, "a.f16", LRSA_ST_F16, 2, sa, a);
    lrsa_st_writer_add_f32(w, "s", LRSA_ST_F32, 0, NULL, &scalar);
    lrsa_st_writer_add_raw(w, "ids", LRSA_ST_I32, 1, si, ids);
    lrsa_st_writer_add_meta(w, "note", "hello");
    lrsa_err e;
    assert_int_equal(lrsa_st_writer_write(w, path, &e), 0);
    lrsa_st_writer_free(w);

    lrsa_safetensors st;
    if (lrsa_st_open(&st, path, &e)) fail_msg("%s", e.msg);
    assert_int_equal(st.data_start % 8, 0);
    assert_int_equal(st.n, 5);
    int has_fmt = 0;
    for (int i = 0; i < st.n_meta; i++)
        has_fmt |= !strcmp(st.meta_keys[i], "format") && !strcmp(st.meta_values[i], "pt");
    assert_true(has_fmt);
    float out[6];
    assert_int_equal(lrsa_st_read_f32(&st, lrsa_st_find(&st, "a.f32"), out, &e), 0);
    assert_memory_equal(out, a, sizeof a);
    assert_int_equal(lrsa_st_read_f32(&st, lrsa_st_find(&st, "a.bf16"), out, &e), 0);
    for (int i = 0; i < 6; i++) assert_true(out[i] == lrsa_bf16_to_f32(lrsa_f32_to_bf16(a[i])));
    assert_int_equal(lrsa_st_read_f32(&st, lrsa_st_find(&st, "a.f16"), out, &e), 0);
    for (int i = 0; i < 6; i++) assert_true(out[i] == lrsa_f16_to_f32(lrsa_f32_to_f16(a[i])));
    const lrsa_st_tensor *s = lrsa_st_find(&st, "s");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(lrsa_st_read_f32(&st, s, out, &e), 0);
    assert_true(out[0] == 42.f);
    int32_t io[3];
    assert_int_equal(lrsa_st_read_i32(&st, lrsa_st_find(&st, "ids"), io, &e), 0);
    assert_memory_equal(io, ids, sizeof ids);
    /* wrong-kind reads are errors naming the tensor */
    assert_int_equal(lrsa_st_read_f32(&st, lrsa_st_find(&st, "ids"), out, &e), -1);
    assert_non_null(strstr(e.msg, "ids"));
    assert_null(lrsa_st_find(&st, "nope"));
    lrsa_st_close(&st);
}

/* A header of odd length (unaligned data buffer) with an empty tensor; read by copying. */
static void test_unaligned_and_empty(void **state) {
    (void)state;
    const char *hdr = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                      "\"x\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                      "\"y\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]}} ";
    if (strlen(hdr) % 8 == 0) fail_msg("header must be unaligned for this test");
    unsigned char data[12] = {0x80, 0x3f, 0x40, 0xc0, 5, 0, 0, 0, 0, 0, 0, 0};
    const char *p = write_raw("unaligned.safetensors", hdr, -1, data, sizeof data);
    lrsa_safetensors st;
    lrsa_err e;
    if (lrsa_st_open(&st, p, &e)) fail_msg("%s", e.msg);
    float x[2];
    assert_int_equal(lrsa_st_read_f32(&st, lrsa_st_find(&st, "x"), x, &e), 0);
    assert_true(x[0] == 1.f && x[1] == -3.f);
    int32_t y;
    assert_int_equal(lrsa_st_read_i32(&st, lrsa_st_find(&st, "y"), &y, &e), 0);
    assert_int_equal(y, 5);
    lrsa_st_close(&st);
}

static void write_shard(const char *dir, const char *name, const char *tensor, float v) {
    char path[4096];
    lrsa_path_join(path, sizeof path, dir, name);
    int64_t s[1] = {1};
    lrsa_st_writer *w = lrsa_st_writer_new();
    lrsa_st_writer_add_f32(w, tensor, LRSA_ST_F32, 1, s, &v);
    lrsa_err e;
    assert_int_equal(lrsa_st_writer_write(w, path, &e), 0);
    lrsa_st_writer_free(w);
}

static void test_sharded_index(void **state) {
    (void)state;
    char dir[4096], path[4096];
    tu_tmpdir(dir, sizeof dir, "st_sharded");
    write_shard(dir, "model-00001-of-00002.safetensors", "t1", 1.f);
    write_shard(dir, "model-00002-of-00002.safetensors", "t2", 2.f);
    const char *idx = "{\"metadata\":{\"total_size\":8},\"weight_map\":{"
                      "\"t1\":\"model-00001-of-00002.safetensors\","
                      "\"t2\":\"model-00002-of-00002.safetensors\"}}";
    lrsa_path_join(path, sizeof path, dir, "model.safetensors.index.json");
    assert_int_equal(lrsa_write_file_atomic(path, idx, strlen(idx), NULL), 0);
    lrsa_st_set s;
    lrsa_err e;
    if (lrsa_st_set_open_dir(&s, dir, &e)) fail_msg("%s", e.msg);
    assert_int_equal(s.n_files, 2);
    const lrsa_safetensors *f;
    const lrsa_st_tensor *t = lrsa_st_set_find(&s, "t2", &f);
    assert_non_null(t);
    float v;
    assert_int_equal(lrsa_st_read_f32(f, t, &v, &e), 0);
    assert_true(v == 2.f);
    lrsa_st_set_close(&s);
    /* a missing shard is an error naming it */
    const char *idx2 = "{\"weight_map\":{\"t1\":\"model-00001-of-00002.safetensors\","
                       "\"t3\":\"model-00003-of-00003.safetensors\"}}";
    assert_int_equal(lrsa_write_file_atomic(path, idx2, strlen(idx2), NULL), 0);
    assert_int_equal(lrsa_st_set_open_dir(&s, dir, &e), -1);
    assert_non_null(strstr(e.msg, "model-00003-of-00003.safetensors"));
    /* a tensor the index places in a shard that lacks it */
    const char *idx3 = "{\"weight_map\":{\"t2\":\"model-00001-of-00002.safetensors\"}}";
    assert_int_equal(lrsa_write_file_atomic(path, idx3, strlen(idx3), NULL), 0);
    assert_int_equal(lrsa_st_set_open_dir(&s, dir, &e), -1);
    assert_non_null(strstr(e.msg, "t2"));
    /* a malformed index is an error naming the index file, never a crash */
    const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"weight_map\": {\"t1\": \"model-00001-of-00002.safetensors\"", "index.json"},
        {"[1, 2]", "index.json"},
        {"{\"metadata\": {}}", "weight_map"},
        {"{\"weight_map\": [\"model-00001-of-00002.safetensors\"]}", "weight_map"},
        {"{\"weight_map\": {\"t1\": 7}}", "t1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(lrsa_write_file_atomic(path, bad[i].json, strlen(bad[i].json), NULL), 0);
        if (lrsa_st_set_open_dir(&s, dir, &e) != -1) fail_msg("index accepted: %s", bad[i].json);
        if (!strstr(e.msg, bad[i].needle))
            fail_msg("index %s: message '%s' lacks '%s'", bad[i].json, e.msg, bad[i].needle);
    }
    /* an empty folder */
    char empty[4096];
    tu_tmpdir(empty, sizeof empty, "st_empty");
    assert_int_equal(lrsa_st_set_open_dir(&s, empty, &e), -1);
    assert_non_null(strstr(e.msg, "model.safetensors"));
}

int main(void) {
    tu_tmpdir(g_dir, sizeof g_dir, "safetensors");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_write_read_round_trip),
        cmocka_unit_test(test_unaligned_and_empty),
        cmocka_unit_test(test_sharded_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
