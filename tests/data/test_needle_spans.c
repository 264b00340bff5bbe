/* /needle_spans in the HDF5 dataset: round trip, the per-sample accessor, files without spans,
 * and the writer's and reader's checks (span outside its sample, rows out of order). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "test_util.h"

static const lrsa_dataset_meta META = {"abc", "chatml-smollm", "unit test", "passkey", 0};

/* Three samples of 10, 20 and 30 tokens. */
static lrsa_dataset_writer *make_writer(void) {
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    lrsa_err e;
    for (int s = 0; s < 3; s++) {
        int32_t ids[30];
        uint8_t mask[30];
        int64_t n = 10 * (s + 1);
        for (int64_t t = 0; t < n; t++) {
            ids[t] = (int32_t)t;
            mask[t] = t == n - 1;
        }
        assert_int_equal(lrsa_dataset_writer_add(w, ids, mask, n, n - 1, "a", &e), 0);
    }
    return w;
}

static void path_in(char *path, size_t cap, const char *name) {
    char dir[1024];
    tu_tmpdir(dir, sizeof dir, "needle_spans");
    snprintf(path, cap, "%s/%s", dir, name);
}

static void test_round_trip(void **state) {
    char path[1200];
    path_in(path, sizeof path, "spans.h5");
    lrsa_dataset_writer *w = make_writer();
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_add_span(w, 0, 2, 5, &e), 0);
    assert_int_equal(lrsa_dataset_writer_add_span(w, 2, 3, 8, &e), 0);
    assert_int_equal(lrsa_dataset_writer_add_span(w, 2, 20, 30, &e), 0);
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    lrsa_dataset_writer_free(w);
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    assert_true(lrsa_dataset_has_needle_spans(&d));
    const int64_t *r;
    assert_int_equal(lrsa_dataset_needle_spans(&d, 0, &r), 1);
    assert_int_equal(r[0], 0);
    assert_int_equal(r[1], 2);
    assert_int_equal(r[2], 5);
    assert_int_equal(lrsa_dataset_needle_spans(&d, 1, &r), 0);
    assert_int_equal(lrsa_dataset_needle_spans(&d, 2, &r), 2);
    assert_int_equal(r[1], 3);
    assert_int_equal(r[2], 8);
    assert_int_equal(r[3], 2);
    assert_int_equal(r[4], 20);
    assert_int_equal(r[5], 30);
    lrsa_dataset_close(&d);
}

/* No span added: no /needle_spans in the file, and the reader says so. */
static void test_without_spans(void **state) {
    char path[1200];
    path_in(path, sizeof path, "plain.h5");
    lrsa_dataset_writer *w = make_writer();
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    lrsa_dataset_writer_free(w);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Lexists(f, "needle_spans", H5P_DEFAULT) == 0);
    H5Fclose(f);
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    assert_false(lrsa_dataset_has_needle_spans(&d));
    const int64_t *r;
    for (int i = 0; i < 3; i++) assert_int_equal(lrsa_dataset_needle_spans(&d, i, &r), 0);
    lrsa_dataset_close(&d);
}

static void test_writer_checks(void **state) {
    lrsa_dataset_writer *w = make_writer();
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_add_span(w, 3, 0, 1, &e), -1); /* no sample 3 */
    assert_non_null(strstr(e.msg, "no such sample"));
    assert_int_equal(lrsa_dataset_writer_add_span(w, 0, 5, 11, &e), -1); /* past 10 tokens */
    assert_non_null(strstr(e.msg, "outside its 10 tokens"));
    assert_int_equal(lrsa_dataset_writer_add_span(w, 0, 5, 5, &e), -1); /* empty */
    assert_int_equal(lrsa_dataset_writer_add_span(w, 1, 4, 6, &e), 0);
    assert_int_equal(lrsa_dataset_writer_add_span(w, 1, 3, 6, &e), -1); /* earlier start */
    assert_non_null(strstr(e.msg, "(sample, start) order"));
    assert_int_equal(lrsa_dataset_writer_add_span(w, 0, 1, 2, &e), -1); /* earlier sample */
    lrsa_dataset_writer_free(w);
}

/* Overwrites /needle_spans with the given rows. */
static void replace_spans(const char *path, const int64_t *rows, hsize_t m, hsize_t cols) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (H5Lexists(f, "needle_spans", H5P_DEFAULT) > 0)
        assert_true(H5Ldelete(f, "needle_spans", H5P_DEFAULT) >= 0);
    hsize_t dims[2] = {m, cols};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t ds =
        H5Dcreate2(f, "needle_spans", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(f);
}

static void expect_refused(const char *path, const char *what) {
    lrsa_dataset d;
    lrsa_err e;
    assert_int_equal(lrsa_dataset_open(&d, path, &e), -1);
    if (!strstr(e.msg, what)) fail_msg("expected '%s' in: %s", what, e.msg);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "lrsa prepare --synthetic"));
}

static void test_reader_checks(void **state) {
    char path[1200];
    path_in(path, sizeof path, "bad.h5");
    lrsa_dataset_writer *w = make_writer();
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    lrsa_dataset_writer_free(w);
    const int64_t outside[6] = {0, 2, 5, 1, 15, 21}; /* sample 1 has 20 tokens */
    replace_spans(path, outside, 2, 3);
    expect_refused(path, "span [15, 21) is outside sample 1's 20 tokens");
    const int64_t no_sample[3] = {3, 0, 1};
    replace_spans(path, no_sample, 1, 3);
    expect_refused(path, "names sample 3");
    const int64_t unsorted[9] = {0, 2, 5, 2, 8, 9, 1, 0, 3};
    replace_spans(path, unsorted, 3, 3);
    expect_refused(path, "not sorted by (sample, start) at row 2");
    const int64_t two_cols[4] = {0, 1, 0, 2};
    replace_spans(path, two_cols, 2, 2);
    expect_refused(path, "must be int64 [m, 3]");
    const int64_t fine[6] = {0, 2, 5, 0, 3, 4}; /* overlapping spans in order are allowed */
    replace_spans(path, fine, 2, 3);
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    const int64_t *r;
    assert_int_equal(lrsa_dataset_needle_spans(&d, 0, &r), 2);
    lrsa_dataset_close(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_without_spans),
        cmocka_unit_test(test_writer_checks),
        cmocka_unit_test(test_reader_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
