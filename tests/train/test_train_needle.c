/* The needle kept rate in training (metrics.jsonl "needle_kept", issue 19): on the tiny model,
 * samples whose answer-bearing spans lie in the sink and the recent window log exactly 1; a span
 * of one token in an early partition, visible only when LagKV selects it, logs a rate in [0, 1)
 * (2 layers x 2 KV heads keep 2 of 8 tokens); dense training and data without spans log none. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "data/dataset.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train_fixture.h"

enum { LEN = 48, PROMPT = 45 };

/* 16 samples of LEN tokens, the answer from PROMPT on; spans: `n` rows of (start, end). */
static void write_data(const char *path, const int64_t *spans, int n) {
    lrsa_rng r;
    lrsa_rng_seed(&r, 3);
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    lrsa_err e;
    for (int s = 0; s < 16; s++) {
        int32_t ids[LEN];
        uint8_t mask[LEN];
        ids[0] = 1;
        for (int t = 1; t < LEN; t++) ids[t] = 40 + (int)lrsa_rng_below(&r, 56);
        for (int t = 0; t < LEN; t++) mask[t] = t >= PROMPT;
        assert_int_equal(lrsa_dataset_writer_add(w, ids, mask, LEN, PROMPT, "x", &e), 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(lrsa_dataset_writer_add_span(w, s, spans[2 * i], spans[2 * i + 1], &e),
                             0);
    }
    lrsa_dataset_meta meta = {"test", "none", "tests/train", "copy", 0};
    if (lrsa_dataset_writer_commit(w, path, &meta, &e)) fail_msg("%s", e.msg);
    lrsa_dataset_writer_free(w);
}

/* What a run logged: needle_kept and salience_loss of its step records, and its last
 * checkpoint. */
typedef struct logged {
    int n_kept, n_sal;
    double kept[8], sal[8];
    char ckpt[4400];
} logged;

/* Trains 3 steps on DIR/train.h5 (16 samples with the given spans) with two overrides (may be
 * NULL) and reads what it logged. */
static void train_log(const char *name, const int64_t *spans, int n, const char *o1, const char *o2,
                      logged *out) {
    char dir[1024], train[1100], run_dir[1100], config[1200];
    tu_tmpdir(dir, sizeof dir, name);
    snprintf(train, sizeof train, "%s/train.h5", dir);
    write_data(train, spans, n);
    tf_write_run(dir, "run", NULL, config, sizeof config);
    const char *const over[] = {"schedule.max_steps=3", o1 ? o1 : o2, o1 ? o2 : NULL, NULL};
    tf_must_train(config, over, 0);
    snprintf(run_dir, sizeof run_dir, "%s/run/metrics.jsonl", dir);
    lrsa_err e;
    char *text = lrsa_read_file(run_dir, NULL, &e);
    if (!text) fail_msg("%s", e.msg);
    memset(out, 0, sizeof *out);
    int steps = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        if (cJSON_GetObjectItemCaseSensitive(j, "loss")) steps++;
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "needle_kept");
        if (x && cJSON_IsNumber(x) && out->n_kept < 8) out->kept[out->n_kept++] = x->valuedouble;
        x = cJSON_GetObjectItemCaseSensitive(j, "salience_loss");
        if (x && cJSON_IsNumber(x) && out->n_sal < 8) out->sal[out->n_sal++] = x->valuedouble;
        cJSON_Delete(j);
    }
    free(text);
    assert_int_equal(steps, 3);
    char ckpt_dir[1200];
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/run/ckpt", dir);
    lrsa_ckpt_path(out->ckpt, sizeof out->ckpt, ckpt_dir, 3);
    assert_true(lrsa_file_exists(out->ckpt));
}

/* The number of step records with needle_kept, their values in v. */
static int run(const char *name, const int64_t *spans, int n, const char *mode, double *v) {
    logged g;
    train_log(name, spans, n, mode, NULL, &g);
    memcpy(v, g.kept, sizeof g.kept);
    assert_int_equal(g.n_sal, 0); /* the salience loss is off by default */
    return g.n_kept;
}

/* sink 4, lag 8: the first answer query (45) lies in P_5 = [44, 52); P_4 = [36, 44) is whole */
static void test_window_and_sink_kept(void **state) {
    (void)state;
    const int64_t spans[4] = {1, 3, 37, 40};
    double v[8];
    assert_int_equal(run("needle_window", spans, 2, NULL, v), 3);
    for (int i = 0; i < 3; i++) assert_true(v[i] == 1.0);
}

static void test_early_token_selected_or_not(void **state) {
    (void)state;
    const int64_t spans[2] = {5, 6}; /* one token of P_0 = [4, 12), keep 2 of 8 */
    double v[8];
    assert_int_equal(run("needle_early", spans, 1, NULL, v), 3);
    for (int i = 0; i < 3; i++) assert_true(v[i] >= 0.0 && v[i] < 1.0);
}

static void test_dense_and_no_spans_log_none(void **state) {
    (void)state;
    const int64_t spans[2] = {5, 6};
    double v[8];
    assert_int_equal(run("needle_dense", spans, 1, "attention.mode=dense", v), 0);
    assert_int_equal(run("needle_none", spans, 0, NULL, v), 0);
}

/* The salience loss: weight 0 trains bit-identically to no salience key; a weight > 0 logs
 * salience_loss every step (> 0: the needle does not hold all of its partitions' score) and
 * trains other weights, in LRSA and in dense mode; a weight > 0 on data without spans is refused
 * before training, naming the key and the fix. */
static void test_salience(void **state) {
    (void)state;
    const int64_t spans[4] = {5, 7, 21, 22}; /* in scored partitions P_0 and P_2 */
    logged off, zero, on, dense;
    train_log("sal_off", spans, 2, NULL, NULL, &off);
    train_log("sal_zero", spans, 2, "attention.salience.weight=0", NULL, &zero);
    train_log("sal_on", spans, 2, "attention.salience.weight=0.5", NULL, &on);
    train_log("sal_dense", spans, 2, "attention.salience.weight=0.5", "attention.mode=dense",
              &dense);
    assert_true(tf_ckpts_equal(off.ckpt, zero.ckpt));
    assert_int_equal(zero.n_sal, 0);
    assert_int_equal(on.n_sal, 3);
    assert_int_equal(dense.n_sal, 3);
    for (int i = 0; i < 3; i++) assert_true(on.sal[i] > 0.0 && dense.sal[i] > 0.0);
    assert_false(tf_ckpts_equal(off.ckpt, on.ckpt));
    assert_int_equal(on.n_kept, 3); /* the diagnostic still runs */

    char dir[1024], train[1100], config[1200];
    tu_tmpdir(dir, sizeof dir, "sal_nospans");
    snprintf(train, sizeof train, "%s/train.h5", dir);
    write_data(train, spans, 0);
    tf_write_run(dir, "run", NULL, config, sizeof config);
    const char *const over[] = {"attention.salience.weight=0.5", NULL};
    lrsa_err e;
    assert_int_equal(tf_train(config, over, 0, &e), -1);
    assert_non_null(strstr(e.msg, "attention.salience.weight"));
    assert_non_null(strstr(e.msg, "no /needle_spans"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_and_sink_kept),
        cmocka_unit_test(test_early_token_selected_or_not),
        cmocka_unit_test(test_dense_and_no_spans_log_none),
        cmocka_unit_test(test_salience),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
