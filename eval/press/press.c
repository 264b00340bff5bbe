/* The press core: the cache a press runs on, freezing, and where the question starts in a chat
 * prompt (the agnostic protocol's split). The prefill that runs a press (observer, scoring,
 * one-call compression) is eval/run/prefill.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "eval/press/press_internal.h"

int lrsa_press_cache_init(lrsa_kv_cache *c, const lrsa_model *m, const lrsa_press_spec *s,
                          lrsa_err *e) {
    const lrsa_model_config *cfg = &m->cfg;
    return lrsa_kv_cache_init(c, cfg->num_hidden_layers, cfg->num_key_value_heads, cfg->head_dim,
                              s && s->method == LRSA_PRESS_LAGKV ? &s->lagkv : NULL, e);
}

void lrsa_press_freeze(lrsa_kv_cache *c) {
    c->compress = 0;
}

/* The text of one token (malloc'd, "" when it decodes to nothing). */
int64_t lrsa_press_question_start(const lrsa_tokenizer *tok, const int32_t *ids,
                                  int64_t prompt_len) {
    int32_t stop[8];
    const int n_stop = lrsa_chat_stop_ids(tok, lrsa_chat_detect(tok), stop, 8);
    int64_t user_end = prompt_len;
    for (int64_t t = prompt_len - 1; t >= 0 && user_end == prompt_len; t--)
        for (int i = 0; i < n_stop; i++)
            if (ids[t] == stop[i]) {
                user_end = t;
                break;
            }
    /* The turn's text starts after its last special token (the turn header). */
    int64_t turn = user_end;
    while (turn > 0 && !lrsa_tokenizer_is_special(tok, ids[turn - 1])) turn--;
    /* Decode the turn, remembering the byte offset where each token's text ends, so a "\n\n"
     * is found however the tokenizer splits it (one token, two, or glued to other text). */
    const int64_t n = user_end - turn;
    if (n < 2) return -1;
    int64_t *end = lrsa_malloc((size_t)n * sizeof *end);
    size_t len = 0, cap = 4096;
    char *text = lrsa_malloc(cap), piece[1024];
    lrsa_stream_decoder dec;
    lrsa_stream_decoder_init(&dec, tok, 0);
    for (int64_t t = 0; t < n; t++) {
        int k = lrsa_stream_decoder_push(&dec, ids[turn + t], piece, sizeof piece);
        if (k < 0) k = 0;
        if (len + (size_t)k + 1 > cap) {
            cap = 2 * (len + (size_t)k + 1);
            text = lrsa_realloc(text, cap);
        }
        memcpy(text + len, piece, (size_t)k);
        len += (size_t)k;
        end[t] = (int64_t)len;
    }
    int64_t qs = -1;
    for (size_t i = len; i >= 2; i--)
        if (text[i - 2] == '\n' && text[i - 1] == '\n') {
            /* the token whose text holds the second newline ends the context */
            for (int64_t t = 0; t < n; t++)
                if (end[t] >= (int64_t)i) {
                    qs = turn + t + 1;
                    break;
                }
            break;
        }
    free(text);
    free(end);
    return qs > 0 && qs < user_end ? qs : -1;
}
