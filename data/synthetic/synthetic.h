/* Synthetic long-context QA generation for `lrsa prepare --synthetic TASK`.
 *
 * Each sample is one user turn, instruction + "\n\n" + context + "\n\n" + question, and the
 * assistant's short answer. The context is haystack sentences (taken in order from a random
 * starting sentence, wrapping around) with the task's needles inserted at sentence boundaries
 * at their depths (fraction of the context's tokens). The haystack is filled until the whole
 * tokenised sample (prompt, answer and end token) reaches `length` tokens without exceeding it.
 * Same configuration and seed -> the same samples. */
#ifndef LRSA_DATA_SYNTHETIC_H
#define LRSA_DATA_SYNTHETIC_H
#include <stdint.h>

#include "base/error.h"
#include "data/dataset.h"
#include "data/dataset_build.h"
#include "data/haystack.h"

typedef struct lrsa_synth_config {
    const char *task;
    int64_t n;            /* samples */
    int64_t length;       /* target tokens per sample */
    const double *depths; /* sample i uses depths[i % n_depths]; n_depths = 0: uniform random */
    int n_depths;
    uint64_t seed;
} lrsa_synth_config;

/* Generates cfg->n samples into w. Errors (unknown task, length too small) name the flag. */
int lrsa_synth_generate(const lrsa_synth_config *cfg, const lrsa_sample_builder *b,
                        const lrsa_haystack *h, lrsa_dataset_writer *w, lrsa_err *e);
#endif
