/* KVzip scoring (kv-compression.md section 2): context-reconstruction attention. */
#include <math.h>

#include "eval/press_internal.h"

int lrsa_press_score_kvzip(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                           const int32_t *ids, int64_t n, lrsa_press_scores *out, lrsa_err *e) {
    (void)m;
    (void)c;
    (void)s;
    (void)ids;
    (void)n;
    (void)out;
    return lrsa_errorf(e, "kvzip: scorer not implemented yet (work in progress)");
}
