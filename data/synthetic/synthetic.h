/* Synthetic long-context QA generation for `lrsa prepare --synthetic TASK`.
 *
 * Each sample is one user turn, instruction + "\n\n" + context + "\n\n" + question, and the
 * assistant's short answer. The context is haystack sentences (taken in order from a random
 * starting sentence, wrapping around) with the task's needles inserted at sentence boundaries
 * at their depths (fraction of the context's tokens). The haystack is filled until the whole
 * tokenised sample (prompt, answer and end token) reaches `length` tokens without exceeding it.
 * Same configuration and seed -> the same samples. `task` may name several tasks
 * ("passkey,vartrack") and `length_max` make a length range: plan.h says how samples are
 * assigned to them. */
#ifndef LRSA_DATA_SYNTHETIC_H
#define LRSA_DATA_SYNTHETIC_H
#include <stdint.h>

#include "base/error.h"
#include "data/dataset.h"
#include "data/dataset_build.h"
#include "data/haystack.h"

typedef struct lrsa_synth_config {
    const char *task;     /* one task, or a comma-separated mixture */
    int64_t n;            /* samples */
    int64_t length;       /* target tokens per sample (the low end of a range) */
    const double *depths; /* sample i uses depths[i % n_depths]; n_depths = 0: uniform random */
    int n_depths;
    uint64_t seed;
    int64_t length_max; /* > length: targets uniform in [length, length_max]; else fixed */
} lrsa_synth_config;

/* Generates cfg->n samples into w; in a mixture each sample is tagged with its task
 * (lrsa_dataset_writer_set_task). Errors (unknown task, length too small) name the flag. */
int lrsa_synth_generate(const lrsa_synth_config *cfg, const lrsa_sample_builder *b,
                        const lrsa_haystack *h, lrsa_dataset_writer *w, lrsa_err *e);
#endif
