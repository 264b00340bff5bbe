/* The CompressKV per-model file (eval/press/compresskv.h): JSON reading with validation, writing,
 * the model identity check and the step B budget allocation. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/press/compresskv.h"

#define FORMAT_NAME    "lrsa-compresskv"
#define FORMAT_VERSION 1

void lrsa_compresskv_free(lrsa_compresskv_file *f) {
    free(f->heads);
    free(f->head_scores);
    free(f->layer_weight);
    free(f->probes_json);
    memset(f, 0, sizeof(*f));
}

static int get_int(const cJSON *obj, const char *key, const char *where, const char *path, int lo,
                   int *out, lrsa_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > 1e9)
        return lrsa_errorf(e, "%s: %s\"%s\" must be an integer >= %d; rerun lrsa compresskv", path,
                           where, key, lo);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_str(const cJSON *obj, const char *key, const char *where, const char *path,
                   char *out, size_t cap, lrsa_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return lrsa_errorf(e, "%s: %s\"%s\" must be a string (< %zu bytes)", path, where, key, cap);
    strcpy(out, v->valuestring);
    return 0;
}

/* An array of `n` arrays of `m` numbers into out[n*m]. */
static int get_matrix(const cJSON *root, const char *key, int n, int m, const char *path,
                      double *out, lrsa_err *e) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return lrsa_errorf(e, "%s: \"%s\" must be an array of %d rows (one per layer)", path, key,
                           n);
    for (int i = 0; i < n; i++) {
        const cJSON *row = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != m)
            return lrsa_errorf(e,
                               "%s: \"%s\"[%d] must be an array of %d numbers (one per query head)",
                               path, key, i, m);
        for (int j = 0; j < m; j++) {
            const cJSON *v = cJSON_GetArrayItem(row, j);
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                return lrsa_errorf(e, "%s: \"%s\"[%d][%d] must be a finite number", path, key, i,
                                   j);
            out[(int64_t)i * m + j] = v->valuedouble;
        }
    }
    return 0;
}

static int parse(lrsa_compresskv_file *f, const cJSON *root, const char *path, lrsa_err *e) {
    if (!cJSON_IsObject(root)) return lrsa_errorf(e, "%s: must be a JSON object", path);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, FORMAT_NAME) != 0)
        return lrsa_errorf(e,
                           "%s: \"format\" must be \"" FORMAT_NAME
                           "\"; is this a CompressKV file written by lrsa compresskv?",
                           path);
    int version = 0;
    if (get_int(root, "version", "", path, 1, &version, e)) return -1;
    if (version != FORMAT_VERSION)
        return lrsa_errorf(e, "%s: version %d is not supported (this build reads version %d)", path,
                           version, FORMAT_VERSION);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return lrsa_errorf(e, "%s: \"model\" must be an object", path);
    const char *w = "model.";
    if (get_str(model, "name", w, path, f->name, sizeof f->name, e) ||
        get_str(model, "model_type", w, path, f->model_type, sizeof f->model_type, e) ||
        get_int(model, "num_hidden_layers", w, path, 1, &f->n_layers, e) ||
        get_int(model, "num_attention_heads", w, path, 1, &f->n_q_heads, e) ||
        get_int(model, "num_key_value_heads", w, path, 1, &f->n_kv_heads, e) ||
        get_int(model, "head_dim", w, path, 1, &f->head_dim, e) ||
        get_int(model, "hidden_size", w, path, 1, &f->hidden_size, e) ||
        get_int(model, "vocab_size", w, path, 1, &f->vocab_size, e) ||
        get_int(root, "first_k", "", path, 1, &f->first_k, e))
        return -1;
    const int L = f->n_layers, Hq = f->n_q_heads;
    if (Hq % f->n_kv_heads != 0)
        return lrsa_errorf(e,
                           "%s: model.num_attention_heads %d is not a multiple of "
                           "num_key_value_heads %d",
                           path, Hq, f->n_kv_heads);
    if (f->first_k > Hq)
        return lrsa_errorf(e, "%s: \"first_k\" is %d but the model has %d query heads per layer",
                           path, f->first_k, Hq);
    double *tmp = lrsa_malloc((size_t)L * Hq * sizeof(double));
    f->heads = lrsa_malloc((size_t)L * Hq * sizeof(int32_t));
    f->head_scores = lrsa_malloc((size_t)L * Hq * sizeof(double));
    f->layer_weight = lrsa_malloc((size_t)L * sizeof(double));
    int rc = get_matrix(root, "heads", L, Hq, path, tmp, e);
    if (rc == 0) rc = get_matrix(root, "head_scores", L, Hq, path, f->head_scores, e);
    for (int l = 0; l < L && rc == 0; l++) {
        uint8_t *seen = lrsa_calloc((size_t)Hq, 1);
        for (int j = 0; j < Hq && rc == 0; j++) {
            const double v = tmp[(int64_t)l * Hq + j];
            if (v != floor(v) || v < 0 || v >= Hq || seen[(int)v])
                rc = lrsa_errorf(e,
                                 "%s: \"heads\"[%d] must list every query head 0..%d exactly "
                                 "once (entry %d is %g)",
                                 path, l, Hq - 1, j, v);
            else
                seen[(int)v] = 1;
            f->heads[(int64_t)l * Hq + j] = (int32_t)v;
        }
        free(seen);
    }
    free(tmp);
    if (rc) return -1;
    const cJSON *lw = cJSON_GetObjectItemCaseSensitive(root, "layer_weights");
    if (!cJSON_IsArray(lw) || cJSON_GetArraySize(lw) != L)
        return lrsa_errorf(
            e, "%s: \"layer_weights\" must be an array of %d numbers (one per layer)", path, L);
    double sum = 0.0;
    for (int l = 0; l < L; l++) {
        const cJSON *v = cJSON_GetArrayItem(lw, l);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
            return lrsa_errorf(e, "%s: \"layer_weights\"[%d] must be a finite number >= 0", path,
                               l);
        f->layer_weight[l] = v->valuedouble;
        sum += v->valuedouble;
    }
    if (!(sum > 0)) return lrsa_errorf(e, "%s: \"layer_weights\" are all zero", path);
    for (int l = 0; l < L; l++) f->layer_weight[l] /= sum;
    const cJSON *probes = cJSON_GetObjectItemCaseSensitive(root, "probes");
    if (probes) f->probes_json = cJSON_PrintUnformatted(probes);
    return 0;
}

int lrsa_compresskv_load(lrsa_compresskv_file *f, const char *path, lrsa_err *e) {
    memset(f, 0, sizeof(*f));
    if (!path || !*path)
        return lrsa_errorf(e, "compresskv: no heads file given; make one with `lrsa compresskv "
                              "--model DIR --out FILE.json` and set compresskv_file");
    size_t size = 0;
    char *text = lrsa_read_file(path, &size, e);
    if (!text) return lrsa_err_prefix(e, "compresskv heads file: ");
    cJSON *root = cJSON_ParseWithLength(text, size);
    int rc;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        rc = lrsa_errorf(e, "%s: not valid JSON (near byte %lld)", path,
                         at ? (long long)(at - text) : -1LL);
    } else {
        rc = parse(f, root, path, e);
    }
    cJSON_Delete(root);
    free(text);
    if (rc) lrsa_compresskv_free(f);
    return rc;
}

int lrsa_compresskv_check_model(const lrsa_compresskv_file *f, const char *path,
                                const lrsa_model_config *cfg, lrsa_err *e) {
    struct {
        const char *key;
        int file, model;
    } k[] = {{"num_hidden_layers", f->n_layers, cfg->num_hidden_layers},
             {"num_attention_heads", f->n_q_heads, cfg->num_attention_heads},
             {"num_key_value_heads", f->n_kv_heads, cfg->num_key_value_heads},
             {"head_dim", f->head_dim, cfg->head_dim},
             {"hidden_size", f->hidden_size, cfg->hidden_size},
             {"vocab_size", f->vocab_size, cfg->vocab_size}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i].file != k[i].model)
            return lrsa_errorf(e,
                               "%s: made for another model (%s, %s = %d; this model has %d); "
                               "run lrsa compresskv --model <this model> --out FILE.json",
                               path, f->name, k[i].key, k[i].file, k[i].model);
    if (strcmp(f->model_type, cfg->model_type) != 0)
        return lrsa_errorf(e,
                           "%s: made for a %s model (%s); this model is %s; run lrsa compresskv "
                           "for it",
                           path, f->model_type, f->name, cfg->model_type);
    return 0;
}

int lrsa_compresskv_save(const lrsa_compresskv_file *f, const char *path, lrsa_err *e) {
    const int L = f->n_layers, Hq = f->n_q_heads;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", FORMAT_NAME);
    cJSON_AddNumberToObject(root, "version", FORMAT_VERSION);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "name", f->name);
    cJSON_AddStringToObject(model, "model_type", f->model_type);
    cJSON_AddNumberToObject(model, "num_hidden_layers", L);
    cJSON_AddNumberToObject(model, "num_attention_heads", Hq);
    cJSON_AddNumberToObject(model, "num_key_value_heads", f->n_kv_heads);
    cJSON_AddNumberToObject(model, "head_dim", f->head_dim);
    cJSON_AddNumberToObject(model, "hidden_size", f->hidden_size);
    cJSON_AddNumberToObject(model, "vocab_size", f->vocab_size);
    cJSON_AddNumberToObject(root, "first_k", f->first_k);
    cJSON *heads = cJSON_AddArrayToObject(root, "heads");
    cJSON *scores = cJSON_AddArrayToObject(root, "head_scores");
    for (int l = 0; l < L; l++) {
        cJSON *hr = cJSON_CreateArray(), *sr = cJSON_CreateArray();
        for (int j = 0; j < Hq; j++) {
            cJSON_AddItemToArray(hr, cJSON_CreateNumber(f->heads[(int64_t)l * Hq + j]));
            cJSON_AddItemToArray(sr, cJSON_CreateNumber(f->head_scores[(int64_t)l * Hq + j]));
        }
        cJSON_AddItemToArray(heads, hr);
        cJSON_AddItemToArray(scores, sr);
    }
    cJSON *lw = cJSON_AddArrayToObject(root, "layer_weights");
    for (int l = 0; l < L; l++) cJSON_AddItemToArray(lw, cJSON_CreateNumber(f->layer_weight[l]));
    if (f->probes_json) {
        cJSON *p = cJSON_Parse(f->probes_json);
        if (p) cJSON_AddItemToObject(root, "probes", p);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    size_t n = strlen(text);
    text = lrsa_realloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = 0;
    int rc = lrsa_write_file_atomic(path, text, n + 1, e);
    free(text);
    return rc;
}

void lrsa_compresskv_allocate(const double *w, int n_layers, int64_t B, int64_t lo, int64_t hi,
                              int64_t *b) {
    LRSA_CHECK(lo <= hi && n_layers > 0);
    const int L = n_layers;
    int64_t total = B * L;
    if (total < lo * L) total = lo * L;
    if (total > hi * L) total = hi * L;
    int64_t sum = 0;
    for (int l = 0; l < L; l++) {
        int64_t v = lo + llround(w[l] * (double)(total - lo * L));
        b[l] = v < lo ? lo : v > hi ? hi : v;
        sum += b[l];
    }
    /* order: layers by weight descending, ties by index (insertion sort: L is small) */
    int *order = lrsa_malloc((size_t)L * sizeof(int));
    for (int l = 0; l < L; l++) {
        int j = l;
        while (j > 0 && w[order[j - 1]] < w[l]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = l;
    }
    while (sum < total)
        for (int i = 0; i < L && sum < total; i++)
            if (b[order[i]] < hi) b[order[i]]++, sum++;
    while (sum > total)
        for (int i = L - 1; i >= 0 && sum > total; i--)
            if (b[order[i]] > lo) b[order[i]]--, sum--;
    free(order);
}

void lrsa_srh_rank_heads(const double *score, int n_layers, int n_q_heads, int32_t *heads) {
    for (int l = 0; l < n_layers; l++) {
        const double *s = score + (int64_t)l * n_q_heads;
        int32_t *o = heads + (int64_t)l * n_q_heads;
        for (int h = 0; h < n_q_heads; h++) { /* insertion sort: stable, ties keep head order */
            int j = h;
            while (j > 0 && s[o[j - 1]] < s[h]) {
                o[j] = o[j - 1];
                j--;
            }
            o[j] = h;
        }
    }
}
