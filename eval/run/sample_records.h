/* Per-sample evaluation records: what `lrsa eval --json` and each row of a grid's results.jsonl
 * carry in their "samples" array, so two models or two caches can be compared sample by sample
 * (a paired bootstrap over the same held-out samples). One record = one sample under one cache:
 * its index in the dataset, its task (per-sample for task mixtures), the answer NLL (sum over the
 * answer tokens and its mean), the answer metrics of the greedy prediction, the prediction, the
 * kept fraction and the generation budget it had. docs/EVAL.md lists the JSON fields. */
#ifndef LRSA_EVAL_SAMPLE_RECORDS_H
#define LRSA_EVAL_SAMPLE_RECORDS_H
#include <stdint.h>

#include <cjson/cJSON.h>

#include "data/dataset.h"
#include "eval/run/metrics.h"

typedef struct lrsa_sample_record {
    int64_t index;
    const char *task; /* the dataset's (lrsa_dataset_sample_task); valid while it is open */
    int has_nll;
    int64_t answer_tokens;
    double nll_sum;
    int has_answer;           /* a greedy prediction was made and scored */
    char *prediction;         /* malloc'd, owned by the record */
    lrsa_answer_scores score; /* against the reference split by the task's separator */
    int match;                /* `lrsa eval`'s containment match (lrsa_answer_matches); -1 = n/a */
    double kept_fraction;
    int has_needle_kept;       /* the dataset has needle spans for this sample */
    double needle_kept;        /* fraction of (layer, KV head, span) triples the cache kept */
    double needle_tokens_kept; /* fraction of the spans' (layer, KV head, token) rows kept */
    int max_new;               /* the generation budget this sample had (0 = no generation) */
} lrsa_sample_record;

typedef struct lrsa_sample_records {
    lrsa_sample_record *v;
    int64_t n, cap;
} lrsa_sample_records;

/* Appends a zeroed record (match = -1) and returns it (valid until the next push). */
lrsa_sample_record *lrsa_sample_records_push(lrsa_sample_records *r);
void lrsa_sample_records_free(lrsa_sample_records *r);
/* Scores pred against reference (split by sep) into rec and takes a copy of pred. */
void lrsa_sample_record_answer(lrsa_sample_record *rec, const char *pred, const char *reference,
                               const char *sep);
/* The records as a JSON array (fields of what each record has). */
cJSON *lrsa_sample_records_json(const lrsa_sample_records *r);

/* The separator that splits a reference answer into parts for string-match-all when none is
 * configured: ", " for the synthetic tasks (multi-value NIAH and vartrack list their parts that
 * way, as the grid's synthetic tasks do), none for anything else (JSONL QA). */
const char *lrsa_task_answer_sep(const char *task);

/* Generation budget of sample i: `configured` when > 0, else the sample's reference answer
 * tokens (its loss-mask tokens, the end-of-turn token included) + 16, so a mixture of short
 * and long answers (passkey's 5 digits, multi-value NIAH's four 7-digit numbers) gives every
 * sample room for its whole answer. */
int lrsa_eval_max_new(int configured, const lrsa_dataset *d, int64_t i);
#endif
