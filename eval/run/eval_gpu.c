/* One evaluation sample on the GPU KV cache (eval_gpu.h). Every step mirrors eval_dataset.c's
 * CPU path, so the records differ only by the GPU's bf16 arithmetic. */
#include "eval/run/eval_gpu.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/run/eval_dataset.h"
#include "kernels/device/device_buffer.h"

int lrsa_press_gpu_check(const lrsa_press_spec *s, const char *what, lrsa_err *e) {
    if (s->method == LRSA_PRESS_NONE || s->method == LRSA_PRESS_LAGKV) return 0;
    return lrsa_errorf(e,
                       "%s: only the full cache and --press lagkv run on the GPU; %s runs on "
                       "the CPU (use --device cpu)",
                       what, lrsa_press_method_name(s->method));
}

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* The first answer token (target-side mask, as the CPU's answer_span), or -1. */
static int64_t first_answer_token(const lrsa_gpu_sample *s) {
    for (int64_t t = 1; t < s->len; t++)
        if (s->mask[t]) return t;
    return -1;
}

void lrsa_gpu_sample_plan(const lrsa_gpu_sample *s, const lrsa_press_spec *spec,
                          lrsa_press_protocol proto, int64_t *max_tokens, int64_t *max_chunk,
                          int64_t *max_frozen) {
    const int64_t end = max64(s->len, s->want_match ? s->prompt_len + s->gen.max_new : 0);
    *max_tokens = max64(*max_tokens, end);
    /* the prefix's forwards: chunked LagKV S + 2L tokens at most, else all of it at once */
    int64_t piece = s->split;
    if (spec->method == LRSA_PRESS_LAGKV && spec->prefill == LRSA_PREFILL_CHUNKED) {
        const int64_t first = spec->lagkv.sink + 2 * (int64_t)spec->lagkv.lag;
        piece = first < s->split ? first : s->split;
    }
    /* the question (split to the answer or to the prompt's end) is one forward */
    const int64_t question = max64(s->prompt_len, first_answer_token(s)) - s->split;
    *max_chunk = max64(*max_chunk, max64(piece, max64(question, 1)));
    if (proto == LRSA_PROTOCOL_AGNOSTIC) *max_frozen = max64(*max_frozen, end - s->split);
}

static void gpu_step(void *ctx, int32_t id, float *logits) {
    lrsa_kv_cache_gpu_forward(ctx, &id, 1, logits, 0);
}

/* Rows kept, summed over layers and KV heads. */
static int64_t rows_of(const lrsa_model *m, const lrsa_kv_cache_gpu *c) {
    int64_t kept = 0;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++)
        for (int g = 0; g < m->cfg.num_key_value_heads; g++)
            kept += lrsa_kv_cache_gpu_head(c, l, g, NULL, NULL);
    return kept;
}

/* kept rows / rows of an uncompressed cache of the tokens seen (the CPU's kept_of) */
static double kept_of(const lrsa_model *m, const lrsa_kv_cache_gpu *c) {
    const int64_t full =
        lrsa_kv_cache_gpu_seen(c) * m->cfg.num_hidden_layers * m->cfg.num_key_value_heads;
    return full > 0 ? (double)rows_of(m, c) / (double)full : 1.0;
}

/* Live K/V bytes: every kept row's K and V, bf16. */
static size_t live_bytes(const lrsa_model *m, const lrsa_kv_cache_gpu *c) {
    return (size_t)rows_of(m, c) * 2 * (size_t)m->cfg.head_dim * sizeof(lrsa_bf16);
}

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

/* The needle rates on the freshly compressed prefix: the CPU's lrsa_kv_cache_needle_rates on a
 * host view of the GPU cache's kept positions. */
static void needle_rates(const lrsa_model *m, const lrsa_kv_cache_gpu *c, lrsa_gpu_sample *s) {
    const int Ln = m->cfg.num_hidden_layers, Hkv = m->cfg.num_key_value_heads;
    lrsa_kv_cache view = {0};
    view.n_layers = Ln;
    view.n_kv_heads = Hkv;
    view.head_dim = m->cfg.head_dim;
    view.seen = lrsa_kv_cache_gpu_seen(c);
    view.heads = lrsa_calloc((size_t)Ln * Hkv, sizeof(lrsa_kv_head));
    for (int l = 0; l < Ln; l++)
        for (int g = 0; g < Hkv; g++) {
            lrsa_kv_head *h = lrsa_kv_cache_head(&view, l, g);
            h->pos = lrsa_malloc(sizeof(int32_t) * (size_t)(view.seen + 1));
            h->len = h->cap = lrsa_kv_cache_gpu_head(c, l, g, h->pos, NULL);
        }
    lrsa_kv_cache_needle_rates(&view, s->needle, s->n_needle, &s->needle_kept,
                               &s->needle_tokens_kept);
    lrsa_kv_cache_free(&view); /* frees the positions (no K/V rows were copied) */
}

/* Teacher forcing on c: the question ids[split..first) in one forward, then each answer token
 * scored and fed as a decode step (lrsa_answer_nll_from_batch's steps). lg: the logits after the
 * prefix, overwritten. */
static int answer_nll(const lrsa_model *m, lrsa_kv_cache_gpu *c, lrsa_gpu_sample *s, float *lg,
                      lrsa_err *e) {
    int64_t first, last;
    if (lrsa_answer_span(m, s->ids, s->mask, s->len, &first, &last, e) != 0) return -1;
    if (s->split < 1 || s->split > first)
        return lrsa_errorf(e,
                           "answer NLL: the cache holds %lld tokens, but the answer starts at "
                           "token %lld; compress at most the prompt",
                           (long long)s->split, (long long)first);
    const int V = m->cfg.vocab_size;
    if (s->split < first) lrsa_kv_cache_gpu_forward(c, s->ids + s->split, first - s->split, lg, 0);
    for (int64_t t = first; t <= last; t++) {
        if (s->mask[t]) {
            s->nll += lrsa_token_nll(lg, V, s->ids[t]);
            s->nll_tokens++;
        }
        if (t < last) lrsa_kv_cache_gpu_forward(c, &s->ids[t], 1, lg, 0);
    }
    return 0;
}

int lrsa_gpu_sample_run(const lrsa_model *m, lrsa_kv_cache_gpu *c, const lrsa_press_spec *spec,
                        lrsa_press_protocol proto, lrsa_gpu_sample *s, lrsa_err *e) {
    const int V = m->cfg.vocab_size;
    s->nll = 0.0;
    s->nll_tokens = 0;
    s->kept = 1.0;
    s->needle_kept = s->needle_tokens_kept = 0.0;
    s->peak_bytes = 0;
    memset(&s->answer, 0, sizeof s->answer);
    lrsa_kv_cache_gpu_reset(c);
    float *logits0 = lrsa_malloc(sizeof(float) * (size_t)V);
    float *lg = lrsa_malloc(sizeof(float) * (size_t)V);
    const double t0 = lrsa_now();
    int rc = lrsa_kv_cache_gpu_prefill(c, s->ids, s->split, spec->prefill, logits0, 0, e);
    s->prefill_s = lrsa_now() - t0; /* the logits' download waited for the device */
    const int Hkv = m->cfg.num_key_value_heads;
    for (int l = 0; l < m->cfg.num_hidden_layers && rc == 0 && s->head_kept; l++)
        for (int g = 0; g < Hkv; g++)
            s->head_kept[l * Hkv + g] =
                (double)lrsa_kv_cache_gpu_head(c, l, g, NULL, NULL) / (double)s->split;
    if (rc == 0 && s->n_needle > 0) needle_rates(m, c, s);
    if (rc == 0 && proto == LRSA_PROTOCOL_AGNOSTIC) lrsa_kv_cache_gpu_freeze(c);
    /* both answers start from the compressed prefix: keep a copy for the second */
    const int both = s->want_nll && s->want_match;
    if (rc == 0 && both) lrsa_kv_cache_gpu_save(c);
    if (rc == 0 && s->want_nll) {
        memcpy(lg, logits0, sizeof(float) * (size_t)V);
        rc = answer_nll(m, c, s, lg, e);
        if (rc == 0) s->kept = kept_of(m, c);
        s->peak_bytes = live_bytes(m, c);
    }
    if (rc == 0 && s->want_match) {
        for (int64_t t = s->split; t < s->prompt_len && rc == 0; t++)
            if (s->ids[t] < 0 || s->ids[t] >= V)
                rc = lrsa_errorf(e, "generate: prompt token %lld has id %d, outside [0, %d)",
                                 (long long)t, s->ids[t], V);
        if (rc != 0) goto done;
        if (both) lrsa_kv_cache_gpu_restore(c);
        memcpy(lg, logits0, sizeof(float) * (size_t)V);
        if (s->split < s->prompt_len) /* the question, in one forward */
            lrsa_kv_cache_gpu_forward(c, s->ids + s->split, s->prompt_len - s->split, lg, 0);
        rc = lrsa_generate_decode(gpu_step, c, V, lg, &s->gen, NULL, NULL, &s->answer);
        if (rc == 0 && !s->want_nll) s->kept = kept_of(m, c);
        s->peak_bytes = max_sz(s->peak_bytes, live_bytes(m, c));
    }
done:
    free(logits0);
    free(lg);
    return rc;
}
