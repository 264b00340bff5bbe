/* The batch loader: global batches by a token budget over a per-epoch shuffled order, sharded
 * across data-parallel ranks by position (entry i goes to rank i % world). The order depends
 * only on (seed, epoch), so every rank computes the same batches without talking, and a
 * checkpoint needs only (seed, epoch, cursor). */
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "data/loader.h"

/* Mixes the epoch into the seed so each epoch has its own order (splitmix-style constant). */
static uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
    return seed ^ ((uint64_t)(epoch + 1) * 0x9E3779B97F4A7C15ull);
}

static void draw_order(lrsa_loader *l, int64_t epoch) {
    if (l->order_epoch == epoch) return;
    int64_t n = l->ds->n;
    for (int64_t i = 0; i < n; i++) l->order[i] = i;
    if (l->shuffle) {
        lrsa_rng rng;
        lrsa_rng_seed(&rng, epoch_seed(l->st.seed, epoch));
        lrsa_rng_shuffle_i64(&rng, l->order, n);
    }
    l->order_epoch = epoch;
}

int lrsa_loader_init(lrsa_loader *l, const lrsa_dataset *ds, int64_t tokens_per_batch,
                     uint64_t seed, int shuffle, int rank, int world, lrsa_err *e) {
    memset(l, 0, sizeof *l);
    if (!ds || ds->n <= 0)
        return lrsa_errorf(e,
                           "dataset %s has no samples; prepare a non-empty one with `lrsa "
                           "prepare`",
                           ds ? ds->path : "(none)");
    if (tokens_per_batch <= 0)
        return lrsa_errorf(e,
                           "tokens_per_batch must be > 0 (got %lld); set it in the training "
                           "config",
                           (long long)tokens_per_batch);
    if (world <= 0 || rank < 0 || rank >= world)
        return lrsa_errorf(e, "invalid data-parallel rank %d of world %d", rank, world);
    l->ds = ds;
    l->tokens_per_batch = tokens_per_batch;
    l->rank = rank;
    l->world = world;
    l->shuffle = shuffle;
    l->st.seed = seed;
    l->order = lrsa_malloc((size_t)ds->n * sizeof(int64_t));
    l->order_epoch = -1;
    return 0;
}

void lrsa_loader_free(lrsa_loader *l) {
    free(l->order);
    l->order = NULL;
}

void lrsa_global_batch_free(lrsa_global_batch *gb) {
    free(gb->samples);
    free(gb->local);
    memset(gb, 0, sizeof *gb);
}

/* How many samples from position `cursor` of the current order fit into one global batch. */
static int64_t batch_count(const lrsa_loader *l, int64_t cursor) {
    int64_t n = l->ds->n, sum = 0, k = 0;
    while (cursor + k < n) {
        int64_t len = lrsa_dataset_len(l->ds, l->order[cursor + k]);
        if (k > 0 && sum + len > l->tokens_per_batch) break;
        sum += len;
        k++;
        if (sum >= l->tokens_per_batch) break;
    }
    return k;
}

int lrsa_loader_next(lrsa_loader *l, lrsa_global_batch *gb) {
    if (l->st.cursor >= l->ds->n) {
        l->st.epoch++;
        l->st.cursor = 0;
    }
    draw_order(l, l->st.epoch);
    int64_t k = batch_count(l, l->st.cursor);
    if (gb->cap < k) {
        gb->samples = lrsa_realloc(gb->samples, (size_t)k * sizeof(int64_t));
        gb->local = lrsa_realloc(gb->local, (size_t)k * sizeof(int64_t));
        gb->cap = k;
    }
    gb->epoch = l->st.epoch;
    gb->n = k;
    gb->n_tokens = gb->n_target = gb->n_local = 0;
    for (int64_t i = 0; i < k; i++) {
        int64_t s = l->order[l->st.cursor + i];
        gb->samples[i] = s;
        gb->n_tokens += lrsa_dataset_len(l->ds, s);
        gb->n_target += lrsa_dataset_n_target(l->ds, s);
        if (i % l->world == l->rank) gb->local[gb->n_local++] = s;
    }
    l->st.cursor += k;
    return 0;
}

int64_t lrsa_loader_batches_in_epoch(lrsa_loader *l, int64_t epoch) {
    draw_order(l, epoch);
    int64_t count = 0;
    for (int64_t c = 0; c < l->ds->n; count++) c += batch_count(l, c);
    /* Leave the order for the loader's own epoch in place for the next call to next(). */
    l->order_epoch = -1;
    return count;
}

lrsa_loader_state lrsa_loader_state_get(const lrsa_loader *l) {
    return l->st;
}

int lrsa_loader_restore(lrsa_loader *l, const lrsa_loader_state *s, lrsa_err *e) {
    if (s->epoch < 0 || s->cursor < 0 || s->cursor > l->ds->n)
        return lrsa_errorf(e,
                           "loader state (epoch %lld, cursor %lld) does not fit dataset %s "
                           "with %lld samples; resume with the dataset the checkpoint was "
                           "trained on",
                           (long long)s->epoch, (long long)s->cursor, l->ds->path,
                           (long long)l->ds->n);
    l->st = *s;
    l->order_epoch = -1;
    return 0;
}
