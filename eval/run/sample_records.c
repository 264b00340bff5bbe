/* Per-sample evaluation records (see sample_records.h). */
#include "eval/run/sample_records.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/synthetic/tasks.h"

/* Extra tokens of the default generation budget beyond the reference answer's. */
#define MAX_NEW_MARGIN 16

lrsa_sample_record *lrsa_sample_records_push(lrsa_sample_records *r) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->v = lrsa_realloc(r->v, (size_t)r->cap * sizeof *r->v);
    }
    lrsa_sample_record *x = &r->v[r->n++];
    memset(x, 0, sizeof *x);
    x->match = -1;
    return x;
}

void lrsa_sample_records_free(lrsa_sample_records *r) {
    for (int64_t i = 0; i < r->n; i++) free(r->v[i].prediction);
    free(r->v);
    memset(r, 0, sizeof *r);
}

void lrsa_sample_record_answer(lrsa_sample_record *rec, const char *pred, const char *reference,
                               const char *sep) {
    lrsa_score_answer(pred, reference, sep, &rec->score);
    free(rec->prediction);
    rec->prediction = lrsa_strdup(pred);
    rec->has_answer = 1;
}

cJSON *lrsa_sample_records_json(const lrsa_sample_records *r) {
    cJSON *arr = cJSON_CreateArray();
    for (int64_t i = 0; i < r->n; i++) {
        const lrsa_sample_record *x = &r->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", (double)x->index);
        cJSON_AddStringToObject(o, "task", x->task ? x->task : "");
        if (x->has_nll) {
            cJSON_AddNumberToObject(o, "answer_tokens", (double)x->answer_tokens);
            cJSON_AddNumberToObject(o, "answer_nll_sum", x->nll_sum);
            cJSON_AddNumberToObject(o, "answer_nll",
                                    x->answer_tokens ? x->nll_sum / (double)x->answer_tokens : 0.0);
        }
        if (x->has_answer) {
            cJSON_AddNumberToObject(o, "string_match_all", x->score.match_all);
            cJSON_AddNumberToObject(o, "string_match_part", x->score.match_part);
            cJSON_AddNumberToObject(o, "exact_match", x->score.exact);
            cJSON_AddNumberToObject(o, "f1", x->score.f1);
            if (x->match >= 0) cJSON_AddNumberToObject(o, "match", x->match);
            cJSON_AddStringToObject(o, "prediction", x->prediction ? x->prediction : "");
            cJSON_AddNumberToObject(o, "max_new", x->max_new);
        }
        cJSON_AddNumberToObject(o, "kept_fraction", x->kept_fraction);
        if (x->has_needle_kept) {
            cJSON_AddNumberToObject(o, "needle_kept", x->needle_kept);
            cJSON_AddNumberToObject(o, "needle_tokens_kept", x->needle_tokens_kept);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

const char *lrsa_task_answer_sep(const char *task) {
    return task && lrsa_synth_task_known(task) ? ", " : "";
}

int lrsa_eval_max_new(int configured, const lrsa_dataset *d, int64_t i) {
    return configured > 0 ? configured : (int)lrsa_dataset_n_target(d, i) + MAX_NEW_MARGIN;
}
