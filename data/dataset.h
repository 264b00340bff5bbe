/* QA datasets in HDF5 ("lrsa-qa-v1"): one file = one split. Samples are token ids with a
 * per-token loss mask, a prompt length (where the generation prompt ends) and the reference
 * answer text.
 *
 * File layout (all datasets 1-D):
 *   /tokens      int32 [total]  all samples' ids concatenated (chunked, shuffle + deflate)
 *   /loss_mask   uint8 [total]  1 = this token is predicted by the loss (answer tokens and their
 *                               end-of-turn token); target-side, like Hugging Face labels
 *   /offsets     int64 [n+1]    sample i is tokens[offsets[i] : offsets[i+1]]
 *   /prompt_len  int64 [n]      tokens before the answer: ids[0:prompt_len] is the prompt that
 *                               `generate` is given (it ends with the assistant header)
 *   /answers     vlen UTF-8 [n] the reference answer text (for string-match metrics)
 *   /sample_task vlen UTF-8 [n] optional: each sample's task (written by task mixtures, e.g.
 *                               `--synthetic passkey,vartrack`); absent = every sample has the
 *                               root `task` (files written before it existed read the same)
 *   /needle_spans int64 [m, 3]  optional: rows (sample, start, end), sorted by (sample, start):
 *                               the tokens [start, end) of the sample hold a needle sentence
 *                               that carries (part of) the answer (written by the synthetic
 *                               generator; docs/DATA.md says which needles per task); absent =
 *                               no sample has spans
 * Root attributes (strings unless noted): format = "lrsa-qa-v1", tokenizer_checksum,
 *   chat_template (format name), source, task (a mixture: the comma-separated list),
 *   n_samples (int64), max_len (int64; 0 = none; the longest target length).
 */
#ifndef LRSA_DATA_DATASET_H
#define LRSA_DATA_DATASET_H
#include <stdint.h>

#include "base/error.h"

#define LRSA_DATASET_FORMAT "lrsa-qa-v1"

/* A whole dataset loaded into memory (read-only after open). */
typedef struct lrsa_dataset {
    int64_t n;             /* samples */
    int64_t total;         /* tokens over all samples */
    int32_t *tokens;       /* [total] */
    uint8_t *loss_mask;    /* [total] */
    int64_t *offsets;      /* [n+1], offsets[0] = 0, offsets[n] = total, non-decreasing */
    int64_t *prompt_len;   /* [n] */
    char **answers;        /* [n] NUL-terminated UTF-8 */
    char **sample_task;    /* [n] per-sample tasks, or NULL when the file has no /sample_task */
    int64_t *needle_spans; /* [n_spans * 3] rows (sample, start, end), or NULL (no /needle_spans) */
    int64_t n_spans;
    int64_t *span_first; /* [n+1] sample i's rows are span_first[i] .. span_first[i+1]-1 */
    char *tokenizer_checksum;
    char *chat_template;
    char *source;
    char *task;
    int64_t max_len;
    char path[4096];
} lrsa_dataset;

/* Loads and validates a dataset file (format attribute, monotone offsets within total, array
 * lengths, prompt_len within each sample). Errors name the file and the HDF5 dataset. */
int lrsa_dataset_open(lrsa_dataset *d, const char *path, lrsa_err *e);
void lrsa_dataset_close(lrsa_dataset *d);

int64_t lrsa_dataset_size(const lrsa_dataset *d);
/* Sample i (0 <= i < size): its ids, loss mask (same length), length, prompt length, answer. */
const int32_t *lrsa_dataset_ids(const lrsa_dataset *d, int64_t i);
const uint8_t *lrsa_dataset_mask(const lrsa_dataset *d, int64_t i);
int64_t lrsa_dataset_len(const lrsa_dataset *d, int64_t i);
int64_t lrsa_dataset_prompt_len(const lrsa_dataset *d, int64_t i);
const char *lrsa_dataset_answer(const lrsa_dataset *d, int64_t i);
/* Sample i's task: its /sample_task entry, or the root `task` attribute when the file has none. */
const char *lrsa_dataset_sample_task(const lrsa_dataset *d, int64_t i);
/* Needle spans of sample i: returns their number and points *rows at the first of them (rows of
 * 3: sample, start, end; start < end <= the sample's length); 0 when the sample has none or the
 * file has no /needle_spans. */
int64_t lrsa_dataset_needle_spans(const lrsa_dataset *d, int64_t i, const int64_t **rows);
/* 1 when the file has /needle_spans. */
int lrsa_dataset_has_needle_spans(const lrsa_dataset *d);
/* Number of tokens with loss_mask = 1 in sample i (the loss normaliser's share). */
int64_t lrsa_dataset_n_target(const lrsa_dataset *d, int64_t i);

/* Checks that the dataset was tokenised with this tokenizer (its checksum); the error names the
 * dataset and says to re-run `lrsa prepare` with the model being used. */
int lrsa_dataset_check_tokenizer(const lrsa_dataset *d, const char *tokenizer_checksum,
                                 lrsa_err *e);

/* Writer: collects samples in memory, then commit writes the file to a temporary name and
 * renames it into place (a failure leaves no output file). */
typedef struct lrsa_dataset_meta {
    const char *tokenizer_checksum;
    const char *chat_template;
    const char *source;
    const char *task;
    int64_t max_len; /* 0 = none */
} lrsa_dataset_meta;

typedef struct lrsa_dataset_writer lrsa_dataset_writer;

lrsa_dataset_writer *lrsa_dataset_writer_new(void);
/* Appends one sample: n ids with their mask, prompt_len <= n, the answer text. Returns -1 on
 * invalid arguments (prompt_len out of range, n == 0, answer NULL). */
int lrsa_dataset_writer_add(lrsa_dataset_writer *w, const int32_t *ids, const uint8_t *mask,
                            int64_t n, int64_t prompt_len, const char *answer, lrsa_err *e);
int64_t lrsa_dataset_writer_count(const lrsa_dataset_writer *w);
/* Tags sample i (< count) with its task (copied). When any sample is tagged, commit writes
 * /sample_task, untagged samples getting meta->task; with no tag nothing is added to the file. */
void lrsa_dataset_writer_set_task(lrsa_dataset_writer *w, int64_t i, const char *task);
/* Records that tokens [start, end) of sample i (< count) hold an answer-bearing needle. Spans are
 * added in (sample, start) order; commit writes /needle_spans when there is any. Returns -1 with
 * *e set on a span outside the sample or out of order. */
int lrsa_dataset_writer_add_span(lrsa_dataset_writer *w, int64_t i, int64_t start, int64_t end,
                                 lrsa_err *e);
/* Sample i's token count, and its tag (NULL when untagged). */
int64_t lrsa_dataset_writer_len(const lrsa_dataset_writer *w, int64_t i);
const char *lrsa_dataset_writer_task(const lrsa_dataset_writer *w, int64_t i);
/* Writes everything to path atomically. The writer stays valid (free it afterwards). */
int lrsa_dataset_writer_commit(lrsa_dataset_writer *w, const char *path,
                               const lrsa_dataset_meta *meta, lrsa_err *e);
void lrsa_dataset_writer_free(lrsa_dataset_writer *w);
#endif
