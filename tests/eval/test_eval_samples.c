/* `lrsa eval --json`'s per-sample records with generation: per-sample tasks of a task mixture,
 * predictions scored part by part, the default generation budget sized per sample from its
 * reference answer (the NLL side of the records is checked in test_eval_cli). A tiny random
 * model with the fixture SmolLM tokenizer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "eval/run/metrics.h"
#include "test_util.h"
#include "tiny_model.h"

static char dir[1024];

static cJSON *run_json(const char *args, const char *json) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s eval %s --json %s 2>&1", LRSA_BINARY, args, json);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("`%s` failed: %s", cmd, out ? out : "");
    free(out);
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(json, NULL, &e);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    return root;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("no number '%s'", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsString(v)) fail_msg("no string '%s'", key);
    return v->valuestring;
}

/* A task mixture with generation: records carry each sample's own task, a prediction scored
 * part by part, and a budget of the sample's answer tokens + 16 unless --max-new is given. */
static void test_mixture_records(void **state) {
    char model_dir[1200], data[1200], json[1200], cmd[8192];
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(data, sizeof data, "%s/mix.h5", dir);
    snprintf(json, sizeof json, "%s/mix.json", dir);
    tiny_model_save_dir(model_dir, 2, 1359, 1, 91, 1);
    lrsa_err e = {{0}};
    snprintf(cmd, sizeof cmd,
             "LRSA_CACHE=%s/nocache %s prepare --model %s --synthetic passkey,niah-multivalue "
             "--n 4 --length 480 --seed 3 --out %s 2>&1",
             dir, LRSA_BINARY, model_dir, data);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("prepare: %s", out ? out : "");
    free(out);
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, data, &e) != 0) fail_msg("%s", e.msg);

    char args[4096];
    snprintf(args, sizeof args,
             "--model %s --data %s --metrics nll,match --press lagkv --sink 2 --lag 16 --keep 0.5",
             model_dir, data);
    cJSON *root = run_json(args, json);
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "results"), 0);
    const cJSON *samples = cJSON_GetObjectItem(row, "samples");
    assert_int_equal(cJSON_GetArraySize(samples), 4);
    double matches = 0;
    int tasks_seen = 0, longest = 0, shortest = 1 << 30;
    for (int i = 0; i < 4; i++) {
        const cJSON *x = cJSON_GetArrayItem(samples, i);
        assert_int_equal((int)num(x, "index"), i);
        const char *task = str(x, "task");
        assert_string_equal(task, lrsa_dataset_sample_task(&d, i));
        tasks_seen |= !strcmp(task, "passkey") ? 1 : !strcmp(task, "niah-multivalue") ? 2 : 4;
        int max_new = (int)num(x, "max_new");
        assert_int_equal(max_new, (int)lrsa_dataset_n_target(&d, i) + 16);
        longest = max_new > longest ? max_new : longest;
        shortest = max_new < shortest ? max_new : shortest;
        /* the scores are those of the prediction against the reference split at ", " */
        lrsa_answer_scores sc;
        lrsa_score_answer(str(x, "prediction"), lrsa_dataset_answer(&d, i), ", ", &sc);
        assert_true(num(x, "string_match_all") == sc.match_all);
        assert_true(num(x, "string_match_part") == sc.match_part);
        assert_true(num(x, "exact_match") == sc.exact);
        assert_true(num(x, "f1") == sc.f1);
        double match = num(x, "match");
        assert_true(match == 0 || match == 1);
        matches += match;
        assert_true(num(x, "answer_tokens") >= 2);
    }
    assert_int_equal(tasks_seen, 3); /* both tasks, nothing else */
    assert_true(longest > shortest); /* four values need a longer budget than one pass key */
    assert_true(fabs(num(row, "match_accuracy") - matches / 4) <= 1e-12);
    cJSON_Delete(root);

    /* --max-new fixes every budget */
    snprintf(args, sizeof args, "--model %s --data %s --n 2 --metrics match --max-new 3", model_dir,
             data);
    root = run_json(args, json);
    row = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "results"), 0);
    samples = cJSON_GetObjectItem(row, "samples");
    assert_int_equal(cJSON_GetArraySize(samples), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetArrayItem(samples, i);
        assert_int_equal((int)num(x, "max_new"), 3);
        assert_null(cJSON_GetObjectItem(x, "answer_nll")); /* no NLL asked */
        assert_true(num(x, "kept_fraction") == 1.0);       /* no press */
    }
    cJSON_Delete(root);
    lrsa_dataset_close(&d);
}

/* --batch: every sample's record (NLL, prediction, kept fraction) is the one it gets alone, in
 * the same order, for batches that do not divide the samples (3 + 1), for a LagKV cache that
 * keeps compressing while it answers (query-aware: the prefill is cloned for generation) and
 * for a frozen SnapKV cache (query-agnostic: trimmed back between NLL and generation). The NLLs
 * agree up to SGEMM's rounding (docs/EVAL.md, "Batched evaluation"). */
static void test_batch_equals_one(void **state) {
    (void)state;
    char model_dir[1200], data[1200], json1[1200], json3[1200], args[4096];
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(data, sizeof data, "%s/mix.h5", dir);
    snprintf(json1, sizeof json1, "%s/b1.json", dir);
    snprintf(json3, sizeof json3, "%s/b3.json", dir);
    const char *presses[] = {"--press lagkv --sink 2 --lag 16 --keep 0.5",
                             "--press snapkv --window 8 --keep 0.5 --protocol agnostic"};
    for (int p = 0; p < 2; p++) {
        cJSON *r[2];
        for (int k = 0; k < 2; k++) {
            snprintf(args, sizeof args, "--model %s --data %s --metrics nll,match --batch %d %s",
                     model_dir, data, k ? 3 : 1, presses[p]);
            r[k] = run_json(args, k ? json3 : json1);
        }
        const cJSON *s1 = cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(r[0], "results"), 0), "samples");
        const cJSON *s3 = cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(r[1], "results"), 0), "samples");
        assert_int_equal(cJSON_GetArraySize(s1), 4);
        assert_int_equal(cJSON_GetArraySize(s3), 4);
        double prev = -1;
        for (int i = 0; i < 4; i++) {
            const cJSON *a = cJSON_GetArrayItem(s1, i), *b = cJSON_GetArrayItem(s3, i);
            assert_int_equal((int)num(b, "index"), i);
            assert_true(num(a, "answer_tokens") == num(b, "answer_tokens"));
            const double na = num(a, "answer_nll_sum"), nb = num(b, "answer_nll_sum");
            if (!(fabs(na - nb) <= 1e-5 * fabs(na)))
                fail_msg("%s: sample %d: NLL %.9g with --batch 3, %.9g with --batch 1", presses[p],
                         i, nb, na);
            assert_true(fabs(na - prev) > 1e-3); /* the samples differ: a mix-up would show */
            prev = na;
            assert_string_equal(str(a, "prediction"), str(b, "prediction"));
            assert_true(num(a, "kept_fraction") == num(b, "kept_fraction"));
            assert_true(num(a, "kept_fraction") < 1.0);
        }
        cJSON_Delete(r[0]);
        cJSON_Delete(r[1]);
    }
    /* the flag's range */
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --batch 0 2>&1", LRSA_BINARY, model_dir,
             data);
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "--batch"));
    free(out);
}

int main(void) {
    tu_tmpdir(dir, sizeof dir, "eval_samples");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mixture_records),
                                       cmocka_unit_test(test_batch_equals_one)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
