/* tokenizer.json parts of SentencePiece-style tokenizers (Llama 2, Mistral): the Prepend and
 * Replace normalizers, the Metaspace pre-tokenizer, the decoder steps, and the post-processor
 * template with add_bos_token/add_eos_token from tokenizer_config.json. */
#include <string.h>

#include "data/tokenizer_json_spm.h"

static const char *str_item(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* {"String": "..."} patterns only: a regex pattern is refused. */
static const char *string_pattern(const cJSON *o, const char *what, const char *path, lrsa_err *e) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s = str_item(pat, "String");
    if (!s)
        lrsa_errorf(e,
                    "%s: %s Replace needs \"pattern\": {\"String\": \"...\"} (a Regex pattern is "
                    "not supported)",
                    path, what);
    return s;
}

int lrsa_json_norm_step(lrsa_tokenizer *t, const cJSON *n, const char *ty, const char *path,
                        lrsa_err *e) {
    if (t->n_norm >= LRSA_MAX_NORM_STEPS)
        return lrsa_errorf(e, "%s: more than %d normalizer steps", path, LRSA_MAX_NORM_STEPS);
    lrsa_norm_step st = {0};
    if (strcmp(ty, "Prepend") == 0) {
        const char *p = str_item(n, "prepend");
        if (!p) return lrsa_errorf(e, "%s: normalizer Prepend needs a string \"prepend\"", path);
        st.kind = LRSA_NORM_PREPEND;
        st.content = lrsa_strdup(p);
    } else {
        const char *pat = string_pattern(n, "normalizer", path, e);
        const char *content = str_item(n, "content");
        if (!pat) return -1;
        if (!content)
            return lrsa_errorf(e, "%s: normalizer Replace needs a string \"content\"", path);
        st.kind = LRSA_NORM_REPLACE;
        st.pattern = lrsa_strdup(pat);
        st.content = lrsa_strdup(content);
    }
    t->norm[t->n_norm++] = st;
    return 0;
}

/* prepend_scheme (default "always"), reconciled with the older add_prefix_space flag the way
 * HF's deserializer does. */
static int prepend_scheme(const cJSON *o, const char *what, const char *path,
                          lrsa_prepend_scheme *out, lrsa_err *e) {
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
    *out = LRSA_PREPEND_ALWAYS;
    if (ps && !cJSON_IsNull(ps)) {
        const char *s = cJSON_IsString(ps) ? ps->valuestring : "";
        if (strcmp(s, "always") == 0)
            *out = LRSA_PREPEND_ALWAYS;
        else if (strcmp(s, "first") == 0)
            *out = LRSA_PREPEND_FIRST;
        else if (strcmp(s, "never") == 0)
            *out = LRSA_PREPEND_NEVER;
        else
            return lrsa_errorf(e,
                               "%s: %s Metaspace \"prepend_scheme\" must be \"always\", "
                               "\"first\" or \"never\"",
                               path, what);
    }
    if (cJSON_IsFalse(aps)) {
        if (*out != LRSA_PREPEND_NEVER)
            return lrsa_errorf(e,
                               "%s: %s Metaspace has \"add_prefix_space\": false but "
                               "\"prepend_scheme\" is not \"never\" (Hugging Face refuses this "
                               "too); set prepend_scheme to \"never\"",
                               path, what);
    }
    return 0;
}

static const char *metaspace_replacement(const cJSON *o, const char *what, const char *path,
                                         lrsa_err *e) {
    const char *r = str_item(o, "replacement");
    if (!r) lrsa_errorf(e, "%s: %s Metaspace needs a string \"replacement\"", path, what);
    return r;
}

int lrsa_json_metaspace(lrsa_tokenizer *t, const cJSON *p, const char *path, lrsa_err *e) {
    lrsa_prepend_scheme scheme;
    const char *rep = metaspace_replacement(p, "pre_tokenizer", path, e);
    if (!rep || prepend_scheme(p, "pre_tokenizer", path, &scheme, e)) return -1;
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(p, "split");
    if (lrsa_tokenizer_add_metaspace(t, rep, scheme, split ? cJSON_IsTrue(split) : 1, e))
        return lrsa_err_prefix(e, "%s: pre_tokenizer: ", path);
    return 0;
}

static int decoder_step(lrsa_tokenizer *t, const cJSON *d, const char *path, lrsa_err *e) {
    const char *ty = str_item(d, "type");
    if (ty && strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list))
            return lrsa_errorf(e, "%s: decoder Sequence needs a \"decoders\" array", path);
        const cJSON *c;
        cJSON_ArrayForEach(c, list) if (decoder_step(t, c, path, e)) return -1;
        return 0;
    }
    if (t->n_dec >= LRSA_MAX_DEC_STEPS)
        return lrsa_errorf(e, "%s: more than %d decoder steps", path, LRSA_MAX_DEC_STEPS);
    lrsa_dec_step st = {0};
    if (ty && strcmp(ty, "Replace") == 0) {
        const char *pat = string_pattern(d, "decoder", path, e);
        const char *content = str_item(d, "content");
        if (!pat) return -1;
        if (!content) return lrsa_errorf(e, "%s: decoder Replace needs a string \"content\"", path);
        st.kind = LRSA_DEC_REPLACE;
        st.pattern = lrsa_strdup(pat);
        st.content = lrsa_strdup(content);
    } else if (ty && strcmp(ty, "ByteFallback") == 0) {
        st.kind = LRSA_DEC_BYTE_FALLBACK;
    } else if (ty && strcmp(ty, "Fuse") == 0) {
        st.kind = LRSA_DEC_FUSE;
    } else if (ty && strcmp(ty, "Strip") == 0) {
        const char *content = str_item(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        int32_t cp;
        size_t n = content ? strlen(content) : 0;
        if (!n || lrsa_utf8_next((const unsigned char *)content, n, &cp) != (int)n || cp < 0 ||
            !cJSON_IsNumber(start) || !cJSON_IsNumber(stop) || start->valuedouble < 0 ||
            stop->valuedouble < 0 || start->valuedouble > 1e6 || stop->valuedouble > 1e6)
            return lrsa_errorf(e,
                               "%s: decoder Strip needs \"content\" (one character) and "
                               "\"start\", \"stop\" (counts)",
                               path);
        st.kind = LRSA_DEC_STRIP;
        st.content = lrsa_strdup(content);
        st.start = start->valueint;
        st.stop = stop->valueint;
    } else if (ty && strcmp(ty, "Metaspace") == 0) {
        const char *rep = metaspace_replacement(d, "decoder", path, e);
        if (!rep || prepend_scheme(d, "decoder", path, &st.prepend, e)) return -1;
        st.kind = LRSA_DEC_METASPACE;
        st.pattern = lrsa_strdup(rep);
    } else {
        return lrsa_errorf(e,
                           "%s: decoder type \"%s\" is not supported for a SentencePiece-style "
                           "tokenizer (supported: Sequence, Replace, ByteFallback, Fuse, Strip, "
                           "Metaspace)",
                           path, ty ? ty : "(missing)");
    }
    t->dec[t->n_dec++] = st;
    return 0;
}

int lrsa_json_decoder(lrsa_tokenizer *t, const cJSON *d, const char *path, lrsa_err *e) {
    t->has_decoder = d && !cJSON_IsNull(d);
    return t->has_decoder ? decoder_step(t, d, path, e) : 0;
}

/* The ids of one SpecialToken piece of a template, from its special_tokens map. */
static int template_ids(lrsa_tokenizer *t, const cJSON *tp, const char *name, int before,
                        const char *path, lrsa_err *e) {
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(tp, "special_tokens");
    const cJSON *ids =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name), "ids");
    if (!cJSON_IsArray(ids))
        return lrsa_errorf(e,
                           "%s: post_processor TemplateProcessing uses \"%s\", which its "
                           "\"special_tokens\" does not list with \"ids\"",
                           path, name);
    const cJSON *c;
    cJSON_ArrayForEach(c, ids) {
        int *n = before ? &t->n_tmpl_pre : &t->n_tmpl_post;
        int32_t *v = before ? t->tmpl_pre : t->tmpl_post;
        if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble >= t->n_vocab ||
            c->valuedouble != (double)c->valueint)
            return lrsa_errorf(e,
                               "%s: post_processor special token \"%s\" has an id outside "
                               "the vocabulary",
                               path, name);
        if (*n >= LRSA_MAX_TEMPLATE)
            return lrsa_errorf(e, "%s: post_processor adds more than %d ids on one side", path,
                               LRSA_MAX_TEMPLATE);
        v[(*n)++] = (int32_t)c->valueint;
    }
    return 0;
}

static int template_processing(lrsa_tokenizer *t, const cJSON *p, const char *path, lrsa_err *e) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    if (!cJSON_IsArray(single))
        return lrsa_errorf(e, "%s: post_processor TemplateProcessing needs a \"single\" array",
                           path);
    t->n_tmpl_pre = t->n_tmpl_post = 0;
    int seen_text = 0;
    const cJSON *piece;
    cJSON_ArrayForEach(piece, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(piece, "Sequence")) {
            seen_text = 1;
        } else if (str_item(sp, "id")) {
            if (template_ids(t, p, str_item(sp, "id"), !seen_text, path, e)) return -1;
        } else {
            return lrsa_errorf(e,
                               "%s: post_processor TemplateProcessing \"single\" holds an entry "
                               "that is neither {\"SpecialToken\": {\"id\": ...}} nor "
                               "{\"Sequence\": ...}",
                               path);
        }
    }
    return 0;
}

int lrsa_json_post_processor(lrsa_tokenizer *t, const cJSON *p, const char *path, lrsa_err *e) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = str_item(p, "type");
    if (ty && strcmp(ty, "TemplateProcessing") == 0) return template_processing(t, p, path, e);
    if (ty && strcmp(ty, "ByteLevel") == 0) return 0; /* only trims offsets: no ids */
    if (ty && strcmp(ty, "Sequence") == 0) {
        const cJSON *c;
        cJSON_ArrayForEach(
            c, cJSON_GetObjectItemCaseSensitive(
                   p, "processors")) if (lrsa_json_post_processor(t, c, path, e)) return -1;
        return 0;
    }
    return lrsa_errorf(e,
                       "%s: post_processor type \"%s\" is not supported (supported: "
                       "TemplateProcessing, ByteLevel, Sequence of those, or null)",
                       path, ty ? ty : "(missing)");
}

/* A special token named in tokenizer_config.json: a string or {"content": "..."}. */
static int32_t config_token(const lrsa_tokenizer *t, const cJSON *config, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : str_item(v, "content");
    return s ? lrsa_tokenizer_token_id(t, s) : -1;
}

void lrsa_json_config_template(lrsa_tokenizer *t, const cJSON *config) {
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(config, "add_bos_token");
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(config, "add_eos_token");
    if (!bos && !eos) return;
    /* transformers: a flag that is absent counts as false, and a flag whose token is unknown
     * is dropped */
    int32_t bos_id = config_token(t, config, "bos_token");
    int32_t eos_id = config_token(t, config, "eos_token");
    t->n_tmpl_pre = t->n_tmpl_post = 0;
    if (cJSON_IsTrue(bos) && bos_id >= 0) t->tmpl_pre[t->n_tmpl_pre++] = bos_id;
    if (cJSON_IsTrue(eos) && eos_id >= 0) t->tmpl_post[t->n_tmpl_post++] = eos_id;
}
