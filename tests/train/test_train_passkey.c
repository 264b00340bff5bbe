/* The LRSA fine-tune on synthetic passkey data, as a user runs it: `lrsa prepare --synthetic
 * passkey` (fixture SmolLM tokenizer, the built-in filler: no essays, so the data never depends
 * on what tools/fetch-haystack.sh fetched) writes a training and a held-out set of
 * 256-token samples, `lrsa train` fine-tunes a tiny random model with LRSA attention (sink 4,
 * lag 16, keep 0.25: the samples span 15 partitions, so the compression is real), and the
 * held-out answer NLL through a LagKV-compressed cache at the same keep ratio falls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "test_util.h"
#include "train_fixture.h"

static void must(const char *cmd) {
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("`%s` exited %d: %s", cmd, rc, out ? out : "");
    free(out);
}

static void test_lrsa_finetune_lowers_compressed_nll(void **state) {
    (void)state;
    char dir[4096], path[4300], cmd[16384];
    tu_tmpdir(dir, sizeof dir, "passkey");
    lrsa_err e;
    /* the model folder for `prepare`: the fixture tokenizer (1359 ids) */
    char *tok = lrsa_read_file(LRSA_TEST_DATA "/tokenizer/smollm/tokenizer.json", NULL, &e);
    assert_non_null(tok);
    lrsa_path_join(path, sizeof path, dir, "tokenizer.json");
    assert_int_equal(lrsa_write_file_atomic(path, tok, strlen(tok), &e), 0);
    free(tok);
    /* the tiny model's config with the tokenizer's vocabulary */
    char *json = lrsa_read_file(LRSA_SOURCE_DIR "/configs/tiny/config.json", NULL, &e);
    assert_non_null(json);
    char *p = strstr(json, "\"vocab_size\": 96,");
    assert_non_null(p);
    memcpy(p, "\"vocab_size\":1359,", 18);
    lrsa_path_join(path, sizeof path, dir, "config.json");
    assert_int_equal(lrsa_write_file_atomic(path, json, strlen(json), &e), 0);
    free(json);
    const char *sets[2][2] = {{"train", "40 --seed 1"}, {"eval", "6 --seed 2"}};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s prepare --model %s --synthetic passkey --haystack %s/no-essays "
                 "--length 256 --out %s/%s.h5 --n %s 2>&1",
                 LRSA_BINARY, dir, dir, dir, sets[i][0], sets[i][1]);
        must(cmd);
    }
    char cfg[4300], run_dir[4300];
    lrsa_path_join(cfg, sizeof cfg, dir, "run.yaml");
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "model:\n  init: random\n  config: %s/config.json\n"
             "data:\n  train: %s/train.h5\n  eval: %s/eval.h5\n  tokens_per_batch: 512\n"
             "  eval_samples: 6\n"
             "attention:\n  mode: lrsa\n  sink: 4\n  lag: 16\n  keep: 0.25\n"
             "optim:\n  lr: 3.0e-3\n"
             "schedule:\n  warmup_steps: 2\n  max_steps: 30\n"
             "seed: 7\nrun_dir: %s\nlog_every: 10\neval_every: 30\nckpt_every: 0\n",
             dir, dir, dir, run_dir);
    assert_int_equal(lrsa_write_file_atomic(cfg, yaml, strlen(yaml), &e), 0);
    snprintf(cmd, sizeof cmd, "%s train %s --quiet 2>&1", LRSA_BINARY, cfg);
    must(cmd);
    int64_t steps[8];
    double full[8], lag[8];
    int n = tf_read_evals(run_dir, steps, full, lag, 8);
    assert_int_equal(n, 2); /* before training (step 0) and after step 30 */
    assert_int_equal(steps[0], 0);
    assert_int_equal(steps[1], 30);
    printf("passkey answer NLL, LagKV keep 0.25: %.4f -> %.4f (full cache %.4f -> %.4f)\n", lag[0],
           lag[1], full[0], full[1]);
    assert_true(isfinite(lag[0]) && isfinite(lag[1]));
    /* the compressed cache really differs from the full one on these samples */
    assert_true(lag[0] != full[0]);
    /* the fine-tune lowers the compressed answer NLL, by a clear margin (not noise) */
    assert_true(lag[1] < lag[0] - 0.5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lrsa_finetune_lowers_compressed_nll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
