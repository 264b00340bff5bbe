/* ggml block formats: dequantization of hand-built blocks against values worked out by hand from
 * formats.md 3.2, quantize -> dequantize error bounds derived from each format's rounding, and
 * both directions against the `gguf` Python package (tools/make_quant_fixtures.py): its
 * dequantization of its own quantized blocks and of random blocks, and its quantization of the
 * same inputs, bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "autograd/tensor.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "test_util.h"

/* f16 bit patterns of exactly representable values */
#define F16_0_25 0x3400
#define F16_0_5  0x3800
#define F16_2    0x4000
#define F16_M1   0xBC00
#define F16_1    0x3C00

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static void test_q8_0_known_block(void **state) {
    (void)state;
    uint8_t b[34];
    put16(b, F16_0_25);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j - 16);
    float y[32];
    lrsa_dequantize(LRSA_GGML_Q8_0, b, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == 0.25f * (float)(j - 16));
    assert_true(y[0] == -4.0f && y[31] == 3.75f);
}

static void test_q4_1_known_block(void **state) {
    (void)state;
    /* d = 0.5, m = -1; byte j: low nibble j (element j), high nibble 15-j (element j+16) */
    uint8_t b[20];
    put16(b, F16_0_5);
    put16(b + 2, F16_M1);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    lrsa_dequantize(LRSA_GGML_Q4_1, b, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == 0.5f * (float)j - 1.0f);
        assert_true(y[j + 16] == 0.5f * (float)(15 - j) - 1.0f);
    }
    /* spot values: element 1 = 0.5*1-1, element 17 = 0.5*14-1 */
    assert_true(y[1] == -0.5f && y[17] == 6.0f && y[16] == 6.5f && y[15] == 6.5f);
}

static void test_q4_0_known_block(void **state) {
    (void)state;
    uint8_t b[18];
    put16(b, F16_2);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    lrsa_dequantize(LRSA_GGML_Q4_0, b, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == 2.0f * (float)(j - 8));
        assert_true(y[j + 16] == 2.0f * (float)(7 - j));
    }
    assert_true(y[0] == -16.0f && y[16] == 14.0f);
}

static void test_plain_floats(void **state) {
    (void)state;
    uint8_t h[8];
    put16(h, F16_1);
    put16(h + 2, 0xC000); /* -2 */
    put16(h + 4, 0x3555); /* 0.333251953125 */
    put16(h + 6, 0x7BFF); /* 65504, the largest f16 */
    float y[4];
    lrsa_dequantize(LRSA_GGML_F16, h, y, 4);
    assert_true(y[0] == 1.0f && y[1] == -2.0f && y[2] == 0.333251953125f && y[3] == 65504.0f);
    put16(h, 0x3F80);     /* bf16 1 */
    put16(h + 2, 0x4049); /* bf16 3.140625 */
    put16(h + 4, 0xC2F7); /* bf16 -123.5 */
    lrsa_dequantize(LRSA_GGML_BF16, h, y, 3);
    assert_true(y[0] == 1.0f && y[1] == 3.140625f && y[2] == -123.5f);
    float f[3] = {1.5f, -0.0f, 1e-30f}, g[3];
    lrsa_dequantize(LRSA_GGML_F32, f, g, 3);
    assert_memory_equal(f, g, sizeof f);
}

static float block_d(const uint8_t *b) {
    return lrsa_f16_to_f32((uint16_t)(b[0] | (b[1] << 8)));
}

/* Random blocks with different scales, plus a constant and an all-zero block. */
static void make_data(float *x, int n, lrsa_rng *r) {
    for (int i = 0; i < n; i++) x[i] = lrsa_rng_normal(r) * (float)(1 << (i / 32 % 5)) * 0.01f;
    for (int i = 0; i < 32; i++) x[32 * 3 + i] = 0.0f;
    for (int i = 0; i < 32; i++) x[32 * 4 + i] = 0.75f;
}

/* x = make_data(n values, from seed), quantized by quantize into q (ggml type `type`) and
 * dequantized back into y. */
static void quant_roundtrip(uint64_t seed, void (*quantize)(const float *, void *, int64_t),
                            uint32_t type, float *x, uint8_t *q, float *y, int n) {
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    make_data(x, n, &r);
    quantize(x, q, n);
    lrsa_dequantize(type, q, y, n);
}

static void test_q8_0_roundtrip_bound(void **state) {
    (void)state;
    enum { N = 32 * 40 };
    float x[N], y[N];
    uint8_t q[N / 32 * 34];
    quant_roundtrip(1, lrsa_quantize_q8_0, LRSA_GGML_Q8_0, x, q, y, N);
    for (int i = 0; i < N; i++) {
        float d = block_d(q + i / 32 * 34);
        /* q = round(x/d) is off by at most d/2; d is stored as f16 (relative error 2^-11) */
        double bound = 0.5 * d + (fabs(x[i]) + d) * ldexp(1.0, -10) + 1e-12;
        if (!(fabs(x[i] - y[i]) <= bound)) fail_msg("Q8_0 element %d: %g vs %g", i, x[i], y[i]);
    }
    for (int i = 0; i < 32; i++) assert_true(y[32 * 3 + i] == 0.0f);
    assert_true(tu_rel_err(y, x, N) < 0.01);
}

static void test_q4_1_roundtrip_bound(void **state) {
    (void)state;
    enum { N = 32 * 40 };
    float x[N], y[N];
    uint8_t q[N / 32 * 20];
    quant_roundtrip(2, lrsa_quantize_q4_1, LRSA_GGML_Q4_1, x, q, y, N);
    for (int i = 0; i < N; i++) {
        const uint8_t *b = q + i / 32 * 20;
        float d = block_d(b), m = block_d(b + 2);
        double bound = 0.5 * d + (fabs(m) + 16 * d) * ldexp(1.0, -10) + 1e-12;
        if (!(fabs(x[i] - y[i]) <= bound)) fail_msg("Q4_1 element %d: %g vs %g", i, x[i], y[i]);
    }
    /* the constant block is exact (d = 0, m = 0.75 in f16) */
    for (int i = 0; i < 32; i++) assert_true(y[32 * 4 + i] == 0.75f);
    assert_true(tu_rel_err(y, x, N) < 0.15);
}

static void test_q4_0_roundtrip_bound(void **state) {
    (void)state;
    enum { N = 32 * 40 };
    float x[N], y[N];
    uint8_t q[N / 32 * 18];
    quant_roundtrip(3, lrsa_quantize_q4_0, LRSA_GGML_Q4_0, x, q, y, N);
    for (int i = 0; i < N; i++) {
        float d = fabsf(block_d(q + i / 32 * 18));
        /* the value opposite the extreme one can clamp at q = 15: error up to d */
        double bound = d + (fabs(x[i]) + d) * ldexp(1.0, -10) + 1e-12;
        if (!(fabs(x[i] - y[i]) <= bound)) fail_msg("Q4_0 element %d: %g vs %g", i, x[i], y[i]);
    }
    assert_true(tu_rel_err(y, x, N) < 0.2);
}

static void test_type_table(void **state) {
    (void)state;
    assert_true(lrsa_ggml_type_supported(LRSA_GGML_Q4_1));
    assert_false(lrsa_ggml_type_supported(LRSA_GGML_Q4_K));
    assert_false(lrsa_ggml_type_supported(999));
    assert_string_equal(lrsa_ggml_type_name(LRSA_GGML_Q4_K), "Q4_K");
    assert_null(lrsa_ggml_type_name(999));
    assert_int_equal(lrsa_ggml_row_bytes(LRSA_GGML_Q4_1, 576), 18 * 20);
    assert_int_equal(lrsa_ggml_row_bytes(LRSA_GGML_Q8_0, 64), 2 * 34);
    assert_int_equal(lrsa_ggml_row_bytes(LRSA_GGML_BF16, 5), 10);
}

/* Reads tensor `name` of the reference file as raw bytes (U8) or floats (F32). */
static void *ref_read(const lrsa_safetensors *st, const char *name, int64_t *n) {
    const lrsa_st_tensor *t = lrsa_st_find(st, name);
    if (!t) fail_msg("reference file lacks %s", name);
    size_t bytes = (size_t)(t->end - t->begin);
    void *buf = malloc(bytes ? bytes : 1);
    if (t->dtype == LRSA_ST_U8) {
        assert_int_equal(fseeko(st->f, (off_t)(st->data_start + t->begin), SEEK_SET), 0);
        assert_int_equal(fread(buf, 1, bytes, st->f), bytes);
        *n = (int64_t)bytes;
    } else {
        lrsa_err e;
        if (lrsa_st_read_f32(st, t, buf, &e)) fail_msg("%s", e.msg);
        *n = (int64_t)(bytes / 4);
    }
    return buf;
}

static void check_against_gguf_py(const lrsa_safetensors *st, const char *name, uint32_t type,
                                  void (*quantize)(const float *, void *, int64_t)) {
    char key[64];
    int64_t nx, nb, nd;
    float *x = ref_read(st, "x", &nx);
    snprintf(key, sizeof key, "%s.bytes", name);
    uint8_t *qb = ref_read(st, key, &nb);
    snprintf(key, sizeof key, "%s.dequant", name);
    float *want = ref_read(st, key, &nd);
    assert_int_equal(nd, nx);
    assert_int_equal(nb, lrsa_ggml_row_bytes(type, nx));
    float *got = malloc((size_t)nx * sizeof(float));
    /* dequantizing the package's blocks gives its values exactly */
    lrsa_dequantize(type, qb, got, nx);
    for (int64_t i = 0; i < nx; i++)
        if (memcmp(&got[i], &want[i], 4) != 0)
            fail_msg("%s dequant element %lld: %.9g, gguf-py %.9g", name, (long long)i, got[i],
                     want[i]);
    /* and of random block bytes (any nibbles, any scale) */
    free(qb);
    free(want);
    snprintf(key, sizeof key, "%s.random", name);
    qb = ref_read(st, key, &nb);
    snprintf(key, sizeof key, "%s.random_dequant", name);
    want = ref_read(st, key, &nd);
    lrsa_dequantize(type, qb, got, nd);
    for (int64_t i = 0; i < nd; i++)
        if (memcmp(&got[i], &want[i], 4) != 0)
            fail_msg("%s random block element %lld: %.9g, gguf-py %.9g", name, (long long)i, got[i],
                     want[i]);
    /* quantizing the same inputs gives the package's blocks byte for byte (ggml's reference
     * rounding: scale from the extreme value, round half away from zero, f16 scales) */
    snprintf(key, sizeof key, "%s.bytes", name);
    free(qb);
    qb = ref_read(st, key, &nb);
    uint8_t *ours = malloc((size_t)nb);
    quantize(x, ours, nx);
    for (int64_t i = 0; i < nb; i++)
        if (ours[i] != qb[i])
            fail_msg("%s quantize: byte %lld (block %lld) is 0x%02x, gguf-py 0x%02x", name,
                     (long long)i, (long long)(i / (nb / (nx / 32))), ours[i], qb[i]);
    float *ours_deq = malloc((size_t)nx * sizeof(float));
    lrsa_dequantize(type, ours, ours_deq, nx);
    snprintf(key, sizeof key, "%s.dequant", name);
    free(want);
    want = ref_read(st, key, &nd);
    assert_memory_equal(ours_deq, want, (size_t)nx * sizeof(float));
    free(x), free(qb), free(want), free(got), free(ours), free(ours_deq);
}

static void test_against_gguf_py(void **state) {
    (void)state;
    lrsa_safetensors st;
    lrsa_err e;
    if (lrsa_st_open(&st, LRSA_TEST_DATA "/quant/gguf_py_reference.safetensors", &e))
        fail_msg("%s", e.msg);
    check_against_gguf_py(&st, "q8_0", LRSA_GGML_Q8_0, lrsa_quantize_q8_0);
    check_against_gguf_py(&st, "q4_0", LRSA_GGML_Q4_0, lrsa_quantize_q4_0);
    check_against_gguf_py(&st, "q4_1", LRSA_GGML_Q4_1, lrsa_quantize_q4_1);
    lrsa_st_close(&st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0_known_block),     cmocka_unit_test(test_q4_1_known_block),
        cmocka_unit_test(test_q4_0_known_block),     cmocka_unit_test(test_plain_floats),
        cmocka_unit_test(test_q8_0_roundtrip_bound), cmocka_unit_test(test_q4_1_roundtrip_bound),
        cmocka_unit_test(test_q4_0_roundtrip_bound), cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_against_gguf_py),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
