/* The training configuration: a YAML file (libyaml) plus dotted command-line overrides
 * (`optim.lr=1e-4`). Every key, its type and its default live in one table (train/config.c);
 * configs/README.md documents the same keys. Unknown keys, wrong types and missing required keys
 * are errors naming the key, the file and the line. */
#ifndef LRSA_TRAIN_CONFIG_H
#define LRSA_TRAIN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

#define LRSA_PATH_MAX       4096
#define LRSA_TRAIN_MAX_KEYS 64

typedef struct lrsa_train_config {
    /* model */
    char model_path[LRSA_PATH_MAX];   /* HF directory (config.json + safetensors + tokenizer) */
    char model_init[16];              /* "pretrained" or "random" */
    char model_config[LRSA_PATH_MAX]; /* config.json for init=random */
    double model_init_std;
    char model_dtype[8]; /* f32 (CPU); bf16 reserved for the GPU path */
    /* data */
    char data_train[LRSA_PATH_MAX], data_eval[LRSA_PATH_MAX];
    int64_t tokens_per_batch, tokens_per_microbatch;
    int64_t max_len, eval_samples;
    /* attention */
    char attn_mode[8]; /* dense | lrsa */
    char attn_impl[8]; /* native | cudnn (device: cuda, dense only) */
    int64_t attn_sink, attn_lag;
    double attn_keep, attn_value_weight;
    char attn_keep_mix[128];     /* "" or a list of keep fractions drawn per sample */
    double attn_dense_mix;       /* share of LRSA-mode samples trained dense */
    double attn_salience_weight; /* W of the salience loss (0: off; docs/TRAINING.md) */
    /* optim */
    double lr, beta1, beta2, eps, weight_decay;
    /* schedule */
    int64_t warmup_steps, max_steps;
    char decay[16]; /* cosine | linear | constant */
    double min_lr_ratio;
    /* top level */
    int64_t grad_accum;
    double clip_grad_norm; /* <= 0: no clipping */
    int recompute;
    int64_t seed;
    char run_dir[LRSA_PATH_MAX];
    int64_t log_every, eval_every, ckpt_every, keep_ckpts, max_bad_steps;
    int resume;     /* 0 no, 1 yes, 2 restart (LRSA_RESUME_* in train/checkpoint.h) */
    char device[8]; /* cpu | cuda */
    int deterministic_reduce;
    int cuda_graphs; /* device: cuda, one GPU: samples run as CUDA graphs (LRSA_CUDA_GRAPHS=0: off)
                      */
    /* lora (rank 0: full fine-tuning) */
    int64_t lora_rank;
    double lora_alpha, lora_dropout;
    char lora_targets[256];  /* the list, as "q_proj,v_proj" */
    char lora_base_dtype[8]; /* f32 | bf16: how the frozen base is stored (computed in fp32) */
    /* comm: data-parallel communication (docs/TRAINING.md) */
    int comm_overlap;          /* reduce gradient buckets during the backward */
    double comm_bucket_mb;     /* bucket size, MB of fp32 gradients */
    char comm_reduce_dtype[8]; /* fp32 | bf16: the GPU reduce-scatter's type */
    double comm_timeout_s;     /* NCCL: how long a collective may wait before aborting */
    /* Where each key of the table (train/config.c, in its order) was set, so value errors name
     * the line: its line in the YAML file, -1 = a command-line override, 0 = the default. */
    int key_line[LRSA_TRAIN_MAX_KEYS];
} lrsa_train_config;

/* Fills every key with its default. */
void lrsa_train_config_defaults(lrsa_train_config *c);
/* Reads a YAML file over the defaults. */
int lrsa_train_config_load(lrsa_train_config *c, const char *path, lrsa_err *e);
/* Parses YAML text (`where` names it in messages). */
int lrsa_train_config_parse(lrsa_train_config *c, const char *text, size_t n, const char *where,
                            lrsa_err *e);
/* Applies one `section.key=value` override; `where` names it ("command line"). */
int lrsa_train_config_override(lrsa_train_config *c, const char *assignment, const char *where,
                               lrsa_err *e);
/* Required keys and cross-key checks (ranges, enums, files that must exist). */
int lrsa_train_config_validate(const lrsa_train_config *c, const char *where, lrsa_err *e);
/* Writes the resolved configuration as YAML (every key, nested by section). */
void lrsa_train_config_write_yaml(const lrsa_train_config *c, FILE *f);
/* The same into a malloc'd string. */
char *lrsa_train_config_to_yaml(const lrsa_train_config *c);
/* Prints every key with its type and default (for --help). */
void lrsa_train_config_print_keys(FILE *f);

#endif
