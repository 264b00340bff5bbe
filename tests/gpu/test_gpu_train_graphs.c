/* `lrsa train` with device: cuda and CUDA graphs (train/step_graphs.h, on by default) against the
 * same run without them, on the tiny copy task with two sample lengths (two graph shapes) and
 * 4 samples a step: every step's loss and the final checkpoint (weights and AdamW moments) are
 * bit for bit the same, with dense attention (graphs off by LRSA_CUDA_GRAPHS=0) and with LRSA
 * attention (LagKV selection inside the graph; off by the config key cuda_graphs=false); a run
 * stopped at a checkpoint and resumed with graphs gives the uninterrupted run's bits. In
 * emulation the runtime's graph-launch count also shows that the runs with graphs launched
 * graphs (most samples) and those without none (on a GPU the bits are what is checked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "base/fileio.h"
#include "kernels/device/device_buffer.h" /* the CUDA runtime API (the emulation's, in CI) */
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/train_fixture.h"
#include "train/trainer.h"

/* Graph launches so far: the emulated runtime counts them (tests/emulate); -1 on a GPU. */
static int64_t graph_launches(void) {
#ifdef LRSA_CUDA_EMULATION
    return (int64_t)lrsa_emu_graph_launch_count();
#else
    return -1;
#endif
}

static lrsa_comm single = {.world = 1};
static int failures = 0;
static char dir[4096], cfg[4200], model_cfg[4200];

static void check(int ok, const char *what) {
    printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

/* Trains RUN_DIR dir/name with the overrides; returns the graph launches it made (-1: unknown). */
static int64_t run(const char *name, const char *const *extra, int64_t stop_after) {
    char run_arg[4400];
    snprintf(run_arg, sizeof run_arg, "run_dir=%s/%s", dir, name);
    const char *ov[16] = {model_cfg, "device=cuda", "model.dtype=bf16", "data.tokens_per_batch=116",
                          run_arg};
    int n = 5;
    for (int i = 0; extra[i]; i++) ov[n++] = extra[i];
    ov[n] = NULL;
    lrsa_train_config c;
    tf_load_config(&c, cfg, ov);
    lrsa_train_opts o = {stop_after, 1};
    lrsa_err e = {{0}};
    int64_t before = graph_launches();
    if (lrsa_train_run(&c, &o, &single, &e) < 0) {
        printf("FAIL training %s: %s\n", name, e.msg);
        exit(1);
    }
    int64_t launched = before < 0 ? -1 : graph_launches() - before;
    printf("     %s: %lld graph launch(es)\n", name, (long long)launched);
    return launched;
}

/* What the emulation can say about a run's graph launches (nothing on a GPU). */
static void launches_are(int64_t got, int want_some, const char *what) {
    if (got >= 0) check(want_some ? got > 0 : got == 0, what);
}

/* Steps 1..steps of two runs have bitwise equal losses and the checkpoints at `steps` are equal. */
static void same_bits(const char *what, const char *a, const char *b, int steps) {
    char ra[4300], rb[4300], ca[4400], cb[4400];
    snprintf(ra, sizeof ra, "%s/%s", dir, a);
    snprintf(rb, sizeof rb, "%s/%s", dir, b);
    int64_t sa[16], sb[16];
    double la[16], lb[16];
    int na = tf_read_losses(ra, sa, la, 16), nb = tf_read_losses(rb, sb, lb, 16);
    int ok = na == steps && nb == steps;
    for (int i = 0; ok && i < na; i++) {
        ok = sa[i] == sb[i] && la[i] == lb[i];
        if (!ok)
            printf("     step %lld: loss %.17g (%s) vs %.17g (%s)\n", (long long)sa[i], la[i], a,
                   lb[i], b);
    }
    char what_l[512];
    snprintf(what_l, sizeof what_l, "%s: the losses of steps 1..%d are bit for bit equal", what,
             steps);
    check(ok, what_l);
    snprintf(ra + strlen(ra), sizeof ra - strlen(ra), "/ckpt");
    snprintf(rb + strlen(rb), sizeof rb - strlen(rb), "/ckpt");
    lrsa_ckpt_path(ca, sizeof ca, ra, steps);
    lrsa_ckpt_path(cb, sizeof cb, rb, steps);
    snprintf(what_l, sizeof what_l, "%s: the step-%d checkpoints are bit for bit equal", what,
             steps);
    check(lrsa_file_exists(ca) && lrsa_file_exists(cb) && tf_ckpts_equal(ca, cb), what_l);
}

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    tu_tmpdir(dir, sizeof dir, "gpu_graphs");
    char train[4200];
    lrsa_path_join(train, sizeof train, dir, "train.h5");
    tf_write_dataset(train, 24, 28, 29, 5); /* lengths 28 and 29: two shapes */
    tf_write_run(dir, "unused", NULL, cfg, sizeof cfg);
    snprintf(model_cfg, sizeof model_cfg, "model.config=%s/configs/tiny/config-d64.json",
             LRSA_SOURCE_DIR);
    /* tokens_per_batch 116: 4 samples of 28 or 29 tokens a step, so each shape repeats */
    const char *dense[] = {"attention.mode=dense", "schedule.max_steps=4", NULL};
    int64_t on = run("dense_graphs", dense, 0);
    setenv("LRSA_CUDA_GRAPHS", "0", 1);
    int64_t off = run("dense_plain", dense, 0);
    unsetenv("LRSA_CUDA_GRAPHS");
    if (on >= 0) check(on >= 10, "with graphs, most of the 16 samples were graph launches");
    launches_are(off, 0, "LRSA_CUDA_GRAPHS=0: no graph launch");
    same_bits("dense, graphs vs none", "dense_graphs", "dense_plain", 4);

    /* stopped after step 2 (checkpoint), resumed to 4, graphs on in both processes */
    const char *resume[] = {"attention.mode=dense", "schedule.max_steps=4", "resume=true", NULL};
    run("dense_resumed", dense, 2);
    launches_are(run("dense_resumed", resume, 0), 1, "the resumed run launched graphs too");
    same_bits("resumed with graphs vs uninterrupted", "dense_resumed", "dense_graphs", 4);

    const char *lrsa_on[] = {"attention.mode=lrsa", "schedule.max_steps=3", NULL};
    const char *lrsa_off[] = {"attention.mode=lrsa", "schedule.max_steps=3", "cuda_graphs=false",
                              NULL};
    launches_are(run("lrsa_graphs", lrsa_on, 0), 1, "LRSA: graph launches with graphs");
    launches_are(run("lrsa_plain", lrsa_off, 0), 0, "LRSA, cuda_graphs=false: no graph launch");
    same_bits("LRSA, graphs vs none", "lrsa_graphs", "lrsa_plain", 3);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
