/* Which keys the LRSA visibility rule (../shared/docs/lagkv-lrsa.md section 5) lets a query see,
 * from a LagKV selection: for diagnostics such as the needle kept rate (was the answer-bearing
 * needle still visible to the answer?). */
#ifndef LRSA_KERNELS_LAGKV_VISIBLE_H
#define LRSA_KERNELS_LAGKV_VISIBLE_H
#include <stdint.h>

#include "kernels/lagkv/lagkv.h"

/* 1 when key t is visible to the query at position q (t <= q < T) of one (sequence, KV head):
 * q before S + 2L (plain causal), t in the sink, t at or after the start of the partition before
 * q's (the recent window and q's own chunk; the leftover counts as a partition), or t selected
 * from its partition. sel_head: that pair's n_scored * k selected positions, as
 * lrsa_lagkv_select_cpu writes them for it (lrsa_lagkv_num_scored(T)). */
int lrsa_lrsa_key_visible(const int32_t *sel_head, int T, const lrsa_lagkv_params *p, int64_t q,
                          int64_t t);

/* For one sequence (sel: its Hkv heads' selections, [Hkv][n_scored][k]): the number of
 * (KV head, span) pairs in which at least one token of the span [rows[3i+1], rows[3i+2]) is
 * visible to the query at q (rows as the dataset's /needle_spans: sample, start, end). */
int64_t lrsa_lrsa_spans_visible(const int32_t *sel, int T, int Hkv, const lrsa_lagkv_params *p,
                                int64_t q, const int64_t *rows, int64_t n_spans);
#endif
