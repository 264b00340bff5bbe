/* CompressKV's per-model file and its pieces (kv-compression.md section 1): the semantic
 * retrieval heads (SRHs) of every layer found offline by `lrsa compresskv` (step A), the layer
 * weights from per-layer eviction error (step B), the budget allocation, and the per-layer
 * scoring shared by the online press and the offline error measurement.
 *
 * File format (JSON, written atomically):
 *   {"format": "lrsa-compresskv", "version": 1,
 *    "model": {"name": str, "model_type": str, "num_hidden_layers": L,
 *              "num_attention_heads": Hq, "num_key_value_heads": Hkv, "head_dim": D,
 *              "hidden_size": C, "vocab_size": V},
 *    "first_k": k,                       SRHs used online per layer (the paper: 4)
 *    "heads": [[h, ...] x L],            per layer, all Hq query heads by SRH score, best first
 *    "head_scores": [[s, ...] x L],      per layer, the score of query head 0..Hq-1
 *    "layer_weights": [w x L],           step B weights (>= 0, L1-normalised on load)
 *    "probes": {...}}                    how the file was made (informational)
 * The model block is the identity checked on load: a file made for another architecture or
 * size is refused with a message naming both. */
#ifndef LRSA_EVAL_COMPRESSKV_H
#define LRSA_EVAL_COMPRESSKV_H
#include <stdint.h>

#include "base/error.h"
#include "eval/cache/kv_cache.h"
#include "eval/press/press.h"
#include "model/config.h"

typedef struct lrsa_compresskv_file {
    char name[256], model_type[32];
    int n_layers, n_q_heads, n_kv_heads, head_dim, hidden_size, vocab_size;
    int first_k;
    int32_t *heads;       /* [L * Hq] per layer, query heads best first */
    double *head_scores;  /* [L * Hq] */
    double *layer_weight; /* [L], sums to 1 */
    char *probes_json;    /* the "probes" object as JSON text (may be NULL) */
} lrsa_compresskv_file;

/* Reads and validates a file (format, version, shapes, each "heads" row a permutation of
 * 0..Hq-1, finite non-negative weights with a positive sum). Errors name the file and key. */
int lrsa_compresskv_load(lrsa_compresskv_file *f, const char *path, lrsa_err *e);
/* Refuses a file made for another model (errors name the file, both values and the fix). */
int lrsa_compresskv_check_model(const lrsa_compresskv_file *f, const char *path,
                                const lrsa_model_config *cfg, lrsa_err *e);
int lrsa_compresskv_save(const lrsa_compresskv_file *f, const char *path, lrsa_err *e);
void lrsa_compresskv_free(lrsa_compresskv_file *f);

/* Step B allocation (section 1.3) with the bounds given: b[l] = clip(lo + round(w[l] * (total -
 * lo*L)), lo, hi), total = clip(B*L, lo*L, hi*L); then one token at a time is added to layers
 * in decreasing weight order (ties: lower layer first) or removed in increasing order, within
 * [lo, hi], until the sum is total. Requires lo <= hi. */
void lrsa_compresskv_allocate(const double *w, int n_layers, int64_t B, int64_t lo, int64_t hi,
                              int64_t *b);

/* One layer's CompressKV scores (section 1.2) for a full cache whose last w_len rows are the
 * observation window: wq [w_len, Hq, D] are the window's post-RoPE queries. For each query
 * head in heads[0..n_heads) (KV head h / G), the softmax attention of every window query (its
 * own row and earlier visible) is summed over the window queries, pooled along the non-window
 * rows (kernel odd, zero padding, avg divides by kernel; max), and averaged over the heads.
 * score[T]: the non-window rows get that value, the window rows and the first `sink` rows
 * +INFINITY. All KV heads of the layer must have the same length T. */
void lrsa_compresskv_layer_scores(const lrsa_kv_cache *c, int layer, const float *wq, int64_t w_len,
                                  int n_q_heads, const int32_t *heads, int n_heads, int kernel,
                                  lrsa_press_pool pool, int sink, float *score);

/* Attention mass each query head of `layer` puts on cache rows [r0, r1) from the query q_last
 * (one token's post-RoPE queries [Hq, D], whose own row is the last row of every KV head):
 * mass[Hq], the step A statistic of one decode step. */
void lrsa_srh_step_mass(const lrsa_kv_cache *c, int layer, const float *q_last, int n_q_heads,
                        int64_t r0, int64_t r1, double *mass);
/* Per layer, the query heads by score descending (ties: lower head first): heads[L * Hq]. */
void lrsa_srh_rank_heads(const double *score, int n_layers, int n_q_heads, int32_t *heads);
#endif
