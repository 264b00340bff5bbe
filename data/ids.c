#include "data/ids.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static void ids_reserve(lrsa_ids *a, int64_t need) {
    if (need <= a->cap) return;
    int64_t cap = a->cap ? a->cap : 64;
    while (cap < need) cap *= 2;
    a->v = lrsa_realloc(a->v, (size_t)cap * sizeof *a->v);
    a->cap = cap;
}

void lrsa_ids_push(lrsa_ids *a, int32_t id) {
    ids_reserve(a, a->n + 1);
    a->v[a->n++] = id;
}

void lrsa_ids_append(lrsa_ids *a, const int32_t *ids, int64_t n) {
    ids_reserve(a, a->n + n);
    if (n) memcpy(a->v + a->n, ids, (size_t)n * sizeof *ids);
    a->n += n;
}

void lrsa_ids_free(lrsa_ids *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

void lrsa_mask_push(lrsa_mask *m, uint8_t x, int64_t count) {
    if (m->n + count > m->cap) {
        int64_t cap = m->cap ? m->cap : 64;
        while (cap < m->n + count) cap *= 2;
        m->v = lrsa_realloc(m->v, (size_t)cap);
        m->cap = cap;
    }
    memset(m->v + m->n, x, (size_t)count);
    m->n += count;
}

void lrsa_mask_free(lrsa_mask *m) {
    free(m->v);
    memset(m, 0, sizeof *m);
}
