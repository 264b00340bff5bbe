/* LoRA adapters on the Llama-family model: their configuration, their own tensor table (PEFT's
 * tensor names), initialisation, merging into the base weights, and PEFT adapter directories.
 *
 * Attaching an adapter (m->lora = &adapter) changes what the model trains: the base weights are
 * frozen (no GRAD arena, no weight gradients; only gradients to the inputs flow through them)
 * and the adapter's table is the one that gets gradients. The four linear ops of a layer (fused
 * q/k/v, o, fused gate/up, down) each stay one base GEMM; the adapters of the projections inside
 * them are the groups of one fused LoRA op (kernels/lora/lora.h).
 *
 * Table layout (what the fused op relies on): per layer and per linear op, the A's of its adapted
 * projections back to back, then their B's. Names are PEFT's, e.g.
 * base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight [r, in] and ...lora_B.weight
 * [out, r]. */
#ifndef LRSA_MODEL_LORA_H
#define LRSA_MODEL_LORA_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "autograd/tensor_table.h"
#include "kernels/lora/lora.h"
#include "model/model.h"
#include "model/safetensors.h"

typedef enum lrsa_lora_target {
    LRSA_LORA_Q = 0,
    LRSA_LORA_K,
    LRSA_LORA_V,
    LRSA_LORA_O,
    LRSA_LORA_GATE,
    LRSA_LORA_UP,
    LRSA_LORA_DOWN,
    LRSA_LORA_NUM_TARGETS
} lrsa_lora_target;

/* The four linear ops of a layer; each is one base GEMM. */
typedef enum lrsa_lora_site {
    LRSA_LORA_SITE_QKV = 0,
    LRSA_LORA_SITE_O,
    LRSA_LORA_SITE_GATE_UP,
    LRSA_LORA_SITE_DOWN,
    LRSA_LORA_NUM_SITES
} lrsa_lora_site;

#define LRSA_LORA_ALL_TARGETS ((1u << LRSA_LORA_NUM_TARGETS) - 1u)

typedef struct lrsa_lora_config {
    int rank;         /* r >= 1 */
    double alpha;     /* lora_alpha */
    double dropout;   /* lora_dropout, in [0, 1) */
    int rslora;       /* 1: scale alpha / sqrt(r) (PEFT use_rslora), else alpha / r */
    unsigned targets; /* bit t: projection t (lrsa_lora_target) is adapted */
} lrsa_lora_config;

typedef struct lrsa_lora_layer {
    int A[LRSA_LORA_NUM_TARGETS], B[LRSA_LORA_NUM_TARGETS]; /* table indices, -1 when absent */
} lrsa_lora_layer;

typedef struct lrsa_lora {
    lrsa_lora_config cfg;
    float scale;
    lrsa_tensor_table table; /* PARAM allocated by create; GRAD on demand */
    lrsa_lora_layer *layers;
    int n_layers;
    /* Dropout key of the current training pass: the trainer sets it for every sample, so the
     * masks depend only on (seed, step, sample) and a resumed or multi-rank run draws the same. */
    uint64_t pass_key;
} lrsa_lora;

/* "q_proj", "k_proj", ... */
const char *lrsa_lora_target_name(int t);
/* Parses target names separated by commas (spaces allowed) into a bitmask; an unknown or
 * repeated name is an error naming `where`. */
int lrsa_lora_targets_parse(const char *list, unsigned *mask, const char *where, lrsa_err *e);
/* "q_proj,k_proj,..." in target order. */
void lrsa_lora_targets_format(unsigned mask, char *out, size_t cap);
/* Checks rank, alpha, dropout and targets; `where` names the source in messages. */
int lrsa_lora_config_check(const lrsa_lora_config *c, const char *where, lrsa_err *e);

/* Builds the adapter table for a model config (PARAM allocated, zeros). */
int lrsa_lora_create(lrsa_lora *a, const lrsa_model_config *mc, const lrsa_lora_config *c,
                     lrsa_err *e);
/* PEFT's default initialisation: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a =
 * sqrt(5)), B = 0, so the adapted model starts equal to the base. */
void lrsa_lora_init(lrsa_lora *a, uint64_t seed);
void lrsa_lora_free(lrsa_lora *a);
/* Number of adapter parameters. */
int64_t lrsa_lora_numel(const lrsa_lora *a);

/* Fills the fused op's spec for one linear op of one layer and the table indices of its first A
 * and first B; returns the number of groups (0: no adapter there). train = 0 turns dropout off. */
int lrsa_lora_site_spec(const lrsa_lora *a, const lrsa_model_config *mc, int layer,
                        lrsa_lora_site site, int train, lrsa_lora_spec *s, int *first_A,
                        int *first_B);
/* n_groups * rank of a site (the width of its saved u), the same in every layer. */
int lrsa_lora_site_cols(const lrsa_lora *a, lrsa_lora_site site);

/* W += scale * B A for every adapted projection; the model then computes the same function
 * without the adapter (up to fp32 rounding). The adapter must have been built for m's config. */
void lrsa_lora_merge(const lrsa_lora *a, lrsa_model *m);

/* An FNV-1a-style 64-bit hash over the model's PARAM arena (8 bytes per step): identifies the base
 * weights a LoRA run was trained on (checked on resume and export). A base stored in bf16
 * (model/base_bf16.h) answers the hash of its fp32 weights before rounding. */
uint64_t lrsa_model_checksum(const lrsa_model *m);
/* The same hash over bytes given in pieces (the pieces' concatenation hashes as one arena). */
typedef struct lrsa_checksum_state {
    uint64_t h;
    unsigned char carry[8];
    int n_carry;
} lrsa_checksum_state;
void lrsa_checksum_init(lrsa_checksum_state *st);
void lrsa_checksum_update(lrsa_checksum_state *st, const void *data, size_t n);
uint64_t lrsa_checksum_final(const lrsa_checksum_state *st);

/* ---- PEFT adapter directories (adapter_config.json + adapter_model.safetensors) ------------ */
/* Writes dir/adapter_config.json (peft_type LORA, task_type CAUSAL_LM, r, lora_alpha,
 * lora_dropout, target_modules, base_model_name_or_path, use_rslora) and
 * dir/adapter_model.safetensors (PEFT's tensor names, F32/BF16/F16), each atomically. */
int lrsa_lora_save_peft(const lrsa_lora *a, const char *dir, const char *base_model,
                        lrsa_st_dtype dtype, lrsa_err *e);
/* Reads a PEFT LoRA adapter directory for a model of config mc. Everything lrsa cannot
 * represent (DoRA, biases, rank/alpha patterns, modules_to_save, targets other than the seven
 * projections, fan_in_fan_out) is an error naming the file and the key. */
int lrsa_lora_load_peft(lrsa_lora *a, const lrsa_model_config *mc, const char *dir, lrsa_err *e);
/* Loads a PEFT adapter directory and merges it into m (eval / generate --adapter). */
int lrsa_model_apply_adapter(lrsa_model *m, const char *dir, lrsa_err *e);
/* lrsa_model_load, then lrsa_model_apply_adapter when adapter_dir is not NULL (m is freed on an
 * error). */
int lrsa_model_load_adapted(lrsa_model *m, const char *dir, const char *adapter_dir, lrsa_err *e);

#endif
