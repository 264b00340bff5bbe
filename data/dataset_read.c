/* Reading and validating "lrsa-qa-v1" HDF5 datasets (the whole file is loaded into memory). */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "data/dataset_h5.h"

/* Reads a string attribute (variable or fixed length). Returns a malloc'd copy or NULL. */
static char *read_str_attr(hid_t obj, const char *name, const char *path, lrsa_err *e) {
    hid_t attr = -1, type = -1, mem = -1;
    char *out = NULL;
    htri_t exists = H5Aexists(obj, name);
    if (exists <= 0) {
        lrsa_errorf(e,
                    "%s: missing root attribute '%s'; the file was not written by `lrsa prepare` "
                    "(re-create it with `lrsa prepare`)",
                    path, name);
        return NULL;
    }
    LRSA_H5_TRY(attr = H5Aopen(obj, name, H5P_DEFAULT), path, name, e);
    LRSA_H5_TRY(type = H5Aget_type(attr), path, name, e);
    if (H5Tget_class(type) != H5T_STRING) {
        lrsa_errorf(e,
                    "%s: root attribute '%s' is not a string; re-create the file with `lrsa "
                    "prepare`",
                    path, name);
        goto fail;
    }
    if (H5Tis_variable_str(type) > 0) {
        char *v = NULL;
        /* Same character set as the file (HDF5 refuses ASCII <-> UTF-8 conversions). */
        LRSA_H5_TRY(mem = H5Tcopy(type), path, name, e);
        LRSA_H5_TRY(H5Aread(attr, mem, &v), path, name, e);
        out = lrsa_strdup(v ? v : "");
        H5free_memory(v);
    } else {
        size_t sz = H5Tget_size(type);
        char *buf = lrsa_calloc(sz + 1, 1);
        LRSA_H5_TRY(mem = H5Tcopy(H5T_C_S1), path, name, e);
        LRSA_H5_TRY(H5Tset_size(mem, sz + 1), path, name, e);
        LRSA_H5_TRY(H5Tset_cset(mem, H5Tget_cset(type)), path, name, e);
        if (H5Aread(attr, mem, buf) < 0) {
            free(buf);
            lrsa_errorf(e, "%s: cannot read root attribute '%s' (%s:%d)", path, name, __FILE__,
                        __LINE__);
            goto fail;
        }
        out = buf;
    }
fail:
    if (mem >= 0) H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    return out;
}

static int read_i64_attr(hid_t obj, const char *name, int64_t *v, const char *path, lrsa_err *e) {
    hid_t attr = -1;
    int rc = -1;
    if (H5Aexists(obj, name) <= 0)
        return lrsa_errorf(e,
                           "%s: missing root attribute '%s'; re-create the file with `lrsa "
                           "prepare`",
                           path, name);
    LRSA_H5_TRY(attr = H5Aopen(obj, name, H5P_DEFAULT), path, name, e);
    LRSA_H5_TRY(H5Aread(attr, H5T_NATIVE_INT64, v), path, name, e);
    rc = 0;
fail:
    if (attr >= 0) H5Aclose(attr);
    return rc;
}

/* Opens a 1-D dataset and returns its length (or -1 with *e set). */
static hid_t open_1d(hid_t file, const char *name, int64_t *len, const char *path, lrsa_err *e) {
    hid_t ds = -1, space = -1;
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        lrsa_errorf(e,
                    "%s: missing dataset /%s; the file is not a complete lrsa-qa-v1 dataset "
                    "(re-create it with `lrsa prepare`)",
                    path, name);
        return -1;
    }
    H5E_BEGIN_TRY {
        ds = H5Dopen2(file, name, H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (ds < 0) {
        lrsa_errorf(e, "%s: cannot open dataset /%s", path, name);
        return -1;
    }
    space = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    if (space < 0 || H5Sget_simple_extent_ndims(space) != 1 ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        lrsa_errorf(e, "%s: dataset /%s must be one-dimensional", path, name);
        if (space >= 0) H5Sclose(space);
        H5Dclose(ds);
        return -1;
    }
    H5Sclose(space);
    *len = (int64_t)dims[0];
    return ds;
}

static int read_1d(hid_t file, const char *name, hid_t mem_type, size_t elem, int64_t expect,
                   void **out, const char *path, lrsa_err *e) {
    int64_t len = 0;
    hid_t ds = open_1d(file, name, &len, path, e);
    if (ds < 0) return -1;
    if (len != expect) {
        H5Dclose(ds);
        return lrsa_errorf(e,
                           "%s: dataset /%s has %lld entries but %lld were expected; the file "
                           "is inconsistent (re-create it with `lrsa prepare`)",
                           path, name, (long long)len, (long long)expect);
    }
    *out = lrsa_malloc(elem * (size_t)(len > 0 ? len : 1));
    int rc = 0;
    if (len > 0) {
        herr_t st;
        H5E_BEGIN_TRY {
            st = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out);
        }
        H5E_END_TRY;
        if (st < 0)
            rc = lrsa_errorf(e, "%s: cannot read dataset /%s (wrong type or corrupt data; %s:%d)",
                             path, name, __FILE__, __LINE__);
    }
    H5Dclose(ds);
    return rc;
}

/* Reads the 1-D string dataset /name of d->n entries into *out (malloc'd copies). Files are
 * written with fixed-length strings; variable-length ones (files written before that change) are
 * still read. */
static int read_strings(hid_t file, const char *name, const lrsa_dataset *d, char ***out,
                        const char *path, lrsa_err *e) {
    int64_t len = 0;
    hid_t ds = open_1d(file, name, &len, path, e), type = -1, ftype = -1;
    int rc = -1;
    char **tmp = NULL;
    char *packed = NULL;
    if (ds < 0) return -1;
    if (len != d->n) {
        lrsa_errorf(e,
                    "%s: dataset /%s has %lld entries but /offsets says %lld samples; "
                    "re-create the file with `lrsa prepare`",
                    path, name, (long long)len, (long long)d->n);
        goto fail;
    }
    LRSA_H5_TRY(ftype = H5Dget_type(ds), path, name, e);
    if (H5Tget_class(ftype) != H5T_STRING) {
        lrsa_errorf(e, "%s: dataset /%s must hold strings; re-create the file with `lrsa prepare`",
                    path, name);
        goto fail;
    }
    *out = lrsa_calloc((size_t)(len > 0 ? len : 1), sizeof(char *));
    if (len > 0 && H5Tis_variable_str(ftype) > 0) {
        tmp = lrsa_calloc((size_t)len, sizeof(char *));
        LRSA_H5_TRY(type = H5Tcopy(ftype), path, name, e);
        LRSA_H5_TRY(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp), path, name, e);
        for (int64_t i = 0; i < len; i++) (*out)[i] = lrsa_strdup(tmp[i] ? tmp[i] : "");
        hid_t space = H5Dget_space(ds);
        if (space >= 0) {
            H5Dvlen_reclaim(type, space, H5P_DEFAULT, tmp);
            H5Sclose(space);
        }
    } else if (len > 0) {
        /* Read as null-terminated strings one byte wider than the file's, so each ends in 0. */
        size_t width = H5Tget_size(ftype) + 1;
        if (width < 2 || (size_t)len > SIZE_MAX / width) {
            lrsa_errorf(e, "%s: dataset /%s has an impossible string size; re-create the file",
                        path, name);
            goto fail;
        }
        packed = lrsa_calloc((size_t)len * width, 1);
        LRSA_H5_TRY(type = H5Tcopy(H5T_C_S1), path, name, e);
        LRSA_H5_TRY(H5Tset_size(type, width), path, name, e);
        LRSA_H5_TRY(H5Tset_cset(type, H5Tget_cset(ftype)), path, name, e);
        LRSA_H5_TRY(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed), path, name, e);
        for (int64_t i = 0; i < len; i++) (*out)[i] = lrsa_strdup(packed + (size_t)i * width);
    }
    rc = 0;
fail:
    free(tmp);
    free(packed);
    if (type >= 0) H5Tclose(type);
    if (ftype >= 0) H5Tclose(ftype);
    H5Dclose(ds);
    return rc;
}

/* /sample_task is optional (files written before task mixtures have none). */
static int read_sample_tasks(hid_t file, lrsa_dataset *d, const char *path, lrsa_err *e) {
    if (H5Lexists(file, "sample_task", H5P_DEFAULT) <= 0) return 0;
    return read_strings(file, "sample_task", d, &d->sample_task, path, e);
}

/* /needle_spans is optional: int64 [m, 3] rows (sample, start, end) sorted by (sample, start),
 * each span inside its sample. Builds d->span_first. */
static int read_needle_spans(hid_t file, lrsa_dataset *d, const char *path, lrsa_err *e) {
    if (H5Lexists(file, "needle_spans", H5P_DEFAULT) <= 0) return 0;
    const char *fix = "re-create the file with `lrsa prepare --synthetic` (or drop /needle_spans)";
    hid_t ds = -1, space = -1;
    int rc = -1;
    hsize_t dims[2] = {0, 0};
    H5E_BEGIN_TRY {
        ds = H5Dopen2(file, "needle_spans", H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (ds < 0) return lrsa_errorf(e, "%s: cannot open dataset /needle_spans; %s", path, fix);
    space = H5Dget_space(ds);
    if (space < 0 || H5Sget_simple_extent_ndims(space) != 2 ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0 || dims[1] != 3 ||
        dims[0] > (hsize_t)(INT64_MAX / 24)) {
        lrsa_errorf(e, "%s: dataset /needle_spans must be int64 [m, 3] (sample, start, end); %s",
                    path, fix);
        goto fail;
    }
    d->n_spans = (int64_t)dims[0];
    d->needle_spans = lrsa_malloc((size_t)(d->n_spans > 0 ? d->n_spans : 1) * 3 * sizeof(int64_t));
    if (d->n_spans > 0) {
        herr_t st;
        H5E_BEGIN_TRY {
            st = H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->needle_spans);
        }
        H5E_END_TRY;
        if (st < 0) {
            lrsa_errorf(e, "%s: cannot read dataset /needle_spans (wrong type or corrupt); %s",
                        path, fix);
            goto fail;
        }
    }
    d->span_first = lrsa_calloc((size_t)d->n + 1, sizeof(int64_t));
    for (int64_t r = 0; r < d->n_spans; r++) {
        const int64_t *row = d->needle_spans + 3 * r;
        if (row[0] < 0 || row[0] >= d->n) {
            lrsa_errorf(e, "%s: /needle_spans row %lld names sample %lld, but there are %lld; %s",
                        path, (long long)r, (long long)row[0], (long long)d->n, fix);
            goto fail;
        }
        int64_t len = d->offsets[row[0] + 1] - d->offsets[row[0]];
        if (row[1] < 0 || row[2] <= row[1] || row[2] > len) {
            lrsa_errorf(e,
                        "%s: /needle_spans row %lld: span [%lld, %lld) is outside sample %lld's "
                        "%lld tokens; %s",
                        path, (long long)r, (long long)row[1], (long long)row[2], (long long)row[0],
                        (long long)len, fix);
            goto fail;
        }
        if (r > 0 && (row[-3] > row[0] || (row[-3] == row[0] && row[-2] > row[1]))) {
            lrsa_errorf(e,
                        "%s: /needle_spans is not sorted by (sample, start) at row %lld; sort "
                        "its rows or %s",
                        path, (long long)r, fix);
            goto fail;
        }
        d->span_first[row[0] + 1]++;
    }
    for (int64_t i = 0; i < d->n; i++) d->span_first[i + 1] += d->span_first[i];
    rc = 0;
fail:
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return rc;
}

static int validate(const lrsa_dataset *d, const char *path, lrsa_err *e) {
    if (d->offsets[0] != 0)
        return lrsa_errorf(e, "%s: /offsets[0] is %lld, must be 0", path, (long long)d->offsets[0]);
    for (int64_t i = 0; i < d->n; i++) {
        if (d->offsets[i + 1] <= d->offsets[i] || d->offsets[i + 1] > d->total)
            return lrsa_errorf(e,
                               "%s: /offsets is not strictly increasing within /tokens (%lld "
                               "entries) at sample %lld (%lld -> %lld)",
                               path, (long long)d->total, (long long)i, (long long)d->offsets[i],
                               (long long)d->offsets[i + 1]);
        int64_t len = d->offsets[i + 1] - d->offsets[i];
        if (d->prompt_len[i] < 0 || d->prompt_len[i] > len)
            return lrsa_errorf(e,
                               "%s: /prompt_len[%lld] = %lld is outside the sample's %lld tokens",
                               path, (long long)i, (long long)d->prompt_len[i], (long long)len);
    }
    if (d->offsets[d->n] != d->total)
        return lrsa_errorf(e, "%s: /offsets ends at %lld but /tokens has %lld entries", path,
                           (long long)d->offsets[d->n], (long long)d->total);
    for (int64_t t = 0; t < d->total; t++)
        if (d->loss_mask[t] > 1)
            return lrsa_errorf(e, "%s: /loss_mask[%lld] = %u, must be 0 or 1", path, (long long)t,
                               d->loss_mask[t]);
    return 0;
}

int lrsa_dataset_open(lrsa_dataset *d, const char *path, lrsa_err *e) {
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    if (!lrsa_file_exists(path))
        return lrsa_errorf(e, "dataset %s does not exist; create it with `lrsa prepare`", path);
    hid_t file = -1;
    H5E_BEGIN_TRY {
        file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (file < 0)
        return lrsa_errorf(e,
                           "%s is not an HDF5 file (or is damaged); create datasets with `lrsa "
                           "prepare`",
                           path);
    int rc = -1;
    int64_t n_offsets = 0, n_attr = 0;
    char *format = NULL;
    H5E_BEGIN_TRY {
        format = read_str_attr(file, "format", path, e);
    }
    H5E_END_TRY;
    if (!format) goto fail;
    if (strcmp(format, LRSA_DATASET_FORMAT) != 0) {
        lrsa_errorf(e,
                    "%s: root attribute format is '%s', expected '%s'; re-create the file with "
                    "this version's `lrsa prepare`",
                    path, format, LRSA_DATASET_FORMAT);
        goto fail;
    }
    H5E_BEGIN_TRY {
        d->tokenizer_checksum = read_str_attr(file, "tokenizer_checksum", path, e);
        if (d->tokenizer_checksum) d->chat_template = read_str_attr(file, "chat_template", path, e);
        if (d->chat_template) d->source = read_str_attr(file, "source", path, e);
        if (d->source) d->task = read_str_attr(file, "task", path, e);
    }
    H5E_END_TRY;
    if (!d->task) goto fail;
    if (read_i64_attr(file, "max_len", &d->max_len, path, e) ||
        read_i64_attr(file, "n_samples", &n_attr, path, e))
        goto fail;
    hid_t ds = open_1d(file, "offsets", &n_offsets, path, e);
    if (ds < 0) goto fail;
    H5Dclose(ds);
    if (n_offsets < 1) {
        lrsa_errorf(e, "%s: dataset /offsets is empty (it needs n_samples + 1 entries)", path);
        goto fail;
    }
    d->n = n_offsets - 1;
    if (n_attr != d->n) {
        lrsa_errorf(e, "%s: attribute n_samples = %lld but /offsets describes %lld samples", path,
                    (long long)n_attr, (long long)d->n);
        goto fail;
    }
    ds = open_1d(file, "tokens", &d->total, path, e);
    if (ds < 0) goto fail;
    H5Dclose(ds);
    if (read_1d(file, "offsets", H5T_NATIVE_INT64, 8, d->n + 1, (void **)&d->offsets, path, e) ||
        read_1d(file, "tokens", H5T_NATIVE_INT32, 4, d->total, (void **)&d->tokens, path, e) ||
        read_1d(file, "loss_mask", H5T_NATIVE_UINT8, 1, d->total, (void **)&d->loss_mask, path,
                e) ||
        read_1d(file, "prompt_len", H5T_NATIVE_INT64, 8, d->n, (void **)&d->prompt_len, path, e) ||
        read_strings(file, "answers", d, &d->answers, path, e) ||
        read_sample_tasks(file, d, path, e) || validate(d, path, e) ||
        read_needle_spans(file, d, path, e))
        goto fail;
    rc = 0;
fail:
    free(format);
    H5Fclose(file);
    if (rc != 0) lrsa_dataset_close(d);
    return rc;
}

void lrsa_dataset_close(lrsa_dataset *d) {
    if (d->answers)
        for (int64_t i = 0; i < d->n; i++) free(d->answers[i]);
    free(d->answers);
    if (d->sample_task)
        for (int64_t i = 0; i < d->n; i++) free(d->sample_task[i]);
    free(d->sample_task);
    free(d->needle_spans);
    free(d->span_first);
    free(d->tokens);
    free(d->loss_mask);
    free(d->offsets);
    free(d->prompt_len);
    free(d->tokenizer_checksum);
    free(d->chat_template);
    free(d->source);
    free(d->task);
    char path[sizeof d->path];
    memcpy(path, d->path, sizeof path);
    memset(d, 0, sizeof *d);
    memcpy(d->path, path, sizeof path);
}

int64_t lrsa_dataset_size(const lrsa_dataset *d) {
    return d->n;
}
const int32_t *lrsa_dataset_ids(const lrsa_dataset *d, int64_t i) {
    return d->tokens + d->offsets[i];
}
const uint8_t *lrsa_dataset_mask(const lrsa_dataset *d, int64_t i) {
    return d->loss_mask + d->offsets[i];
}
int64_t lrsa_dataset_len(const lrsa_dataset *d, int64_t i) {
    return d->offsets[i + 1] - d->offsets[i];
}
int64_t lrsa_dataset_prompt_len(const lrsa_dataset *d, int64_t i) {
    return d->prompt_len[i];
}
const char *lrsa_dataset_answer(const lrsa_dataset *d, int64_t i) {
    return d->answers[i];
}
const char *lrsa_dataset_sample_task(const lrsa_dataset *d, int64_t i) {
    return d->sample_task ? d->sample_task[i] : d->task;
}
int64_t lrsa_dataset_needle_spans(const lrsa_dataset *d, int64_t i, const int64_t **rows) {
    *rows = NULL;
    if (!d->span_first) return 0;
    *rows = d->needle_spans + 3 * d->span_first[i];
    return d->span_first[i + 1] - d->span_first[i];
}
int lrsa_dataset_has_needle_spans(const lrsa_dataset *d) {
    return d->needle_spans != NULL;
}
int64_t lrsa_dataset_n_target(const lrsa_dataset *d, int64_t i) {
    int64_t s = 0;
    const uint8_t *m = lrsa_dataset_mask(d, i);
    for (int64_t t = 0, n = lrsa_dataset_len(d, i); t < n; t++) s += m[t];
    return s;
}

int lrsa_dataset_check_tokenizer(const lrsa_dataset *d, const char *tokenizer_checksum,
                                 lrsa_err *e) {
    if (tokenizer_checksum && d->tokenizer_checksum &&
        strcmp(tokenizer_checksum, d->tokenizer_checksum) == 0)
        return 0;
    return lrsa_errorf(e,
                       "%s was tokenised with another tokenizer (checksum %s, the model's is "
                       "%s); re-create it with `lrsa prepare --model` of this model",
                       d->path, d->tokenizer_checksum ? d->tokenizer_checksum : "(none)",
                       tokenizer_checksum ? tokenizer_checksum : "(none)");
}
