/* Shared flag parsing for the eval/ commands. */
#include "eval/cli_flags.h"

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

void lrsa_press_defaults(lrsa_press_config *p) {
    memset(p, 0, sizeof(*p));
    p->compress = 0;
    p->lagkv.sink = 16;
    p->lagkv.lag = 128;
    p->lagkv.keep = 0.5f;
    p->lagkv.value_weight = 1.0f;
    p->prefill = LRSA_PREFILL_CHUNKED;
}

int lrsa_press_flag(lrsa_press_config *p, int argc, char **argv, int *i, lrsa_err *e) {
    const char *f = argv[*i], *v = NULL;
    long long n = 0;
    if (strcmp(f, "--press") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        if (strcmp(v, "none") == 0)
            p->compress = 0;
        else if (strcmp(v, "lagkv") == 0)
            p->compress = 1;
        else
            return lrsa_errorf(e, "--press: unknown press '%s'; use none or lagkv", v);
    } else if (strcmp(f, "--sink") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 0, 1 << 30, &n, e))
            return -1;
        p->lagkv.sink = (int)n;
    } else if (strcmp(f, "--lag") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_int(f, v, 1, 1 << 30, &n, e))
            return -1;
        p->lagkv.lag = (int)n;
    } else if (strcmp(f, "--keep") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) || lrsa_flag_float(f, v, &p->lagkv.keep, e))
            return -1;
    } else if (strcmp(f, "--value-weight") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e) ||
            lrsa_flag_float(f, v, &p->lagkv.value_weight, e))
            return -1;
    } else if (strcmp(f, "--prefill") == 0) {
        if (lrsa_flag_value(argc, argv, i, &v, e)) return -1;
        if (strcmp(v, "chunked") == 0)
            p->prefill = LRSA_PREFILL_CHUNKED;
        else if (strcmp(v, "oneshot") == 0)
            p->prefill = LRSA_PREFILL_ONESHOT;
        else
            return lrsa_errorf(e, "--prefill: unknown mode '%s'; use chunked or oneshot", v);
    } else {
        return 0;
    }
    return 1;
}

int lrsa_press_check(const lrsa_press_config *p, lrsa_err *e) {
    if (!p->compress) return 0;
    if (lrsa_lagkv_validate(&p->lagkv, e) != 0)
        return lrsa_err_prefix(e, "--press lagkv (flags --sink/--lag/--keep/--value-weight): ");
    return 0;
}

const char *lrsa_press_describe(const lrsa_press_config *p, char *buf, int cap) {
    if (!p->compress)
        snprintf(buf, (size_t)cap, "none");
    else
        snprintf(buf, (size_t)cap, "lagkv(S=%d,L=%d,r=%g,w=%g)", p->lagkv.sink, p->lagkv.lag,
                 p->lagkv.keep, p->lagkv.value_weight);
    return buf;
}
