/* What a LoRA training checkpoint records beyond the adapter tensors and their moments (which
 * the ordinary checkpoint code writes from the adapter's table): root attributes
 *   lora           JSON {"r", "lora_alpha", "lora_dropout", "use_rslora", "target_modules"}
 *   base_checksum  hex lrsa_model_checksum of the frozen base weights the run trained on
 * next to model_path (the base model directory) and config_yaml. Resume and export check the
 * base they are given against the checksum, with a clear error on a mismatch. */
#ifndef LRSA_TRAIN_LORA_CKPT_H
#define LRSA_TRAIN_LORA_CKPT_H
#include <stdint.h>

#include "base/error.h"
#include "model/lora.h"
#include "train/config.h"

/* The "lora" attribute's JSON text (malloc'd). */
char *lrsa_lora_ckpt_json(const lrsa_lora_config *c);
/* "%016llx" of a checksum into out[17]. */
void lrsa_checksum_hex(uint64_t sum, char out[17]);
/* The LoRA configuration stored in a checkpoint: 1 (a LoRA checkpoint, *c filled), 0 (a full
 * fine-tuning checkpoint), -1 (unreadable, with e). */
int lrsa_lora_ckpt_config(const char *ckpt, lrsa_lora_config *c, lrsa_err *e);
/* Fails unless base's weights have the checksum the checkpoint recorded; `base_desc` says where
 * the base came from (for the message). */
int lrsa_lora_ckpt_check_base(const char *ckpt, const lrsa_model *base, const char *base_desc,
                              lrsa_err *e);
/* The LoRA settings of a training config (lora.* keys). */
lrsa_lora_config lrsa_lora_config_of(const lrsa_train_config *c);
#endif
