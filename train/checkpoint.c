#include "train/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fileio.h"
#include "train/ckpt_h5.h"

/* Every HDF5 call is checked; a failure names the call site and the file. */
#define H5_TRY(expr)                                                                               \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            lrsa_errorf(e, "%s:%d: HDF5 call `%s` failed on %s", __FILE__, __LINE__, #expr, path); \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

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

/* "1.6 GB", "12.3 MB", "456 kB" */
static void human_bytes(char *out, size_t cap, double b) {
    if (b >= 1e9)
        snprintf(out, cap, "%.1f GB", b / 1e9);
    else if (b >= 1e6)
        snprintf(out, cap, "%.1f MB", b / 1e6);
    else
        snprintf(out, cap, "%.0f kB", b / 1e3 + 0.5);
}

int64_t lrsa_ckpt_size_estimate(const lrsa_tensor_table *t, const lrsa_ckpt_text *text) {
    int64_t b = 3 * 4 * t->numel + 64 * 1024 + 512 * (int64_t)t->n; /* data, metadata */
    const char *s[] = {text->config_yaml, text->model_config_json, text->model_path,
                       text->lora_json, text->base_checksum};
    for (int i = 0; i < 5; i++) b += s[i] ? (int64_t)strlen(s[i]) : 0;
    return b;
}

/* Forces the file's data to the disk before the rename makes it the checkpoint, so a power
 * loss cannot leave a renamed but empty file (HDF5 itself does not fsync). */
static int sync_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* After a failed write HDF5 still flushes its caches when the file is closed. When a flush has
 * failed (a full disk), HDF5 1.10.8 can leave a half-closed file behind that crashes the
 * process at exit. Measured with tests/train/enospc_shim.c at every failure point: pointing
 * the file's descriptor at an anonymous in-memory file, flushing once more and then closing
 * always ends cleanly; the temporary file on disk is deleted afterwards. */
static int h5_file_fd(hid_t f) {
    void *handle = NULL;
    return H5Fget_vfd_handle(f, H5P_DEFAULT, &handle) < 0 || !handle ? -1 : *(int *)handle;
}

static void discard_further_writes(int fd) {
    if (fd < 0) return;
    int sink = (int)syscall(SYS_memfd_create, "lrsa-discarded-checkpoint", 0);
    if (sink < 0) sink = open("/dev/null", O_WRONLY);
    if (sink < 0) return;
    dup2(sink, fd);
    close(sink);
}

/* The directory part of a path ("." when there is none). */
static void dir_of(char *out, size_t cap, const char *path) {
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(out, cap, ".");
}

/* Bytes this process may still write on dir's file system (root may use the reserved blocks
 * too); -1 when unknown. */
static int64_t free_bytes(const char *dir) {
    struct statvfs v;
    if (statvfs(dir, &v) != 0) return -1;
    return (int64_t)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * (int64_t)v.f_frsize;
}

/* The message for a failed write: what failed and why (the system's reason when there is one,
 * e.g. "No space left on device"), how much the checkpoint needs and how much is free. */
static int write_failed(const char *final_path, const char *tmp_path, const char *what,
                        const char *reason, int64_t need, lrsa_err *e) {
    unlink(tmp_path);
    char dir[4200], need_s[32], free_s[64] = "an unknown amount";
    dir_of(dir, sizeof dir, final_path);
    int64_t avail = free_bytes(dir);
    if (avail >= 0) human_bytes(free_s, sizeof free_s, (double)avail);
    human_bytes(need_s, sizeof need_s, (double)need);
    return lrsa_errorf(e,
                       "cannot write checkpoint %s (%s): %s. The checkpoint needs about %s; %s "
                       "is free in %s. The partial file was removed and the earlier checkpoints "
                       "are kept: free some space (or set run_dir elsewhere), then continue with "
                       "resume=true",
                       final_path, what, reason, need_s, free_s, dir);
}

int lrsa_ckpt_write(const char *final_path, const lrsa_tensor_table *t, const float *m_full,
                    const float *v_full, const lrsa_ckpt_state *s, const lrsa_ckpt_text *text,
                    lrsa_err *e) {
    char path[4096 + 32], what[200] = "creating the file", reason[512];
    lrsa_tmp_name(path, sizeof path, final_path);
    int64_t need = lrsa_ckpt_size_estimate(t, text);
    /* Too little room is said before anything is written (a write failure below says it too,
     * for a disk that fills meanwhile or a file system that reports no free space). */
    char dir[4200];
    dir_of(dir, sizeof dir, final_path);
    int64_t avail = free_bytes(dir);
    if (avail >= 0 && avail < need)
        return write_failed(final_path, path, "checked before writing", strerror(ENOSPC), need, e);
    lrsa_h5_quiet q = lrsa_h5_quiet_begin();
    hid_t f = -1, g = -1, fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* Format 1.10 objects: the superblock, object headers (and so the attributes) and the chunk
     * indexes carry checksums too, not only the data. */
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST) < 0) {
        lrsa_h5_failure(reason, sizeof reason, NULL);
        if (fapl >= 0) H5Pclose(fapl);
        lrsa_h5_quiet_end(q);
        return lrsa_errorf(e, "%s:%d: HDF5 file-access settings failed: %s", __FILE__, __LINE__,
                           reason);
    }
    errno = 0;
    f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    int create_errno = errno;
    H5Pclose(fapl);
    if (f < 0) {
        int sys = 0;
        lrsa_h5_failure(reason, sizeof reason, &sys);
        if (!sys && create_errno) snprintf(reason, sizeof reason, "%s", strerror(create_errno));
        lrsa_h5_quiet_end(q);
        if (lrsa_file_exists(path))
            return write_failed(final_path, path, "creating the file", reason, need, e);
        return lrsa_errorf(e, "cannot create checkpoint %s (%s; is the run directory writable?)",
                           path, reason);
    }
    int bad = 0, fd = h5_file_fd(f);
    reason[0] = 0;
    snprintf(what, sizeof what, "writing the attributes");
    const char *i64_names[] = {"step",         "adam_t",        "bad_in_row",
                               "bad_total",    "tokens_seen",   "loader_seed",
                               "loader_epoch", "loader_cursor", "world_size"};
    const int64_t i64_vals[] = {s->step,         s->adam_t,        s->bad_in_row,
                                s->bad_total,    s->tokens_seen,   (int64_t)s->loader.seed,
                                s->loader.epoch, s->loader.cursor, s->world_size};
    bad = lrsa_h5_write_str_attr(f, "format", LRSA_CKPT_FORMAT) < 0;
    for (size_t i = 0; i < sizeof i64_names / sizeof i64_names[0] && !bad; i++)
        bad = lrsa_h5_write_i64_attr(f, i64_names[i], i64_vals[i]) < 0;
    for (int i = 0; i < 4 && !bad; i++) {
        char name[16];
        snprintf(name, sizeof name, "rng_%d", i);
        bad = lrsa_h5_write_i64_attr(f, name, (int64_t)s->rng.s[i]) < 0;
    }
    const char *str_names[] = {"config_yaml", "model_config_json", "model_path"};
    const char *str_vals[] = {text->config_yaml, text->model_config_json, text->model_path};
    for (int i = 0; i < 3 && !bad; i++)
        bad = lrsa_h5_write_str_attr(f, str_names[i], str_vals[i] ? str_vals[i] : "") < 0;
    /* a LoRA run (train/lora_ckpt.h): the adapter's settings and the base model's checksum */
    if (!bad && text->lora_json) bad = lrsa_h5_write_str_attr(f, "lora", text->lora_json) < 0;
    if (!bad && text->base_checksum)
        bad = lrsa_h5_write_str_attr(f, "base_checksum", text->base_checksum) < 0;
    if (!bad) bad = (g = H5Gcreate2(f, "param", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0;
    if (bad) lrsa_h5_failure(reason, sizeof reason, NULL);
    for (int i = 0; i < t->n && !bad; i++) {
        snprintf(what, sizeof what, "writing dataset /param/%s", t->desc[i].name);
        bad = lrsa_h5_write_f32(g, t->desc[i].name, t->desc[i].ndim, t->desc[i].shape,
                                lrsa_table_ptr(t, LRSA_ROLE_PARAM, i), reason, sizeof reason) < 0;
    }
    if (g >= 0 && H5Gclose(g) < 0 && !bad) {
        lrsa_h5_failure(reason, sizeof reason, NULL);
        bad = 1;
    }
    if (!bad) test_hook_sleep(s->step);
    int64_t n = t->numel;
    if (!bad) {
        snprintf(what, sizeof what, "writing dataset /adam_m");
        bad = lrsa_h5_write_f32(f, "adam_m", 1, &n, m_full, reason, sizeof reason) < 0;
    }
    if (!bad) {
        snprintf(what, sizeof what, "writing dataset /adam_v");
        bad = lrsa_h5_write_f32(f, "adam_v", 1, &n, v_full, reason, sizeof reason) < 0;
    }
    if (!bad) {
        snprintf(what, sizeof what, "flushing the file");
        bad = H5Fflush(f, H5F_SCOPE_GLOBAL) < 0;
        if (bad) lrsa_h5_failure(reason, sizeof reason, NULL);
    }
    if (!bad) snprintf(what, sizeof what, "closing the file");
    if (bad) {
        discard_further_writes(fd);
        H5Fflush(f, H5F_SCOPE_GLOBAL); /* see discard_further_writes */
    }
    if (H5Fclose(f) < 0 && !bad) {
        lrsa_h5_failure(reason, sizeof reason, NULL);
        bad = 1;
    }
    H5Eclear2(H5E_DEFAULT);
    lrsa_h5_quiet_end(q);
    if (bad) return write_failed(final_path, path, what, reason, need, e);
    if (sync_file(path))
        return write_failed(final_path, path, "syncing the file to disk", strerror(errno), need, e);
    return lrsa_rename_into_place(path, final_path, e);
}

/* Opens a checkpoint and checks its format attribute; a failure says why (HDF5's reason:
 * "truncated file", a metadata checksum, ...). */
static hid_t open_ckpt(const char *path, lrsa_err *e) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        char reason[512];
        lrsa_h5_failure(reason, sizeof reason, NULL);
        if (!lrsa_file_exists(path))
            lrsa_errorf(e, "cannot open checkpoint %s: no such file", path);
        else
            lrsa_errorf(e,
                        "cannot open checkpoint %s: %s (the file is damaged or incomplete, or "
                        "not an HDF5 file)",
                        path, reason);
        return -1;
    }
    char *fmt = lrsa_h5_read_str_attr(f, "format");
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

int lrsa_ckpt_opens(const char *path, lrsa_err *e) {
    lrsa_h5_quiet q = lrsa_h5_quiet_begin();
    hid_t f = open_ckpt(path, e);
    if (f >= 0) H5Fclose(f);
    lrsa_h5_quiet_end(q);
    return f >= 0 ? 0 : -1;
}

int lrsa_ckpt_has_attr(const char *path, const char *attr, lrsa_err *e) {
    lrsa_h5_quiet q = lrsa_h5_quiet_begin();
    hid_t f = open_ckpt(path, e);
    int rc = f < 0 ? -1 : H5Aexists(f, attr) > 0;
    if (f >= 0) H5Fclose(f);
    lrsa_h5_quiet_end(q);
    return rc;
}

char *lrsa_ckpt_read_string(const char *path, const char *attr, lrsa_err *e) {
    lrsa_h5_quiet q = lrsa_h5_quiet_begin();
    hid_t f = open_ckpt(path, e);
    char *s = NULL;
    if (f >= 0) {
        s = lrsa_h5_read_str_attr(f, attr);
        if (!s)
            lrsa_errorf(e, "checkpoint %s: attribute '%s' is missing or unreadable", path, attr);
        H5Fclose(f);
    }
    lrsa_h5_quiet_end(q);
    return s;
}

/* A dataset that could not be read: which one, and why. A checksum mismatch says the file is
 * damaged rather than blaming the caller. reason: NULL takes it from HDF5's error stack. */
static int dataset_failed(const char *path, const char *dataset, const char *reason, lrsa_err *e) {
    char why[512];
    if (!reason)
        lrsa_h5_failure(why, sizeof why, NULL);
    else
        snprintf(why, sizeof why, "%s", reason);
    int checksum = strstr(why, "checksum") != NULL;
    return lrsa_errorf(e, "checkpoint %s: dataset %s %s: %s%s", path, dataset,
                       checksum ? "fails its checksum" : "cannot be read", why,
                       checksum ? " (the file is damaged: its content changed after it was "
                                  "written; use another checkpoint)"
                                : "");
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
    lrsa_h5_quiet q = lrsa_h5_quiet_begin();
    hid_t f = open_ckpt(path, e);
    int rc = f < 0 ? -1 : check_model(f, path, t, e);
    if (f >= 0) H5Fclose(f);
    lrsa_h5_quiet_end(q);
    return rc;
}

/* Reads every element of one dataset (so every chunk's checksum is checked); counts a dataset
 * stored without checksums in *unchecked instead. */
static int verify_dataset(hid_t loc, const char *name, const char *path, const char *shown,
                          int *unchecked, lrsa_err *e) {
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return dataset_failed(path, shown, NULL, e);
    int has = lrsa_h5_has_checksum(ds), rc = 0;
    if (has < 0) {
        rc = dataset_failed(path, shown, NULL, e);
    } else if (!has) {
        (*unchecked)++;
    } else {
        char reason[512];
        if (lrsa_h5_read_through(ds, reason, sizeof reason))
            rc = dataset_failed(path, shown, reason, e);
    }
    H5Dclose(ds);
    return rc;
}

typedef struct verify_walk {
    const char *path;
    int unchecked, failed;
    lrsa_err *e;
} verify_walk;

static herr_t verify_member(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    verify_walk *w = data;
    char shown[300];
    snprintf(shown, sizeof shown, "/param/%s", name);
    if (verify_dataset(g, name, w->path, shown, &w->unchecked, w->e)) {
        w->failed = 1;
        return 1; /* stop the iteration */
    }
    return 0;
}

int lrsa_ckpt_verify(const char *path, int quiet_note, lrsa_err *e) {
    lrsa_h5_quiet q = lrsa_h5_quiet_begin();
    hid_t f = open_ckpt(path, e), g = -1;
    verify_walk w = {path, 0, 0, e};
    int rc = f < 0 ? -1 : 0;
    if (!rc && H5Lexists(f, "param", H5P_DEFAULT) <= 0)
        rc = lrsa_errorf(e, "checkpoint %s has no /param group", path);
    if (!rc && (g = H5Gopen2(f, "param", H5P_DEFAULT)) < 0)
        rc = dataset_failed(path, "/param", NULL, e);
    if (!rc) {
        herr_t it = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, verify_member, &w);
        if (w.failed)
            rc = -1;
        else if (it < 0)
            rc = dataset_failed(path, "/param", NULL, e);
    }
    const char *moments[] = {"adam_m", "adam_v"};
    for (int i = 0; i < 2 && !rc; i++) {
        char shown[16];
        snprintf(shown, sizeof shown, "/%s", moments[i]);
        if (H5Lexists(f, moments[i], H5P_DEFAULT) <= 0)
            rc = lrsa_errorf(e, "checkpoint %s has no dataset %s", path, shown);
        else
            rc = verify_dataset(f, moments[i], path, shown, &w.unchecked, e);
    }
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    lrsa_h5_quiet_end(q);
    if (!rc && w.unchecked && !quiet_note)
        fprintf(stderr,
                "lrsa: note: checkpoint %s was written without checksums (by an older lrsa): "
                "it loads, but damage to its %d datasets cannot be detected\n",
                path, w.unchecked);
    return rc;
}

static int read_slab(hid_t f, const char *path, const char *name, int64_t lo, int64_t hi,
                     int64_t numel, float *out, lrsa_err *e) {
    hid_t ds = -1, fs = -1, ms = -1;
    hsize_t dims[1], start[1] = {(hsize_t)lo}, count[1] = {(hsize_t)(hi - lo)};
    char shown[16];
    snprintf(shown, sizeof shown, "/%s", name);
    if ((ds = H5Dopen2(f, name, H5P_DEFAULT)) < 0 || (fs = H5Dget_space(ds)) < 0) {
        dataset_failed(path, shown, NULL, e);
        goto fail;
    }
    if (H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0 ||
        (int64_t)dims[0] != numel) {
        lrsa_errorf(e, "checkpoint %s: /%s does not have %lld elements", path, name,
                    (long long)numel);
        goto fail;
    }
    if (hi > lo) {
        H5_TRY(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
        H5_TRY(ms = H5Screate_simple(1, count, NULL));
        if (H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) < 0) {
            dataset_failed(path, shown, NULL, e);
            goto fail;
        }
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
    lrsa_h5_quiet q = lrsa_h5_quiet_begin();
    hid_t f = open_ckpt(path, e), g = -1;
    if (f < 0) goto fail;
    if (check_model(f, path, t, e)) goto fail;
    H5_TRY(g = H5Gopen2(f, "param", H5P_DEFAULT));
    lrsa_table_alloc(t, LRSA_ROLE_PARAM);
    for (int i = 0; i < t->n; i++) {
        hid_t ds = H5Dopen2(g, t->desc[i].name, H5P_DEFAULT);
        int bad = ds < 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                    lrsa_table_ptr(t, LRSA_ROLE_PARAM, i)) < 0;
        if (bad) {
            char shown[300];
            snprintf(shown, sizeof shown, "/param/%s", t->desc[i].name);
            dataset_failed(path, shown, NULL, e);
        }
        if (ds >= 0) H5Dclose(ds);
        if (bad) goto fail;
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
            if (lrsa_h5_read_i64_attr(f, names[i], dst[i])) {
                lrsa_errorf(e, "checkpoint %s: attribute '%s' is missing", path, names[i]);
                goto fail;
            }
        for (int i = 0; i < 4; i++) {
            char name[16];
            snprintf(name, sizeof name, "rng_%d", i);
            if (lrsa_h5_read_i64_attr(f, name, &r[i])) {
                lrsa_errorf(e, "checkpoint %s: attribute '%s' is missing", path, name);
                goto fail;
            }
            s->rng.s[i] = (uint64_t)r[i];
        }
        s->loader.seed = (uint64_t)seed;
        s->world_size = (int)ws;
    }
    H5Fclose(f);
    lrsa_h5_quiet_end(q);
    return 0;
fail:
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    lrsa_h5_quiet_end(q);
    return -1;
}
