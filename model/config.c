/* config.json reading and writing (formats.md 2.1, 2.3). */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

/* Reads an integer field. Missing: *out = def and returns 0 unless required. */
static int get_int(const cJSON *root, const char *key, int *out, int def, int required,
                   const char *path, lrsa_err *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required)
            return lrsa_errorf(e, "%s: required field \"%s\" is missing; add it (an integer)", path,
                               key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        fabs(it->valuedouble) > 2147483647.0)
        return lrsa_errorf(e, "%s: field \"%s\" must be an integer", path, key);
    *out = (int)it->valuedouble;
    return 0;
}

static int get_float(const cJSON *obj, const char *key, float *out, float def, const char *path,
                     const char *ctx, lrsa_err *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(it))
        return lrsa_errorf(e, "%s: field \"%s%s\" must be a number", path, ctx, key);
    *out = (float)it->valuedouble;
    return 0;
}

static int get_bool(const cJSON *root, const char *key, int *out, int def, const char *path,
                    lrsa_err *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(it))
        return lrsa_errorf(e, "%s: field \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

static int absent(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return !it || cJSON_IsNull(it);
}

/* Records that a field took Hugging Face's default ("key = value"). */
static void note_default(lrsa_model_config *c, const char *key, const char *value) {
    size_t k = strlen(c->defaults_used);
    snprintf(c->defaults_used + k, sizeof c->defaults_used - k, "%s%s = %s", k ? ", " : "", key,
             value);
}

static void note_int(lrsa_model_config *c, const cJSON *root, const char *key, int v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%d", v);
    if (absent(root, key)) note_default(c, key, buf);
}

/* Reads a rope scaling dict (legacy rope_scaling or the newer rope_parameters). */
static int parse_rope_dict(lrsa_rope_config *rc, const cJSON *d, const char *field,
                           const char *path, lrsa_err *e) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(d, "rope_type");
    if (!ty) ty = cJSON_GetObjectItemCaseSensitive(d, "type");
    const char *t = "default";
    if (ty) {
        if (!cJSON_IsString(ty))
            return lrsa_errorf(e, "%s: field \"%s.rope_type\" must be a string", path, field);
        t = ty->valuestring;
    }
    char ctx[64];
    snprintf(ctx, sizeof ctx, "%s.", field);
    if (strcmp(t, "default") == 0) {
        rc->type = LRSA_ROPE_DEFAULT;
    } else if (strcmp(t, "linear") == 0) {
        rc->type = LRSA_ROPE_LINEAR;
        if (get_float(d, "factor", &rc->factor, 0.f, path, ctx, e)) return -1;
        if (!(rc->factor > 0))
            return lrsa_errorf(e, "%s: \"%s.factor\" must be a positive number for linear rope",
                               path, field);
    } else if (strcmp(t, "llama3") == 0) {
        rc->type = LRSA_ROPE_LLAMA3;
        if (get_float(d, "factor", &rc->factor, 0.f, path, ctx, e) ||
            get_float(d, "low_freq_factor", &rc->low_freq_factor, 1.f, path, ctx, e) ||
            get_float(d, "high_freq_factor", &rc->high_freq_factor, 4.f, path, ctx, e))
            return -1;
        int omax = 8192;
        if (get_int(d, "original_max_position_embeddings", &omax, 8192, 0, path, e)) return -1;
        rc->original_max_position_embeddings = omax;
        if (!(rc->factor > 0) || !(rc->high_freq_factor > rc->low_freq_factor) || omax <= 0)
            return lrsa_errorf(e,
                               "%s: \"%s\" llama3 needs factor > 0, high_freq_factor > "
                               "low_freq_factor and original_max_position_embeddings > 0",
                               path, field);
    } else {
        return lrsa_errorf(e,
                           "%s: \"%s\" rope type \"%s\" is not supported (supported: default, "
                           "linear, llama3); dynamic/yarn scaling cannot be trained here",
                           path, field, t);
    }
    return 0;
}

static int parse_config(lrsa_model_config *c, const cJSON *root, const char *path, lrsa_err *e) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(root)) return lrsa_errorf(e, "%s: config.json must be a JSON object", path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return lrsa_errorf(e,
                           "%s: field \"model_type\" is missing or not a string (expected "
                           "\"llama\", \"qwen2\" or \"mistral\")",
                           path);
    if (strcmp(mt->valuestring, "llama") == 0)
        c->arch = LRSA_ARCH_LLAMA;
    else if (strcmp(mt->valuestring, "qwen2") == 0)
        c->arch = LRSA_ARCH_QWEN2;
    else if (strcmp(mt->valuestring, "mistral") == 0)
        c->arch = LRSA_ARCH_MISTRAL;
    else
        return lrsa_errorf(e,
                           "%s: field \"model_type\" is \"%s\"; supported: llama, qwen2, mistral",
                           path, mt->valuestring);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);

    if (get_int(root, "vocab_size", &c->vocab_size, 0, 1, path, e) ||
        get_int(root, "hidden_size", &c->hidden_size, 0, 1, path, e) ||
        get_int(root, "intermediate_size", &c->intermediate_size, 0, 1, path, e) ||
        get_int(root, "num_hidden_layers", &c->num_hidden_layers, 0, 1, path, e) ||
        get_int(root, "num_attention_heads", &c->num_attention_heads, 0, 1, path, e))
        return -1;
    /* Optional fields: the defaults of transformers' LlamaConfig, MistralConfig and
     * Qwen2Config (documented there), noted in defaults_used when config.json leaves them
     * out. */
    int kv_def = c->arch == LRSA_ARCH_MISTRAL ? 8
                 : c->arch == LRSA_ARCH_QWEN2 ? 32
                                              : c->num_attention_heads;
    if (get_int(root, "num_key_value_heads", &c->num_key_value_heads, kv_def, 0, path, e))
        return -1;
    note_int(c, root, "num_key_value_heads", c->num_key_value_heads);
    int hd_def = c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0;
    if (get_int(root, "head_dim", &c->head_dim, hd_def, 0, path, e)) return -1;
    note_int(c, root, "head_dim", c->head_dim);
    if (get_float(root, "rms_norm_eps", &c->rms_norm_eps, 1e-6f, path, "", e)) return -1;
    if (absent(root, "rms_norm_eps")) note_default(c, "rms_norm_eps", "1e-06");
    int maxpos_def = c->arch == LRSA_ARCH_MISTRAL ? 4096 * 32
                     : c->arch == LRSA_ARCH_QWEN2 ? 32768
                                                  : 2048;
    if (get_int(root, "max_position_embeddings", &c->max_position_embeddings, maxpos_def, 0, path,
                e))
        return -1;
    note_int(c, root, "max_position_embeddings", c->max_position_embeddings);
    if (get_bool(root, "tie_word_embeddings", &c->tie_word_embeddings, 0, path, e)) return -1;
    c->tie_word_embeddings_given = !absent(root, "tie_word_embeddings");
    if (!c->tie_word_embeddings_given) note_default(c, "tie_word_embeddings", "false");
    if (get_bool(root, "mlp_bias", &c->mlp_bias, 0, path, e)) return -1;
    if (c->mlp_bias)
        return lrsa_errorf(e,
                           "%s: field \"mlp_bias\" is true; only models without MLP biases "
                           "are supported (set it to false or use another model)",
                           path);
    if (c->arch == LRSA_ARCH_QWEN2) {
        c->attention_bias = 1; /* Qwen2 always has q/k/v biases, never o_proj */
        c->o_proj_bias = 0;
    } else {
        int ab;
        if (get_bool(root, "attention_bias", &ab, 0, path, e)) return -1;
        if (c->arch == LRSA_ARCH_LLAMA && absent(root, "attention_bias"))
            note_default(c, "attention_bias", "false");
        c->attention_bias = ab;
        c->o_proj_bias = ab;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0)
        return lrsa_errorf(e, "%s: field \"hidden_act\" is \"%s\"; only \"silu\" is supported",
                           path, act->valuestring);

    /* RoPE: rope_parameters (newer) takes precedence over rope_theta + rope_scaling. */
    c->rope.theta = 10000.f;
    c->rope.type = LRSA_ROPE_DEFAULT;
    c->rope.factor = 1.f;
    c->rope.low_freq_factor = 1.f;
    c->rope.high_freq_factor = 4.f;
    c->rope.original_max_position_embeddings = c->max_position_embeddings;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp))
            return lrsa_errorf(e, "%s: field \"rope_parameters\" must be an object", path);
        if (get_float(rp, "rope_theta", &c->rope.theta, 10000.f, path, "rope_parameters.", e))
            return -1;
        if (absent(rp, "rope_theta")) note_default(c, "rope_parameters.rope_theta", "10000");
        if (parse_rope_dict(&c->rope, rp, "rope_parameters", path, e)) return -1;
    } else {
        if (get_float(root, "rope_theta", &c->rope.theta, 10000.f, path, "", e)) return -1;
        if (absent(root, "rope_theta")) note_default(c, "rope_theta", "10000");
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
        if (rs && !cJSON_IsNull(rs)) {
            if (!cJSON_IsObject(rs))
                return lrsa_errorf(e, "%s: field \"rope_scaling\" must be null or an object", path);
            if (parse_rope_dict(&c->rope, rs, "rope_scaling", path, e)) return -1;
        }
    }
    if (!(c->rope.theta > 0))
        return lrsa_errorf(e, "%s: field \"rope_theta\" must be positive", path);

    if (get_int(root, "bos_token_id", &c->bos_token_id, -1, 0, path, e) ||
        get_int(root, "pad_token_id", &c->pad_token_id, -1, 0, path, e))
        return -1;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    c->n_eos = 0;
    if (eos && cJSON_IsArray(eos)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, eos) {
            if (!cJSON_IsNumber(x))
                return lrsa_errorf(e, "%s: field \"eos_token_id\" must hold integers", path);
            if (c->n_eos >= LRSA_MAX_EOS)
                return lrsa_errorf(e, "%s: field \"eos_token_id\" lists more than %d ids", path,
                                   LRSA_MAX_EOS);
            c->eos_token_ids[c->n_eos++] = (int)x->valuedouble;
        }
    } else if (eos && cJSON_IsNumber(eos)) {
        c->eos_token_ids[c->n_eos++] = (int)eos->valuedouble;
    } else if (eos && !cJSON_IsNull(eos)) {
        return lrsa_errorf(e, "%s: field \"eos_token_id\" must be an integer or a list", path);
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!dt) dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s",
             cJSON_IsString(dt) ? dt->valuestring : "float32");
    if (lrsa_config_validate(c, path, e)) return lrsa_config_note_defaults(c, e);
    return 0;
}

int lrsa_config_note_defaults(const lrsa_model_config *c, lrsa_err *e) {
    if (!e || !c->defaults_used[0]) return -1;
    size_t k = strlen(e->msg);
    snprintf(e->msg + k, sizeof e->msg - k,
             " (config.json leaves out %s; Hugging Face's defaults were used for them)",
             c->defaults_used);
    return -1;
}

int lrsa_config_load(lrsa_model_config *c, const char *path, lrsa_err *e) {
    size_t n;
    char *text = lrsa_read_file(path, &n, e);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, n);
    if (!root) {
        const char *where = cJSON_GetErrorPtr();
        long off = where ? (long)(where - text) : -1;
        free(text);
        return lrsa_errorf(e, "%s: not valid JSON (near byte %ld); fix the file", path, off);
    }
    int rc = parse_config(c, root, path, e);
    cJSON_Delete(root);
    free(text);
    return rc;
}

int lrsa_config_validate(const lrsa_model_config *c, const char *where, lrsa_err *e) {
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 ||
        c->num_hidden_layers <= 0 || c->num_attention_heads <= 0 || c->num_key_value_heads <= 0)
        return lrsa_errorf(e,
                           "%s: vocab_size, hidden_size, intermediate_size, num_hidden_layers, "
                           "num_attention_heads and num_key_value_heads must all be positive",
                           where);
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return lrsa_errorf(e,
                           "%s: num_attention_heads (%d) must be a multiple of "
                           "num_key_value_heads (%d)",
                           where, c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim <= 0 || c->head_dim % 2 != 0)
        return lrsa_errorf(e, "%s: head_dim (%d) must be positive and even (RoPE pairs halves)",
                           where, c->head_dim);
    if (!(c->rms_norm_eps > 0)) return lrsa_errorf(e, "%s: rms_norm_eps must be positive", where);
    if (c->mlp_bias) return lrsa_errorf(e, "%s: mlp_bias must be false", where);
    return 0;
}

long long lrsa_config_num_params(const lrsa_model_config *c) {
    long long C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
              Hkv = c->num_key_value_heads, I = c->intermediate_size, V = c->vocab_size;
    long long layer = C /* input norm */ + (Hq + 2 * Hkv) * D * C + Hq * D * C + C + 3 * I * C;
    if (c->attention_bias) layer += (Hq + 2 * Hkv) * D;
    if (c->o_proj_bias) layer += C;
    long long total = V * C + layer * c->num_hidden_layers + C;
    if (!c->tie_word_embeddings) total += V * C;
    return total;
}

/* A float field printed with the digits a person wrote (1e-05, not 9.99999974737875e-06). */
static void add_float(cJSON *o, const char *key, float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)v);
    cJSON_AddNumberToObject(o, key, strtod(buf, NULL));
}

static const char *arch_class(lrsa_arch a) {
    switch (a) {
        case LRSA_ARCH_QWEN2:
            return "Qwen2ForCausalLM";
        case LRSA_ARCH_MISTRAL:
            return "MistralForCausalLM";
        default:
            return "LlamaForCausalLM";
    }
}

int lrsa_config_save(const lrsa_model_config *c, const char *path, const char *torch_dtype,
                     lrsa_err *e) {
    cJSON *r = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(arch_class(c->arch)));
    const char *mt = c->arch == LRSA_ARCH_QWEN2     ? "qwen2"
                     : c->arch == LRSA_ARCH_MISTRAL ? "mistral"
                                                    : "llama";
    cJSON_AddStringToObject(r, "model_type", mt);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->num_key_value_heads);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    add_float(r, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_position_embeddings);
    add_float(r, "rope_theta", c->rope.theta);
    if (c->rope.type == LRSA_ROPE_DEFAULT) {
        cJSON_AddNullToObject(r, "rope_scaling");
    } else {
        cJSON *rs = cJSON_AddObjectToObject(r, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type",
                                c->rope.type == LRSA_ROPE_LINEAR ? "linear" : "llama3");
        add_float(rs, "factor", c->rope.factor);
        if (c->rope.type == LRSA_ROPE_LLAMA3) {
            add_float(rs, "low_freq_factor", c->rope.low_freq_factor);
            add_float(rs, "high_freq_factor", c->rope.high_freq_factor);
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings",
                                    c->rope.original_max_position_embeddings);
        }
    }
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_word_embeddings);
    if (c->arch != LRSA_ARCH_QWEN2) {
        cJSON_AddBoolToObject(r, "attention_bias", c->attention_bias);
        cJSON_AddBoolToObject(r, "mlp_bias", 0);
    }
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_token_id);
    if (c->pad_token_id >= 0) cJSON_AddNumberToObject(r, "pad_token_id", c->pad_token_id);
    if (c->n_eos == 1) {
        cJSON_AddNumberToObject(r, "eos_token_id", c->eos_token_ids[0]);
    } else if (c->n_eos > 1) {
        cJSON *a = cJSON_AddArrayToObject(r, "eos_token_id");
        for (int i = 0; i < c->n_eos; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(c->eos_token_ids[i]));
    }
    cJSON_AddStringToObject(r, "torch_dtype", torch_dtype ? torch_dtype : "float32");
    cJSON_AddBoolToObject(r, "use_cache", 1);
    char *text = cJSON_Print(r);
    cJSON_Delete(r);
    LRSA_CHECK(text != NULL);
    int rc = lrsa_write_file_atomic(path, text, strlen(text), e);
    free(text);
    if (rc) return lrsa_err_prefix(e, "writing config %s: ", path);
    return 0;
}
