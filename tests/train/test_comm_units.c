/* The communication layer without a second process: the launch environment of mpirun, srun,
 * an sbatch script and Hydra (fake environments), the GPU each rank picks, and the ZeRO-1
 * bucket layout (buckets cover the arena once, respect the readiness points, and every
 * parameter is owned by exactly one rank; shards round-trip through extract/scatter). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "train/comm.h"
#include "train/launch_env.h"
#include "train/zero_layout.h"

/* A fake environment: NULL-terminated "NAME=value" strings. */
static const char *fake_env(void *ctx, const char *name) {
    const char *const *vars = ctx;
    size_t n = strlen(name);
    for (int i = 0; vars[i]; i++)
        if (!strncmp(vars[i], name, n) && vars[i][n] == '=') return vars[i] + n + 1;
    return NULL;
}

static void read_ok(const char *const *env, lrsa_launch *l) {
    lrsa_err e;
    if (lrsa_launch_read(l, fake_env, (void *)env, &e)) fail_msg("%s", e.msg);
}

/* Reads env and checks every field it gives: launcher, rank, world, local rank, local world. */
static void expect_launch(const char *const *env, const char *launcher, int rank, int world,
                          int local_rank, int local_world) {
    lrsa_launch l;
    read_ok(env, &l);
    assert_string_equal(l.launcher, launcher);
    assert_int_equal(l.rank, rank);
    assert_int_equal(l.world, world);
    assert_int_equal(l.local_rank, local_rank);
    assert_int_equal(l.local_world, local_world);
}

static void read_fails(const char *const *env, const char *expect1, const char *expect2) {
    lrsa_launch l;
    lrsa_err e;
    assert_int_equal(lrsa_launch_read(&l, fake_env, (void *)env, &e), -1);
    if (!strstr(e.msg, expect1) || (expect2 && !strstr(e.msg, expect2)))
        fail_msg("message '%s' lacks '%s' / '%s'", e.msg, expect1, expect2 ? expect2 : "");
}

static void test_launch_none(void **state) {
    (void)state;
    const char *env[] = {"HOME=/root", NULL};
    expect_launch(env, "none", 0, 1, 0, 1);
    /* an sbatch script (no job step): one process, even though SLURM_NTASKS says 4 */
    const char *batch[] = {"SLURM_JOB_ID=77", "SLURM_NTASKS=4", "SLURM_PROCID=0", NULL};
    expect_launch(batch, "none", 0, 1, 0, 1);
}

static void test_launch_openmpi(void **state) {
    (void)state;
    const char *env[] = {"OMPI_COMM_WORLD_SIZE=8", "OMPI_COMM_WORLD_RANK=5",
                         "OMPI_COMM_WORLD_LOCAL_RANK=1", "OMPI_COMM_WORLD_LOCAL_SIZE=4",
                         /* mpirun inside a Slurm allocation: Open MPI's numbering wins */
                         "SLURM_STEP_ID=0", "SLURM_PROCID=0", "SLURM_NTASKS=2", NULL};
    expect_launch(env, "openmpi", 5, 8, 1, 4);
}

static void test_launch_slurm(void **state) {
    (void)state;
    /* srun: the step's task count, not the job's */
    const char *env[] = {"SLURM_JOB_ID=77",
                         "SLURM_STEP_ID=0",
                         "SLURM_PROCID=13",
                         "SLURM_STEP_NUM_TASKS=16",
                         "SLURM_NTASKS=32",
                         "SLURM_LOCALID=5",
                         NULL};
    expect_launch(env, "slurm", 13, 16, 5, -1); /* Slurm does not say; MPI's node split does */
    /* older spelling, and SLURM_NTASKS when the step count is absent */
    const char *old[] = {"SLURM_STEPID=3", "SLURM_PROCID=1", "SLURM_NTASKS=2", "SLURM_LOCALID=1",
                         NULL};
    expect_launch(old, "slurm", 1, 2, 1, -1);
}

static void test_launch_hydra(void **state) {
    (void)state;
    const char *env[] = {"PMI_RANK=1", "PMI_SIZE=2", "MPI_LOCALRANKID=1", "MPI_LOCALNRANKS=2",
                         NULL};
    expect_launch(env, "pmi", 1, 2, 1, 2);
}

static void test_launch_errors(void **state) {
    (void)state;
    const char *bad_int[] = {"OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_RANK=two", NULL};
    read_fails(bad_int, "OMPI_COMM_WORLD_RANK='two'", "not a non-negative integer");
    const char *neg[] = {"OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_RANK=-1", NULL};
    read_fails(neg, "OMPI_COMM_WORLD_RANK='-1'", NULL);
    const char *outside[] = {"SLURM_STEP_ID=0", "SLURM_PROCID=4", "SLURM_NTASKS=4", NULL};
    read_fails(outside, "rank 4 (SLURM_PROCID)", "world of 4 (SLURM_NTASKS)");
    const char *missing[] = {"SLURM_STEP_ID=0", "SLURM_NTASKS=4", NULL};
    read_fails(missing, "SLURM_PROCID is not set", "mpirun or srun");
    const char *local[] = {"OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_RANK=0",
                           "OMPI_COMM_WORLD_LOCAL_RANK=2", "OMPI_COMM_WORLD_LOCAL_SIZE=2", NULL};
    read_fails(local, "local rank 2 (OMPI_COMM_WORLD_LOCAL_RANK)", "OMPI_COMM_WORLD_LOCAL_SIZE");
    const char *zero_world[] = {"PMI_SIZE=0", "PMI_RANK=0", NULL};
    read_fails(zero_world, "world of 0 (PMI_SIZE)", NULL);
}

static void test_pick_device(void **state) {
    (void)state;
    lrsa_launch l = {"openmpi", 6, 8, 2, 4};
    int dev;
    lrsa_err e;
    assert_int_equal(lrsa_launch_pick_device(&l, 4, &dev, &e), 0);
    assert_int_equal(dev, 2);
    /* each rank sees one device (CUDA_VISIBLE_DEVICES / --gpus-per-task) */
    assert_int_equal(lrsa_launch_pick_device(&l, 1, &dev, &e), 0);
    assert_int_equal(dev, 0);
    l.local_rank = 3;
    assert_int_equal(lrsa_launch_pick_device(&l, 2, &dev, &e), -1);
    assert_non_null(strstr(e.msg, "local rank 3 but its node shows only 2 CUDA devices"));
    assert_int_equal(lrsa_launch_pick_device(&l, 0, &dev, &e), -1);
    assert_non_null(strstr(e.msg, "no CUDA device"));
}

/* ---- ZeRO-1 bucket layout ---------------------------------------------------------------- */

static void check_layout(const int64_t *ready, int n_ready, int64_t numel, int world,
                         int64_t bucket, int64_t align) {
    lrsa_zero_layout L0;
    lrsa_zero_layout_init(&L0, ready, n_ready, numel, world, 0, bucket, align);
    const int64_t unit = (int64_t)world * align;
    assert_true(L0.padded >= numel && L0.padded < numel + unit && L0.padded % unit == 0);
    assert_true(L0.n_buckets >= 1);
    /* contiguous, descending, whole units, covering [0, padded) */
    int64_t hi = L0.padded, local = 0;
    for (int b = 0; b < L0.n_buckets; b++) {
        assert_int_equal(L0.b[b].hi, hi);
        assert_true(L0.b[b].lo < hi && (L0.b[b].hi - L0.b[b].lo) % unit == 0);
        assert_int_equal(L0.b[b].piece * world, L0.b[b].hi - L0.b[b].lo);
        assert_int_equal(L0.b[b].local, local);
        /* at least bucket elements, except the last (it takes what is left) */
        if (b < L0.n_buckets - 1) assert_true(L0.b[b].hi - L0.b[b].lo >= bucket);
        local += L0.b[b].piece;
        hi = L0.b[b].lo;
    }
    assert_int_equal(hi, 0);
    assert_int_equal(L0.shard, local);
    /* a bucket counts as ready only once every gradient in it is final */
    for (int i = 0; i < n_ready; i++) {
        int n = lrsa_zero_buckets_ready(&L0, ready[i]);
        for (int b = 0; b < n; b++) assert_true(L0.b[b].lo >= ready[i]);
    }
    assert_int_equal(lrsa_zero_buckets_ready(&L0, 0), L0.n_buckets);
    /* the forward needs, before it reads below `end`, exactly the buckets that start below it,
     * in forward order (the last bucket, which holds offset 0, first) */
    assert_int_equal(lrsa_zero_buckets_needed(&L0, 0), 0);
    assert_int_equal(lrsa_zero_buckets_needed(&L0, numel), L0.n_buckets);
    for (int i = 0; i < n_ready; i++) {
        int64_t end = ready[i] + 1;
        int n = lrsa_zero_buckets_needed(&L0, end);
        for (int k = 0; k < L0.n_buckets; k++) {
            const lrsa_zero_bucket *b = &L0.b[L0.n_buckets - 1 - k];
            if (k < n)
                assert_true(b->lo < end);
            else
                assert_true(b->lo >= end);
        }
    }
    /* every real element owned by exactly one rank; shards round-trip */
    float *full = lrsa_malloc(sizeof(float) * (size_t)numel);
    float *back = lrsa_malloc(sizeof(float) * (size_t)numel);
    float *local_buf = lrsa_malloc(sizeof(float) * (size_t)(L0.shard ? L0.shard : 1));
    for (int64_t i = 0; i < numel; i++) {
        full[i] = (float)i + 0.5f;
        back[i] = -1.0f;
    }
    int64_t owned = 0;
    for (int r = 0; r < world; r++) {
        lrsa_zero_layout L;
        lrsa_zero_layout_init(&L, ready, n_ready, numel, world, r, bucket, align);
        assert_int_equal(L.shard, L0.shard); /* equal shards on every rank */
        lrsa_zero_extract(&L, full, local_buf);
        for (int64_t j = 0; j < L.shard; j++)
            if (local_buf[j] != 0.0f) owned++; /* full[i] != 0 for every i: padding is 0 */
        lrsa_zero_scatter_into(&L, r, local_buf, back);
        lrsa_zero_layout_free(&L);
    }
    assert_int_equal(owned, numel);
    for (int64_t i = 0; i < numel; i++)
        if (back[i] != full[i]) fail_msg("element %lld not restored", (long long)i);
    free(full);
    free(back);
    free(local_buf);
    lrsa_zero_layout_free(&L0);
}

static void test_zero_layout(void **state) {
    (void)state;
    const int64_t ready[] = {900, 700, 420, 100, 0};
    for (int world = 1; world <= 5; world++) {
        check_layout(ready, 5, 1000, world, 1, 4);     /* a bucket per readiness point */
        check_layout(ready, 5, 1000, world, 250, 4);   /* merged buckets */
        check_layout(ready, 5, 1000, world, 10000, 1); /* one bucket */
        check_layout(ready, 5, 1000, world, 150, 64);  /* units bigger than some layers */
    }
    const int64_t tiny[] = {3, 0};
    check_layout(tiny, 2, 5, 8, 1, 1); /* more ranks than elements: some own only padding */
    /* rounding up never puts an unfinished gradient into an earlier bucket */
    lrsa_zero_layout L;
    lrsa_zero_layout_init(&L, ready, 5, 1000, 2, 0, 1, 32); /* unit 64 */
    assert_int_equal(L.padded, 1024);
    assert_int_equal(L.b[0].lo, 960); /* 900 rounded up */
    assert_int_equal(L.b[1].lo, 704); /* 700 rounded up */
    lrsa_zero_layout_free(&L);
}

/* One rank: the gather is a reordering of the shard. */
static void test_zero_gather_one_rank(void **state) {
    (void)state;
    const int64_t ready[] = {60, 20, 0};
    lrsa_zero_layout L;
    lrsa_zero_layout_init(&L, ready, 3, 77, 1, 0, 1, 8);
    float full[77], local[96], out[77];
    for (int i = 0; i < 77; i++) full[i] = (float)(i * 3 + 1);
    lrsa_zero_extract(&L, full, local);
    lrsa_comm single = {.world = 1};
    lrsa_err e;
    memset(out, 0, sizeof out);
    assert_int_equal(lrsa_zero_gather(&single, &L, local, out, 0, &e), 0);
    assert_memory_equal(out, full, sizeof full);
    memset(out, 0, sizeof out);
    assert_int_equal(lrsa_zero_gather(&single, &L, local, out, -1, &e), 0);
    assert_memory_equal(out, full, sizeof full);
    lrsa_zero_layout_free(&L);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_launch_none),   cmocka_unit_test(test_launch_openmpi),
        cmocka_unit_test(test_launch_slurm),  cmocka_unit_test(test_launch_hydra),
        cmocka_unit_test(test_launch_errors), cmocka_unit_test(test_pick_device),
        cmocka_unit_test(test_zero_layout),   cmocka_unit_test(test_zero_gather_one_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
