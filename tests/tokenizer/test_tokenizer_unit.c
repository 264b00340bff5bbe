/* The tokenizer's pieces beyond parity: the byte map, invalid UTF-8, streaming decode, added
 * tokens, the GGUF-style constructor, checksums, very long pieces, malformed files. */
#include <cjson/cJSON.h>
#include <math.h>
#include <utf8proc.h>

#include "data/tokenizer_internal.h"
#include "tok_test_common.h"

static const char *FIXTURES[4] = {"gpt2", "smollm", "llama3", "qwen2"};
static const char *GGUF_PRE[4] = {"gpt2", "smollm", "llama-bpe", "qwen2"};

static void test_byte_map(void **state) {
    (void)state;
    assert_int_equal(lrsa_byte_to_cp(' '), 0x120);  /* Ġ */
    assert_int_equal(lrsa_byte_to_cp('\n'), 0x10A); /* Ċ */
    assert_int_equal(lrsa_byte_to_cp('\t'), 0x109);
    assert_int_equal(lrsa_byte_to_cp(0xAD), 0x143);
    assert_int_equal(lrsa_byte_to_cp('A'), 'A');
    assert_int_equal(lrsa_byte_to_cp(0xFF), 0xFF);
    int seen[0x200] = {0};
    for (int b = 0; b < 256; b++) {
        int32_t cp = lrsa_byte_to_cp((unsigned char)b);
        assert_true(cp >= 0 && cp < 0x200);
        assert_int_equal(seen[cp]++, 0); /* a bijection */
        assert_int_equal(lrsa_cp_to_byte(cp), b);
    }
    assert_int_equal(lrsa_cp_to_byte(0x20), -1);
    assert_int_equal(lrsa_cp_to_byte(0x100 + 68), -1);
}

/* The bytes the ids stand for, concatenated (what encode must preserve exactly). */
static size_t id_bytes(const lrsa_tokenizer *t, const lrsa_ids *ids, char *out) {
    size_t o = 0;
    for (int64_t i = 0; i < ids->n; i++) {
        memcpy(out + o, t->bytes[ids->v[i]], (size_t)t->bytes_len[ids->v[i]]);
        o += (size_t)t->bytes_len[ids->v[i]];
    }
    return o;
}

static void test_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *in, *decoded;
    } cases[] = {
        {"\xff", "\xEF\xBF\xBD"},
        {"abc\xff\xfe def", "abc\xEF\xBF\xBD\xEF\xBF\xBD def"},
        {"caf\xc3", "caf\xEF\xBF\xBD"},                             /* truncated é */
        {"\xed\xa0\x80x", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx"}, /* surrogate: 3 subparts */
        {"\xf0\x9f\x98 ok", "\xEF\xBF\xBD ok"},                     /* truncated emoji: one */
        {"\xc0\xaf/", "\xEF\xBF\xBD\xEF\xBF\xBD/"},                 /* overlong */
        {"12\x80"
         "34  \x80\n",
         "12\xEF\xBF\xBD"
         "34  \xEF\xBF\xBD\n"},
    };
    for (int f = 0; f < 4; f++) {
        lrsa_tokenizer *t = tok_fixture(FIXTURES[f]);
        char buf[256];
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            lrsa_ids ids = {0};
            lrsa_err e;
            size_t n = strlen(cases[k].in);
            assert_int_equal(lrsa_tokenizer_encode(t, cases[k].in, n, &ids, &e), 0);
            /* every byte survives, invalid ones as their own byte symbols */
            assert_int_equal(id_bytes(t, &ids, buf), n);
            assert_memory_equal(buf, cases[k].in, n);
            char *d = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
            assert_string_equal(d, cases[k].decoded);
            free(d);
            lrsa_ids_free(&ids);
        }
        lrsa_tokenizer_free(t);
    }
}

/* Random byte strings (biased towards UTF-8 pieces) must encode without error, keep every
 * byte, and decode to the lossy UTF-8 of the input. */
static void test_fuzz_bytes(void **state) {
    (void)state;
    static const char *atoms[] = {
        "a",    "Z",    " ",    "  ",       "\n",        "\t", "7",  "123",
        "'s",   "'LL",  "!",    "é",        "e\xcc\x81", "你", "👋",  "\xe2\x80\x8d",
        "\xff", "\x80", "\xc3", "\xf0\x9f", "\x00",      "<|", "|>", "\xc2\xa0"};
    const int n_atoms = (int)(sizeof atoms / sizeof atoms[0]);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 42);
    for (int f = 0; f < 4; f++) {
        lrsa_tokenizer *t = tok_fixture(FIXTURES[f]);
        for (int it = 0; it < 400; it++) {
            char in[256], buf[1024], lossy[1024];
            size_t n = 0;
            int k = (int)(lrsa_rng_below(&rng, 30));
            for (int i = 0; i < k; i++) {
                const char *a = atoms[lrsa_rng_below(&rng, (uint64_t)n_atoms)];
                size_t al = a[0] ? strlen(a) : 1; /* "\x00" is one NUL byte */
                memcpy(in + n, a, al);
                n += al;
            }
            lrsa_ids ids = {0};
            lrsa_err e;
            assert_int_equal(lrsa_tokenizer_encode(t, in, n, &ids, &e), 0);
            size_t m = lrsa_utf8_lossy((const unsigned char *)in, n, lossy);
            char *d = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
            if (f != 3) {
                assert_int_equal(id_bytes(t, &ids, buf), n);
                assert_memory_equal(buf, in, n);
                assert_memory_equal(d, lossy, m);
            } else { /* Qwen2 normalizes to NFC first: decode gives NFC(lossy(input)) */
                utf8proc_uint8_t *nfc = NULL;
                utf8proc_ssize_t k2 =
                    utf8proc_map((const utf8proc_uint8_t *)lossy, (utf8proc_ssize_t)m, &nfc,
                                 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
                assert_true(k2 >= 0);
                assert_memory_equal(d, nfc, (size_t)k2);
                free(nfc);
            }
            free(d);
            lrsa_ids_free(&ids);
        }
        lrsa_tokenizer_free(t);
    }
}

static void test_stream_decode(void **state) {
    (void)state;
    lrsa_tokenizer *t = tok_fixture("gpt2");
    const char *text = "Hi 👋 family 👨‍👩‍👧 你好 ok";
    lrsa_ids ids = {0};
    lrsa_err e;
    assert_int_equal(lrsa_tokenizer_encode(t, text, strlen(text), &ids, &e), 0);
    lrsa_stream_decoder d;
    lrsa_stream_decoder_init(&d, t, 1);
    char all[512] = "", out[256];
    int held_back = 0;
    for (int64_t i = 0; i < ids.n; i++) {
        int n = lrsa_stream_decoder_push(&d, ids.v[i], out, sizeof out);
        assert_int_equal(n, (int)strlen(out));
        assert_null(strstr(out, "\xEF\xBF\xBD")); /* never a replacement mid-character */
        if (d.n_pending) held_back++;
        strcat(all, out);
    }
    assert_int_equal(lrsa_stream_decoder_flush(&d, out, sizeof out), 0);
    assert_string_equal(all, text);
    assert_true(held_back > 0); /* the emoji really were split across tokens */
    lrsa_ids_free(&ids);

    /* an unfinished character at the end becomes one U+FFFD on flush */
    lrsa_stream_decoder_init(&d, t, 1);
    assert_int_equal(lrsa_stream_decoder_push(&d, t->byte_id['a'], out, sizeof out), 1);
    assert_int_equal(lrsa_stream_decoder_push(&d, t->byte_id[0xF0], out, sizeof out), 0);
    assert_int_equal(lrsa_stream_decoder_push(&d, t->byte_id[0x9F], out, sizeof out), 0);
    assert_int_equal(lrsa_stream_decoder_flush(&d, out, sizeof out), 3);
    assert_string_equal(out, "\xEF\xBF\xBD");
    /* a byte that cannot continue the character releases it as U+FFFD at once */
    assert_int_equal(lrsa_stream_decoder_push(&d, t->byte_id[0xE4], out, sizeof out), 0);
    assert_int_equal(lrsa_stream_decoder_push(&d, t->byte_id['x'], out, sizeof out), 4);
    assert_string_equal(out, "\xEF\xBF\xBDx");
    lrsa_tokenizer_free(t);
}

static void test_added_tokens(void **state) {
    (void)state;
    lrsa_tokenizer *t = tok_fixture("smollm");
    int32_t start = lrsa_tokenizer_token_id(t, "<|im_start|>");
    int32_t end = lrsa_tokenizer_token_id(t, "<|im_end|>");
    assert_true(start >= 0 && end >= 0 && start != end);
    assert_true(lrsa_tokenizer_is_special(t, start));
    assert_false(lrsa_tokenizer_is_special(t, t->byte_id['a']));
    assert_false(lrsa_tokenizer_is_special(t, -1));
    assert_int_equal(lrsa_tokenizer_token_id(t, "<|no_such_token|>"), -1);
    const char *text = "<|im_start|>user\nhi<|im_end|>";
    lrsa_ids sp = {0}, plain = {0};
    lrsa_err e;
    assert_int_equal(lrsa_tokenizer_encode_with_special(t, text, strlen(text), &sp, &e), 0);
    assert_int_equal(lrsa_tokenizer_encode(t, text, strlen(text), &plain, &e), 0);
    assert_int_equal(sp.v[0], start);
    assert_int_equal(sp.v[sp.n - 1], end);
    for (int64_t i = 0; i < plain.n; i++) /* plain text never yields special ids */
        assert_false(lrsa_tokenizer_is_special(t, plain.v[i]));
    char *d = lrsa_tokenizer_decode(t, sp.v, sp.n, 1);
    assert_string_equal(d, "user\nhi");
    free(d);
    d = lrsa_tokenizer_decode(t, sp.v, sp.n, 0);
    assert_string_equal(d, text);
    free(d);
    d = lrsa_tokenizer_decode(t, plain.v, plain.n, 1);
    assert_string_equal(d, text);
    free(d);
    int32_t bad[2] = {t->byte_id['a'], 999999};
    d = lrsa_tokenizer_decode(t, bad, 2, 0);
    assert_string_equal(d, "a\xEF\xBF\xBD");
    free(d);
    lrsa_ids_free(&sp);
    lrsa_ids_free(&plain);
    lrsa_tokenizer_free(t);
}

/* Rebuilds each fixture through lrsa_tokenizer_from_vocab (as the GGUF importer does) and
 * requires identical ids on the whole corpus and the same checksum. */
static void test_from_vocab(void **state) {
    (void)state;
    tok_corpus c;
    tok_load_corpus(&c);
    for (int f = 0; f < 4; f++) {
        lrsa_tokenizer *ref = tok_fixture(FIXTURES[f]);
        char path[512];
        snprintf(path, sizeof path, LRSA_TEST_DATA "/tokenizer/%s/tokenizer.json", FIXTURES[f]);
        lrsa_err e;
        size_t n;
        char *txt = lrsa_read_file(path, &n, &e);
        cJSON *root = cJSON_Parse(txt);
        assert_non_null(root);
        int nv = lrsa_tokenizer_vocab_size(ref);
        const char **tokens = calloc((size_t)nv, sizeof *tokens);
        int32_t *types = calloc((size_t)nv, sizeof *types);
        cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "vocab")) {
            tokens[(int)it->valuedouble] = it->string;
            types[(int)it->valuedouble] = 1;
        }
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "added_tokens")) {
            int id = cJSON_GetObjectItem(it, "id")->valueint;
            tokens[id] = cJSON_GetObjectItem(it, "content")->valuestring;
            types[id] = cJSON_IsTrue(cJSON_GetObjectItem(it, "special")) ? 3 : 4;
        }
        cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
        int nm = cJSON_GetArraySize(merges);
        char **ms = calloc((size_t)nm, sizeof *ms);
        for (int i = 0; i < nm; i++) {
            cJSON *m = cJSON_GetArrayItem(merges, i);
            ms[i] = malloc(512);
            if (cJSON_IsString(m))
                snprintf(ms[i], 512, "%s", m->valuestring);
            else
                snprintf(ms[i], 512, "%s %s", cJSON_GetArrayItem(m, 0)->valuestring,
                         cJSON_GetArrayItem(m, 1)->valuestring);
        }
        lrsa_tokenizer *t =
            lrsa_tokenizer_from_vocab(tokens, nv, types, (const char **)ms, nm, GGUF_PRE[f], &e);
        if (!t) fail_msg("%s: %s", FIXTURES[f], e.msg);
        assert_string_equal(lrsa_tokenizer_checksum(t), lrsa_tokenizer_checksum(ref));
        for (int k = 0; k < c.n; k++) {
            lrsa_ids a = {0}, b = {0};
            assert_int_equal(lrsa_tokenizer_encode_with_special(t, c.text[k], c.len[k], &a, &e), 0);
            assert_int_equal(lrsa_tokenizer_encode_with_special(ref, c.text[k], c.len[k], &b, &e),
                             0);
            if (!tok_ids_equal(&a, &b)) fail_msg("%s case %d differs", FIXTURES[f], k);
            lrsa_ids_free(&a);
            lrsa_ids_free(&b);
        }
        /* bad input: unknown pre-tokenizer name, a merge with an unknown part */
        assert_null(
            lrsa_tokenizer_from_vocab(tokens, nv, types, (const char **)ms, nm, "nope", &e));
        assert_non_null(strstr(e.msg, "\"nope\" is not supported"));
        const char *bad_merge[1] = {"Ġ nosuchtoken"};
        assert_null(lrsa_tokenizer_from_vocab(tokens, nv, types, bad_merge, 1, GGUF_PRE[f], &e));
        assert_non_null(strstr(e.msg, "nosuchtoken"));
        for (int i = 0; i < nm; i++) free(ms[i]);
        free(ms);
        free(tokens);
        free(types);
        cJSON_Delete(root);
        free(txt);
        lrsa_tokenizer_free(t);
        lrsa_tokenizer_free(ref);
    }
    free(c.buf);
}

static void test_checksum(void **state) {
    (void)state;
    char sums[4][17];
    for (int f = 0; f < 4; f++) {
        lrsa_tokenizer *t = tok_fixture(FIXTURES[f]);
        const char *s = lrsa_tokenizer_checksum(t);
        assert_int_equal(strlen(s), 16);
        assert_int_equal(strspn(s, "0123456789abcdef"), 16);
        snprintf(sums[f], sizeof sums[f], "%s", s);
        for (int g = 0; g < f; g++) assert_string_not_equal(sums[f], sums[g]);
        lrsa_tokenizer_free(t);
        t = tok_fixture(FIXTURES[f]); /* stable across loads */
        assert_string_equal(lrsa_tokenizer_checksum(t), sums[f]);
        lrsa_tokenizer_free(t);
    }
}

/* Very long pieces (one regex match of 200k bytes) encode and round-trip, and the merge loop
 * stays O(n log n): its heap's comparisons, counted, are within at most 3n pushes of log2(3n)
 * and as many pops of 2 log2(3n) (a loop rescanning every pair per merge would need ~n^2/2).
 * A count, not a clock: the test does not depend on the machine's speed or load. */
static void test_long_pieces(void **state) {
    (void)state;
    lrsa_tokenizer *t = tok_fixture("llama3");
    size_t n = 200000;
    char *s = malloc(n + 1);
    const double bound = 9.0 * (double)n * log2(3.0 * (double)n);
    for (int pass = 0; pass < 3; pass++) {
        memset(s, pass == 0 ? ' ' : pass == 1 ? 'A' : '-', n);
        s[n] = 0;
        lrsa_ids ids = {0}, merged = {0};
        lrsa_err e;
        assert_int_equal(lrsa_tokenizer_encode(t, s, n, &ids, &e), 0);
        assert_true(ids.n > 0 && ids.n < (int64_t)n);
        int64_t ops = lrsa_bpe_merge_ops(t, (const unsigned char *)s, n, &merged);
        if (!(ops > 0 && (double)ops <= bound))
            fail_msg("pass %d: %lld heap comparisons for %zu bytes, bound %.0f", pass,
                     (long long)ops, n, bound);
        /* the whole string is one piece, so the counted loop produced the encoding */
        assert_int_equal(merged.n, ids.n);
        assert_memory_equal(merged.v, ids.v, (size_t)ids.n * sizeof *ids.v);
        lrsa_ids_free(&merged);
        char *d = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
        assert_string_equal(d, s);
        free(d);
        lrsa_ids_free(&ids);
    }
    free(s);
    lrsa_tokenizer_free(t);
}

/* Writes a mutated copy of the gpt2 fixture and expects the load to fail with `want`. */
typedef void (*mutate_fn)(cJSON *root);
static void expect_load_error(const char *tag, const char *content, mutate_fn mutate,
                              const char *want) {
    char dir[512], path[600];
    tu_tmpdir(dir, sizeof dir, "tok_bad");
    snprintf(path, sizeof path, "%s/%s.json", dir, tag);
    lrsa_err e;
    char *owned = NULL;
    if (mutate) {
        size_t n;
        char *txt = lrsa_read_file(LRSA_TEST_DATA "/tokenizer/gpt2/tokenizer.json", &n, &e);
        cJSON *root = cJSON_Parse(txt);
        mutate(root);
        content = owned = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        free(txt);
    }
    assert_int_equal(lrsa_write_file_atomic(path, content, strlen(content), &e), 0);
    lrsa_tokenizer *t = lrsa_tokenizer_load(path, &e);
    if (t) fail_msg("%s: loaded although it is broken", tag);
    if (!strstr(e.msg, want)) fail_msg("%s: message \"%s\" lacks \"%s\"", tag, e.msg, want);
    if (!strstr(e.msg, path) && !strstr(e.msg, tag))
        fail_msg("%s: message \"%s\" does not name the file", tag, e.msg);
    free(owned);
}

static cJSON *model_of(cJSON *root) {
    return cJSON_GetObjectItem(root, "model");
}
static void m_vocab_string_id(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "a",
                              cJSON_CreateString("7"));
}
static void m_vocab_huge_id(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "a",
                              cJSON_CreateNumber(1e12));
}
static void m_vocab_negative(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "a",
                              cJSON_CreateNumber(-3));
}
static void m_merge_unknown(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateString("zzqq Ġ"));
}
static void m_merge_result_unknown(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateString("Ā Ā"));
}
static void m_merge_bad_type(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateNumber(5));
}
static void m_merges_object(cJSON *r) {
    cJSON_ReplaceItemInObject(model_of(r), "merges", cJSON_CreateObject());
}
static void m_no_model(cJSON *r) {
    cJSON_DeleteItemFromObject(r, "model");
}
static void m_unigram(cJSON *r) {
    cJSON_ReplaceItemInObject(model_of(r), "type", cJSON_CreateString("Unigram"));
}
static void m_missing_byte(cJSON *r) {
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(model_of(r), "vocab"), "Ċ");
    cJSON_ReplaceItemInObject(model_of(r), "merges", cJSON_CreateArray()); /* none use it */
}
static void m_lowercase(cJSON *r) {
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "type", "Lowercase");
    cJSON_ReplaceItemInObject(r, "normalizer", n);
}
static void m_bad_regex(cJSON *r) {
    cJSON *p = cJSON_Parse("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(unclosed\"},"
                           "\"behavior\":\"Isolated\",\"invert\":false}");
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
    cJSON_AddItemToArray(list, p);
    cJSON_AddItemToArray(list, cJSON_Duplicate(cJSON_GetObjectItem(r, "pre_tokenizer"), 1));
    cJSON_ReplaceItemInObject(r, "pre_tokenizer", seq);
}
static void m_no_bytelevel(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "pre_tokenizer", cJSON_CreateNull());
}
static void m_added_bad(cJSON *r) {
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 0);
    cJSON_ReplaceItemInObject(a, "id", cJSON_CreateString("zero"));
}
static void m_dup_id(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "a",
                              cJSON_CreateNumber(66)); /* the id of "b" */
}

static void test_malformed_files(void **state) {
    (void)state;
    lrsa_err e;
    size_t n;
    char *full = lrsa_read_file(LRSA_TEST_DATA "/tokenizer/gpt2/tokenizer.json", &n, &e);
    full[n / 2] = 0;
    expect_load_error("truncated", full, NULL, "not a valid JSON object");
    free(full);
    expect_load_error("empty", "", NULL, "not a valid JSON object");
    expect_load_error("array", "[1,2]", NULL, "not a valid JSON object");
    expect_load_error("no_model", NULL, m_no_model, "no \"model\" object");
    expect_load_error("string_id", NULL, m_vocab_string_id,
                      "model.vocab[\"a\"] must be an integer");
    expect_load_error("huge_id", NULL, m_vocab_huge_id, "model.vocab[\"a\"] must be an integer");
    expect_load_error("negative_id", NULL, m_vocab_negative, "must be an integer id");
    expect_load_error("dup_id", NULL, m_dup_id, "used by two tokens");
    expect_load_error("merge_unknown", NULL, m_merge_unknown, "\"zzqq\", which is not in the");
    expect_load_error("merge_result", NULL, m_merge_result_unknown, "makes a token that is not");
    expect_load_error("merge_type", NULL, m_merge_bad_type, "model.merges[");
    expect_load_error("merges_object", NULL, m_merges_object, "model.merges an array");
    expect_load_error("unigram", NULL, m_unigram, "model.type is \"Unigram\"");
    expect_load_error("missing_byte", NULL, m_missing_byte, "no token for byte 0x0A");
    expect_load_error("lowercase", NULL, m_lowercase, "normalizer type \"Lowercase\"");
    expect_load_error("bad_regex", NULL, m_bad_regex, "does not compile");
    expect_load_error("no_bytelevel", NULL, m_no_bytelevel, "no ByteLevel step");
    expect_load_error("added_bad", NULL, m_added_bad, "added_tokens[0] needs an integer");
    assert_null(lrsa_tokenizer_load("/nonexistent/tokenizer.json", &e));
    assert_non_null(strstr(e.msg, "/nonexistent/tokenizer.json"));
    assert_null(lrsa_tokenizer_load_dir("/nonexistent_dir", &e));
    assert_non_null(strstr(e.msg, "has no tokenizer.json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_map),        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_fuzz_bytes),      cmocka_unit_test(test_stream_decode),
        cmocka_unit_test(test_added_tokens),    cmocka_unit_test(test_from_vocab),
        cmocka_unit_test(test_checksum),        cmocka_unit_test(test_long_pieces),
        cmocka_unit_test(test_malformed_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
