#include "train/attn_mix.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/press_notes.h"

int lrsa_attn_mix_parse_keeps(const char *text, float *keeps, int *n, const char *what,
                              lrsa_err *e) {
    *n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        if (!*p) break;
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            return lrsa_errorf(e,
                               "%s: cannot read a keep fraction at \"%s\" (write numbers or "
                               "fractions like 0.5, 1/4, 0.125)",
                               what, p);
        if (*end == '/') {
            const char *q = end + 1;
            double d = strtod(q, &end);
            if (end == q || d <= 0)
                return lrsa_errorf(e, "%s: bad fraction at \"%s\" (write e.g. 1/4)", what, p);
            v /= d;
        }
        if (!(v > 0 && v <= 1))
            return lrsa_errorf(e, "%s: keep fraction %g is not in (0, 1]", what, v);
        if (*n == LRSA_ATTN_MIX_MAX)
            return lrsa_errorf(e, "%s: at most %d keep fractions", what, LRSA_ATTN_MIX_MAX);
        keeps[(*n)++] = (float)v;
        p = end;
        if (*p && *p != ',' && !isspace((unsigned char)*p))
            return lrsa_errorf(e, "%s: unexpected \"%s\" after a keep fraction", what, p);
    }
    return 0;
}

/* splitmix64's finaliser: a well-mixed 64-bit hash of x. */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A uniform double in [0, 1) from the top 53 bits. */
static double unit(uint64_t h) {
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

lrsa_attn_config lrsa_attn_mix_pick(const lrsa_attn_mix *m, int64_t step, int64_t index) {
    lrsa_attn_config a = m->base;
    if (a.mode != LRSA_ATTN_LRSA) return a;
    uint64_t h = mix64(m->seed ^ mix64((uint64_t)step * 0x632be59bd9b4e019ULL ^ (uint64_t)index));
    if (m->dense_share > 0 && unit(h) < m->dense_share) {
        a.mode = LRSA_ATTN_DENSE;
        return a;
    }
    if (m->n_keeps > 0) a.lagkv.keep = m->keeps[mix64(h) % (uint64_t)m->n_keeps];
    return a;
}

void lrsa_attn_mix_describe(const lrsa_attn_mix *m, char *out, size_t cap) {
    if (m->base.mode != LRSA_ATTN_LRSA) {
        snprintf(out, cap, "dense");
        return;
    }
    size_t n = 0;
    if (m->n_keeps == 0) {
        n += (size_t)snprintf(out, cap, "lrsa keep %g", m->base.lagkv.keep);
    } else {
        n += (size_t)snprintf(out, cap, "lrsa keep {");
        for (int i = 0; i < m->n_keeps && n < cap; i++)
            n += (size_t)snprintf(out + n, cap - n, "%s%g", i ? ", " : "", m->keeps[i]);
        if (n < cap) n += (size_t)snprintf(out + n, cap - n, "}");
    }
    if (m->dense_share > 0 && n < cap)
        snprintf(out + n, cap - n, ", dense for %.0f %% of the samples", 100 * m->dense_share);
}

int lrsa_attn_mix_short_note(const lrsa_attn_mix *m, const lrsa_dataset *d, int64_t max_len,
                             char *buf, size_t cap) {
    if (m->base.mode != LRSA_ATTN_LRSA) return 0;
    int compresses = m->n_keeps == 0 && lrsa_lagkv_k(&m->base.lagkv) < m->base.lagkv.lag;
    for (int i = 0; i < m->n_keeps; i++) {
        lrsa_lagkv_params p = m->base.lagkv;
        p.keep = m->keeps[i];
        compresses |= lrsa_lagkv_k(&p) < p.lag;
    }
    if (!compresses) return 0; /* keep 1: dense by design, whatever the lengths */
    int64_t n = 0, *lens = lrsa_malloc((size_t)(d->n > 0 ? d->n : 1) * sizeof *lens);
    for (int64_t i = 0; i < d->n; i++) /* the samples the trainer uses (data.max_len) */
        if (max_len <= 0 || lrsa_dataset_len(d, i) <= max_len) lens[n++] = lrsa_dataset_len(d, i);
    int rc = lrsa_lagkv_short_note(&m->base.lagkv, lens, n, "training sample",
                                   "LRSA leaves them whole, so they train with dense attention",
                                   "attention.sink", "attention.lag", buf, cap);
    free(lens);
    return rc;
}
