/* Per-sample training attention (train/attn_mix.h): the keep-list parser, the hash draw
 * (deterministic, the asked-for shares), and the trainer using it: a mix that reduces to one
 * setting trains bit-identically to that setting, a real mix differs from each of its parts,
 * and a mixed run resumes exactly. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "test_util.h"
#include "train/attn_mix.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_fixture.h"

static void test_parse(void **state) {
    (void)state;
    float k[LRSA_ATTN_MIX_MAX];
    int n = -1;
    lrsa_err e;
    assert_int_equal(lrsa_attn_mix_parse_keeps("", k, &n, "x", &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lrsa_attn_mix_parse_keeps(" 0.5, 1/4 0.125 ,1", k, &n, "x", &e), 0);
    assert_int_equal(n, 4);
    assert_true(k[0] == 0.5f && k[1] == 0.25f && k[2] == 0.125f && k[3] == 1.0f);
    const char *bad[] = {
        "0", "1.5", "abc", "1/0", "0.5x", "-0.25", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (lrsa_attn_mix_parse_keeps(bad[i], k, &n, "attention.keep_mix", &e) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(e.msg, "attention.keep_mix"));
    }
}

static lrsa_attn_mix lrsa_mix(double dense, int n_keeps) {
    lrsa_attn_mix m = {0};
    m.base.mode = LRSA_ATTN_LRSA;
    m.base.lagkv = (lrsa_lagkv_params){16, 64, 0.25f, 1.0f};
    m.dense_share = dense;
    m.seed = 99;
    const float keeps[] = {0.5f, 0.25f, 0.125f};
    for (int i = 0; i < n_keeps; i++) m.keeps[i] = keeps[i];
    m.n_keeps = n_keeps;
    return m;
}

static void test_pick(void **state) {
    (void)state;
    /* no mix: the base setting, always */
    lrsa_attn_mix m = lrsa_mix(0, 0);
    for (int64_t s = 0; s < 50; s++) {
        lrsa_attn_config a = lrsa_attn_mix_pick(&m, s, s * 7);
        assert_int_equal(a.mode, LRSA_ATTN_LRSA);
        assert_true(a.lagkv.keep == 0.25f && a.lagkv.lag == 64 && a.lagkv.sink == 16);
    }
    /* a dense base stays dense whatever the mix */
    lrsa_attn_mix d = lrsa_mix(0.5, 3);
    d.base.mode = LRSA_ATTN_DENSE;
    for (int64_t s = 0; s < 50; s++)
        assert_int_equal(lrsa_attn_mix_pick(&d, s, 3).mode, LRSA_ATTN_DENSE);
    /* dense share 1: always dense */
    lrsa_attn_mix all = lrsa_mix(1.0, 0);
    for (int64_t s = 0; s < 50; s++)
        assert_int_equal(lrsa_attn_mix_pick(&all, s, 1).mode, LRSA_ATTN_DENSE);
    /* shares: 30 % dense, the rest spread over three keeps; deterministic per (step, index) */
    lrsa_attn_mix mix = lrsa_mix(0.3, 3);
    int dense = 0, per_keep[3] = {0, 0, 0}, N = 0, differs_by_seed = 0;
    lrsa_attn_mix other = mix;
    other.seed = 100;
    for (int64_t step = 1; step <= 200; step++)
        for (int64_t idx = 0; idx < 100; idx++, N++) {
            lrsa_attn_config a = lrsa_attn_mix_pick(&mix, step, idx);
            lrsa_attn_config b = lrsa_attn_mix_pick(&mix, step, idx);
            assert_int_equal(a.mode, b.mode);
            assert_true(a.lagkv.keep == b.lagkv.keep);
            lrsa_attn_config c = lrsa_attn_mix_pick(&other, step, idx);
            differs_by_seed += c.mode != a.mode || c.lagkv.keep != a.lagkv.keep;
            if (a.mode == LRSA_ATTN_DENSE) {
                dense++;
                continue;
            }
            assert_true(a.lagkv.lag == 64 && a.lagkv.sink == 16);
            int j = a.lagkv.keep == 0.5f     ? 0
                    : a.lagkv.keep == 0.25f  ? 1
                    : a.lagkv.keep == 0.125f ? 2
                                             : -1;
            assert_true(j >= 0);
            per_keep[j]++;
        }
    /* 20000 draws: binomial standard deviations are 0.3 % (dense) and 0.4 % (keeps) */
    double fd = (double)dense / N;
    printf("dense share %.4f, keeps %.4f %.4f %.4f of the LRSA samples\n", fd,
           (double)per_keep[0] / (N - dense), (double)per_keep[1] / (N - dense),
           (double)per_keep[2] / (N - dense));
    assert_true(fabs(fd - 0.3) < 0.015);
    for (int j = 0; j < 3; j++)
        assert_true(fabs((double)per_keep[j] / (N - dense) - 1.0 / 3) < 0.02);
    assert_true(differs_by_seed > N / 4); /* another seed draws other samples */
}

/* ---- through the trainer (tiny random model, tests/train/train_fixture.c) ---------------- */
static lrsa_comm single = {.world = 1};

static void train(const char *cfg, const char *run_dir, const char *const *extra, int64_t stop) {
    char rd[4300];
    snprintf(rd, sizeof rd, "run_dir=%s", run_dir);
    const char *ov[8] = {rd};
    int n = 1;
    for (int i = 0; extra && extra[i] && n < 7; i++) ov[n++] = extra[i];
    ov[n] = NULL;
    lrsa_train_config c;
    tf_load_config(&c, cfg, ov);
    lrsa_train_opts o = {stop, 1};
    lrsa_err e;
    if (lrsa_train_run(&c, &o, &single, &e)) fail_msg("training %s failed: %s", run_dir, e.msg);
}

static int losses(const char *dir, const char *run, double *l) {
    char p[4300];
    snprintf(p, sizeof p, "%s/%s", dir, run);
    int64_t s[32];
    return tf_read_losses(p, s, l, 32);
}

static int same(const double *a, const double *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void test_trainer_mix(void **state) {
    (void)state;
    char dir[4096], cfg[4200];
    tu_tmpdir(dir, sizeof dir, "attn_mix");
    tf_write_run(dir, "unused", NULL, cfg, sizeof cfg);
    struct {
        const char *run;
        const char *ov[3];
    } runs[] = {
        {"lrsa", {NULL}},                                /* keep 0.25 (the fixture's) */
        {"lrsa_mix1", {"attention.keep_mix=1/4", NULL}}, /* a one-element mix */
        {"dense", {"attention.mode=dense", NULL}},
        {"lrsa_all_dense", {"attention.dense_mix=1", NULL}}, /* every sample dense */
        {"keep_half", {"attention.keep=0.5", NULL}},
        {"keep_eighth", {"attention.keep=0.125", NULL}},
        {"mix", {"attention.keep_mix=0.5,0.125", NULL}},
    };
    enum { R = sizeof runs / sizeof runs[0] };
    double l[R][32];
    int n[R];
    for (int i = 0; i < R; i++) {
        char rd[4300];
        snprintf(rd, sizeof rd, "%s/%s", dir, runs[i].run);
        train(cfg, rd, runs[i].ov, 0);
        n[i] = losses(dir, runs[i].run, l[i]);
        assert_int_equal(n[i], 6);
    }
    assert_true(same(l[0], l[1], 6));  /* keep_mix {1/4} == keep 1/4 */
    assert_true(same(l[2], l[3], 6));  /* dense_mix 1 == dense */
    assert_false(same(l[0], l[2], 6)); /* the fixture's LRSA is not dense (else the rest is moot) */
    assert_false(same(l[6], l[4], 6)); /* the mix is neither of its parts */
    assert_false(same(l[6], l[5], 6));
    assert_false(same(l[6], l[0], 6)); /* and not the base keep: the list is used */
}

/* A mixed run stopped after step 3 and resumed gives the losses of the straight run. */
static void test_trainer_mix_resume(void **state) {
    (void)state;
    char dir[4096], cfg[4200], a[4300], b[4300];
    tu_tmpdir(dir, sizeof dir, "attn_mix_resume");
    tf_write_run(dir, "unused", NULL, cfg, sizeof cfg);
    snprintf(a, sizeof a, "%s/straight", dir);
    snprintf(b, sizeof b, "%s/resumed", dir);
    const char *mix[] = {"attention.keep_mix=0.5,0.25,0.125", "attention.dense_mix=0.3", NULL};
    const char *mix_resume[] = {"attention.keep_mix=0.5,0.25,0.125", "attention.dense_mix=0.3",
                                "resume=true", NULL};
    train(cfg, a, mix, 0);
    train(cfg, b, mix, 3);
    train(cfg, b, mix_resume, 0);
    double la[32], lb[32];
    assert_int_equal(losses(dir, "straight", la), 6);
    assert_int_equal(losses(dir, "resumed", lb), 6);
    assert_true(same(la, lb, 6));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_trainer_mix),
        cmocka_unit_test(test_trainer_mix_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
