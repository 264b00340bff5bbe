/* safetensors reader (single file and sharded index) with full header validation. The writer
 * is in safetensors_write.c. */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

#define ST_MAX_HEADER (100ull * 1000 * 1000)

static const struct {
    const char *name;
    lrsa_st_dtype t;
    size_t size;
} k_dtypes[] = {
    {"F32", LRSA_ST_F32, 4}, {"F16", LRSA_ST_F16, 2},   {"BF16", LRSA_ST_BF16, 2},
    {"I32", LRSA_ST_I32, 4}, {"I64", LRSA_ST_I64, 8},   {"U8", LRSA_ST_U8, 1},
    {"I8", LRSA_ST_I8, 1},   {"BOOL", LRSA_ST_BOOL, 1}, {"F64", LRSA_ST_F64, 8},
    {"I16", LRSA_ST_I16, 2}, {"U16", LRSA_ST_U16, 2},   {"U32", LRSA_ST_U32, 4},
    {"U64", LRSA_ST_U64, 8},
};
#define N_DTYPES (int)(sizeof k_dtypes / sizeof k_dtypes[0])

size_t lrsa_st_dtype_size(lrsa_st_dtype t) {
    for (int i = 0; i < N_DTYPES; i++)
        if (k_dtypes[i].t == t) return k_dtypes[i].size;
    return 0;
}

const char *lrsa_st_dtype_name(lrsa_st_dtype t) {
    for (int i = 0; i < N_DTYPES; i++)
        if (k_dtypes[i].t == t) return k_dtypes[i].name;
    return "?";
}

static int dtype_from_name(const char *s, lrsa_st_dtype *t) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(k_dtypes[i].name, s) == 0) {
            *t = k_dtypes[i].t;
            return 0;
        }
    return -1;
}

static int cmp_begin(const void *a, const void *b) {
    const lrsa_st_tensor *x = *(const lrsa_st_tensor *const *)a;
    const lrsa_st_tensor *y = *(const lrsa_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    /* empty tensors first at an equal offset so a following non-empty one is checked */
    return (x->end > y->end) - (x->end < y->end);
}

/* Reads a non-negative integer JSON number exactly (cJSON stores doubles: exact to 2^53). */
static int json_u64(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x)) return -1;
    double d = x->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_tensor(lrsa_st_tensor *t, const cJSON *it, const char *path, lrsa_err *e) {
    const char *nm = it->string;
    if (!cJSON_IsObject(it))
        return lrsa_errorf(e, "%s: header entry \"%s\" is not an object", path, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return lrsa_errorf(e,
                           "%s: tensor \"%s\" needs \"dtype\" (string), \"shape\" (array) and "
                           "\"data_offsets\" (array)",
                           path, nm);
    if (dtype_from_name(dt->valuestring, &t->dtype))
        return lrsa_errorf(e, "%s: tensor \"%s\" has unsupported dtype \"%s\"", path, nm,
                           dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > 8) return lrsa_errorf(e, "%s: tensor \"%s\" has %d dims (max 8)", path, nm, nd);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(cJSON_GetArrayItem(sh, i), &d))
            return lrsa_errorf(e, "%s: tensor \"%s\" shape[%d] is not a non-negative integer", path,
                               nm, i);
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / 16 / d) overflow = 1;
        numel *= d;
    }
    if (cJSON_GetArraySize(off) != 2 || json_u64(cJSON_GetArrayItem(off, 0), &t->begin) ||
        json_u64(cJSON_GetArrayItem(off, 1), &t->end) || t->end < t->begin)
        return lrsa_errorf(e,
                           "%s: tensor \"%s\" data_offsets must be [BEGIN, END] with END >= "
                           "BEGIN",
                           path, nm);
    if (overflow || numel * lrsa_st_dtype_size(t->dtype) != t->end - t->begin)
        return lrsa_errorf(e,
                           "%s: tensor \"%s\": shape and dtype %s need %llu bytes but "
                           "data_offsets span %llu",
                           path, nm, dt->valuestring,
                           (unsigned long long)(numel * lrsa_st_dtype_size(t->dtype)),
                           (unsigned long long)(t->end - t->begin));
    t->name = lrsa_strdup(nm);
    return 0;
}

static int parse_header(lrsa_safetensors *st, const char *hdr, uint64_t hlen, uint64_t buf_len,
                        lrsa_err *e) {
    const char *path = st->path;
    if (hlen == 0 || hdr[0] != '{')
        return lrsa_errorf(e, "%s: header does not start with '{' (not a safetensors file?)", path);
    cJSON *root = cJSON_ParseWithLength(hdr, (size_t)hlen);
    if (!root)
        return lrsa_errorf(e, "%s: header is not valid JSON (near byte %ld of the header)", path,
                           cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - hdr) : -1L);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        lrsa_errorf(e, "%s: header is not a JSON object", path);
        goto done;
    }
    int n_items = cJSON_GetArraySize(root);
    st->tensors = lrsa_calloc((size_t)n_items + 1, sizeof *st->tensors);
    const cJSON *it;
    /* cJSON keeps duplicate keys in its list; compare every name with the ones before. */
    cJSON_ArrayForEach(it, root) {
        for (const cJSON *p = root->child; p != it; p = p->next)
            if (strcmp(p->string, it->string) == 0) {
                lrsa_errorf(e, "%s: header has the key \"%s\" twice", path, it->string);
                goto done;
            }
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                lrsa_errorf(e, "%s: \"__metadata__\" must be an object of strings", path);
                goto done;
            }
            int nm = cJSON_GetArraySize(it);
            st->meta_keys = lrsa_calloc((size_t)nm + 1, sizeof(char *));
            st->meta_values = lrsa_calloc((size_t)nm + 1, sizeof(char *));
            const cJSON *m;
            cJSON_ArrayForEach(m, it) {
                if (!cJSON_IsString(m)) {
                    lrsa_errorf(e, "%s: \"__metadata__.%s\" must be a string", path, m->string);
                    goto done;
                }
                st->meta_keys[st->n_meta] = lrsa_strdup(m->string);
                st->meta_values[st->n_meta++] = lrsa_strdup(m->valuestring);
            }
            continue;
        }
        if (parse_tensor(&st->tensors[st->n], it, path, e)) goto done;
        st->n++;
    }
    /* Coverage: sorted by offset, the tensors must tile [0, buf_len) exactly. */
    lrsa_st_tensor **order = lrsa_malloc(((size_t)st->n + 1) * sizeof *order);
    for (int i = 0; i < st->n; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->n, sizeof *order, cmp_begin);
    uint64_t pos = 0;
    for (int i = 0; i < st->n; i++) {
        const lrsa_st_tensor *t = order[i];
        if (t->begin == t->end && t->begin <= pos) continue; /* empty tensor */
        if (t->begin < pos) {
            lrsa_errorf(e, "%s: tensor \"%s\" overlaps the previous tensor (bytes %llu..%llu)",
                        path, t->name, (unsigned long long)t->begin, (unsigned long long)pos);
            free(order);
            goto done;
        }
        if (t->begin > pos) {
            lrsa_errorf(e,
                        "%s: hole in the data buffer before tensor \"%s\" (bytes %llu..%llu "
                        "belong to no tensor)",
                        path, t->name, (unsigned long long)pos, (unsigned long long)t->begin);
            free(order);
            goto done;
        }
        pos = t->end;
    }
    free(order);
    if (pos != buf_len) {
        lrsa_errorf(e,
                    "%s: tensors cover %llu bytes of data but the file holds %llu after the "
                    "header (truncated or padded file)",
                    path, (unsigned long long)pos, (unsigned long long)buf_len);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int lrsa_st_open(lrsa_safetensors *st, const char *path, lrsa_err *e) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    st->f = fopen(path, "rb");
    if (!st->f) return lrsa_errorf(e, "%s: cannot open (%s)", path, strerror(errno));
    if (fseeko(st->f, 0, SEEK_END) != 0) goto io;
    off_t fsize = ftello(st->f);
    if (fsize < 0 || fseeko(st->f, 0, SEEK_SET) != 0) goto io;
    unsigned char lenb[8];
    if (fsize < 8 || fread(lenb, 1, 8, st->f) != 8) {
        lrsa_errorf(e, "%s: file is %lld bytes, too short for a safetensors header", path,
                    (long long)fsize);
        lrsa_st_close(st);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenb[i];
    if (hlen > ST_MAX_HEADER) {
        lrsa_errorf(e, "%s: header length %llu exceeds the 100 MB limit (corrupt file?)", path,
                    (unsigned long long)hlen);
        lrsa_st_close(st);
        return -1;
    }
    if (hlen > (uint64_t)fsize - 8) {
        lrsa_errorf(e,
                    "%s: header length %llu runs past the end of the %lld-byte file "
                    "(truncated file?)",
                    path, (unsigned long long)hlen, (long long)fsize);
        lrsa_st_close(st);
        return -1;
    }
    char *hdr = lrsa_malloc((size_t)hlen + 1);
    if (fread(hdr, 1, (size_t)hlen, st->f) != hlen) {
        free(hdr);
        goto io;
    }
    hdr[hlen] = 0;
    st->data_start = 8 + hlen;
    int rc = parse_header(st, hdr, hlen, (uint64_t)fsize - 8 - hlen, e);
    free(hdr);
    if (rc) {
        lrsa_st_close(st);
        return -1;
    }
    return 0;
io:
    lrsa_errorf(e, "%s: read error (%s)", path, strerror(errno));
    lrsa_st_close(st);
    return -1;
}

void lrsa_st_close(lrsa_safetensors *st) {
    if (st->f) fclose(st->f);
    for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    memset(st, 0, sizeof *st);
}

const lrsa_st_tensor *lrsa_st_find(const lrsa_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

/* Reads the raw bytes of a tensor into a fresh buffer (copy: the data may be unaligned). */
static void *read_raw(const lrsa_safetensors *st, const lrsa_st_tensor *t, lrsa_err *e) {
    size_t n = (size_t)(t->end - t->begin);
    void *buf = lrsa_malloc(n ? n : 1);
    if (n && (fseeko(st->f, (off_t)(st->data_start + t->begin), SEEK_SET) != 0 ||
              fread(buf, 1, n, st->f) != n)) {
        free(buf);
        lrsa_errorf(e, "%s: cannot read tensor \"%s\" (%s)", st->path, t->name, strerror(errno));
        return NULL;
    }
    return buf;
}

int lrsa_st_read_f32(const lrsa_safetensors *st, const lrsa_st_tensor *t, float *out, lrsa_err *e) {
    if (t->dtype != LRSA_ST_F32 && t->dtype != LRSA_ST_F16 && t->dtype != LRSA_ST_BF16)
        return lrsa_errorf(e,
                           "%s: tensor \"%s\" is %s; a float tensor (F32, F16, BF16) is "
                           "needed",
                           st->path, t->name, lrsa_st_dtype_name(t->dtype));
    void *raw = read_raw(st, t, e);
    if (!raw) return -1;
    size_t n = (size_t)(t->end - t->begin) / lrsa_st_dtype_size(t->dtype);
    const unsigned char *b = raw;
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == LRSA_ST_F32) {
            uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                         (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
            memcpy(&out[i], &u, 4);
        } else {
            uint16_t h = (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
            out[i] = t->dtype == LRSA_ST_BF16 ? lrsa_bf16_to_f32(h) : lrsa_f16_to_f32(h);
        }
    }
    free(raw);
    return 0;
}

int lrsa_st_read_i32(const lrsa_safetensors *st, const lrsa_st_tensor *t, int32_t *out,
                     lrsa_err *e) {
    if (t->dtype != LRSA_ST_I32 && t->dtype != LRSA_ST_I64)
        return lrsa_errorf(e, "%s: tensor \"%s\" is %s; an integer tensor (I32, I64) is needed",
                           st->path, t->name, lrsa_st_dtype_name(t->dtype));
    void *raw = read_raw(st, t, e);
    if (!raw) return -1;
    const unsigned char *b = raw;
    size_t es = lrsa_st_dtype_size(t->dtype), n = (size_t)(t->end - t->begin) / es;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = 0;
        for (size_t k = es; k-- > 0;) u = (u << 8) | b[i * es + k];
        int64_t v = es == 4 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
        if (v < INT32_MIN || v > INT32_MAX) {
            free(raw);
            return lrsa_errorf(e, "%s: tensor \"%s\" element %zu (%lld) does not fit in int32",
                               st->path, t->name, i, (long long)v);
        }
        out[i] = (int32_t)v;
    }
    free(raw);
    return 0;
}

/* ---- sets of files ------------------------------------------------------------------------ */

static int open_index(lrsa_st_set *s, const char *dir, const char *index_path, lrsa_err *e) {
    size_t n;
    char *text = lrsa_read_file(index_path, &n, e);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    if (!root) return lrsa_errorf(e, "%s: not valid JSON", index_path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return lrsa_errorf(e, "%s: \"weight_map\" object is missing", index_path);
    }
    /* Distinct shard names, in order of first appearance. */
    int cap = cJSON_GetArraySize(wm) + 1;
    char **names = lrsa_calloc((size_t)cap, sizeof(char *));
    int nn = 0;
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/')) {
            rc = lrsa_errorf(e, "%s: weight_map[\"%s\"] must be a file name in the same folder",
                             index_path, it->string);
            break;
        }
        int found = 0;
        for (int i = 0; i < nn && !found; i++) found = strcmp(names[i], it->valuestring) == 0;
        if (!found) names[nn++] = it->valuestring;
    }
    if (!rc) {
        s->files = lrsa_calloc((size_t)nn + 1, sizeof *s->files);
        for (int i = 0; i < nn; i++) {
            char p[4096];
            lrsa_path_join(p, sizeof p, dir, names[i]);
            if (!lrsa_file_exists(p)) {
                rc = lrsa_errorf(e,
                                 "%s: shard \"%s\" listed in the index is missing (expected "
                                 "%s)",
                                 index_path, names[i], p);
                break;
            }
            if (lrsa_st_open(&s->files[i], p, e)) {
                rc = -1;
                break;
            }
            s->n_files = i + 1;
        }
    }
    /* Every tensor must be found in the shard the index names. */
    if (!rc) {
        cJSON_ArrayForEach(it, wm) {
            int found = 0;
            for (int i = 0; i < s->n_files && !found; i++) {
                const char *base = strrchr(s->files[i].path, '/');
                base = base ? base + 1 : s->files[i].path;
                if (strcmp(base, it->valuestring) == 0)
                    found = lrsa_st_find(&s->files[i], it->string) != NULL;
            }
            if (!found) {
                rc = lrsa_errorf(e, "%s: tensor \"%s\" is not in shard \"%s\"", index_path,
                                 it->string, it->valuestring);
                break;
            }
        }
    }
    free(names);
    cJSON_Delete(root);
    return rc;
}

int lrsa_st_set_open_dir(lrsa_st_set *s, const char *dir, lrsa_err *e) {
    memset(s, 0, sizeof *s);
    char single[4096], index[4096];
    lrsa_path_join(single, sizeof single, dir, "model.safetensors");
    lrsa_path_join(index, sizeof index, dir, "model.safetensors.index.json");
    if (lrsa_file_exists(single)) {
        s->files = lrsa_calloc(1, sizeof *s->files);
        if (lrsa_st_open(&s->files[0], single, e)) {
            free(s->files);
            s->files = NULL;
            return -1;
        }
        s->n_files = 1;
        return 0;
    }
    if (lrsa_file_exists(index)) {
        if (open_index(s, dir, index, e)) {
            lrsa_st_set_close(s);
            return -1;
        }
        return 0;
    }
    return lrsa_errorf(e,
                       "%s: no model.safetensors or model.safetensors.index.json in this folder; "
                       "point --model at a Hugging Face model folder",
                       dir);
}

void lrsa_st_set_close(lrsa_st_set *s) {
    for (int i = 0; i < s->n_files; i++) lrsa_st_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

const lrsa_st_tensor *lrsa_st_set_find(const lrsa_st_set *s, const char *name,
                                       const lrsa_safetensors **file) {
    for (int i = 0; i < s->n_files; i++) {
        const lrsa_st_tensor *t = lrsa_st_find(&s->files[i], name);
        if (t) {
            if (file) *file = &s->files[i];
            return t;
        }
    }
    return NULL;
}
