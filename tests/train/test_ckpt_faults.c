/* Checkpoints under faults, as a user meets them through `lrsa train` and `lrsa export`:
 *  - the only checkpoint truncated: resume=true stops with an error naming it and changes
 *    nothing; resume=restart starts over, deletes it and starts metrics.jsonl afresh;
 *  - the newest checkpoint overwritten in place (4 KB of garbage in the middle, same size): its
 *    checksum fails, export refuses it (naming file and dataset, leaving no output directory),
 *    resume=true warns naming both files and resumes from the older one, ending bit-identical
 *    to an uninterrupted run;
 *  - the cleanup keeps readable checkpoints over newer unreadable files;
 *  - damage to one dataset is reported with that dataset's name; a checkpoint without
 *    checksums (as older versions wrote) still loads, with a note;
 *  - an exported directory's files are checked against its manifest on load.
 * A full disk: test_ckpt_disk_full. */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "ckpt_cli.h"
#include "model/model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train_fixture.h"

/* Overwrites n bytes at offset with a fixed garbage pattern, keeping the size. */
static void scribble(const char *path, int64_t offset, int n) {
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char *junk = malloc((size_t)n);
    for (int i = 0; i < n; i++) junk[i] = (char)(0x5a ^ (i * 131));
    assert_int_equal(pwrite(fd, junk, (size_t)n, (off_t)offset), n);
    close(fd);
    free(junk);
}

static void test_truncated_only_checkpoint(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ckpt_dir[4300], ckpt[4400], metrics[4300];
    cc_new_run("ckpt_trunc", dir, cfg, run_dir, ckpt_dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run_dir);
    cc_must_train(cfg, "schedule.max_steps=3 ckpt_every=1 keep_ckpts=1");
    lrsa_ckpt_path(ckpt, sizeof ckpt, ckpt_dir, 3);
    int64_t size = cc_file_size(ckpt);
    assert_true(size > 0);
    assert_int_equal(truncate(ckpt, size / 2), 0);
    lrsa_err e;
    char *before = lrsa_read_file(metrics, NULL, &e);
    assert_non_null(before);

    /* resume=true: an error naming the file and the way out; nothing changes */
    char *out = NULL;
    int rc =
        cc_train(NULL, cfg, "resume=true schedule.max_steps=5 ckpt_every=1 keep_ckpts=1", &out);
    assert_true(rc != 0);
    cc_expect_in(out, "step_000003.h5");
    cc_expect_in(out, "resume=restart");
    free(out);
    assert_int_equal(cc_file_size(ckpt), size / 2);
    assert_int_equal(tf_count_entries(ckpt_dir), 1);
    char *after = lrsa_read_file(metrics, NULL, &e);
    assert_non_null(after);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* resume=restart: starts over; the damaged file is gone, the new ones are kept, and
     * metrics.jsonl holds this run only */
    cc_must_train(cfg, "resume=restart schedule.max_steps=5 ckpt_every=1 keep_ckpts=1");
    char latest[4400], expect[4400];
    assert_int_equal(lrsa_ckpt_find_latest(ckpt_dir, latest, sizeof latest), 1);
    lrsa_ckpt_path(expect, sizeof expect, ckpt_dir, 5);
    assert_string_equal(latest, expect);
    assert_int_equal(tf_count_entries(ckpt_dir), 1);
    if (lrsa_ckpt_verify(latest, 0, &e)) fail_msg("%s", e.msg);
    cc_expect_steps_once(run_dir, 5);
}

static void test_overwritten_newest_checkpoint(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ckpt_dir[4300], c3[4400], c4[4400], cmd[16384];
    cc_new_run("ckpt_scribble", dir, cfg, run_dir, ckpt_dir);
    /* the 6-step schedule, stopped after step 4 (the learning rate depends on max_steps) */
    cc_must_train(cfg, "schedule.max_steps=6 ckpt_every=1 keep_ckpts=2 --stop-after 4");
    lrsa_ckpt_path(c3, sizeof c3, ckpt_dir, 3);
    lrsa_ckpt_path(c4, sizeof c4, ckpt_dir, 4);
    int64_t size = cc_file_size(c4);
    scribble(c4, size / 2, 4096);
    assert_int_equal(cc_file_size(c4), size);

    /* export fails naming the file and the damaged dataset, and writes nothing */
    char out_dir[4300];
    snprintf(out_dir, sizeof out_dir, "%s/export", dir);
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype f32 2>&1", LRSA_BINARY, c4, out_dir);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    assert_true(rc != 0);
    cc_expect_in(out, "step_000004.h5");
    cc_expect_in(out, "dataset /");
    cc_expect_in(out, "checksum");
    free(out);
    assert_false(lrsa_file_exists(out_dir));

    /* resume=true: a warning naming both files, then on from step 3 */
    rc = cc_train(NULL, cfg, "resume=true schedule.max_steps=6 ckpt_every=1 keep_ckpts=2", &out);
    if (rc != 0) fail_msg("resume failed (%d): %s", rc, out ? out : "");
    cc_expect_in(out, "step_000004.h5");
    cc_expect_in(out, "step_000003.h5");
    free(out);
    char aside[4500];
    snprintf(aside, sizeof aside, "%s.unreadable", c4);
    assert_true(lrsa_file_exists(aside));
    cc_expect_steps_once(run_dir, 6);
    /* ... and ends exactly where an uninterrupted run ends */
    snprintf(cmd, sizeof cmd, "run_dir=%s/straight schedule.max_steps=6", dir);
    cc_must_train(cfg, cmd);
    char a[4400], b[4400], straight[4300];
    snprintf(straight, sizeof straight, "%s/straight/ckpt", dir);
    lrsa_ckpt_path(a, sizeof a, ckpt_dir, 6);
    lrsa_ckpt_path(b, sizeof b, straight, 6);
    assert_true(tf_ckpts_equal(a, b));
    lrsa_err e;
    if (lrsa_ckpt_verify(a, 0, &e)) fail_msg("%s", e.msg);
}

/* The cleanup counts only checkpoints that open: a newer unreadable file never pushes a good
 * checkpoint out, and is itself left alone. */
static void test_prune_keeps_readable(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ckpt_dir[4300], good[4400], bad[4400];
    cc_new_run("ckpt_prune", dir, cfg, run_dir, ckpt_dir);
    cc_must_train(cfg, "schedule.max_steps=2 ckpt_every=1 keep_ckpts=1");
    lrsa_ckpt_path(good, sizeof good, ckpt_dir, 2);
    lrsa_ckpt_path(bad, sizeof bad, ckpt_dir, 9);
    lrsa_err e;
    assert_int_equal(lrsa_write_file_atomic(bad, "not a checkpoint", 16, &e), 0);
    lrsa_ckpt_prune(ckpt_dir, 1);
    assert_true(lrsa_file_exists(good));
    assert_true(lrsa_file_exists(bad));
    assert_int_equal(lrsa_ckpt_count(ckpt_dir), 2);
}

/* The address of a chunked dataset's first chunk in the file. */
static int64_t first_chunk_offset(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t space = H5Dget_space(ds);
    hsize_t off[8];
    unsigned mask;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    assert_true(H5Dget_chunk_info(ds, space, 0, off, &mask, &addr, &size) >= 0);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
    assert_true(addr != HADDR_UNDEF && size > 16);
    return (int64_t)addr;
}

static void copy(const char *from, const char *to) {
    lrsa_err e;
    size_t n;
    char *buf = lrsa_read_file(from, &n, &e);
    assert_non_null(buf);
    assert_int_equal(lrsa_write_file_atomic(to, buf, n, &e), 0);
    free(buf);
}

static void test_damage_names_dataset(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ckpt_dir[4300], ckpt[4400], dmg[4400];
    cc_new_run("ckpt_dataset", dir, cfg, run_dir, ckpt_dir);
    cc_must_train(cfg, "schedule.max_steps=1");
    lrsa_ckpt_path(ckpt, sizeof ckpt, ckpt_dir, 1);
    lrsa_err e;
    if (lrsa_ckpt_verify(ckpt, 0, &e)) fail_msg("%s", e.msg);
    const char *names[] = {"/param/model.norm.weight", "/param/model.layers.1.mlp.up_proj.weight",
                           "/adam_v"};
    for (int i = 0; i < 3; i++) {
        snprintf(dmg, sizeof dmg, "%s/damaged_%d.h5", dir, i);
        copy(ckpt, dmg);
        scribble(dmg, first_chunk_offset(dmg, names[i]) + 8, 8);
        assert_int_equal(lrsa_ckpt_verify(dmg, 0, &e), -1);
        if (!strstr(e.msg, dmg) || !strstr(e.msg, names[i]) || !strstr(e.msg, "checksum"))
            fail_msg("damage to %s reported as: %s", names[i], e.msg);
    }
    /* reading the weights of a file with damaged weights fails the same way */
    lrsa_model m;
    lrsa_model_config mc;
    if (lrsa_config_load(&mc, LRSA_SOURCE_DIR "/configs/tiny/config.json", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(lrsa_model_create(&m, &mc, &e), 0);
    snprintf(dmg, sizeof dmg, "%s/damaged_0.h5", dir);
    assert_int_equal(lrsa_ckpt_read(dmg, &m.table, 0, 0, NULL, NULL, NULL, &e), -1);
    if (!strstr(e.msg, "/param/model.norm.weight") || !strstr(e.msg, "checksum"))
        fail_msg("unexpected message: %s", e.msg);
    lrsa_model_free(&m);

    /* the same checkpoint as older versions wrote it (contiguous, no checksums) still loads
     * and exports, with a note */
    char old[4400], out_dir[4400], cmd[16384];
    snprintf(old, sizeof old, "%s/old.h5", dir);
    snprintf(cmd, sizeof cmd, "h5repack -f NONE -l CONTI %s %s 2>&1", ckpt, old);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) {
        free(out);
        skip(); /* hdf5-tools (h5repack) missing */
    }
    free(out);
    snprintf(out_dir, sizeof out_dir, "%s/old_export", dir);
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype f32 2>&1", LRSA_BINARY, old, out_dir);
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("export of a checkpoint without checksums failed: %s", out);
    cc_expect_in(out, "without checksums");
    free(out);
}

/* An exported directory carries lrsa-manifest.json (each file's size and checksum); loading it
 * finds a weights file overwritten in place or a config.json changed in length, naming the
 * file; without the manifest (deleted on purpose) it loads as before. */
static void test_export_manifest(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ckpt_dir[4300], ckpt[4400], out_dir[4300];
    char cmd[16384];
    cc_new_run("ckpt_manifest", dir, cfg, run_dir, ckpt_dir);
    cc_must_train(cfg, "schedule.max_steps=1");
    lrsa_ckpt_path(ckpt, sizeof ckpt, ckpt_dir, 1);
    snprintf(out_dir, sizeof out_dir, "%s/export", dir);
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype f32 2>&1", LRSA_BINARY, ckpt, out_dir);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("export failed: %s", out ? out : "");
    free(out);
    char weights[4400], config[4400], manifest[4400];
    lrsa_path_join(weights, sizeof weights, out_dir, "model.safetensors");
    lrsa_path_join(config, sizeof config, out_dir, "config.json");
    lrsa_path_join(manifest, sizeof manifest, out_dir, "lrsa-manifest.json");
    assert_true(lrsa_file_exists(manifest));
    lrsa_model m;
    lrsa_err e;
    if (lrsa_model_load(&m, out_dir, &e)) fail_msg("%s", e.msg);
    lrsa_model_free(&m);

    /* 4 KB of the weights overwritten in place */
    int64_t size = cc_file_size(weights);
    scribble(weights, size / 2, 4096);
    assert_int_equal(cc_file_size(weights), size);
    assert_int_equal(lrsa_model_load(&m, out_dir, &e), -1);
    if (!strstr(e.msg, weights) || !strstr(e.msg, "checksum") || !strstr(e.msg, "lrsa export"))
        fail_msg("overwritten weights reported as: %s", e.msg);
    /* lrsa eval stops there too */
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/eval.h5 --metrics nll 2>&1",
             LRSA_BINARY, out_dir, dir);
    assert_true(tu_run(cmd, &out) != 0);
    cc_expect_in(out, "model.safetensors fails its checksum");
    free(out);

    /* the manifest deleted: the user's choice, the directory loads unchecked */
    assert_int_equal(unlink(manifest), 0);
    if (lrsa_model_load(&m, out_dir, &e)) fail_msg("%s", e.msg);
    lrsa_model_free(&m);

    /* a fresh export (over the old directory: --force), then config.json one byte longer */
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype f32 --force 2>&1", LRSA_BINARY, ckpt,
             out_dir);
    if (tu_run(cmd, &out) != 0) fail_msg("export failed: %s", out ? out : "");
    free(out);
    size_t n;
    char *text = lrsa_read_file(config, &n, &e);
    assert_non_null(text);
    text = realloc(text, n + 1);
    text[n] = '\n';
    assert_int_equal(lrsa_write_file_atomic(config, text, n + 1, &e), 0);
    free(text);
    assert_int_equal(lrsa_model_load(&m, out_dir, &e), -1);
    if (!strstr(e.msg, config) || !strstr(e.msg, "bytes"))
        fail_msg("a longer config.json reported as: %s", e.msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_only_checkpoint),
        cmocka_unit_test(test_overwritten_newest_checkpoint),
        cmocka_unit_test(test_prune_keeps_readable),
        cmocka_unit_test(test_damage_names_dataset),
        cmocka_unit_test(test_export_manifest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
