/* safetensors writer: header padded with spaces so the data buffer is 8-byte aligned,
 * metadata {"format": "pt"} by default, written atomically. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/safetensors.h"

typedef struct st_item {
    char *name;
    lrsa_st_dtype dtype;
    int ndim;
    int64_t shape[8];
    const float *f32; /* converted on write, or */
    const void *raw;  /* copied as is */
} st_item;

struct lrsa_st_writer {
    st_item *items;
    int n, cap;
    char **meta_k, **meta_v;
    int n_meta;
};

lrsa_st_writer *lrsa_st_writer_new(void) {
    return lrsa_calloc(1, sizeof(lrsa_st_writer));
}

static st_item *push(lrsa_st_writer *w, const char *name, lrsa_st_dtype dt, int ndim,
                     const int64_t *shape) {
    LRSA_CHECK(ndim >= 0 && ndim <= 8);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->items = lrsa_realloc(w->items, (size_t)w->cap * sizeof *w->items);
    }
    st_item *it = &w->items[w->n++];
    memset(it, 0, sizeof *it);
    it->name = lrsa_strdup(name);
    it->dtype = dt;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++) it->shape[i] = shape[i];
    return it;
}

void lrsa_st_writer_add_f32(lrsa_st_writer *w, const char *name, lrsa_st_dtype out_dtype, int ndim,
                            const int64_t *shape, const float *data) {
    LRSA_CHECK(out_dtype == LRSA_ST_F32 || out_dtype == LRSA_ST_BF16 || out_dtype == LRSA_ST_F16);
    push(w, name, out_dtype, ndim, shape)->f32 = data;
}

void lrsa_st_writer_add_raw(lrsa_st_writer *w, const char *name, lrsa_st_dtype dtype, int ndim,
                            const int64_t *shape, const void *data) {
    push(w, name, dtype, ndim, shape)->raw = data;
}

void lrsa_st_writer_add_meta(lrsa_st_writer *w, const char *key, const char *value) {
    w->meta_k = lrsa_realloc(w->meta_k, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_v = lrsa_realloc(w->meta_v, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_k[w->n_meta] = lrsa_strdup(key);
    w->meta_v[w->n_meta++] = lrsa_strdup(value);
}

static uint64_t item_bytes(const st_item *it) {
    return (uint64_t)lrsa_shape_numel(it->ndim, it->shape) * lrsa_st_dtype_size(it->dtype);
}

/* Writes the item's bytes little-endian, converting fp32 sources in bounded chunks. */
static int write_item(FILE *f, const st_item *it) {
    int64_t n = lrsa_shape_numel(it->ndim, it->shape);
    if (it->raw) return fwrite(it->raw, 1, (size_t)item_bytes(it), f) == item_bytes(it) ? 0 : -1;
    if (it->dtype == LRSA_ST_F32) return fwrite(it->f32, 4, (size_t)n, f) == (size_t)n ? 0 : -1;
    enum { CHUNK = 1 << 16 };
    uint16_t buf[CHUNK];
    for (int64_t s = 0; s < n; s += CHUNK) {
        int64_t m = n - s < CHUNK ? n - s : CHUNK;
        for (int64_t i = 0; i < m; i++)
            buf[i] = it->dtype == LRSA_ST_BF16 ? lrsa_f32_to_bf16(it->f32[s + i])
                                               : lrsa_f32_to_f16(it->f32[s + i]);
        if (fwrite(buf, 2, (size_t)m, f) != (size_t)m) return -1;
    }
    return 0;
}

int lrsa_st_writer_write(lrsa_st_writer *w, const char *path, lrsa_err *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    int has_format = 0;
    for (int i = 0; i < w->n_meta; i++) {
        cJSON_AddStringToObject(meta, w->meta_k[i], w->meta_v[i]);
        has_format |= strcmp(w->meta_k[i], "format") == 0;
    }
    if (!has_format) cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_item *it = &w->items[i];
        for (int j = 0; j < i; j++)
            LRSA_CHECK(strcmp(w->items[j].name, it->name) != 0, "duplicate tensor %s", it->name);
        cJSON *o = cJSON_AddObjectToObject(root, it->name);
        cJSON_AddStringToObject(o, "dtype", lrsa_st_dtype_name(it->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < it->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)it->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += item_bytes(it);
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    LRSA_CHECK(hdr != NULL);
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) / 8 * 8; /* 8 + padded is a multiple of 8 */
    lrsa_atomic_file af;
    if (lrsa_atomic_open(&af, path, e)) {
        free(hdr);
        return -1;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int bad = fwrite(lenb, 1, 8, af.f) != 8 || fwrite(hdr, 1, hlen, af.f) != hlen;
    for (size_t i = hlen; i < padded && !bad; i++) bad = fputc(' ', af.f) == EOF;
    free(hdr);
    for (int i = 0; i < w->n && !bad; i++) bad = write_item(af.f, &w->items[i]) != 0;
    if (bad) {
        lrsa_atomic_abort(&af);
        return lrsa_errorf(e, "%s: write failed (disk full?)", path);
    }
    return lrsa_atomic_commit(&af, e);
}

void lrsa_st_writer_free(lrsa_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->items[i].name);
    free(w->items);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_k[i]);
        free(w->meta_v[i]);
    }
    free(w->meta_k);
    free(w->meta_v);
    free(w);
}
