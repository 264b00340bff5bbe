/* The press configs the evaluator runs a sample under (lrsa_press_config, eval/run/answer_nll.h):
 * the two common ones and the spec a config runs. */
#include "eval/run/answer_nll.h"

void lrsa_press_config_spec(const lrsa_press_config *p, lrsa_press_spec *out) {
    *out = p->spec;
}

lrsa_press_config lrsa_press_config_full(lrsa_prefill_mode prefill) {
    lrsa_press_config c = {.protocol = LRSA_PROTOCOL_AWARE};
    lrsa_press_spec_defaults(&c.spec, LRSA_PRESS_NONE);
    c.spec.prefill = prefill;
    return c;
}

lrsa_press_config lrsa_press_config_lagkv(lrsa_lagkv_params p, lrsa_prefill_mode prefill) {
    lrsa_press_config c = {.protocol = LRSA_PROTOCOL_AWARE};
    lrsa_press_spec_defaults(&c.spec, LRSA_PRESS_LAGKV);
    c.spec.lagkv = p;
    c.spec.keep = p.keep;
    c.spec.prefill = prefill;
    return c;
}
