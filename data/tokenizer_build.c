/* Building a tokenizer from parts: tokens, merges, regex stages; then the derived tables and
 * the checksum. Shared by the tokenizer.json loader and the GGUF importer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

lrsa_tokenizer *lrsa_tokenizer_alloc(int n_vocab) {
    lrsa_tokenizer *t = lrsa_calloc(1, sizeof *t);
    t->n_vocab = n_vocab;
    t->token = lrsa_calloc((size_t)n_vocab, sizeof *t->token);
    t->bytes = lrsa_calloc((size_t)n_vocab, sizeof *t->bytes);
    t->bytes_len = lrsa_calloc((size_t)n_vocab, sizeof *t->bytes_len);
    t->special = lrsa_calloc((size_t)n_vocab, 1);
    lrsa_strmap_init(&t->vocab, (uint32_t)n_vocab);
    lrsa_pairmap_init(&t->merges, (uint32_t)n_vocab);
    t->merge_hash = LRSA_FNV1A64_OFFSET;
    t->unk_id = -1;
    lrsa_piece_cache_init(&t->cache);
    return t;
}

void lrsa_tokenizer_free(lrsa_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) {
        free(t->token[i]);
        free(t->bytes[i]);
    }
    free(t->token);
    free(t->bytes);
    free(t->bytes_len);
    free(t->special);
    lrsa_strmap_free(&t->vocab);
    lrsa_pairmap_free(&t->merges);
    for (int i = 0; i < t->n_stages; i++) {
        free(t->stages[i].pattern);
        pcre2_code_free(t->stages[i].re);
    }
    for (int i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm_content);
    }
    free(t->added);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].pattern);
        free(t->norm[i].content);
    }
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].pattern);
        free(t->dec[i].content);
    }
    free(t->chat_template);
    lrsa_piece_cache_free(&t->cache);
    free(t);
}

int lrsa_tokenizer_set_token(lrsa_tokenizer *t, int32_t id, const char *s, lrsa_err *e) {
    if (id < 0 || id >= t->n_vocab)
        return lrsa_errorf(e, "token \"%.80s\" has id %d, outside 0..%d", s, id, t->n_vocab - 1);
    size_t len = strlen(s);
    if (len == 0) return lrsa_errorf(e, "token id %d is an empty string", id);
    int32_t other = lrsa_strmap_get(&t->vocab, s, (uint32_t)len);
    if (other >= 0 && other != id)
        return lrsa_errorf(e, "token \"%.80s\" appears twice (ids %d and %d)", s, other, id);
    if (t->token[id] && strcmp(t->token[id], s) != 0)
        return lrsa_errorf(e, "id %d is used by two tokens (\"%.80s\" and \"%.80s\")", id,
                           t->token[id], s);
    if (other == id) return 0;
    t->token[id] = lrsa_strdup(s);
    lrsa_strmap_put(&t->vocab, t->token[id], (uint32_t)len, id);
    return 0;
}

int lrsa_tokenizer_add_merge(lrsa_tokenizer *t, const char *a, const char *b, int rank,
                             lrsa_err *e) {
    size_t la = strlen(a), lb = strlen(b);
    int32_t ia = lrsa_strmap_get(&t->vocab, a, (uint32_t)la);
    int32_t ib = lrsa_strmap_get(&t->vocab, b, (uint32_t)lb);
    if (ia < 0 || ib < 0)
        return lrsa_errorf(e,
                           "merge %d (\"%.80s\" + \"%.80s\") uses \"%.80s\", which is not in the "
                           "vocabulary; the merges and the vocabulary must come from the same "
                           "tokenizer",
                           rank, a, b, ia < 0 ? a : b);
    char small[512];
    char *ab = la + lb + 1 <= sizeof small ? small : lrsa_malloc(la + lb + 1);
    memcpy(ab, a, la);
    memcpy(ab + la, b, lb + 1);
    int32_t m = lrsa_strmap_get(&t->vocab, ab, (uint32_t)(la + lb));
    if (ab != small) free(ab);
    if (m < 0)
        return lrsa_errorf(e,
                           "merge %d (\"%.80s\" + \"%.80s\") makes a token that is not in the "
                           "vocabulary; the merges and the vocabulary must come from the same "
                           "tokenizer",
                           rank, a, b);
    lrsa_pairmap_put(&t->merges, ia, ib, rank, m);
    t->merge_hash = lrsa_fnv1a64(a, la + 1, t->merge_hash);
    t->merge_hash = lrsa_fnv1a64(b, lb + 1, t->merge_hash);
    t->n_merges++;
    return 0;
}

int lrsa_tokenizer_add_regex(lrsa_tokenizer *t, const char *pattern, int literal, lrsa_err *e) {
    if (t->n_stages >= LRSA_MAX_PRETOK_STAGES)
        return lrsa_errorf(e, "more than %d pre-tokenizer stages", LRSA_MAX_PRETOK_STAGES);
    int code;
    PCRE2_SIZE off;
    /* MATCH_INVALID_UTF: invalid bytes never match and fall into the gaps between matches,
     * so arbitrary input cannot crash or stop the splitter */
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0);
    /* the pattern as written is compiled first, so that errors point into it */
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
    if (re && !literal) {
        char *hf = lrsa_pattern_hf_classes(pattern);
        pcre2_code_free(re);
        re = pcre2_compile((PCRE2_SPTR)hf, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
        LRSA_CHECK(re != NULL, "the HF class rewrite broke a valid pattern: %s", hf);
        free(hf);
    }
    if (!re) {
        char msg[256];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        return lrsa_errorf(e,
                           "the split regex does not compile at offset %zu: %s (pattern: %.200s)",
                           (size_t)off, msg, pattern);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT (other CPUs) it still works */
    lrsa_pretok_stage *s = &t->stages[t->n_stages++];
    s->kind = LRSA_PRETOK_REGEX;
    s->pattern = lrsa_strdup(pattern);
    s->re = re;
    return 0;
}

static int cmp_added(const void *a, const void *b) {
    const lrsa_added_token *x = a, *y = b;
    if (x->len != y->len) return y->len - x->len; /* longest first */
    return x->id - y->id;
}

/* Decoded bytes of a token: each character through the inverse byte map, or, when some
 * character is no byte symbol (e.g. a space in an added token), the string itself. */
static void token_bytes(const char *s, char **out, int32_t *out_len) {
    size_t n = strlen(s);
    char *b = lrsa_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += (size_t)lrsa_utf8_next((const unsigned char *)s + i, n - i, &cp);
        int byte = lrsa_cp_to_byte(cp);
        if (byte < 0) {
            memcpy(b, s, n);
            o = n;
            break;
        }
        b[o++] = (char)byte;
    }
    b[o] = 0;
    *out = b;
    *out_len = (int32_t)o;
}

int lrsa_tokenizer_add_metaspace(lrsa_tokenizer *t, const char *replacement,
                                 lrsa_prepend_scheme prepend, int split, lrsa_err *e) {
    if (t->n_stages >= LRSA_MAX_PRETOK_STAGES)
        return lrsa_errorf(e, "more than %d pre-tokenizer stages", LRSA_MAX_PRETOK_STAGES);
    int32_t cp;
    size_t n = strlen(replacement);
    if (n == 0 || lrsa_utf8_next((const unsigned char *)replacement, n, &cp) != (int)n || cp < 0)
        return lrsa_errorf(e, "the Metaspace replacement \"%.20s\" is not one character",
                           replacement);
    lrsa_pretok_stage *s = &t->stages[t->n_stages++];
    s->kind = LRSA_PRETOK_METASPACE;
    s->pattern = lrsa_strdup(replacement);
    s->prepend = prepend;
    s->split = split;
    return 0;
}

/* The byte-level tables: each byte's symbol and id, and each token's decoded bytes. */
static int byte_level_tables(lrsa_tokenizer *t, const char *where, lrsa_err *e) {
    for (int b = 0; b < 256; b++) {
        int32_t cp = lrsa_byte_to_cp((unsigned char)b);
        t->bytemap_len[b] = (uint8_t)lrsa_utf8_encode(cp, t->bytemap[b]);
        t->byte_id[b] = lrsa_strmap_get(&t->vocab, t->bytemap[b], t->bytemap_len[b]);
        /* HF maps a byte without a symbol to the unknown token (SmolLM2 lacks 21 of them) */
        if (t->byte_id[b] < 0) t->byte_id[b] = t->unk_id;
        if (t->byte_id[b] < 0)
            return lrsa_errorf(e,
                               "%s: the vocabulary has no token for byte 0x%02X (U+%04X) and "
                               "no unk_token; a byte-level BPE vocabulary needs all 256 byte "
                               "symbols or an unknown token",
                               where, b, (unsigned)cp);
    }
    t->max_token_bytes = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        if (!t->token[i]) continue;
        token_bytes(t->token[i], &t->bytes[i], &t->bytes_len[i]);
        if (t->bytes_len[i] > t->max_token_bytes) t->max_token_bytes = t->bytes_len[i];
    }
    return 0;
}

int lrsa_tokenizer_finish(lrsa_tokenizer *t, const char *where, lrsa_err *e) {
    if (t->char_level ? lrsa_spm_finish(t, where, e) : byte_level_tables(t, where, e)) return -1;
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);

    /* The checksum covers everything that changes ids: vocab (id order), merges (rank order),
     * added tokens, normalizer and pre-tokenizer stages. FNV-1a 64 in hex. */
    uint64_t h = LRSA_FNV1A64_OFFSET;
    char num[64];
    for (int i = 0; i < t->n_vocab; i++) {
        if (!t->token[i]) continue;
        int k = snprintf(num, sizeof num, "%d\t", i);
        h = lrsa_fnv1a64(num, (size_t)k, h);
        h = lrsa_fnv1a64(t->token[i], strlen(t->token[i]) + 1, h);
    }
    int k = snprintf(num, sizeof num, "merges %d %016llx", t->n_merges,
                     (unsigned long long)t->merge_hash);
    h = lrsa_fnv1a64(num, (size_t)k, h);
    for (int i = 0; i < t->n_added; i++) {
        k = snprintf(num, sizeof num, "added %d %d ", t->added[i].id, t->added[i].special);
        h = lrsa_fnv1a64(num, (size_t)k, h);
        h = lrsa_fnv1a64(t->added[i].content, (size_t)t->added[i].len + 1, h);
    }
    k = snprintf(num, sizeof num, "nfc %d ignore_merges %d prefix %d unk %d %d", t->nfc,
                 t->ignore_merges, t->add_prefix_space, t->unk_id, t->fuse_unk);
    h = lrsa_fnv1a64(num, (size_t)k, h);
    for (int i = 0; i < t->n_stages; i++) {
        k = snprintf(num, sizeof num, "stage %d ", (int)t->stages[i].kind);
        h = lrsa_fnv1a64(num, (size_t)k, h);
        if (t->stages[i].pattern)
            h = lrsa_fnv1a64(t->stages[i].pattern, strlen(t->stages[i].pattern) + 1, h);
        if (t->stages[i].kind == LRSA_PRETOK_METASPACE) {
            k = snprintf(num, sizeof num, "prepend %d split %d", (int)t->stages[i].prepend,
                         t->stages[i].split);
            h = lrsa_fnv1a64(num, (size_t)k, h);
        }
    }
    /* character-level tokenizers only, so that byte-level checksums stay as they were */
    if (t->char_level) {
        k = snprintf(num, sizeof num, "char_level byte_fallback %d", t->byte_fallback);
        h = lrsa_fnv1a64(num, (size_t)k, h);
        for (int i = 0; i < t->n_norm; i++) {
            k = snprintf(num, sizeof num, "norm %d ", (int)t->norm[i].kind);
            h = lrsa_fnv1a64(num, (size_t)k, h);
            if (t->norm[i].pattern)
                h = lrsa_fnv1a64(t->norm[i].pattern, strlen(t->norm[i].pattern) + 1, h);
            h = lrsa_fnv1a64(t->norm[i].content, strlen(t->norm[i].content) + 1, h);
        }
        for (int i = 0; i < t->n_added; i++) {
            k = snprintf(num, sizeof num, "normalized %d %d", t->added[i].id,
                         t->added[i].normalized);
            h = lrsa_fnv1a64(num, (size_t)k, h);
        }
    }
    snprintf(t->checksum, sizeof t->checksum, "%016llx", (unsigned long long)h);
    return 0;
}

/* Registers an added token (its id must already carry the same string or be free). */
int lrsa_tokenizer_add_added(lrsa_tokenizer *t, int32_t id, const char *content, int special,
                             int lstrip, int rstrip, lrsa_err *e) {
    if (id < 0 || id >= t->n_vocab)
        return lrsa_errorf(e, "added token \"%.80s\" has id %d, outside 0..%d", content, id,
                           t->n_vocab - 1);
    if (t->token[id] && strcmp(t->token[id], content) != 0)
        return lrsa_errorf(e,
                           "added token \"%.80s\" has id %d, which the model vocabulary gives "
                           "to \"%.80s\"",
                           content, id, t->token[id]);
    if (lrsa_tokenizer_set_token(t, id, content, e)) return -1;
    t->added = lrsa_realloc(t->added, (size_t)(t->n_added + 1) * sizeof *t->added);
    t->added[t->n_added++] = (lrsa_added_token){.content = lrsa_strdup(content),
                                                .len = (int)strlen(content),
                                                .id = id,
                                                .special = special,
                                                .lstrip = lstrip,
                                                .rstrip = rstrip};
    t->special[id] = (uint8_t)(special != 0);
    return 0;
}
