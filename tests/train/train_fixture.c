#include "train_fixture.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "data/dataset.h"
#include "test_util.h"
#include "train/trainer.h"

void tf_write_dataset(const char *path, int n, int min_len, int max_len, uint64_t seed) {
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    int32_t ids[4096];
    uint8_t mask[4096];
    lrsa_err e;
    for (int s = 0; s < n; s++) {
        int len = min_len + (int)lrsa_rng_below(&r, (uint64_t)(max_len - min_len + 1));
        assert_true(len >= 12 && len < 4096);
        int key = 10 + (int)lrsa_rng_below(&r, 10);
        int prompt = len - 3, at = 2 + (int)lrsa_rng_below(&r, (uint64_t)(prompt - 4));
        ids[0] = 1;
        for (int t = 1; t < prompt; t++) ids[t] = 40 + (int)lrsa_rng_below(&r, 56);
        ids[at] = key;
        ids[prompt - 1] = 5; /* the question marker */
        ids[prompt] = key, ids[prompt + 1] = key, ids[prompt + 2] = 2;
        for (int t = 0; t < len; t++) mask[t] = t >= prompt;
        char answer[16];
        snprintf(answer, sizeof answer, "%d", key);
        assert_int_equal(lrsa_dataset_writer_add(w, ids, mask, len, prompt, answer, &e), 0);
    }
    lrsa_dataset_meta meta = {"test", "none", "tests/train", "copy", 0};
    if (lrsa_dataset_writer_commit(w, path, &meta, &e)) fail_msg("%s", e.msg);
    lrsa_dataset_writer_free(w);
}

void tf_write_run(const char *dir, const char *run, const char *extra, char *config_path,
                  size_t cap) {
    char train[4200], eval[4200], run_dir[4200];
    lrsa_path_join(train, sizeof train, dir, "train.h5");
    lrsa_path_join(eval, sizeof eval, dir, "eval.h5");
    lrsa_path_join(run_dir, sizeof run_dir, dir, run);
    if (!lrsa_file_exists(train)) tf_write_dataset(train, 48, 24, 56, 11);
    if (!lrsa_file_exists(eval)) tf_write_dataset(eval, 8, 40, 56, 99);
    char text[16384];
    int n = snprintf(text, sizeof text,
                     "model:\n  init: random\n  config: %s/configs/tiny/config.json\n"
                     "data:\n  train: %s\n  eval: %s\n  tokens_per_batch: 256\n  eval_samples: 4\n"
                     "attention:\n  mode: lrsa\n  sink: 4\n  lag: 8\n  keep: 0.25\n"
                     "optim:\n  lr: 3.0e-3\n  weight_decay: 0.01\n"
                     "schedule:\n  warmup_steps: 2\n  max_steps: 6\nrun_dir: %s\n",
                     LRSA_SOURCE_DIR, train, eval, run_dir);
    /* the top-level keys `extra` does not set itself (a key given twice is an error) */
    static const char *const top[] = {"seed: 7", "log_every: 1", "eval_every: 0", "ckpt_every: 2",
                                      "keep_ckpts: 2"};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "%.*s", (int)(strchr(top[i], ':') - top[i] + 1), top[i]);
        char nl_key[40];
        snprintf(nl_key, sizeof nl_key, "\n%s", key);
        if (extra && (!strncmp(extra, key, strlen(key)) || strstr(extra, nl_key))) continue;
        n += snprintf(text + n, sizeof text - (size_t)n, "%s\n", top[i]);
    }
    snprintf(text + n, sizeof text - (size_t)n, "%s", extra ? extra : "");
    lrsa_path_join(config_path, cap, dir, "config.yaml");
    lrsa_err e;
    if (lrsa_write_file_atomic(config_path, text, strlen(text), &e)) fail_msg("%s", e.msg);
}

void tf_load_config(lrsa_train_config *c, const char *config_path, const char *const *overrides) {
    lrsa_err e;
    lrsa_train_config_defaults(c);
    if (lrsa_train_config_load(c, config_path, &e)) fail_msg("%s", e.msg);
    for (int i = 0; overrides && overrides[i]; i++)
        if (lrsa_train_config_override(c, overrides[i], "test", &e)) fail_msg("%s", e.msg);
    if (lrsa_train_config_validate(c, config_path, &e)) fail_msg("%s", e.msg);
}

int tf_train(const char *config_path, const char *const *overrides, int64_t stop_after,
             lrsa_err *e) {
    lrsa_comm single = {.world = 1};
    lrsa_train_config c;
    tf_load_config(&c, config_path, overrides);
    lrsa_train_opts o = {stop_after, 1};
    return lrsa_train_run(&c, &o, &single, e);
}

void tf_must_train(const char *config_path, const char *const *overrides, int64_t stop_after) {
    lrsa_err e;
    if (tf_train(config_path, overrides, stop_after, &e)) fail_msg("training failed: %s", e.msg);
}

static int read_records(const char *run_dir, const char *k1, const char *k2, int64_t *steps,
                        double *a, double *b, int cap) {
    char path[4200];
    lrsa_path_join(path, sizeof path, run_dir, "metrics.jsonl");
    lrsa_err e;
    char *text = lrsa_read_file(path, NULL, &e);
    if (!text) fail_msg("%s", e.msg);
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < cap; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k1);
        const cJSON *y = k2 ? cJSON_GetObjectItemCaseSensitive(j, k2) : NULL;
        if (s && x && cJSON_IsNumber(x)) {
            steps[n] = (int64_t)s->valuedouble;
            a[n] = x->valuedouble;
            if (b) b[n] = y && cJSON_IsNumber(y) ? y->valuedouble : NAN;
            n++;
        }
        cJSON_Delete(j);
    }
    free(text);
    return n;
}

int tf_read_losses(const char *run_dir, int64_t *steps, double *losses, int cap) {
    return read_records(run_dir, "loss", NULL, steps, losses, NULL, cap);
}

int tf_compare_losses(const char *what, const char *run_a, const char *run_b, int from, int to,
                      double tol) {
    int64_t sa[32], sb[32];
    double la[32], lb[32];
    int na = tf_read_losses(run_a, sa, la, 32), nb = tf_read_losses(run_b, sb, lb, 32);
    double worst = 0;
    int seen = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (sa[i] == sb[j] && sa[i] >= from && sa[i] <= to) {
                double d = fabs(la[i] - lb[j]) / fabs(lb[j]);
                worst = !(d <= worst) ? d : worst; /* NaN wins */
                seen++;
            }
    int ok = seen == to - from + 1 && worst <= tol;
    printf("%-4s %s: steps %d-%d, worst loss rel diff %.2e (tol %.0e)\n", ok ? "ok" : "FAIL", what,
           from, to, worst, tol);
    return ok;
}

int tf_read_evals(const char *run_dir, int64_t *steps, double *full, double *lagkv, int cap) {
    return read_records(run_dir, "eval_nll_full", "eval_nll_lagkv", steps, full, lagkv, cap);
}

/* Reads a whole float dataset; returns its element count (buffer malloc'd). */
static int64_t read_ds(hid_t loc, const char *name, float **out) {
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    int64_t n = H5Sget_simple_extent_npoints(sp);
    *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
    herr_t rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc < 0 ? -1 : n;
}

static int datasets_equal(hid_t a, hid_t b, const char *name) {
    float *x = NULL, *y = NULL;
    int64_t nx = read_ds(a, name, &x), ny = read_ds(b, name, &y);
    int eq = nx >= 0 && nx == ny && !memcmp(x, y, sizeof(float) * (size_t)nx);
    if (!eq) fprintf(stderr, "checkpoints differ in %s\n", name);
    free(x);
    free(y);
    return eq;
}

typedef struct cmp_ctx {
    hid_t other;
    int equal, count;
} cmp_ctx;

static herr_t cmp_param(hid_t g, const char *name, const H5L_info_t *info, void *p) {
    (void)info;
    cmp_ctx *c = p;
    c->count++;
    if (!datasets_equal(g, c->other, name)) c->equal = 0;
    return 0;
}

int tf_ckpts_equal(const char *a, const char *b) {
    hid_t fa = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT),
          fb = H5Fopen(b, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fa >= 0 && fb >= 0);
    int eq = datasets_equal(fa, fb, "adam_m") && datasets_equal(fa, fb, "adam_v");
    hid_t ga = H5Gopen2(fa, "param", H5P_DEFAULT), gb = H5Gopen2(fb, "param", H5P_DEFAULT);
    cmp_ctx c = {gb, 1, 0};
    H5Literate(ga, H5_INDEX_NAME, H5_ITER_INC, NULL, cmp_param, &c);
    H5Gclose(ga);
    H5Gclose(gb);
    H5Fclose(fa);
    H5Fclose(fb);
    return eq && c.equal && c.count > 0;
}

typedef struct diff_ctx {
    hid_t other;
    double worst;
    int count;
} diff_ctx;

static herr_t diff_param(hid_t g, const char *name, const H5L_info_t *info, void *p) {
    (void)info;
    diff_ctx *c = p;
    float *x = NULL, *y = NULL;
    int64_t nx = read_ds(g, name, &x), ny = read_ds(c->other, name, &y);
    if (nx < 0 || nx != ny) {
        c->worst = INFINITY;
    } else {
        for (int64_t i = 0; i < nx; i++) {
            double d = fabs((double)x[i] - (double)y[i]);
            c->worst = !(d <= c->worst) ? d : c->worst; /* NaN wins */
        }
        c->count++;
    }
    free(x);
    free(y);
    return 0;
}

double tf_ckpts_param_max_diff(const char *a, const char *b) {
    hid_t fa = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT),
          fb = H5Fopen(b, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fa >= 0 && fb >= 0);
    hid_t ga = H5Gopen2(fa, "param", H5P_DEFAULT), gb = H5Gopen2(fb, "param", H5P_DEFAULT);
    diff_ctx c = {gb, 0.0, 0};
    H5Literate(ga, H5_INDEX_NAME, H5_ITER_INC, NULL, diff_param, &c);
    H5Gclose(ga);
    H5Gclose(gb);
    H5Fclose(fa);
    H5Fclose(fb);
    return c.count > 0 ? c.worst : INFINITY;
}

int tf_count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}
