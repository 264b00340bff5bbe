/* SentencePiece-style tokenizers (Llama 2, Mistral) against Hugging Face `tokenizers`
 * (tools/make_spm_fixtures.py): one small byte-fallback vocabulary, four pipelines (Llama 2's
 * Prepend+Replace normalizer; Metaspace with prepend scheme first, always+split, never). For
 * every corpus case and pipeline: the ids, the decoded text, the DecodeStream chunks, and
 * decoding of random id runs (invalid byte runs, special tokens) must equal HF's; the BOS
 * template and the GGUF llama-vocabulary conversion (against `sentencepiece`) too. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/gguf_convert.h"
#include "tok_test_common.h"

#define SPM_DIR LRSA_TEST_DATA "/tokenizer/spm"

static cJSON *read_json(const char *path) {
    lrsa_err e;
    size_t n;
    char *text = lrsa_read_file(path, &n, &e);
    if (!text) fail_msg("%s", e.msg);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!j) fail_msg("%s: not JSON", path);
    return j;
}

/* Writes root to a temporary tokenizer.json and loads it (NULL + message on failure). */
static lrsa_tokenizer *load_json(const cJSON *root, const char *tag, lrsa_err *e) {
    char dir[512], path[600];
    tu_tmpdir(dir, sizeof dir, tag);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *text = cJSON_PrintUnformatted(root);
    lrsa_err we;
    assert_int_equal(lrsa_write_file_atomic(path, text, strlen(text), &we), 0);
    free(text);
    return lrsa_tokenizer_load(path, e);
}

/* The committed Llama 2 tokenizer.json with one variant's normalizer, pre_tokenizer and
 * decoder put in (what the fixture script did before asking HF). */
static cJSON *variant_json(const char *variant) {
    cJSON *base = read_json(SPM_DIR "/tokenizer.json");
    cJSON *vars = read_json(SPM_DIR "/variants.json");
    cJSON *v = cJSON_GetObjectItem(vars, variant);
    assert_non_null(v);
    const char *keys[3] = {"normalizer", "pre_tokenizer", "decoder"};
    for (int i = 0; i < 3; i++)
        cJSON_ReplaceItemInObject(base, keys[i],
                                  cJSON_Duplicate(cJSON_GetObjectItem(v, keys[i]), 1));
    cJSON_Delete(vars);
    return base;
}

static lrsa_tokenizer *variant(const char *name) {
    cJSON *j = variant_json(name);
    lrsa_err e;
    lrsa_tokenizer *t = load_json(j, name, &e);
    cJSON_Delete(j);
    if (!t) fail_msg("%s: %s", name, e.msg);
    return t;
}

/* Streams ids one by one; each step's text must equal HF DecodeStream's chunk. want is
 * [text or null (= decoded), [byte length per step, -1 for no chunk]]. */
static int stream_matches(const lrsa_tokenizer *t, const lrsa_ids *ids, const cJSON *want,
                          const char *decoded) {
    const cJSON *text = cJSON_GetArrayItem(want, 0), *lens = cJSON_GetArrayItem(want, 1);
    const char *all = cJSON_IsString(text) ? text->valuestring : decoded;
    size_t at = 0, total = strlen(all); /* a NUL byte ends the comparison (cJSON strings) */
    lrsa_stream_decoder d;
    lrsa_stream_decoder_init(&d, t, 0);
    int ok = cJSON_GetArraySize(lens) == ids->n;
    for (int64_t i = 0; ok && i < ids->n; i++) {
        char buf[1024];
        int n = lrsa_stream_decoder_push(&d, ids->v[i], buf, sizeof buf);
        int w = cJSON_GetArrayItem(lens, (int)i)->valueint;
        ok = n == (w < 0 ? 0 : w);
        size_t cmp = at >= total ? 0 : (size_t)n < total - at ? (size_t)n : total - at;
        ok = ok && memcmp(buf, all + at, cmp) == 0;
        at += (size_t)n;
    }
    return ok;
}

static int has_added_text(const char *s, size_t n) {
    const char *names[7] = {"<s>",   "</s>",         "<unk>",     "<custom>",
                            "<sep>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 7; i++)
        if (tok_find(s, s + n, names[i], strlen(names[i]))) return 1;
    return 0;
}

static void check_variant(const char *name) {
    tok_corpus c;
    tok_load_corpus_file(&c, SPM_DIR "/corpus.txt");
    lrsa_tokenizer *t = variant(name);
    char path[512];
    snprintf(path, sizeof path, SPM_DIR "/expected_%s.txt", name);
    lrsa_err e;
    size_t n;
    char *exp = lrsa_read_file(path, &n, &e);
    if (!exp) fail_msg("%s", e.msg);
    snprintf(path, sizeof path, SPM_DIR "/decode_%s.json", name);
    cJSON *dec = read_json(path);
    const cJSON *dcases = cJSON_GetObjectItem(dec, "cases");
    const cJSON *dstream = cJSON_GetObjectItem(dec, "stream");
    assert_int_equal(cJSON_GetArraySize(dcases), c.n);
    int failures = 0;
    static int32_t want[4096];
    const char *line = exp;
    for (int k = 0; k < c.n; k++, line = tok_next_line(line)) {
        assert_non_null(line);
        int nw = tok_parse_ids(line, want, 4096);
        lrsa_ids got = {0};
        /* plain text: the same ids from the plain encode */
        failures +=
            tok_check_encode(t, name, &c, k, want, nw, !has_added_text(c.text[k], c.len[k]), &got);
        /* decode of HF's ids = HF's decode */
        lrsa_ids hf = {0};
        lrsa_ids_append(&hf, want, nw);
        const cJSON *wt = cJSON_GetArrayItem(dcases, k);
        char *case_text = lrsa_malloc(c.len[k] + 1);
        memcpy(case_text, c.text[k], c.len[k]);
        case_text[c.len[k]] = 0;
        const char *want_text = cJSON_IsString(wt) ? wt->valuestring : case_text;
        char *back = lrsa_tokenizer_decode(t, hf.v, hf.n, 0);
        if (strcmp(back, want_text) != 0) {
            failures++;
            fprintf(stderr, "%s case %d: decode [%s], HF [%s]\n", name, k, back, want_text);
        }
        if (!stream_matches(t, &hf, cJSON_GetArrayItem(dstream, k), want_text)) {
            failures++;
            fprintf(stderr, "%s case %d: stream chunks differ from DecodeStream\n", name, k);
        }
        free(back);
        free(case_text);
        lrsa_ids_free(&hf);
        lrsa_ids_free(&got);
    }
    assert_null(line); /* as many expected lines as cases */
    /* random id runs: byte runs valid and not, specials, with and without skip_special */
    const cJSON *r;
    int nrandom = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(dec, "random")) {
        const cJSON *ids = cJSON_GetArrayItem(r, 0), *id;
        lrsa_ids v = {0};
        cJSON_ArrayForEach(id, ids) lrsa_ids_push(&v, id->valueint);
        for (int skip = 0; skip < 2; skip++) {
            char *s = lrsa_tokenizer_decode(t, v.v, v.n, skip);
            const char *w = cJSON_GetArrayItem(r, 1 + skip)->valuestring;
            if (strcmp(s, w) != 0) {
                failures++;
                fprintf(stderr, "%s random %d skip %d: [%s], HF [%s]\n", name, nrandom, skip, s, w);
            }
            free(s);
        }
        /* null: HF's DecodeStream stops with an error on this run */
        if (!cJSON_IsNull(cJSON_GetArrayItem(r, 3)) &&
            !stream_matches(t, &v, cJSON_GetArrayItem(r, 3),
                            cJSON_GetArrayItem(r, 1)->valuestring)) {
            failures++;
            fprintf(stderr, "%s random %d: stream chunks differ from DecodeStream\n", name,
                    nrandom);
        }
        lrsa_ids_free(&v);
        nrandom++;
    }
    assert_true(nrandom >= 20);
    assert_true(c.n > 80);
    if (failures) fail_msg("%s: %d differences from Hugging Face", name, failures);
    cJSON_Delete(dec);
    free(exp);
    free(c.buf);
    lrsa_tokenizer_free(t);
}

static void test_variant(void **state) {
    check_variant(*state);
}

/* Llama 2 pipeline: plain text decodes back to itself (but a literal "▁" comes back as a
 * space, as in HF); encode_hf adds <s> as HF's template does. */
static void test_llama2_round_trip_and_bos(void **state) {
    (void)state;
    tok_corpus c;
    tok_load_corpus_file(&c, SPM_DIR "/corpus.txt");
    lrsa_err e;
    lrsa_tokenizer *t = lrsa_tokenizer_load(SPM_DIR "/tokenizer.json", &e);
    if (!t) fail_msg("%s", e.msg);
    size_t n;
    char *exp = lrsa_read_file(SPM_DIR "/expected_llama2.txt", &n, &e);
    const char *line = exp;
    static int32_t want[4096];
    for (int k = 0; k < c.n; k++, line = tok_next_line(line)) {
        lrsa_ids ids = {0};
        assert_int_equal(lrsa_tokenizer_encode(t, c.text[k], c.len[k], &ids, &e), 0);
        size_t blen;
        char *back = lrsa_tokenizer_decode_len(t, ids.v, ids.n, 0, &blen);
        if (!tok_find(c.text[k], c.text[k] + c.len[k], "\xE2\x96\x81", 3) &&
            (blen != c.len[k] || memcmp(back, c.text[k], c.len[k]) != 0 || back[blen] != 0))
            fail_msg("case %d: [%.*s] decodes to [%s]", k, (int)c.len[k], c.text[k], back);
        free(back);
        lrsa_ids_free(&ids);
        want[0] = 1; /* <s>, from the TemplateProcessing post-processor */
        int nw = 1 + tok_parse_ids(line, want + 1, 4095);
        assert_int_equal(lrsa_tokenizer_encode_hf(t, c.text[k], c.len[k], &ids, &e), 0);
        if (!tok_ids_match(&ids, want, nw)) fail_msg("case %d: encode_hf differs from HF", k);
        lrsa_ids_free(&ids);
    }
    free(exp);
    free(c.buf);
    lrsa_tokenizer_free(t);
}

/* A GGUF SentencePiece vocabulary (written by the `gguf` package from a `sentencepiece` BPE
 * model) converted to tokenizer.json encodes every corpus case as `sentencepiece` does. */
static void test_gguf_llama_vocab(void **state) {
    (void)state;
    lrsa_gguf g;
    lrsa_err e;
    if (lrsa_gguf_open(&g, SPM_DIR "/gguf_llama_vocab.gguf", &e)) fail_msg("%s", e.msg);
    lrsa_model_config cfg = {
        .bos_token_id = 1, .pad_token_id = -1, .n_eos = 1, .max_position_embeddings = 4096};
    cfg.eos_token_ids[0] = 2;
    char dir[512];
    tu_tmpdir(dir, sizeof dir, "gguf_spm");
    if (lrsa_gguf_write_tokenizer(&g, &cfg, dir, &e)) fail_msg("%s", e.msg);
    lrsa_gguf_close(&g);
    lrsa_tokenizer *t = lrsa_tokenizer_load_dir(dir, &e);
    if (!t) fail_msg("%s", e.msg);
    tok_corpus c;
    tok_load_corpus_file(&c, SPM_DIR "/corpus.txt");
    size_t n;
    char *exp = lrsa_read_file(SPM_DIR "/gguf_expected_ids.txt", &n, &e);
    const char *line = exp;
    static int32_t want[4096];
    int failures = 0;
    for (int k = 0; k < c.n; k++, line = tok_next_line(line)) {
        int nw = tok_parse_ids(line, want, 4096);
        lrsa_ids ids = {0};
        assert_int_equal(lrsa_tokenizer_encode(t, c.text[k], c.len[k], &ids, &e), 0);
        if (!tok_ids_match(&ids, want, nw)) {
            failures++;
            fprintf(stderr, "gguf case %d [%.*s]\n", k, (int)c.len[k], c.text[k]);
            tok_print_ids("sentencepiece", want, nw);
            tok_print_ids("lrsa", ids.v, ids.n);
        }
        lrsa_ids_free(&ids);
        /* tokenizer.ggml.add_bos_token: <s> first */
        assert_int_equal(lrsa_tokenizer_encode_hf(t, c.text[k], c.len[k], &ids, &e), 0);
        assert_int_equal(ids.v[0], 1);
        lrsa_ids_free(&ids);
    }
    if (failures) fail_msg("%d of %d cases differ from sentencepiece", failures, c.n);
    assert_int_equal(lrsa_tokenizer_token_id(t, "<0x41>"), 3 + 0x41);
    assert_true(lrsa_tokenizer_is_special(t, 1) && lrsa_tokenizer_is_special(t, 0));
    free(exp);
    free(c.buf);
    lrsa_tokenizer_free(t);
}

/* Cutting pieces before "▁" (when no token holds "x▁") gives the ids of BPE over the whole
 * text: one token "q▁z" (which no merge makes) switches the cut off; the ids must not move. */
static void test_cut_at_metaspace_is_exact(void **state) {
    (void)state;
    tok_corpus c;
    tok_load_corpus_file(&c, SPM_DIR "/corpus.txt");
    lrsa_err e;
    lrsa_tokenizer *cut = lrsa_tokenizer_load(SPM_DIR "/tokenizer.json", &e);
    cJSON *j = read_json(SPM_DIR "/tokenizer.json");
    cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab");
    cJSON_AddNumberToObject(vocab, "q\xE2\x96\x81z", lrsa_tokenizer_vocab_size(cut));
    lrsa_tokenizer *whole = load_json(j, "whole", &e);
    cJSON_Delete(j);
    if (!whole) fail_msg("%s", e.msg);
    for (int k = 0; k < c.n; k++) {
        lrsa_ids a = {0}, b = {0};
        assert_int_equal(lrsa_tokenizer_encode_with_special(cut, c.text[k], c.len[k], &a, &e), 0);
        assert_int_equal(lrsa_tokenizer_encode_with_special(whole, c.text[k], c.len[k], &b, &e), 0);
        if (!tok_ids_equal(&a, &b)) fail_msg("case %d: cutting before \"▁\" changed the ids", k);
        lrsa_ids_free(&a);
        lrsa_ids_free(&b);
    }
    free(c.buf);
    lrsa_tokenizer_free(cut);
    lrsa_tokenizer_free(whole);
}

/* Loads the base tokenizer.json changed by `edit`; it must fail with a message naming the file
 * and containing `want`. */
static void expect_error(const char *tag, void (*edit)(cJSON *), const char *want) {
    cJSON *j = read_json(SPM_DIR "/tokenizer.json");
    edit(j);
    lrsa_err e;
    lrsa_tokenizer *t = load_json(j, tag, &e);
    cJSON_Delete(j);
    if (t) fail_msg("%s: loaded although it is broken", tag);
    if (!strstr(e.msg, want)) fail_msg("%s: message \"%s\" lacks \"%s\"", tag, e.msg, want);
    if (!strstr(e.msg, "tokenizer.json")) fail_msg("%s: \"%s\" names no file", tag, e.msg);
}

static cJSON *parse(const char *s) {
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    return j;
}
static cJSON *model(cJSON *r) {
    return cJSON_GetObjectItem(r, "model");
}
static void e_regex_replace(cJSON *r) {
    cJSON_ReplaceItemInObject(
        r, "normalizer",
        parse("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\"x\"}"));
}
static void e_lowercase(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "normalizer", parse("{\"type\":\"Lowercase\"}"));
}
static void e_decoder(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "decoder", parse("{\"type\":\"WordPiece\",\"prefix\":\"##\"}"));
}
static void e_strip(cJSON *r) {
    cJSON_ReplaceItemInObject(
        r, "decoder", parse("{\"type\":\"Strip\",\"content\":\"ab\",\"start\":1,\"stop\":0}"));
}
static void e_scheme(cJSON *r) {
    cJSON_ReplaceItemInObject(
        r, "pre_tokenizer",
        parse("{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"sometimes\"}"));
}
static void e_prefix_flag(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "pre_tokenizer",
                              parse("{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_"
                                    "space\":false,\"prepend_scheme\":\"always\"}"));
}
static void e_with_bytelevel(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "pre_tokenizer",
                              parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_"
                                    "regex\":true}"));
}
static void e_no_fallback(cJSON *r) {
    cJSON_ReplaceItemInObject(model(r), "byte_fallback", cJSON_CreateFalse());
    cJSON_ReplaceItemInObject(model(r), "unk_token", cJSON_CreateNull());
}
static void e_missing_byte(cJSON *r) {
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(model(r), "vocab"), "<0x41>");
    cJSON_ReplaceItemInObject(model(r), "unk_token", cJSON_CreateNull());
}
static void e_unigram(cJSON *r) {
    cJSON_ReplaceItemInObject(model(r), "type", cJSON_CreateString("Unigram"));
}
static void e_template(cJSON *r) {
    cJSON_ReplaceItemInObject(
        r, "post_processor",
        parse(
            "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\","
            "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{}}"));
}

static void test_malformed(void **state) {
    (void)state;
    expect_error("regex_replace", e_regex_replace, "a Regex pattern is not supported");
    expect_error("lowercase", e_lowercase, "normalizer type \"Lowercase\"");
    expect_error("decoder", e_decoder, "decoder type \"WordPiece\"");
    expect_error("strip", e_strip, "decoder Strip needs \"content\" (one character)");
    expect_error("scheme", e_scheme, "\"prepend_scheme\" must be");
    expect_error("prefix_flag", e_prefix_flag, "\"add_prefix_space\": false");
    expect_error("with_bytelevel", e_with_bytelevel, "byte_fallback is true together with a");
    expect_error("no_fallback", e_no_fallback, "characters outside the vocabulary would be");
    expect_error("missing_byte", e_missing_byte, "no token <0x41>");
    expect_error("unigram", e_unigram, "model.type is \"Unigram\"");
    expect_error("template", e_template, "uses \"<bos>\", which its \"special_tokens\"");
}

/* GGUF vocabularies the converter refuses, with the key named. */
static void test_gguf_errors(void **state) {
    (void)state;
    const char *toks[4] = {"<unk>", "<s>", "</s>",
                           "\xE2\x96\x81"
                           "a"};
    const char *dups[4] = {"<unk>", "<s>", "<s>", "a"};
    struct {
        const char *model, *const *tokens;
        int scores;
        const char *want;
    } cases[3] = {{"t5", toks, 1, "tokenizer.ggml.model is 't5'"},
                  {"llama", toks, 0, "tokenizer.ggml.scores"},
                  {"llama", dups, 1, "holds \"<s>\" twice"}};
    lrsa_model_config cfg = {.bos_token_id = 1, .pad_token_id = -1, .n_eos = 1};
    for (int k = 0; k < 3; k++) {
        lrsa_gguf_writer *w = lrsa_gguf_writer_new(0);
        lrsa_gguf_writer_set_str(w, "general.architecture", "llama");
        lrsa_gguf_writer_set_str(w, "tokenizer.ggml.model", cases[k].model);
        lrsa_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", cases[k].tokens, 4);
        if (cases[k].scores) { /* an F32 array: element type, count, values */
            uint8_t raw[4 + 8 + 16] = {0};
            uint32_t ty = LRSA_GGUF_F32;
            uint64_t count = 4;
            float sc[4] = {0, 0, 0, -1};
            memcpy(raw, &ty, 4);
            memcpy(raw + 4, &count, 8);
            memcpy(raw + 12, sc, 16);
            lrsa_gguf_writer_set_raw(w, "tokenizer.ggml.scores", LRSA_GGUF_ARRAY, raw, sizeof raw);
        }
        size_t size;
        uint8_t *buf = lrsa_gguf_writer_to_buffer(w, &size);
        lrsa_gguf_writer_free(w);
        lrsa_gguf g;
        lrsa_err e;
        if (lrsa_gguf_open_mem(&g, buf, size, "vocab.gguf", &e)) fail_msg("%s", e.msg);
        char dir[512];
        tu_tmpdir(dir, sizeof dir, "gguf_spm_bad");
        assert_int_equal(lrsa_gguf_write_tokenizer(&g, &cfg, dir, &e), -1);
        if (!strstr(e.msg, cases[k].want)) fail_msg("case %d: \"%s\"", k, e.msg);
        lrsa_gguf_close(&g);
        free(buf);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TOK_FIXTURE_TEST("test_llama2", test_variant, "llama2"),
        TOK_FIXTURE_TEST("test_metaspace_first", test_variant, "metaspace_first"),
        TOK_FIXTURE_TEST("test_metaspace_always_split", test_variant, "metaspace_always"),
        TOK_FIXTURE_TEST("test_metaspace_never", test_variant, "metaspace_never"),
        cmocka_unit_test(test_llama2_round_trip_and_bos),
        cmocka_unit_test(test_gguf_llama_vocab),
        cmocka_unit_test(test_cut_at_metaspace_is_exact),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_gguf_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
