/* LoRA adapters: configuration, the adapter's tensor table, initialisation, merging (lora.h). */
#include "model/lora.h"

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "model/base_bf16.h"

static const char *const target_names[LRSA_LORA_NUM_TARGETS] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

const char *lrsa_lora_target_name(int t) {
    return t >= 0 && t < LRSA_LORA_NUM_TARGETS ? target_names[t] : "?";
}

int lrsa_lora_targets_parse(const char *list, unsigned *mask, const char *where, lrsa_err *e) {
    *mask = 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *q = p;
        while (*q && *q != ',' && !isspace((unsigned char)*q)) q++;
        size_t n = (size_t)(q - p);
        int found = -1;
        for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++)
            if (strlen(target_names[t]) == n && !strncmp(target_names[t], p, n)) found = t;
        if (found < 0)
            return lrsa_errorf(e,
                               "%s: unknown LoRA target '%.*s'; targets are q_proj, k_proj, "
                               "v_proj, o_proj, gate_proj, up_proj, down_proj",
                               where, (int)n, p);
        if (*mask & (1u << found))
            return lrsa_errorf(e, "%s: LoRA target '%s' is listed twice", where,
                               target_names[found]);
        *mask |= 1u << found;
        p = q;
    }
    if (!*mask)
        return lrsa_errorf(e, "%s: no LoRA targets; name at least one, e.g. [q_proj, v_proj]",
                           where);
    return 0;
}

void lrsa_lora_targets_format(unsigned mask, char *out, size_t cap) {
    size_t k = 0;
    if (cap) out[0] = 0;
    for (int t = 0; t < LRSA_LORA_NUM_TARGETS && k < cap; t++)
        if (mask & (1u << t))
            k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? "," : "", target_names[t]);
}

int lrsa_lora_config_check(const lrsa_lora_config *c, const char *where, lrsa_err *e) {
    if (c->rank < 1 || c->rank > 4096)
        return lrsa_errorf(e, "%s: LoRA rank %d is outside [1, 4096]", where, c->rank);
    if (!(c->alpha > 0) || !isfinite(c->alpha))
        return lrsa_errorf(e, "%s: LoRA alpha %g must be > 0", where, c->alpha);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return lrsa_errorf(e, "%s: LoRA dropout %g must be in [0, 1)", where, c->dropout);
    if (!c->targets || (c->targets & ~LRSA_LORA_ALL_TARGETS))
        return lrsa_errorf(e, "%s: LoRA targets must name at least one projection", where);
    return 0;
}

static lrsa_lora_site site_of(int t) {
    switch (t) {
        case LRSA_LORA_Q:
        case LRSA_LORA_K:
        case LRSA_LORA_V:
            return LRSA_LORA_SITE_QKV;
        case LRSA_LORA_O:
            return LRSA_LORA_SITE_O;
        case LRSA_LORA_GATE:
        case LRSA_LORA_UP:
            return LRSA_LORA_SITE_GATE_UP;
        default:
            return LRSA_LORA_SITE_DOWN;
    }
}

/* A projection's input width, output width and first column inside its site's fused output. */
static void target_dims(const lrsa_model_config *c, int t, int *in, int *out, int *col) {
    const int C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
              Hkv = c->num_key_value_heads, F = c->intermediate_size; /* (not I: complex.h) */
    switch (t) {
        case LRSA_LORA_Q:
            *in = C, *out = Hq * D, *col = 0;
            break;
        case LRSA_LORA_K:
            *in = C, *out = Hkv * D, *col = Hq * D;
            break;
        case LRSA_LORA_V:
            *in = C, *out = Hkv * D, *col = (Hq + Hkv) * D;
            break;
        case LRSA_LORA_O:
            *in = Hq * D, *out = C, *col = 0;
            break;
        case LRSA_LORA_GATE:
            *in = C, *out = F, *col = 0;
            break;
        case LRSA_LORA_UP:
            *in = C, *out = F, *col = F;
            break;
        default:
            *in = F, *out = C, *col = 0;
            break;
    }
}

int lrsa_lora_create(lrsa_lora *a, const lrsa_model_config *mc, const lrsa_lora_config *c,
                     lrsa_err *e) {
    memset(a, 0, sizeof *a);
    if (lrsa_lora_config_check(c, "LoRA config", e)) return -1;
    a->cfg = *c;
    a->scale = (float)(c->rslora ? c->alpha / sqrt((double)c->rank) : c->alpha / c->rank);
    a->n_layers = mc->num_hidden_layers;
    a->layers = lrsa_calloc((size_t)a->n_layers, sizeof *a->layers);
    lrsa_table_init(&a->table);
    for (int l = 0; l < a->n_layers; l++) {
        lrsa_lora_layer *L = &a->layers[l];
        for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++) L->A[t] = L->B[t] = -1;
        /* per site: the A's of its adapted projections, then their B's (lora.h) */
        for (int site = 0; site < LRSA_LORA_NUM_SITES; site++)
            for (int part = 0; part < 2; part++)
                for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++) {
                    if ((int)site_of(t) != site || !(c->targets & (1u << t))) continue;
                    int in, out, col;
                    target_dims(mc, t, &in, &out, &col);
                    char name[128];
                    snprintf(name, sizeof name,
                             "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l,
                             t <= LRSA_LORA_O ? "self_attn" : "mlp", target_names[t],
                             part ? 'B' : 'A');
                    int64_t shape[2] = {part ? out : c->rank, part ? c->rank : in};
                    int idx = lrsa_table_add(&a->table, name, 2, shape, LRSA_KIND_MATRIX);
                    if (part)
                        L->B[t] = idx;
                    else
                        L->A[t] = idx;
                }
    }
    lrsa_table_alloc(&a->table, LRSA_ROLE_PARAM);
    return 0;
}

void lrsa_lora_init(lrsa_lora *a, uint64_t seed) {
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    for (int l = 0; l < a->n_layers; l++)
        for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++) {
            int ia = a->layers[l].A[t], ib = a->layers[l].B[t];
            if (ia < 0) continue;
            const lrsa_param_desc *d = &a->table.desc[ia];
            float bound = (float)(1.0 / sqrt((double)d->shape[1]));
            float *A = lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ia);
            for (int64_t i = 0; i < d->numel; i++)
                A[i] = bound * (2.0f * lrsa_rng_uniform(&r) - 1.0f);
            memset(lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ib), 0,
                   sizeof(float) * (size_t)a->table.desc[ib].numel);
        }
}

void lrsa_lora_free(lrsa_lora *a) {
    lrsa_table_free(&a->table);
    free(a->layers);
    memset(a, 0, sizeof *a);
}

int64_t lrsa_lora_numel(const lrsa_lora *a) {
    return a->table.numel;
}

int lrsa_lora_site_spec(const lrsa_lora *a, const lrsa_model_config *mc, int layer,
                        lrsa_lora_site site, int train, lrsa_lora_spec *s, int *first_A,
                        int *first_B) {
    const lrsa_lora_layer *L = &a->layers[layer];
    memset(s, 0, sizeof *s);
    s->rank = a->cfg.rank;
    s->scale = a->scale;
    s->dropout = train ? (float)a->cfg.dropout : 0.0f;
    *first_A = *first_B = -1;
    for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++) {
        if ((int)site_of(t) != (int)site || L->A[t] < 0) continue;
        int in, out, col, g = s->n_groups++;
        target_dims(mc, t, &in, &out, &col);
        s->col[g] = col;
        s->width[g] = out;
        s->seed[g] = lrsa_lora_dropout_seed(a->pass_key,
                                            (uint64_t)layer * LRSA_LORA_NUM_TARGETS + (uint64_t)t);
        if (*first_A < 0) *first_A = L->A[t], *first_B = L->B[t];
    }
    return s->n_groups;
}

int lrsa_lora_site_cols(const lrsa_lora *a, lrsa_lora_site site) {
    int n = 0;
    for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++)
        n += (int)site_of(t) == (int)site && (a->cfg.targets & (1u << t));
    return n * a->cfg.rank;
}

void lrsa_lora_merge(const lrsa_lora *a, lrsa_model *m) {
    for (int l = 0; l < a->n_layers; l++) {
        const lrsa_layer_index *ML = &m->layers[l];
        const int w_idx[LRSA_LORA_NUM_TARGETS] = {ML->q,    ML->k,  ML->v,   ML->o,
                                                  ML->gate, ML->up, ML->down};
        for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++) {
            int ia = a->layers[l].A[t], ib = a->layers[l].B[t];
            if (ia < 0) continue;
            const lrsa_param_desc *dA = &a->table.desc[ia], *dB = &a->table.desc[ib];
            const int r = (int)dA->shape[0], in = (int)dA->shape[1], out = (int)dB->shape[0];
            /* W[out, in] += scale * B[out, r] @ A[r, in] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, a->scale,
                        lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ib), r,
                        lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ia), in, 1.0f,
                        lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, w_idx[t]), in);
        }
    }
}

void lrsa_checksum_init(lrsa_checksum_state *st) {
    st->h = 0xcbf29ce484222325ULL;
    st->n_carry = 0;
}

static void hash_word(uint64_t *h, const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    *h = (*h ^ w) * 0x100000001b3ULL;
    *h ^= *h >> 29;
}

void lrsa_checksum_update(lrsa_checksum_state *st, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t i = 0;
    while (st->n_carry > 0 && st->n_carry < 8 && i < n) st->carry[st->n_carry++] = p[i++];
    if (st->n_carry == 8) {
        hash_word(&st->h, st->carry);
        st->n_carry = 0;
    }
    /* 8 bytes per step: a 135M model hashes in well under a second */
    for (; i + 8 <= n; i += 8) hash_word(&st->h, p + i);
    while (i < n) st->carry[st->n_carry++] = p[i++];
}

uint64_t lrsa_checksum_final(const lrsa_checksum_state *st) {
    uint64_t h = st->h;
    for (int i = 0; i < st->n_carry; i++) h = (h ^ st->carry[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t lrsa_model_checksum(const lrsa_model *m) {
    if (m->base16) return m->base16->checksum; /* taken before the weights were rounded */
    lrsa_checksum_state st;
    lrsa_checksum_init(&st);
    lrsa_checksum_update(&st, m->table.arena[LRSA_ROLE_PARAM],
                         (size_t)m->table.numel * sizeof(float));
    return lrsa_checksum_final(&st);
}
