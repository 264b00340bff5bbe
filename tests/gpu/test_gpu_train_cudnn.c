/* `lrsa train` with device: cuda and attention.impl: cudnn (cuDNN's fused attention in the CUDA
 * op table) against device: cpu on the tiny copy-task run of the trainer tests (head dim 64):
 * the per-step losses agree within 5e-3, the tolerance test_gpu_train holds our kernel to.
 * Exits 77 without a GPU or without cuDNN. Never run on a GPU by the sessions that wrote it. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/device/device.h"

#if !defined(LRSA_HAVE_CUDA) || !defined(LRSA_HAVE_CUDNN)
int main(void) {
    printf("skipped: built without CUDA and cuDNN\n");
    return 77;
}
#else
#include "base/fileio.h"
#include "test_util.h"
#include "train/train_fixture.h"
#include "train/trainer.h"

static void must_run(const char *config, const char *const *overrides) {
    static lrsa_comm single = {.world = 1};
    lrsa_train_config c;
    tf_load_config(&c, config, overrides);
    lrsa_train_opts o = {0, 1};
    lrsa_err e = {{0}};
    if (lrsa_train_run(&c, &o, &single, &e) < 0) {
        printf("FAIL training: %s\n", e.msg);
        exit(1);
    }
}

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    char dir[4096], cfg[4200], model_cfg[4200], cpu_dir[4300], gpu_dir[4300];
    char cpu_arg[4400], gpu_arg[4400];
    tu_tmpdir(dir, sizeof dir, "gpu_train_cudnn");
    tf_write_run(dir, "unused", NULL, cfg, sizeof cfg);
    snprintf(model_cfg, sizeof model_cfg, "model.config=%s/configs/tiny/config-d64.json",
             LRSA_SOURCE_DIR);
    lrsa_path_join(cpu_dir, sizeof cpu_dir, dir, "cpu");
    lrsa_path_join(gpu_dir, sizeof gpu_dir, dir, "cudnn");
    snprintf(cpu_arg, sizeof cpu_arg, "run_dir=%s", cpu_dir);
    snprintf(gpu_arg, sizeof gpu_arg, "run_dir=%s", gpu_dir);
    const char *cpu_run[] = {model_cfg, "attention.mode=dense", cpu_arg, NULL};
    const char *gpu_run[] = {model_cfg,     "attention.mode=dense", "attention.impl=cudnn",
                             "device=cuda", "model.dtype=bf16",     gpu_arg,
                             NULL};
    must_run(cfg, cpu_run);
    must_run(cfg, gpu_run);
    int ok = tf_compare_losses("dense, attention.impl: cudnn on cuda vs cpu", gpu_dir, cpu_dir, 1,
                               6, 5e-3);
    return ok ? 0 : 1;
}
#endif
