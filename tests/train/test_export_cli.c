/* `lrsa export` on a checkpoint of the tiny model: the default precision is the checkpoint's
 * (float32 master weights, so the export reloads bit-identical) and the output says so; an
 * existing output directory is refused without --force and left as it was; --force replaces it
 * whole; `--dtype=bf16` (with '=') is read like `--dtype bf16`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "train/checkpoint.h"

/* A checkpoint of the tiny random model (configs/tiny/config.json), no tokenizer files. */
static void write_ckpt(const char *path, lrsa_model *m) {
    lrsa_err e;
    lrsa_model_config mc;
    const char *cfg = LRSA_SOURCE_DIR "/configs/tiny/config.json";
    if (lrsa_config_load(&mc, cfg, &e)) fail_msg("%s", e.msg);
    assert_int_equal(lrsa_model_create(m, &mc, &e), 0);
    lrsa_model_init_random(m, 7, 0.02f);
    char *json = lrsa_read_file(cfg, NULL, &e);
    assert_non_null(json);
    float *mom = lrsa_calloc((size_t)m->table.numel, sizeof(float));
    lrsa_ckpt_state st = {.step = 1, .world_size = 1};
    lrsa_ckpt_text text = {.config_yaml = "seed: 1\n", .model_config_json = json, .model_path = ""};
    if (lrsa_ckpt_write(path, &m->table, mom, mom, &st, &text, &e)) fail_msg("%s", e.msg);
    free(mom);
    free(json);
}

/* The dtype of the first tensor of DIR/model.safetensors. */
static lrsa_st_dtype exported_dtype(const char *dir) {
    char p[4200];
    lrsa_path_join(p, sizeof p, dir, "model.safetensors");
    lrsa_safetensors f;
    lrsa_err e;
    if (lrsa_st_open(&f, p, &e)) fail_msg("%s", e.msg);
    lrsa_st_dtype dt = f.tensors[0].dtype;
    lrsa_st_close(&f);
    return dt;
}

static void test_export_defaults_and_force(void **state) {
    (void)state;
    char dir[1024], ckpt[1100], out_dir[1100], cmd[4096];
    tu_tmpdir(dir, sizeof dir, "export_cli");
    snprintf(ckpt, sizeof ckpt, "%s/step_000001.h5", dir);
    snprintf(out_dir, sizeof out_dir, "%s/export", dir);
    lrsa_model m;
    write_ckpt(ckpt, &m);

    /* no --dtype: float32, bit-identical to the checkpoint, and the output says why */
    snprintf(cmd, sizeof cmd, "%s export %s %s 2>&1", LRSA_BINARY, ckpt, out_dir);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("export failed: %s", out ? out : "");
    if (!strstr(out, "f32") || !strstr(out, "master precision")) fail_msg("output: %s", out);
    free(out);
    assert_int_equal(exported_dtype(out_dir), LRSA_ST_F32);
    lrsa_model back;
    lrsa_err e;
    if (lrsa_model_load(&back, out_dir, &e)) fail_msg("%s", e.msg);
    assert_int_equal(back.table.numel, m.table.numel);
    assert_memory_equal(back.table.arena[LRSA_ROLE_PARAM], m.table.arena[LRSA_ROLE_PARAM],
                        sizeof(float) * (size_t)m.table.numel);
    lrsa_model_free(&back);

    /* the directory exists now: refused, and left untouched */
    char marker[1200];
    lrsa_path_join(marker, sizeof marker, out_dir, "mine.txt");
    assert_int_equal(lrsa_write_file_atomic(marker, "x", 1, &e), 0);
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype bf16 2>&1", LRSA_BINARY, ckpt, out_dir);
    assert_true(tu_run(cmd, &out) != 0);
    if (!strstr(out, out_dir) || !strstr(out, "--force")) fail_msg("output: %s", out);
    free(out);
    assert_true(lrsa_file_exists(marker));
    assert_int_equal(exported_dtype(out_dir), LRSA_ST_F32);

    /* --force (and --dtype=bf16 with '='): replaced as a whole, no temporary left beside it */
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype=bf16 --force 2>&1", LRSA_BINARY, ckpt,
             out_dir);
    if (tu_run(cmd, &out) != 0) fail_msg("export --force failed: %s", out ? out : "");
    free(out);
    assert_int_equal(exported_dtype(out_dir), LRSA_ST_BF16);
    assert_false(lrsa_file_exists(marker));
    snprintf(cmd, sizeof cmd, "ls %s | grep -c -e '\\.tmp\\.' -e '\\.old\\.'", dir);
    assert_int_equal(tu_run(cmd, &out) == 0 ? atoi(out) : 0, 0);
    free(out);
    lrsa_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_export_defaults_and_force)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
