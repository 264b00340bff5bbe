/* Turning a conversation into one dataset sample: ids through the chat template, the loss mask,
 * the prompt length, and fitting --max-len by cutting the middle of the context. Shared by the
 * JSONL and the synthetic paths of `lrsa prepare`. */
#ifndef LRSA_DATA_DATASET_BUILD_H
#define LRSA_DATA_DATASET_BUILD_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "data/chat.h"
#include "data/ids.h"
#include "data/tokenizer.h"

typedef struct lrsa_sample_builder {
    const lrsa_tokenizer *tok;
    lrsa_chat_format fmt;
    const char *system; /* prepended as a system turn when the record has none (may be NULL) */
    int loss_last_only; /* 1 = loss only on the last assistant turn */
} lrsa_sample_builder;

typedef struct lrsa_sample {
    lrsa_ids ids;
    lrsa_mask mask;
    int64_t prompt_len;
} lrsa_sample;

void lrsa_sample_free(lrsa_sample *s);

/* Builds the sample for msgs (the last one is the assistant's answer). */
int lrsa_sample_build(const lrsa_sample_builder *b, const lrsa_chat_msg *msgs, int n_msgs,
                      lrsa_sample *s, lrsa_err *e);

/* Like lrsa_sample_build, but when the sample is longer than max_len (> 0) the middle of the
 * byte span [begin, end) of msgs[trunc_msg].content is cut until it fits. Sets *truncated.
 * Returns 1 (no sample) when even an empty span does not fit. */
int lrsa_sample_build_fit(const lrsa_sample_builder *b, const lrsa_chat_msg *msgs, int n_msgs,
                          int trunc_msg, size_t begin, size_t end, int64_t max_len, lrsa_sample *s,
                          int *truncated, lrsa_err *e);
#endif
