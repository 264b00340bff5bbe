#include "train/checkpoint.h"

#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"

/* Every HDF5 call is checked; a failure names the call site and the file. */
#define H5_TRY(expr)                                                                               \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            lrsa_errorf(e, "%s:%d: HDF5 call `%s` failed on %s", __FILE__, __LINE__, #expr, path); \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* HDF5 prints its error stack by default; we report our own messages instead. */
typedef struct quiet_h5 {
    H5E_auto2_t fn;
    void *data;
} quiet_h5;
static quiet_h5 h5_quiet(void) {
    quiet_h5 q;
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}
static void h5_restore(quiet_h5 q) {
    H5Eset_auto2(H5E_DEFAULT, q.fn, q.data);
}

static int write_i64_attr(hid_t loc, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &v);
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

static int write_str_attr(hid_t loc, const char *name, const char *s) {
    hid_t sp = H5Screate(H5S_SCALAR), ty = H5Tcopy(H5T_C_S1);
    int rc = (sp < 0 || ty < 0) ? -1 : 0;
    if (!rc) rc = H5Tset_size(ty, strlen(s) + 1) < 0 ? -1 : 0;
    if (!rc) {
        hid_t a = H5Acreate2(loc, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
        rc = a < 0 ? -1 : (H5Awrite(a, ty, s) < 0 ? -1 : 0);
        if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

static int write_f32(hid_t loc, const char *name, int ndim, const int64_t *shape, const float *x) {
    hsize_t dims[LRSA_MAX_DIMS];
    for (int d = 0; d < ndim; d++) dims[d] = (hsize_t)shape[d];
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    if (sp < 0) return -1;
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds < 0 ? -1 : (H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0);
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Sclose(sp);
    return rc ? -1 : 0;
}

/* Test hook: LRSA_TEST_CKPT_SLEEP_STEP=N makes the write of step N pause half-way (after the
 * weights, before the moments) for LRSA_TEST_CKPT_SLEEP_S seconds, so a test can kill it. */
static void test_hook_sleep(int64_t step) {
    const char *s = getenv("LRSA_TEST_CKPT_SLEEP_STEP");
    if (!s || atoll(s) != step) return;
    const char *t = getenv("LRSA_TEST_CKPT_SLEEP_S");
    fprintf(stderr, "lrsa: test hook: pausing inside the checkpoint write of step %lld\n",
            (long long)step);
    sleep(t ? (unsigned)atoi(t) : 30);
}

int lrsa_ckpt_write(const char *final_path, const lrsa_tensor_table *t, const float *m_full,
                    const float *v_full, const lrsa_ckpt_state *s, const lrsa_ckpt_text *text,
                    lrsa_err *e) {
    char path[4096 + 32];
    lrsa_tmp_name(path, sizeof path, final_path);
    quiet_h5 q = h5_quiet();
    hid_t f = -1, g = -1;
    f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        h5_restore(q);
        return lrsa_errorf(e, "cannot create checkpoint %s (is the run directory writable?)", path);
    }
    H5_TRY(write_str_attr(f, "format", LRSA_CKPT_FORMAT));
    H5_TRY(write_i64_attr(f, "step", s->step));
    H5_TRY(write_i64_attr(f, "adam_t", s->adam_t));
    H5_TRY(write_i64_attr(f, "bad_in_row", s->bad_in_row));
    H5_TRY(write_i64_attr(f, "bad_total", s->bad_total));
    H5_TRY(write_i64_attr(f, "tokens_seen", s->tokens_seen));
    H5_TRY(write_i64_attr(f, "loader_seed", (int64_t)s->loader.seed));
    H5_TRY(write_i64_attr(f, "loader_epoch", s->loader.epoch));
    H5_TRY(write_i64_attr(f, "loader_cursor", s->loader.cursor));
    H5_TRY(write_i64_attr(f, "world_size", s->world_size));
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "rng_%d", i);
        H5_TRY(write_i64_attr(f, name, (int64_t)s->rng.s[i]));
    }
    H5_TRY(write_str_attr(f, "config_yaml", text->config_yaml ? text->config_yaml : ""));
    H5_TRY(write_str_attr(f, "model_config_json",
                          text->model_config_json ? text->model_config_json : ""));
    H5_TRY(write_str_attr(f, "model_path", text->model_path ? text->model_path : ""));
    H5_TRY(g = H5Gcreate2(f, "param", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (int i = 0; i < t->n; i++)
        H5_TRY(write_f32(g, t->desc[i].name, t->desc[i].ndim, t->desc[i].shape,
                         lrsa_table_ptr(t, LRSA_ROLE_PARAM, i)));
    H5_TRY(H5Gclose(g));
    g = -1;
    test_hook_sleep(s->step);
    int64_t n = t->numel;
    H5_TRY(write_f32(f, "adam_m", 1, &n, m_full));
    H5_TRY(write_f32(f, "adam_v", 1, &n, v_full));
    H5_TRY(H5Fflush(f, H5F_SCOPE_GLOBAL));
    H5_TRY(H5Fclose(f));
    f = -1;
    h5_restore(q);
    return lrsa_rename_into_place(path, final_path, e);
fail:
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    unlink(path);
    h5_restore(q);
    return -1;
}

static int read_i64_attr(hid_t loc, const char *name, int64_t *v) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, H5T_NATIVE_INT64, v) < 0 ? -1 : 0;
    H5Aclose(a);
    return rc;
}

static char *read_str_attr(hid_t loc, const char *name) {
    if (H5Aexists(loc, name) <= 0) return NULL;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return NULL;
    hid_t ty = H5Aget_type(a);
    char *s = NULL;
    if (ty >= 0 && H5Tget_class(ty) == H5T_STRING && !H5Tis_variable_str(ty)) {
        size_t n = H5Tget_size(ty);
        s = lrsa_calloc(n + 1, 1);
        if (H5Aread(a, ty, s) < 0) {
            free(s);
            s = NULL;
        }
    }
    if (ty >= 0) H5Tclose(ty);
    H5Aclose(a);
    return s;
}

static hid_t open_ckpt(const char *path, lrsa_err *e) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        lrsa_errorf(e, "cannot open checkpoint %s (missing, or not an HDF5 file)", path);
        return -1;
    }
    char *fmt = read_str_attr(f, "format");
    if (!fmt || strcmp(fmt, LRSA_CKPT_FORMAT)) {
        lrsa_errorf(e, "%s is not an lrsa checkpoint (attribute format is '%s', expected '%s')",
                    path, fmt ? fmt : "(missing)", LRSA_CKPT_FORMAT);
        free(fmt);
        H5Fclose(f);
        return -1;
    }
    free(fmt);
    return f;
}

char *lrsa_ckpt_read_string(const char *path, const char *attr, lrsa_err *e) {
    quiet_h5 q = h5_quiet();
    hid_t f = open_ckpt(path, e);
    char *s = NULL;
    if (f >= 0) {
        s = read_str_attr(f, attr);
        if (!s)
            lrsa_errorf(e, "checkpoint %s: attribute '%s' is missing or unreadable", path, attr);
        H5Fclose(f);
    }
    h5_restore(q);
    return s;
}

static void shape_str(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(out + k, cap - k, "]");
}

static int check_model(hid_t f, const char *path, const lrsa_tensor_table *t, lrsa_err *e) {
    if (H5Lexists(f, "param", H5P_DEFAULT) <= 0)
        return lrsa_errorf(e, "checkpoint %s has no /param group", path);
    hid_t g = H5Gopen2(f, "param", H5P_DEFAULT);
    if (g < 0) return lrsa_errorf(e, "checkpoint %s: cannot open /param", path);
    H5G_info_t info;
    int rc = 0;
    if (H5Gget_info(g, &info) < 0) {
        rc = lrsa_errorf(e, "%s:%d: H5Gget_info failed on %s", __FILE__, __LINE__, path);
        goto done;
    }
    for (int i = 0; i < t->n && !rc; i++) {
        const lrsa_param_desc *d = &t->desc[i];
        char want[128], have[128];
        shape_str(want, sizeof want, d->ndim, d->shape);
        if (H5Lexists(g, d->name, H5P_DEFAULT) <= 0) {
            rc = lrsa_errorf(e,
                             "checkpoint %s was written for another model: it has no tensor '%s' "
                             "%s. Resume only with the model the run started from, or start a "
                             "fresh run_dir",
                             path, d->name, want);
            break;
        }
        hid_t ds = H5Dopen2(g, d->name, H5P_DEFAULT);
        hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
        hsize_t dims[8];
        int nd = sp < 0 ? -1 : H5Sget_simple_extent_dims(sp, dims, NULL);
        int64_t got[8];
        int same = nd == d->ndim;
        for (int k = 0; k < nd && k < 8; k++) {
            got[k] = (int64_t)dims[k];
            if (k < d->ndim && got[k] != d->shape[k]) same = 0;
        }
        if (sp >= 0) H5Sclose(sp);
        if (ds >= 0) H5Dclose(ds);
        if (nd < 0) {
            rc = lrsa_errorf(e, "checkpoint %s: cannot read tensor '%s'", path, d->name);
        } else if (!same) {
            shape_str(have, sizeof have, nd, got);
            rc = lrsa_errorf(e,
                             "checkpoint %s was written for another model: tensor '%s' has shape "
                             "%s there but %s in this model. Resume only with the model the run "
                             "started from, or start a fresh run_dir",
                             path, d->name, have, want);
        }
    }
    if (!rc && (int64_t)info.nlinks != t->n)
        rc = lrsa_errorf(e,
                         "checkpoint %s was written for another model: it holds %llu tensors, "
                         "this model has %d. Resume only with the model the run started from, or "
                         "start a fresh run_dir",
                         path, (unsigned long long)info.nlinks, t->n);
done:
    H5Gclose(g);
    return rc;
}

int lrsa_ckpt_check_model(const char *path, const lrsa_tensor_table *t, lrsa_err *e) {
    quiet_h5 q = h5_quiet();
    hid_t f = open_ckpt(path, e);
    int rc = f < 0 ? -1 : check_model(f, path, t, e);
    if (f >= 0) H5Fclose(f);
    h5_restore(q);
    return rc;
}

static int read_slab(hid_t f, const char *path, const char *name, int64_t lo, int64_t hi,
                     int64_t numel, float *out, lrsa_err *e) {
    hid_t ds = -1, fs = -1, ms = -1;
    hsize_t dims[1], start[1] = {(hsize_t)lo}, count[1] = {(hsize_t)(hi - lo)};
    H5_TRY(ds = H5Dopen2(f, name, H5P_DEFAULT));
    H5_TRY(fs = H5Dget_space(ds));
    if (H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0 ||
        (int64_t)dims[0] != numel) {
        lrsa_errorf(e, "checkpoint %s: /%s does not have %lld elements", path, name,
                    (long long)numel);
        goto fail;
    }
    if (hi > lo) {
        H5_TRY(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
        H5_TRY(ms = H5Screate_simple(1, count, NULL));
        H5_TRY(H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out));
        H5Sclose(ms);
    }
    H5Sclose(fs);
    H5Dclose(ds);
    return 0;
fail:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
    return -1;
}

int lrsa_ckpt_read(const char *path, lrsa_tensor_table *t, int64_t lo, int64_t hi, float *m,
                   float *v, lrsa_ckpt_state *s, lrsa_err *e) {
    quiet_h5 q = h5_quiet();
    hid_t f = open_ckpt(path, e), g = -1;
    if (f < 0) goto fail;
    if (check_model(f, path, t, e)) goto fail;
    H5_TRY(g = H5Gopen2(f, "param", H5P_DEFAULT));
    lrsa_table_alloc(t, LRSA_ROLE_PARAM);
    for (int i = 0; i < t->n; i++) {
        hid_t ds = H5Dopen2(g, t->desc[i].name, H5P_DEFAULT);
        int bad = ds < 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                    lrsa_table_ptr(t, LRSA_ROLE_PARAM, i)) < 0;
        if (ds >= 0) H5Dclose(ds);
        if (bad) {
            lrsa_errorf(e, "checkpoint %s: cannot read tensor '%s'", path, t->desc[i].name);
            goto fail;
        }
    }
    H5Gclose(g);
    g = -1;
    if (m && read_slab(f, path, "adam_m", lo, hi, t->numel, m, e)) goto fail;
    if (v && read_slab(f, path, "adam_v", lo, hi, t->numel, v, e)) goto fail;
    if (s) {
        memset(s, 0, sizeof *s);
        int64_t seed = 0, ws = 0, r[4];
        const char *names[] = {"step",         "adam_t",        "bad_in_row",
                               "bad_total",    "tokens_seen",   "loader_seed",
                               "loader_epoch", "loader_cursor", "world_size"};
        int64_t *dst[] = {&s->step,         &s->adam_t,        &s->bad_in_row,
                          &s->bad_total,    &s->tokens_seen,   &seed,
                          &s->loader.epoch, &s->loader.cursor, &ws};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (read_i64_attr(f, names[i], dst[i])) {
                lrsa_errorf(e, "checkpoint %s: attribute '%s' is missing", path, names[i]);
                goto fail;
            }
        for (int i = 0; i < 4; i++) {
            char name[16];
            snprintf(name, sizeof name, "rng_%d", i);
            if (read_i64_attr(f, name, &r[i])) {
                lrsa_errorf(e, "checkpoint %s: attribute '%s' is missing", path, name);
                goto fail;
            }
            s->rng.s[i] = (uint64_t)r[i];
        }
        s->loader.seed = (uint64_t)seed;
        s->world_size = (int)ws;
    }
    H5Fclose(f);
    h5_restore(q);
    return 0;
fail:
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    h5_restore(q);
    return -1;
}

void lrsa_ckpt_path(char *out, size_t cap, const char *ckpt_dir, int64_t step) {
    char name[64];
    snprintf(name, sizeof name, "step_%06lld.h5", (long long)step);
    lrsa_path_join(out, cap, ckpt_dir, name);
}

/* Parses "step_<digits>.h5" exactly; -1 otherwise (temporary files do not match). */
static int64_t ckpt_step_of(const char *name) {
    if (strncmp(name, "step_", 5)) return -1;
    const char *p = name + 5;
    int64_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0'), digits++;
    return digits && !strcmp(p, ".h5") ? v : -1;
}

/* Steps of the checkpoints in dir, descending; returns the count (malloc'd array in *steps). */
static int list_ckpts(const char *dir, int64_t **steps) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t s = ckpt_step_of(de->d_name);
        if (s < 0) continue;
        if (n == cap) *steps = lrsa_realloc(*steps, sizeof(int64_t) * (size_t)(cap = cap * 2 + 8));
        (*steps)[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t x = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = x;
        }
    return n;
}

int lrsa_ckpt_find_latest(const char *ckpt_dir, char *out, size_t cap) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps), found = 0;
    for (int i = 0; i < n && !found; i++) {
        lrsa_ckpt_path(out, cap, ckpt_dir, steps[i]);
        lrsa_err e;
        quiet_h5 q = h5_quiet();
        hid_t f = open_ckpt(out, &e);
        h5_restore(q);
        if (f >= 0) {
            H5Fclose(f);
            found = 1;
        } else {
            fprintf(stderr, "lrsa: warning: skipping unreadable checkpoint: %s\n", e.msg);
        }
    }
    free(steps);
    return found;
}

void lrsa_ckpt_prune(const char *ckpt_dir, int64_t keep) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps);
    char path[4096 + 64];
    for (int i = (int)keep; i < n; i++) {
        lrsa_ckpt_path(path, sizeof path, ckpt_dir, steps[i]);
        unlink(path);
    }
    free(steps);
    /* Leftovers of writes that were killed: "step_*.h5.tmp.<pid>". */
    DIR *d = opendir(ckpt_dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "step_", 5) && strstr(de->d_name, ".h5.tmp.")) {
            lrsa_path_join(path, sizeof path, ckpt_dir, de->d_name);
            unlink(path);
        }
    closedir(d);
}
