/* `lrsa train ... device=cuda` where it cannot run says why, before writing anything: a build
 * without CUDA says the build has no CUDA; a CUDA build on a machine without a GPU says there is
 * no CUDA device (the runtime's reason). Neither claims the feature is missing. On a machine
 * with a GPU the case is skipped (test_gpu_train trains there). LoRA with device: cuda is refused
 * when the config is validated, on any machine, naming the file, line and key; so is a LoRA base
 * stored in bf16 (lora.base_dtype). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/fileio.h"
#include "kernels/device/device.h"
#include "test_util.h"
#include "train_fixture.h"

static void test_device_cuda_message(void **state) {
    (void)state;
    if (lrsa_cuda_built() && lrsa_cuda_device_count() > 0) skip();
    char dir[4096], cfg[4200], cmd[16384], run_dir[4300];
    tu_tmpdir(dir, sizeof dir, "device_cuda");
    tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
    snprintf(cmd, sizeof cmd, "%s train %s device=cuda model.dtype=bf16 --quiet 2>&1", LRSA_BINARY,
             cfg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    printf("%s", out ? out : "");
    assert_int_not_equal(rc, 0);
    assert_non_null(out);
    if (!lrsa_cuda_built())
        assert_non_null(strstr(out, "device: cuda: this lrsa was built without CUDA"));
    else
        assert_non_null(strstr(out, "device: cuda: no CUDA device"));
    assert_null(strstr(out, "not wired"));
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    assert_false(lrsa_file_exists(run_dir)); /* nothing written */
    free(out);
}

/* lora.rank set in the file (its line named) or on the command line, device: cuda in the other. */
static void test_lora_cuda_refused(void **state) {
    (void)state;
    char dir[4096], cfg[4200], cmd[16384], run_dir[4300];
    tu_tmpdir(dir, sizeof dir, "lora_cuda");
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    const char *const why = "key 'lora.rank' is set with device: cuda, and lora is CPU-only for "
                            "now: set device: cpu or remove lora";
    for (int in_file = 0; in_file < 2; in_file++) {
        tf_write_run(dir, "run", in_file ? "lora:\n  rank: 4\n" : "device: cuda\n", cfg,
                     sizeof cfg);
        snprintf(cmd, sizeof cmd, "%s train %s %s model.dtype=bf16 --quiet 2>&1", LRSA_BINARY, cfg,
                 in_file ? "device=cuda" : "lora.rank=4");
        char *out = NULL;
        int rc = tu_run(cmd, &out);
        printf("%s", out ? out : "");
        assert_int_not_equal(rc, 0);
        assert_non_null(out);
        assert_non_null(strstr(out, why));
        if (in_file) {
            char where[4300];
            snprintf(where, sizeof where, "%s:", cfg);
            assert_non_null(strstr(out, where)); /* FILE:LINE */
        } else {
            assert_non_null(strstr(out, "command line: key 'lora.rank'"));
        }
        assert_false(lrsa_file_exists(run_dir)); /* nothing written */
        free(out);
    }
}

/* lora.base_dtype: bf16 with device: cuda: refused naming the file, the line of base_dtype and the
 * key (before the lora.rank refusal, so the message is about the key that brought the bf16 store).
 */
static void test_lora_bf16_cuda_refused(void **state) {
    (void)state;
    char dir[4096], cfg[4200], cmd[16384], run_dir[4300], where[4300];
    tu_tmpdir(dir, sizeof dir, "lora_bf16_cuda");
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    tf_write_run(dir, "run", "lora:\n  rank: 4\n  base_dtype: bf16\n", cfg, sizeof cfg);
    snprintf(cmd, sizeof cmd, "%s train %s device=cuda model.dtype=bf16 --quiet 2>&1", LRSA_BINARY,
             cfg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    printf("%s", out ? out : "");
    assert_int_not_equal(rc, 0);
    assert_non_null(out);
    /* tf_write_run's fixed part is 25 lines: base_dtype is the third line of the extra text */
    snprintf(where, sizeof where, "%s:28: key 'lora.base_dtype' is bf16 with device: cuda", cfg);
    assert_non_null(strstr(out, where));
    assert_non_null(strstr(out, "CPU-only for now: set device: cpu"));
    assert_false(lrsa_file_exists(run_dir)); /* nothing written */
    free(out);
}

/* The salience loss reads the CPU workspace: refused with device: cuda, before anything is written.
 */
static void test_salience_cuda_refused(void **state) {
    (void)state;
    char dir[4096], cfg[4200], cmd[16384], run_dir[4300];
    tu_tmpdir(dir, sizeof dir, "salience_cuda");
    lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
    tf_write_run(dir, "run", "device: cuda\n", cfg, sizeof cfg);
    snprintf(cmd, sizeof cmd, "%s train %s attention.salience.weight=0.1 --quiet 2>&1", LRSA_BINARY,
             cfg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    printf("%s", out ? out : "");
    assert_int_not_equal(rc, 0);
    assert_non_null(out);
    assert_non_null(strstr(out, "command line: key 'attention.salience.weight' is set with device: "
                                "cuda, and the salience loss is CPU-only for now"));
    assert_false(lrsa_file_exists(run_dir));
    free(out);
}

/* attention.impl: cudnn runs cuDNN's dense causal attention on the GPU: refused with device: cpu
 * and with attention.mode: lrsa (on every build), and in a build without cuDNN; each message
 * names the key and the fix, the exit is non-zero and nothing is written. A build with cuDNN on
 * a machine without a GPU says there is no CUDA device. */
static void test_cudnn_refused(void **state) {
    (void)state;
    struct {
        const char *args, *why;
    } cases[] = {
        {"attention.impl=cudnn",
         "command line: key 'attention.impl' is cudnn with device: cpu, and cuDNN attention runs "
         "on the GPU only: set device: cuda or attention.impl: native"},
        {"attention.impl=cudnn device=cuda",
         "command line: key 'attention.impl' is cudnn with attention.mode: lrsa, and cuDNN runs "
         "dense causal attention only (it cannot express the gathered LRSA prefix): set "
         "attention.mode: dense or attention.impl: native"},
#ifndef LRSA_HAVE_CUDNN
        {"attention.impl=cudnn device=cuda attention.mode=dense",
         "command line: key 'attention.impl' is cudnn, and this lrsa was built without cuDNN: "
         "rebuild with cuDNN (LRSA_CUDNN_ROOT or a cuDNN wheel, docs/CUDA.md) or set "
         "attention.impl: native"},
#else
        {"attention.impl=cudnn device=cuda attention.mode=dense", "device: cuda: no CUDA device"},
#endif
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
#ifdef LRSA_HAVE_CUDNN
        if (i == 2 && lrsa_cuda_device_count() > 0) continue; /* it would train */
#endif
        char dir[4096], cfg[4200], cmd[16384], run_dir[4300];
        tu_tmpdir(dir, sizeof dir, "cudnn_refused");
        lrsa_path_join(run_dir, sizeof run_dir, dir, "run");
        tf_write_run(dir, "run", NULL, cfg, sizeof cfg);
        snprintf(cmd, sizeof cmd, "%s train %s %s model.dtype=bf16 --quiet 2>&1", LRSA_BINARY, cfg,
                 cases[i].args);
        char *out = NULL;
        int rc = tu_run(cmd, &out);
        printf("%s", out ? out : "");
        assert_int_not_equal(rc, 0);
        assert_non_null(out);
        assert_non_null(strstr(out, cases[i].why));
        assert_false(lrsa_file_exists(run_dir)); /* nothing written */
        free(out);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_cuda_message), cmocka_unit_test(test_lora_cuda_refused),
        cmocka_unit_test(test_lora_bf16_cuda_refused), cmocka_unit_test(test_salience_cuda_refused),
        cmocka_unit_test(test_cudnn_refused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
