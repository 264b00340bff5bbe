/* The GGUF reader: metadata of every value type (nested arrays, mixed integer types), tensor
 * infos and data offsets of files from the writer, and malformed files (truncated at every byte,
 * wrong magic or version, absurd counts and lengths, wrong value types, unsupported tensor
 * types, bad alignment, data out of range) which must give clear errors and never crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "convert/gguf_convert.h"
#include "model/quant.h"
#include "gguf_fixture.h"
#include "test_util.h"

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Opens buf; expects failure with every needle in the message. */
static void expect_error(const uint8_t *buf, size_t n, const char *needle1, const char *needle2) {
    lrsa_gguf g;
    lrsa_err e = {{0}};
    int rc = lrsa_gguf_open_mem(&g, buf, n, "bad.gguf", &e);
    if (rc == 0) {
        lrsa_gguf_close(&g);
        fail_msg("expected an error containing '%s'", needle1);
    }
    if (!strstr(e.msg, "bad.gguf")) fail_msg("error does not name the file: %s", e.msg);
    if (needle1 && !strstr(e.msg, needle1)) fail_msg("'%s' not in: %s", needle1, e.msg);
    if (needle2 && !strstr(e.msg, needle2)) fail_msg("'%s' not in: %s", needle2, e.msg);
}

static uint8_t *tiny_file(size_t *n) {
    tiny_model m;
    lrsa_gguf_writer *w = tiny_model_build(&m, 0, 1, LRSA_GGML_Q4_1, 7);
    uint8_t *buf = lrsa_gguf_writer_to_buffer(w, n);
    lrsa_gguf_writer_free(w);
    tiny_model_free(&m);
    return buf;
}

static void test_metadata_types(void **state) {
    (void)state;
    lrsa_gguf_writer *w = lrsa_gguf_writer_new(64);
    lrsa_gguf_writer_set_str(w, "general.architecture", "llama");
    lrsa_gguf_writer_set_u32(w, "a.u32", 4000000000u);
    lrsa_gguf_writer_set_i32(w, "a.i32", -7);
    lrsa_gguf_writer_set_u64(w, "a.u64", 1ull << 40);
    lrsa_gguf_writer_set_f32(w, "a.f32", 0.125f);
    lrsa_gguf_writer_set_bool(w, "a.bool", 1);
    uint8_t raw[64];
    raw[0] = 0xFE; /* u8 254 */
    lrsa_gguf_writer_set_raw(w, "a.u8", LRSA_GGUF_U8, raw, 1);
    put_le(raw, (uint16_t)-300, 2);
    lrsa_gguf_writer_set_raw(w, "a.i16", LRSA_GGUF_I16, raw, 2);
    double dv = -2.5;
    memcpy(raw, &dv, 8);
    lrsa_gguf_writer_set_raw(w, "a.f64", LRSA_GGUF_F64, raw, 8);
    /* [[1, 2], [3]] as an array of arrays of i16 */
    size_t k = 0;
    put_le(raw + k, LRSA_GGUF_ARRAY, 4), k += 4;
    put_le(raw + k, 2, 8), k += 8;
    put_le(raw + k, LRSA_GGUF_I16, 4), k += 4;
    put_le(raw + k, 2, 8), k += 8;
    put_le(raw + k, 1, 2), k += 2;
    put_le(raw + k, 2, 2), k += 2;
    put_le(raw + k, LRSA_GGUF_I16, 4), k += 4;
    put_le(raw + k, 1, 8), k += 8;
    put_le(raw + k, 3, 2), k += 2;
    lrsa_gguf_writer_set_raw(w, "a.nested", LRSA_GGUF_ARRAY, raw, k);
    const char *strs[] = {"x", "", "hello world"};
    lrsa_gguf_writer_set_str_array(w, "a.strs", strs, 3);
    float data[64];
    for (int i = 0; i < 64; i++) data[i] = (float)i;
    int64_t ne[2] = {32, 2};
    lrsa_gguf_writer_add_tensor(w, "t.f32", LRSA_GGML_F32, 2, ne, data);
    lrsa_gguf_writer_add_tensor(w, "t.q8", LRSA_GGML_Q8_0, 2, ne, data);
    size_t n;
    uint8_t *buf = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);

    lrsa_gguf g;
    lrsa_err e;
    if (lrsa_gguf_open_mem(&g, buf, n, "types.gguf", &e)) fail_msg("%s", e.msg);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.alignment, 64);
    assert_int_equal(g.data_start % 64, 0);
    int64_t iv;
    double fv;
    const char *sv;
    int bv;
    assert_int_equal(lrsa_gguf_get_int(&g, "a.u32", &iv, &e), 0);
    assert_int_equal(iv, 4000000000ll);
    assert_int_equal(lrsa_gguf_get_int(&g, "a.i32", &iv, &e), 0);
    assert_int_equal(iv, -7);
    assert_int_equal(lrsa_gguf_get_int(&g, "a.u64", &iv, &e), 0);
    assert_int_equal(iv, 1ll << 40);
    assert_int_equal(lrsa_gguf_get_int(&g, "a.u8", &iv, &e), 0);
    assert_int_equal(iv, 254);
    assert_int_equal(lrsa_gguf_get_int(&g, "a.i16", &iv, &e), 0);
    assert_int_equal(iv, -300);
    assert_int_equal(lrsa_gguf_get_float(&g, "a.f32", &fv, &e), 0);
    assert_true(fv == 0.125);
    assert_int_equal(lrsa_gguf_get_float(&g, "a.f64", &fv, &e), 0);
    assert_true(fv == -2.5);
    assert_int_equal(lrsa_gguf_get_float(&g, "a.i32", &fv, &e), 0); /* integers are numbers */
    assert_true(fv == -7.0);
    assert_int_equal(lrsa_gguf_get_bool_opt(&g, "a.bool", 0, &bv, &e), 0);
    assert_int_equal(bv, 1);
    assert_int_equal(lrsa_gguf_get_str(&g, "general.architecture", &sv, &e), 0);
    assert_string_equal(sv, "llama");
    /* defaults and type errors */
    assert_int_equal(lrsa_gguf_get_int_opt(&g, "a.missing", 42, &iv, &e), 0);
    assert_int_equal(iv, 42);
    assert_int_equal(lrsa_gguf_get_int(&g, "a.missing", &iv, &e), -1);
    assert_non_null(strstr(e.msg, "'a.missing' is missing"));
    assert_int_equal(lrsa_gguf_get_int(&g, "a.f32", &iv, &e), -1);
    assert_non_null(strstr(e.msg, "'a.f32' is a f32, expected an integer"));
    assert_int_equal(lrsa_gguf_get_str(&g, "a.u32", &sv, &e), -1);
    assert_non_null(strstr(e.msg, "expected a string"));
    const lrsa_gguf_value *a;
    assert_int_equal(lrsa_gguf_get_array(&g, "a.strs", LRSA_GGUF_STRING, &a, &e), 0);
    assert_int_equal(a->n, 3);
    assert_string_equal(a->items[2].s, "hello world");
    assert_string_equal(a->items[1].s, "");
    assert_int_equal(lrsa_gguf_get_array(&g, "a.strs", LRSA_GGUF_I32, &a, &e), -1);
    assert_non_null(strstr(e.msg, "array of string"));
    const lrsa_gguf_value *nest = lrsa_gguf_get(&g, "a.nested");
    assert_non_null(nest);
    assert_int_equal(nest->elem_type, LRSA_GGUF_ARRAY);
    assert_int_equal(nest->n, 2);
    assert_int_equal(nest->items[0].n, 2);
    assert_int_equal(lrsa_gguf_array_int(&nest->items[0], 1), 2);
    assert_int_equal(lrsa_gguf_array_int(&nest->items[1], 0), 3);
    /* tensors */
    assert_int_equal(g.n_tensors, 2);
    const lrsa_gguf_tensor *t = lrsa_gguf_find_tensor(&g, "t.q8");
    assert_non_null(t);
    assert_int_equal(t->type, LRSA_GGML_Q8_0);
    assert_int_equal(t->ne[0], 32);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->nbytes, 2 * 34);
    assert_int_equal(t->offset % 64, 0);
    float out[64];
    lrsa_gguf_tensor_to_f32(&g, lrsa_gguf_find_tensor(&g, "t.f32"), out);
    assert_memory_equal(out, data, sizeof data);
    lrsa_gguf_tensor_to_f32(&g, t, out);
    assert_true(tu_rel_err(out, data, 64) < 0.01);
    lrsa_gguf_close(&g);
    free(buf);
}

static void test_truncated_everywhere(void **state) {
    (void)state;
    size_t n;
    uint8_t *buf = tiny_file(&n);
    lrsa_gguf g;
    lrsa_err e;
    if (lrsa_gguf_open_mem(&g, buf, n, "ok.gguf", &e)) fail_msg("%s", e.msg);
    /* the data of the last tensor ends here; only zero padding follows */
    uint64_t end = 0;
    for (int64_t i = 0; i < g.n_tensors; i++)
        if (g.tensors[i].offset + g.tensors[i].nbytes > end)
            end = g.tensors[i].offset + g.tensors[i].nbytes;
    end += g.data_start;
    size_t fine = (size_t)g.data_start + 64; /* every byte of the header, then a stride */
    lrsa_gguf_close(&g);
    /* a copy of exactly the cut length, so ASan sees any read past it */
    for (size_t cut = 0; cut < end; cut += (cut < fine ? 1 : 97)) {
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, buf, cut);
        lrsa_err e2 = {{0}};
        if (lrsa_gguf_open_mem(&g, part, cut, "cut.gguf", &e2) == 0)
            fail_msg("file cut at %zu of %llu bytes was accepted", cut, (unsigned long long)end);
        if (!strstr(e2.msg, "truncated") && !strstr(e2.msg, "not a GGUF") &&
            !strstr(e2.msg, "past the end"))
            fail_msg("cut at %zu: unclear error: %s", cut, e2.msg);
        free(part);
    }
    free(buf);
}

static void test_header_errors(void **state) {
    (void)state;
    size_t n;
    uint8_t *buf = tiny_file(&n);
    uint8_t *b = malloc(n);
    memcpy(b, buf, n);
    b[0] = 'X';
    expect_error(b, n, "not a GGUF file", NULL);
    memcpy(b, buf, n);
    put_le(b + 4, 1, 4);
    expect_error(b, n, "unsupported GGUF version 1", "versions 2 and 3");
    put_le(b + 4, 4, 4);
    expect_error(b, n, "unsupported GGUF version 4", NULL);
    put_le(b + 4, 3u << 24, 4);
    expect_error(b, n, "big-endian", NULL);
    memcpy(b, buf, n);
    put_le(b + 8, 1ull << 62, 8);
    expect_error(b, n, "4611686018427387904 tensors", "corrupt");
    memcpy(b, buf, n);
    put_le(b + 16, UINT64_MAX, 8);
    expect_error(b, n, "metadata entries", "corrupt");
    /* first key's length over the limit, then past the end of a small file */
    memcpy(b, buf, n);
    put_le(b + 24, 1ull << 40, 8);
    expect_error(b, n, "over the limit", NULL);
    free(b);
    free(buf);
    lrsa_gguf_writer *w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_set_u32(w, "general.quantization_version", 2);
    buf = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    put_le(buf + 24, 60000, 8);
    expect_error(buf, n, "truncated", "the key of metadata entry 0");
    free(buf);
}

/* Builds a file whose first KV value is an arbitrary value of a given type. */
static uint8_t *one_kv(uint32_t type, const void *val, size_t vn, size_t *n) {
    lrsa_gguf_writer *w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_set_raw(w, "k", type, val, vn);
    uint8_t *buf = lrsa_gguf_writer_to_buffer(w, n);
    lrsa_gguf_writer_free(w);
    return buf;
}

static void test_value_errors(void **state) {
    (void)state;
    uint8_t v[32];
    size_t n;
    uint8_t *b;
    /* string length past EOF */
    put_le(v, 1000, 8);
    memcpy(v + 8, "abc", 3);
    b = one_kv(LRSA_GGUF_STRING, v, 11, &n);
    expect_error(b, n, "truncated", "the value of 'k'");
    free(b);
    /* array with an absurd count */
    put_le(v, LRSA_GGUF_U32, 4);
    put_le(v + 4, 1ull << 61, 8);
    b = one_kv(LRSA_GGUF_ARRAY, v, 12, &n);
    expect_error(b, n, "claims 2305843009213693952 elements", NULL);
    free(b);
    /* array of strings whose count would need more bytes than exist */
    put_le(v, LRSA_GGUF_STRING, 4);
    put_le(v + 4, 1000000, 8);
    b = one_kv(LRSA_GGUF_ARRAY, v, 12, &n);
    expect_error(b, n, "claims 1000000 elements", NULL);
    free(b);
    /* undefined value and element types */
    b = one_kv(13, v, 4, &n);
    expect_error(b, n, "value type 13", NULL);
    free(b);
    put_le(v, 77, 4);
    put_le(v + 4, 1, 8);
    b = one_kv(LRSA_GGUF_ARRAY, v, 16, &n);
    expect_error(b, n, "element type 77", NULL);
    free(b);
    /* bool that is neither 0 nor 1 */
    v[0] = 2;
    b = one_kv(LRSA_GGUF_BOOL, v, 1, &n);
    expect_error(b, n, "bool", NULL);
    free(b);
    /* arrays nested deeper than any real file: 20 levels */
    size_t k = 0;
    uint8_t deep[20 * 12];
    for (int i = 0; i < 20; i++) {
        put_le(deep + k, LRSA_GGUF_ARRAY, 4), k += 4;
        put_le(deep + k, 1, 8), k += 8;
    }
    b = one_kv(LRSA_GGUF_ARRAY, deep, k, &n);
    expect_error(b, n, "nests arrays", NULL);
    free(b);
    /* duplicate keys */
    lrsa_gguf_writer *w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_set_u32(w, "dup", 1);
    lrsa_gguf_writer_set_u32(w, "dup", 2);
    b = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    expect_error(b, n, "'dup' appears twice", NULL);
    free(b);
    /* alignment that is not a multiple of 8 */
    w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_set_u32(w, "general.alignment", 12);
    b = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    expect_error(b, n, "general.alignment", NULL);
    free(b);
}

static void test_tensor_errors(void **state) {
    (void)state;
    size_t n;
    uint8_t blk[144] = {0};
    int64_t ne256[1] = {256}, ne33[1] = {33}, ne5[5] = {1, 1, 1, 1, 1};
    /* an unsupported type: Q4_K */
    lrsa_gguf_writer *w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_add_tensor_raw(w, "blk.0.attn_q.weight", LRSA_GGML_Q4_K, 1, ne256, blk, 144);
    uint8_t *b = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    expect_error(b, n, "'blk.0.attn_q.weight' has ggml type Q4_K (12)",
                 "supported types are F32, F16, BF16, Q8_0, Q4_0, Q4_1");
    /* an unknown type id */
    /* the type field follows the header, the name, n_dims and ne[0] */
    uint8_t *ty = b + 24 + 8 + strlen("blk.0.attn_q.weight") + 4 + 8;
    assert_int_equal(ty[0], LRSA_GGML_Q4_K);
    put_le(ty, 200, 4);
    expect_error(b, n, "type unknown (200)", NULL);
    free(b);
    /* ne[0] not a multiple of the block size */
    w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_add_tensor_raw(w, "odd", LRSA_GGML_Q8_0, 1, ne33, blk, 34);
    b = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    expect_error(b, n, "ne[0] = 33, not a multiple of its block size 32", NULL);
    free(b);
    /* data offset out of range, and misaligned */
    float f[32] = {0};
    int64_t ne32[1] = {32};
    w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_add_tensor(w, "x", LRSA_GGML_F32, 1, ne32, f);
    b = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    /* the tensor info ends with the u64 offset, just before the padding to 32 */
    size_t info_end = 24 + 8 + 1 + 4 + 8 + 4 + 8;
    put_le(b + info_end - 8, 1 << 20, 8);
    expect_error(b, n, "past the end of the file", NULL);
    put_le(b + info_end - 8, 8, 8);
    expect_error(b, n, "not a multiple of the alignment", NULL);
    /* too many dims: patch n_dims to 5 */
    put_le(b + info_end - 8, 0, 8);
    put_le(b + 24 + 8 + 1, 5, 4);
    expect_error(b, n, "5 dimensions", NULL);
    free(b);
    (void)ne5;
    /* a dimension so large the element count overflows */
    w = lrsa_gguf_writer_new(0);
    int64_t big[2] = {32, 1};
    lrsa_gguf_writer_add_tensor(w, "y", LRSA_GGML_F32, 2, big, f);
    b = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    put_le(b + 24 + 8 + 1 + 4 + 8, 1ull << 40, 8);
    expect_error(b, n, "past the end", NULL);
    put_le(b + 24 + 8 + 1 + 4 + 8, UINT64_MAX, 8);
    expect_error(b, n, "overflows", NULL);
    free(b);
    /* duplicate tensor names */
    w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_add_tensor(w, "z", LRSA_GGML_F32, 1, ne32, f);
    lrsa_gguf_writer_add_tensor(w, "z", LRSA_GGML_F32, 1, ne32, f);
    b = lrsa_gguf_writer_to_buffer(w, &n);
    lrsa_gguf_writer_free(w);
    expect_error(b, n, "tensor 'z' appears twice", NULL);
    free(b);
}

/* Random byte corruption of a valid file: any outcome but a crash (ASan/UBSan watch). */
static void test_random_corruption(void **state) {
    (void)state;
    size_t n;
    uint8_t *buf = tiny_file(&n);
    lrsa_rng r;
    lrsa_rng_seed(&r, 99);
    size_t header = 4096 < n ? 4096 : n; /* mostly the metadata, where the parsing is */
    uint8_t *b = malloc(n);
    for (int it = 0; it < 3000; it++) {
        memcpy(b, buf, n);
        int flips = 1 + (int)lrsa_rng_below(&r, 4);
        for (int f = 0; f < flips; f++)
            b[lrsa_rng_below(&r, header)] = (uint8_t)lrsa_rng_below(&r, 256);
        lrsa_gguf g;
        lrsa_err e;
        if (lrsa_gguf_open_mem(&g, b, n, "fuzz.gguf", &e) == 0) {
            lrsa_model_config c;
            (void)lrsa_gguf_model_config(&g, &c, &e);
            lrsa_gguf_close(&g);
        } else {
            assert_true(strlen(e.msg) > 0);
        }
    }
    free(b);
    free(buf);
}

static void test_file_errors(void **state) {
    (void)state;
    lrsa_gguf g;
    lrsa_err e;
    assert_int_equal(lrsa_gguf_open(&g, "/nonexistent/x.gguf", &e), -1);
    assert_non_null(strstr(e.msg, "cannot open"));
    char dir[512], path[600];
    tu_tmpdir(dir, sizeof dir, "gguf_reader");
    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(lrsa_gguf_open(&g, path, &e), -1);
    assert_non_null(strstr(e.msg, "empty"));
    size_t n;
    uint8_t *buf = tiny_file(&n);
    snprintf(path, sizeof path, "%s/ok.gguf", dir);
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    if (lrsa_gguf_open(&g, path, &e)) fail_msg("%s", e.msg);
    assert_int_equal(g.mapped, 1);
    assert_non_null(lrsa_gguf_find_tensor(&g, "blk.1.ffn_down.weight"));
    lrsa_gguf_close(&g);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_types), cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_header_errors),  cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_tensor_errors),  cmocka_unit_test(test_random_corruption),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
