/* What every chat template uses: the id builder (see lrsa_chat_builder in data/chat_internal.h),
 * the format names and the check for a token a format needs. */
#include <stdlib.h>
#include <string.h>

#include "data/chat_internal.h"
#include "data/tokenizer_internal.h"

void lrsa_chat_builder_init(lrsa_chat_builder *b, const lrsa_tokenizer *t, lrsa_ids *ids,
                            lrsa_mask *mask) {
    memset(b, 0, sizeof *b);
    b->t = t;
    b->ids = ids;
    b->mask = mask;
}

void lrsa_chat_text(lrsa_chat_builder *b, const char *s, size_t n, uint8_t mask) {
    if (n == 0) return;
    if (b->len + n + 1 > b->cap) {
        b->cap = 2 * (b->len + n + 1);
        b->text = lrsa_realloc(b->text, b->cap);
    }
    memcpy(b->text + b->len, s, n);
    b->len += n;
    if (b->n_parts > 0 && b->part_mask[b->n_parts - 1] == mask) {
        b->part_end[b->n_parts - 1] = b->len;
        return;
    }
    LRSA_CHECK(b->n_parts < LRSA_CHAT_MAX_PARTS, "chat text with more than %d parts",
               LRSA_CHAT_MAX_PARTS);
    b->part_end[b->n_parts] = b->len;
    b->part_mask[b->n_parts++] = mask;
}

void lrsa_chat_str(lrsa_chat_builder *b, const char *s, uint8_t mask) {
    lrsa_chat_text(b, s, strlen(s), mask);
}

/* Plain text (no added tokens recognised); a SentencePiece-style tokenizer also needs to know
 * whether the text starts the input (Metaspace "first"). */
static int encode(const lrsa_chat_builder *b, const char *s, size_t n, lrsa_ids *out, lrsa_err *e) {
    if (b->t->char_level) return lrsa_spm_encode(b->t, s, n, 0, !b->emitted, out, e);
    return lrsa_tokenizer_encode(b->t, s, n, out, e);
}

/* Tokenizes the pending text as one text and gives each token the mask of the part it starts
 * in: part k starts at the first token where the ids of the whole text and those of the text
 * before part k part ways. */
static int flush(lrsa_chat_builder *b, lrsa_err *e) {
    if (b->len == 0) return 0;
    int64_t base = b->ids->n;
    if (encode(b, b->text, b->len, b->ids, e)) return -1;
    int64_t n = b->ids->n - base, start = 0;
    for (int k = 0; k < b->n_parts; k++) {
        int64_t next = n;
        if (k + 1 < b->n_parts && b->mask) {
            lrsa_ids before = {0};
            if (encode(b, b->text, b->part_end[k], &before, e)) return -1;
            next = 0;
            while (next < before.n && next < n && before.v[next] == b->ids->v[base + next]) next++;
            lrsa_ids_free(&before);
            if (next < start) next = start;
        }
        if (b->mask) lrsa_mask_push(b->mask, b->part_mask[k], next - start);
        start = next;
    }
    b->len = 0;
    b->n_parts = 0;
    b->emitted = 1;
    return 0;
}

int lrsa_chat_special(lrsa_chat_builder *b, int32_t id, uint8_t mask, lrsa_err *e) {
    if (flush(b, e)) return -1;
    lrsa_ids_push(b->ids, id);
    if (b->mask) lrsa_mask_push(b->mask, mask, 1);
    b->emitted = 1;
    return 0;
}

int lrsa_chat_finish(lrsa_chat_builder *b, lrsa_err *e) {
    int rc = flush(b, e);
    lrsa_chat_builder_free(b);
    return rc;
}

void lrsa_chat_builder_free(lrsa_chat_builder *b) {
    free(b->text);
    b->text = NULL;
    b->len = b->cap = 0;
}

const char *lrsa_chat_format_name(lrsa_chat_format f) {
    switch (f) {
        case LRSA_CHAT_CHATML_SMOLLM:
            return "chatml-smollm";
        case LRSA_CHAT_CHATML_QWEN:
            return "chatml-qwen";
        case LRSA_CHAT_LLAMA3:
            return "llama3";
        case LRSA_CHAT_NONE:
            return "none";
        case LRSA_CHAT_LLAMA2:
            return "llama2";
        case LRSA_CHAT_MISTRAL:
            return "mistral";
    }
    return "unknown";
}

int lrsa_chat_need_token(const lrsa_tokenizer *t, const char *tok, lrsa_chat_format f, int32_t *id,
                         lrsa_err *e) {
    *id = lrsa_tokenizer_token_id(t, tok);
    if (*id < 0)
        return lrsa_errorf(e,
                           "chat format %s needs the token %s, which this tokenizer lacks; "
                           "pick the format that matches the model (or none)",
                           lrsa_chat_format_name(f), tok);
    return 0;
}
