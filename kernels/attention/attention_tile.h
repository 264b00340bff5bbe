/* The FlashAttention-style tile engine behind every CPU attention: dense causal, LRSA
 * (gather + dense) and the inference cache (attention_cache.h).
 *
 * One call handles a query block: nq consecutive positions of the G query heads of one GQA
 * group, stacked into G * nq rows (head-major) so that every key/value tile is loaded once for
 * the whole group and the tile products are [G*nq x BK] SGEMMs. Keys come as a list of
 * *segments*: dense runs of key/value rows (a stride apart), each fully visible or causal (key
 * at absolute position pos0 + j is visible to the query at position p iff pos0 + j <= p). All
 * segments share one online softmax, so the result is softmax attention over their union.
 * Dense causal attention is one causal segment; LRSA is an unmasked gathered prefix plus a
 * causal band; the cache is one causal segment whose pos0 is minus the number of cached rows.
 *
 * The engine is single-threaded; callers thread over query blocks (and KV heads, sequences),
 * each block computed by one thread in a fixed order, so results do not depend on the thread
 * count. Scores, exponentials and sums are fp32; the exponential is lrsa_vexpf
 * (kernels/cpu/vexp.h); row sums use eight interleaved partial sums added in a fixed tree. */
#ifndef LRSA_KERNELS_ATTENTION_TILE_H
#define LRSA_KERNELS_ATTENTION_TILE_H
#include <stdint.h>

/* Keys per tile; query positions per forward block for one query head; most stacked rows per
 * forward block; query positions per backward block (one query head). Measured on the 2-core
 * VM (docs/KERNELS.md): 256-key tiles or 128-position backward blocks cost 5-20% more CPU time
 * (the [rows x BK] score tiles fall out of L1/L2). */
enum { LRSA_ATTN_BK = 128, LRSA_ATTN_BQ = 64, LRSA_ATTN_MAX_ROWS = 256, LRSA_ATTN_BQ_BWD = 64 };

/* Query positions per block for a group of G query heads: 64, fewer when G > 4 so that the
 * stacked rows stay within LRSA_ATTN_MAX_ROWS (at least 1). Depends on G only. */
int lrsa_attn_block_positions(int G);

typedef struct lrsa_attn_seg {
    const float *k, *v; /* row 0 of the segment, already offset to the KV head */
    int64_t ld;         /* row stride of k and v */
    float *dk, *dv;     /* backward only: gradient row 0 (accumulated with +=) */
    int64_t dld;        /* row stride of dk and dv */
    int n;              /* rows in the segment */
    int causal;         /* 1: apply the causal rule with pos0; 0: every row visible */
    int64_t pos0;       /* absolute position of row 0 (causal segments; may be negative) */
} lrsa_attn_seg;

/* nq positions qpos0 .. qpos0+nq-1 of G query heads. Head j's row t is at
 * q + t*q_ld + j*D (out, dout, dq likewise with their own ld); its logsumexp at
 * lse[j*lse_hs + t]. */
typedef struct lrsa_attn_qblock {
    const float *q;
    int64_t q_ld;
    float *out;
    int64_t o_ld;
    float *lse; /* forward: NULL when not wanted */
    int64_t lse_hs;
    int nq, G;
    int64_t qpos0;
} lrsa_attn_qblock;

typedef struct lrsa_attn_scratch {
    int rows, D;          /* capacity: stacked rows, head dim */
    float *q, *o;         /* [rows * D] packed q; packed dout (backward) */
    float *s, *dp;        /* [rows * BK] scores / probabilities; backward dP, then dS */
    float *acc;           /* [rows * D] output accumulator; backward: packed dq */
    float *m, *l, *delta; /* [rows] running max, running sum; rowsum(dout * out) */
    float *kt;            /* [D * BK] transposed key tile of the AVX2 forward products */
    int avx2; /* 1: the forward's tile products by attention_tile_simd.h (when D % 8 == 0) and
               * the softmax rows by kernels/cpu/vexp_avx2.h: the same bits as the portable
               * code (cblas_sgemm with OpenBLAS's Haswell/Zen kernel), faster. Set by init from
               * lrsa_attn_simd_available(); tests clear it to run the portable code. */
} lrsa_attn_scratch;

/* Scratch for blocks of up to `rows` stacked rows (G * lrsa_attn_block_positions(G)). */
void lrsa_attn_scratch_init(lrsa_attn_scratch *w, int rows, int D);
void lrsa_attn_scratch_free(lrsa_attn_scratch *w);

/* Forward in three steps, so a block's keys may be split across calls (and threads):
 * begin packs q and clears the state; each segment call folds keys into (m, l, acc); end
 * writes out (and lse). Every row must see >= 1 key over all segments (a causal segment always
 * holds the query itself). Non-finite scores give NaN outputs and lse, never an abort. */
void lrsa_attn_fwd_begin(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb, int D);
void lrsa_attn_fwd_segment(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb,
                           const lrsa_attn_seg *sg, float scale);
void lrsa_attn_fwd_end(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb);
/* begin + every segment + end. */
void lrsa_attn_tile_forward(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb,
                            const lrsa_attn_seg *segs, int nseg, int D, float scale);

/* The partial softmax state of a block after some segments: rows of (m, l, acc[D]). */
typedef struct lrsa_attn_state {
    float *m, *l, *acc;
} lrsa_attn_state;
/* Copies w's state (rows * (D + 2) floats) out / merges a saved state into w:
 * m = max(m, m'), l = l e^(m - m_new) + l' e^(m' - m_new), acc likewise. */
void lrsa_attn_state_save(const lrsa_attn_scratch *w, int rows, lrsa_attn_state *st);
void lrsa_attn_state_merge(lrsa_attn_scratch *w, int rows, const lrsa_attn_state *st);

/* Backward of one block: recomputes P = exp(scale q k^T - lse) per key tile with the
 * rowsum(dout*out) pre-pass. qb->out is the forward output, qb->lse its logsumexp; dout rows
 * use do_ld and dq rows dq_ld (head j at + j*D). dq rows are OVERWRITTEN (dq may be NULL);
 * each segment's dk/dv rows are accumulated (+=), so callers zero them first. */
void lrsa_attn_tile_backward(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb, const float *dout,
                             int64_t do_ld, float *dq, int64_t dq_ld, const lrsa_attn_seg *segs,
                             int nseg, int D, float scale);

/* Zeroes n rows of width D, ld apart (one head's slice of a possibly fused buffer). */
void lrsa_attn_zero_rows(float *x, int64_t ld, int64_t n, int D);
#endif
