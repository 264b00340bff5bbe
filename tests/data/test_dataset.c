/* The HDF5 dataset: round trip, compression on, validation errors, atomic commit. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "data/prepare_stats.h"
#include "test_util.h"

/* Three samples with different lengths, masks and UTF-8 answers. */
static lrsa_dataset_writer *make_writer(void) {
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    lrsa_err e;
    for (int s = 0; s < 3; s++) {
        int64_t n = 5 + 7 * s;
        int32_t ids[32];
        uint8_t mask[32];
        for (int64_t t = 0; t < n; t++) {
            ids[t] = (int32_t)(1000 * s + t * 3 + 1);
            mask[t] = t >= n - 2;
        }
        char ans[32];
        snprintf(ans, sizeof ans, "answer %d \xc3\xa9", s);
        assert_int_equal(lrsa_dataset_writer_add(w, ids, mask, n, n - 2, ans, &e), 0);
    }
    return w;
}

static const lrsa_dataset_meta META = {"abc123", "chatml-smollm", "unit test", "jsonl", 64};

static void test_round_trip(void **state) {
    char dir[1024], path[1100];
    tu_tmpdir(dir, sizeof dir, "dataset_rt");
    snprintf(path, sizeof path, "%s/rt.h5", dir);
    lrsa_dataset_writer *w = make_writer();
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    lrsa_dataset_writer_free(w);

    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(lrsa_dataset_size(&d), 3);
    assert_int_equal(d.total, 5 + 12 + 19);
    for (int s = 0; s < 3; s++) {
        int64_t n = 5 + 7 * s;
        assert_int_equal(lrsa_dataset_len(&d, s), n);
        assert_int_equal(lrsa_dataset_prompt_len(&d, s), n - 2);
        assert_int_equal(lrsa_dataset_n_target(&d, s), 2);
        for (int64_t t = 0; t < n; t++) {
            assert_int_equal(lrsa_dataset_ids(&d, s)[t], 1000 * s + t * 3 + 1);
            assert_int_equal(lrsa_dataset_mask(&d, s)[t], t >= n - 2);
        }
        char ans[32];
        snprintf(ans, sizeof ans, "answer %d \xc3\xa9", s);
        assert_string_equal(lrsa_dataset_answer(&d, s), ans);
    }
    assert_string_equal(d.tokenizer_checksum, "abc123");
    assert_string_equal(d.chat_template, "chatml-smollm");
    assert_string_equal(d.source, "unit test");
    assert_string_equal(d.task, "jsonl");
    assert_int_equal(d.max_len, 64);
    assert_int_equal(lrsa_dataset_check_tokenizer(&d, "abc123", &e), 0);
    assert_int_equal(lrsa_dataset_check_tokenizer(&d, "abc124", &e), -1);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "lrsa prepare"));
    lrsa_dataset_close(&d);

    /* The token stream is stored compressed (shuffle + deflate). */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hid_t pl = H5Dget_create_plist(ds);
    assert_int_equal(H5Pget_nfilters(pl), 2);
    H5Pclose(pl);
    H5Dclose(ds);
    H5Fclose(f);
}

static void test_same_content_same_bytes(void **state) {
    char dir[1024], a[1100], b[1100];
    tu_tmpdir(dir, sizeof dir, "dataset_bytes");
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    lrsa_err e;
    lrsa_dataset_writer *w = make_writer();
    assert_int_equal(lrsa_dataset_writer_commit(w, a, &META, &e), 0);
    assert_int_equal(lrsa_dataset_writer_commit(w, b, &META, &e), 0);
    lrsa_dataset_writer_free(w);
    size_t na, nb;
    char *x = lrsa_read_file(a, &na, &e), *y = lrsa_read_file(b, &nb, &e);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    free(x);
    free(y);
}

static void test_writer_rejects_bad_samples(void **state) {
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    int32_t ids[2] = {1, 2};
    uint8_t m[2] = {0, 1};
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_add(w, ids, m, 2, 3, "x", &e), -1);
    assert_non_null(strstr(e.msg, "prompt_len"));
    assert_int_equal(lrsa_dataset_writer_add(w, ids, m, 0, 0, "x", &e), -1);
    assert_int_equal(lrsa_dataset_writer_count(w), 0);
    /* Committing nothing fails and leaves no file behind. */
    char dir[1024], path[1100];
    tu_tmpdir(dir, sizeof dir, "dataset_empty");
    snprintf(path, sizeof path, "%s/empty.h5", dir);
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), -1);
    assert_false(lrsa_file_exists(path));
    lrsa_dataset_writer_free(w);
}

static void test_commit_into_missing_dir_fails_cleanly(void **state) {
    lrsa_dataset_writer *w = make_writer();
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_commit(w, "/nonexistent-dir-lrsa/x.h5", &META, &e), -1);
    assert_non_null(strstr(e.msg, "/nonexistent-dir-lrsa/x.h5"));
    lrsa_dataset_writer_free(w);
}

/* Rewrites one dataset of a valid file to corrupt it, then checks the open error names it. */
static void corrupt_offsets(const char *path, int64_t idx, int64_t value) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "offsets", H5P_DEFAULT);
    int64_t off[4];
    assert_true(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off) >= 0);
    off[idx] = value;
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
}

static void test_open_validates(void **state) {
    char dir[1024], path[1100];
    tu_tmpdir(dir, sizeof dir, "dataset_bad");
    lrsa_err e;
    lrsa_dataset d;
    snprintf(path, sizeof path, "%s/missing.h5", dir);
    assert_int_equal(lrsa_dataset_open(&d, path, &e), -1);
    assert_non_null(strstr(e.msg, "does not exist"));

    snprintf(path, sizeof path, "%s/not_h5.h5", dir);
    assert_int_equal(lrsa_write_file_atomic(path, "hello", 5, &e), 0);
    assert_int_equal(lrsa_dataset_open(&d, path, &e), -1);
    assert_non_null(strstr(e.msg, "not an HDF5 file"));

    /* Non-monotone offsets. */
    snprintf(path, sizeof path, "%s/mono.h5", dir);
    lrsa_dataset_writer *w = make_writer();
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    corrupt_offsets(path, 2, 3);
    assert_int_equal(lrsa_dataset_open(&d, path, &e), -1);
    assert_non_null(strstr(e.msg, "/offsets"));
    assert_non_null(strstr(e.msg, path));

    /* Offsets beyond the token stream. */
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    corrupt_offsets(path, 3, 1000);
    assert_int_equal(lrsa_dataset_open(&d, path, &e), -1);
    assert_non_null(strstr(e.msg, "/offsets"));

    /* Wrong format attribute. */
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Adelete(f, "format") >= 0);
    H5Fclose(f);
    assert_int_equal(lrsa_dataset_open(&d, path, &e), -1);
    assert_non_null(strstr(e.msg, "format"));

    /* A missing dataset. */
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(f, "loss_mask", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    assert_int_equal(lrsa_dataset_open(&d, path, &e), -1);
    assert_non_null(strstr(e.msg, "/loss_mask"));
    lrsa_dataset_writer_free(w);
}

/* Writes a vlen-string (or int) /sample_task of n entries over whatever the file had. */
static void replace_sample_task(const char *path, int64_t n, int as_strings) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (H5Lexists(f, "sample_task", H5P_DEFAULT) > 0)
        assert_true(H5Ldelete(f, "sample_task", H5P_DEFAULT) >= 0);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = H5Screate_simple(1, dims, NULL), type = H5Tcopy(H5T_C_S1);
    assert_true(H5Tset_size(type, H5T_VARIABLE) >= 0);
    hid_t ft = as_strings ? type : H5T_STD_I32LE;
    hid_t ds = H5Dcreate2(f, "sample_task", ft, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    const char *v[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    int32_t iv[8] = {0};
    assert_true(H5Dwrite(ds, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, as_strings ? (void *)v : iv) >= 0);
    H5Dclose(ds);
    H5Tclose(type);
    H5Sclose(space);
    H5Fclose(f);
}

static int has_sample_task(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    int yes = H5Lexists(f, "sample_task", H5P_DEFAULT) > 0;
    H5Fclose(f);
    return yes;
}

/* Per-sample tasks: absent unless a sample is tagged (the accessor then falls back to the root
 * task, as for files written before /sample_task existed); tagged ones round-trip, untagged
 * ones get the root task; a malformed /sample_task is refused naming the file and dataset. */
static void test_sample_tasks(void **state) {
    char dir[1024], plain[1100], mixed[1100];
    tu_tmpdir(dir, sizeof dir, "dataset_tasks");
    snprintf(plain, sizeof plain, "%s/plain.h5", dir);
    snprintf(mixed, sizeof mixed, "%s/mixed.h5", dir);
    lrsa_err e;
    lrsa_dataset_writer *w = make_writer();
    assert_null(lrsa_dataset_writer_task(w, 1));
    assert_int_equal(lrsa_dataset_writer_commit(w, plain, &META, &e), 0);
    assert_false(has_sample_task(plain));
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, plain, &e) != 0) fail_msg("%s", e.msg);
    assert_null(d.sample_task);
    for (int i = 0; i < 3; i++) assert_string_equal(lrsa_dataset_sample_task(&d, i), "jsonl");
    lrsa_dataset_close(&d);

    lrsa_dataset_writer_set_task(w, 0, "passkey");
    lrsa_dataset_writer_set_task(w, 2, "temp");
    lrsa_dataset_writer_set_task(w, 2, "vartrack"); /* a second tag replaces the first */
    assert_string_equal(lrsa_dataset_writer_task(w, 2), "vartrack");
    assert_int_equal(lrsa_dataset_writer_len(w, 2), 19);
    lrsa_dataset_meta meta = META;
    meta.task = "passkey,vartrack";
    assert_int_equal(lrsa_dataset_writer_commit(w, mixed, &meta, &e), 0);
    assert_true(has_sample_task(mixed));
    if (lrsa_dataset_open(&d, mixed, &e) != 0) fail_msg("%s", e.msg);
    assert_string_equal(d.task, "passkey,vartrack");
    assert_string_equal(lrsa_dataset_sample_task(&d, 0), "passkey");
    assert_string_equal(lrsa_dataset_sample_task(&d, 1), "passkey,vartrack"); /* untagged */
    assert_string_equal(lrsa_dataset_sample_task(&d, 2), "vartrack");
    lrsa_dataset_close(&d);

    /* the length distribution `prepare` prints, overall and per tag */
    lrsa_length_stats all = lrsa_writer_length_stats(w, NULL);
    assert_int_equal(all.n, 3);
    assert_int_equal(all.min, 5);
    assert_int_equal(all.max, 19);
    assert_true(all.median == 12.0);
    lrsa_length_stats pk = lrsa_writer_length_stats(w, "passkey");
    assert_int_equal(pk.n, 1);
    assert_int_equal(pk.min, 5);
    assert_int_equal(pk.max, 5);
    lrsa_dataset_writer_set_task(w, 1, "passkey");
    pk = lrsa_writer_length_stats(w, "passkey");
    assert_int_equal(pk.n, 2);
    assert_true(pk.median == 8.5); /* (5 + 12) / 2 */
    lrsa_dataset_writer_free(w);

    replace_sample_task(mixed, 2, 1);
    assert_int_equal(lrsa_dataset_open(&d, mixed, &e), -1);
    assert_non_null(strstr(e.msg, "/sample_task"));
    assert_non_null(strstr(e.msg, mixed));
    replace_sample_task(mixed, 3, 0);
    assert_int_equal(lrsa_dataset_open(&d, mixed, &e), -1);
    assert_non_null(strstr(e.msg, "/sample_task must hold strings"));
    replace_sample_task(mixed, 3, 1);
    if (lrsa_dataset_open(&d, mixed, &e) != 0) fail_msg("%s", e.msg);
    assert_string_equal(lrsa_dataset_sample_task(&d, 1), "b");
    lrsa_dataset_close(&d);
}

/* Asserts that the attribute or dataset `name` of f holds fixed-length strings. */
static void assert_fixed_string(hid_t type, const char *name) {
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0)
        fail_msg("%s is not a fixed-length string", name);
}

/* Strings are written fixed-length (no global heap: libhdf5 crashes on a damaged one) in the 1.10
 * file format (checksummed object headers); answers of different lengths, empty included, come
 * back exactly. */
static void test_strings_fixed_length(void **state) {
    char dir[1024], path[1100];
    tu_tmpdir(dir, sizeof dir, "dataset_fixed");
    snprintf(path, sizeof path, "%s/fixed.h5", dir);
    const char *answers[3] = {"7", "a much longer answer \xe2\x9c\x93 with UTF-8", ""};
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    lrsa_err e;
    for (int s = 0; s < 3; s++) {
        int32_t ids[4] = {1, 2, 3, 4};
        uint8_t mask[4] = {0, 0, 1, 1};
        if (lrsa_dataset_writer_add(w, ids, mask, 4, 2, answers[s], &e) != 0) fail_msg("%s", e.msg);
    }
    const lrsa_dataset_meta meta = {"", "chatml-smollm", "unit test", "passkey", 64};
    if (lrsa_dataset_writer_commit(w, path, &meta, &e) != 0) fail_msg("%s", e.msg);
    lrsa_dataset_writer_free(w);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    H5F_info2_t info;
    assert_true(H5Fget_info2(f, &info) >= 0);
    assert_true(info.super.version >= 3); /* the 1.10 format: superblock v3, checksummed */
    const char *attrs[5] = {"format", "tokenizer_checksum", "chat_template", "source", "task"};
    for (int i = 0; i < 5; i++) {
        hid_t a = H5Aopen(f, attrs[i], H5P_DEFAULT);
        assert_true(a >= 0);
        hid_t t = H5Aget_type(a);
        assert_fixed_string(t, attrs[i]);
        H5Tclose(t);
        H5Aclose(a);
    }
    hid_t ds = H5Dopen2(f, "answers", H5P_DEFAULT);
    hid_t t = H5Dget_type(ds);
    assert_fixed_string(t, "/answers");
    H5Tclose(t);
    H5Dclose(ds);
    H5Fclose(f);

    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    for (int s = 0; s < 3; s++) assert_string_equal(lrsa_dataset_answer(&d, s), answers[s]);
    assert_string_equal(d.tokenizer_checksum, "");
    assert_string_equal(d.task, "passkey");
    lrsa_dataset_close(&d);
}

/* Replaces /answers with variable-length strings, as files written before the fixed-length change
 * hold them. */
static void replace_answers_vlen(const char *path, const char *const *v, int64_t n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, "answers", H5P_DEFAULT) >= 0);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = H5Screate_simple(1, dims, NULL), type = H5Tcopy(H5T_C_S1);
    assert_true(H5Tset_size(type, H5T_VARIABLE) >= 0);
    assert_true(H5Tset_cset(type, H5T_CSET_UTF8) >= 0);
    hid_t ds = H5Dcreate2(f, "answers", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    H5Tclose(type);
    H5Sclose(space);
    H5Fclose(f);
}

/* Files written with variable-length strings (before the change) are still read. */
static void test_reads_variable_length_strings(void **state) {
    char dir[1024], path[1100];
    tu_tmpdir(dir, sizeof dir, "dataset_vlen");
    snprintf(path, sizeof path, "%s/vlen.h5", dir);
    lrsa_dataset_writer *w = make_writer();
    lrsa_err e;
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &META, &e), 0);
    lrsa_dataset_writer_free(w);
    const char *v[3] = {"old one", "", "old three \xc3\xa9"};
    replace_answers_vlen(path, v, 3);
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    for (int s = 0; s < 3; s++) assert_string_equal(lrsa_dataset_answer(&d, s), v[s]);
    lrsa_dataset_close(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_same_content_same_bytes),
        cmocka_unit_test(test_writer_rejects_bad_samples),
        cmocka_unit_test(test_commit_into_missing_dir_fails_cleanly),
        cmocka_unit_test(test_open_validates),
        cmocka_unit_test(test_sample_tasks),
        cmocka_unit_test(test_strings_fixed_length),
        cmocka_unit_test(test_reads_variable_length_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
