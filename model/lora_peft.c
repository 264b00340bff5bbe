/* PEFT LoRA adapter directories (lora.h): adapter_config.json + adapter_model.safetensors, with
 * PEFT's tensor names (base_model.model.<module path>.lora_A.weight / .lora_B.weight, no adapter
 * name), which are the names of the adapter's tensor table. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "model/lora.h"

int lrsa_lora_save_peft(const lrsa_lora *a, const char *dir, const char *base_model,
                        lrsa_st_dtype dtype, lrsa_err *e) {
    if (dtype != LRSA_ST_F32 && dtype != LRSA_ST_BF16 && dtype != LRSA_ST_F16)
        return lrsa_errorf(e, "saving the adapter %s: dtype must be F32, BF16 or F16", dir);
    if (lrsa_mkdirs(dir, e)) return -1;
    char path[4200];
    lrsa_path_join(path, sizeof path, dir, "adapter_model.safetensors");
    lrsa_st_writer *w = lrsa_st_writer_new();
    lrsa_st_writer_add_meta(w, "format", "pt");
    for (int i = 0; i < a->table.n; i++) {
        const lrsa_param_desc *d = &a->table.desc[i];
        lrsa_st_writer_add_f32(w, d->name, dtype, d->ndim, d->shape,
                               lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, i));
    }
    int rc = lrsa_st_writer_write(w, path, e);
    lrsa_st_writer_free(w);
    if (rc) return -1;

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddStringToObject(j, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddNumberToObject(j, "r", a->cfg.rank);
    cJSON_AddNumberToObject(j, "lora_alpha", a->cfg.alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", a->cfg.dropout);
    cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
    for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++)
        if (a->cfg.targets & (1u << t))
            cJSON_AddItemToArray(tm, cJSON_CreateString(lrsa_lora_target_name(t)));
    cJSON_AddBoolToObject(j, "use_rslora", a->cfg.rslora != 0);
    cJSON_AddBoolToObject(j, "use_dora", 0);
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddNullToObject(j, "layers_to_transform");
    cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
    cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    lrsa_path_join(path, sizeof path, dir, "adapter_config.json");
    rc = lrsa_write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

/* A key that must be absent, null, false, empty or equal to `ok` (a string) for lrsa to load the
 * adapter as plain LoRA. */
static int refuse_unless_plain(const cJSON *j, const char *key, const char *ok, const char *path,
                               const char *what, lrsa_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if ((cJSON_IsArray(v) || cJSON_IsObject(v)) && cJSON_GetArraySize(v) == 0) return 0;
    if (ok && cJSON_IsString(v) && !strcmp(v->valuestring, ok)) return 0;
    return lrsa_errorf(e,
                       "%s: \"%s\" is set (%s), which lrsa does not support; only plain LoRA "
                       "adapters on the seven projections load",
                       path, key, what);
}

static int parse_config(const char *path, lrsa_lora_config *c, lrsa_err *e) {
    char *text = lrsa_read_file(path, NULL, e);
    if (!text) return lrsa_err_prefix(e, "adapter: ");
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lrsa_errorf(e, "%s: not a JSON object (is this a PEFT adapter directory?)", path);
    }
    int rc = 0;
    memset(c, 0, sizeof *c);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r");
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "use_rslora");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA"))
        rc = lrsa_errorf(e, "%s: peft_type is %s; only LORA adapters load", path,
                         cJSON_IsString(pt) ? pt->valuestring : "missing");
    else if (!cJSON_IsNumber(r) || r->valuedouble != floor(r->valuedouble))
        rc = lrsa_errorf(e, "%s: \"r\" (the LoRA rank) must be an integer", path);
    else if (al && !cJSON_IsNumber(al))
        rc = lrsa_errorf(e, "%s: \"lora_alpha\" must be a number", path);
    else if (dr && !cJSON_IsNumber(dr))
        rc = lrsa_errorf(e, "%s: \"lora_dropout\" must be a number", path);
    if (!rc) {
        c->rank = (int)r->valuedouble;
        c->alpha = al ? al->valuedouble : 8.0; /* PEFT's defaults */
        c->dropout = dr ? dr->valuedouble : 0.0;
        c->rslora = cJSON_IsTrue(rs);
    }
    if (!rc && cJSON_IsString(tm) && !strcmp(tm->valuestring, "all-linear")) {
        c->targets = LRSA_LORA_ALL_TARGETS; /* every linear layer but the output head */
    } else if (!rc && cJSON_IsArray(tm)) {
        char list[512] = "";
        size_t k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, tm) {
            if (!cJSON_IsString(it)) {
                rc = lrsa_errorf(e, "%s: target_modules must be a list of names", path);
                break;
            }
            k += (size_t)snprintf(list + k, k < sizeof list ? sizeof list - k : 0, "%s,",
                                  it->valuestring);
        }
        if (!rc && lrsa_lora_targets_parse(list, &c->targets, path, e)) rc = -1;
    } else if (!rc) {
        rc = lrsa_errorf(e,
                         "%s: target_modules must be a list of projection names or "
                         "\"all-linear\" (regular expressions are not supported)",
                         path);
    }
    struct {
        const char *key, *ok, *what;
    } plain[] = {
        {"use_dora", NULL, "DoRA"},
        {"bias", "none", "trained biases"},
        {"fan_in_fan_out", NULL, "transposed weights"},
        {"modules_to_save", NULL, "fully trained extra modules"},
        {"rank_pattern", NULL, "per-module ranks"},
        {"alpha_pattern", NULL, "per-module alphas"},
        {"layers_to_transform", NULL, "a subset of layers"},
        {"layer_replication", NULL, "replicated layers"},
        {"lora_bias", NULL, "LoRA biases"},
        {"target_parameters", NULL, "adapted parameters"},
        {"exclude_modules", NULL, "excluded modules"},
        {"trainable_token_indices", NULL, "trainable tokens"},
        {"alora_invocation_tokens", NULL, "activated LoRA"},
        {"use_qalora", NULL, "QA-LoRA"},
    };
    for (size_t i = 0; !rc && i < sizeof plain / sizeof plain[0]; i++)
        rc = refuse_unless_plain(j, plain[i].key, plain[i].ok, path, plain[i].what, e);
    cJSON_Delete(j);
    if (!rc && lrsa_lora_config_check(c, path, e)) rc = -1;
    return rc;
}

int lrsa_lora_load_peft(lrsa_lora *a, const lrsa_model_config *mc, const char *dir, lrsa_err *e) {
    char path[4200];
    lrsa_lora_config c;
    lrsa_path_join(path, sizeof path, dir, "adapter_config.json");
    if (parse_config(path, &c, e)) return -1;
    if (lrsa_lora_create(a, mc, &c, e)) return lrsa_err_prefix(e, "%s: ", path);
    lrsa_path_join(path, sizeof path, dir, "adapter_model.safetensors");
    lrsa_safetensors st;
    if (lrsa_st_open(&st, path, e)) {
        lrsa_lora_free(a);
        return lrsa_err_prefix(e, "adapter: ");
    }
    int rc = 0;
    for (int i = 0; i < a->table.n && !rc; i++) {
        const lrsa_param_desc *d = &a->table.desc[i];
        const lrsa_st_tensor *t = lrsa_st_find(&st, d->name);
        if (!t) {
            rc = lrsa_errorf(e,
                             "%s: tensor \"%s\" is missing (adapter_config.json names this "
                             "projection; was the adapter made for another model?)",
                             path, d->name);
        } else if (t->ndim != 2 || t->shape[0] != d->shape[0] || t->shape[1] != d->shape[1]) {
            rc = lrsa_errorf(e,
                             "%s: tensor \"%s\" has shape [%lld, %lld] but r = %d and the base "
                             "model's config imply [%lld, %lld]",
                             path, d->name, t->ndim > 0 ? (long long)t->shape[0] : -1LL,
                             t->ndim > 1 ? (long long)t->shape[1] : -1LL, c.rank,
                             (long long)d->shape[0], (long long)d->shape[1]);
        } else {
            rc = lrsa_st_read_f32(&st, t, lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, i), e);
        }
    }
    /* a tensor lrsa would silently ignore (DoRA magnitudes, embeddings, extra layers) */
    for (int i = 0; i < st.n && !rc; i++)
        if (lrsa_table_find(&a->table, st.tensors[i].name) < 0)
            rc = lrsa_errorf(e,
                             "%s: tensor \"%s\" is not a LoRA A/B matrix of the projections in "
                             "target_modules for this model; lrsa cannot apply it",
                             path, st.tensors[i].name);
    lrsa_st_close(&st);
    if (rc) lrsa_lora_free(a);
    return rc;
}

int lrsa_model_apply_adapter(lrsa_model *m, const char *dir, lrsa_err *e) {
    lrsa_lora a;
    if (lrsa_lora_load_peft(&a, &m->cfg, dir, e)) return lrsa_err_prefix(e, "--adapter %s: ", dir);
    lrsa_lora_merge(&a, m);
    lrsa_lora_free(&a);
    return 0;
}

int lrsa_model_load_adapted(lrsa_model *m, const char *dir, const char *adapter_dir, lrsa_err *e) {
    if (lrsa_model_load(m, dir, e)) return -1;
    if (adapter_dir && lrsa_model_apply_adapter(m, adapter_dir, e)) {
        lrsa_model_free(m);
        return -1;
    }
    return 0;
}
