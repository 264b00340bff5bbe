/* A full disk while a checkpoint is written, two ways:
 *  - an LD_PRELOAD shim (enospc_shim.c) that fails the checkpoint's writes with ENOSPC after a
 *    given number of bytes, found while writing (the file system claimed room) or before (it
 *    reports how little there is), and swept over every point of the write;
 *  - a real small tmpfs, mounted in a private mount namespace (`unshare -m`, needs root).
 * Either way: exit status 1 (no crash), "No space left on device", the file and the size
 * needed; no temporary file; the earlier checkpoint intact; the run resumes once there is
 * room. Each way is skipped where it cannot be set up; exit status 77 (skipped) when
 * neither can. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "ckpt_cli.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train_fixture.h"

static int g_shim_works, g_tmpfs_works;

/* `lrsa train` with the ENOSPC shim preloaded and room for `room` bytes of checkpoints. */
static int train_with_room(const char *cfg, int64_t room, int statvfs_too, const char *args,
                           char **out) {
    char env[8192];
    const char *asan = getenv("ASAN_OPTIONS");
    /* ASan must accept a library preloaded before its runtime */
    snprintf(env, sizeof env,
             "ASAN_OPTIONS='%s%sverify_asan_link_order=0' LD_PRELOAD=%s "
             "LRSA_TEST_ENOSPC_AFTER=%lld LRSA_TEST_ENOSPC_STATVFS=%d",
             asan ? asan : "", asan && *asan ? ":" : "", LRSA_ENOSPC_SHIM, (long long)room,
             statvfs_too);
    return cc_train(env, cfg, args, out);
}

/* A full disk at the step-4 checkpoint (after step 2's was written): once discovered while
 * writing (the file system claimed room), once before writing (it reports how little there
 * is). Either way: exit status 1 (no crash), the reason, the file, the size; no temporary file;
 * step 2 intact; the run resumes once there is room. */
static void test_disk_full(void **state) {
    (void)state;
    if (!g_shim_works) skip();
    char dir[4096], cfg[4200], ckpt_dir[4300], c2[4400], c4[4400], args[8192];
    tu_tmpdir(dir, sizeof dir, "ckpt_enospc");
    tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
    int64_t size = cc_probe_ckpt_size(dir, cfg); /* one checkpoint of this model */
    const char *where[] = {"writing dataset /", "checked before writing"};
    for (int statvfs_too = 0; statvfs_too < 2; statvfs_too++) {
        char run_dir[4300];
        snprintf(run_dir, sizeof run_dir, "%s/run%d", dir, statvfs_too);
        snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
        snprintf(args, sizeof args, "run_dir=%s schedule.max_steps=4 ckpt_every=2 keep_ckpts=3",
                 run_dir);
        char *out = NULL;
        /* room for one checkpoint and a half */
        int rc = train_with_room(cfg, size + size / 2, statvfs_too, args, &out);
        if (rc != 1) fail_msg("exit status %d (expected 1): %s", rc, out ? out : "");
        cc_expect_in(out, "No space left on device");
        cc_expect_in(out, "step_000004.h5");
        cc_expect_in(out, "needs about");
        cc_expect_in(out, where[statvfs_too]);
        free(out);
        assert_false(cc_has_leftover(ckpt_dir));
        lrsa_ckpt_path(c2, sizeof c2, ckpt_dir, 2);
        lrsa_ckpt_path(c4, sizeof c4, ckpt_dir, 4);
        assert_false(lrsa_file_exists(c4));
        lrsa_err e;
        if (lrsa_ckpt_verify(c2, 0, &e)) fail_msg("%s", e.msg);
        /* with space again, the run continues from step 2 */
        snprintf(args + strlen(args), sizeof args - strlen(args), " resume=true");
        cc_must_train(cfg, args);
        if (lrsa_ckpt_verify(c4, 0, &e)) fail_msg("%s", e.msg);
        cc_expect_steps_once(run_dir, 4);
    }
}

/* Whatever byte the disk fills at, the run stops with status 1 and a message, and leaves no
 * temporary file: a sweep over the whole first checkpoint write (HDF5 1.10 crashed at exit
 * when its final flush failed, before the descriptor was redirected). */
static void test_disk_full_anywhere(void **state) {
    (void)state;
    if (!g_shim_works) skip();
    char dir[4096], cfg[4200], args[8192];
    tu_tmpdir(dir, sizeof dir, "ckpt_enospc_sweep");
    tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
    int64_t size = cc_probe_ckpt_size(dir, cfg);
    /* every 16th of the file, then finer over its last 5 % (the metadata HDF5 writes when it
     * flushes; the very last bytes are never all written, so the sweep stops short of them) */
    for (int k = 0; k < 21; k++) {
        int64_t room = k < 16 ? size * k / 16 : size - size * (21 - k) / 100;
        char run_dir[4300], ckpt_dir[4400];
        snprintf(run_dir, sizeof run_dir, "%s/sweep%d", dir, k);
        snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
        snprintf(args, sizeof args, "run_dir=%s schedule.max_steps=1", run_dir);
        char *out = NULL;
        int rc = train_with_room(cfg, room, 0, args, &out);
        if (rc != 1 || !strstr(out, "No space left on device"))
            fail_msg("room %lld of %lld: exit status %d: %s", (long long)room, (long long)size, rc,
                     out ? out : "");
        free(out);
        assert_false(cc_has_leftover(ckpt_dir));
        assert_int_equal(lrsa_ckpt_count(ckpt_dir), 0);
    }
}

/* A tmpfs with room for one checkpoint and a half, mounted in a private mount namespace (it
 * vanishes with the shell): step 2's checkpoint fits, step 4's does not, which the real
 * file system's free space shows before anything is written. The shell copies out what the
 * test checks afterwards. */
static void test_disk_full_tmpfs(void **state) {
    (void)state;
    if (!g_tmpfs_works) skip();
    char dir[4096], cfg[4200], mnt[4200], saved[4200], out_path[4300], list[4300];
    char script[16384];
    tu_tmpdir(dir, sizeof dir, "ckpt_tmpfs");
    tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
    int64_t size = cc_probe_ckpt_size(dir, cfg);
    int64_t room = (size + size / 2 + 4095) / 4096 * 4096;
    snprintf(mnt, sizeof mnt, "%s/mnt", dir);
    snprintf(saved, sizeof saved, "%s/saved", dir);
    snprintf(out_path, sizeof out_path, "%s/train.out", dir);
    snprintf(list, sizeof list, "%s/ckpt.list", dir);
    lrsa_err e;
    assert_int_equal(lrsa_mkdirs(mnt, &e), 0);
    assert_int_equal(lrsa_mkdirs(saved, &e), 0);
    snprintf(script, sizeof script,
             "unshare -m --propagation private sh -c 'mount -t tmpfs -o size=%lld tmpfs %s || "
             "exit 99; %s train %s run_dir=%s/run schedule.max_steps=4 ckpt_every=2 "
             "keep_ckpts=3 --quiet > %s 2>&1; echo \"exit status $?\" >> %s; ls -a %s/run/ckpt "
             "> %s; cp %s/run/ckpt/step_000002.h5 %s/run/metrics.jsonl %s/' 2>&1",
             (long long)room, mnt, LRSA_BINARY, cfg, mnt, out_path, out_path, mnt, list, mnt, mnt,
             saved);
    char *shell_out = NULL;
    int rc = tu_run(script, &shell_out);
    if (rc != 0) fail_msg("the tmpfs script failed (%d): %s", rc, shell_out ? shell_out : "");
    free(shell_out);
    char *out = lrsa_read_file(out_path, NULL, &e), *ls = lrsa_read_file(list, NULL, &e);
    assert_non_null(out);
    assert_non_null(ls);
    cc_expect_in(out, "exit status 1");
    cc_expect_in(out, "No space left on device");
    cc_expect_in(out, "step_000004.h5");
    cc_expect_in(out, "needs about");
    cc_expect_in(out, "checked before writing");
    cc_expect_in(ls, "step_000002.h5");
    if (strstr(ls, "step_000004") || strstr(ls, ".tmp."))
        fail_msg("the full tmpfs holds more than step 2's checkpoint: %s", ls);
    free(out);
    free(ls);
    char c2[4300];
    snprintf(c2, sizeof c2, "%s/step_000002.h5", saved);
    if (lrsa_ckpt_verify(c2, 0, &e)) fail_msg("%s", e.msg);
}

/* Whether the shim makes a write fail here (it cannot where programs are linked statically or
 * preloading is disabled). */
static int shim_works(const char *dir) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "LD_PRELOAD=%s LRSA_TEST_ENOSPC_MATCH=shim_probe LRSA_TEST_ENOSPC_AFTER=0 sh -c "
             "'printf x > %s/shim_probe' 2>/dev/null",
             LRSA_ENOSPC_SHIM, dir);
    return tu_run(cmd, NULL) != 0;
}

/* Whether a tmpfs can be mounted in a private mount namespace (root, or a container that
 * allows it). */
static int tmpfs_works(const char *dir) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "unshare -m --propagation private sh -c 'mount -t tmpfs -o size=64k tmpfs %s' "
             ">/dev/null 2>&1",
             dir);
    return tu_run(cmd, NULL) == 0;
}

int main(void) {
    char dir[4096];
    tu_tmpdir(dir, sizeof dir, "ckpt_disk_probe");
    g_shim_works = shim_works(dir);
    g_tmpfs_works = tmpfs_works(dir);
    if (!g_shim_works && !g_tmpfs_works) {
        fprintf(stderr, "test_ckpt_disk_full: skipped: neither the LD_PRELOAD shim nor a tmpfs "
                        "mount (needs root) works here\n");
        return 77;
    }
    if (!g_shim_works)
        fprintf(stderr, "test_ckpt_disk_full: the LD_PRELOAD shim has no effect "
                        "here; its tests are skipped\n");
    if (!g_tmpfs_works)
        fprintf(stderr, "test_ckpt_disk_full: cannot mount a tmpfs (needs root); "
                        "its test is skipped\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_disk_full_anywhere),
        cmocka_unit_test(test_disk_full_tmpfs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
