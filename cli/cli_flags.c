/* Shared flag parsing for the eval/ commands. */
#include "cli/cli_flags.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lrsa_flag_int(const char *flag, const char *s, long long lo, long long hi, long long *out,
                  lrsa_err *e) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return lrsa_errorf(e, "%s: '%s' is not an integer in [%lld, %lld]", flag, s, lo, hi);
    *out = v;
    return 0;
}

int lrsa_flag_float(const char *flag, const char *s, float *out, lrsa_err *e) {
    char *end = NULL;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return lrsa_errorf(e, "%s: '%s' is not a finite number", flag, s);
    *out = v;
    return 0;
}

int lrsa_flag_value(int argc, char **argv, int *i, const char **out, lrsa_err *e) {
    if (*i + 1 >= argc) return lrsa_errorf(e, "%s needs a value (see --help)", argv[*i]);
    *out = argv[++*i];
    return 0;
}

/* The command line's LagKV defaults: S=16, L=128, r=0.5, w=1. */
static const lrsa_lagkv_params CLI_LAGKV = {
    .sink = 16, .lag = 128, .keep = 0.5f, .value_weight = 1.0f};

/* The spec defaults of a method as the command line sees them: keep 0.5 and the CLI's LagKV
 * parameters unless flags say otherwise. */
static void method_defaults(lrsa_press_config *p, lrsa_press_method method) {
    lrsa_press_spec_defaults(&p->spec, method);
    p->spec.lagkv = CLI_LAGKV;
    p->spec.keep = 0.5;
    p->spec.prefill = LRSA_PREFILL_CHUNKED;
}

void lrsa_press_defaults(lrsa_press_config *p) {
    memset(p, 0, sizeof(*p));
    method_defaults(p, LRSA_PRESS_NONE);
    p->protocol = LRSA_PROTOCOL_AWARE;
}

static int parse_flag(lrsa_press_config *p, int argc, char **argv, int *i, int apply_press,
                      lrsa_err *e) {
    const char *f = argv[*i], *v = NULL;
    long long n = 0;
    float x = 0.0f;
    lrsa_press_spec *s = &p->spec;
    if (strcmp(f, "--press") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        lrsa_press_method method;
        if (lrsa_press_method_parse(v, &method, e) != 0) return lrsa_err_prefix(e, "--press: ");
        if (!apply_press) return 1;
        method_defaults(p, method);
        /* Flags given before --press were overwritten by the method's defaults: apply every
         * other press flag of the command line again, in order. */
        for (int j = 1; j < argc; j++) {
            if (strcmp(argv[j], "--press") == 0) {
                j++;
                continue;
            }
            if (parse_flag(p, argc, argv, &j, 0, e) < 0) return -1;
        }
    } else if (strcmp(f, "--sink") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 0, 1 << 30, &n, e))
            return -1;
        s->lagkv.sink = (int)n;
        s->sink = (int)n;
    } else if (strcmp(f, "--lag") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 1, 1 << 30, &n, e))
            return -1;
        s->lagkv.lag = (int)n;
    } else if (strcmp(f, "--keep") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_float(f, v, &x, e)) return -1;
        s->lagkv.keep = x;
        s->keep = x;
        s->tokens_per_layer = 0;
    } else if (strcmp(f, "--tokens") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 1, 1LL << 40, &n, e))
            return -1;
        s->tokens_per_layer = n;
        s->keep = 0.0;
    } else if (strcmp(f, "--value-weight") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_float(f, v, &x, e)) return -1;
        s->lagkv.value_weight = x;
    } else if (strcmp(f, "--window") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 0, 1 << 30, &n, e))
            return -1;
        s->window = (int)n;
    } else if (strcmp(f, "--kernel") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 1, 1 << 20, &n, e))
            return -1;
        s->kernel = (int)n;
    } else if (strcmp(f, "--pool") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        if (strcmp(v, "avg") == 0)
            s->pool = LRSA_POOL_AVG;
        else if (strcmp(v, "max") == 0)
            s->pool = LRSA_POOL_MAX;
        else
            return lrsa_errorf(e, "--pool: unknown pooling '%s'; use avg or max", v);
    } else if (strcmp(f, "--selector") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        if (strcmp(v, "uniform") == 0)
            s->selector = LRSA_SELECT_UNIFORM;
        else if (strcmp(v, "adaptive") == 0)
            s->selector = LRSA_SELECT_HEAD_ADAPTIVE;
        else if (strcmp(v, "layer") == 0)
            s->selector = LRSA_SELECT_LAYER_BUDGET;
        else if (strcmp(v, "global") == 0)
            s->selector = LRSA_SELECT_GLOBAL;
        else
            return lrsa_errorf(e,
                               "--selector: unknown selector '%s'; use uniform, adaptive, layer "
                               "or global",
                               v);
    } else if (strcmp(f, "--alpha") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_float(f, v, &s->alpha, e)) return -1;
    } else if (strcmp(f, "--beta") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_float(f, v, &s->pyramid_beta, e))
            return -1;
    } else if (strcmp(f, "--kvzip-chunk") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 1, 1 << 30, &n, e))
            return -1;
        s->kvzip_chunk = (int)n;
    } else if (strcmp(f, "--compresskv-file") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        s->compresskv_file = v;
    } else if (strcmp(f, "--protocol") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        if (lrsa_press_protocol_parse(v, &p->protocol, e) != 0)
            return lrsa_err_prefix(e, "--protocol: ");
    } else if (strcmp(f, "--prefill") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        if (strcmp(v, "chunked") == 0)
            s->prefill = LRSA_PREFILL_CHUNKED;
        else if (strcmp(v, "oneshot") == 0)
            s->prefill = LRSA_PREFILL_ONESHOT;
        else
            return lrsa_errorf(e, "--prefill: unknown mode '%s'; use chunked or oneshot", v);
    } else {
        return 0;
    }
    return 1;
}

int lrsa_press_flag(lrsa_press_config *p, int argc, char **argv, int *i, lrsa_err *e) {
    return parse_flag(p, argc, argv, i, 1, e);
}

int lrsa_press_check(const lrsa_press_config *p, lrsa_err *e) {
    lrsa_press_spec s;
    lrsa_press_config_spec(p, &s);
    if (s.method == LRSA_PRESS_LAGKV && lrsa_lagkv_validate(&s.lagkv, e) != 0)
        return lrsa_err_prefix(e, "--press lagkv (flags --sink/--lag/--keep/--value-weight): ");
    return lrsa_press_spec_check(&s, e);
}

const char *lrsa_press_describe(const lrsa_press_config *p, char *buf, int cap) {
    lrsa_press_spec s;
    lrsa_press_config_spec(p, &s);
    return lrsa_press_describe_spec(&s, buf, cap);
}
