/* `lrsa eval` end to end on a tiny saved model and a small dataset (NLL metric: no tokenizer
 * needed): its JSON equals the in-process metric, per sample in the "samples" records and in the
 * aggregate they add up to; flag errors of eval and generate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "eval/run/answer_nll.h"
#include "kernels/device/device.h"
#include "test_util.h"
#include "tiny_model.h"

enum { V = 97, NS = 3 };

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("no number '%s'", key);
    return v->valuedouble;
}

static int close_to(double got, double want) {
    return fabs(got - want) <= 1e-6 * fabs(want) + 1e-9;
}

/* The aggregate answer NLL of the JSON's row; its per-sample records must hold the in-process
 * NLL sums want[s] over cnt[s] answer tokens each (records in dataset order, the root task,
 * no prediction without the match metric) and add up to the aggregate. */
static double json_nll(const char *path, int ns, const double *want, const int64_t *cnt,
                       int compressed) {
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(path, NULL, &e);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "results"), 0);
    assert_non_null(row);
    const cJSON *samples = cJSON_GetObjectItem(row, "samples");
    assert_int_equal(cJSON_GetArraySize(samples), ns);
    double sum = 0, tokens = 0, kept = 0;
    for (int s = 0; s < ns; s++) {
        const cJSON *x = cJSON_GetArrayItem(samples, s);
        assert_int_equal((int)num(x, "index"), s);
        assert_string_equal(cJSON_GetObjectItem(x, "task")->valuestring, "random");
        assert_int_equal((int64_t)num(x, "answer_tokens"), cnt[s]);
        if (!close_to(num(x, "answer_nll_sum"), want[s]))
            fail_msg("sample %d: record NLL sum %.9g, in-process %.9g", s, num(x, "answer_nll_sum"),
                     want[s]);
        assert_true(close_to(num(x, "answer_nll"), want[s] / (double)cnt[s]));
        assert_null(cJSON_GetObjectItem(x, "prediction")); /* no generation asked */
        double kf = num(x, "kept_fraction");
        assert_true(compressed ? kf > 0 && kf < 1 : kf == 1.0);
        sum += num(x, "answer_nll_sum");
        tokens += num(x, "answer_tokens");
        kept += kf;
    }
    double v = num(row, "answer_nll");
    assert_true(close_to(v, sum / tokens));
    assert_true(num(row, "answer_tokens") == tokens);
    assert_true(fabs(num(row, "kept_fraction") - kept / ns) <= 1e-12);
    cJSON_Delete(root);
    return v;
}

static void test_eval_command(void **state) {
    (void)state;
    char dir[1024], model_dir[2048], data[2048], json[2048], cmd[8192];
    tu_tmpdir(dir, sizeof(dir), "eval_cli");
    snprintf(model_dir, sizeof(model_dir), "%s/model", dir);
    snprintf(data, sizeof(data), "%s/qa.h5", dir);
    snprintf(json, sizeof(json), "%s/out.json", dir);
    lrsa_model m;
    tiny_model_create(&m, 2, V, 0, 41);
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_model_save(&m, model_dir, LRSA_ST_F32, &e), 0);
    /* Three samples of different lengths, answers at the end. */
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    int32_t ids[NS][80];
    uint8_t mask[NS][80];
    const int lens[NS] = {80, 45, 61}, ans[NS] = {7, 5, 9};
    for (int s = 0; s < NS; s++) {
        tiny_random_ids(ids[s], lens[s], V, 50 + s);
        for (int t = 0; t < lens[s]; t++) mask[s][t] = t >= lens[s] - ans[s];
        assert_int_equal(
            lrsa_dataset_writer_add(w, ids[s], mask[s], lens[s], lens[s] - ans[s], "x", &e), 0);
    }
    lrsa_dataset_meta meta = {
        .tokenizer_checksum = "", .chat_template = "none", .source = "test", .task = "random"};
    assert_int_equal(lrsa_dataset_writer_commit(w, data, &meta, &e), 0);
    lrsa_dataset_writer_free(w);

    const char *presses[2] = {"--press none", "--press lagkv --sink 2 --lag 8 --keep 0.25"};
    lrsa_press_config pcs[2] = {
        lrsa_press_config_full(LRSA_PREFILL_CHUNKED),
        lrsa_press_config_lagkv((lrsa_lagkv_params){2, 8, 0.25f, 1.0f}, LRSA_PREFILL_CHUNKED)};
    for (int pi = 0; pi < 2; pi++) {
        snprintf(cmd, sizeof(cmd), "%s eval --model %s --data %s --n 2 %s --json %s 2>&1",
                 LRSA_BINARY, model_dir, data, presses[pi], json);
        char *out = NULL;
        int rc = tu_run(cmd, &out);
        if (rc != 0) fail_msg("lrsa eval failed: %s", out ? out : "");
        assert_non_null(strstr(out, "answer_nll"));
        free(out);
        double sum = 0.0, each[2];
        int64_t cnt = 0, each_cnt[2];
        for (int s = 0; s < 2; s++) {
            assert_int_equal(
                lrsa_answer_nll(&m, ids[s], mask[s], lens[s], &pcs[pi], &each[s], &each_cnt[s], &e),
                0);
            sum += each[s];
            cnt += each_cnt[s];
        }
        assert_int_equal(cnt, 7 + 5);
        double want = sum / cnt, got = json_nll(json, 2, each, each_cnt, pi == 1);
        if (!(fabs(got - want) <= 1e-6 * fabs(want) + 1e-9))
            fail_msg("%s: JSON answer_nll %.9g, in-process %.9g", presses[pi], got, want);
    }
    /* Errors name the flag or file. */
    struct {
        const char *args, *needle;
    } bad[] = {
        {"eval --data x.h5", "--model"},
        {"eval --model m", "--data"},
        {"eval --model m --data x.h5 --press snap", "--press"},
        {"eval --model m --data x.h5 --metrics bleu", "--metrics"},
        {"eval --model m --data x.h5 --press lagkv --keep 2", "keep"},
        {"eval --model m --data x.h5 --prefill sometimes", "--prefill"},
        {"eval --model m --data x.h5 --device gpu", "'gpu' is not cpu or cuda"},
        /* presses the GPU cache does not run are refused before anything is loaded */
        {"eval --model m --data x.h5 --device cuda --press snapkv",
         "--device cuda: only the full cache and --press lagkv run on the GPU; snapkv runs on "
         "the CPU (use --device cpu)"},
        {"generate --model m --prompt hi --device cuda --press h2o", "h2o runs on the CPU"},
        {"generate --model m", "--prompt"},
        {"generate --prompt hi", "--model"},
        {"generate --model m --prompt hi --top-p 0", "--top-p"},
        {"generate --model m --prompt hi --max-new -3", "--max-new"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd), "%s %s 2>&1", LRSA_BINARY, bad[i].args);
        char *out = NULL;
        int rc = tu_run(cmd, &out);
        if (rc == 0 || !out || !strstr(out, bad[i].needle))
            fail_msg("`%s`: rc %d, output lacks '%s': %s", bad[i].args, rc, bad[i].needle,
                     out ? out : "");
        free(out);
    }
    /* --device cuda with the full cache or LagKV: says what is missing here (a build without CUDA,
     * no device), before reading the model; where a GPU is, test_gpu_eval runs it */
    if (!lrsa_cuda_built() || lrsa_cuda_device_count() == 0) {
        snprintf(cmd, sizeof(cmd), "%s eval --model %s --data %s --press lagkv --device cuda 2>&1",
                 LRSA_BINARY, model_dir, data);
        char *gpu = NULL;
        assert_int_not_equal(tu_run(cmd, &gpu), 0);
        const char *want = !lrsa_cuda_built() ? "--device cuda: this lrsa was built without CUDA"
                                              : "--device cuda: no CUDA device";
        if (!gpu || !strstr(gpu, want)) fail_msg("'%s' lacks '%s'", gpu ? gpu : "", want);
        free(gpu);
    }
    snprintf(cmd, sizeof(cmd), "%s eval --model %s/nope --data %s 2>&1", LRSA_BINARY, dir, data);
    char *out = NULL;
    assert_true(tu_run(cmd, &out) != 0);
    assert_non_null(strstr(out, "nope"));
    free(out);
    snprintf(cmd, sizeof(cmd), "%s generate --help", LRSA_BINARY);
    assert_int_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "--prefill"));
    free(out);
    lrsa_model_free(&m);
}

/* `lrsa generate` end to end: a tiny random model with the fixture SmolLM tokenizer, LagKV with
 * a small L so events run in prefill and decoding; statistics printed; sampling reproducible. */
static void test_generate_command(void **state) {
    (void)state;
    char dir[1024], model_dir[2048], cmd[8192];
    tu_tmpdir(dir, sizeof(dir), "generate_cli");
    snprintf(model_dir, sizeof(model_dir), "%s/model", dir);
    tiny_model_save_dir(model_dir, 2, 1359, 1, 61, 1);
    char *outs[2] = {NULL, NULL};
    for (int run = 0; run < 2; run++) {
        snprintf(cmd, sizeof(cmd),
                 "%s generate --model %s --prompt 'Tell me about the weather in the hills today' "
                 "--max-new 40 --temperature 0.8 --top-p 0.9 --seed 7 --press lagkv --sink 2 "
                 "--lag 8 --keep 0.5 --prefill chunked 2>&1",
                 LRSA_BINARY, model_dir);
        int rc = tu_run(cmd, &outs[run]);
        if (rc != 0) fail_msg("lrsa generate failed: %s", outs[run] ? outs[run] : "");
    }
    for (int run = 0; run < 2; run++) { /* drop the timing line */
        char *t = strstr(outs[run], "\nprefill ");
        assert_non_null(t);
        *t = '\0';
    }
    assert_string_equal(outs[0], outs[1]); /* same seed: same text and statistics */
    const char *st = strstr(outs[0], "tokens seen");
    assert_non_null(st);
    long long seen = 0, kept = 0;
    assert_int_equal(sscanf(st, "tokens seen %lld, tokens kept %lld", &seen, &kept), 2);
    assert_true(seen > 18 && kept < seen); /* S + 2L = 18: compression ran */
    assert_non_null(strstr(outs[0], "lagkv(S=2,L=8,r=0.5"));
    free(outs[0]);
    free(outs[1]);
    /* --device cuda names what is missing (this model's head_dim 16 where a GPU exists) */
    snprintf(cmd, sizeof(cmd),
             "%s generate --model %s --prompt 'hi' --max-new 4 --press lagkv --device cuda 2>&1",
             LRSA_BINARY, model_dir);
    char *out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(out);
    const char *want = !lrsa_cuda_built() ? "--device cuda: this lrsa was built without CUDA"
                       : lrsa_cuda_device_count() == 0 ? "--device cuda: no CUDA device"
                                                       : "head_dim 64 and 128";
    if (!strstr(out, want)) fail_msg("'%s' lacks '%s'", out, want);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_eval_command),
                                       cmocka_unit_test(test_generate_command)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
