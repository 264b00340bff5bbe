/* CompressKV online scoring and layer budgets (kv-compression.md section 1). */
#include "eval/press_internal.h"

int lrsa_press_score_compresskv(const lrsa_model *m, const lrsa_kv_cache *c,
                                const lrsa_press_spec *s, const lrsa_press_obs *obs,
                                lrsa_press_scores *out, lrsa_err *e) {
    (void)m;
    (void)c;
    (void)s;
    (void)obs;
    (void)out;
    return lrsa_errorf(e, "compresskv: scorer not implemented yet (work in progress)");
}

int lrsa_compresskv_layer_budgets(const lrsa_press_spec *s, int n_layers, int64_t T,
                                  int64_t *budget, lrsa_err *e) {
    (void)s;
    (void)n_layers;
    (void)T;
    (void)budget;
    return lrsa_errorf(e, "compresskv: layer budgets not implemented yet (work in progress)");
}
