/* A GGUF SentencePiece vocabulary (tokenizer.ggml.model = llama: Llama 2, Mistral) ->
 * tokenizer.json in the form the Llama 2 and Mistral repositories ship. GGUF stores tokens,
 * scores and token types but (usually) no merges; the merges are derived from the scores the
 * way Hugging Face does (transformers' generate_merges): every split of a token into two
 * tokens is a merge, ranked by the token's score (higher first), then by the length of the
 * left part, then of the right part (longer first), then by token id, then by the ids of the
 * parts. With these merges BPE gives the ids `sentencepiece` gives (docs/TOKENIZER.md). */
#include <stdlib.h>
#include <string.h>

#include "convert/gguf_tokenizer_spm.h"

enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER = 4 };

typedef struct derived_merge {
    int32_t l, r;
    double score;
    int len_l, len_r; /* in characters */
    int64_t seq;      /* order of discovery: token id, then part ids */
} derived_merge;

typedef struct sorted_token {
    const char *s;
    int32_t id;
} sorted_token;

static int cmp_sorted(const void *a, const void *b) {
    return strcmp(((const sorted_token *)a)->s, ((const sorted_token *)b)->s);
}

typedef struct token_index {
    const char **tok;    /* by id */
    sorted_token *order; /* by string, for lookups */
    int64_t n;
} token_index;

static int32_t find_token(const token_index *x, const char *s) {
    int64_t lo = 0, hi = x->n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        int c = strcmp(x->order[mid].s, s);
        if (c == 0) return x->order[mid].id;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int utf8_chars(const char *s, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static int cmp_local(const void *a, const void *b) {
    const derived_merge *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

static int cmp_rank(const void *a, const void *b) {
    const derived_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->len_l != y->len_l) return y->len_l - x->len_l;
    if (x->len_r != y->len_r) return y->len_r - x->len_r;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* All merges implied by the vocabulary, best first. */
static derived_merge *derive_merges(const token_index *x, const lrsa_gguf_value *scores,
                                    int64_t *count) {
    int64_t n = 0, cap = 1024;
    derived_merge *m = lrsa_malloc((size_t)cap * sizeof *m);
    for (int64_t id = 0; id < x->n; id++) {
        const char *s = x->tok[id];
        size_t len = strlen(s);
        char *left = lrsa_malloc(len + 1);
        int64_t first = n;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split between characters */
            memcpy(left, s, k);
            left[k] = 0;
            int32_t l = find_token(x, left), r = l >= 0 ? find_token(x, s + k) : -1;
            if (r < 0) continue;
            if (n == cap) m = lrsa_realloc(m, (size_t)(cap *= 2) * sizeof *m);
            m[n++] = (derived_merge){.l = l,
                                     .r = r,
                                     .score = lrsa_gguf_array_float(scores, (uint64_t)id),
                                     .len_l = utf8_chars(s, k),
                                     .len_r = utf8_chars(s + k, len - k)};
        }
        free(left);
        qsort(m + first, (size_t)(n - first), sizeof *m, cmp_local);
        for (int64_t i = first; i < n; i++) m[i].seq = i;
    }
    qsort(m, (size_t)n, sizeof *m, cmp_rank);
    *count = n;
    return m;
}

static int valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
        if (*p >= 0xF8 || (*p >= 0x80 && *p < 0xC2)) return 0;
        for (int i = 1; i < k; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        p += k;
    }
    return 1;
}

static int build_index(const lrsa_gguf *g, const lrsa_gguf_value *tokens, token_index *x,
                       lrsa_err *e) {
    x->n = (int64_t)tokens->n;
    x->tok = lrsa_malloc((size_t)x->n * sizeof *x->tok);
    x->order = lrsa_malloc((size_t)x->n * sizeof *x->order);
    for (int64_t i = 0; i < x->n; i++) {
        x->tok[i] = tokens->items[i].s;
        x->order[i] = (sorted_token){x->tok[i], (int32_t)i};
        if (!x->tok[i][0] || !valid_utf8(x->tok[i]) || strlen(x->tok[i]) != tokens->items[i].len)
            return lrsa_errorf(e,
                               "%s: tokenizer.ggml.tokens[%lld] is empty or not valid UTF-8; "
                               "the file is corrupt",
                               g->path, (long long)i);
    }
    qsort(x->order, (size_t)x->n, sizeof *x->order, cmp_sorted);
    for (int64_t i = 1; i < x->n; i++)
        if (strcmp(x->order[i - 1].s, x->order[i].s) == 0)
            return lrsa_errorf(e,
                               "%s: tokenizer.ggml.tokens holds \"%.80s\" twice (ids %d and %d); "
                               "a vocabulary needs distinct tokens",
                               g->path, x->order[i].s, x->order[i - 1].id, x->order[i].id);
    return 0;
}

static cJSON *replace_step(const char *type_key, const char *pattern, const char *content) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type_key);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "pattern"), "String", pattern);
    cJSON_AddStringToObject(o, "content", content);
    return o;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *normalizer(int add_space_prefix) {
    cJSON *o = typed("Sequence");
    cJSON *l = cJSON_AddArrayToObject(o, "normalizers");
    if (add_space_prefix) {
        cJSON *p = typed("Prepend");
        cJSON_AddStringToObject(p, "prepend", "\xE2\x96\x81");
        cJSON_AddItemToArray(l, p);
    }
    cJSON_AddItemToArray(l, replace_step("Replace", " ", "\xE2\x96\x81"));
    return o;
}

static cJSON *decoder(int add_space_prefix) {
    cJSON *o = typed("Sequence");
    cJSON *l = cJSON_AddArrayToObject(o, "decoders");
    cJSON_AddItemToArray(l, replace_step("Replace", "\xE2\x96\x81", " "));
    cJSON_AddItemToArray(l, typed("ByteFallback"));
    cJSON_AddItemToArray(l, typed("Fuse"));
    if (add_space_prefix) { /* the space the normalizer put in front */
        cJSON *s = typed("Strip");
        cJSON_AddStringToObject(s, "content", " ");
        cJSON_AddNumberToObject(s, "start", 1);
        cJSON_AddNumberToObject(s, "stop", 0);
        cJSON_AddItemToArray(l, s);
    }
    return o;
}

static int type_of(const lrsa_gguf_spm_vocab *v, int64_t i) {
    return v->types ? (int)lrsa_gguf_array_int(v->types, (uint64_t)i) : TOKEN_NORMAL;
}

cJSON *lrsa_gguf_spm_tokenizer_json(const lrsa_gguf *g, const lrsa_gguf_spm_vocab *v, lrsa_err *e) {
    token_index x = {0};
    cJSON *root = NULL;
    if (build_index(g, v->tokens, &x, e)) goto done;
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int64_t i = 0; i < x.n; i++) {
        int ty = type_of(v, i); /* <unk> and control tokens are special, user-defined ones not */
        if (ty == TOKEN_UNKNOWN || ty == TOKEN_CONTROL || ty == TOKEN_USER)
            cJSON_AddItemToArray(added,
                                 lrsa_gguf_added_token((int)i, x.tok[i], ty != TOKEN_USER, 0));
    }
    cJSON_AddItemToObject(root, "normalizer", normalizer(v->add_space_prefix));
    cJSON_AddNullToObject(root, "pre_tokenizer");
    const char *bos = v->bos_id >= 0 && v->bos_id < x.n ? x.tok[v->bos_id] : NULL;
    const char *eos = v->eos_id >= 0 && v->eos_id < x.n ? x.tok[v->eos_id] : NULL;
    if (bos || eos)
        cJSON_AddItemToObject(root, "post_processor",
                              lrsa_gguf_template_processor(bos, v->bos_id, eos, v->eos_id));
    else
        cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", decoder(v->add_space_prefix));
    const char *unk = v->unk_id >= 0 && v->unk_id < x.n ? x.tok[v->unk_id] : NULL;
    cJSON *m = lrsa_gguf_bpe_model(root, unk, 1, 1, 0);
    cJSON *vo = cJSON_AddObjectToObject(m, "vocab");
    for (int64_t i = 0; i < x.n; i++)
        cJSON_AddItemToObject(vo, x.tok[i], cJSON_CreateNumber((double)i));
    cJSON *mg = cJSON_AddArrayToObject(m, "merges");
    if (v->merges) {
        for (uint64_t i = 0; i < v->merges->n; i++)
            cJSON_AddItemToArray(mg, cJSON_CreateString(v->merges->items[i].s));
    } else {
        int64_t n;
        derived_merge *dm = derive_merges(&x, v->scores, &n);
        for (int64_t i = 0; i < n; i++) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(x.tok[dm[i].l]));
            cJSON_AddItemToArray(pair, cJSON_CreateString(x.tok[dm[i].r]));
            cJSON_AddItemToArray(mg, pair);
        }
        free(dm);
    }
done:
    free(x.tok);
    free(x.order);
    return root;
}
