/* Where the answer-bearing needles of a synthetic sample lie in its tokens: the spans that
 * `lrsa prepare --synthetic` stores in /needle_spans (data/dataset.h), so training and evaluation
 * can ask whether compression kept the needle the answer needs. */
#ifndef LRSA_DATA_SYNTHETIC_NEEDLE_SPANS_H
#define LRSA_DATA_SYNTHETIC_NEEDLE_SPANS_H
#include <stdint.h>

#include "base/error.h"
#include "data/synthetic/tasks.h"
#include "data/tokenizer.h"

/* For each needle of `it` with answer_needle set, in text order, the token span [start, end) of
 * ids[0 : prompt_len] whose decoded text covers the needle sentence (the first and last tokens may
 * also hold neighbouring characters, e.g. the leading space). *n_spans <= it->n_needles. Fails
 * (naming the needle) when a needle is not found in the decoded prompt. */
int lrsa_synth_needle_spans(const lrsa_tokenizer *tok, const int32_t *ids, int64_t prompt_len,
                            const lrsa_synth_item *it, int64_t spans[][2], int *n_spans,
                            lrsa_err *e);
#endif
