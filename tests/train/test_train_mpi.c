/* Data parallelism (run under `mpiexec -n 2`): a 2-rank ZeRO-1 run gives the same losses as a
 * 1-rank run with the same global batch (losses within 1e-6 relative; with the deterministic
 * reduce the final weights and moments bit for bit), also with gradient accumulation, with the
 * gradient buckets reduced during the backward (comm.overlap, several buckets) and without; the
 * overlapped and the blocking reduction end in bit-identical checkpoints; 2 ranks stopped after N
 * steps and resumed on 2 ranks for M more match N+M steps in one 2-rank run bit for bit (also with
 * gradient accumulation); a 2-rank checkpoint resumes on 1 rank. The same for LoRA (only adapter
 * gradients reduced, after the backward: comm.overlap applies to full fine-tuning; ZeRO-1 shards
 * of the adapter's moments) with dropout and recomputation, with the frozen base in fp32 and in
 * bf16 (lora.base_dtype: every rank rounds the same base the same way, so the bf16 runs are as
 * exact as the fp32 ones). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "test_util.h"
#include "train/comm.h"
#include "train/trainer.h"
#include "train_fixture.h"

static lrsa_comm world;

/* A fresh directory for a test that all ranks share: rank 0 makes it (named after tag) and writes
 * the fixture's data and config for run `run` there; every rank gets the directory in dir and the
 * config's path in cfg. */
static void shared_run_dir(const char *tag, const char *run, char *dir, size_t dir_size, char *cfg,
                           size_t cfg_size) {
    if (world.rank == 0) tu_tmpdir(dir, dir_size, tag);
    lrsa_err e;
    assert_int_equal(lrsa_comm_bcast(&world, dir, dir_size, 0, &e), 0);
    if (world.rank == 0) tf_write_run(dir, run, NULL, cfg, cfg_size);
    lrsa_path_join(cfg, cfg_size, dir, "config.yaml");
    assert_int_equal(lrsa_comm_barrier(&world, &e), 0);
}

/* Whether the last checkpoints (step 6, the fixture's max_steps) of two run directories are equal
 * bit for bit. */
static int final_ckpts_equal(const char *run_a, const char *run_b) {
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/ckpt/step_000006.h5", run_a);
    snprintf(b, sizeof b, "%s/ckpt/step_000006.h5", run_b);
    return tf_ckpts_equal(a, b);
}

/* Losses within 1e-6 relative; exact: the final weights and moments bit-identical too (the
 * deterministic reduce). */
static void compare(const char *extra_tag, const char *const *extra_ov, int exact) {
    char dir[4096], cfg[4200], one[4300], two[4300];
    /* rank 0 prepares the files, the others use its directory */
    shared_run_dir(extra_tag, "two", dir, sizeof dir, cfg, sizeof cfg);
    lrsa_err e;
    snprintf(two, sizeof two, "%s/two", dir);
    snprintf(one, sizeof one, "%s/one", dir);
    lrsa_train_config c;
    tf_load_config(&c, cfg, extra_ov);
    lrsa_train_opts o = {0, 1};
    if (lrsa_train_run(&c, &o, &world, &e)) fail_msg("2-rank run: %s", e.msg);
    if (world.rank == 0) {
        lrsa_comm single = {.world = 1};
        snprintf(c.run_dir, sizeof c.run_dir, "%s", one);
        if (lrsa_train_run(&c, &o, &single, &e)) fail_msg("1-rank run: %s", e.msg);
        int64_t s1[32], s2[32];
        double l1[32], l2[32];
        int n1 = tf_read_losses(one, s1, l1, 32), n2 = tf_read_losses(two, s2, l2, 32);
        assert_int_equal(n1, (int)c.max_steps);
        assert_int_equal(n1, n2);
        for (int i = 0; i < n1; i++) {
            double rel = fabs(l1[i] - l2[i]) / fmax(fabs(l1[i]), 1e-30);
            printf("step %lld: 1 rank %.9f, 2 ranks %.9f (rel %.2e)\n", (long long)s1[i], l1[i],
                   l2[i], rel);
            if (!(rel <= 1e-6)) fail_msg("step %lld differs: rel %.3g", (long long)s1[i], rel);
        }
        /* the logged loss is a sum in another order; the weights and moments are not */
        if (exact && !final_ckpts_equal(one, two))
            fail_msg("deterministic reduce, but the 1-rank and 2-rank checkpoints differ");
    }
    assert_int_equal(lrsa_comm_barrier(&world, &e), 0);
}

static void test_two_ranks_match_one(void **state) {
    (void)state;
    compare("mpi", NULL, 1);
}

/* A checkpoint written by 2 ranks (moments gathered from the ZeRO shards) resumes on 1 rank
 * and ends bit-identical to a 1-rank run from the start. */
static void test_resume_on_other_world_size(void **state) {
    (void)state;
    char dir[4096], cfg[4200], split[4300], one[4300];
    shared_run_dir("mpi_resume", "one", dir, sizeof dir, cfg, sizeof cfg);
    lrsa_err e;
    snprintf(split, sizeof split, "%s/split", dir);
    snprintf(one, sizeof one, "%s/one", dir);
    lrsa_train_config c;
    tf_load_config(&c, cfg, NULL);
    snprintf(c.run_dir, sizeof c.run_dir, "%s", split);
    lrsa_train_opts stop = {3, 1}, full = {0, 1};
    if (lrsa_train_run(&c, &stop, &world, &e)) fail_msg("2-rank run: %s", e.msg);
    if (world.rank == 0) {
        lrsa_comm single = {.world = 1};
        c.resume = 1;
        if (lrsa_train_run(&c, &full, &single, &e)) fail_msg("1-rank resume: %s", e.msg);
        snprintf(c.run_dir, sizeof c.run_dir, "%s", one);
        c.resume = 0;
        if (lrsa_train_run(&c, &full, &single, &e)) fail_msg("1-rank run: %s", e.msg);
        assert_true(final_ckpts_equal(split, one));
    }
    assert_int_equal(lrsa_comm_barrier(&world, &e), 0);
}

/* N = 3 steps on 2 ranks, stop, resume on 2 ranks for M = 3 more: the losses and the final
 * checkpoint (weights, moments gathered from the ZeRO shards) equal a straight 6-step 2-rank
 * run bit for bit. */
static void resume_two_ranks(const char *tag, const char *const *extra_ov) {
    char dir[4096], cfg[4200], split[4300], straight[4300];
    shared_run_dir(tag, "straight", dir, sizeof dir, cfg, sizeof cfg);
    lrsa_err e;
    snprintf(split, sizeof split, "%s/split", dir);
    snprintf(straight, sizeof straight, "%s/straight", dir);
    lrsa_train_config c;
    tf_load_config(&c, cfg, extra_ov);
    lrsa_train_opts stop = {3, 1}, full = {0, 1};
    if (lrsa_train_run(&c, &full, &world, &e)) fail_msg("straight 2-rank run: %s", e.msg);
    snprintf(c.run_dir, sizeof c.run_dir, "%s", split);
    if (lrsa_train_run(&c, &stop, &world, &e)) fail_msg("2-rank run to step 3: %s", e.msg);
    c.resume = 1;
    if (lrsa_train_run(&c, &full, &world, &e)) fail_msg("2-rank resume: %s", e.msg);
    if (world.rank == 0) {
        int64_t s1[32], s2[32];
        double l1[32], l2[32];
        int n1 = tf_read_losses(straight, s1, l1, 32), n2 = tf_read_losses(split, s2, l2, 32);
        assert_int_equal(n1, (int)c.max_steps);
        assert_int_equal(n1, n2);
        for (int i = 0; i < n1; i++) {
            assert_int_equal(s1[i], s2[i]);
            if (l1[i] != l2[i])
                fail_msg("step %lld: loss %.17g straight vs %.17g resumed", (long long)s1[i], l1[i],
                         l2[i]);
        }
        assert_true(final_ckpts_equal(straight, split));
    }
    assert_int_equal(lrsa_comm_barrier(&world, &e), 0);
}

static void test_resume_two_ranks(void **state) {
    (void)state;
    resume_two_ranks("mpi_resume2", NULL);
}

static void test_resume_two_ranks_accum(void **state) {
    (void)state;
    const char *ov[] = {"grad_accum=2", NULL};
    resume_two_ranks("mpi_resume2_accum", ov);
}

static void test_two_ranks_match_one_accum(void **state) {
    (void)state;
    const char *ov[] = {"grad_accum=2", NULL};
    compare("mpi_accum", ov, 1);
}

/* Plain float all-reduce (sums in a different order than one rank): still within 1e-6. */
static void test_two_ranks_match_one_f32_reduce(void **state) {
    (void)state;
    const char *ov[] = {"deterministic_reduce=false", NULL};
    compare("mpi_f32", ov, 0);
}

/* Several buckets (comm.bucket_mb of 0.01: one per layer, the head, the embedding), each
 * reduced as soon as the last sample's backward finished it. */
static void test_overlap_buckets_match_one(void **state) {
    (void)state;
    const char *det[] = {"comm.bucket_mb=0.01", "grad_accum=2", NULL};
    compare("mpi_overlap", det, 1);
    const char *f32[] = {"comm.bucket_mb=0.01", "deterministic_reduce=false", NULL};
    compare("mpi_overlap_f32", f32, 0);
    const char *blocking[] = {"comm.overlap=false", NULL};
    compare("mpi_blocking", blocking, 1);
}

/* The overlapped bucketed reduction and the blocking one give the same weights and moments,
 * bit for bit, after 6 steps on 2 ranks (deterministic and float reduce). */
static void overlap_equals_blocking(const char *tag, const char *reduce) {
    char dir[4096], cfg[4200], overlap[4300], blocking[4300];
    shared_run_dir(tag, "overlap", dir, sizeof dir, cfg, sizeof cfg);
    lrsa_err e;
    const char *ov_on[] = {"comm.bucket_mb=0.01", reduce, NULL};
    const char *ov_off[] = {"comm.overlap=false", reduce, NULL};
    lrsa_train_opts o = {0, 1};
    lrsa_train_config c;
    tf_load_config(&c, cfg, ov_on);
    snprintf(overlap, sizeof overlap, "%s/overlap", dir);
    snprintf(blocking, sizeof blocking, "%s/blocking", dir);
    snprintf(c.run_dir, sizeof c.run_dir, "%s", overlap);
    if (lrsa_train_run(&c, &o, &world, &e)) fail_msg("overlapped run: %s", e.msg);
    tf_load_config(&c, cfg, ov_off);
    snprintf(c.run_dir, sizeof c.run_dir, "%s", blocking);
    if (lrsa_train_run(&c, &o, &world, &e)) fail_msg("blocking run: %s", e.msg);
    if (world.rank == 0) assert_true(final_ckpts_equal(overlap, blocking));
    assert_int_equal(lrsa_comm_barrier(&world, &e), 0);
}

static void test_overlap_equals_blocking(void **state) {
    (void)state;
    overlap_equals_blocking("mpi_ovl_det", "deterministic_reduce=true");
    overlap_equals_blocking("mpi_ovl_f32", "deterministic_reduce=false");
}

static const char *const k_lora_ov[] = {"lora.rank=4", "lora.dropout=0.1", "recompute=true",
                                        "grad_accum=2", NULL};

static void test_two_ranks_match_one_lora(void **state) {
    (void)state;
    compare("mpi_lora", k_lora_ov, 1);
}

static void test_resume_two_ranks_lora(void **state) {
    (void)state;
    resume_two_ranks("mpi_resume2_lora", k_lora_ov);
}

static const char *const k_lora_bf16_ov[] = {"lora.rank=4",      "lora.base_dtype=bf16",
                                             "lora.dropout=0.1", "recompute=true",
                                             "grad_accum=2",     NULL};

static void test_two_ranks_match_one_lora_bf16(void **state) {
    (void)state;
    compare("mpi_lora_bf16", k_lora_bf16_ov, 1);
}

static void test_resume_two_ranks_lora_bf16(void **state) {
    (void)state;
    resume_two_ranks("mpi_resume2_lora_bf16", k_lora_bf16_ov);
}

int main(void) {
    lrsa_err e;
    if (lrsa_comm_init(&world, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    if (world.world != 2) fprintf(stderr, "note: running with %d rank(s)\n", world.world);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ranks_match_one),
        cmocka_unit_test(test_two_ranks_match_one_accum),
        cmocka_unit_test(test_two_ranks_match_one_f32_reduce),
        cmocka_unit_test(test_overlap_buckets_match_one),
        cmocka_unit_test(test_overlap_equals_blocking),
        cmocka_unit_test(test_resume_on_other_world_size),
        cmocka_unit_test(test_resume_two_ranks),
        cmocka_unit_test(test_resume_two_ranks_accum),
        cmocka_unit_test(test_two_ranks_match_one_lora),
        cmocka_unit_test(test_resume_two_ranks_lora),
        cmocka_unit_test(test_two_ranks_match_one_lora_bf16),
        cmocka_unit_test(test_resume_two_ranks_lora_bf16),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lrsa_comm_finalize(&world);
    return rc;
}
