/* LoRA training end to end on the tiny random model and the copy task: the checkpoint holds the
 * adapter and its moments only (plus the base's checksum); the loss falls; resume and export
 * check the base and the LoRA settings with clear errors; `lrsa export` merges the adapter (the
 * result equals base + s B A) or writes a PEFT directory that `lrsa logits --adapter` and the
 * PEFT loader read back; the lora.* keys parse from YAML and the command line. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "model/lora.h"
#include "model/model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/lora_ckpt.h"
#include "train/trainer.h"
#include "train_fixture.h"

static const char *k_lora_yaml = "lora:\n  rank: 4\n  alpha: 8\n  dropout: 0.1\n";

static int run(const char *config, const char *const *overrides, lrsa_err *e) {
    return tf_train(config, overrides, 0, e);
}

static void must_run(const char *config, const char *const *overrides) {
    tf_must_train(config, overrides, 0);
}

static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) ? -1 : (int64_t)st.st_size;
}

/* Number of datasets in /param and the length of /adam_m. */
static void ckpt_counts(const char *path, int64_t *n_param, int64_t *n_moments) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t g = H5Gopen2(f, "param", H5P_DEFAULT);
    H5G_info_t info;
    assert_true(H5Gget_info(g, &info) >= 0);
    *n_param = (int64_t)info.nlinks;
    hid_t ds = H5Dopen2(f, "adam_m", H5P_DEFAULT), sp = H5Dget_space(ds);
    *n_moments = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Gclose(g);
    H5Fclose(f);
}

/* The tiny model the fixture config builds (model.init random, seed 7, init_std std). */
static void fixture_base(lrsa_model *m, float std) {
    lrsa_model_config mc;
    lrsa_err e;
    if (lrsa_config_load(&mc, LRSA_SOURCE_DIR "/configs/tiny/config.json", &e))
        fail_msg("%s", e.msg);
    if (lrsa_model_create(m, &mc, &e)) fail_msg("%s", e.msg);
    lrsa_model_init_random(m, 7, std);
}

static void test_lora_checkpoint_and_learning(void **state) {
    (void)state;
    char dir[4096], cfg[4200], full[4300], lora[4300], ov_full[4400], path[4500];
    tu_tmpdir(dir, sizeof dir, "lora_ckpt");
    tf_write_run(dir, "lora", k_lora_yaml, cfg, sizeof cfg);
    snprintf(lora, sizeof lora, "%s/lora", dir);
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(ov_full, sizeof ov_full, "run_dir=%s", full);
    const char *ov_lora[] = {"schedule.max_steps=30", "optim.lr=1e-2", "ckpt_every=0",
                             "model.init_std=0.2", NULL};
    must_run(cfg, ov_lora);
    const char *ov_f[] = {ov_full, "lora.rank=0", "schedule.max_steps=1", NULL};
    must_run(cfg, ov_f);

    /* the adapter learns: the loss of the last steps is below the first ones'. (The base is
     * frozen, so it needs weights larger than init_std 0.02, with which the tied head's logits
     * cannot leave about +-0.6 whatever the adapter does.) */
    int64_t steps[64];
    double loss[64];
    assert_int_equal(tf_read_losses(lora, steps, loss, 64), 30);
    double first = (loss[0] + loss[1] + loss[2]) / 3, last = (loss[27] + loss[28] + loss[29]) / 3;
    printf("LoRA loss: first 3 steps %.4f, last 3 steps %.4f\n", first, last);
    assert_true(last < 0.9 * first);

    /* adapter tensors and their moments only: 2 layers x 7 targets x (A, B) */
    snprintf(path, sizeof path, "%s/ckpt/step_000030.h5", lora);
    lrsa_model base;
    fixture_base(&base, 0.2f);
    lrsa_lora ref;
    lrsa_lora_config lc = {.rank = 4, .alpha = 8, .dropout = 0.1, .targets = LRSA_LORA_ALL_TARGETS};
    lrsa_err e;
    if (lrsa_lora_create(&ref, &base.cfg, &lc, &e)) fail_msg("%s", e.msg);
    int64_t n_param, n_mom;
    ckpt_counts(path, &n_param, &n_mom);
    assert_int_equal(n_param, 2 * 7 * 2);
    assert_int_equal(n_mom, ref.table.numel);
    lrsa_lora_config stored;
    assert_int_equal(lrsa_lora_ckpt_config(path, &stored, &e), 1);
    assert_true(stored.rank == 4 && stored.alpha == 8 && stored.dropout == 0.1 &&
                stored.targets == LRSA_LORA_ALL_TARGETS);
    assert_int_equal(lrsa_lora_ckpt_check_base(path, &base, "fixture", &e), 0);
    char full_ckpt[4500];
    snprintf(full_ckpt, sizeof full_ckpt, "%s/ckpt/step_000001.h5", full);
    assert_int_equal(lrsa_lora_ckpt_config(full_ckpt, &stored, &e), 0);
    printf("checkpoint sizes: LoRA %lld bytes, full %lld bytes\n", (long long)file_size(path),
           (long long)file_size(full_ckpt));
    assert_true(file_size(path) * 3 < file_size(full_ckpt));
    /* the adapter moved away from B = 0 */
    assert_int_equal(lrsa_ckpt_read(path, &ref.table, 0, 0, NULL, NULL, NULL, &e), 0);
    double bnorm = 0;
    for (int i = 0; i < ref.table.n; i++)
        if (strstr(ref.table.desc[i].name, "lora_B"))
            for (int64_t j = 0; j < ref.table.desc[i].numel; j++) {
                double x = lrsa_table_ptr(&ref.table, LRSA_ROLE_PARAM, i)[j];
                bnorm += x * x;
            }
    assert_true(bnorm > 0);
    lrsa_lora_free(&ref);
    lrsa_model_free(&base);
}

/* Resume refuses another base, other LoRA settings, or the other kind of checkpoint, and leaves
 * the run directory as it was. */
static void test_lora_resume_errors(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4300], fdir[4400], ov[4500];
    tu_tmpdir(dir, sizeof dir, "lora_resume_err");
    tf_write_run(dir, "run", k_lora_yaml, cfg, sizeof cfg);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    const char *o1[] = {"schedule.max_steps=1", NULL};
    must_run(cfg, o1);
    int n_before = tf_count_entries(run_dir);
    struct {
        const char *ov[4];
        const char *needle1, *needle2;
    } cases[] = {
        {{"resume=true", "model.init_std=0.03", NULL},
         "is not the one the LoRA adapter",
         "checksum"},
        {{"resume=true", "lora.alpha=16", NULL}, "lora settings", "alpha 8"},
        {{"resume=true", "lora.targets=[q_proj,v_proj]", NULL}, "lora settings", NULL},
        {{"resume=true", "lora.rank=0", NULL}, "holds a LoRA adapter", "lora.rank = 4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lrsa_err e;
        const char *o[] = {cases[i].ov[0], cases[i].ov[1], "schedule.max_steps=2", NULL};
        assert_int_equal(run(cfg, o, &e), -1);
        if (!strstr(e.msg, cases[i].needle1) ||
            (cases[i].needle2 && !strstr(e.msg, cases[i].needle2)))
            fail_msg("case %zu: message '%s'", i, e.msg);
        assert_int_equal(tf_count_entries(run_dir), n_before);
    }
    /* a full fine-tuning checkpoint resumed as LoRA */
    snprintf(fdir, sizeof fdir, "%s/full", dir);
    snprintf(ov, sizeof ov, "run_dir=%s", fdir);
    const char *o2[] = {ov, "lora.rank=0", "schedule.max_steps=1", NULL};
    must_run(cfg, o2);
    const char *o3[] = {ov, "resume=true", "schedule.max_steps=2", NULL};
    lrsa_err e;
    assert_int_equal(run(cfg, o3, &e), -1);
    if (!strstr(e.msg, "holds full model weights")) fail_msg("message '%s'", e.msg);
}

static float *logits_of(lrsa_model *m, const int32_t *ids, int T) {
    float *out = malloc(sizeof(float) * (size_t)T * (size_t)m->cfg.vocab_size);
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_attn_config a = {.mode = LRSA_ATTN_DENSE};
    lrsa_model_logits(m, ws, ids, 1, T, &a, out);
    lrsa_workspace_free(ws);
    return out;
}

/* The answer-NLL column of `lrsa eval`'s result line. */
static void eval_nll(const char *cmd, char nll[32]) {
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc) fail_msg("`%s` failed (%d): %s", cmd, rc, out ? out : "");
    const char *line = strstr(out, "\nnone");
    if (!line) fail_msg("no result line in: %s", out);
    char press[64], protocol[32], prefill[32], samples[32];
    assert_int_equal(
        sscanf(line, "%63s %31s %31s %31s %31s", press, protocol, prefill, samples, nll), 5);
    free(out);
}

/* `lrsa logits --adapter` and `lrsa eval --adapter` on the base give the merged export's logits
 * (bit for bit: the same merge) and answer NLL. */
static void cli_adapter_matches_merged(const char *dir, const lrsa_model *base, const char *adapter,
                                       const char *merged, const int32_t *ids, int T) {
    char base_dir[4400], ids_path[4400], la[4400], lb[4400], cmd[16384];
    lrsa_err e;
    snprintf(base_dir, sizeof base_dir, "%s/base", dir);
    if (lrsa_model_save(base, base_dir, LRSA_ST_F32, &e)) fail_msg("%s", e.msg);
    snprintf(ids_path, sizeof ids_path, "%s/ids.txt", dir);
    FILE *f = fopen(ids_path, "w");
    assert_non_null(f);
    for (int t = 0; t < T; t++) fprintf(f, "%d%c", ids[t], t + 1 < T ? ' ' : '\n');
    fclose(f);
    snprintf(la, sizeof la, "%s/la.safetensors", dir);
    snprintf(lb, sizeof lb, "%s/lb.safetensors", dir);
    snprintf(cmd, sizeof cmd,
             "%s logits --model %s --adapter %s --ids %s --out %s 2>&1 && %s logits "
             "--model %s --ids %s --out %s 2>&1",
             LRSA_BINARY, base_dir, adapter, ids_path, la, LRSA_BINARY, merged, ids_path, lb);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc) fail_msg("lrsa logits failed (%d): %s", rc, out ? out : "");
    free(out);
    lrsa_safetensors sa, sb;
    if (lrsa_st_open(&sa, la, &e) || lrsa_st_open(&sb, lb, &e)) fail_msg("%s", e.msg);
    const int64_t n = (int64_t)T * base->cfg.vocab_size;
    float *xa = malloc(sizeof(float) * (size_t)n), *xb = malloc(sizeof(float) * (size_t)n);
    assert_int_equal(lrsa_st_read_f32(&sa, lrsa_st_find(&sa, "logits"), xa, &e), 0);
    assert_int_equal(lrsa_st_read_f32(&sb, lrsa_st_find(&sb, "logits"), xb, &e), 0);
    assert_memory_equal(xa, xb, sizeof(float) * (size_t)n);
    free(xa);
    free(xb);
    lrsa_st_close(&sa);
    lrsa_st_close(&sb);
    char n1[32], n2[32];
    snprintf(cmd, sizeof cmd, "%s eval --model %s --adapter %s --data %s/eval.h5 --n 3 2>&1",
             LRSA_BINARY, base_dir, adapter, dir);
    eval_nll(cmd, n1);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/eval.h5 --n 3 2>&1", LRSA_BINARY,
             merged, dir);
    eval_nll(cmd, n2);
    printf("answer NLL: base + --adapter %s, merged export %s\n", n1, n2);
    assert_string_equal(n1, n2);
    /* a missing adapter directory is a clear error */
    snprintf(cmd, sizeof cmd, "%s eval --model %s --adapter %s/nope --data %s/eval.h5 2>&1",
             LRSA_BINARY, base_dir, dir, dir);
    rc = tu_run(cmd, &out);
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "--adapter") || !strstr(out, "adapter_config.json"))
        fail_msg("unexpected: %s", out);
    free(out);
}

/* lrsa export: merged (= base + s B A of the checkpoint's adapter) and --adapter (a PEFT
 * directory with the checkpoint's tensors; the merged export and the adapter on the base give
 * the same logits); --adapter on a full checkpoint and a wrong --base are refused. */
static void test_lora_export(void **state) {
    (void)state;
    char dir[4096], cfg[4200], ckpt[4400], merged[4400], adapter[4400], cmd[16384];
    tu_tmpdir(dir, sizeof dir, "lora_export");
    tf_write_run(dir, "run", k_lora_yaml, cfg, sizeof cfg);
    const char *o[] = {"schedule.max_steps=3", "optim.lr=1e-2", NULL};
    must_run(cfg, o);
    snprintf(ckpt, sizeof ckpt, "%s/run/ckpt/step_000003.h5", dir);
    snprintf(merged, sizeof merged, "%s/merged", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter", dir);
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype f32 2>&1", LRSA_BINARY, ckpt, merged);
    int rc = tu_run(cmd, &out);
    if (rc) fail_msg("export failed (%d): %s", rc, out ? out : "");
    assert_non_null(strstr(out, "LoRA adapter merged"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s export %s %s --adapter 2>&1", LRSA_BINARY, ckpt, adapter);
    rc = tu_run(cmd, &out);
    if (rc) fail_msg("export --adapter failed (%d): %s", rc, out ? out : "");
    free(out);

    lrsa_err e;
    lrsa_model base, exported, expect;
    fixture_base(&base, 0.02f);
    fixture_base(&expect, 0.02f);
    lrsa_lora a, peft;
    lrsa_lora_config lc = {.rank = 4, .alpha = 8, .dropout = 0.1, .targets = LRSA_LORA_ALL_TARGETS};
    if (lrsa_lora_create(&a, &base.cfg, &lc, &e)) fail_msg("%s", e.msg);
    assert_int_equal(lrsa_ckpt_read(ckpt, &a.table, 0, 0, NULL, NULL, NULL, &e), 0);
    lrsa_lora_merge(&a, &expect);
    if (lrsa_model_load(&exported, merged, &e)) fail_msg("%s", e.msg);
    assert_memory_equal(exported.table.arena[LRSA_ROLE_PARAM], expect.table.arena[LRSA_ROLE_PARAM],
                        sizeof(float) * (size_t)expect.table.numel);
    if (lrsa_lora_load_peft(&peft, &base.cfg, adapter, &e)) fail_msg("%s", e.msg);
    assert_int_equal(peft.table.numel, a.table.numel);
    assert_memory_equal(peft.table.arena[LRSA_ROLE_PARAM], a.table.arena[LRSA_ROLE_PARAM],
                        sizeof(float) * (size_t)a.table.numel);
    enum { T = 20 };
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 37 + 5) % base.cfg.vocab_size);
    float *l_merged = logits_of(&exported, ids, T);
    base.lora = &peft;
    float *l_adapter = logits_of(&base, ids, T);
    TU_ASSERT_CLOSE(l_adapter, l_merged, (int64_t)T * base.cfg.vocab_size, 1e-5,
                    "adapter on base vs merged export");
    free(l_merged);
    free(l_adapter);
    base.lora = NULL;
    cli_adapter_matches_merged(dir, &base, adapter, merged, ids, T);
    lrsa_lora_free(&peft);
    lrsa_lora_free(&a);
    lrsa_model_free(&base);
    lrsa_model_free(&exported);
    lrsa_model_free(&expect);

    /* --base with other weights: the checksum catches it */
    char other[4400];
    snprintf(other, sizeof other, "%s/other", dir);
    snprintf(cmd, sizeof cmd, "%s export %s %s/x --base %s 2>&1", LRSA_BINARY, ckpt, dir, merged);
    rc = tu_run(cmd, &out);
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "is not the one the LoRA adapter") || !strstr(out, merged))
        fail_msg("unexpected: %s", out);
    free(out);
    /* --adapter on a full fine-tuning checkpoint */
    const char *o2[] = {"lora.rank=0", "schedule.max_steps=1", NULL};
    char run_full[4500];
    snprintf(run_full, sizeof run_full, "run_dir=%s/full", dir);
    const char *o3[] = {run_full, o2[0], o2[1], NULL};
    must_run(cfg, o3);
    snprintf(cmd, sizeof cmd, "%s export %s/full/ckpt/step_000001.h5 %s --adapter 2>&1",
             LRSA_BINARY, dir, other);
    rc = tu_run(cmd, &out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "full fine-tuning checkpoint"));
    free(out);
    assert_int_equal(tf_count_entries(other), -1);
}

/* lora.base_dtype bf16 end to end. On a base whose weights are bf16 values (saved as BF16), the
 * bf16 store changes nothing: per-step losses, the final adapter and moments, and the end-of-run
 * evaluation (the block-level API) equal the f32 run's bit for bit. On the random-init base
 * (arbitrary fp32 weights) the export merges the adapter onto the base as it was loaded, not the
 * rounded one: the merged model equals fp32 base + s B A bit for bit. */
static void test_lora_bf16_base(void **state) {
    (void)state;
    char dir[4096], cfg[4200], base_dir[4300], ov_path[4400], ov_f32[4400], ov_bf16[4400];
    tu_tmpdir(dir, sizeof dir, "lora_bf16");
    tf_write_run(dir, "f32", k_lora_yaml, cfg, sizeof cfg);
    lrsa_model base;
    lrsa_err e;
    fixture_base(&base, 0.2f);
    snprintf(base_dir, sizeof base_dir, "%s/base", dir);
    if (lrsa_model_save(&base, base_dir, LRSA_ST_BF16, &e)) fail_msg("%s", e.msg);
    lrsa_model_free(&base);
    snprintf(ov_path, sizeof ov_path, "model.path=%s", base_dir);
    snprintf(ov_f32, sizeof ov_f32, "run_dir=%s/f32", dir);
    snprintf(ov_bf16, sizeof ov_bf16, "run_dir=%s/bf16", dir);
    const char *o32[] = {
        ov_f32, "model.init=pretrained", ov_path, "schedule.max_steps=3", "optim.lr=1e-2", NULL};
    const char *o16[] = {ov_bf16,         "model.init=pretrained", ov_path, "schedule.max_steps=3",
                         "optim.lr=1e-2", "lora.base_dtype=bf16",  NULL};
    must_run(cfg, o32);
    must_run(cfg, o16);
    char run32[4400], run16[4400], c32[4500], c16[4500];
    snprintf(run32, sizeof run32, "%s/f32", dir);
    snprintf(run16, sizeof run16, "%s/bf16", dir);
    int64_t s32[8], s16[8];
    double l32[8], l16[8], f32v[4], f16v[4], g32[4], g16[4];
    assert_int_equal(tf_read_losses(run32, s32, l32, 8), 3);
    assert_int_equal(tf_read_losses(run16, s16, l16, 8), 3);
    for (int i = 0; i < 3; i++)
        if (l32[i] != l16[i])
            fail_msg("step %d: loss %.17g (f32) vs %.17g (bf16)", i, l32[i], l16[i]);
    assert_int_equal(tf_read_evals(run32, s32, f32v, g32, 4), 1);
    assert_int_equal(tf_read_evals(run16, s16, f16v, g16, 4), 1);
    assert_true(f32v[0] == f16v[0] && g32[0] == g16[0]);
    snprintf(c32, sizeof c32, "%s/ckpt/step_000003.h5", run32);
    snprintf(c16, sizeof c16, "%s/ckpt/step_000003.h5", run16);
    assert_true(tf_ckpts_equal(c32, c16));

    /* arbitrary weights (the fixture's random init): export merges onto the fp32 base */
    char ov_rand[4400], ckpt[4500], merged[4500], cmd[16384];
    snprintf(ov_rand, sizeof ov_rand, "run_dir=%s/rand", dir);
    const char *orand[] = {ov_rand, "schedule.max_steps=3", "optim.lr=1e-2", "lora.base_dtype=bf16",
                           NULL};
    must_run(cfg, orand);
    /* the key is in effect: on unrounded weights the bf16 run's losses are not the f32 run's */
    char ov_rand32[4400], rand16[4400], rand32[4400];
    snprintf(ov_rand32, sizeof ov_rand32, "run_dir=%s/rand32", dir);
    const char *orand32[] = {ov_rand32, "schedule.max_steps=3", "optim.lr=1e-2", NULL};
    must_run(cfg, orand32);
    snprintf(rand16, sizeof rand16, "%s/rand", dir);
    snprintf(rand32, sizeof rand32, "%s/rand32", dir);
    assert_int_equal(tf_read_losses(rand16, s16, l16, 8), 3);
    assert_int_equal(tf_read_losses(rand32, s32, l32, 8), 3);
    printf("random base, step 1 loss: f32 %.9f, bf16 %.9f\n", l32[0], l16[0]);
    assert_true(l32[0] != l16[0] && fabs(l32[0] - l16[0]) < 1e-3 * fabs(l32[0]));
    snprintf(ckpt, sizeof ckpt, "%s/rand/ckpt/step_000003.h5", dir);
    snprintf(merged, sizeof merged, "%s/merged", dir);
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype f32 2>&1", LRSA_BINARY, ckpt, merged);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc) fail_msg("export failed (%d): %s", rc, out ? out : "");
    free(out);
    lrsa_model expect, exported;
    fixture_base(&expect, 0.02f);
    lrsa_lora a;
    lrsa_lora_config lc = {.rank = 4, .alpha = 8, .dropout = 0.1, .targets = LRSA_LORA_ALL_TARGETS};
    if (lrsa_lora_create(&a, &expect.cfg, &lc, &e)) fail_msg("%s", e.msg);
    assert_int_equal(lrsa_ckpt_read(ckpt, &a.table, 0, 0, NULL, NULL, NULL, &e), 0);
    assert_int_equal(lrsa_lora_ckpt_check_base(ckpt, &expect, "fixture", &e), 0);
    lrsa_lora_merge(&a, &expect);
    if (lrsa_model_load(&exported, merged, &e)) fail_msg("%s", e.msg);
    assert_memory_equal(exported.table.arena[LRSA_ROLE_PARAM], expect.table.arena[LRSA_ROLE_PARAM],
                        sizeof(float) * (size_t)expect.table.numel);
    lrsa_lora_free(&a);
    lrsa_model_free(&expect);
    lrsa_model_free(&exported);
}

/* lora.* keys: YAML list, command-line list, the resolved YAML round trip, bad values. */
static void test_lora_config_keys(void **state) {
    (void)state;
    lrsa_train_config c;
    lrsa_err e;
    lrsa_train_config_defaults(&c);
    assert_int_equal(c.lora_rank, 0);
    assert_string_equal(c.lora_targets, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
    const char *yaml = "lora:\n  rank: 8\n  targets: [q_proj, v_proj]\n";
    assert_int_equal(lrsa_train_config_parse(&c, yaml, strlen(yaml), "x.yaml", &e), 0);
    assert_int_equal(c.lora_rank, 8);
    assert_string_equal(c.lora_targets, "q_proj,v_proj");
    const char *block = "lora:\n  targets:\n    - down_proj\n    - up_proj\n";
    assert_int_equal(lrsa_train_config_parse(&c, block, strlen(block), "x.yaml", &e), 0);
    assert_string_equal(c.lora_targets, "down_proj,up_proj");
    assert_int_equal(lrsa_train_config_override(&c, "lora.targets=[o_proj, k_proj]", "cli", &e), 0);
    assert_string_equal(c.lora_targets, "o_proj,k_proj");
    lrsa_lora_config lc = lrsa_lora_config_of(&c);
    assert_int_equal(lc.targets, (1u << LRSA_LORA_K) | (1u << LRSA_LORA_O));
    /* the resolved YAML reads back the same */
    char *text = lrsa_train_config_to_yaml(&c);
    assert_non_null(strstr(text, "targets: [o_proj, k_proj]"));
    lrsa_train_config d;
    lrsa_train_config_defaults(&d);
    assert_int_equal(lrsa_train_config_parse(&d, text, strlen(text), "resolved", &e), 0);
    assert_string_equal(d.lora_targets, c.lora_targets);
    assert_int_equal(d.lora_rank, 8);
    free(text);
    /* validation names the key and the bad value */
    strcpy(c.model_path, "m");
    strcpy(c.data_train, "d");
    strcpy(c.run_dir, "r");
    c.max_steps = 1;
    assert_int_equal(lrsa_train_config_override(&c, "lora.targets=[q_proj,lm_head]", "cli", &e), 0);
    assert_int_equal(lrsa_train_config_validate(&c, "cfg.yaml", &e), -1);
    if (!strstr(e.msg, "lora.targets") || !strstr(e.msg, "lm_head")) fail_msg("%s", e.msg);
    assert_int_equal(lrsa_train_config_override(&c, "lora.targets=q_proj", "cli", &e), 0);
    assert_int_equal(lrsa_train_config_override(&c, "lora.dropout=1.5", "cli", &e), 0);
    assert_int_equal(lrsa_train_config_validate(&c, "cfg.yaml", &e), -1);
    assert_non_null(strstr(e.msg, "lora.dropout"));
    assert_int_equal(lrsa_train_config_override(&c, "lora.dropout=0.1", "cli", &e), 0);
    /* lora.base_dtype: the default, YAML, the resolved YAML, a bad value, a full fine-tune */
    assert_string_equal(d.lora_base_dtype, "f32");
    const char *b16 = "lora:\n  rank: 8\n  base_dtype: bf16\n";
    assert_int_equal(lrsa_train_config_parse(&c, b16, strlen(b16), "x.yaml", &e), 0);
    assert_string_equal(c.lora_base_dtype, "bf16");
    assert_int_equal(lrsa_train_config_validate(&c, "cfg.yaml", &e), 0);
    text = lrsa_train_config_to_yaml(&c);
    lrsa_train_config_defaults(&d);
    assert_int_equal(lrsa_train_config_parse(&d, text, strlen(text), "resolved", &e), 0);
    assert_string_equal(d.lora_base_dtype, "bf16");
    free(text);
    const char *bad = "lora:\n  rank: 8\n  base_dtype: fp16\n";
    assert_int_equal(lrsa_train_config_parse(&c, bad, strlen(bad), "x.yaml", &e), -1);
    if (!strstr(e.msg, "x.yaml:3") || !strstr(e.msg, "lora.base_dtype") || !strstr(e.msg, "fp16") ||
        !strstr(e.msg, "f32|bf16"))
        fail_msg("%s", e.msg);
    const char *full = "lora:\n  rank: 0\n  base_dtype: bf16\n";
    assert_int_equal(lrsa_train_config_parse(&c, full, strlen(full), "full.yaml", &e), 0);
    assert_int_equal(lrsa_train_config_validate(&c, "full.yaml", &e), -1);
    if (!strstr(e.msg, "full.yaml:3") || !strstr(e.msg, "lora.base_dtype") ||
        !strstr(e.msg, "lora.rank > 0") || !strstr(e.msg, "remove lora.base_dtype"))
        fail_msg("%s", e.msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_config_keys),
        cmocka_unit_test(test_lora_checkpoint_and_learning),
        cmocka_unit_test(test_lora_resume_errors),
        cmocka_unit_test(test_lora_export),
        cmocka_unit_test(test_lora_bf16_base),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
