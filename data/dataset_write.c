/* Writing "lrsa-qa-v1" HDF5 datasets: samples are collected in memory, then written in one go to
 * a temporary name and renamed into place, so a failure never leaves a partial file. Object
 * modification times are not recorded, so the same samples give a byte-identical file. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "data/dataset_h5.h"

struct lrsa_dataset_writer {
    int32_t *tokens;
    uint8_t *mask;
    int64_t total, cap_tokens;
    int64_t *offsets; /* [n+1] */
    int64_t *prompt_len;
    char **answers;
    char **tasks; /* [n] per-sample task tags (NULL = untagged) */
    int64_t n, cap_samples;
    int64_t *spans; /* [n_spans * 3] needle spans (sample, start, end), in the order added */
    int64_t n_spans, cap_spans;
};

lrsa_dataset_writer *lrsa_dataset_writer_new(void) {
    lrsa_dataset_writer *w = lrsa_calloc(1, sizeof *w);
    w->cap_samples = 64;
    w->offsets = lrsa_malloc((size_t)(w->cap_samples + 1) * sizeof(int64_t));
    w->prompt_len = lrsa_malloc((size_t)w->cap_samples * sizeof(int64_t));
    w->answers = lrsa_malloc((size_t)w->cap_samples * sizeof(char *));
    w->tasks = lrsa_malloc((size_t)w->cap_samples * sizeof(char *));
    w->offsets[0] = 0;
    return w;
}

void lrsa_dataset_writer_free(lrsa_dataset_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) {
        free(w->answers[i]);
        free(w->tasks[i]);
    }
    free(w->answers);
    free(w->tasks);
    free(w->prompt_len);
    free(w->offsets);
    free(w->tokens);
    free(w->mask);
    free(w->spans);
    free(w);
}

int64_t lrsa_dataset_writer_count(const lrsa_dataset_writer *w) {
    return w->n;
}

void lrsa_dataset_writer_set_task(lrsa_dataset_writer *w, int64_t i, const char *task) {
    free(w->tasks[i]);
    w->tasks[i] = task ? lrsa_strdup(task) : NULL;
}

int64_t lrsa_dataset_writer_len(const lrsa_dataset_writer *w, int64_t i) {
    return w->offsets[i + 1] - w->offsets[i];
}

const char *lrsa_dataset_writer_task(const lrsa_dataset_writer *w, int64_t i) {
    return w->tasks[i];
}

int lrsa_dataset_writer_add(lrsa_dataset_writer *w, const int32_t *ids, const uint8_t *mask,
                            int64_t n, int64_t prompt_len, const char *answer, lrsa_err *e) {
    if (n <= 0) return lrsa_errorf(e, "dataset sample %lld is empty (no tokens)", (long long)w->n);
    if (prompt_len < 0 || prompt_len > n)
        return lrsa_errorf(e, "dataset sample %lld: prompt_len %lld is outside [0, %lld]",
                           (long long)w->n, (long long)prompt_len, (long long)n);
    if (!answer) return lrsa_errorf(e, "dataset sample %lld has no answer text", (long long)w->n);
    if (w->n == w->cap_samples) {
        w->cap_samples *= 2;
        w->offsets = lrsa_realloc(w->offsets, (size_t)(w->cap_samples + 1) * sizeof(int64_t));
        w->prompt_len = lrsa_realloc(w->prompt_len, (size_t)w->cap_samples * sizeof(int64_t));
        w->answers = lrsa_realloc(w->answers, (size_t)w->cap_samples * sizeof(char *));
        w->tasks = lrsa_realloc(w->tasks, (size_t)w->cap_samples * sizeof(char *));
    }
    if (w->total + n > w->cap_tokens) {
        int64_t cap = w->cap_tokens ? w->cap_tokens : 4096;
        while (cap < w->total + n) cap *= 2;
        w->tokens = lrsa_realloc(w->tokens, (size_t)cap * sizeof(int32_t));
        w->mask = lrsa_realloc(w->mask, (size_t)cap);
        w->cap_tokens = cap;
    }
    memcpy(w->tokens + w->total, ids, (size_t)n * sizeof(int32_t));
    memcpy(w->mask + w->total, mask, (size_t)n);
    w->total += n;
    w->prompt_len[w->n] = prompt_len;
    w->answers[w->n] = lrsa_strdup(answer);
    w->tasks[w->n] = NULL;
    w->n++;
    w->offsets[w->n] = w->total;
    return 0;
}

int lrsa_dataset_writer_add_span(lrsa_dataset_writer *w, int64_t i, int64_t start, int64_t end,
                                 lrsa_err *e) {
    if (i < 0 || i >= w->n)
        return lrsa_errorf(e, "needle span for sample %lld: no such sample (%lld written)",
                           (long long)i, (long long)w->n);
    int64_t len = w->offsets[i + 1] - w->offsets[i];
    if (start < 0 || end <= start || end > len)
        return lrsa_errorf(e, "needle span [%lld, %lld) of sample %lld is outside its %lld tokens",
                           (long long)start, (long long)end, (long long)i, (long long)len);
    if (w->n_spans > 0) {
        const int64_t *last = w->spans + 3 * (w->n_spans - 1);
        if (last[0] > i || (last[0] == i && last[1] > start))
            return lrsa_errorf(e,
                               "needle span [%lld, %lld) of sample %lld added after the span "
                               "[%lld, %lld) of sample %lld; add spans in (sample, start) order",
                               (long long)start, (long long)end, (long long)i, (long long)last[1],
                               (long long)last[2], (long long)last[0]);
    }
    if (w->n_spans == w->cap_spans) {
        w->cap_spans = w->cap_spans ? 2 * w->cap_spans : 64;
        w->spans = lrsa_realloc(w->spans, (size_t)w->cap_spans * 3 * sizeof(int64_t));
    }
    int64_t *row = w->spans + 3 * w->n_spans++;
    row[0] = i;
    row[1] = start;
    row[2] = end;
    return 0;
}

/* A 1-D dataset of n entries (cols = 0) or a 2-D one of n rows of cols; compress: chunked,
 * shuffled and deflated (1-D only; chunk size capped by the data size). */
static int write_table(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int64_t n,
                       int cols, const void *data, int compress, const char *path, lrsa_err *e) {
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)cols};
    hsize_t chunk[1] = {(hsize_t)(n < 65536 ? (n > 0 ? n : 1) : 65536)};
    hid_t space = -1, dcpl = -1, ds = -1;
    int rc = -1;
    LRSA_H5_TRY(space = H5Screate_simple(cols > 0 ? 2 : 1, dims, NULL), path, name, e);
    LRSA_H5_TRY(dcpl = H5Pcreate(H5P_DATASET_CREATE), path, name, e);
    LRSA_H5_TRY(H5Pset_obj_track_times(dcpl, 0), path, name, e);
    if (compress && n > 0 && cols == 0) {
        LRSA_H5_TRY(H5Pset_chunk(dcpl, 1, chunk), path, name, e);
        LRSA_H5_TRY(H5Pset_shuffle(dcpl), path, name, e);
        LRSA_H5_TRY(H5Pset_deflate(dcpl, 4), path, name, e);
    }
    LRSA_H5_TRY(ds = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), path,
                name, e);
    if (n > 0)
        LRSA_H5_TRY(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path, name, e);
    rc = 0;
fail:
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

/* /needle_spans int64 [m, 3], only when some sample has a span (files without spans stay as they
 * were). Rows are already in (sample, start) order: add_span checks it. */
static int write_spans(hid_t file, const lrsa_dataset_writer *w, const char *path, lrsa_err *e) {
    if (w->n_spans == 0) return 0;
    return write_table(file, "needle_spans", H5T_STD_I64LE, H5T_NATIVE_INT64, w->n_spans, 3,
                       w->spans, 0, path, e);
}

/* Strings are written fixed-length (null-padded): they live in the object header, which the 1.10
 * format checksums, instead of HDF5's global heap, which has no checksum and whose damage makes
 * libhdf5 1.10 loop or crash inside H5Aread/H5Dread (found by fuzzing the reader, docs/DATA.md). */
static hid_t fixed_string_type(size_t longest) {
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return -1;
    if (H5Tset_size(type, longest > 0 ? longest : 1) < 0 ||
        H5Tset_strpad(type, H5T_STR_NULLPAD) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        H5Tclose(type);
        return -1;
    }
    return type;
}

static int write_str_attr(hid_t obj, const char *name, const char *value, const char *path,
                          lrsa_err *e) {
    hid_t type = -1, space = -1, attr = -1;
    int rc = -1;
    const char *v = value ? value : "";
    size_t len = strlen(v); /* the type holds len bytes (1 for ""): v has them, with its NUL */
    LRSA_H5_TRY(type = fixed_string_type(len), path, name, e);
    LRSA_H5_TRY(space = H5Screate(H5S_SCALAR), path, name, e);
    LRSA_H5_TRY(attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), path, name, e);
    LRSA_H5_TRY(H5Awrite(attr, type, v), path, name, e);
    rc = 0;
fail:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return rc;
}

static int write_i64_attr(hid_t obj, const char *name, int64_t value, const char *path,
                          lrsa_err *e) {
    hid_t space = -1, attr = -1;
    int rc = -1;
    LRSA_H5_TRY(space = H5Screate(H5S_SCALAR), path, name, e);
    LRSA_H5_TRY(attr = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), path,
                name, e);
    LRSA_H5_TRY(H5Awrite(attr, H5T_NATIVE_INT64, &value), path, name, e);
    rc = 0;
fail:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return rc;
}

/* A 1-D dataset of n fixed-length UTF-8 strings (/answers, /sample_task), each padded with zeros
 * to the longest one (why fixed-length: fixed_string_type). */
static int write_strings(hid_t file, const char *name, char *const *strs, int64_t n,
                         const char *path, lrsa_err *e) {
    hid_t type = -1, space = -1, dcpl = -1, ds = -1;
    int rc = -1;
    hsize_t dims[1] = {(hsize_t)n};
    size_t longest = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len = strlen(strs[i] ? strs[i] : "");
        if (len > longest) longest = len;
    }
    size_t width = longest > 0 ? longest : 1;
    char *packed = lrsa_calloc((size_t)(n > 0 ? n : 1) * width, 1);
    for (int64_t i = 0; i < n; i++)
        if (strs[i]) memcpy(packed + (size_t)i * width, strs[i], strlen(strs[i]));
    LRSA_H5_TRY(type = fixed_string_type(longest), path, name, e);
    LRSA_H5_TRY(space = H5Screate_simple(1, dims, NULL), path, name, e);
    LRSA_H5_TRY(dcpl = H5Pcreate(H5P_DATASET_CREATE), path, name, e);
    LRSA_H5_TRY(H5Pset_obj_track_times(dcpl, 0), path, name, e);
    LRSA_H5_TRY(ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), path,
                name, e);
    LRSA_H5_TRY(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed), path, name, e);
    rc = 0;
fail:
    free(packed);
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return rc;
}

/* /sample_task, only when some sample is tagged (untagged ones get the root task). */
static int write_tasks(hid_t file, const lrsa_dataset_writer *w, const char *root_task,
                       const char *path, lrsa_err *e) {
    int64_t tagged = 0;
    for (int64_t i = 0; i < w->n; i++) tagged += w->tasks[i] != NULL;
    if (tagged == 0) return 0;
    char **v = lrsa_malloc((size_t)w->n * sizeof(char *));
    for (int64_t i = 0; i < w->n; i++)
        v[i] = w->tasks[i] ? w->tasks[i] : (char *)(root_task ? root_task : "");
    int rc = write_strings(file, "sample_task", v, w->n, path, e);
    free(v);
    return rc;
}

static int write_all(hid_t file, const lrsa_dataset_writer *w, const lrsa_dataset_meta *m,
                     const char *path, lrsa_err *e) {
    if (write_table(file, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, w->total, 0, w->tokens, 1,
                    path, e) ||
        write_table(file, "loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, w->total, 0, w->mask, 1,
                    path, e) ||
        write_table(file, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, w->n + 1, 0, w->offsets, 1,
                    path, e) ||
        write_table(file, "prompt_len", H5T_STD_I64LE, H5T_NATIVE_INT64, w->n, 0, w->prompt_len, 1,
                    path, e) ||
        write_strings(file, "answers", w->answers, w->n, path, e) ||
        write_tasks(file, w, m->task, path, e) || write_spans(file, w, path, e))
        return -1;
    if (write_str_attr(file, "format", LRSA_DATASET_FORMAT, path, e) ||
        write_str_attr(file, "tokenizer_checksum", m->tokenizer_checksum, path, e) ||
        write_str_attr(file, "chat_template", m->chat_template, path, e) ||
        write_str_attr(file, "source", m->source, path, e) ||
        write_str_attr(file, "task", m->task, path, e) ||
        write_i64_attr(file, "n_samples", w->n, path, e) ||
        write_i64_attr(file, "max_len", m->max_len, path, e))
        return -1;
    return 0;
}

int lrsa_dataset_writer_commit(lrsa_dataset_writer *w, const char *path,
                               const lrsa_dataset_meta *meta, lrsa_err *e) {
    if (w->n == 0)
        return lrsa_errorf(e,
                           "%s: no samples to write (every input was dropped or skipped); "
                           "check the input and the --max-len/--skip-bad settings",
                           path);
    char tmp[4200];
    lrsa_tmp_name(tmp, sizeof tmp, path);
    hid_t fcpl = -1, fapl = -1, file = -1;
    int rc = -1;
    LRSA_H5_TRY(fcpl = H5Pcreate(H5P_FILE_CREATE), path, "(file creation)", e);
    LRSA_H5_TRY(H5Pset_obj_track_times(fcpl, 0), path, "(file creation)", e);
    /* The 1.10 format checksums object headers (where the strings are): damage is detected. */
    LRSA_H5_TRY(fapl = H5Pcreate(H5P_FILE_ACCESS), path, "(file creation)", e);
    LRSA_H5_TRY(H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110), path,
                "(file creation)", e);
    H5E_BEGIN_TRY {
        file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    }
    H5E_END_TRY;
    if (file < 0) {
        lrsa_errorf(e,
                    "cannot create %s (temporary file for %s): check that the directory exists "
                    "and is writable",
                    tmp, path);
        goto fail;
    }
    if (write_all(file, w, meta, path, e) != 0) goto fail;
    hid_t f = file;
    file = -1;
    if (H5Fclose(f) < 0) {
        lrsa_errorf(e, "%s: HDF5 failed to close %s (%s:%d)", path, tmp, __FILE__, __LINE__);
        goto fail;
    }
    if (lrsa_rename_into_place(tmp, path, e) != 0) goto fail;
    rc = 0;
fail:
    if (file >= 0) H5Fclose(file);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (rc != 0) unlink(tmp);
    return rc;
}
