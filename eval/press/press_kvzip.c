/* KVzip scoring (kv-compression.md section 2): a context row matters if the model attends to it
 * while it repeats the context. After the context is in the full cache, the reconstruction
 * prompt and the context again are fed in chunks; every context row of every (layer, KV head)
 * gets the max, over all reconstruction queries and the G query heads of its group, of its
 * softmax attention probability. The probabilities are those of the forward itself: softmax
 * over every row the query sees (the whole cache plus the chunk's rows causally). Blocks of
 * QBLOCK queries bound the buffer at QBLOCK x cache length; no [T, T] matrix. The chunk's rows
 * are dropped after each chunk, so the cache ends exactly as it started. */
#include "eval/press/press_kvzip.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/cache/cached_forward.h"
#include "eval/press/press_internal.h"

#define QBLOCK 64

int lrsa_kvzip_prompt_ids(const lrsa_tokenizer *t, lrsa_chat_format f, lrsa_ids *out, lrsa_err *e) {
    if (f == LRSA_CHAT_NONE) {
        const char *text = "\n\n" LRSA_KVZIP_PROMPT "\n";
        return lrsa_tokenizer_encode(t, text, strlen(text), out, e);
    }
    /* The suffix after a user message: build a one-message chat and cut after its content. */
    lrsa_chat_msg msg = {"user", LRSA_KVZIP_PROMPT};
    lrsa_ids full = {0}, content = {0};
    int rc = -1;
    if (lrsa_chat_build(t, f, &msg, 1, 1, &full, NULL, e) != 0 ||
        lrsa_tokenizer_encode(t, LRSA_KVZIP_PROMPT, strlen(LRSA_KVZIP_PROMPT), &content, e) != 0)
        goto done;
    int64_t at = -1;
    for (int64_t i = full.n - content.n; i >= 0 && at < 0; i--)
        if (memcmp(full.v + i, content.v, (size_t)content.n * sizeof(int32_t)) == 0) at = i;
    if (at < 0) {
        lrsa_errorf(e, "kvzip: the %s chat template did not keep the prompt text as is",
                    lrsa_chat_format_name(f));
        goto done;
    }
    if (lrsa_tokenizer_encode(t, "\n\n", 2, out, e) != 0) goto done;
    lrsa_ids_append(out, full.v + at, full.n - at);
    rc = 0;
done:
    lrsa_ids_free(&full);
    lrsa_ids_free(&content);
    return rc;
}

/* Observer state: the scores being maxed into and the context rows of each head. */
typedef struct kvzip_state {
    const int64_t *ctx_len; /* [layers * kv_heads] context rows (the rows scored) */
    float **score;          /* [layers * kv_heads] -> [ctx_len] running max */
    float *buf;             /* [QBLOCK * max rows] */
} kvzip_state;

static void kvzip_observe(void *user, const lrsa_kv_cache *c, int layer, const float *q,
                          int64_t q_stride, int n_q_heads, const int32_t *pos, int64_t N) {
    (void)pos;
    kvzip_state *st = user;
    const int D = c->head_dim, Hkv = c->n_kv_heads, G = n_q_heads / Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    for (int g = 0; g < Hkv; g++) {
        const int64_t hi = (int64_t)layer * Hkv + g;
        const lrsa_kv_head *kh = &c->heads[hi];
        const int64_t len0 = kh->len - N, nctx = st->ctx_len[hi];
        float *score = st->score[hi];
        for (int hg = 0; hg < G; hg++) {
            const int64_t h = (int64_t)g * G + hg;
            for (int64_t i0 = 0; i0 < N; i0 += QBLOCK) {
                const int64_t nb = N - i0 < QBLOCK ? N - i0 : QBLOCK;
                const int64_t nk = len0 + i0 + nb;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk, D, scale,
                            q + i0 * q_stride + h * D, (int)q_stride, kh->k, D, 0.0f, st->buf,
                            (int)nk);
                for (int64_t r = 0; r < nb; r++) {
                    float *row = st->buf + r * nk;
                    const int64_t vis = len0 + i0 + r + 1;
                    float mx = -INFINITY;
                    for (int64_t t = 0; t < vis; t++) mx = row[t] > mx ? row[t] : mx;
                    float sum = 0.0f;
                    for (int64_t t = 0; t < vis; t++) {
                        row[t] = expf(row[t] - mx);
                        sum += row[t];
                    }
                    const float inv = 1.0f / sum;
                    for (int64_t t = 0; t < nctx; t++) {
                        const float p = row[t] * inv;
                        if (p > score[t]) score[t] = p;
                    }
                }
            }
        }
    }
}

int lrsa_press_score_kvzip(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                           const int32_t *ids, int64_t n, lrsa_press_scores *out, lrsa_err *e) {
    if (!s->kvzip_prompt_ids || s->n_kvzip_prompt <= 0)
        return lrsa_errorf(e, "kvzip: the reconstruction prompt is not set; build it with "
                              "lrsa_kvzip_prompt_ids (eval/press/press_kvzip.h) and set "
                              "kvzip_prompt_ids / n_kvzip_prompt in the press spec");
    if (c->compress)
        return lrsa_errorf(e, "kvzip: scores a full cache; the cache compresses (LagKV)");
    if (n <= 0) return lrsa_errorf(e, "kvzip: the context is empty; nothing to score");
    const int64_t chunk = s->kvzip_chunk > 0 ? s->kvzip_chunk : 2048;
    const int64_t LH = (int64_t)c->n_layers * c->n_kv_heads;
    int64_t *ctx_len = lrsa_malloc((size_t)LH * sizeof(int64_t));
    int64_t max_len = 0;
    for (int64_t i = 0; i < LH; i++) {
        ctx_len[i] = c->heads[i].len;
        if (ctx_len[i] > max_len) max_len = ctx_len[i];
    }
    const int64_t seen0 = c->seen;
    if (lrsa_press_scores_alloc(out, c) != 0) {
        free(ctx_len);
        return lrsa_errorf(e, "kvzip: could not allocate the scores");
    }
    for (int64_t i = 0; i < LH; i++)
        for (int64_t t = 0; t < ctx_len[i]; t++) out->score[i][t] = 0.0f;
    const int64_t P = s->n_kvzip_prompt;
    const int64_t xmax = P + LRSA_KVZIP_OVERLAP + chunk;
    kvzip_state st = {ctx_len, out->score,
                      lrsa_malloc((size_t)QBLOCK * (max_len + xmax) * sizeof(float))};
    int32_t *x = lrsa_malloc((size_t)xmax * sizeof(int32_t));
    lrsa_layer_observer obs = {kvzip_observe, &st};
    const double t0 = lrsa_now();
    for (int64_t start = 0; start < n; start += chunk) {
        const int64_t end = start + chunk < n ? start + chunk : n;
        const int64_t ov = start < LRSA_KVZIP_OVERLAP ? start : LRSA_KVZIP_OVERLAP;
        memcpy(x, s->kvzip_prompt_ids, (size_t)P * sizeof(int32_t));
        memcpy(x + P, ids + start - ov, (size_t)(ov + end - start) * sizeof(int32_t));
        lrsa_cached_forward_observed(m, c, x, P + ov + end - start, NULL, 0, &obs);
        lrsa_kv_cache_truncate(c, seen0);
    }
    out->score_s = lrsa_now() - t0;
    for (int64_t i = 0; i < LH; i++)
        for (int64_t t = 0; t < ctx_len[i] && t < s->sink; t++) out->score[i][t] = INFINITY;
    free(x);
    free(st.buf);
    free(ctx_len);
    return 0;
}
