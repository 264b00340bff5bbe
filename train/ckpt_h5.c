#include "train/ckpt_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/tensor_table.h"
#include "base/error.h"

/* About 4 MiB of float32 per chunk: small enough to check and cache, large enough that the
 * per-chunk index and checksum (4 bytes) cost nothing. */
#define CHUNK_ELEMS ((int64_t)1 << 20)

lrsa_h5_quiet lrsa_h5_quiet_begin(void) {
    lrsa_h5_quiet q;
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void lrsa_h5_quiet_end(lrsa_h5_quiet q) {
    H5Eset_auto2(H5E_DEFAULT, q.fn, q.data);
}

typedef struct failure_walk {
    char innermost[256];
    int sys_errno;
} failure_walk;

static herr_t walk_one(unsigned n, const H5E_error2_t *err, void *data) {
    failure_walk *w = data;
    const char *desc = err->desc ? err->desc : "";
    if (n == 0) snprintf(w->innermost, sizeof w->innermost, "%s", desc);
    /* The POSIX driver records a failed read/write as "... errno = 28, error message = ..." */
    const char *p = strstr(desc, "errno = ");
    if (p && !w->sys_errno) w->sys_errno = atoi(p + 8);
    return 0;
}

void lrsa_h5_failure(char *out, size_t cap, int *sys_errno) {
    failure_walk w = {"", 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_one, &w);
    H5Eclear2(H5E_DEFAULT);
    if (w.sys_errno)
        snprintf(out, cap, "%s", strerror(w.sys_errno));
    else
        snprintf(out, cap, "%s", w.innermost[0] ? w.innermost : "HDF5 reported no reason");
    if (sys_errno) *sys_errno = w.sys_errno;
}

int lrsa_h5_write_f32(hid_t loc, const char *name, int ndim, const int64_t *shape, const float *x,
                      char *reason, size_t cap) {
    hsize_t dims[LRSA_MAX_DIMS], chunk[LRSA_MAX_DIMS];
    int64_t inner = 1, numel = 1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = chunk[d] = (hsize_t)shape[d];
        numel *= shape[d];
        if (d > 0) inner *= shape[d];
    }
    /* Each API call clears HDF5's error stack, so the reason is taken right after a failure. */
#define FAILED(expr) ((expr) < 0 && (lrsa_h5_failure(reason, cap, NULL), 1))
    int rc = 0;
    hid_t sp = -1, dcpl = -1, ds = -1;
    if (FAILED(sp = H5Screate_simple(ndim, dims, NULL)) ||
        FAILED(dcpl = H5Pcreate(H5P_DATASET_CREATE)))
        rc = -1;
    if (!rc && numel > 0 && ndim > 0) { /* an empty dataset has nothing to checksum */
        int64_t rows = inner >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / inner;
        chunk[0] = (hsize_t)(rows < shape[0] ? rows : shape[0]);
        if (FAILED(H5Pset_chunk(dcpl, ndim, chunk)) || FAILED(H5Pset_fletcher32(dcpl))) rc = -1;
    }
    if (!rc &&
        FAILED(ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)))
        rc = -1;
    if (!rc && FAILED(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x))) rc = -1;
    if (ds >= 0 && H5Dclose(ds) < 0 && !rc) {
        lrsa_h5_failure(reason, cap, NULL);
        rc = -1;
    }
#undef FAILED
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int lrsa_h5_has_checksum(hid_t ds) {
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return -1;
    int n = H5Pget_nfilters(dcpl), found = 0;
    for (int i = 0; i < n && !found; i++) {
        unsigned flags, cfg;
        size_t nelem = 0;
        char fname[64];
        found = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, sizeof fname, fname,
                               &cfg) == H5Z_FILTER_FLETCHER32;
    }
    H5Pclose(dcpl);
    return n < 0 ? -1 : found;
}

int lrsa_h5_read_through(hid_t ds, char *reason, size_t cap) {
    snprintf(reason, cap, "its shape cannot be read");
    hid_t fs = H5Dget_space(ds);
    if (fs < 0) return -1;
    int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[LRSA_MAX_DIMS + 1];
    if (nd < 0 || nd > LRSA_MAX_DIMS || H5Sget_simple_extent_dims(fs, dims, NULL) < 0) {
        H5Sclose(fs);
        return -1;
    }
    if (nd == 0) { /* a scalar: one read */
        float v;
        int rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0 ? -1 : 0;
        if (rc) lrsa_h5_failure(reason, cap, NULL);
        H5Sclose(fs);
        return rc;
    }
    hsize_t inner = 1;
    for (int d = 1; d < nd; d++) inner *= dims[d];
    hsize_t rows = inner >= (hsize_t)CHUNK_ELEMS ? 1 : (hsize_t)CHUNK_ELEMS / (inner ? inner : 1);
    hsize_t elems = rows * inner;
    float *buf = lrsa_malloc(sizeof(float) * (size_t)(elems > 0 ? elems : 1));
    int rc = 0;
    for (hsize_t r0 = 0; r0 < dims[0] && !rc && inner; r0 += rows) {
        hsize_t start[LRSA_MAX_DIMS] = {0}, count[LRSA_MAX_DIMS];
        for (int d = 0; d < nd; d++) count[d] = dims[d];
        start[0] = r0;
        count[0] = dims[0] - r0 < rows ? dims[0] - r0 : rows;
        hid_t ms = H5Screate_simple(nd, count, NULL);
        if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0) {
            lrsa_h5_failure(reason, cap, NULL); /* before the next call clears the stack */
            rc = -1;
        }
        if (ms >= 0) H5Sclose(ms);
    }
    free(buf);
    H5Sclose(fs);
    return rc;
}

int lrsa_h5_write_i64_attr(hid_t loc, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &v);
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

int lrsa_h5_write_str_attr(hid_t loc, const char *name, const char *s) {
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

int lrsa_h5_read_i64_attr(hid_t loc, const char *name, int64_t *v) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, H5T_NATIVE_INT64, v) < 0 ? -1 : 0;
    H5Aclose(a);
    return rc;
}

char *lrsa_h5_read_str_attr(hid_t loc, const char *name) {
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
