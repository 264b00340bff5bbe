#include "train/train_eval.h"

#include <math.h>
#include <string.h>

#include "eval/run/answer_nll.h"

int lrsa_train_eval(const lrsa_model *m, const lrsa_dataset *ds, const lrsa_train_config *c,
                    const lrsa_comm *comm, lrsa_eval_record *r, lrsa_err *e) {
    memset(r, 0, sizeof *r);
    r->keep = c->attn_keep;
    int64_t n = lrsa_dataset_size(ds);
    if (c->eval_samples < n) n = c->eval_samples;
    const lrsa_press_config full = lrsa_press_config_full(LRSA_PREFILL_CHUNKED);
    const lrsa_press_config lag = lrsa_press_config_lagkv(
        (lrsa_lagkv_params){(int)c->attn_sink, (int)c->attn_lag, (float)c->attn_keep,
                            (float)c->attn_value_weight},
        LRSA_PREFILL_CHUNKED);
    /* sums: nll_full, tokens_full, nll_lagkv, tokens_lagkv, samples */
    double s[5] = {0, 0, 0, 0, 0};
    int failed = 0; /* a failing rank still joins the reduction below, so no rank hangs */
    for (int64_t i = comm->rank; i < n && !failed; i += comm->world) {
        if (lrsa_dataset_n_target(ds, i) == 0) continue;
        const int32_t *ids = lrsa_dataset_ids(ds, i);
        const uint8_t *mask = lrsa_dataset_mask(ds, i);
        int64_t len = lrsa_dataset_len(ds, i);
        double nll;
        int64_t k;
        if (lrsa_answer_nll(m, ids, mask, len, &full, &nll, &k, e)) {
            failed = lrsa_err_prefix(e, "evaluating %s sample %lld (full cache): ", ds->path,
                                     (long long)i);
            break;
        }
        s[0] += nll;
        s[1] += (double)k;
        if (lrsa_answer_nll(m, ids, mask, len, &lag, &nll, &k, e)) {
            failed =
                lrsa_err_prefix(e, "evaluating %s sample %lld (LagKV): ", ds->path, (long long)i);
            break;
        }
        s[2] += nll;
        s[3] += (double)k;
        s[4] += 1;
    }
    lrsa_err ce;
    if (lrsa_comm_allreduce_sum_f64(comm, s, 5, &ce)) {
        if (!failed) *e = ce;
        return -1;
    }
    if (failed) return -1;
    r->nll_full = s[1] > 0 ? s[0] / s[1] : NAN;
    r->nll_lagkv = s[3] > 0 ? s[2] / s[3] : NAN;
    r->tokens = (int64_t)s[1];
    r->samples = (int64_t)s[4];
    return 0;
}
