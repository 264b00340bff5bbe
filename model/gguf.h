/* GGUF files (../shared/docs/formats.md 3): a validating reader, a small writer (tests, fuzz
 * seeds, export) and the llama Q/K row permutation. The conversion of a llama/qwen2 GGUF into a
 * Hugging Face model directory is convert/gguf_convert.h.
 *
 * The reader maps the file and checks everything before anyone touches it: magic, version (2 or
 * 3), counts and string lengths against the bytes that remain, value types, tensor dims and
 * types, alignment, and that every tensor's bytes lie inside the file. Every failure is an
 * lrsa_err naming the file, the byte offset or key/tensor, and what would fix it. */
#ifndef LRSA_DATA_GGUF_H
#define LRSA_DATA_GGUF_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum lrsa_gguf_vtype {
    LRSA_GGUF_U8 = 0,
    LRSA_GGUF_I8 = 1,
    LRSA_GGUF_U16 = 2,
    LRSA_GGUF_I16 = 3,
    LRSA_GGUF_U32 = 4,
    LRSA_GGUF_I32 = 5,
    LRSA_GGUF_F32 = 6,
    LRSA_GGUF_BOOL = 7,
    LRSA_GGUF_STRING = 8,
    LRSA_GGUF_ARRAY = 9,
    LRSA_GGUF_U64 = 10,
    LRSA_GGUF_I64 = 11,
    LRSA_GGUF_F64 = 12,
} lrsa_gguf_vtype;

#define LRSA_GGUF_MAGIC             0x46554747u
#define LRSA_GGUF_DEFAULT_ALIGNMENT 32
#define LRSA_GGUF_MAX_DIMS          4

/* One metadata value. Scalars: integers in i (signed types) or u (unsigned and bool), floats in
 * f. Strings: s (NUL-terminated copy; len excludes the NUL). Arrays: elem_type and n; arrays of
 * strings or arrays have items, arrays of numbers point at their little-endian bytes in the file
 * (raw; read them with lrsa_gguf_array_int/_float) so a huge numeric array costs no memory. */
typedef struct lrsa_gguf_value {
    uint32_t type;
    int64_t i;
    uint64_t u;
    double f;
    char *s;
    uint64_t len;
    uint32_t elem_type;
    uint64_t n;
    struct lrsa_gguf_value *items;
    const uint8_t *raw;
} lrsa_gguf_value;

typedef struct lrsa_gguf_kv {
    char *key;
    lrsa_gguf_value v;
} lrsa_gguf_kv;

typedef struct lrsa_gguf_tensor {
    char *name;
    int n_dims;
    int64_t ne[LRSA_GGUF_MAX_DIMS]; /* ne[0] fastest; unused dims are 1 */
    uint32_t type;
    uint64_t offset; /* relative to data_start */
    uint64_t nbytes;
    int64_t nelem;
} lrsa_gguf_tensor;

typedef struct lrsa_gguf {
    char path[4096];
    const uint8_t *base; /* the whole file (mapped, or the caller's buffer) */
    size_t size;
    int mapped;
    uint32_t version;
    lrsa_gguf_kv *kv;
    int64_t n_kv;
    lrsa_gguf_tensor *tensors;
    int64_t n_tensors;
    uint64_t alignment, data_start;
} lrsa_gguf;

int lrsa_gguf_open(lrsa_gguf *g, const char *path, lrsa_err *e);
/* Parses a buffer the caller keeps alive until close (fuzzing, tests). name is used in errors. */
int lrsa_gguf_open_mem(lrsa_gguf *g, const void *buf, size_t size, const char *name, lrsa_err *e);
void lrsa_gguf_close(lrsa_gguf *g);

const lrsa_gguf_value *lrsa_gguf_get(const lrsa_gguf *g, const char *key);
/* Typed getters. They fail (naming the key, the type found and the type expected) when the key
 * is missing or has the wrong type; any integer type is accepted where an integer is expected,
 * and integers where a float is expected. The *_opt forms return def when the key is absent. */
int lrsa_gguf_get_int(const lrsa_gguf *g, const char *key, int64_t *out, lrsa_err *e);
int lrsa_gguf_get_int_opt(const lrsa_gguf *g, const char *key, int64_t def, int64_t *out,
                          lrsa_err *e);
int lrsa_gguf_get_float(const lrsa_gguf *g, const char *key, double *out, lrsa_err *e);
int lrsa_gguf_get_float_opt(const lrsa_gguf *g, const char *key, double def, double *out,
                            lrsa_err *e);
int lrsa_gguf_get_bool_opt(const lrsa_gguf *g, const char *key, int def, int *out, lrsa_err *e);
/* *out points into g (valid until close). */
int lrsa_gguf_get_str(const lrsa_gguf *g, const char *key, const char **out, lrsa_err *e);
int lrsa_gguf_get_str_opt(const lrsa_gguf *g, const char *key, const char *def, const char **out,
                          lrsa_err *e);
/* An array of the given element type (any integer type for LRSA_GGUF_I64 requests). */
int lrsa_gguf_get_array(const lrsa_gguf *g, const char *key, uint32_t elem_type,
                        const lrsa_gguf_value **out, lrsa_err *e);
/* Integer value of a scalar (any integer type or bool); -1 when v is not an integer. */
int lrsa_gguf_value_int(const lrsa_gguf_value *v, int64_t *out);
const char *lrsa_gguf_vtype_name(uint32_t type);
/* Element i of a numeric array (i < n), converted; integers and bools for _int. */
int64_t lrsa_gguf_array_int(const lrsa_gguf_value *arr, uint64_t i);
double lrsa_gguf_array_float(const lrsa_gguf_value *arr, uint64_t i);

const lrsa_gguf_tensor *lrsa_gguf_find_tensor(const lrsa_gguf *g, const char *name);
const void *lrsa_gguf_tensor_data(const lrsa_gguf *g, const lrsa_gguf_tensor *t);
/* Dequantizes a whole tensor to fp32 (out holds t->nelem floats). */
void lrsa_gguf_tensor_to_f32(const lrsa_gguf *g, const lrsa_gguf_tensor *t, float *out);

/* ---- Writer ---------------------------------------------------------------------------------
 * Collects metadata and tensors (fp32 data is quantized to the requested type on add; data is
 * copied), then writes a version-3 file with the given alignment (0: the default 32, and no
 * general.alignment key). Keys are written in the order they were set. */
typedef struct lrsa_gguf_writer lrsa_gguf_writer;
lrsa_gguf_writer *lrsa_gguf_writer_new(uint32_t alignment);
void lrsa_gguf_writer_free(lrsa_gguf_writer *w);
void lrsa_gguf_writer_set_u32(lrsa_gguf_writer *w, const char *key, uint32_t v);
void lrsa_gguf_writer_set_i32(lrsa_gguf_writer *w, const char *key, int32_t v);
void lrsa_gguf_writer_set_u64(lrsa_gguf_writer *w, const char *key, uint64_t v);
void lrsa_gguf_writer_set_f32(lrsa_gguf_writer *w, const char *key, float v);
void lrsa_gguf_writer_set_bool(lrsa_gguf_writer *w, const char *key, int v);
void lrsa_gguf_writer_set_str(lrsa_gguf_writer *w, const char *key, const char *v);
void lrsa_gguf_writer_set_str_array(lrsa_gguf_writer *w, const char *key, const char *const *v,
                                    int64_t n);
void lrsa_gguf_writer_set_i32_array(lrsa_gguf_writer *w, const char *key, const int32_t *v,
                                    int64_t n);
/* Any bytes as one KV value: lets tests build odd files (nested arrays, wrong types). */
void lrsa_gguf_writer_set_raw(lrsa_gguf_writer *w, const char *key, uint32_t type,
                              const void *value_bytes, size_t n);
/* ne[0] must be a multiple of the type's block size. */
void lrsa_gguf_writer_add_tensor(lrsa_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                 const int64_t *ne, const float *data);
/* Tensor whose bytes are already in the target type. */
void lrsa_gguf_writer_add_tensor_raw(lrsa_gguf_writer *w, const char *name, uint32_t type,
                                     int n_dims, const int64_t *ne, const void *bytes,
                                     size_t nbytes);
/* The whole file in memory (malloc'd), or written atomically to path. */
uint8_t *lrsa_gguf_writer_to_buffer(lrsa_gguf_writer *w, size_t *size);
int lrsa_gguf_writer_write(lrsa_gguf_writer *w, const char *path, lrsa_err *e);

/* ---- The llama Q/K permutation (formats.md 3.5) ---------------------------------------------
 * rows = n_head * head_dim rows of row_bytes bytes each (a row can be a run of quantized
 * blocks). unpermute: hf_row[h*hd + c*hd/2 + i] = gguf_row[h*hd + 2i + c]; permute is its
 * inverse (what the HF->GGUF converter does). */
void lrsa_gguf_unpermute_rows(void *rows, int n_head, int head_dim, size_t row_bytes);
void lrsa_gguf_permute_rows(void *rows, int n_head, int head_dim, size_t row_bytes);
#endif
