#include "train/zero_layout.h"

#include <stdlib.h>
#include <string.h>

static int64_t round_up(int64_t x, int64_t unit) {
    return (x + unit - 1) / unit * unit;
}

void lrsa_zero_layout_init(lrsa_zero_layout *L, const int64_t *ready, int n_ready, int64_t numel,
                           int world, int rank, int64_t bucket_elems, int64_t align) {
    LRSA_CHECK(world >= 1 && rank >= 0 && rank < world && align >= 1 && n_ready >= 1);
    LRSA_CHECK(ready[n_ready - 1] == 0, "(the last readiness offset must be 0)");
    memset(L, 0, sizeof *L);
    L->world = world;
    L->rank = rank;
    L->numel = numel;
    const int64_t unit = (int64_t)world * align;
    L->padded = round_up(numel, unit);
    L->b = lrsa_calloc((size_t)n_ready, sizeof *L->b);
    int64_t hi = L->padded;
    for (int i = 0; i < n_ready; i++) {
        LRSA_CHECK(i == 0 || ready[i] <= ready[i - 1], "(readiness offsets must descend)");
        int64_t lo = round_up(ready[i], unit); /* never below the readiness point */
        if (lo >= hi || (hi - lo < bucket_elems && ready[i] != 0)) continue;
        lrsa_zero_bucket *b = &L->b[L->n_buckets++];
        b->lo = lo;
        b->hi = hi;
        b->piece = (hi - lo) / world;
        b->local = L->shard;
        L->shard += b->piece;
        hi = lo;
    }
}

void lrsa_zero_layout_free(lrsa_zero_layout *L) {
    free(L->b);
    memset(L, 0, sizeof *L);
}

int lrsa_zero_buckets_ready(const lrsa_zero_layout *L, int64_t offset) {
    int n = 0;
    while (n < L->n_buckets && L->b[n].lo >= offset) n++;
    return n;
}

int lrsa_zero_buckets_needed(const lrsa_zero_layout *L, int64_t end) {
    int n = 0;
    while (n < L->n_buckets && L->b[L->n_buckets - 1 - n].lo < end) n++;
    return n;
}

/* The real elements (below numel) of rank r's piece of bucket b: [*start, *start + count). */
static int64_t piece_span(const lrsa_zero_layout *L, const lrsa_zero_bucket *b, int r,
                          int64_t *start) {
    *start = b->lo + (int64_t)r * b->piece;
    int64_t n = L->numel - *start;
    return n < 0 ? 0 : (n < b->piece ? n : b->piece);
}

void lrsa_zero_extract(const lrsa_zero_layout *L, const float *full, float *local) {
    for (int i = 0; i < L->n_buckets; i++) {
        const lrsa_zero_bucket *b = &L->b[i];
        int64_t start, n = piece_span(L, b, L->rank, &start);
        if (n > 0) memcpy(local + b->local, full + start, sizeof(float) * (size_t)n);
        if (n < b->piece) memset(local + b->local + n, 0, sizeof(float) * (size_t)(b->piece - n));
    }
}

void lrsa_zero_scatter_into(const lrsa_zero_layout *L, int r, const float *local, float *full) {
    for (int i = 0; i < L->n_buckets; i++) {
        const lrsa_zero_bucket *b = &L->b[i];
        int64_t start, n = piece_span(L, b, r, &start);
        if (n > 0) memcpy(full + start, local + b->local, sizeof(float) * (size_t)n);
    }
}

int lrsa_zero_gather(const lrsa_comm *c, const lrsa_zero_layout *L, const float *local, float *full,
                     int root, lrsa_err *e) {
    LRSA_CHECK(c->world == L->world && c->rank == L->rank, "(layout made for another world)");
    const int64_t S = L->shard;
    int here = root < 0 || c->rank == root;
    /* every shard has S elements: gather them side by side, then put each piece in place */
    float *all =
        here ? lrsa_malloc(sizeof(float) * (size_t)(S * L->world > 0 ? S * L->world : 1)) : NULL;
    int64_t *counts = lrsa_malloc(sizeof(int64_t) * 2 * (size_t)L->world),
            *displs = counts + L->world;
    for (int r = 0; r < L->world; r++) {
        counts[r] = S;
        displs[r] = (int64_t)r * S;
    }
    int rc;
    if (root < 0) {
        if (S > 0) memcpy(all + (int64_t)c->rank * S, local, sizeof(float) * (size_t)S);
        rc = lrsa_comm_allgather(c, LRSA_MEM_HOST, all, S, LRSA_F32, NULL, e);
    } else {
        rc = lrsa_comm_gatherv_f32(c, local, all, counts, displs, root, e);
    }
    if (!rc && here)
        for (int r = 0; r < L->world; r++) lrsa_zero_scatter_into(L, r, all + (int64_t)r * S, full);
    free(counts);
    free(all);
    return rc;
}
