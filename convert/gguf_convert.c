/* GGUF (llama / qwen2) -> Hugging Face directory: config from the metadata, weights dequantized
 * to fp32 (llama q/k rows un-permuted, formats.md 3.5) and saved as safetensors, tokenizer files
 * from the vocabulary. Everything is written into "<out>.tmp.<pid>" and renamed into place at the
 * end, so an error or a crash never leaves a half-converted model behind. */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "convert/gguf_convert.h"
#include "model/quant.h"

static int get_pos_int(const lrsa_gguf *g, const char *arch, const char *suffix, int required,
                       int64_t def, int *out, lrsa_err *e) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    if (required ? lrsa_gguf_get_int(g, key, &v, e) : lrsa_gguf_get_int_opt(g, key, def, &v, e))
        return -1;
    if (v <= 0 || v > INT32_MAX)
        return lrsa_errorf(e,
                           "%s: metadata key '%s' is %lld; it must be a positive 32-bit "
                           "integer; the file is corrupt",
                           g->path, key, (long long)v);
    *out = (int)v;
    return 0;
}

static int token_id_opt(const lrsa_gguf *g, const char *key, int *out, lrsa_err *e) {
    int64_t v;
    if (lrsa_gguf_get_int_opt(g, key, -1, &v, e)) return -1;
    *out = v >= 0 && v <= INT32_MAX ? (int)v : -1;
    return 0;
}

/* Llama-3 scaling is stored as per-frequency divisors (rope_freqs.weight). Recover the
 * rope_scaling parameters by assuming the published low/high frequency factors (1 and 4) and
 * checking that they reproduce every divisor; anything else is refused rather than guessed. */
static int infer_llama3_scaling(const lrsa_gguf *g, lrsa_model_config *c, lrsa_err *e) {
    const lrsa_gguf_tensor *t = lrsa_gguf_find_tensor(g, "rope_freqs.weight");
    int half = c->head_dim / 2;
    if (t->nelem != half)
        return lrsa_errorf(e, "%s: rope_freqs.weight has %lld values, expected head_dim/2 = %d",
                           g->path, (long long)t->nelem, half);
    float *div = lrsa_malloc((size_t)half * sizeof(float));
    lrsa_gguf_tensor_to_f32(g, t, div);
    char key[256];
    int64_t orig;
    snprintf(key, sizeof key, "%s.rope.scaling.original_context_length", c->model_type);
    if (lrsa_gguf_get_int_opt(g, key, 8192, &orig, e)) {
        free(div);
        return -1;
    }
    lrsa_rope_config rc = {.theta = c->rope.theta,
                           .type = LRSA_ROPE_LLAMA3,
                           .factor = div[half - 1],
                           .low_freq_factor = 1.0f,
                           .high_freq_factor = 4.0f,
                           .original_max_position_embeddings = (int)orig};
    int ok = rc.factor >= 1.0f;
    for (int j = 0; j < half && ok; j++) {
        double inv = pow(rc.theta, -2.0 * j / c->head_dim), wavelen = 2 * M_PI / inv;
        double lo = orig / rc.low_freq_factor, hi = orig / rc.high_freq_factor, want;
        if (wavelen < hi)
            want = 1;
        else if (wavelen > lo)
            want = rc.factor;
        else {
            double s =
                (orig / wavelen - rc.low_freq_factor) / (rc.high_freq_factor - rc.low_freq_factor);
            want = 1.0 / ((1 - s) / rc.factor + s);
        }
        ok = fabs(want - div[j]) <= 1e-3 * want;
    }
    free(div);
    if (!ok)
        return lrsa_errorf(e,
                           "%s: rope_freqs.weight does not match Llama-3 rope scaling with "
                           "low/high frequency factors 1 and 4; this RoPE variant is not "
                           "supported",
                           g->path);
    c->rope = rc;
    return 0;
}

int lrsa_gguf_model_config(const lrsa_gguf *g, lrsa_model_config *c, lrsa_err *e) {
    memset(c, 0, sizeof *c);
    const char *arch;
    if (lrsa_gguf_get_str(g, "general.architecture", &arch, e)) return -1;
    if (strcmp(arch, "llama") == 0)
        c->arch = LRSA_ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0)
        c->arch = LRSA_ARCH_QWEN2;
    else
        return lrsa_errorf(e,
                           "%s: architecture '%s' is not supported; lrsa converts 'llama' "
                           "(Llama 2/3, SmolLM, Mistral-style) and 'qwen2' GGUF files",
                           g->path, arch);
    snprintf(c->model_type, sizeof c->model_type, "%s", arch);
    if (get_pos_int(g, arch, "embedding_length", 1, 0, &c->hidden_size, e) ||
        get_pos_int(g, arch, "block_count", 1, 0, &c->num_hidden_layers, e) ||
        get_pos_int(g, arch, "feed_forward_length", 1, 0, &c->intermediate_size, e) ||
        get_pos_int(g, arch, "attention.head_count", 1, 0, &c->num_attention_heads, e) ||
        get_pos_int(g, arch, "attention.head_count_kv", 0, c->num_attention_heads,
                    &c->num_key_value_heads, e) ||
        get_pos_int(g, arch, "context_length", 0, 2048, &c->max_position_embeddings, e))
        return -1;
    /* head_dim: key_length when present (it may differ from hidden/heads), then the rotary
     * dimension (the whole head for these architectures), then hidden/heads. */
    char key[256];
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    const char *hd_key = lrsa_gguf_get(g, key) ? "attention.key_length" : "rope.dimension_count";
    if (get_pos_int(g, arch, hd_key, 0, c->hidden_size / c->num_attention_heads, &c->head_dim, e))
        return -1;
    double eps, theta;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (lrsa_gguf_get_float(g, key, &eps, e)) return -1;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (lrsa_gguf_get_float_opt(g, key, 10000.0, &theta, e)) return -1;
    c->rms_norm_eps = (float)eps;
    c->rope.theta = (float)theta;
    c->rope.type = LRSA_ROPE_DEFAULT;
    c->rope.factor = 1.0f;

    const lrsa_gguf_tensor *emb = lrsa_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return lrsa_errorf(e,
                           "%s: tensor token_embd.weight (2-D) is missing; the file holds no "
                           "complete model",
                           g->path);
    c->vocab_size = (int)emb->ne[1];
    c->tie_word_embeddings = lrsa_gguf_find_tensor(g, "output.weight") == NULL;
    c->attention_bias =
        c->arch == LRSA_ARCH_QWEN2 || lrsa_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->o_proj_bias =
        c->arch == LRSA_ARCH_LLAMA && lrsa_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;

    const char *stype;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (lrsa_gguf_get_str_opt(g, key, "none", &stype, e)) return -1;
    if (strcmp(stype, "linear") == 0) {
        double f;
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        if (lrsa_gguf_get_float(g, key, &f, e)) return -1;
        c->rope.type = LRSA_ROPE_LINEAR;
        c->rope.factor = (float)f;
    } else if (strcmp(stype, "none") != 0) {
        return lrsa_errorf(e,
                           "%s: rope scaling type '%s' is not supported (supported: none, "
                           "linear, and Llama-3 scaling via rope_freqs.weight)",
                           g->path, stype);
    }
    if (lrsa_config_validate(c, g->path, e)) return -1;
    if (lrsa_gguf_find_tensor(g, "rope_freqs.weight") && infer_llama3_scaling(g, c, e)) return -1;

    int eos, eot;
    if (token_id_opt(g, "tokenizer.ggml.bos_token_id", &c->bos_token_id, e) ||
        token_id_opt(g, "tokenizer.ggml.eos_token_id", &eos, e) ||
        token_id_opt(g, "tokenizer.ggml.eot_token_id", &eot, e) ||
        token_id_opt(g, "tokenizer.ggml.padding_token_id", &c->pad_token_id, e))
        return -1;
    if (eos >= 0) c->eos_token_ids[c->n_eos++] = eos;
    if (eot >= 0 && eot != eos) c->eos_token_ids[c->n_eos++] = eot;
    return 0;
}

/* ---- weights ---- */

typedef struct tensor_job {
    char gg[96], hf[128];
    int64_t rows, cols; /* HF shape [rows, cols]; cols = 0 for 1-D */
    int perm_heads;     /* >0: un-permute rows with this many heads */
    int required;
} tensor_job;

static int n_jobs_for(const lrsa_model_config *c) {
    return 3 + 14 * c->num_hidden_layers;
}

static void add_job(tensor_job *jobs, int *n, const char *gg, const char *hf, int64_t rows,
                    int64_t cols, int perm, int required) {
    tensor_job *j = &jobs[(*n)++];
    snprintf(j->gg, sizeof j->gg, "%s", gg);
    snprintf(j->hf, sizeof j->hf, "%s", hf);
    j->rows = rows;
    j->cols = cols;
    j->perm_heads = perm;
    j->required = required;
}

static int plan_jobs(const lrsa_model_config *c, tensor_job *jobs) {
    int n = 0, llama = c->arch == LRSA_ARCH_LLAMA;
    int64_t C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
            Hkv = c->num_key_value_heads, I = c->intermediate_size, V = c->vocab_size;
    add_job(jobs, &n, "token_embd.weight", "model.embed_tokens.weight", V, C, 0, 1);
    add_job(jobs, &n, "output_norm.weight", "model.norm.weight", C, 0, 0, 1);
    if (!c->tie_word_embeddings) add_job(jobs, &n, "output.weight", "lm_head.weight", V, C, 0, 1);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        char gg[96], hf[128];
#define JOB(G, H, R, K, P, REQ)                                                                    \
    do {                                                                                           \
        snprintf(gg, sizeof gg, "blk.%d.%s", l, G);                                                \
        snprintf(hf, sizeof hf, "model.layers.%d.%s", l, H);                                       \
        add_job(jobs, &n, gg, hf, R, K, P, REQ);                                                   \
    } while (0)
        JOB("attn_norm.weight", "input_layernorm.weight", C, 0, 0, 1);
        JOB("attn_q.weight", "self_attn.q_proj.weight", Hq * D, C, llama ? (int)Hq : 0, 1);
        JOB("attn_k.weight", "self_attn.k_proj.weight", Hkv * D, C, llama ? (int)Hkv : 0, 1);
        JOB("attn_v.weight", "self_attn.v_proj.weight", Hkv * D, C, 0, 1);
        JOB("attn_output.weight", "self_attn.o_proj.weight", C, Hq * D, 0, 1);
        if (c->attention_bias) {
            JOB("attn_q.bias", "self_attn.q_proj.bias", Hq * D, 0, llama ? (int)Hq : 0, 1);
            JOB("attn_k.bias", "self_attn.k_proj.bias", Hkv * D, 0, llama ? (int)Hkv : 0, 1);
            JOB("attn_v.bias", "self_attn.v_proj.bias", Hkv * D, 0, 0, 1);
        }
        if (c->o_proj_bias) JOB("attn_output.bias", "self_attn.o_proj.bias", C, 0, 0, 1);
        JOB("ffn_norm.weight", "post_attention_layernorm.weight", C, 0, 0, 1);
        JOB("ffn_gate.weight", "mlp.gate_proj.weight", I, C, 0, 1);
        JOB("ffn_up.weight", "mlp.up_proj.weight", I, C, 0, 1);
        JOB("ffn_down.weight", "mlp.down_proj.weight", C, I, 0, 1);
#undef JOB
    }
    return n;
}

static int check_shape(const lrsa_gguf *g, const lrsa_gguf_tensor *t, const tensor_job *j,
                       lrsa_err *e) {
    int ok = j->cols ? (t->n_dims == 2 && t->ne[0] == j->cols && t->ne[1] == j->rows)
                     : (t->n_dims == 1 && t->ne[0] == j->rows);
    if (ok) return 0;
    char got[96];
    int k = snprintf(got, sizeof got, "[");
    for (int d = 0; d < t->n_dims; d++)
        k += snprintf(got + k, sizeof got - (size_t)k, "%s%lld", d ? "," : "", (long long)t->ne[d]);
    snprintf(got + k, sizeof got - (size_t)k, "]");
    if (j->cols)
        return lrsa_errorf(e,
                           "%s: tensor '%s' has ne=%s, expected [%lld,%lld] from the "
                           "metadata (hidden, heads, ffn sizes); the file is inconsistent",
                           g->path, t->name, got, (long long)j->cols, (long long)j->rows);
    return lrsa_errorf(e,
                       "%s: tensor '%s' has ne=%s, expected [%lld] from the metadata; the "
                       "file is inconsistent",
                       g->path, t->name, got, (long long)j->rows);
}

/* Every tensor in the file must be one lrsa knows, so that nothing is silently dropped. */
static int check_no_extra(const lrsa_gguf *g, const tensor_job *jobs, int n, lrsa_err *e) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const char *name = g->tensors[i].name;
        int known = strcmp(name, "rope_freqs.weight") == 0;
        for (int k = 0; k < n && !known; k++) known = strcmp(jobs[k].gg, name) == 0;
        if (!known)
            return lrsa_errorf(e,
                               "%s: tensor '%s' has no place in a %s model with this "
                               "metadata; lrsa does not convert this model variant",
                               g->path, name, lrsa_gguf_get(g, "general.architecture")->s);
    }
    return 0;
}

static int write_weights(const lrsa_gguf *g, const lrsa_model_config *c, const char *path,
                         lrsa_st_dtype dtype, lrsa_err *e) {
    tensor_job *jobs = lrsa_calloc((size_t)n_jobs_for(c), sizeof *jobs);
    int n = plan_jobs(c, jobs), rc = check_no_extra(g, jobs, n, e);
    float **bufs = lrsa_calloc((size_t)n, sizeof *bufs);
    lrsa_st_writer *w = lrsa_st_writer_new();
    for (int k = 0; k < n && rc == 0; k++) {
        const tensor_job *j = &jobs[k];
        const lrsa_gguf_tensor *t = lrsa_gguf_find_tensor(g, j->gg);
        if (!t) {
            rc = lrsa_errorf(e,
                             "%s: tensor '%s' (HF %s) is missing; the file holds no complete "
                             "model",
                             g->path, j->gg, j->hf);
            break;
        }
        if ((rc = check_shape(g, t, j, e))) break;
        bufs[k] = lrsa_malloc((size_t)t->nelem * sizeof(float));
        lrsa_gguf_tensor_to_f32(g, t, bufs[k]);
        if (j->perm_heads)
            lrsa_gguf_unpermute_rows(bufs[k], j->perm_heads, c->head_dim,
                                     (size_t)(j->cols ? j->cols : 1) * sizeof(float));
        int64_t shape[2] = {j->rows, j->cols};
        lrsa_st_writer_add_f32(w, j->hf, dtype, j->cols ? 2 : 1, shape, bufs[k]);
    }
    if (rc == 0) {
        lrsa_st_writer_add_meta(w, "format", "pt");
        rc = lrsa_st_writer_write(w, path, e);
    }
    lrsa_st_writer_free(w);
    for (int k = 0; k < n; k++) free(bufs[k]);
    free(bufs);
    free(jobs);
    return rc;
}

int lrsa_gguf_convert(const char *gguf_path, const char *out_dir, lrsa_st_dtype dtype, int force,
                      lrsa_err *e) {
    if (dtype != LRSA_ST_F32 && dtype != LRSA_ST_BF16)
        return lrsa_errorf(e, "convert: output dtype must be f32 or bf16");
    if (lrsa_file_exists(out_dir) && !force)
        return lrsa_errorf(e,
                           "convert: output directory %s already exists; remove it or pass "
                           "--force to replace it",
                           out_dir);
    lrsa_gguf g;
    if (lrsa_gguf_open(&g, gguf_path, e)) return -1;
    lrsa_model_config c;
    char tmp[4200], path[4400];
    lrsa_tmp_dir_name(tmp, sizeof tmp, out_dir);
    int rc = lrsa_gguf_model_config(&g, &c, e);
    if (rc == 0) rc = lrsa_mkdirs(tmp, e);
    if (rc == 0) {
        lrsa_path_join(path, sizeof path, tmp, "model.safetensors");
        rc = write_weights(&g, &c, path, dtype, e);
    }
    if (rc == 0) {
        lrsa_path_join(path, sizeof path, tmp, "config.json");
        rc = lrsa_config_save(&c, path, dtype == LRSA_ST_BF16 ? "bfloat16" : "float32", e);
    }
    if (rc == 0) rc = lrsa_gguf_write_tokenizer(&g, &c, tmp, e);
    lrsa_gguf_close(&g);
    if (rc != 0) {
        lrsa_remove_tree(tmp);
        return -1;
    }
    return lrsa_dir_commit(tmp, out_dir, e) ? lrsa_err_prefix(e, "convert: ") : 0;
}
