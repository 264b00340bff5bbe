/* The batch loader: determinism, exact epochs, budget, rank shards, checkpoint restore. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "test_util.h"

#define N_SAMPLES 37
#define BUDGET    100

/* A dataset of N_SAMPLES samples with lengths 3..~150 (a few longer than the budget). */
static lrsa_dataset *make_dataset(void) {
    static char dir[1024], path[1100];
    tu_tmpdir(dir, sizeof dir, "loader");
    snprintf(path, sizeof path, "%s/ds.h5", dir);
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    lrsa_err e;
    int32_t ids[200];
    uint8_t mask[200];
    for (int s = 0; s < N_SAMPLES; s++) {
        int64_t n = 3 + (s * 37) % 150;
        for (int64_t t = 0; t < n; t++) {
            ids[t] = s;
            mask[t] = t >= n / 2;
        }
        assert_int_equal(lrsa_dataset_writer_add(w, ids, mask, n, n / 2, "a", &e), 0);
    }
    lrsa_dataset_meta m = {"x", "none", "loader test", "test", 0};
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &m, &e), 0);
    lrsa_dataset_writer_free(w);
    lrsa_dataset *d = malloc(sizeof *d);
    if (lrsa_dataset_open(d, path, &e) != 0) fail_msg("%s", e.msg);
    return d;
}

static int setup(void **state) {
    *state = make_dataset();
    return 0;
}
static int teardown(void **state) {
    lrsa_dataset_close(*state);
    free(*state);
    return 0;
}

static void test_epoch_covers_every_sample_once_within_budget(void **state) {
    lrsa_dataset *d = *state;
    lrsa_loader l;
    lrsa_err e;
    assert_int_equal(lrsa_loader_init(&l, d, BUDGET, 7, 1, 0, 1, &e), 0);
    for (int epoch = 0; epoch < 3; epoch++) {
        int seen[N_SAMPLES] = {0};
        int64_t count = 0, batches = 0;
        int64_t expect_batches = lrsa_loader_batches_in_epoch(&l, epoch);
        lrsa_global_batch gb = {0};
        while (count < N_SAMPLES) {
            lrsa_loader_next(&l, &gb);
            batches++;
            assert_int_equal(gb.epoch, epoch);
            int64_t tok = 0, tgt = 0;
            for (int64_t i = 0; i < gb.n; i++) {
                seen[gb.samples[i]]++;
                tok += lrsa_dataset_len(d, gb.samples[i]);
                tgt += lrsa_dataset_n_target(d, gb.samples[i]);
            }
            assert_int_equal(tok, gb.n_tokens);
            assert_int_equal(tgt, gb.n_target);
            /* Budget respected, except a single over-long sample alone. */
            if (gb.n > 1) assert_true(gb.n_tokens <= BUDGET);
            assert_true(gb.n >= 1);
            count += gb.n;
        }
        lrsa_global_batch_free(&gb);
        assert_int_equal(count, N_SAMPLES);
        assert_int_equal(batches, expect_batches);
        for (int s = 0; s < N_SAMPLES; s++) assert_int_equal(seen[s], 1);
    }
    lrsa_loader_free(&l);
}

/* Same seed -> same batches; different seed -> a different order; epochs differ. */
static void test_determinism(void **state) {
    lrsa_dataset *d = *state;
    lrsa_loader a, b, c;
    lrsa_err e;
    assert_int_equal(lrsa_loader_init(&a, d, BUDGET, 42, 1, 0, 1, &e), 0);
    assert_int_equal(lrsa_loader_init(&b, d, BUDGET, 42, 1, 0, 1, &e), 0);
    assert_int_equal(lrsa_loader_init(&c, d, BUDGET, 43, 1, 0, 1, &e), 0);
    lrsa_global_batch ga = {0}, gb = {0}, gc = {0};
    int differs_c = 0;
    int64_t first_epoch[N_SAMPLES], second_epoch[N_SAMPLES], na = 0, nb2 = 0;
    for (int step = 0; step < 100; step++) {
        lrsa_loader_next(&a, &ga);
        lrsa_loader_next(&b, &gb);
        lrsa_loader_next(&c, &gc);
        assert_int_equal(ga.n, gb.n);
        assert_memory_equal(ga.samples, gb.samples, (size_t)ga.n * sizeof(int64_t));
        if (ga.n != gc.n || memcmp(ga.samples, gc.samples, (size_t)ga.n * sizeof(int64_t)))
            differs_c = 1;
        for (int64_t i = 0; i < ga.n; i++) {
            if (ga.epoch == 0) first_epoch[na++] = ga.samples[i];
            if (ga.epoch == 1) second_epoch[nb2++] = ga.samples[i];
        }
    }
    assert_true(differs_c);
    assert_int_equal(na, N_SAMPLES);
    assert_int_equal(nb2, N_SAMPLES);
    assert_true(memcmp(first_epoch, second_epoch, sizeof first_epoch) != 0);
    lrsa_global_batch_free(&ga);
    lrsa_global_batch_free(&gb);
    lrsa_global_batch_free(&gc);
    lrsa_loader_free(&a);
    lrsa_loader_free(&b);
    lrsa_loader_free(&c);
}

static void test_restore_continues_identically(void **state) {
    lrsa_dataset *d = *state;
    lrsa_loader a, b;
    lrsa_err e;
    assert_int_equal(lrsa_loader_init(&a, d, BUDGET, 5, 1, 0, 1, &e), 0);
    lrsa_global_batch ga = {0}, gb = {0};
    for (int step = 0; step < 45; step++) lrsa_loader_next(&a, &ga); /* crosses an epoch */
    lrsa_loader_state st = lrsa_loader_state_get(&a);
    assert_true(st.epoch >= 1);
    /* A fresh loader (different seed at init: the state carries the seed). */
    assert_int_equal(lrsa_loader_init(&b, d, BUDGET, 999, 1, 0, 1, &e), 0);
    assert_int_equal(lrsa_loader_restore(&b, &st, &e), 0);
    for (int step = 0; step < 30; step++) {
        lrsa_loader_next(&a, &ga);
        lrsa_loader_next(&b, &gb);
        assert_int_equal(ga.epoch, gb.epoch);
        assert_int_equal(ga.n, gb.n);
        assert_memory_equal(ga.samples, gb.samples, (size_t)ga.n * sizeof(int64_t));
    }
    lrsa_loader_state bad = {5, 0, N_SAMPLES + 1};
    assert_int_equal(lrsa_loader_restore(&b, &bad, &e), -1);
    assert_non_null(strstr(e.msg, "cursor"));
    lrsa_global_batch_free(&ga);
    lrsa_global_batch_free(&gb);
    lrsa_loader_free(&a);
    lrsa_loader_free(&b);
}

/* The shards of all ranks partition each global batch, and every rank sees the same batch. */
static void test_shards_partition_global_batch(void **state) {
    lrsa_dataset *d = *state;
    enum { WORLD = 3 };
    lrsa_loader l[WORLD];
    lrsa_global_batch g[WORLD];
    lrsa_err e;
    memset(g, 0, sizeof g);
    for (int r = 0; r < WORLD; r++)
        assert_int_equal(lrsa_loader_init(&l[r], d, 3 * BUDGET, 11, 1, r, WORLD, &e), 0);
    for (int step = 0; step < 12; step++) {
        for (int r = 0; r < WORLD; r++) lrsa_loader_next(&l[r], &g[r]);
        int used[N_SAMPLES] = {0};
        int64_t total_local = 0;
        for (int r = 0; r < WORLD; r++) {
            assert_int_equal(g[r].n, g[0].n);
            assert_memory_equal(g[r].samples, g[0].samples, (size_t)g[0].n * sizeof(int64_t));
            assert_int_equal(g[r].n_target, g[0].n_target);
            for (int64_t i = 0; i < g[r].n_local; i++) used[g[r].local[i]]++;
            total_local += g[r].n_local;
        }
        assert_int_equal(total_local, g[0].n);
        for (int64_t i = 0; i < g[0].n; i++) assert_int_equal(used[g[0].samples[i]], 1);
        /* Entry i goes to rank i % world. */
        for (int64_t i = 0; i < g[0].n; i++)
            assert_int_equal(g[i % WORLD].local[i / WORLD], g[0].samples[i]);
    }
    for (int r = 0; r < WORLD; r++) {
        lrsa_global_batch_free(&g[r]);
        lrsa_loader_free(&l[r]);
    }
}

static void test_no_shuffle_and_bad_args(void **state) {
    lrsa_dataset *d = *state;
    lrsa_loader l;
    lrsa_err e;
    assert_int_equal(lrsa_loader_init(&l, d, 1, 3, 0, 0, 1, &e), 0);
    lrsa_global_batch gb = {0};
    for (int s = 0; s < N_SAMPLES; s++) {
        lrsa_loader_next(&l, &gb);
        assert_int_equal(gb.n, 1); /* budget 1: each sample alone, in dataset order */
        assert_int_equal(gb.samples[0], s);
    }
    lrsa_global_batch_free(&gb);
    lrsa_loader_free(&l);
    assert_int_equal(lrsa_loader_init(&l, d, 0, 3, 0, 0, 1, &e), -1);
    assert_non_null(strstr(e.msg, "tokens_per_batch"));
    assert_int_equal(lrsa_loader_init(&l, d, 10, 3, 0, 2, 2, &e), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_covers_every_sample_once_within_budget),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_restore_continues_identically),
        cmocka_unit_test(test_shards_partition_global_batch),
        cmocka_unit_test(test_no_shuffle_and_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
