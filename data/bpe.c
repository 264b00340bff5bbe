/* Byte-pair encoding of one pre-token (byte-level, or character-level with byte fallback), the
 * hash maps behind it, and the per-piece cache. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

/* FNV-1a, 64-bit: also the documented checksum hash (docs/TOKENIZER.md). */

static uint32_t pow2_at_least(uint32_t x) {
    uint32_t c = 16;
    while (c < x) c *= 2;
    return c;
}

void lrsa_strmap_init(lrsa_strmap *m, uint32_t expected) {
    m->cap = pow2_at_least(expected * 2 + 1);
    m->n = 0;
    m->keys = lrsa_calloc(m->cap, sizeof *m->keys);
    m->klen = lrsa_calloc(m->cap, sizeof *m->klen);
    m->vals = lrsa_calloc(m->cap, sizeof *m->vals);
}

void lrsa_strmap_free(lrsa_strmap *m) {
    free(m->keys);
    free(m->klen);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint32_t strmap_slot(const lrsa_strmap *m, const char *key, uint32_t klen) {
    uint32_t i = (uint32_t)lrsa_fnv1a64(key, klen, LRSA_FNV1A64_OFFSET) & (m->cap - 1);
    while (m->keys[i] && !(m->klen[i] == klen && memcmp(m->keys[i], key, klen) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

void lrsa_strmap_put(lrsa_strmap *m, const char *key, uint32_t klen, int32_t val) {
    if ((m->n + 1) * 2 > m->cap) {
        lrsa_strmap old = *m;
        lrsa_strmap_init(m, old.cap);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.keys[i]) lrsa_strmap_put(m, old.keys[i], old.klen[i], old.vals[i]);
        lrsa_strmap_free(&old);
    }
    uint32_t i = strmap_slot(m, key, klen);
    if (!m->keys[i]) m->n++;
    m->keys[i] = key;
    m->klen[i] = klen;
    m->vals[i] = val;
}

int32_t lrsa_strmap_get(const lrsa_strmap *m, const char *key, uint32_t klen) {
    if (!m->cap) return -1;
    uint32_t i = strmap_slot(m, key, klen);
    return m->keys[i] ? m->vals[i] : -1;
}

void lrsa_pairmap_init(lrsa_pairmap *m, uint32_t expected) {
    m->cap = pow2_at_least(expected * 2 + 1);
    m->n = 0;
    m->keys = lrsa_malloc(m->cap * sizeof *m->keys);
    memset(m->keys, 0xFF, m->cap * sizeof *m->keys); /* all-ones: empty (ids are < 2^31) */
    m->rank = lrsa_calloc(m->cap, sizeof *m->rank);
    m->merged = lrsa_calloc(m->cap, sizeof *m->merged);
}

void lrsa_pairmap_free(lrsa_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

static uint32_t pair_slot(const lrsa_pairmap *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    uint32_t i = (uint32_t)(h >> 32) & (m->cap - 1);
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

void lrsa_pairmap_put(lrsa_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    if ((m->n + 1) * 2 > m->cap) {
        lrsa_pairmap old = *m;
        lrsa_pairmap_init(m, old.cap);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.keys[i] != UINT64_MAX)
                lrsa_pairmap_put(m, (int32_t)(old.keys[i] >> 32), (int32_t)(uint32_t)old.keys[i],
                                 old.rank[i], old.merged[i]);
        lrsa_pairmap_free(&old);
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = pair_slot(m, key);
    if (m->keys[i] == key) return; /* a repeated merge keeps its first (lowest) rank */
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
    m->n++;
}

int lrsa_pairmap_get(const lrsa_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = pair_slot(m, key);
    if (m->keys[i] != key) return 0;
    *rank = m->rank[i];
    *merged = m->merged[i];
    return 1;
}

/* ---- the merge loop ----
 * Symbols form a linked list over an array; candidate pairs sit in a min-heap ordered by
 * (rank, position of the left symbol), so the lowest rank merges first and ties go to the
 * leftmost pair. A popped candidate is stale when either symbol changed since it was pushed;
 * it is then dropped. O(n log n) even for very long pieces (e.g. 100k spaces). */
typedef struct sym {
    int32_t id;
    int prev, next; /* -1 at the ends */
    int alive;
} sym;

typedef struct cand {
    int32_t rank;
    int pos; /* index of the left symbol */
    int32_t left, right, merged;
} cand;

static int cand_less(const cand *x, const cand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

/* *ops counts the candidates compared while sifting: the loop's whole cost, so a test can
 * check the O(n log n) bound by counting instead of by a clock. */
static void heap_push(cand *h, int *n, cand c, int64_t *ops) {
    int i = (*n)++;
    h[i] = c;
    while (i > 0) {
        int p = (i - 1) / 2;
        ++*ops;
        if (!cand_less(&h[i], &h[p])) break;
        cand t = h[i];
        h[i] = h[p], h[p] = t, i = p;
    }
}

static cand heap_pop(cand *h, int *n, int64_t *ops) {
    cand top = h[0];
    h[0] = h[--(*n)];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        *ops += 2;
        if (l < *n && cand_less(&h[l], &h[m])) m = l;
        if (r < *n && cand_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        cand t = h[i];
        h[i] = h[m], h[m] = t, i = m;
    }
    return top;
}

static void try_pair(const lrsa_tokenizer *t, const sym *s, int left, cand *h, int *nh,
                     int64_t *ops) {
    int right = s[left].next;
    if (right < 0) return;
    cand c = {.pos = left, .left = s[left].id, .right = s[right].id};
    if (lrsa_pairmap_get(&t->merges, c.left, c.right, &c.rank, &c.merged)) heap_push(h, nh, c, ops);
}

/* Returns the heap operations it took (see heap_push). */
static int64_t bpe_merge(const lrsa_tokenizer *t, const unsigned char *s, size_t n, lrsa_ids *out) {
    int64_t ops = 0;
    int32_t small_ids[64];
    sym small_syms[64];
    cand small_heap[128];
    /* the starting symbols: bytes, or (character-level) characters and byte-fallback bytes;
     * never more than n */
    int32_t *start = n <= 64 ? small_ids : lrsa_malloc(n * sizeof *start);
    size_t m = n;
    if (t->char_level)
        m = lrsa_spm_symbols(t, s, n, start);
    else
        for (size_t i = 0; i < n; i++) start[i] = t->byte_id[s[i]];
    /* each merge pushes at most 2 new candidates: m-1 initial + 2(m-1) <= 3m */
    sym *sy = m <= 64 ? small_syms : lrsa_malloc(m * sizeof *sy);
    cand *h = 3 * m <= 128 ? small_heap : lrsa_malloc(3 * m * sizeof *h);
    int nh = 0;
    for (size_t i = 0; i < m; i++)
        sy[i] = (sym){
            .id = start[i], .prev = (int)i - 1, .next = i + 1 < m ? (int)i + 1 : -1, .alive = 1};
    for (size_t i = 0; i + 1 < m; i++) try_pair(t, sy, (int)i, h, &nh, &ops);
    while (nh > 0) {
        cand c = heap_pop(h, &nh, &ops);
        sym *l = &sy[c.pos];
        if (!l->alive || l->id != c.left || l->next < 0 || sy[l->next].id != c.right) continue;
        int r = l->next;
        l->id = c.merged;
        sy[r].alive = 0;
        l->next = sy[r].next;
        if (l->next >= 0) sy[l->next].prev = c.pos;
        if (l->prev >= 0) try_pair(t, sy, l->prev, h, &nh, &ops);
        try_pair(t, sy, c.pos, h, &nh, &ops);
    }
    int32_t prev = -1;
    for (int i = m > 0 ? 0 : -1; i >= 0; i = sy[i].next) {
        if (t->fuse_unk && sy[i].id == t->unk_id && prev == t->unk_id) continue;
        lrsa_ids_push(out, prev = sy[i].id);
    }
    if (start != small_ids) free(start);
    if (sy != small_syms) free(sy);
    if (h != small_heap) free(h);
    return ops;
}

int64_t lrsa_bpe_merge_ops(const lrsa_tokenizer *t, const unsigned char *s, size_t n,
                           lrsa_ids *out) {
    return n > 0 ? bpe_merge(t, s, n, out) : 0;
}

/* ---- the per-piece cache ---- */
#define CACHE_MAX_PIECE 64          /* longer pieces are rare and cheap to recompute per byte */
#define CACHE_MAX_BYTES (32u << 20) /* stop adding beyond this, so memory stays bounded */

void lrsa_piece_cache_init(lrsa_piece_cache *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    lrsa_strmap_init(&c->map, 4096);
}

void lrsa_piece_cache_free(lrsa_piece_cache *c) {
    lrsa_strmap_free(&c->map);
    free(c->arena);
    free(c->ids);
    pthread_mutex_destroy(&c->mu);
}

/* The cache keys point into one arena; growing it moves the keys, so the map is rebuilt. */
static void cache_insert(lrsa_piece_cache *c, const unsigned char *s, size_t n, const int32_t *ids,
                         int64_t nids) {
    if (c->arena_n + n > CACHE_MAX_BYTES) return;
    if (c->arena_n + n > c->arena_cap) {
        size_t cap = c->arena_cap ? c->arena_cap * 2 : 65536;
        while (cap < c->arena_n + n) cap *= 2;
        char *old = c->arena;
        c->arena = lrsa_realloc(c->arena, cap);
        c->arena_cap = cap;
        if (c->arena != old)
            for (uint32_t i = 0; i < c->map.cap; i++)
                if (c->map.keys[i]) c->map.keys[i] = c->arena + (c->map.keys[i] - old);
    }
    if (c->ids_n + (size_t)nids + 1 > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap * 2 : 16384;
        while (cap < c->ids_n + (size_t)nids + 1) cap *= 2;
        c->ids = lrsa_realloc(c->ids, cap * sizeof *c->ids);
        c->ids_cap = cap;
    }
    memcpy(c->arena + c->arena_n, s, n);
    c->ids[c->ids_n] = (int32_t)nids;
    memcpy(c->ids + c->ids_n + 1, ids, (size_t)nids * sizeof *ids);
    lrsa_strmap_put(&c->map, c->arena + c->arena_n, (uint32_t)n, (int32_t)c->ids_n);
    c->arena_n += n;
    c->ids_n += (size_t)nids + 1;
}

void lrsa_bpe_piece(const lrsa_tokenizer *t, const unsigned char *s, size_t n, lrsa_ids *out) {
    if (n == 0) return;
    if (n == 1 && !t->char_level) {
        lrsa_ids_push(out, t->byte_id[s[0]]);
        return;
    }
    if (t->ignore_merges && n <= 256) {
        /* Llama-3: a piece that is a whole vocab entry is emitted as is */
        char mapped[256 * 2];
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const char *sym = t->char_level ? (const char *)s + i : t->bytemap[s[i]];
            size_t k = t->char_level ? 1 : t->bytemap_len[s[i]];
            memcpy(mapped + m, sym, k);
            m += k;
        }
        int32_t id = lrsa_strmap_get(&t->vocab, mapped, (uint32_t)m);
        if (id >= 0 && !t->special[id]) {
            lrsa_ids_push(out, id);
            return;
        }
    }
    lrsa_piece_cache *c = (lrsa_piece_cache *)&t->cache; /* encode is logically const */
    int cacheable = n <= CACHE_MAX_PIECE;
    if (cacheable) {
        pthread_mutex_lock(&c->mu);
        int32_t off = lrsa_strmap_get(&c->map, (const char *)s, (uint32_t)n);
        if (off >= 0) {
            lrsa_ids_append(out, c->ids + off + 1, c->ids[off]);
            pthread_mutex_unlock(&c->mu);
            return;
        }
        pthread_mutex_unlock(&c->mu);
    }
    int64_t start = out->n;
    bpe_merge(t, s, n, out);
    if (cacheable) {
        pthread_mutex_lock(&c->mu);
        if (lrsa_strmap_get(&c->map, (const char *)s, (uint32_t)n) < 0)
            cache_insert(c, s, n, out->v + start, out->n - start);
        pthread_mutex_unlock(&c->mu);
    }
}

/* ---- character-level (SentencePiece-style) BPE: the starting symbols and the cut before "▁" ----
 */

size_t lrsa_spm_symbols(const lrsa_tokenizer *t, const unsigned char *s, size_t n, int32_t *syms) {
    size_t m = 0;
    int32_t unk = -1; /* an unknown run waiting to be emitted (HF's `unk`) */
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = lrsa_utf8_next(s + i, n - i, &cp);
        /* an invalid byte (HF never sees one) is a character outside the vocabulary */
        int32_t id = cp >= 0 ? lrsa_strmap_get(&t->vocab, (const char *)s + i, (uint32_t)k) : -1;
        int bytes_known = t->byte_fallback;
        for (int b = 0; b < k && bytes_known; b++) bytes_known = t->byte_id[s[i + b]] >= 0;
        if (id >= 0) {
            if (unk >= 0) syms[m++] = unk, unk = -1;
            syms[m++] = id;
        } else if (bytes_known) {
            /* HF adds the byte tokens without emitting a waiting unk first; kept as HF has it */
            for (int b = 0; b < k; b++) syms[m++] = t->byte_id[s[i + b]];
        } else if (t->unk_id >= 0) {
            if (unk >= 0 && !t->fuse_unk) syms[m++] = unk;
            unk = t->unk_id;
        }
        i += (size_t)k;
    }
    if (unk >= 0) syms[m++] = unk;
    return m;
}

#define METASPACE "\xE2\x96\x81" /* U+2581, the "▁" of SentencePiece vocabularies */

int lrsa_spm_cut_before(const unsigned char *s, size_t i, size_t n) {
    return i > 0 && i + 3 <= n && memcmp(s + i, METASPACE, 3) == 0 &&
           !(i >= 3 && memcmp(s + i - 3, METASPACE, 3) == 0);
}

void lrsa_spm_bpe(const lrsa_tokenizer *t, const unsigned char *s, size_t n, lrsa_ids *out) {
    if (!t->cut_at_metaspace) {
        lrsa_bpe_piece(t, s, n, out);
        return;
    }
    /* Exact: a merge across the cut would make a token holding "x▁", which the vocabulary
     * lacks; pieces of words also hit the piece cache, a whole text would not. */
    size_t start = 0;
    for (size_t i = 1; i < n; i++)
        if (lrsa_spm_cut_before(s, i, n)) {
            lrsa_bpe_piece(t, s + start, i - start, out);
            start = i;
        }
    lrsa_bpe_piece(t, s + start, n - start, out);
}
