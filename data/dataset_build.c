/* One conversation -> one sample (see dataset_build.h). */
#include <stdlib.h>
#include <string.h>

#include "data/dataset_build.h"

void lrsa_sample_free(lrsa_sample *s) {
    lrsa_ids_free(&s->ids);
    lrsa_mask_free(&s->mask);
    memset(s, 0, sizeof *s);
}

int lrsa_sample_build(const lrsa_sample_builder *b, const lrsa_chat_msg *msgs, int n_msgs,
                      lrsa_sample *s, lrsa_err *e) {
    memset(s, 0, sizeof *s);
    lrsa_chat_msg *all = lrsa_malloc((size_t)(n_msgs + 1) * sizeof *all);
    int n = 0;
    if (b->system && b->system[0] && strcmp(msgs[0].role, "system") != 0)
        all[n++] = (lrsa_chat_msg){"system", b->system};
    memcpy(all + n, msgs, (size_t)n_msgs * sizeof *all);
    n += n_msgs;
    int rc = lrsa_chat_build(b->tok, b->fmt, all, n, 0, &s->ids, &s->mask, e);
    free(all);
    if (rc != 0) {
        lrsa_sample_free(s);
        return -1;
    }
    if (s->mask.n != s->ids.n) {
        lrsa_sample_free(s);
        return lrsa_errorf(e,
                           "chat template produced %lld ids but %lld mask entries (a bug in "
                           "data/chat)",
                           (long long)s->ids.n, (long long)s->mask.n);
    }
    /* The prompt ends where the last run of loss tokens (the final answer) begins: skip the
     * unmasked tail (e.g. ChatML's newline after <|im_end|>), then the masked answer. */
    int64_t t = s->ids.n;
    while (t > 0 && !s->mask.v[t - 1]) t--;
    if (t == 0) {
        lrsa_sample_free(s);
        return lrsa_errorf(e, "the answer produced no loss tokens (empty answer?); give a "
                              "non-empty assistant answer");
    }
    while (t > 0 && s->mask.v[t - 1]) t--;
    s->prompt_len = t;
    if (b->loss_last_only) memset(s->mask.v, 0, (size_t)t);
    return 0;
}

/* Replaces the span [begin, end) of msgs[k].content by head_text + tail_text. */
static char *splice(const char *content, size_t begin, size_t end, const char *head,
                    const char *tail) {
    size_t n = strlen(content), nh = strlen(head), nt = strlen(tail);
    char *out = lrsa_malloc(n - (end - begin) + nh + nt + 1);
    memcpy(out, content, begin);
    memcpy(out + begin, head, nh);
    memcpy(out + begin + nh, tail, nt);
    memcpy(out + begin + nh + nt, content + end, n - end + 1);
    return out;
}

int lrsa_sample_build_fit(const lrsa_sample_builder *b, const lrsa_chat_msg *msgs, int n_msgs,
                          int trunc_msg, size_t begin, size_t end, int64_t max_len, lrsa_sample *s,
                          int *truncated, lrsa_err *e) {
    *truncated = 0;
    if (lrsa_sample_build(b, msgs, n_msgs, s, e) != 0) return -1;
    if (max_len <= 0 || s->ids.n <= max_len) return 0;
    int64_t excess = s->ids.n - max_len;
    lrsa_sample_free(s);

    /* Cut at the token level of the span: keep its first and last tokens, decode both parts and
     * rebuild. Re-tokenising can merge across the cut, so repeat with a larger cut until the
     * whole sample fits. */
    const char *content = msgs[trunc_msg].content;
    lrsa_ids span = {0};
    if (lrsa_tokenizer_encode(b->tok, content + begin, end - begin, &span, e) != 0) return -1;
    lrsa_chat_msg *copy = lrsa_malloc((size_t)n_msgs * sizeof *copy);
    memcpy(copy, msgs, (size_t)n_msgs * sizeof *copy);
    int rc = 1;
    for (int attempt = 0; attempt < 16; attempt++) {
        int64_t keep = span.n - excess;
        if (keep < 0) break;
        int64_t head = keep - keep / 2, tail = keep / 2;
        char *h = lrsa_tokenizer_decode(b->tok, span.v, head, 0);
        char *t = lrsa_tokenizer_decode(b->tok, span.v + span.n - tail, tail, 0);
        char *cut = splice(content, begin, end, h ? h : "", t ? t : "");
        free(h);
        free(t);
        copy[trunc_msg].content = cut;
        int st = lrsa_sample_build(b, copy, n_msgs, s, e);
        free(cut);
        if (st != 0) {
            rc = -1;
            break;
        }
        if (s->ids.n <= max_len) {
            *truncated = 1;
            rc = 0;
            break;
        }
        excess += s->ids.n - max_len + attempt; /* grow the cut a little faster each round */
        lrsa_sample_free(s);
        if (keep == 0) break;
    }
    lrsa_ids_free(&span);
    free(copy);
    return rc;
}
