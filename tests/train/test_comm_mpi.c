/* The communication interface on host buffers (MPI backend), run under `mpiexec -n 2`: the five
 * collectives with their in-place conventions (reduce-scatter and all-gather as NCCL places the
 * blocks), every element type MPI carries, the non-blocking all-reduce, sub-communicators, the
 * ZeRO shard gather, and the errors for what only NCCL can do. Each value depends on the rank,
 * so a collective that skipped a rank or a block would give a different number. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "train/comm.h"
#include "train/comm_nccl.h"
#include "train/zero_layout.h"

static lrsa_comm world;

/* The sum over ranks r of f(r, i) for f = 10 * (r + 1) + i. */
static double sum_over_ranks(int i) {
    double s = 0;
    for (int r = 0; r < world.world; r++) s += 10.0 * (r + 1) + i;
    return s;
}

static void test_allreduce(void **state) {
    (void)state;
    lrsa_err e;
    enum { N = 37 };
    float f[N];
    double d[N];
    int32_t m[N];
    for (int i = 0; i < N; i++) {
        f[i] = (float)(10 * (world.rank + 1) + i);
        d[i] = 10.0 * (world.rank + 1) + i;
        m[i] = world.rank * 100 + i;
    }
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_HOST, f, N, LRSA_F32, LRSA_RED_SUM, NULL, &e), 0);
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_HOST, d, N, LRSA_F64, LRSA_RED_SUM, NULL, &e), 0);
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_HOST, m, N, LRSA_I32, LRSA_RED_MAX, NULL, &e), 0);
    for (int i = 0; i < N; i++) {
        assert_true(f[i] == (float)sum_over_ranks(i));
        assert_true(d[i] == sum_over_ranks(i));
        assert_int_equal(m[i], (world.world - 1) * 100 + i);
    }
}

static void test_reduce_scatter_allgather(void **state) {
    (void)state;
    lrsa_err e;
    const int block = 5, n = block * world.world;
    float *buf = lrsa_malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) buf[i] = (float)(10 * (world.rank + 1) + i);
    assert_int_equal(
        lrsa_comm_reduce_scatter(&world, LRSA_MEM_HOST, buf, block, LRSA_F32, NULL, &e), 0);
    /* my block, at rank * block, holds the sum */
    for (int j = 0; j < block; j++) {
        int i = world.rank * block + j;
        assert_true(buf[i] == (float)sum_over_ranks(i));
    }
    /* all-gather: every rank's block everywhere */
    for (int i = 0; i < n; i++)
        if (i / block != world.rank) buf[i] = -1.0f;
    assert_int_equal(lrsa_comm_allgather(&world, LRSA_MEM_HOST, buf, block, LRSA_F32, NULL, &e), 0);
    for (int i = 0; i < n; i++) assert_true(buf[i] == (float)sum_over_ranks(i));
    free(buf);
}

static void test_broadcast_barrier(void **state) {
    (void)state;
    lrsa_err e;
    double v[3] = {world.rank + 0.25, world.rank + 0.5, world.rank + 0.75};
    int root = world.world - 1;
    assert_int_equal(lrsa_comm_broadcast(&world, LRSA_MEM_HOST, v, 3, LRSA_F64, root, NULL, &e), 0);
    assert_true(v[0] == root + 0.25 && v[2] == root + 0.75);
    assert_int_equal(lrsa_comm_barrier(&world, &e), 0);
}

static void test_iallreduce(void **state) {
    (void)state;
    lrsa_err e;
    enum { N = 1000 };
    double *a = lrsa_malloc(sizeof(double) * N), *b = lrsa_malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++) a[i] = b[i] = 10.0 * (world.rank + 1) + i;
    lrsa_comm_request ra, rb;
    assert_int_equal(lrsa_comm_iallreduce(&world, a, N, LRSA_F64, &ra, &e), 0);
    assert_int_equal(lrsa_comm_iallreduce(&world, b, N / 2, LRSA_F64, &rb, &e), 0);
    int done = 0;
    assert_int_equal(lrsa_comm_test(&world, &ra, &done, &e), 0);
    assert_int_equal(lrsa_comm_wait(&world, &ra, &e), 0);
    assert_int_equal(lrsa_comm_wait(&world, &rb, &e), 0);
    assert_int_equal(lrsa_comm_test(&world, &rb, &done, &e), 0);
    assert_int_equal(done, 1);
    for (int i = 0; i < N; i++) {
        assert_true(a[i] == sum_over_ranks(i));
        assert_true(b[i] == (i < N / 2 ? sum_over_ranks(i) : 10.0 * (world.rank + 1) + i));
    }
    free(a);
    free(b);
}

static void test_split(void **state) {
    (void)state;
    lrsa_err e;
    lrsa_comm alone, all;
    /* each rank on its own: a sum is the rank's own value */
    assert_int_equal(lrsa_comm_split(&world, world.rank, 0, &alone, &e), 0);
    assert_int_equal(alone.world, 1);
    assert_int_equal(alone.rank, 0);
    int v = world.rank + 1;
    assert_int_equal(lrsa_comm_allreduce_max_int(&alone, &v, 1, &e), 0);
    assert_int_equal(v, world.rank + 1);
    /* everyone, reversed order */
    assert_int_equal(lrsa_comm_split(&world, 0, world.world - 1 - world.rank, &all, &e), 0);
    assert_int_equal(all.world, world.world);
    assert_int_equal(all.rank, world.world - 1 - world.rank);
    double d = 1.5;
    assert_int_equal(lrsa_comm_allreduce_sum_f64(&all, &d, 1, &e), 0);
    assert_true(d == 1.5 * world.world);
    lrsa_comm_free_sub(&alone);
    lrsa_comm_free_sub(&all);
}

/* Every rank's ZeRO shard gathered into the whole array, on root and on every rank. */
static void test_zero_gather(void **state) {
    (void)state;
    const int64_t ready[] = {700, 410, 90, 0};
    const int64_t numel = 1001;
    lrsa_zero_layout L;
    lrsa_zero_layout_init(&L, ready, 4, numel, world.world, world.rank, 100, 8);
    float *full = lrsa_malloc(sizeof(float) * numel), *out = lrsa_malloc(sizeof(float) * numel);
    float *local = lrsa_malloc(sizeof(float) * (size_t)L.shard);
    for (int64_t i = 0; i < numel; i++) full[i] = (float)(i * 7 % 1000) + 0.25f;
    lrsa_zero_extract(&L, full, local);
    lrsa_err e;
    for (int root = -1; root < world.world; root++) {
        for (int64_t i = 0; i < numel; i++) out[i] = -9.0f;
        assert_int_equal(lrsa_zero_gather(&world, &L, local, out, root, &e), 0);
        if (root < 0 || root == world.rank)
            assert_memory_equal(out, full, sizeof(float) * numel);
        else
            assert_true(out[0] == -9.0f); /* not touched off root */
    }
    free(full);
    free(out);
    free(local);
    lrsa_zero_layout_free(&L);
}

/* bf16 has no MPI type; device buffers need the NCCL communicator. */
static void test_errors(void **state) {
    (void)state;
    lrsa_err e;
    uint16_t h[4] = {0};
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_HOST, h, 4, LRSA_BF16, LRSA_RED_SUM, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "BF16 collectives exist only on device buffers"));
    if (world.world > 1) {
        assert_int_equal(
            lrsa_comm_allreduce(&world, LRSA_MEM_DEVICE, h, 4, LRSA_BF16, LRSA_RED_SUM, NULL, &e),
            -1);
        assert_non_null(strstr(e.msg, "NCCL"));
        if (!lrsa_nccl_built()) {
            assert_int_equal(lrsa_nccl_init(&world, 5, &e), -1);
            assert_non_null(strstr(e.msg, "built without"));
        }
    }
}

int main(void) {
    lrsa_err e;
    if (lrsa_comm_init(&world, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    if (world.world != 2) fprintf(stderr, "note: running with %d rank(s)\n", world.world);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce),
        cmocka_unit_test(test_reduce_scatter_allgather),
        cmocka_unit_test(test_broadcast_barrier),
        cmocka_unit_test(test_iallreduce),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_zero_gather),
        cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lrsa_comm_finalize(&world);
    return rc;
}
