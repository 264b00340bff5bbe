#include "ckpt_cli.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"
#include "train/checkpoint.h"
#include "train_fixture.h"

void cc_new_run(const char *tag, char dir[4096], char cfg[4200], char run_dir[4200],
                char ckpt_dir[4300]) {
    tu_tmpdir(dir, 4096, tag);
    tf_write_run(dir, "run", NULL, cfg, 4200);
    snprintf(run_dir, 4200, "%s/run", dir);
    snprintf(ckpt_dir, 4300, "%s/ckpt", run_dir);
}

int64_t cc_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

int cc_has_leftover(const char *ckpt_dir) {
    DIR *d = opendir(ckpt_dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d))) found |= strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    return found;
}

int cc_train(const char *env, const char *cfg, const char *args, char **out) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s %s train %s %s --quiet 2>&1", env ? env : "", LRSA_BINARY, cfg,
             args);
    return tu_run(cmd, out);
}

void cc_must_train(const char *cfg, const char *args) {
    char *out = NULL;
    int rc = cc_train(NULL, cfg, args, &out);
    if (rc != 0) fail_msg("lrsa train %s failed (%d): %s", args, rc, out ? out : "");
    free(out);
}

void cc_expect_in(const char *out, const char *what) {
    if (!out || !strstr(out, what)) fail_msg("expected '%s' in: %s", what, out ? out : "(none)");
}

void cc_expect_steps_once(const char *run_dir, int64_t last) {
    int64_t steps[64];
    double losses[64];
    int n = tf_read_losses(run_dir, steps, losses, 64);
    assert_int_equal(n, last);
    for (int i = 0; i < n; i++) assert_int_equal(steps[i], i + 1);
}

int64_t cc_probe_ckpt_size(const char *dir, const char *cfg) {
    char args[4400], probe[4400], probe_dir[4300];
    snprintf(args, sizeof args, "run_dir=%s/probe schedule.max_steps=1", dir);
    cc_must_train(cfg, args);
    snprintf(probe_dir, sizeof probe_dir, "%s/probe/ckpt", dir);
    lrsa_ckpt_path(probe, sizeof probe, probe_dir, 1);
    int64_t size = cc_file_size(probe);
    assert_true(size > 0);
    return size;
}
