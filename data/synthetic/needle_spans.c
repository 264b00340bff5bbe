/* Token spans of the answer-bearing needles in a built synthetic sample (see needle_spans.h). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "data/synthetic/needle_spans.h"

/* The prompt's text as the streaming decoder emits it, with the index of the token that emitted
 * each byte (bytes held back until a character completes belong to the completing token). */
typedef struct decoded {
    char *text;
    int64_t *token_of;
    size_t n, cap;
} decoded;

static void append(decoded *d, const char *s, int len, int64_t token) {
    if (d->n + (size_t)len + 1 > d->cap) {
        d->cap = (d->n + (size_t)len + 1) * 2;
        d->text = lrsa_realloc(d->text, d->cap);
        d->token_of = lrsa_realloc(d->token_of, d->cap * sizeof(int64_t));
    }
    memcpy(d->text + d->n, s, (size_t)len);
    for (int i = 0; i < len; i++) d->token_of[d->n + (size_t)i] = token;
    d->n += (size_t)len;
    d->text[d->n] = 0;
}

int lrsa_synth_needle_spans(const lrsa_tokenizer *tok, const int32_t *ids, int64_t prompt_len,
                            const lrsa_synth_item *it, int64_t spans[][2], int *n_spans,
                            lrsa_err *e) {
    decoded d = {0};
    lrsa_stream_decoder sd;
    lrsa_stream_decoder_init(&sd, tok, 0);
    char out[1024];
    append(&d, "", 0, 0);
    for (int64_t t = 0; t < prompt_len; t++) {
        int len = lrsa_stream_decoder_push(&sd, ids[t], out, sizeof out);
        append(&d, out, len, t);
    }
    append(&d, out, lrsa_stream_decoder_flush(&sd, out, sizeof out), prompt_len - 1);
    /* Needles appear in the text in their listed order; each is searched after the previous. */
    *n_spans = 0;
    int rc = 0;
    const char *from = d.text;
    for (int i = 0; i < it->n_needles && rc == 0; i++) {
        const char *at = strstr(from, it->needles[i]);
        if (!at) {
            rc = lrsa_errorf(e,
                             "synthetic sample: needle %d (\"%.40s...\") is not in the decoded "
                             "prompt; the tokenizer does not round-trip the text (report this)",
                             i, it->needles[i]);
            break;
        }
        size_t first = (size_t)(at - d.text), last = first + strlen(it->needles[i]) - 1;
        from = at + strlen(it->needles[i]);
        if (!it->answer_needle[i]) continue;
        spans[*n_spans][0] = d.token_of[first];
        spans[*n_spans][1] = d.token_of[last] + 1;
        (*n_spans)++;
    }
    free(d.text);
    free(d.token_of);
    return rc;
}
