/* The export manifest's hash is FNV-1a 64 and must stay exactly that: manifests written by earlier
 * exports are checked against it when a model loads. Known vectors of FNV-1a 64 (its published
 * offset basis and prime: "" -> cbf29ce484222325, "a" -> af63dc4c8601ec8c, "foobar" ->
 * 85944171f73967e8) through base/hash.h and through lrsa_manifest_write, and a file longer than
 * the manifest's 4 MB read piece hashes as one run of bytes (the value was computed separately, in
 * Python, over the same bytes). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/hash.h"
#include "model/manifest.h"
#include "test_util.h"

static void test_known_vectors(void **state) {
    (void)state;
    assert_true(lrsa_fnv1a64("", 0, LRSA_FNV1A64_OFFSET) == 0xcbf29ce484222325ULL);
    assert_true(lrsa_fnv1a64("a", 1, LRSA_FNV1A64_OFFSET) == 0xaf63dc4c8601ec8cULL);
    assert_true(lrsa_fnv1a64("foobar", 6, LRSA_FNV1A64_OFFSET) == 0x85944171f73967e8ULL);
    assert_true(lrsa_fnv1a64_str("foobar") == 0x85944171f73967e8ULL);
    /* continuing a hash = hashing the concatenation */
    assert_true(lrsa_fnv1a64("bar", 3, lrsa_fnv1a64("foo", 3, LRSA_FNV1A64_OFFSET)) ==
                0x85944171f73967e8ULL);
}

/* The "fnv1a64" and "bytes" the manifest lists for dir/name. */
static void manifest_entry(const char *dir, const char *name, char *hex, size_t cap,
                           double *bytes) {
    char path[4200];
    lrsa_path_join(path, sizeof path, dir, LRSA_MANIFEST_NAME);
    size_t n;
    lrsa_err e;
    char *text = lrsa_read_file(path, &n, &e);
    if (!text) fail_msg("%s", e.msg);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *entry = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "files"), name);
    assert_non_null(entry);
    snprintf(hex, cap, "%s", cJSON_GetObjectItem(entry, "fnv1a64")->valuestring);
    *bytes = cJSON_GetObjectItem(entry, "bytes")->valuedouble;
    cJSON_Delete(root);
}

static void test_manifest_hash_values(void **state) {
    (void)state;
    char dir[4096], path[4200], hex[32];
    tu_tmpdir(dir, sizeof dir, "manifest_hash");
    lrsa_err e;
    enum { BIG = 5 * (1 << 20) + 3 }; /* more than one 4 MB piece, not a multiple of it */
    unsigned char *big = malloc(BIG);
    for (int i = 0; i < BIG; i++) big[i] = (unsigned char)((i * 131 + 7) & 255);
    const char *names[] = {"empty.bin", "foobar.txt", "big.bin"};
    const void *data[] = {"", "foobar", big};
    const size_t len[] = {0, 6, BIG};
    const char *want[] = {"cbf29ce484222325", "85944171f73967e8", "6e09345d07d6faab"};
    for (int i = 0; i < 3; i++) {
        lrsa_path_join(path, sizeof path, dir, names[i]);
        assert_int_equal(lrsa_write_file_atomic(path, data[i], len[i], &e), 0);
    }
    assert_int_equal(lrsa_manifest_write(dir, names, 3, &e), 0);
    for (int i = 0; i < 3; i++) {
        double bytes;
        manifest_entry(dir, names[i], hex, sizeof hex, &bytes);
        assert_string_equal(hex, want[i]);
        assert_true(bytes == (double)len[i]);
    }
    assert_int_equal(lrsa_manifest_check(dir, &e), 0);
    /* one byte changed in the second piece: the check names the file */
    big[BIG - 2] ^= 1;
    lrsa_path_join(path, sizeof path, dir, "big.bin");
    assert_int_equal(lrsa_write_file_atomic(path, big, BIG, &e), 0);
    assert_int_equal(lrsa_manifest_check(dir, &e), -1);
    assert_non_null(strstr(e.msg, "big.bin"));
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_manifest_hash_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
