/* The GGUF writer: metadata is serialized as it is set (so tests can inject any bytes), tensors
 * are quantized on add, and the file is laid out as version 3 with zero padding to the
 * alignment before the data and between tensors. */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/gguf.h"
#include "model/quant.h"

typedef struct wtensor {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[LRSA_GGUF_MAX_DIMS];
    uint8_t *bytes;
    size_t nbytes;
} wtensor;

typedef struct bytebuf {
    uint8_t *p;
    size_t n, cap;
} bytebuf;

struct lrsa_gguf_writer {
    uint32_t alignment;
    bytebuf kv;
    uint64_t n_kv;
    wtensor *t;
    int n_t, cap_t;
};

static void put(bytebuf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = lrsa_realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_le(bytebuf *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    put(b, tmp, (size_t)n);
}
static void put_str(bytebuf *b, const char *s) {
    size_t n = strlen(s);
    put_le(b, n, 8);
    put(b, s, n);
}
static void put_key(lrsa_gguf_writer *w, const char *key, uint32_t type) {
    put_str(&w->kv, key);
    put_le(&w->kv, type, 4);
    w->n_kv++;
}

lrsa_gguf_writer *lrsa_gguf_writer_new(uint32_t alignment) {
    lrsa_gguf_writer *w = lrsa_calloc(1, sizeof *w);
    w->alignment = alignment ? alignment : LRSA_GGUF_DEFAULT_ALIGNMENT;
    if (alignment) lrsa_gguf_writer_set_u32(w, "general.alignment", alignment);
    return w;
}

void lrsa_gguf_writer_free(lrsa_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].bytes);
    }
    free(w->t);
    free(w->kv.p);
    free(w);
}

void lrsa_gguf_writer_set_u32(lrsa_gguf_writer *w, const char *key, uint32_t v) {
    put_key(w, key, LRSA_GGUF_U32);
    put_le(&w->kv, v, 4);
}
void lrsa_gguf_writer_set_i32(lrsa_gguf_writer *w, const char *key, int32_t v) {
    put_key(w, key, LRSA_GGUF_I32);
    put_le(&w->kv, (uint32_t)v, 4);
}
void lrsa_gguf_writer_set_u64(lrsa_gguf_writer *w, const char *key, uint64_t v) {
    put_key(w, key, LRSA_GGUF_U64);
    put_le(&w->kv, v, 8);
}
void lrsa_gguf_writer_set_f32(lrsa_gguf_writer *w, const char *key, float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    put_key(w, key, LRSA_GGUF_F32);
    put_le(&w->kv, b, 4);
}
void lrsa_gguf_writer_set_bool(lrsa_gguf_writer *w, const char *key, int v) {
    put_key(w, key, LRSA_GGUF_BOOL);
    put_le(&w->kv, v ? 1 : 0, 1);
}
void lrsa_gguf_writer_set_str(lrsa_gguf_writer *w, const char *key, const char *v) {
    put_key(w, key, LRSA_GGUF_STRING);
    put_str(&w->kv, v);
}
void lrsa_gguf_writer_set_str_array(lrsa_gguf_writer *w, const char *key, const char *const *v,
                                    int64_t n) {
    put_key(w, key, LRSA_GGUF_ARRAY);
    put_le(&w->kv, LRSA_GGUF_STRING, 4);
    put_le(&w->kv, (uint64_t)n, 8);
    for (int64_t i = 0; i < n; i++) put_str(&w->kv, v[i]);
}
void lrsa_gguf_writer_set_i32_array(lrsa_gguf_writer *w, const char *key, const int32_t *v,
                                    int64_t n) {
    put_key(w, key, LRSA_GGUF_ARRAY);
    put_le(&w->kv, LRSA_GGUF_I32, 4);
    put_le(&w->kv, (uint64_t)n, 8);
    for (int64_t i = 0; i < n; i++) put_le(&w->kv, (uint32_t)v[i], 4);
}
void lrsa_gguf_writer_set_raw(lrsa_gguf_writer *w, const char *key, uint32_t type,
                              const void *value_bytes, size_t n) {
    put_key(w, key, type);
    put(&w->kv, value_bytes, n);
}

static wtensor *new_tensor(lrsa_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                           const int64_t *ne) {
    LRSA_CHECK(n_dims >= 1 && n_dims <= LRSA_GGUF_MAX_DIMS);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 16;
        w->t = lrsa_realloc(w->t, (size_t)w->cap_t * sizeof *w->t);
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = lrsa_strdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < LRSA_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    return t;
}

void lrsa_gguf_writer_add_tensor(lrsa_gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                 const int64_t *ne, const float *data) {
    LRSA_CHECK(lrsa_ggml_type_supported(type), "type %u", type);
    wtensor *t = new_tensor(w, name, type, n_dims, ne);
    int64_t nelem = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    int64_t blk = lrsa_ggml_block_elems(type);
    LRSA_CHECK(t->ne[0] / blk * blk == t->ne[0], "ne[0] must be a multiple of the block size");
    t->nbytes = (size_t)(nelem / lrsa_ggml_block_elems(type) * lrsa_ggml_block_bytes(type));
    t->bytes = lrsa_malloc(t->nbytes ? t->nbytes : 1);
    lrsa_quantize(type, data, t->bytes, nelem);
}

void lrsa_gguf_writer_add_tensor_raw(lrsa_gguf_writer *w, const char *name, uint32_t type,
                                     int n_dims, const int64_t *ne, const void *bytes,
                                     size_t nbytes) {
    wtensor *t = new_tensor(w, name, type, n_dims, ne);
    t->nbytes = nbytes;
    t->bytes = lrsa_malloc(nbytes ? nbytes : 1);
    if (nbytes) memcpy(t->bytes, bytes, nbytes);
}

static void pad_to(bytebuf *b, size_t base, uint32_t alignment) {
    static const uint8_t zeros[64];
    while ((b->n - base) % alignment) {
        size_t k = alignment - (b->n - base) % alignment;
        put(b, zeros, k < sizeof zeros ? k : sizeof zeros);
    }
}

uint8_t *lrsa_gguf_writer_to_buffer(lrsa_gguf_writer *w, size_t *size) {
    bytebuf b = {0};
    put_le(&b, LRSA_GGUF_MAGIC, 4);
    put_le(&b, 3, 4);
    put_le(&b, (uint64_t)w->n_t, 8);
    put_le(&b, w->n_kv, 8);
    put(&b, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&b, t->name);
        put_le(&b, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) put_le(&b, (uint64_t)t->ne[d], 8);
        put_le(&b, t->type, 4);
        put_le(&b, off, 8);
        off += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
    }
    pad_to(&b, 0, w->alignment);
    size_t data_start = b.n;
    for (int i = 0; i < w->n_t; i++) {
        put(&b, w->t[i].bytes, w->t[i].nbytes);
        pad_to(&b, data_start, w->alignment);
    }
    *size = b.n;
    return b.p;
}

int lrsa_gguf_writer_write(lrsa_gguf_writer *w, const char *path, lrsa_err *e) {
    size_t n;
    uint8_t *buf = lrsa_gguf_writer_to_buffer(w, &n);
    int rc = lrsa_write_file_atomic(path, buf, n, e);
    free(buf);
    return rc;
}
