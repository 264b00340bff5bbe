/* Whether config.json and the weights of a model directory describe the same model: no
 * tensors the model would leave unused (e.g. weights for layers beyond num_hidden_layers),
 * and messages that point at the config.json field to fix. */
#ifndef LRSA_MODEL_MODEL_CHECK_H
#define LRSA_MODEL_MODEL_CHECK_H

#include "base/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "autograd/tensor_table.h"

/* Every tensor of the files must be one the table (built from config.json) uses. Allowed
 * extras: a tied model's stored lm_head.weight copy of the embedding's shape, and rotary
 * inv_freq buffers of old checkpoints. Errors name the tensor, its file, config.json and the
 * field (num_hidden_layers, tie_word_embeddings, attention_bias, ...). */
int lrsa_model_check_extra(const lrsa_tensor_table *t, const lrsa_model_config *c,
                           const lrsa_st_set *set, const char *config_path, lrsa_err *e);
/* The message for a tensor the model needs that the files lack (naming tie_word_embeddings
 * for lm_head.weight). */
int lrsa_model_missing_tensor(const lrsa_model_config *c, const char *name, const char *dir,
                              const char *config_path, lrsa_err *e);
#endif
