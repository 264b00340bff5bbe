/* safetensors reading (single file, sharded index) and writing (../shared/docs/formats.md 1).
 * The reader validates the whole header against the spec before anything is read: header
 * length within the file and under 100 MB, JSON object, known dtypes, shapes that match the
 * byte ranges, offsets that cover the buffer exactly with no holes or overlaps, no duplicate
 * names. Every failure is an lrsa_err naming the file and the tensor. */
#ifndef LRSA_MODEL_SAFETENSORS_H
#define LRSA_MODEL_SAFETENSORS_H
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "autograd/tensor.h"

typedef enum lrsa_st_dtype {
    LRSA_ST_F32 = 0,
    LRSA_ST_F16,
    LRSA_ST_BF16,
    LRSA_ST_I32,
    LRSA_ST_I64,
    LRSA_ST_U8,
    LRSA_ST_I8,
    LRSA_ST_BOOL,
    LRSA_ST_F64,
    LRSA_ST_I16,
    LRSA_ST_U16,
    LRSA_ST_U32,
    LRSA_ST_U64,
} lrsa_st_dtype;

typedef struct lrsa_st_tensor {
    char *name;
    lrsa_st_dtype dtype;
    int ndim;
    int64_t shape[8];
    uint64_t begin, end; /* byte offsets relative to the data buffer */
} lrsa_st_tensor;

typedef struct lrsa_safetensors {
    char path[4096];
    FILE *f;
    uint64_t data_start; /* 8 + header length */
    lrsa_st_tensor *tensors;
    int n;
    char **meta_keys, **meta_values; /* __metadata__ (string -> string) */
    int n_meta;
} lrsa_safetensors;

int lrsa_st_open(lrsa_safetensors *st, const char *path, lrsa_err *e);
void lrsa_st_close(lrsa_safetensors *st);
const lrsa_st_tensor *lrsa_st_find(const lrsa_safetensors *st, const char *name);
size_t lrsa_st_dtype_size(lrsa_st_dtype t);
const char *lrsa_st_dtype_name(lrsa_st_dtype t);
/* Reads a tensor converted to fp32 (from F32, F16 or BF16; other dtypes are an error). */
int lrsa_st_read_f32(const lrsa_safetensors *st, const lrsa_st_tensor *t, float *out, lrsa_err *e);
/* Reads an integer tensor (I32 or I64 that fits) as int32. */
int lrsa_st_read_i32(const lrsa_safetensors *st, const lrsa_st_tensor *t, int32_t *out,
                     lrsa_err *e);

/* A set of safetensors files behind one name lookup: a single model.safetensors or a sharded
 * model.safetensors.index.json in a directory. */
typedef struct lrsa_st_set {
    lrsa_safetensors *files;
    int n_files;
} lrsa_st_set;
int lrsa_st_set_open_dir(lrsa_st_set *s, const char *model_dir, lrsa_err *e);
void lrsa_st_set_close(lrsa_st_set *s);
/* Finds a tensor in any file; *file receives the file that holds it. */
const lrsa_st_tensor *lrsa_st_set_find(const lrsa_st_set *s, const char *name,
                                       const lrsa_safetensors **file);

/* Writer: collect tensors (pointers are borrowed until write), then write one file atomically,
 * with the header padded so the data buffer is 8-byte aligned. Source data is fp32 (converted
 * to the requested F32/BF16/F16) or raw bytes already in the target dtype (add_raw). */
typedef struct lrsa_st_writer lrsa_st_writer;
lrsa_st_writer *lrsa_st_writer_new(void);
void lrsa_st_writer_add_f32(lrsa_st_writer *w, const char *name, lrsa_st_dtype out_dtype, int ndim,
                            const int64_t *shape, const float *data);
void lrsa_st_writer_add_raw(lrsa_st_writer *w, const char *name, lrsa_st_dtype dtype, int ndim,
                            const int64_t *shape, const void *data);
void lrsa_st_writer_add_meta(lrsa_st_writer *w, const char *key, const char *value);
int lrsa_st_writer_write(lrsa_st_writer *w, const char *path, lrsa_err *e);
void lrsa_st_writer_free(lrsa_st_writer *w);
#endif
