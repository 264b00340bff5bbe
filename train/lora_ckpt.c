/* LoRA checkpoint attributes (lora_ckpt.h). */
#include "train/lora_ckpt.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/checkpoint.h"

char *lrsa_lora_ckpt_json(const lrsa_lora_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "r", c->rank);
    cJSON_AddNumberToObject(j, "lora_alpha", c->alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", c->dropout);
    cJSON_AddBoolToObject(j, "use_rslora", c->rslora != 0);
    cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
    for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++)
        if (c->targets & (1u << t))
            cJSON_AddItemToArray(tm, cJSON_CreateString(lrsa_lora_target_name(t)));
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

void lrsa_checksum_hex(uint64_t sum, char out[17]) {
    snprintf(out, 17, "%016" PRIx64, sum);
}

int lrsa_lora_ckpt_config(const char *ckpt, lrsa_lora_config *c, lrsa_err *e) {
    memset(c, 0, sizeof *c);
    int has = lrsa_ckpt_has_attr(ckpt, "lora", e);
    if (has <= 0) return has;
    char *text = lrsa_ckpt_read_string(ckpt, "lora", e);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r");
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "use_rslora");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    int rc = 0;
    if (!cJSON_IsNumber(r) || !cJSON_IsNumber(al) || !cJSON_IsNumber(dr) || !cJSON_IsArray(tm)) {
        rc = lrsa_errorf(e, "checkpoint %s: attribute 'lora' is not the JSON lrsa writes", ckpt);
    } else {
        c->rank = (int)r->valuedouble;
        c->alpha = al->valuedouble;
        c->dropout = dr->valuedouble;
        c->rslora = cJSON_IsTrue(rs);
        const cJSON *it;
        cJSON_ArrayForEach(it, tm) {
            for (int t = 0; t < LRSA_LORA_NUM_TARGETS; t++)
                if (cJSON_IsString(it) && !strcmp(it->valuestring, lrsa_lora_target_name(t)))
                    c->targets |= 1u << t;
        }
        char where[4200];
        snprintf(where, sizeof where, "checkpoint %s", ckpt);
        rc = lrsa_lora_config_check(c, where, e);
    }
    cJSON_Delete(j);
    return rc ? -1 : 1;
}

int lrsa_lora_ckpt_check_base(const char *ckpt, const lrsa_model *base, const char *base_desc,
                              lrsa_err *e) {
    char *want = lrsa_ckpt_read_string(ckpt, "base_checksum", e);
    if (!want) return -1;
    char have[17];
    lrsa_checksum_hex(lrsa_model_checksum(base), have);
    int rc = 0;
    if (strcmp(want, have))
        rc = lrsa_errorf(e,
                         "the base model %s is not the one the LoRA adapter in %s was trained on "
                         "(weights checksum %s, the checkpoint recorded %s); use the original "
                         "base model",
                         base_desc, ckpt, have, want);
    free(want);
    return rc;
}

lrsa_lora_config lrsa_lora_config_of(const lrsa_train_config *c) {
    lrsa_lora_config l = {
        .rank = (int)c->lora_rank, .alpha = c->lora_alpha, .dropout = c->lora_dropout};
    lrsa_err e;
    if (lrsa_lora_targets_parse(c->lora_targets, &l.targets, "lora.targets", &e)) l.targets = 0;
    return l;
}
