/* The Llama-family decoder built from kernels/ ops, on the tensor table.
 * Covers Llama (2/3, with llama3/linear rope scaling), Mistral, SmolLM2 and Qwen2/2.5 (q/k/v
 * biases); tied and untied embeddings; head_dim independent of hidden/heads. */
#ifndef LRSA_MODEL_MODEL_H
#define LRSA_MODEL_MODEL_H
#include <stdint.h>

#include "base/error.h"
#include "autograd/tape.h"
#include "autograd/tensor_table.h"
#include "kernels/lagkv/lagkv.h"
#include "model/config.h"
#include "model/safetensors.h"

typedef enum lrsa_attn_mode { LRSA_ATTN_DENSE = 0, LRSA_ATTN_LRSA } lrsa_attn_mode;

typedef struct lrsa_attn_config {
    lrsa_attn_mode mode;
    lrsa_lagkv_params lagkv; /* used when mode == LRSA_ATTN_LRSA */
    int cudnn;               /* attention.impl: cudnn (the CUDA op table's dense attention) */
} lrsa_attn_config;

/* Indices of one layer's tensors in the table (-1 when absent). q, k, v are consecutive (one
 * fused [(Hq+2Hkv)*D, C] matrix), as are their biases, and gate, up ([2I, C]). */
typedef struct lrsa_layer_index {
    int input_norm, q, k, v, q_bias, k_bias, v_bias, o, o_bias, post_norm, gate, up, down;
} lrsa_layer_index;

struct lrsa_lora;      /* model/lora.h */
struct lrsa_base_bf16; /* model/base_bf16.h */

typedef struct lrsa_model {
    lrsa_model_config cfg;
    lrsa_tensor_table table;        /* HF names; PARAM allocated by create/load */
    int embed, final_norm, lm_head; /* lm_head == embed when tied */
    lrsa_layer_index *layers;
    float *inv_freq; /* [head_dim/2] */
    /* An attached LoRA adapter (borrowed, NULL: none). While attached the base weights are
     * frozen: gradients go to the adapter's table only (model/lora.h). */
    struct lrsa_lora *lora;
    /* The frozen base stored in bf16 (NULL: fp32 in the table's PARAM arena). While set, the
     * PARAM arena is freed: weights are read through model/base_bf16.h. */
    struct lrsa_base_bf16 *base16;
} lrsa_model;

/* Builds the table for a config and allocates PARAM (zeros). */
int lrsa_model_create(lrsa_model *m, const lrsa_model_config *c, lrsa_err *e);
/* N(0, std^2) matrices and embeddings, ones for norms, zeros for biases. */
void lrsa_model_init_random(lrsa_model *m, uint64_t seed, float std);
/* config.json + safetensors (single or sharded; F32/F16/BF16). Missing, unused (e.g. layers
 * beyond num_hidden_layers) or mis-shaped tensors are errors naming the tensor, the file and
 * the config.json field to fix (model/model_check.h). A tied model ignores a stored
 * lm_head.weight copy of the embedding's shape; rotary inv_freq buffers are ignored.
 * m->cfg.defaults_used lists the fields that took Hugging Face's defaults. */
int lrsa_model_load(lrsa_model *m, const char *dir, lrsa_err *e);
/* lrsa_model_load for a frozen LoRA base stored in bf16 (model/base_bf16.h): each matrix is
 * rounded as it is read, so its fp32 weights never exist all at once (one matrix at a time) and
 * the peak is the bf16 store, not the fp32 model. The same checks and messages. */
int lrsa_model_load_base_bf16(lrsa_model *m, const char *dir, lrsa_err *e);
/* Writes config.json + model.safetensors (F32, BF16 or F16) into dir (created), atomically
 * per file. The result loads in Hugging Face transformers. */
int lrsa_model_save(const lrsa_model *m, const char *dir, lrsa_st_dtype dtype, lrsa_err *e);
void lrsa_model_free(lrsa_model *m);

/* ---- Training / full-sequence forward ------------------------------------------------------
 * B sequences of T tokens, ids[b*T + t]. loss_weight[b*T + t] is the weight of predicting token
 * t from position t-1 (target side, like HF labels; t = 0 is ignored); it is 0 for masked
 * tokens and e.g. 1/(number of answer tokens in the global batch) for answer tokens.
 * Returns the weighted loss sum. With want_grad, parameter gradients are ADDED to the GRAD
 * arena (allocated on demand), so micro-batches accumulate. nll_out[B*T] (may be NULL) gets
 * the per-target-token NLL (0 where weight is 0). recompute: keep only each layer's input and
 * recompute the layer during backward. */
typedef struct lrsa_workspace lrsa_workspace;
typedef struct lrsa_device_ops lrsa_device_ops;
/* A workspace on the CPU (fp32, the model's table arenas). */
lrsa_workspace *lrsa_workspace_new(void);
/* A workspace on the device of `ops` (model/device_ops.h); every buffer of a call lives there.
 * The same model code runs on either; only the op table differs. */
lrsa_workspace *lrsa_workspace_new_on(const lrsa_device_ops *ops);
const lrsa_device_ops *lrsa_workspace_ops(const lrsa_workspace *ws);
/* Binds the weights the forward reads (act-typed: bf16 on CUDA, table layout) and the fp32
 * gradient arena (table layout) in the workspace's device memory, instead of the table's PARAM
 * and GRAD arenas (required off the CPU). */
void lrsa_workspace_bind_params(lrsa_workspace *ws, void *param, float *grad);
/* The memory plan: allocates every buffer for calls of up to B sequences of T tokens (and the
 * LagKV selections for LRSA attention) now; a later call that would need more aborts instead of
 * allocating inside a step. */
void lrsa_workspace_reserve(lrsa_workspace *ws, const lrsa_model *m, int B, int T,
                            const lrsa_attn_config *attn, int recompute);
void lrsa_workspace_free(lrsa_workspace *ws);
/* Testing aid: while on, LRSA mode reuses each layer's LagKV selection from the last call
 * instead of recomputing it, making the loss a smooth function of the parameters (for
 * finite-difference checks). The batch shape and LagKV parameters must not change. */
void lrsa_workspace_freeze_selection(lrsa_workspace *ws, int on);
/* The LagKV selection layer `layer` used in the last forward (lrsa_lagkv_select_cpu's layout for
 * its B sequences), or NULL when that forward was dense. Valid until the next call. */
const int32_t *lrsa_workspace_selection(const lrsa_workspace *ws, int layer);
/* Salience loss (kernels/lagkv/lagkv_salience.h; an lrsa extension, docs/TRAINING.md) for the
 * following calls, which must have B = 1: needle[T] marks the answer-bearing tokens (borrowed;
 * NULL turns it off), p gives the partitions (sink, lag) and the value weight (dense mode too).
 * Each call then adds scale * (mean of aux over layers, KV heads and scored partitions holding a
 * needle token) to the returned loss, and its gradient (through the LagKV scores into the
 * post-RoPE K and V) to the parameters. The attention itself is unchanged. */
void lrsa_workspace_set_salience(lrsa_workspace *ws, const uint8_t *needle,
                                 const lrsa_lagkv_params *p, double scale);
/* The last call's mean aux (0 when off or when no scored partition holds a needle token). */
double lrsa_workspace_salience(const lrsa_workspace *ws);
/* Gradient readiness, for reducing gradients while the backward still runs (train/grad_sync.h):
 * during a want_grad call, fn(ctx, offset) is called each time the GRAD elements from `offset`
 * to the end of the arena have received this call's last addition. The table puts the
 * embedding first, then the layers in order, then the final norm (and an untied LM head), so
 * the backward completes a growing suffix: once after the loss (the final norm's offset), once
 * after each layer's backward (that layer's first offset), and 0 at the end. On a device op
 * table the calls come when the work is enqueued, not done. fn NULL: no calls. */
typedef void (*lrsa_grads_ready_fn)(void *ctx, int64_t offset);
void lrsa_workspace_on_grads_ready(lrsa_workspace *ws, lrsa_grads_ready_fn fn, void *ctx);
/* The offsets the calls above report, in order (num_hidden_layers + 2 of them). */
int lrsa_model_grad_ready_offsets(const lrsa_model *m, int64_t *out);
double lrsa_model_forward_backward(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids,
                                   const float *loss_weight, int B, int T,
                                   const lrsa_attn_config *attn, int recompute, int want_grad,
                                   float *nll_out);
/* lrsa_model_forward_backward with gradients in two halves, for a device table's step captured
 * into a CUDA graph (train/train_gpu.h): _stage does the host work (checks, positions, targets,
 * weights) and queues the uploads into the workspace's fixed device buffers, returning the
 * number of rows with a nonzero loss weight; _staged then only enqueues device work (no
 * allocation, no synchronisation, no host copies), adding the loss sum to *loss_acc and
 * recording a bad target in *fault (device memory; ops->lm_head_loss_acc), so the same work can
 * be replayed for any staged sample of the same shape (B, T, attn, recompute, n_active). Not
 * for the CPU table, LoRA or the salience loss. */
int64_t lrsa_model_stage(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids,
                         const float *loss_weight, int B, int T, int recompute);
void lrsa_model_forward_backward_staged(lrsa_model *m, lrsa_workspace *ws, int B, int T,
                                        const lrsa_attn_config *attn, int recompute,
                                        int64_t n_active, double *loss_acc, int32_t *fault);
/* Logits of every position: logits[(b*T + t)*V + v]. */
void lrsa_model_logits(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids, int B, int T,
                       const lrsa_attn_config *attn, float *logits);

/* ---- Block-level API for cached inference (eval/) ------------------------------------------
 * The KV cache owns attention; the model provides everything around it. N rows = N new tokens
 * of one sequence. x is the residual stream [N, C]. */
void lrsa_model_embed(const lrsa_model *m, const int32_t *ids, int64_t N, float *x);
/* qkv[N, (Hq+2Hkv)*D] = rope(input_norm(x) @ Wqkv^T + b) at absolute positions pos[N]. */
void lrsa_model_layer_qkv(const lrsa_model *m, int layer, const float *x, const int32_t *pos,
                          int64_t N, float *qkv);
/* x += o_proj(att); x += down(swiglu(gate_up(post_norm(x)))). att[N, Hq*D]. */
void lrsa_model_layer_out(const lrsa_model *m, int layer, float *x, const float *att, int64_t N);
/* logits[N, V] = lm_head(final_norm(x)). */
void lrsa_model_final_logits(const lrsa_model *m, const float *x, int64_t N, float *logits);

/* The same blocks on any device (model_blocks.c): buffers in the memory of env->ops (act-typed:
 * fp32 on the CPU, bf16 on CUDA; logits fp32), weights from env->param (act-typed, table
 * layout) or the host model's when NULL. Scratch for N rows: h and tmp [N, C], gu [N, 2I], act
 * [N, I] (qkv needs only h). wide: with a host model whose base is stored in bf16
 * (model/base_bf16.h), where each linear op's matrix is widened to fp32 right before the op
 * (lrsa_model_weight_bytes(m).scratch bytes; the caller's, so calls sharing a model do not share
 * it); unused otherwise. */
typedef struct lrsa_block_env {
    const lrsa_device_ops *ops;
    const void *param;
    void *h, *tmp, *gu, *act;
    float *wide;
} lrsa_block_env;
void lrsa_block_embed(const lrsa_model *m, const lrsa_block_env *env, const int32_t *ids, int64_t N,
                      void *x);
void lrsa_block_layer_qkv(const lrsa_model *m, const lrsa_block_env *env, int layer, const void *x,
                          const int32_t *pos, int64_t N, void *qkv);
void lrsa_block_layer_out(const lrsa_model *m, const lrsa_block_env *env, int layer, void *x,
                          const void *att, int64_t N);
void lrsa_block_final_logits(const lrsa_model *m, const lrsa_block_env *env, const void *x,
                             int64_t N, float *logits);
/* The CPU environment (host model, fp32) with scratch for up to N rows, for a caller that runs
 * every layer with the same buffers: lrsa_model_layer_qkv / _out allocate theirs per call, and
 * at thousands of rows those are tens of MB of fresh pages per layer (page faults, zeroing). */
void lrsa_model_cpu_env_init(const lrsa_model *m, lrsa_block_env *env, int64_t N);
void lrsa_model_cpu_env_free(lrsa_block_env *env);
#endif
