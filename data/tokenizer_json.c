/* Loading a tokenizer from tokenizer.json (formats.md 4.1, 4.3), a model directory, or raw
 * vocabulary arrays (the GGUF importer). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/tokenizer_internal.h"
#include "data/tokenizer_json_spm.h"

#define MAX_VOCAB (1 << 22) /* 4M ids: far above any real vocabulary (Qwen2: 152k) */

const char *const LRSA_RE_GPT2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char *const LRSA_RE_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char *const LRSA_RE_QWEN2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int json_flag(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *json_type_name(const cJSON *obj) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

/* A JSON number that is an integer id in range, or -1. */
static int32_t json_id(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_VOCAB) || d != (double)(int32_t)d) return -1;
    return (int32_t)d;
}

static int parse_normalizer(lrsa_tokenizer *t, const cJSON *n, const char *path, lrsa_err *e) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = json_type_name(n);
    if (ty && strcmp(ty, "NFC") == 0) {
        t->nfc = 1;
        return 0;
    }
    if (ty && strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        const cJSON *c;
        cJSON_ArrayForEach(c, list) if (parse_normalizer(t, c, path, e)) return -1;
        return 0;
    }
    /* Llama 2: Prepend("▁") + Replace(" " -> "▁"), for SentencePiece-style BPE only */
    if (ty && t->char_level && (strcmp(ty, "Prepend") == 0 || strcmp(ty, "Replace") == 0))
        return lrsa_json_norm_step(t, n, ty, path, e);
    if (ty && t->n_norm && strcmp(ty, "NFC") == 0)
        return lrsa_errorf(e, "%s: normalizer NFC after Prepend/Replace is not supported", path);
    return lrsa_errorf(e,
                       "%s: normalizer type \"%s\" is not supported (supported: NFC, as in "
                       "Qwen2; Prepend and Replace with a String pattern, as in Llama 2, for a "
                       "BPE without ByteLevel; or none)",
                       path, ty ? ty : "(missing)");
}

/* Whether the pre-tokenizer (or a Sequence in it) has a ByteLevel step. */
static int pretok_has_bytelevel(const cJSON *p) {
    const char *ty = json_type_name(p);
    if (ty && strcmp(ty, "ByteLevel") == 0) return 1;
    const cJSON *c;
    if (ty && strcmp(ty, "Sequence") == 0)
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(
                                  p, "pretokenizers")) if (pretok_has_bytelevel(c)) return 1;
    return 0;
}

static int parse_pretok(lrsa_tokenizer *t, const cJSON *p, const char *path, int *saw_bytelevel,
                        lrsa_err *e) {
    const char *ty = json_type_name(p);
    if (!ty)
        return lrsa_errorf(e,
                           "%s: pre_tokenizer entry without a string \"type\"; fix the file "
                           "or re-export it with Hugging Face tokenizers",
                           path);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return lrsa_errorf(e, "%s: pre_tokenizer Sequence needs a \"pretokenizers\" array",
                               path);
        const cJSON *c;
        cJSON_ArrayForEach(c, list) if (parse_pretok(t, c, path, saw_bytelevel, e)) return -1;
        return 0;
    }
    if (t->n_stages >= LRSA_MAX_PRETOK_STAGES)
        return lrsa_errorf(e, "%s: more than %d pre-tokenizer stages", path,
                           LRSA_MAX_PRETOK_STAGES);
    if (strcmp(ty, "Digits") == 0) {
        t->stages[t->n_stages++].kind = json_flag(p, "individual_digits", 0)
                                            ? LRSA_PRETOK_DIGITS_EACH
                                            : LRSA_PRETOK_DIGITS_RUNS;
        return 0;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        *saw_bytelevel = 1;
        if (json_flag(p, "add_prefix_space", 0))
            return lrsa_errorf(e,
                               "%s: ByteLevel pre_tokenizer with \"add_prefix_space\": true is "
                               "not supported (none of the supported model families uses it); "
                               "set it to false if the model was trained that way",
                               path);
        if (json_flag(p, "use_regex", 1)) return lrsa_tokenizer_add_regex(t, LRSA_RE_GPT2, 0, e);
        return 0;
    }
    if (strcmp(ty, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (!cJSON_IsString(re) && !cJSON_IsString(lit))
            return lrsa_errorf(e,
                               "%s: Split pre_tokenizer needs \"pattern\": {\"Regex\": \"...\"} "
                               "or {\"String\": \"...\"}",
                               path);
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
            return lrsa_errorf(e,
                               "%s: Split behavior \"%s\" is not supported (only \"Isolated\", "
                               "as in Llama-3 and Qwen2)",
                               path, cJSON_IsString(beh) ? beh->valuestring : "(missing)");
        if (json_flag(p, "invert", 0))
            return lrsa_errorf(e, "%s: Split with \"invert\": true is not supported", path);
        const char *s = cJSON_IsString(re) ? re->valuestring : lit->valuestring;
        if (lrsa_tokenizer_add_regex(t, s, !cJSON_IsString(re), e))
            return lrsa_err_prefix(e, "%s: pre_tokenizer: ", path);
        return 0;
    }
    if (strcmp(ty, "Metaspace") == 0) {
        if (!t->char_level)
            return lrsa_errorf(e,
                               "%s: a Metaspace pre_tokenizer cannot be combined with "
                               "ByteLevel",
                               path);
        return lrsa_json_metaspace(t, p, path, e);
    }
    return lrsa_errorf(e,
                       "%s: pre_tokenizer type \"%s\" is not supported (supported: Sequence, "
                       "Split, Digits, ByteLevel, Metaspace)",
                       path, ty);
}

/* The largest id in model.vocab and added_tokens, checking their types on the way. */
static int scan_ids(const cJSON *vocab, const cJSON *added, const char *path, int *max_id,
                    lrsa_err *e) {
    *max_id = -1;
    const cJSON *c;
    cJSON_ArrayForEach(c, vocab) {
        int32_t id = json_id(c);
        if (id < 0)
            return lrsa_errorf(e,
                               "%s: model.vocab[\"%.80s\"] must be an integer id in 0..%d; the "
                               "file is damaged or not a tokenizer.json",
                               path, c->string ? c->string : "?", MAX_VOCAB - 1);
        if (id > *max_id) *max_id = id;
    }
    int i = 0;
    cJSON_ArrayForEach(c, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        int32_t id = json_id(cJSON_GetObjectItemCaseSensitive(c, "id"));
        if (id < 0 || !cJSON_IsString(content))
            return lrsa_errorf(e,
                               "%s: added_tokens[%d] needs an integer \"id\" in 0..%d and a "
                               "string \"content\"",
                               path, i, MAX_VOCAB - 1);
        if (id > *max_id) *max_id = id;
        i++;
    }
    return 0;
}

static int parse_merges(lrsa_tokenizer *t, const cJSON *merges, const char *path, lrsa_err *e) {
    int rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        int rc;
        if (cJSON_IsString(m)) {
            /* "a b": split at the first space (the parts hold no spaces: space is byte-mapped) */
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1])
                return lrsa_errorf(e, "%s: model.merges[%d] = \"%.80s\" is not \"left right\"",
                                   path, rank, s);
            size_t la = (size_t)(sp - s);
            char *a = lrsa_malloc(la + 1);
            memcpy(a, s, la);
            a[la] = 0;
            rc = lrsa_tokenizer_add_merge(t, a, sp + 1, rank, e);
            free(a);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            rc = lrsa_tokenizer_add_merge(t, cJSON_GetArrayItem(m, 0)->valuestring,
                                          cJSON_GetArrayItem(m, 1)->valuestring, rank, e);
        } else {
            return lrsa_errorf(e,
                               "%s: model.merges[%d] must be a \"left right\" string or a "
                               "[\"left\", \"right\"] array",
                               path, rank);
        }
        if (rc) return lrsa_err_prefix(e, "%s: model.merges: ", path);
        rank++;
    }
    return 0;
}

static lrsa_tokenizer *from_json(const cJSON *root, const char *path, lrsa_err *e) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        lrsa_errorf(e, "%s: no \"model\" object; is this a Hugging Face tokenizer.json?", path);
        return NULL;
    }
    const char *ty = json_type_name(model);
    if (ty && strcmp(ty, "BPE") != 0) {
        lrsa_errorf(e,
                    "%s: model.type is \"%s\"; only \"BPE\" tokenizers (byte-level, or "
                    "SentencePiece-style with byte_fallback) are supported%s",
                    path, ty,
                    strcmp(ty, "Unigram") == 0
                        ? " (a SentencePiece Unigram model, such as T5's, is not: it has no "
                          "merges)"
                        : "");
        return NULL;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        lrsa_errorf(e, "%s: model.vocab must be an object {token: id} and model.merges an array",
                    path);
        return NULL;
    }
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added)) {
        lrsa_errorf(e, "%s: \"added_tokens\" must be an array", path);
        return NULL;
    }
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    if ((cJSON_IsString(prefix) && prefix->valuestring[0]) ||
        (cJSON_IsString(suffix) && suffix->valuestring[0])) {
        lrsa_errorf(e, "%s: continuing_subword_prefix / end_of_word_suffix are not supported",
                    path);
        return NULL;
    }
    int max_id;
    if (scan_ids(vocab, added, path, &max_id, e)) return NULL;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    /* without a ByteLevel step the vocabulary holds text: a SentencePiece-style BPE */
    int char_level = !pretok_has_bytelevel(pre);
    if (char_level && json_flag(model, "byte_fallback", 0) == 0 &&
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(model, "unk_token"))) {
        lrsa_errorf(e,
                    "%s: the pre_tokenizer has no ByteLevel step and model.byte_fallback is not "
                    "true (nor is there a model.unk_token): this is neither a byte-level BPE "
                    "(GPT-2, SmolLM, Llama-3, Qwen2) nor a SentencePiece-style BPE with byte "
                    "fallback (Llama 2, Mistral); characters outside the vocabulary would be "
                    "dropped",
                    path);
        return NULL;
    }
    if (!char_level && json_flag(model, "byte_fallback", 0)) {
        lrsa_errorf(e,
                    "%s: model.byte_fallback is true together with a ByteLevel "
                    "pre_tokenizer; a byte-level vocabulary needs no byte fallback: set one of "
                    "them to false",
                    path);
        return NULL;
    }
    if (!char_level && max_id < 255) {
        lrsa_errorf(e,
                    "%s: the vocabulary has %d tokens; a byte-level BPE needs at least the 256 "
                    "byte symbols",
                    path, max_id + 1);
        return NULL;
    }
    lrsa_tokenizer *t = lrsa_tokenizer_alloc(max_id + 1);
    t->ignore_merges = json_flag(model, "ignore_merges", 0);
    t->char_level = char_level;
    t->byte_fallback = json_flag(model, "byte_fallback", 0);
    const cJSON *c;
    cJSON_ArrayForEach(c, vocab) {
        if (lrsa_tokenizer_set_token(t, json_id(c), c->string, e)) {
            lrsa_err_prefix(e, "%s: model.vocab: ", path);
            goto fail;
        }
    }
    cJSON_ArrayForEach(c, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        int special = json_flag(c, "special", 0);
        if (lrsa_tokenizer_add_added(t, json_id(cJSON_GetObjectItemCaseSensitive(c, "id")),
                                     content->valuestring, special, json_flag(c, "lstrip", 0),
                                     json_flag(c, "rstrip", 0), e)) {
            lrsa_err_prefix(e, "%s: added_tokens: ", path);
            goto fail;
        }
        /* HF's AddedToken default: special tokens match the raw text, others the normalized */
        t->added[t->n_added - 1].normalized = char_level && json_flag(c, "normalized", !special);
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        t->unk_id = lrsa_tokenizer_token_id(t, unk->valuestring);
        if (t->unk_id < 0) {
            lrsa_errorf(e, "%s: model.unk_token \"%.80s\" is not in the vocabulary", path,
                        unk->valuestring);
            goto fail;
        }
        t->fuse_unk = json_flag(model, "fuse_unk", 0);
    }
    if (parse_merges(t, merges, path, e)) goto fail;
    if (parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path, e))
        goto fail;
    int saw_bytelevel = 0;
    if (pre && !cJSON_IsNull(pre) && parse_pretok(t, pre, path, &saw_bytelevel, e)) goto fail;
    if (char_level &&
        lrsa_json_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), path, e))
        goto fail;
    /* byte-level files keep loading whatever their post-processor (it was never read) */
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (lrsa_json_post_processor(t, post, path, e) && char_level) goto fail;
    if (lrsa_tokenizer_finish(t, path, e)) goto fail;
    return t;
fail:
    lrsa_tokenizer_free(t);
    return NULL;
}

static cJSON *parse_json_file(const char *path, lrsa_err *e) {
    size_t n;
    char *text = lrsa_read_file(path, &n, e);
    if (!text) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        long at = end ? (long)(end - text) : -1;
        lrsa_errorf(e,
                    "%s: not a valid JSON object (parse stopped at byte %ld of %zu); the file "
                    "is truncated or damaged: download or export it again",
                    path, at, n);
        cJSON_Delete(root);
        root = NULL;
    }
    free(text);
    return root;
}

lrsa_tokenizer *lrsa_tokenizer_load(const char *path, lrsa_err *e) {
    cJSON *root = parse_json_file(path, e);
    if (!root) return NULL;
    lrsa_tokenizer *t = from_json(root, path, e);
    cJSON_Delete(root);
    return t;
}

/* tokenizer_config.json: the chat template (for lrsa_chat_detect) and add_bos_token /
 * add_eos_token (for lrsa_tokenizer_encode_hf). */
static void read_tokenizer_config(lrsa_tokenizer *t, const char *path) {
    lrsa_err ignored;
    if (!lrsa_file_exists(path)) return;
    cJSON *root = parse_json_file(path, &ignored);
    if (!root) return;
    lrsa_json_config_template(t, root);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(ct)) {
        t->chat_template = lrsa_strdup(ct->valuestring);
    } else if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": "..."}, ...] */
        const cJSON *c;
        cJSON_ArrayForEach(c, ct) {
            const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(c, "template");
            if (cJSON_IsString(tpl) && !t->chat_template)
                t->chat_template = lrsa_strdup(tpl->valuestring);
        }
    }
    cJSON_Delete(root);
}

lrsa_tokenizer *lrsa_tokenizer_load_dir(const char *dir, lrsa_err *e) {
    char path[4096];
    lrsa_path_join(path, sizeof path, dir, "tokenizer.json");
    if (!lrsa_file_exists(path)) {
        lrsa_errorf(e,
                    "%s has no tokenizer.json; point to a Hugging Face model directory, or "
                    "create one with `lrsa convert`",
                    dir);
        return NULL;
    }
    lrsa_tokenizer *t = lrsa_tokenizer_load(path, e);
    if (!t) return NULL;
    lrsa_path_join(path, sizeof path, dir, "tokenizer_config.json");
    read_tokenizer_config(t, path);
    return t;
}

/* GGUF `tokenizer.ggml.pre` names -> pipeline (what llama.cpp's converter writes). */
static int setup_pre(lrsa_tokenizer *t, const char *pre, lrsa_err *e) {
    if (!pre || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2") || !strcmp(pre, "default"))
        return lrsa_tokenizer_add_regex(t, LRSA_RE_GPT2, 0, e);
    if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder")) {
        t->stages[t->n_stages++].kind = LRSA_PRETOK_DIGITS_EACH;
        return lrsa_tokenizer_add_regex(t, LRSA_RE_GPT2, 0, e);
    }
    if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama-v3")) {
        t->ignore_merges = 1;
        return lrsa_tokenizer_add_regex(t, LRSA_RE_LLAMA3, 0, e);
    }
    if (!strcmp(pre, "qwen2")) {
        t->nfc = 1;
        return lrsa_tokenizer_add_regex(t, LRSA_RE_QWEN2, 0, e);
    }
    return lrsa_errorf(e,
                       "pre-tokenizer \"%s\" is not supported (supported: gpt2, smollm, "
                       "llama-bpe/llama3, qwen2)",
                       pre);
}

lrsa_tokenizer *lrsa_tokenizer_from_vocab(const char **tokens, int n_tokens,
                                          const int32_t *token_types, const char **merges,
                                          int n_merges, const char *pre_name, lrsa_err *e) {
    if (n_tokens < 256 || n_tokens > MAX_VOCAB) {
        lrsa_errorf(e, "vocabulary of %d tokens: a byte-level BPE needs 256..%d", n_tokens,
                    MAX_VOCAB);
        return NULL;
    }
    lrsa_tokenizer *t = lrsa_tokenizer_alloc(n_tokens);
    for (int i = 0; i < n_tokens; i++) {
        if (!tokens[i]) {
            lrsa_errorf(e, "token %d is missing", i);
            goto fail;
        }
        /* GGUF token types: 3 = control (special), 4 = user-defined (added, not special) */
        int ty = token_types ? token_types[i] : 1;
        int rc = (ty == 3 || ty == 4) ? lrsa_tokenizer_add_added(t, i, tokens[i], ty == 3, 0, 0, e)
                                      : lrsa_tokenizer_set_token(t, i, tokens[i], e);
        if (rc) goto fail;
        if (ty == 2 && t->unk_id < 0) t->unk_id = i; /* GGUF type 2: the unknown token */
    }
    for (int i = 0; i < n_merges; i++) {
        const char *s = merges[i], *sp = s ? strchr(s, ' ') : NULL;
        if (!sp || sp == s || !sp[1]) {
            lrsa_errorf(e, "merge %d (\"%.80s\") is not \"left right\"", i, s ? s : "(null)");
            goto fail;
        }
        size_t la = (size_t)(sp - s);
        char *a = lrsa_malloc(la + 1);
        memcpy(a, s, la);
        a[la] = 0;
        int rc = lrsa_tokenizer_add_merge(t, a, sp + 1, i, e);
        free(a);
        if (rc) goto fail;
    }
    if (setup_pre(t, pre_name, e)) goto fail;
    if (lrsa_tokenizer_finish(t, "GGUF vocabulary", e)) goto fail;
    return t;
fail:
    lrsa_tokenizer_free(t);
    return NULL;
}
