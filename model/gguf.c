/* The GGUF reader. The file is mapped read-only and parsed with a bounds-checked cursor: no
 * length, count or offset from the file is used before it has been checked against the bytes
 * that remain, so a hostile or truncated file gives an error, never a crash or a huge
 * allocation. */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/hash.h"
#include "model/quant.h"

/* Arrays nest in the format; real files use one level. The cap keeps recursion bounded. */
#define MAX_NESTING     8
#define MAX_KEY_LEN     65535
#define MAX_TENSOR_NAME 64

typedef struct cursor {
    const uint8_t *p;
    size_t size, pos;
    const char *name;
    lrsa_err *e;
} cursor;

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return lrsa_errorf(c->e,
                           "%s: truncated at byte %zu while reading %s (needs %llu bytes, only %zu "
                           "left); the file is incomplete or not a GGUF file: fetch it again",
                           c->name, c->pos, what, (unsigned long long)n, c->size - c->pos);
    return 0;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    *v = (uint32_t)le(c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}
static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    *v = le(c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* A gguf_string: u64 length + bytes. Copied with a NUL so callers can use C strings. */
static int rd_string(cursor *c, char **out, uint64_t *len_out, uint64_t max_len, const char *what) {
    uint64_t len;
    size_t at = c->pos;
    if (rd_u64(c, &len, what)) return -1;
    if (len > max_len)
        return lrsa_errorf(c->e,
                           "%s: byte %zu: %s is %llu bytes long, over the limit of %llu; "
                           "the file is corrupt",
                           c->name, at, what, (unsigned long long)len, (unsigned long long)max_len);
    if (need(c, len, what)) return -1;
    char *s = lrsa_malloc(len + 1);
    memcpy(s, c->p + c->pos, len);
    s[len] = 0;
    c->pos += len;
    *out = s;
    if (len_out) *len_out = len;
    return 0;
}

static size_t scalar_size(uint32_t t) {
    switch (t) {
        case LRSA_GGUF_U8:
        case LRSA_GGUF_I8:
        case LRSA_GGUF_BOOL:
            return 1;
        case LRSA_GGUF_U16:
        case LRSA_GGUF_I16:
            return 2;
        case LRSA_GGUF_U32:
        case LRSA_GGUF_I32:
        case LRSA_GGUF_F32:
            return 4;
        case LRSA_GGUF_U64:
        case LRSA_GGUF_I64:
        case LRSA_GGUF_F64:
            return 8;
        default:
            return 0;
    }
}

const char *lrsa_gguf_vtype_name(uint32_t t) {
    static const char *names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* Decodes one scalar from p into v (type already set). */
static void decode_scalar(const uint8_t *p, uint32_t t, lrsa_gguf_value *v) {
    uint64_t raw = le(p, (int)scalar_size(t));
    switch (t) {
        case LRSA_GGUF_I8:
            v->i = (int8_t)raw;
            break;
        case LRSA_GGUF_I16:
            v->i = (int16_t)raw;
            break;
        case LRSA_GGUF_I32:
            v->i = (int32_t)raw;
            break;
        case LRSA_GGUF_I64:
            v->i = (int64_t)raw;
            break;
        case LRSA_GGUF_F32: {
            uint32_t b = (uint32_t)raw;
            float f;
            memcpy(&f, &b, 4);
            v->f = f;
            break;
        }
        case LRSA_GGUF_F64:
            memcpy(&v->f, &raw, 8);
            break;
        default:
            v->u = raw;
            break; /* unsigned types and bool */
    }
}

static void free_value(lrsa_gguf_value *v) {
    free(v->s);
    if (v->items)
        for (uint64_t i = 0; i < v->n; i++) free_value(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

/* need() for a value, naming its key (formatted only on failure: arrays have many values). */
static int need_value(cursor *c, uint64_t n, const char *key) {
    if (n <= c->size - c->pos) return 0;
    char what[128];
    snprintf(what, sizeof what, "the value of '%.100s'", key);
    return need(c, n, what);
}

static int rd_value(cursor *c, uint32_t type, lrsa_gguf_value *v, int depth, const char *key) {
    memset(v, 0, sizeof *v);
    v->type = type;
    size_t at = c->pos;
    size_t sz = scalar_size(type);
    if (sz) {
        if (need_value(c, sz, key)) return -1;
        decode_scalar(c->p + c->pos, type, v);
        c->pos += sz;
        if (type == LRSA_GGUF_BOOL && v->u > 1)
            return lrsa_errorf(c->e,
                               "%s: byte %zu: key '%s' is a bool with value %llu (must be 0 or "
                               "1); the file is corrupt",
                               c->name, at, key, (unsigned long long)v->u);
        return 0;
    }
    if (type == LRSA_GGUF_STRING) {
        if (need_value(c, 8, key)) return -1;
        uint64_t len = le(c->p + c->pos, 8);
        if (need_value(c, len > UINT64_MAX - 8 ? UINT64_MAX : 8 + len, key)) return -1;
        return rd_string(c, &v->s, &v->len, UINT64_MAX, key);
    }
    if (type != LRSA_GGUF_ARRAY)
        return lrsa_errorf(c->e,
                           "%s: byte %zu: key '%s' has value type %u, which GGUF does not define "
                           "(0-12); the file is corrupt or from a newer GGUF version",
                           c->name, at, key, type);
    if (depth >= MAX_NESTING)
        return lrsa_errorf(c->e,
                           "%s: byte %zu: key '%s' nests arrays more than %d deep; the file "
                           "is corrupt",
                           c->name, at, key, MAX_NESTING);
    uint32_t et;
    uint64_t n;
    if (need_value(c, 12, key) || rd_u32(c, &et, key) || rd_u64(c, &n, key)) return -1;
    v->elem_type = et;
    size_t esz = scalar_size(et);
    if (!esz && et != LRSA_GGUF_STRING && et != LRSA_GGUF_ARRAY)
        return lrsa_errorf(c->e,
                           "%s: byte %zu: array '%s' has element type %u, which GGUF does not "
                           "define (0-12); the file is corrupt",
                           c->name, at, key, et);
    /* Smallest encoding of one element: a string is at least its u64 length, an array at
     * least its u32 type and u64 count. Checking n against that bounds the allocation. */
    uint64_t min_elem = esz ? esz : et == LRSA_GGUF_STRING ? 8 : 12;
    if (n > (c->size - c->pos) / min_elem)
        return lrsa_errorf(c->e,
                           "%s: byte %zu: array '%s' claims %llu elements of type %s, more than "
                           "the %zu bytes left in the file can hold; the file is corrupt or "
                           "truncated",
                           c->name, at, key, (unsigned long long)n, lrsa_gguf_vtype_name(et),
                           c->size - c->pos);
    v->n = n;
    if (esz) {
        v->raw = c->p + c->pos;
        c->pos += n * esz;
        if (et == LRSA_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (v->raw[i] > 1)
                    return lrsa_errorf(c->e,
                                       "%s: array '%s' element %llu is a bool with value %u "
                                       "(must be 0 or 1); the file is corrupt",
                                       c->name, key, (unsigned long long)i, v->raw[i]);
        return 0;
    }
    v->items = lrsa_calloc(n ? n : 1, sizeof *v->items);
    for (uint64_t i = 0; i < n; i++) {
        if (rd_value(c, et, &v->items[i], depth + 1, key)) {
            v->n = i + 1; /* free what was read */
            return -1;
        }
    }
    return 0;
}

/* ---- a small string hash set for duplicate detection and lookup ---- */
typedef struct name_index {
    int64_t *slot; /* -1 empty, else an index into names */
    uint64_t cap;
} name_index;

/* Returns the existing index with the same name, or inserts idx and returns -1. */
static int64_t index_insert(name_index *ix, char *const *names, size_t stride, int64_t idx) {
    const char *name = *(char *const *)((const char *)names + stride * (size_t)idx);
    uint64_t h = lrsa_fnv1a64_str(name) & (ix->cap - 1);
    while (ix->slot[h] >= 0) {
        const char *other = *(char *const *)((const char *)names + stride * (size_t)ix->slot[h]);
        if (strcmp(other, name) == 0) return ix->slot[h];
        h = (h + 1) & (ix->cap - 1);
    }
    ix->slot[h] = idx;
    return -1;
}

static void index_init(name_index *ix, int64_t n) {
    ix->cap = 16;
    while (ix->cap < (uint64_t)n * 2) ix->cap <<= 1;
    ix->slot = lrsa_malloc(ix->cap * sizeof *ix->slot);
    for (uint64_t i = 0; i < ix->cap; i++) ix->slot[i] = -1;
}

/* The header's count of metadata entries or tensors (`what`), each at least min_bytes long, must
 * fit in what is left of the file: a corrupt count would otherwise allocate without bound. */
static int check_count(cursor *c, uint64_t n, size_t min_bytes, const char *what) {
    if (n > (c->size - c->pos) / min_bytes)
        return lrsa_errorf(c->e,
                           "%s: header claims %llu %s, more than the %zu bytes left can hold; "
                           "the file is corrupt or truncated",
                           c->name, (unsigned long long)n, what, c->size - c->pos);
    return 0;
}

/* Reads the name of entry i (a key or a tensor name, at most max_len bytes) into names[i] (the
 * entries are stride bytes apart, names points at the first one's name), sets *count to i + 1 so
 * that closing frees it, and adds it to ix: an error naming `kind` when an earlier entry has the
 * same name. `what` names the field for a read error, followed by i. */
static int rd_unique_name(cursor *c, name_index *ix, char **names, size_t stride, uint64_t i,
                          uint64_t max_len, int64_t *count, const char *what, const char *kind) {
    size_t at = c->pos;
    char field[64];
    snprintf(field, sizeof field, "%s %llu", what, (unsigned long long)i);
    char **name = (char **)((char *)names + stride * i);
    if (rd_string(c, name, NULL, max_len, field)) return -1;
    *count = (int64_t)i + 1;
    if (index_insert(ix, names, stride, (int64_t)i) >= 0)
        return lrsa_errorf(c->e, "%s: byte %zu: %s '%s' appears twice; the file is corrupt",
                           c->name, at, kind, *name);
    return 0;
}

static int parse_kvs(lrsa_gguf *g, cursor *c, uint64_t n_kv) {
    /* a KV is at least an 8-byte key length, a 4-byte type and a 1-byte value */
    if (check_count(c, n_kv, 13, "metadata entries")) return -1;
    g->kv = lrsa_calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    name_index ix;
    index_init(&ix, (int64_t)n_kv);
    int rc = 0;
    for (uint64_t i = 0; i < n_kv && rc == 0; i++) {
        lrsa_gguf_kv *kv = &g->kv[i];
        size_t at = c->pos;
        uint32_t type;
        if (rd_unique_name(c, &ix, &g->kv[0].key, sizeof *g->kv, i, MAX_KEY_LEN, &g->n_kv,
                           "the key of metadata entry", "metadata key")) {
            rc = -1;
            break;
        }
        if (strlen(kv->key) == 0) {
            rc = lrsa_errorf(c->e,
                             "%s: byte %zu: metadata entry %llu has an empty key; the file "
                             "is corrupt",
                             c->name, at, (unsigned long long)i);
            break;
        }
        if (rd_u32(c, &type, kv->key) || rd_value(c, type, &kv->v, 0, kv->key)) rc = -1;
    }
    free(ix.slot);
    return rc;
}

static int parse_tensor_infos(lrsa_gguf *g, cursor *c, uint64_t n_tensors) {
    /* a tensor info is at least name length 8 + n_dims 4 + type 4 + offset 8 */
    if (check_count(c, n_tensors, 24, "tensors")) return -1;
    g->tensors = lrsa_calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    name_index ix;
    index_init(&ix, (int64_t)n_tensors);
    int rc = 0;
    for (uint64_t i = 0; i < n_tensors && rc == 0; i++) {
        lrsa_gguf_tensor *t = &g->tensors[i];
        if (rd_unique_name(c, &ix, &g->tensors[0].name, sizeof *g->tensors, i, MAX_TENSOR_NAME,
                           &g->n_tensors, "the name of tensor", "tensor")) {
            rc = -1;
            break;
        }
        uint32_t nd;
        if (rd_u32(c, &nd, t->name)) {
            rc = -1;
            break;
        }
        if (nd > LRSA_GGUF_MAX_DIMS) {
            rc = lrsa_errorf(c->e,
                             "%s: tensor '%s' has %u dimensions; GGUF allows at most %d; the "
                             "file is corrupt",
                             c->name, t->name, nd, LRSA_GGUF_MAX_DIMS);
            break;
        }
        t->n_dims = (int)nd;
        int64_t nelem = 1;
        for (int d = 0; d < LRSA_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd && rc == 0; d++) {
            uint64_t ne;
            if (rd_u64(c, &ne, t->name)) {
                rc = -1;
                break;
            }
            if (ne > (uint64_t)INT64_MAX || __builtin_mul_overflow(nelem, (int64_t)ne, &nelem))
                rc = lrsa_errorf(c->e,
                                 "%s: tensor '%s' dimension %u is %llu, which overflows the "
                                 "element count; the file is corrupt",
                                 c->name, t->name, d, (unsigned long long)ne);
            else
                t->ne[d] = (int64_t)ne;
        }
        if (rc) break;
        t->nelem = nelem;
        if (rd_u32(c, &t->type, t->name) || rd_u64(c, &t->offset, t->name)) {
            rc = -1;
            break;
        }
        const char *tn = lrsa_ggml_type_name(t->type);
        if (!lrsa_ggml_type_supported(t->type)) {
            rc = lrsa_errorf(c->e,
                             "%s: tensor '%s' has ggml type %s (%u), which lrsa cannot read; "
                             "supported types are %s: re-quantize the model to one of them",
                             c->name, t->name, tn ? tn : "unknown", t->type,
                             lrsa_ggml_supported_list());
            break;
        }
        int64_t blk = lrsa_ggml_block_elems(t->type);
        if (t->ne[0] % blk != 0) {
            rc = lrsa_errorf(c->e,
                             "%s: tensor '%s' of type %s has ne[0] = %lld, not a multiple of "
                             "its block size %lld; the file is corrupt",
                             c->name, t->name, tn, (long long)t->ne[0], (long long)blk);
            break;
        }
        /* nelem/blk blocks of block_bytes; block_bytes <= 34 and nelem fits int64, so overflow
         * is only possible for plain F32 (4 bytes per element) */
        uint64_t nb = (uint64_t)(nelem / blk);
        if (nb > UINT64_MAX / (uint64_t)lrsa_ggml_block_bytes(t->type)) {
            rc = lrsa_errorf(c->e, "%s: tensor '%s' is too large; the file is corrupt", c->name,
                             t->name);
            break;
        }
        t->nbytes = nb * (uint64_t)lrsa_ggml_block_bytes(t->type);
    }
    free(ix.slot);
    return rc;
}

/* Checks general.alignment and the tensors' data ranges; sets alignment and data_start. */
static int check_layout(lrsa_gguf *g, cursor *c) {
    g->alignment = LRSA_GGUF_DEFAULT_ALIGNMENT;
    const lrsa_gguf_value *a = lrsa_gguf_get(g, "general.alignment");
    if (a) {
        int64_t al;
        if (lrsa_gguf_value_int(a, &al) || al <= 0 || al % 8 != 0 || al > (1 << 24))
            return lrsa_errorf(c->e,
                               "%s: general.alignment must be a positive integer multiple of 8 "
                               "(at most 16 MiB); found a %s; the file is corrupt",
                               c->name, lrsa_gguf_vtype_name(a->type));
        g->alignment = (uint64_t)al;
    }
    uint64_t ds = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (ds > g->size && g->n_tensors > 0)
        return lrsa_errorf(c->e,
                           "%s: the tensor data should start at byte %llu but the file has "
                           "only %zu bytes; the file is truncated: fetch it again",
                           c->name, (unsigned long long)ds, g->size);
    g->data_start = ds;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const lrsa_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return lrsa_errorf(c->e,
                               "%s: tensor '%s' data offset %llu is not a multiple of the "
                               "alignment %llu; the file is corrupt",
                               c->name, t->name, (unsigned long long)t->offset,
                               (unsigned long long)g->alignment);
        uint64_t avail = g->size - ds;
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return lrsa_errorf(c->e,
                               "%s: tensor '%s' data [%llu, %llu) (relative to byte %llu) lies "
                               "past the end of the file (%zu bytes); the file is truncated: "
                               "fetch it again",
                               c->name, t->name, (unsigned long long)t->offset,
                               (unsigned long long)t->offset + t->nbytes, (unsigned long long)ds,
                               g->size);
    }
    return 0;
}

static int parse(lrsa_gguf *g, lrsa_err *e) {
    cursor c = {.p = g->base, .size = g->size, .pos = 0, .name = g->path, .e = e};
    uint32_t magic;
    if (g->size < 4 || (magic = (uint32_t)le(g->base, 4)) != LRSA_GGUF_MAGIC)
        return lrsa_errorf(e,
                           "%s: not a GGUF file (the first 4 bytes are not \"GGUF\"); pass a "
                           ".gguf model file",
                           g->path);
    c.pos = 4;
    uint64_t n_tensors, n_kv;
    if (rd_u32(&c, &g->version, "the version")) return -1;
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0)
            return lrsa_errorf(e,
                               "%s: this is a big-endian GGUF file (version bytes %08x); only "
                               "little-endian files are supported",
                               g->path, g->version);
        return lrsa_errorf(e,
                           "%s: unsupported GGUF version %u; lrsa reads versions 2 and 3 "
                           "(re-convert the model with a current llama.cpp)",
                           g->path, g->version);
    }
    if (rd_u64(&c, &n_tensors, "the tensor count") || rd_u64(&c, &n_kv, "the metadata count"))
        return -1;
    if (parse_kvs(g, &c, n_kv) || parse_tensor_infos(g, &c, n_tensors)) return -1;
    return check_layout(g, &c);
}

int lrsa_gguf_open_mem(lrsa_gguf *g, const void *buf, size_t size, const char *name, lrsa_err *e) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", name ? name : "<memory>");
    g->base = buf;
    g->size = size;
    if (parse(g, e)) {
        lrsa_gguf_close(g);
        return -1;
    }
    return 0;
}

int lrsa_gguf_open(lrsa_gguf *g, const char *path, lrsa_err *e) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lrsa_errorf(e, "%s: cannot open: %s; check the path", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lrsa_errorf(e, "%s: not a regular file; pass a .gguf model file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return lrsa_errorf(e, "%s: the file is empty; fetch it again", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return lrsa_errorf(e, "%s: cannot map: %s", path, strerror(errno));
    snprintf(g->path, sizeof g->path, "%s", path);
    g->base = p;
    g->size = (size_t)st.st_size;
    g->mapped = 1;
    if (parse(g, e)) {
        lrsa_gguf_close(g);
        return -1;
    }
    return 0;
}

void lrsa_gguf_close(lrsa_gguf *g) {
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free_value(&g->kv[i].v);
    }
    free(g->kv);
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->mapped) munmap((void *)g->base, g->size);
    memset(g, 0, sizeof *g);
}

/* ---- lookups ---- */

const lrsa_gguf_value *lrsa_gguf_get(const lrsa_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i].v;
    return NULL;
}

static int is_int_type(uint32_t t) {
    return t <= LRSA_GGUF_I32 || t == LRSA_GGUF_BOOL || t == LRSA_GGUF_U64 || t == LRSA_GGUF_I64;
}
static int is_signed(uint32_t t) {
    return t == LRSA_GGUF_I8 || t == LRSA_GGUF_I16 || t == LRSA_GGUF_I32 || t == LRSA_GGUF_I64;
}

int lrsa_gguf_value_int(const lrsa_gguf_value *v, int64_t *out) {
    if (!is_int_type(v->type)) return -1;
    if (is_signed(v->type)) {
        *out = v->i;
    } else {
        if (v->u > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)v->u;
    }
    return 0;
}

int64_t lrsa_gguf_array_int(const lrsa_gguf_value *arr, uint64_t i) {
    lrsa_gguf_value v = {.type = arr->elem_type};
    if (!arr->raw || i >= arr->n || !is_int_type(arr->elem_type)) return 0;
    size_t sz = scalar_size(arr->elem_type);
    decode_scalar(arr->raw + i * sz, arr->elem_type, &v);
    return is_signed(v.type) ? v.i : (int64_t)v.u;
}

double lrsa_gguf_array_float(const lrsa_gguf_value *arr, uint64_t i) {
    lrsa_gguf_value v = {.type = arr->elem_type};
    if (!arr->raw || i >= arr->n) return 0;
    size_t sz = scalar_size(arr->elem_type);
    decode_scalar(arr->raw + i * sz, arr->elem_type, &v);
    if (v.type == LRSA_GGUF_F32 || v.type == LRSA_GGUF_F64) return v.f;
    return is_signed(v.type) ? (double)v.i : (double)v.u;
}

static int missing(const lrsa_gguf *g, const char *key, lrsa_err *e) {
    return lrsa_errorf(e,
                       "%s: required metadata key '%s' is missing; the file is not a complete "
                       "model GGUF",
                       g->path, key);
}
static int wrong_type(const lrsa_gguf *g, const char *key, const lrsa_gguf_value *v,
                      const char *want, lrsa_err *e) {
    return lrsa_errorf(e,
                       "%s: metadata key '%s' is a %s, expected %s; the file is corrupt or "
                       "was written by an incompatible converter",
                       g->path, key, lrsa_gguf_vtype_name(v->type), want);
}

int lrsa_gguf_get_int_opt(const lrsa_gguf *g, const char *key, int64_t def, int64_t *out,
                          lrsa_err *e) {
    const lrsa_gguf_value *v = lrsa_gguf_get(g, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (lrsa_gguf_value_int(v, out)) return wrong_type(g, key, v, "an integer", e);
    return 0;
}
int lrsa_gguf_get_int(const lrsa_gguf *g, const char *key, int64_t *out, lrsa_err *e) {
    if (!lrsa_gguf_get(g, key)) return missing(g, key, e);
    return lrsa_gguf_get_int_opt(g, key, 0, out, e);
}

int lrsa_gguf_get_float_opt(const lrsa_gguf *g, const char *key, double def, double *out,
                            lrsa_err *e) {
    const lrsa_gguf_value *v = lrsa_gguf_get(g, key);
    int64_t iv;
    if (!v)
        *out = def;
    else if (v->type == LRSA_GGUF_F32 || v->type == LRSA_GGUF_F64)
        *out = v->f;
    else if (v->type != LRSA_GGUF_BOOL && lrsa_gguf_value_int(v, &iv) == 0)
        *out = (double)iv;
    else
        return wrong_type(g, key, v, "a number", e);
    return 0;
}
int lrsa_gguf_get_float(const lrsa_gguf *g, const char *key, double *out, lrsa_err *e) {
    if (!lrsa_gguf_get(g, key)) return missing(g, key, e);
    return lrsa_gguf_get_float_opt(g, key, 0, out, e);
}

int lrsa_gguf_get_bool_opt(const lrsa_gguf *g, const char *key, int def, int *out, lrsa_err *e) {
    const lrsa_gguf_value *v = lrsa_gguf_get(g, key);
    int64_t iv;
    if (!v)
        *out = def;
    else if (lrsa_gguf_value_int(v, &iv) == 0)
        *out = iv != 0;
    else
        return wrong_type(g, key, v, "a bool", e);
    return 0;
}

int lrsa_gguf_get_str_opt(const lrsa_gguf *g, const char *key, const char *def, const char **out,
                          lrsa_err *e) {
    const lrsa_gguf_value *v = lrsa_gguf_get(g, key);
    if (!v)
        *out = def;
    else if (v->type == LRSA_GGUF_STRING)
        *out = v->s;
    else
        return wrong_type(g, key, v, "a string", e);
    return 0;
}
int lrsa_gguf_get_str(const lrsa_gguf *g, const char *key, const char **out, lrsa_err *e) {
    if (!lrsa_gguf_get(g, key)) return missing(g, key, e);
    return lrsa_gguf_get_str_opt(g, key, NULL, out, e);
}

int lrsa_gguf_get_array(const lrsa_gguf *g, const char *key, uint32_t elem_type,
                        const lrsa_gguf_value **out, lrsa_err *e) {
    const lrsa_gguf_value *v = lrsa_gguf_get(g, key);
    if (!v) return missing(g, key, e);
    int ok = v->type == LRSA_GGUF_ARRAY &&
             (v->elem_type == elem_type ||
              (is_int_type(elem_type) && elem_type != LRSA_GGUF_BOOL && is_int_type(v->elem_type) &&
               v->elem_type != LRSA_GGUF_BOOL));
    if (!ok) {
        char want[64];
        snprintf(want, sizeof want, "an array of %s", lrsa_gguf_vtype_name(elem_type));
        if (v->type == LRSA_GGUF_ARRAY)
            return lrsa_errorf(e,
                               "%s: metadata key '%s' is an array of %s, expected %s; the file "
                               "is corrupt",
                               g->path, key, lrsa_gguf_vtype_name(v->elem_type), want);
        return wrong_type(g, key, v, want, e);
    }
    *out = v;
    return 0;
}

const lrsa_gguf_tensor *lrsa_gguf_find_tensor(const lrsa_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

const void *lrsa_gguf_tensor_data(const lrsa_gguf *g, const lrsa_gguf_tensor *t) {
    return g->base + g->data_start + t->offset;
}

void lrsa_gguf_tensor_to_f32(const lrsa_gguf *g, const lrsa_gguf_tensor *t, float *out) {
    lrsa_dequantize(t->type, lrsa_gguf_tensor_data(g, t), out, t->nelem);
}
