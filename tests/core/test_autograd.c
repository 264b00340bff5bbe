/* The base layer: tensor table layout, tape ordering, RNG determinism, dtype conversions,
 * atomic files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
#include "autograd/tensor_table.h"
#include "test_util.h"

static void test_table_contiguous(void **state) {
    (void)state;
    lrsa_tensor_table t;
    lrsa_table_init(&t);
    int64_t sq[2] = {6, 4}, skv[2] = {2, 4}, sn[1] = {4};
    int q = lrsa_table_add(&t, "q", 2, sq, LRSA_KIND_MATRIX);
    int k = lrsa_table_add(&t, "k", 2, skv, LRSA_KIND_MATRIX);
    int v = lrsa_table_add(&t, "v", 2, skv, LRSA_KIND_MATRIX);
    int n = lrsa_table_add(&t, "norm", 1, sn, LRSA_KIND_NORM);
    assert_int_equal(t.numel, 24 + 8 + 8 + 4);
    lrsa_table_alloc(&t, LRSA_ROLE_PARAM);
    lrsa_table_alloc(&t, LRSA_ROLE_GRAD);
    /* q, k, v back to back: one fused [10, 4] matrix */
    assert_ptr_equal(lrsa_table_ptr(&t, LRSA_ROLE_PARAM, k),
                     lrsa_table_ptr(&t, LRSA_ROLE_PARAM, q) + 24);
    assert_ptr_equal(lrsa_table_ptr(&t, LRSA_ROLE_PARAM, v),
                     lrsa_table_ptr(&t, LRSA_ROLE_PARAM, k) + 8);
    assert_ptr_equal(lrsa_table_ptr(&t, LRSA_ROLE_GRAD, n), t.arena[LRSA_ROLE_GRAD] + 40);
    assert_int_equal(lrsa_table_find(&t, "v"), v);
    assert_int_equal(lrsa_table_find(&t, "nope"), -1);
    assert_true(lrsa_kind_decays(LRSA_KIND_MATRIX));
    assert_false(lrsa_kind_decays(LRSA_KIND_NORM));
    assert_true((uintptr_t)t.arena[LRSA_ROLE_PARAM] % 64 == 0);
    lrsa_table_free(&t);
}

typedef struct {
    int *log, *n, id;
} order_ctx;
static void record(void *p) {
    order_ctx *c = p;
    c->log[(*c->n)++] = c->id;
}

static void test_tape_reverse_order(void **state) {
    (void)state;
    lrsa_tape t;
    lrsa_tape_init(&t);
    int log[3000], n = 0;
    for (int round = 0; round < 2; round++) { /* second round reuses the memory */
        n = 0;
        for (int i = 0; i < 3000; i++) {
            order_ctx *c = lrsa_tape_push(&t, "rec", record, sizeof(order_ctx) + 40);
            c->log = log;
            c->n = &n;
            c->id = i;
        }
        lrsa_tape_backward(&t);
        assert_int_equal(n, 3000);
        for (int i = 0; i < 3000; i++) assert_int_equal(log[i], 2999 - i);
        assert_int_equal(t.n, 0);
    }
    lrsa_tape_free(&t);
}

static void test_rng_deterministic(void **state) {
    (void)state;
    lrsa_rng a, b;
    lrsa_rng_seed(&a, 42);
    lrsa_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(lrsa_rng_u64(&a) == lrsa_rng_u64(&b));
    lrsa_rng saved = a; /* the state is the struct: copying it resumes the stream */
    uint64_t x = lrsa_rng_u64(&a);
    assert_true(lrsa_rng_u64(&saved) == x);
    double sum = 0, sq = 0;
    for (int i = 0; i < 20000; i++) {
        float z = lrsa_rng_normal(&b);
        sum += z;
        sq += z * z;
    }
    assert_true(fabs(sum / 20000) < 0.05);
    assert_true(fabs(sq / 20000 - 1) < 0.05);
    for (int i = 0; i < 1000; i++) assert_true(lrsa_rng_below(&b, 7) < 7);
}

static void test_dtype_conversions(void **state) {
    (void)state;
    const float vals[] = {1.0f, -2.5f, 3.140625f, 0.0f, 65504.0f, 1e-7f};
    for (int i = 0; i < 4; i++) assert_true(lrsa_bf16_to_f32(lrsa_f32_to_bf16(vals[i])) == vals[i]);
    assert_true(lrsa_f32_to_bf16(1.0f) == 0x3f80);
    /* round to nearest even: 1 + 2^-8 lies halfway between bf16 1 and 1+2^-7 */
    assert_true(lrsa_f32_to_bf16(1.00390625f) == 0x3f80);
    assert_true(lrsa_f16_to_f32(0x3c00) == 1.0f);
    assert_true(lrsa_f16_to_f32(0xc000) == -2.0f);
    assert_true(lrsa_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(lrsa_f16_to_f32(0x0001) == ldexpf(1, -24));
    assert_true(isinf(lrsa_f16_to_f32(0x7c00)));
    for (int i = 0; i < 6; i++) {
        float back = lrsa_f16_to_f32(lrsa_f32_to_f16(vals[i]));
        assert_true(fabsf(back - vals[i]) <= fabsf(vals[i]) * 1e-3f + 6e-8f);
    }
}

static void test_atomic_write(void **state) {
    (void)state;
    char dir[512], path[600];
    tu_tmpdir(dir, sizeof dir, "atomic");
    lrsa_path_join(path, sizeof path, dir, "f.txt");
    lrsa_err e;
    assert_int_equal(lrsa_write_file_atomic(path, "old", 3, &e), 0);
    lrsa_atomic_file af;
    assert_int_equal(lrsa_atomic_open(&af, path, &e), 0);
    fputs("half-written", af.f);
    lrsa_atomic_abort(&af); /* an aborted write leaves the old file and no temporary */
    size_t n;
    char *s = lrsa_read_file(path, &n, &e);
    assert_non_null(s);
    assert_string_equal(s, "old");
    free(s);
    assert_false(lrsa_file_exists(af.tmp_path));
    assert_int_equal(lrsa_write_file_atomic("/nonexistent-dir/x", "a", 1, &e), -1);
    assert_non_null(strstr(e.msg, "/nonexistent-dir/x"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_contiguous),  cmocka_unit_test(test_tape_reverse_order),
        cmocka_unit_test(test_rng_deterministic), cmocka_unit_test(test_dtype_conversions),
        cmocka_unit_test(test_atomic_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
