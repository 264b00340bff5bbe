/* What `lrsa prepare` reports about the samples it wrote: the token-length distribution, overall
 * and, for a task mixture, per task. */
#ifndef LRSA_DATA_PREPARE_STATS_H
#define LRSA_DATA_PREPARE_STATS_H
#include <stdint.h>
#include <stdio.h>

#include "data/dataset.h"

typedef struct lrsa_length_stats {
    int64_t n, min, max;
    double median; /* the mean of the two middle values when n is even */
} lrsa_length_stats;

/* Lengths of the writer's samples whose tag is `task` (NULL: every sample). */
lrsa_length_stats lrsa_writer_length_stats(const lrsa_dataset_writer *w, const char *task);

/* "prepare: tokens per sample: min A, median B, max C" and, when samples are tagged, one such
 * line per task in order of first appearance. */
void lrsa_print_length_stats(FILE *f, const lrsa_dataset_writer *w);
#endif
