/* Encoding (with or without added-token recognition), decoding, and the streaming decoder. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

int lrsa_tokenizer_encode(const lrsa_tokenizer *t, const char *text, size_t len, lrsa_ids *out,
                          lrsa_err *e) {
    if (t->char_level) return lrsa_spm_encode(t, text, len, 0, 1, out, e);
    return lrsa_pretok_encode(t, text, len, out, e);
}

typedef struct plain_ctx {
    const lrsa_tokenizer *t;
    const char *text;
    lrsa_ids *out;
} plain_ctx;

static int plain_pretok(void *ctx, size_t start, size_t end, lrsa_err *e) {
    plain_ctx *c = ctx;
    return lrsa_pretok_encode(c->t, c->text + start, end - start, c->out, e);
}

int lrsa_tokenizer_encode_with_special(const lrsa_tokenizer *t, const char *text, size_t len,
                                       lrsa_ids *out, lrsa_err *e) {
    if (t->char_level) return lrsa_spm_encode(t, text, len, 1, 1, out, e);
    plain_ctx c = {t, text, out};
    return lrsa_split_added(t, text, len, 0, plain_pretok, &c, out, e);
}

int lrsa_tokenizer_encode_hf(const lrsa_tokenizer *t, const char *text, size_t len, lrsa_ids *out,
                             lrsa_err *e) {
    lrsa_ids_append(out, t->tmpl_pre, t->n_tmpl_pre);
    if (lrsa_tokenizer_encode_with_special(t, text, len, out, e)) return -1;
    lrsa_ids_append(out, t->tmpl_post, t->n_tmpl_post);
    return 0;
}

static int id_ok(const lrsa_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->token[id];
}

char *lrsa_tokenizer_decode(const lrsa_tokenizer *t, const int32_t *ids, int64_t n,
                            int skip_special) {
    return lrsa_tokenizer_decode_len(t, ids, n, skip_special, NULL);
}

char *lrsa_tokenizer_decode_len(const lrsa_tokenizer *t, const int32_t *ids, int64_t n,
                                int skip_special, size_t *len) {
    if (t->char_level) return lrsa_spm_decode_n(t, ids, n, skip_special, len);
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) total += id_ok(t, ids[i]) ? (size_t)t->bytes_len[ids[i]] : 3;
    unsigned char *raw = lrsa_malloc(total + 1);
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!id_ok(t, ids[i])) { /* an id outside the vocabulary shows up as U+FFFD */
            memcpy(raw + o, "\xEF\xBF\xBD", 3);
            o += 3;
            continue;
        }
        if (skip_special && t->special[ids[i]]) continue;
        memcpy(raw + o, t->bytes[ids[i]], (size_t)t->bytes_len[ids[i]]);
        o += (size_t)t->bytes_len[ids[i]];
    }
    char *text = lrsa_malloc(3 * o + 1);
    size_t m = lrsa_utf8_lossy(raw, o, text);
    text[m] = 0;
    free(raw);
    if (len) *len = m;
    return text;
}

int32_t lrsa_tokenizer_token_id(const lrsa_tokenizer *t, const char *token) {
    return lrsa_strmap_get(&t->vocab, token, (uint32_t)strlen(token));
}

int lrsa_tokenizer_vocab_size(const lrsa_tokenizer *t) {
    return t->n_vocab;
}

int lrsa_tokenizer_is_special(const lrsa_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->special[id];
}

const char *lrsa_tokenizer_checksum(const lrsa_tokenizer *t) {
    return t->checksum;
}

void lrsa_stream_decoder_init(lrsa_stream_decoder *d, const lrsa_tokenizer *t, int skip_special) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->skip_special = skip_special;
}

/* Writes the lossy UTF-8 of raw[0..n) into out (at most cap-1 bytes, cut at a character
 * boundary so the output stays valid). */
static int emit(const unsigned char *raw, size_t n, char *out, size_t cap) {
    char small[512];
    char *text = 3 * n + 1 <= sizeof small ? small : lrsa_malloc(3 * n + 1);
    size_t m = lrsa_utf8_lossy(raw, n, text);
    if (cap == 0)
        m = 0;
    else if (m > cap - 1) {
        m = cap - 1;
        while (m > 0 && ((unsigned char)text[m] & 0xC0) == 0x80) m--;
    }
    if (cap) {
        memcpy(out, text, m);
        out[m] = 0;
    }
    if (text != small) free(text);
    return (int)m;
}

int lrsa_stream_decoder_push(lrsa_stream_decoder *d, int32_t id, char *out, size_t cap) {
    const lrsa_tokenizer *t = d->tok;
    if (t->char_level) return lrsa_spm_stream_push(d, id, out, cap);
    const unsigned char *tb = (const unsigned char *)"\xEF\xBF\xBD";
    size_t tn = 3;
    if (id_ok(t, id)) {
        if (d->skip_special && t->special[id]) {
            if (cap) out[0] = 0;
            return 0;
        }
        tb = (const unsigned char *)t->bytes[id];
        tn = (size_t)t->bytes_len[id];
    }
    size_t n = (size_t)d->n_pending + tn;
    unsigned char small[512];
    unsigned char *raw = n <= sizeof small ? small : lrsa_malloc(n);
    memcpy(raw, d->pending, (size_t)d->n_pending);
    memcpy(raw + d->n_pending, tb, tn);
    /* hold back the start of a character whose remaining bytes come with later tokens */
    int tail = lrsa_utf8_incomplete_tail(raw, n);
    int len = emit(raw, n - (size_t)tail, out, cap);
    memcpy(d->pending, raw + n - (size_t)tail, (size_t)tail);
    d->n_pending = tail;
    if (raw != small) free(raw);
    return len;
}

int lrsa_stream_decoder_flush(lrsa_stream_decoder *d, char *out, size_t cap) {
    if (d->tok->char_level) return lrsa_spm_stream_flush(d, out, cap);
    int len = emit(d->pending, (size_t)d->n_pending, out, cap);
    d->n_pending = 0;
    return len;
}
