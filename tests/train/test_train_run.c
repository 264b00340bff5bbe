/* The training loop end to end on a tiny random model and synthetic copy-task data:
 * exact resume (also with gradient accumulation), start-up errors that leave nothing behind,
 * and learning (the loss falls; the LRSA fine-tune lowers the LagKV-compressed answer NLL). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_fixture.h"

static int run(const char *config, const char *const *overrides, int64_t stop_after, lrsa_err *e) {
    return tf_train(config, overrides, stop_after, e);
}

static void must_run(const char *config, const char *const *overrides, int64_t stop_after) {
    tf_must_train(config, overrides, stop_after);
}

/* Straight N+M steps vs N steps, stop, resume, M more: same losses and bit-identical final
 * weights and moments. */
static void resume_case(const char *tag, const char *extra) {
    char dir[4096], cfg[4200], a[4200], b[4200], ca[4300], cb[4300];
    tu_tmpdir(dir, sizeof dir, tag);
    tf_write_run(dir, "straight", extra, cfg, sizeof cfg);
    lrsa_path_join(a, sizeof a, dir, "straight");
    lrsa_path_join(b, sizeof b, dir, "resumed");
    char run_b[4300];
    snprintf(run_b, sizeof run_b, "run_dir=%s", b);
    const char *ov_b[] = {run_b, NULL};
    const char *ov_b_resume[] = {run_b, "resume=true", NULL};
    must_run(cfg, NULL, 0);
    must_run(cfg, ov_b, 3);        /* preempted after step 3 (a checkpoint is written) */
    must_run(cfg, ov_b_resume, 0); /* continues from step 3 to 6 */
    int64_t sa[32], sb[32];
    double la[32], lb[32];
    int na = tf_read_losses(a, sa, la, 32), nb = tf_read_losses(b, sb, lb, 32);
    assert_int_equal(na, 6);
    assert_int_equal(nb, 6);
    for (int i = 0; i < na; i++) {
        assert_int_equal(sa[i], sb[i]);
        if (la[i] != lb[i])
            fail_msg("step %lld: loss %.17g straight vs %.17g resumed", (long long)sa[i], la[i],
                     lb[i]);
    }
    lrsa_ckpt_path(ca, sizeof ca, a, 0);
    char ckpt_a[4300], ckpt_b[4300];
    snprintf(ckpt_a, sizeof ckpt_a, "%s/ckpt", a);
    snprintf(ckpt_b, sizeof ckpt_b, "%s/ckpt", b);
    lrsa_ckpt_path(ca, sizeof ca, ckpt_a, 6);
    lrsa_ckpt_path(cb, sizeof cb, ckpt_b, 6);
    assert_true(lrsa_file_exists(ca) && lrsa_file_exists(cb));
    assert_true(tf_ckpts_equal(ca, cb));
    /* keep_ckpts = 2: steps 4 and 6 remain */
    assert_int_equal(tf_count_entries(ckpt_a), 2);
    /* the resolved config is written */
    char resolved[4300];
    snprintf(resolved, sizeof resolved, "%s/config.resolved.yaml", a);
    assert_true(lrsa_file_exists(resolved));
}

static void test_resume_exact(void **state) {
    (void)state;
    resume_case("resume", NULL);
}

static void test_resume_exact_grad_accum(void **state) {
    (void)state;
    resume_case("resume_accum", "grad_accum: 3\n");
}

/* LoRA (the adapter and its moments are the checkpoint) with dropout, recomputation and
 * gradient accumulation resumes bit-exactly too. */
static void test_resume_exact_lora(void **state) {
    (void)state;
    resume_case("resume_lora", "lora:\n  rank: 4\n  alpha: 8\n  dropout: 0.1\n"
                               "recompute: true\ngrad_accum: 2\n");
}

/* The same with the frozen base stored in bf16 (lora.base_dtype: bf16, model/base_bf16.h). */
static void test_resume_exact_lora_bf16(void **state) {
    (void)state;
    resume_case("resume_lora_bf16", "lora:\n  rank: 4\n  alpha: 8\n  dropout: 0.1\n"
                                    "  base_dtype: bf16\nrecompute: true\ngrad_accum: 2\n");
}

/* data.tokens_per_microbatch derives the accumulation from tokens: 512 in micro-batches of 256
 * is exactly grad_accum 2 of 256-token batches. */
static void test_tokens_per_microbatch(void **state) {
    (void)state;
    char dir[4096], cfg[4200], a[4300], b[4300], ra[4400], rb[4400];
    tu_tmpdir(dir, sizeof dir, "microbatch");
    tf_write_run(dir, "a", NULL, cfg, sizeof cfg);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(ra, sizeof ra, "run_dir=%s", a);
    snprintf(rb, sizeof rb, "run_dir=%s", b);
    const char *oa[] = {ra, "data.tokens_per_batch=512", "data.tokens_per_microbatch=256", NULL};
    const char *ob[] = {rb, "data.tokens_per_batch=256", "grad_accum=2", NULL};
    must_run(cfg, oa, 0);
    must_run(cfg, ob, 0);
    int64_t sa[16], sb[16];
    double la[16], lb[16];
    int na = tf_read_losses(a, sa, la, 16), nb = tf_read_losses(b, sb, lb, 16);
    assert_int_equal(na, 6);
    assert_int_equal(nb, 6);
    for (int i = 0; i < na; i++) assert_true(la[i] == lb[i]);
}

/* A start-up failure: the message names what is wrong and the run directory is not created. */
static void expect_startup_error(const char *dir, const char *config, const char *const *ov,
                                 const char *run_dir, const char *needle1, const char *needle2) {
    (void)dir;
    lrsa_err e;
    assert_int_equal(run(config, ov, 0, &e), -1);
    if (!strstr(e.msg, needle1) || (needle2 && !strstr(e.msg, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", e.msg, needle1, needle2 ? needle2 : "");
    if (run_dir) assert_int_equal(tf_count_entries(run_dir), -1);
}

static void test_startup_errors(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ov[4400];
    tu_tmpdir(dir, sizeof dir, "errors");
    tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    /* a missing data file */
    snprintf(ov, sizeof ov, "data.train=%s/nope.h5", dir);
    const char *o1[] = {ov, NULL};
    expect_startup_error(dir, cfg, o1, run_dir, "data.train", "nope.h5");
    /* a missing model config */
    const char *o2[] = {"model.config=/nonexistent/config.json", NULL};
    expect_startup_error(dir, cfg, o2, run_dir, "model.config", "/nonexistent/config.json");
    /* cuda in a CPU build */
    const char *o3[] = {"device=cuda", NULL};
    expect_startup_error(dir, cfg, o3, run_dir, "device", "cpu");
    /* an unwritable run dir: its parent is a regular file */
    char blocker[4300], bad_run[4400];
    snprintf(blocker, sizeof blocker, "%s/a-file", dir);
    lrsa_err e;
    assert_int_equal(lrsa_write_file_atomic(blocker, "x", 1, &e), 0);
    snprintf(bad_run, sizeof bad_run, "run_dir=%s/run", blocker);
    const char *o4[] = {bad_run, NULL};
    expect_startup_error(dir, cfg, o4, NULL, "run_dir", blocker);
    /* a checkpoint from another model: train the tiny model one step, then resume with a
     * wider one; the run directory is left exactly as it was */
    const char *o5[] = {"schedule.max_steps=1", NULL};
    must_run(cfg, o5, 0);
    char other[4300], ckpt_dir[4300], ckpt[4400];
    snprintf(other, sizeof other, "%s/other.json", dir);
    char *json = lrsa_read_file(LRSA_SOURCE_DIR "/configs/tiny/config.json", NULL, &e);
    assert_non_null(json);
    char *p = strstr(json, "\"hidden_size\": 32");
    assert_non_null(p);
    memcpy(p, "\"hidden_size\": 48", 17);
    assert_int_equal(lrsa_write_file_atomic(other, json, strlen(json), &e), 0);
    free(json);
    snprintf(ov, sizeof ov, "model.config=%s", other);
    const char *o6[] = {ov, "resume=true", "schedule.max_steps=2", NULL};
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
    lrsa_ckpt_path(ckpt, sizeof ckpt, ckpt_dir, 1);
    struct stat before, after;
    assert_int_equal(stat(ckpt, &before), 0);
    int n_run = tf_count_entries(run_dir), n_ckpt = tf_count_entries(ckpt_dir);
    expect_startup_error(dir, cfg, o6, NULL, "another model", "has shape");
    assert_int_equal(stat(ckpt, &after), 0);
    assert_true(before.st_mtime == after.st_mtime && before.st_size == after.st_size);
    assert_int_equal(tf_count_entries(run_dir), n_run);
    assert_int_equal(tf_count_entries(ckpt_dir), n_ckpt);
    /* the same run without resume=true refuses to overwrite its checkpoints */
    const char *o7[] = {"schedule.max_steps=2", NULL};
    expect_startup_error(dir, cfg, o7, NULL, "already holds checkpoints", "resume");
}

/* A step with a non-finite gradient is skipped without touching weights or moments, logged and
 * counted; max_bad_steps in a row stop the run with a message. */
static void test_skip_guard(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], path[4400];
    tu_tmpdir(dir, sizeof dir, "skip");
    tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    setenv("LRSA_TEST_BAD_STEPS", "3,4", 1);
    const char *ov[] = {"max_bad_steps=3", "ckpt_every=1", "keep_ckpts=10", NULL};
    must_run(cfg, ov, 0);
    char ckpt_dir[4300], c2[4400], c4[4400], c5[4400];
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
    lrsa_ckpt_path(c2, sizeof c2, ckpt_dir, 2);
    lrsa_ckpt_path(c4, sizeof c4, ckpt_dir, 4);
    lrsa_ckpt_path(c5, sizeof c5, ckpt_dir, 5);
    assert_true(tf_ckpts_equal(c2, c4));  /* steps 3 and 4 changed nothing */
    assert_false(tf_ckpts_equal(c4, c5)); /* step 5 trained again */
    lrsa_path_join(path, sizeof path, run_dir, "metrics.jsonl");
    lrsa_err e;
    char *text = lrsa_read_file(path, NULL, &e);
    assert_non_null(text);
    int skipped = 0;
    for (char *p = text; (p = strstr(p, "\"skipped\":true")); p++) skipped++;
    assert_int_equal(skipped, 2);
    assert_non_null(strstr(text, "\"skipped_total\":2}"));
    free(text);
    /* three in a row with max_bad_steps = 3: the run stops */
    setenv("LRSA_TEST_BAD_STEPS", "2,3,4", 1);
    snprintf(path, sizeof path, "run_dir=%s/run2", dir);
    const char *ov2[] = {"max_bad_steps=3", path, NULL};
    assert_int_equal(run(cfg, ov2, 0, &e), -1);
    unsetenv("LRSA_TEST_BAD_STEPS");
    if (!strstr(e.msg, "max_bad_steps") || !strstr(e.msg, "step 4"))
        fail_msg("unexpected message: %s", e.msg);
}

/* On the copy task the loss falls, and the LRSA fine-tune lowers the answer NLL measured
 * through a LagKV-compressed cache (keep 0.25) below the untrained model's. */
static void test_learns(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200];
    tu_tmpdir(dir, sizeof dir, "learns");
    tf_write_run(dir, "run", "eval_every: 30\n", cfg, sizeof cfg);
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    const char *ov[] = {"schedule.max_steps=30", "ckpt_every=0", NULL};
    must_run(cfg, ov, 0);
    int64_t steps[64];
    double loss[64], full[8], lag[8];
    int n = tf_read_losses(run_dir, steps, loss, 64);
    assert_int_equal(n, 30);
    double first = (loss[0] + loss[1] + loss[2]) / 3, last = (loss[27] + loss[28] + loss[29]) / 3;
    printf("loss: first 3 steps %.4f, last 3 steps %.4f\n", first, last);
    assert_true(last < 0.8 * first);
    int ne = tf_read_evals(run_dir, steps, full, lag, 8);
    assert_int_equal(ne, 2); /* before training (step 0) and at the end */
    assert_int_equal(steps[0], 0);
    assert_int_equal(steps[1], 30);
    printf("answer NLL full cache: %.4f -> %.4f; LagKV keep 0.25: %.4f -> %.4f\n", full[0], full[1],
           lag[0], lag[1]);
    assert_true(isfinite(lag[0]) && isfinite(lag[1]));
    assert_true(lag[1] < lag[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_resume_exact_grad_accum),
        cmocka_unit_test(test_resume_exact_lora),
        cmocka_unit_test(test_resume_exact_lora_bf16),
        cmocka_unit_test(test_tokens_per_microbatch),
        cmocka_unit_test(test_startup_errors),
        cmocka_unit_test(test_skip_guard),
        cmocka_unit_test(test_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
