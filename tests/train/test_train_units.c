/* The trainer's pieces without a model: config parsing and its errors, overrides, the resolved
 * YAML round trip, schedules, clipping, AdamW against a scalar reference, ZeRO shards, metrics
 * truncation on resume, SVG ticks. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "autograd/tensor_table.h"
#include "test_util.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/optim.h"
#include "eval/report/plot_svg.h"
#include "train/train_log.h"

static const char *good =
    "model:\n  init: random\n  config: c.json\ndata:\n  train: t.h5\n"
    "schedule:\n  max_steps: 10\nrun_dir: runs/x\noptim:\n  lr: 1e-3\nrecompute: true\n";

static void test_config_parse(void **state) {
    (void)state;
    lrsa_train_config c;
    lrsa_err e;
    lrsa_train_config_defaults(&c);
    assert_int_equal(lrsa_train_config_parse(&c, good, strlen(good), "good.yaml", &e), 0);
    assert_int_equal(lrsa_train_config_validate(&c, "good.yaml", &e), 0);
    assert_string_equal(c.model_init, "random");
    assert_true(c.lr == 1e-3);
    assert_int_equal(c.max_steps, 10);
    assert_int_equal(c.recompute, 1);
    assert_string_equal(c.attn_mode, "lrsa"); /* a default */
    assert_int_equal(lrsa_train_config_override(&c, "optim.lr=2.5e-4", "cli", &e), 0);
    assert_true(c.lr == 2.5e-4);
    assert_int_equal(lrsa_train_config_override(&c, "attention.mode=dense", "cli", &e), 0);
    assert_string_equal(c.attn_mode, "dense");
    /* resolved YAML parses back to the same values */
    char *yaml = lrsa_train_config_to_yaml(&c);
    lrsa_train_config d;
    lrsa_train_config_defaults(&d);
    assert_int_equal(lrsa_train_config_parse(&d, yaml, strlen(yaml), "resolved", &e), 0);
    assert_memory_equal(&c, &d, offsetof(lrsa_train_config, key_line)); /* lines differ */
    free(yaml);
    /* also strings a YAML reader would not give back raw: a line break (folded into a space),
     * a control character (refused), NEL and U+2028 (line breaks too), beside plain UTF-8 */
    static const char *const odd[] = {"a\\nb", "a\\x01b", "a\\x85b", "a\\Lb",
                                      "caf\\u00e9\\tx\\\\\\\""};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "run_dir: \"%s\"\n", odd[i]);
        lrsa_train_config_defaults(&c);
        assert_int_equal(lrsa_train_config_parse(&c, text, strlen(text), "odd.yaml", &e), 0);
        yaml = lrsa_train_config_to_yaml(&c);
        lrsa_train_config_defaults(&d);
        if (lrsa_train_config_parse(&d, yaml, strlen(yaml), "resolved", &e) != 0)
            fail_msg("%s does not read back: %s", odd[i], e.msg);
        if (strcmp(c.run_dir, d.run_dir) != 0)
            fail_msg("%s reads back as '%s', not '%s'", odd[i], d.run_dir, c.run_dir);
        free(yaml);
    }
}

static void expect_error(const char *text, const char *needle1, const char *needle2) {
    lrsa_train_config c;
    lrsa_err e;
    lrsa_train_config_defaults(&c);
    int rc = lrsa_train_config_parse(&c, text, strlen(text), "cfg.yaml", &e);
    if (rc == 0) rc = lrsa_train_config_validate(&c, "cfg.yaml", &e);
    assert_int_equal(rc, -1);
    if (!strstr(e.msg, needle1) || (needle2 && !strstr(e.msg, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", e.msg, needle1, needle2 ? needle2 : "");
}

static void test_config_errors(void **state) {
    (void)state;
    /* a typo'd key names the key, the file and its line */
    expect_error("seed: 1\noptim:\n  lr: 1e-3\n  wieght_decay: 0.1\n", "optim.wieght_decay",
                 "cfg.yaml:4");
    expect_error("sed: 1\n", "unknown key 'sed'", "cfg.yaml:1");
    expect_error("optim:\n  lr: fast\n", "optim.lr", "cfg.yaml:2");
    expect_error("recompute: maybe\n", "recompute", "true or false");
    expect_error("attention:\n  mode: sparse\n", "dense|lrsa", "cfg.yaml:2");
    expect_error("models:\n  path: x\n", "unknown section 'models'", "cfg.yaml:1");
    expect_error("seed: [1, 2]\n", "seed", "list");
    expect_error("seed: 1\n  bad indent: 2\n", "YAML syntax error", "cfg.yaml:");
    /* required keys */
    expect_error("data:\n  train: t.h5\nrun_dir: r\nschedule:\n  max_steps: 3\n", "model.path",
                 NULL);
    expect_error("model:\n  path: m\nrun_dir: r\nschedule:\n  max_steps: 3\n", "data.train", NULL);
    expect_error("model:\n  path: m\ndata:\n  train: t\nschedule:\n  max_steps: 3\n", "run_dir",
                 NULL);
    expect_error("model:\n  path: m\ndata:\n  train: t\nrun_dir: r\n", "schedule.max_steps", NULL);
    expect_error("model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  max_steps: 3\n"
                 "attention:\n  keep: 1.5\n",
                 "attention.keep", "(0, 1]");
    /* value errors name the line the value is on */
    expect_error("model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  max_steps: 3\n"
                 "attention:\n  keep: 1.5\n",
                 "cfg.yaml:9:", "attention.keep");
    expect_error("model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  max_steps: 0\n",
                 "cfg.yaml:7:", "schedule.max_steps");
    expect_error("model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  max_steps: 3\n"
                 "attention:\n  keep_mix: 0.5,2\n",
                 "cfg.yaml:9:", "keep_mix");
    /* the salience loss's sub-section (issue 19): a bad weight names the key and its line */
    expect_error("model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  max_steps: 3\n"
                 "attention:\n  salience:\n    weight: -0.5\n",
                 "cfg.yaml:10:", "attention.salience.weight");
    expect_error("attention:\n  salience:\n    wieght: 1\n", "attention.salience.wieght", NULL);
    expect_error("attention:\n  sparsity:\n    weight: 1\n", "unknown section 'attention.sparsity'",
                 NULL);
    {
        const char *ok = "model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  "
                         "max_steps: 3\nattention:\n  mode: dense\n  salience:\n    weight: 0.25\n";
        lrsa_train_config c;
        lrsa_err e;
        lrsa_train_config_defaults(&c);
        assert_true(c.attn_salience_weight == 0.0); /* off by default */
        assert_int_equal(lrsa_train_config_parse(&c, ok, strlen(ok), "cfg.yaml", &e), 0);
        assert_int_equal(lrsa_train_config_validate(&c, "cfg.yaml", &e), 0);
        assert_true(c.attn_salience_weight == 0.25);
        char *yaml = lrsa_train_config_to_yaml(&c); /* the resolved YAML reads back */
        lrsa_train_config d;
        lrsa_train_config_defaults(&d);
        assert_int_equal(lrsa_train_config_parse(&d, yaml, strlen(yaml), "resolved", &e), 0);
        assert_true(d.attn_salience_weight == 0.25);
        free(yaml);
    }
    /* a key given twice: both lines, whichever the reader would have kept */
    expect_error("seed: 1\noptim:\n  lr: 1e-3\n  lr: 1e-4\n", "cfg.yaml:4:", "first on line 3");
    expect_error("optim:\n  lr: 1e-3\nseed: 2\noptim:\n  eps: 1e-6\n", "'optim' appears twice",
                 "first on line 1");
    /* the other LagKV hyper-parameters: lag <= 0, sink < 0, keep 0 */
    const char *base =
        "model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  max_steps: 3\n";
    const struct {
        const char *yaml, *key, *range;
    } bad[] = {{"attention:\n  lag: 0\n", "attention.lag", "> 0"},
               {"attention:\n  lag: -8\n", "attention.lag", "> 0"},
               {"attention:\n  sink: -1\n", "attention.sink", ">= 0"},
               {"attention:\n  keep: 0\n", "attention.keep", "(0, 1]"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "%s%s", base, bad[i].yaml);
        expect_error(yaml, bad[i].key, bad[i].range);
    }
    lrsa_train_config c;
    lrsa_err e;
    lrsa_train_config_defaults(&c);
    assert_int_equal(lrsa_train_config_override(&c, "optim.lrr=1", "command line", &e), -1);
    assert_non_null(strstr(e.msg, "optim.lrr"));
    assert_int_equal(lrsa_train_config_override(&c, "lr", "command line", &e), -1);
    assert_non_null(strstr(e.msg, "section.key=value"));
    /* a value from an override is named as such, not as a line of the file */
    const char *ok =
        "model:\n  path: m\ndata:\n  train: t\nrun_dir: r\nschedule:\n  max_steps: 3\n";
    lrsa_train_config_defaults(&c);
    assert_int_equal(lrsa_train_config_parse(&c, ok, strlen(ok), "cfg.yaml", &e), 0);
    assert_int_equal(lrsa_train_config_override(&c, "attention.keep=1.5", "command line", &e), 0);
    assert_int_equal(lrsa_train_config_validate(&c, "cfg.yaml", &e), -1);
    if (!strstr(e.msg, "command line: key 'attention.keep'")) fail_msg("message: %s", e.msg);
}

/* The configs we ship parse and validate. */
static void test_shipped_configs(void **state) {
    (void)state;
    const char *files[] = {LRSA_SOURCE_DIR "/configs/smollm2-135m-lrsa.yaml",
                           LRSA_SOURCE_DIR "/configs/tiny-test.yaml",
                           LRSA_SOURCE_DIR "/configs/smollm2-135m-lora-cpu.yaml"};
    for (int i = 0; i < 3; i++) {
        lrsa_train_config c;
        lrsa_err e;
        lrsa_train_config_defaults(&c);
        if (lrsa_train_config_load(&c, files[i], &e) ||
            lrsa_train_config_validate(&c, files[i], &e))
            fail_msg("%s", e.msg);
    }
}

static void test_schedule(void **state) {
    (void)state;
    lrsa_train_config c;
    lrsa_train_config_defaults(&c);
    c.lr = 1.0;
    c.warmup_steps = 10;
    c.max_steps = 110;
    c.min_lr_ratio = 0.1;
    assert_true(fabs(lrsa_schedule_lr(&c, 1) - 0.1) < 1e-12);
    assert_true(fabs(lrsa_schedule_lr(&c, 10) - 1.0) < 1e-12);
    strcpy(c.decay, "cosine");
    assert_true(fabs(lrsa_schedule_lr(&c, 60) - 0.55) < 1e-12); /* half way: (1 + 0.1) / 2 */
    assert_true(fabs(lrsa_schedule_lr(&c, 110) - 0.1) < 1e-12);
    strcpy(c.decay, "linear");
    assert_true(fabs(lrsa_schedule_lr(&c, 35) - (0.1 + 0.9 * 0.75)) < 1e-12);
    assert_true(fabs(lrsa_schedule_lr(&c, 110) - 0.1) < 1e-12);
    strcpy(c.decay, "constant");
    assert_true(lrsa_schedule_lr(&c, 80) == 1.0);
    /* clipping */
    assert_true(lrsa_clip_scale(0.5, 1.0) == 1.0);
    assert_true(fabs(lrsa_clip_scale(4.0, 1.0) * 4.0 - 1.0) < 1e-6);
    assert_true(lrsa_clip_scale(4.0, 0.0) == 1.0);
    float g[3] = {3, 4, 12};
    assert_true(fabs(lrsa_grad_norm(g, 3) - 13.0) < 1e-12);
}

static void test_shards(void **state) {
    (void)state;
    for (int world = 1; world <= 5; world++) {
        int64_t next = 0;
        for (int r = 0; r < world; r++) {
            int64_t lo, hi;
            lrsa_shard_range(23, r, world, &lo, &hi);
            assert_int_equal(lo, next);
            assert_true(hi - lo == 23 / world || hi - lo == 23 / world + 1);
            next = hi;
        }
        assert_int_equal(next, 23);
    }
}

/* AdamW on a table of a matrix and a norm, split over 3 "ranks" (shards updated one by one),
 * against a double-precision scalar reference of PyTorch's AdamW formulas. */
static void test_adamw(void **state) {
    (void)state;
    lrsa_tensor_table t;
    lrsa_table_init(&t);
    int64_t sm[2] = {3, 4}, sn[1] = {5};
    lrsa_table_add(&t, "w", 2, sm, LRSA_KIND_MATRIX);
    lrsa_table_add(&t, "norm", 1, sn, LRSA_KIND_NORM);
    lrsa_table_alloc(&t, LRSA_ROLE_PARAM);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 3);
    int64_t n = t.numel;
    float *p = t.arena[LRSA_ROLE_PARAM], g[17];
    tu_fill_normal(p, n, 1.0f, &rng);
    double ref_p[17], ref_m[17] = {0}, ref_v[17] = {0};
    for (int i = 0; i < n; i++) ref_p[i] = p[i];
    const double lr = 0.01, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    lrsa_adamw opt[3];
    for (int r = 0; r < 3; r++) lrsa_adamw_init(&opt[r], &t, r, 3, b1, b2, eps, wd);
    for (int step = 1; step <= 4; step++) {
        tu_fill_normal(g, n, 1.0f, &rng);
        double scale = 0.5;
        for (int r = 0; r < 3; r++) lrsa_adamw_step(&opt[r], p, g, lr, scale);
        for (int i = 0; i < n; i++) {
            double gi = g[i] * scale;
            if (i < 12) ref_p[i] *= 1 - lr * wd; /* only the matrix decays */
            ref_m[i] = b1 * ref_m[i] + (1 - b1) * gi;
            ref_v[i] = b2 * ref_v[i] + (1 - b2) * gi * gi;
            double mh = ref_m[i] / (1 - pow(b1, step)), vh = ref_v[i] / (1 - pow(b2, step));
            ref_p[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    for (int i = 0; i < n; i++)
        if (fabs(p[i] - ref_p[i]) > 1e-5 * (1 + fabs(ref_p[i])))
            fail_msg("param %d: %.8g vs reference %.8g", i, p[i], ref_p[i]);
    for (int r = 0; r < 3; r++) lrsa_adamw_free(&opt[r]);
    lrsa_table_free(&t);
}

static void test_metrics_truncate(void **state) {
    (void)state;
    char dir[4096], path[4200];
    tu_tmpdir(dir, sizeof dir, "metrics");
    lrsa_path_join(path, sizeof path, dir, "metrics.jsonl");
    FILE *f = fopen(path, "w");
    for (int s = 1; s <= 6; s++) {
        lrsa_step_record r = {.step = s, .loss = 1.0 / s, .gnorm = NAN};
        lrsa_metrics_append_step(f, &r);
    }
    fclose(f);
    lrsa_err e;
    assert_int_equal(lrsa_metrics_truncate_after(path, 4, &e), 0);
    char *text = lrsa_read_file(path, NULL, &e);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"step\":4,"));
    assert_null(strstr(text, "\"step\":5,"));
    assert_non_null(strstr(text, "\"gnorm\":null")); /* NaN is written as JSON null */
    free(text);
    char d[32];
    lrsa_format_duration(d, sizeof d, 252);
    assert_string_equal(d, "4m12s");
}

static void test_ticks(void **state) {
    (void)state;
    double t[32];
    int n = lrsa_nice_ticks(0, 200, 8, 0, t, 32);
    assert_true(n >= 5);
    assert_true(t[0] == 0 && t[n - 1] == 200);
    for (int i = 1; i < n; i++) assert_true(fabs((t[i] - t[i - 1]) - 50) < 1e-9);
    n = lrsa_nice_ticks(2.31, 2.77, 6, 0, t, 32);
    assert_true(t[0] >= 2.31 && t[n - 1] <= 2.77 && n >= 3);
    n = lrsa_nice_ticks(0, 4, 8, 1.0, t, 32); /* integer axis: 0 1 2 3 4, not 0 0.5 ... */
    assert_int_equal(n, 5);
    assert_true(t[1] == 1.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse),     cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_shipped_configs),  cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_shards),           cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_metrics_truncate), cmocka_unit_test(test_ticks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
