/* Llama-family model configuration, read from a Hugging Face config.json
 * (../shared/docs/formats.md section 2). */
#ifndef LRSA_MODEL_CONFIG_H
#define LRSA_MODEL_CONFIG_H

#include "base/error.h"
#include "kernels/rope/rope.h"

typedef enum lrsa_arch { LRSA_ARCH_LLAMA = 0, LRSA_ARCH_QWEN2, LRSA_ARCH_MISTRAL } lrsa_arch;

#define LRSA_MAX_EOS 8

typedef struct lrsa_model_config {
    lrsa_arch arch;
    char model_type[32]; /* "llama", "qwen2", "mistral" */
    int vocab_size, hidden_size, intermediate_size, num_hidden_layers;
    int num_attention_heads, num_key_value_heads, head_dim;
    float rms_norm_eps;
    lrsa_rope_config rope;
    int tie_word_embeddings;
    int attention_bias; /* q/k/v biases (always for Qwen2) */
    int o_proj_bias;    /* Llama attention_bias=true also biases o_proj; Qwen2 never */
    int mlp_bias;       /* must be 0 for supported models */
    int max_position_embeddings;
    int bos_token_id, pad_token_id; /* -1 when absent */
    int eos_token_ids[LRSA_MAX_EOS], n_eos;
    char torch_dtype[16];
    /* What config.json left out: the fields that took Hugging Face's documented default, as
     * "rope_theta = 10000, rms_norm_eps = 1e-06" ("" when none), for --verbose and for
     * messages about weights that do not fit; and whether tie_word_embeddings was given. */
    char defaults_used[384];
    int tie_word_embeddings_given;
} lrsa_model_config;

/* Reads config.json; unknown architectures, missing required fields (vocab_size, hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads, model_type) and bad values give
 * an error that names the file and the field. Optional fields take the default of the
 * architecture's Hugging Face config class, recorded in defaults_used. */
int lrsa_config_load(lrsa_model_config *c, const char *config_json_path, lrsa_err *e);
/* Writes config.json (legacy rope_theta/rope_scaling form) atomically. */
int lrsa_config_save(const lrsa_model_config *c, const char *config_json_path,
                     const char *torch_dtype, lrsa_err *e);
/* Consistency checks (heads divide, head_dim even, ...). */
int lrsa_config_validate(const lrsa_model_config *c, const char *where, lrsa_err *e);
/* Appends " (config.json leaves out X; Hugging Face's defaults were used for them)" to an
 * error when defaults were used (they may be why a check failed); returns -1. */
int lrsa_config_note_defaults(const lrsa_model_config *c, lrsa_err *e);
/* Number of parameters (counting a tied LM head once). */
long long lrsa_config_num_params(const lrsa_model_config *c);

#endif
