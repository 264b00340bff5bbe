/* The shared FlashAttention-style tile engine behind dense and LRSA attention on the CPU.
 *
 * One call handles a block of query rows of ONE query head against a list of key segments.
 * Each segment is a dense run of key/value rows (a stride apart); it is either fully visible
 * or causal (key at absolute position pos0 + j is visible to the query at position p iff
 * pos0 + j <= p). Dense causal attention is one causal segment; LRSA attention is an unmasked
 * gathered prefix plus a causal band. All segments share one online softmax, so the result is
 * softmax attention over their union. Only tile-sized scratch is used. */
#ifndef LRSA_KERNELS_ATTENTION_TILE_H
#define LRSA_KERNELS_ATTENTION_TILE_H
#include <stdint.h>

/* Tile sizes: query rows and keys per BLAS call. */
enum { LRSA_ATTN_BQ = 64, LRSA_ATTN_BK = 128 };

typedef struct lrsa_attn_seg {
    const float *k, *v; /* row 0 of the segment, already offset to the KV head */
    int64_t ld;         /* row stride of k and v */
    float *dk, *dv;     /* backward only: gradient row 0 (accumulated with +=) */
    int64_t dld;        /* row stride of dk and dv */
    int n;              /* rows in the segment */
    int causal;         /* 1: apply the causal rule with pos0; 0: every row visible */
    int64_t pos0;       /* absolute position of row 0 (causal segments) */
} lrsa_attn_seg;

typedef struct lrsa_attn_scratch {
    float *s;             /* [BQ * BK] scores / probabilities */
    float *dp;            /* [BQ * BK] backward: dP, then dS */
    float *acc;           /* [BQ * D] output accumulator */
    float *m, *l, *delta; /* [BQ] running max, running sum, rowsum(dout * out) */
} lrsa_attn_scratch;

void lrsa_attn_scratch_init(lrsa_attn_scratch *w, int D);
void lrsa_attn_scratch_free(lrsa_attn_scratch *w);

/* Forward of nq <= BQ query rows at absolute positions qpos0 .. qpos0+nq-1.
 * out rows o_ld apart; lse[r] for row r (contiguous). Every row must see >= 1 key (callers
 * guarantee it: a causal segment always contains the query itself). Non-finite scores give
 * NaN outputs, never an abort. */
void lrsa_attn_tile_forward(float *out, int64_t o_ld, float *lse, const float *q, int64_t q_ld,
                            int nq, int64_t qpos0, const lrsa_attn_seg *segs, int nseg, int D,
                            float scale, lrsa_attn_scratch *w);

/* Backward of the same rows: dq rows are OVERWRITTEN; each segment's dk/dv rows are
 * accumulated (+=), so the caller zeroes them once before the first query block. */
void lrsa_attn_tile_backward(float *dq, int64_t dq_ld, const float *dout, int64_t do_ld,
                             const float *q, int64_t q_ld, const float *out, int64_t o_ld,
                             const float *lse, int nq, int64_t qpos0, const lrsa_attn_seg *segs,
                             int nseg, int D, float scale, lrsa_attn_scratch *w);

/* Zeroes n rows of width D, ld apart (one head's slice of a possibly fused buffer). */
void lrsa_attn_zero_rows(float *x, int64_t ld, int64_t n, int D);
#endif
