/* `lrsa train`, `lrsa export` and `lrsa plot` as a user runs them: a SIGKILL in the middle of a
 * checkpoint write leaves the previous checkpoint and a resume that ends bit-identical to an
 * uninterrupted run; the export reloads with the trained weights; the plot is an SVG; a typo'd
 * config key fails with its line and writes nothing; the terminal shows one progress line per
 * step with step, loss, grad norm, lr, tokens/s and ETA. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "model/model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train_fixture.h"

static int has_tmp_ckpt(const char *ckpt_dir, const char *prefix) {
    DIR *d = opendir(ckpt_dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, prefix, strlen(prefix)) && strstr(de->d_name, ".tmp.")) found = 1;
    closedir(d);
    return found;
}

static void test_kill_during_checkpoint(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ckpt_dir[4300], path[4400], cmd[16384];
    tu_tmpdir(dir, sizeof dir, "kill");
    tf_write_run(dir, "run", "ckpt_every: 1\n", cfg, sizeof cfg);
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("LRSA_TEST_CKPT_SLEEP_STEP", "2", 1);
        setenv("LRSA_TEST_CKPT_SLEEP_S", "120", 1);
        execl(LRSA_BINARY, LRSA_BINARY, "train", cfg, "--quiet", (char *)NULL);
        _exit(127);
    }
    /* wait until the step-2 checkpoint is being written, then kill the trainer */
    int seen = 0;
    for (int i = 0; i < 1200 && !seen; i++) {
        seen = has_tmp_ckpt(ckpt_dir, "step_000002.h5");
        if (!seen) usleep(50000);
    }
    assert_true(seen);
    usleep(300000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    lrsa_ckpt_path(path, sizeof path, ckpt_dir, 2);
    assert_false(lrsa_file_exists(path));
    char latest[4400];
    assert_int_equal(lrsa_ckpt_find_latest(ckpt_dir, latest, sizeof latest), 1);
    lrsa_ckpt_path(path, sizeof path, ckpt_dir, 1);
    assert_string_equal(latest, path);
    /* resume finishes the run and cleans the leftover */
    snprintf(cmd, sizeof cmd, "%s train %s resume=true --quiet 2>&1", LRSA_BINARY, cfg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("resume failed (%d): %s", rc, out ? out : "");
    free(out);
    assert_false(has_tmp_ckpt(ckpt_dir, "step_"));
    /* the same run without interruption ends bit-identical */
    snprintf(cmd, sizeof cmd, "%s train %s run_dir=%s/straight --quiet 2>&1", LRSA_BINARY, cfg,
             dir);
    rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("straight run failed (%d): %s", rc, out ? out : "");
    free(out);
    char a[4400], b[4400], straight_ckpt[4300];
    lrsa_ckpt_path(a, sizeof a, ckpt_dir, 6);
    snprintf(straight_ckpt, sizeof straight_ckpt, "%s/straight/ckpt", dir);
    lrsa_ckpt_path(b, sizeof b, straight_ckpt, 6);
    assert_true(tf_ckpts_equal(a, b));

    /* export -> a HF directory that loads with exactly the checkpoint's weights */
    char out_dir[4300];
    snprintf(out_dir, sizeof out_dir, "%s/export", dir);
    snprintf(cmd, sizeof cmd, "%s export %s %s --dtype f32 2>&1", LRSA_BINARY, a, out_dir);
    rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("export failed (%d): %s", rc, out ? out : "");
    free(out);
    lrsa_model m1, m2;
    lrsa_err e;
    if (lrsa_model_load(&m1, out_dir, &e)) fail_msg("%s", e.msg);
    lrsa_model_config mc;
    if (lrsa_config_load(&mc, LRSA_SOURCE_DIR "/configs/tiny/config.json", &e))
        fail_msg("%s", e.msg);
    assert_int_equal(lrsa_model_create(&m2, &mc, &e), 0);
    if (lrsa_ckpt_read(a, &m2.table, 0, 0, NULL, NULL, NULL, &e)) fail_msg("%s", e.msg);
    assert_int_equal(m1.table.numel, m2.table.numel);
    assert_memory_equal(m1.table.arena[LRSA_ROLE_PARAM], m2.table.arena[LRSA_ROLE_PARAM],
                        sizeof(float) * (size_t)m1.table.numel);
    lrsa_model_free(&m1);
    lrsa_model_free(&m2);

    /* plot -> an SVG with the loss curve and a legend */
    char svg[4300];
    snprintf(svg, sizeof svg, "%s/curves.svg", dir);
    snprintf(cmd, sizeof cmd, "%s plot %s --out %s 2>&1", LRSA_BINARY, run_dir, svg);
    rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("plot failed (%d): %s", rc, out ? out : "");
    free(out);
    char *text = lrsa_read_file(svg, NULL, &e);
    assert_non_null(text);
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, "<polyline"));
    assert_non_null(strstr(text, "training loss"));
    assert_non_null(strstr(text, "</svg>"));
    free(text);
}

/* SIGTERM (a preempted job) stops the run after the current step with a checkpoint and exit
 * status 3; resume=true continues from the step after it. */
static void test_sigterm_checkpoints(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], ckpt_dir[4300], metrics[4300], cmd[16384];
    tu_tmpdir(dir, sizeof dir, "sigterm");
    tf_write_run(dir, "run", "ckpt_every: 0\n", cfg, sizeof cfg);
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(LRSA_BINARY, LRSA_BINARY, "train", cfg, "schedule.max_steps=1000000", "--quiet",
              (char *)NULL);
        _exit(127);
    }
    int started = 0;
    for (int i = 0; i < 1200 && !started; i++) {
        FILE *f = fopen(metrics, "r");
        if (f) {
            started = fgetc(f) != EOF;
            fclose(f);
        }
        if (!started) usleep(20000);
    }
    assert_true(started);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    char latest[4400], expect[4400];
    assert_int_equal(lrsa_ckpt_find_latest(ckpt_dir, latest, sizeof latest), 1);
    /* the checkpoint is of the last logged step (the run is cut within a few hundred steps) */
    int64_t *all = malloc(sizeof(int64_t) * 1000000);
    double *l = malloc(sizeof(double) * 1000000);
    int n = tf_read_losses(run_dir, all, l, 1000000);
    assert_true(n >= 1);
    int64_t last = all[n - 1];
    free(all);
    free(l);
    lrsa_ckpt_path(expect, sizeof expect, ckpt_dir, last);
    assert_string_equal(latest, expect);
    snprintf(cmd, sizeof cmd, "%s train %s resume=true schedule.max_steps=%lld --quiet 2>&1",
             LRSA_BINARY, cfg, (long long)last + 2);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("resume failed (%d): %s", rc, out ? out : "");
    free(out);
    lrsa_ckpt_path(expect, sizeof expect, ckpt_dir, last + 2);
    assert_true(lrsa_file_exists(expect));
}

static void test_cli_typo(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], cmd[16384];
    tu_tmpdir(dir, sizeof dir, "typo");
    tf_write_run(dir, "run", "optim_lr: 0.1\n", cfg, sizeof cfg);
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    snprintf(cmd, sizeof cmd, "%s train %s 2>&1", LRSA_BINARY, cfg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    assert_true(rc != 0);
    assert_non_null(out);
    if (!strstr(out, "optim_lr") || !strstr(out, "config.yaml:26"))
        fail_msg("unexpected message: %s", out);
    free(out);
    assert_int_equal(tf_count_entries(run_dir), -1);
    /* overrides are checked too */
    snprintf(cmd, sizeof cmd, "%s train %s optim.lr=abc 2>&1", LRSA_BINARY, cfg);
    rc = tu_run(cmd, &out);
    assert_true(rc != 0);
    free(out);
    snprintf(cmd, sizeof cmd, "%s train --help", LRSA_BINARY);
    rc = tu_run(cmd, &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "optim.weight_decay"));
    free(out);
}

/* One line per step on the terminal: "step N/MAX | loss L | gnorm G | lr R | X tok/s | ETA T",
 * with the loss equal to metrics.jsonl's and the ETA falling to 0 s at the last step. */
static void test_progress_lines(void **state) {
    (void)state;
    char dir[4096], cfg[4200], run_dir[4200], cmd[16384];
    tu_tmpdir(dir, sizeof dir, "progress");
    tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    snprintf(cmd, sizeof cmd, "%s train %s schedule.max_steps=4 ckpt_every=0 2>/dev/null",
             LRSA_BINARY, cfg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("lrsa train failed (%d): %s", rc, out ? out : "");
    int64_t steps[8];
    double losses[8];
    assert_int_equal(tf_read_losses(run_dir, steps, losses, 8), 4);
    int seen = 0;
    for (char *line = out; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "step ", 5) != 0) continue;
        long long step = 0, max = 0;
        double loss = 0, gnorm = 0, lr = 0, tps = 0;
        char eta[32] = "";
        int n =
            sscanf(line, "step %lld/%lld | loss %lf | gnorm %lf | lr %lf | %lf tok/s | ETA %31s",
                   &step, &max, &loss, &gnorm, &lr, &tps, eta);
        if (n != 7) fail_msg("malformed progress line (%d fields): %.200s", n, line);
        assert_int_equal(step, seen + 1);
        assert_int_equal(max, 4);
        assert_true(fabs(loss - losses[seen]) <= 1e-4 * fabs(losses[seen]) + 1e-4);
        assert_true(gnorm > 0 && lr > 0 && tps > 0);
        size_t el = strlen(eta);
        assert_true(el >= 2 && (eta[el - 1] == 's' || eta[el - 1] == 'm')); /* 12s, 3m04s, 1h02m */
        if (step == 4) assert_string_equal(eta, "0s");
        seen++;
    }
    assert_int_equal(seen, 4);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_lines),
        cmocka_unit_test(test_kill_during_checkpoint),
        cmocka_unit_test(test_sigterm_checkpoints),
        cmocka_unit_test(test_cli_typo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
