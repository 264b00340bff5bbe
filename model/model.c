/* The model's tensor table: creation, random init, loading and saving (HF names). */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "model/base_bf16.h"
#include "model/manifest.h"
#include "model/model_check.h"

static int add2(lrsa_tensor_table *t, const char *name, int64_t a, int64_t b, lrsa_param_kind k) {
    int64_t s[2] = {a, b};
    return lrsa_table_add(t, name, 2, s, k);
}
static int add1(lrsa_tensor_table *t, const char *name, int64_t a, lrsa_param_kind k) {
    return lrsa_table_add(t, name, 1, &a, k);
}

/* The table for a config; the PARAM arena only when alloc_param (a bf16 base loads without). */
static int build(lrsa_model *m, const lrsa_model_config *c, int alloc_param, lrsa_err *e) {
    memset(m, 0, sizeof *m);
    if (lrsa_config_validate(c, "model config", e)) return -1;
    m->cfg = *c;
    lrsa_tensor_table *t = &m->table;
    lrsa_table_init(t);
    const int64_t C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
                  Hkv = c->num_key_value_heads, I = c->intermediate_size, V = c->vocab_size;
    char n[128];
    m->embed = add2(t, "model.embed_tokens.weight", V, C, LRSA_KIND_EMBEDDING);
    m->layers = lrsa_calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        lrsa_layer_index *L = &m->layers[l];
        const char *p = "model.layers";
#define NAME(suffix) (snprintf(n, sizeof n, "%s.%d.%s", p, l, suffix), n)
        L->input_norm = add1(t, NAME("input_layernorm.weight"), C, LRSA_KIND_NORM);
        /* q, k, v back to back: one fused [(Hq+2Hkv)*D, C] matrix (and fused biases). */
        L->q = add2(t, NAME("self_attn.q_proj.weight"), Hq * D, C, LRSA_KIND_MATRIX);
        L->k = add2(t, NAME("self_attn.k_proj.weight"), Hkv * D, C, LRSA_KIND_MATRIX);
        L->v = add2(t, NAME("self_attn.v_proj.weight"), Hkv * D, C, LRSA_KIND_MATRIX);
        L->q_bias = L->k_bias = L->v_bias = L->o_bias = -1;
        if (c->attention_bias) {
            L->q_bias = add1(t, NAME("self_attn.q_proj.bias"), Hq * D, LRSA_KIND_BIAS);
            L->k_bias = add1(t, NAME("self_attn.k_proj.bias"), Hkv * D, LRSA_KIND_BIAS);
            L->v_bias = add1(t, NAME("self_attn.v_proj.bias"), Hkv * D, LRSA_KIND_BIAS);
        }
        L->o = add2(t, NAME("self_attn.o_proj.weight"), C, Hq * D, LRSA_KIND_MATRIX);
        if (c->o_proj_bias) L->o_bias = add1(t, NAME("self_attn.o_proj.bias"), C, LRSA_KIND_BIAS);
        L->post_norm = add1(t, NAME("post_attention_layernorm.weight"), C, LRSA_KIND_NORM);
        L->gate = add2(t, NAME("mlp.gate_proj.weight"), I, C, LRSA_KIND_MATRIX);
        L->up = add2(t, NAME("mlp.up_proj.weight"), I, C, LRSA_KIND_MATRIX);
        L->down = add2(t, NAME("mlp.down_proj.weight"), C, I, LRSA_KIND_MATRIX);
#undef NAME
    }
    m->final_norm = add1(t, "model.norm.weight", C, LRSA_KIND_NORM);
    m->lm_head =
        c->tie_word_embeddings ? m->embed : add2(t, "lm_head.weight", V, C, LRSA_KIND_EMBEDDING);
    if (alloc_param) lrsa_table_alloc(t, LRSA_ROLE_PARAM);
    m->inv_freq = lrsa_malloc((size_t)(D / 2) * sizeof(float));
    lrsa_rope_inv_freq(m->inv_freq, (int)D, &c->rope);
    return 0;
}

int lrsa_model_create(lrsa_model *m, const lrsa_model_config *c, lrsa_err *e) {
    return build(m, c, 1, e);
}

void lrsa_model_init_random(lrsa_model *m, uint64_t seed, float std) {
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    for (int i = 0; i < m->table.n; i++) {
        const lrsa_param_desc *d = &m->table.desc[i];
        float *p = lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, i);
        for (int64_t j = 0; j < d->numel; j++) {
            switch (d->kind) {
                case LRSA_KIND_NORM:
                    p[j] = 1.f;
                    break;
                case LRSA_KIND_BIAS:
                    p[j] = 0.f;
                    break;
                default:
                    p[j] = std * lrsa_rng_normal(&r);
                    break;
            }
        }
    }
}

static int shape_str(char *out, size_t cap, int nd, const int64_t *s) {
    int k = snprintf(out, cap, "[");
    for (int i = 0; i < nd; i++)
        k += snprintf(out + k, cap - (size_t)k, "%s%lld", i ? ", " : "", (long long)s[i]);
    snprintf(out + k, cap - (size_t)k, "]");
    return 0;
}

/* bf16: each tensor through a bf16 store's slot (model/base_bf16.h), no PARAM arena. */
static int load(lrsa_model *m, const char *dir, int bf16, lrsa_err *e) {
    char path[4096];
    lrsa_model_config c;
    /* an exported directory's files against their checksums first (model/manifest.h) */
    if (lrsa_manifest_check(dir, e)) return -1;
    lrsa_path_join(path, sizeof path, dir, "config.json");
    if (lrsa_config_load(&c, path, e)) return -1;
    if (build(m, &c, !bf16, e)) return lrsa_err_prefix(e, "%s: ", path);
    lrsa_base_bf16 *store = bf16 ? lrsa_base_bf16_begin(m) : NULL;
    lrsa_st_set set;
    if (lrsa_st_set_open_dir(&set, dir, e)) {
        lrsa_base_bf16_free(store);
        lrsa_model_free(m);
        return -1;
    }
    int rc = lrsa_model_check_extra(&m->table, &c, &set, path, e);
    for (int i = 0; i < m->table.n && !rc; i++) {
        const lrsa_param_desc *d = &m->table.desc[i];
        const lrsa_safetensors *f;
        const lrsa_st_tensor *t = lrsa_st_set_find(&set, d->name, &f);
        if (!t) {
            rc = lrsa_model_missing_tensor(&c, d->name, dir, path, e);
            break;
        }
        int same = t->ndim == d->ndim;
        for (int k = 0; same && k < d->ndim; k++) same = t->shape[k] == d->shape[k];
        if (!same) {
            char want[96], got[96];
            shape_str(want, sizeof want, d->ndim, d->shape);
            shape_str(got, sizeof got, t->ndim, t->shape);
            lrsa_errorf(e, "%s: tensor \"%s\" has shape %s but config.json implies %s", f->path,
                        d->name, got, want);
            rc = lrsa_config_note_defaults(&c, e);
            break;
        }
        rc = lrsa_st_read_f32(f, t,
                              store ? lrsa_base_bf16_slot(store, m, i)
                                    : lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, i),
                              e);
        if (!rc && store) lrsa_base_bf16_put(store, m, i);
    }
    /* A tied model's stored lm_head copy is ignored, but must have the embedding's shape (a
     * different shape means the config does not describe this checkpoint). */
    if (!rc && c.tie_word_embeddings) {
        const lrsa_safetensors *f;
        const lrsa_st_tensor *t = lrsa_st_set_find(&set, "lm_head.weight", &f);
        if (t && (t->ndim != 2 || t->shape[0] != c.vocab_size || t->shape[1] != c.hidden_size))
            rc = lrsa_errorf(e,
                             "%s: tensor \"lm_head.weight\" has shape [%lld, %lld] but the tied "
                             "embedding is [%d, %d]; fix vocab_size/hidden_size in %s",
                             f->path, t->ndim > 0 ? (long long)t->shape[0] : -1LL,
                             t->ndim > 1 ? (long long)t->shape[1] : -1LL, c.vocab_size,
                             c.hidden_size, path);
    }
    lrsa_st_set_close(&set);
    if (!rc && store) lrsa_base_bf16_end(store, m);
    if (rc) {
        lrsa_base_bf16_free(store);
        lrsa_model_free(m);
    }
    return rc;
}

int lrsa_model_load(lrsa_model *m, const char *dir, lrsa_err *e) {
    return load(m, dir, 0, e);
}

int lrsa_model_load_base_bf16(lrsa_model *m, const char *dir, lrsa_err *e) {
    return load(m, dir, 1, e);
}

int lrsa_model_save(const lrsa_model *m, const char *dir, lrsa_st_dtype dtype, lrsa_err *e) {
    if (dtype != LRSA_ST_F32 && dtype != LRSA_ST_BF16 && dtype != LRSA_ST_F16)
        return lrsa_errorf(e, "saving %s: dtype must be F32, BF16 or F16", dir);
    if (lrsa_mkdirs(dir, e)) return -1;
    char path[4096];
    lrsa_path_join(path, sizeof path, dir, "model.safetensors");
    lrsa_st_writer *w = lrsa_st_writer_new();
    for (int i = 0; i < m->table.n; i++) {
        const lrsa_param_desc *d = &m->table.desc[i];
        lrsa_st_writer_add_f32(w, d->name, dtype, d->ndim, d->shape,
                               lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, i));
    }
    int rc = lrsa_st_writer_write(w, path, e);
    lrsa_st_writer_free(w);
    if (rc) return -1;
    const char *td = dtype == LRSA_ST_F32    ? "float32"
                     : dtype == LRSA_ST_BF16 ? "bfloat16"
                                             : "float16";
    lrsa_path_join(path, sizeof path, dir, "config.json");
    return lrsa_config_save(&m->cfg, path, td, e);
}

void lrsa_model_free(lrsa_model *m) {
    lrsa_base_bf16_free(m->base16);
    lrsa_table_free(&m->table);
    free(m->layers);
    free(m->inv_freq);
    memset(m, 0, sizeof *m);
}
