/* A GGUF byte-level BPE vocabulary -> Hugging Face tokenizer.json, tokenizer_config.json and
 * generation_config.json (formats.md 3.3 and 4). The pre-tokenizer is chosen from
 * tokenizer.ggml.pre so that the HF pipeline reproduces what llama.cpp does for that model. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "convert/gguf_convert.h"
#include "convert/gguf_tokenizer_spm.h"

/* Split regexes in the form PCRE2 / Oniguruma compile (formats.md 4.3). */
static const char *k_regex_llama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *k_regex_qwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER = 4 };

typedef enum pre_kind { PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2 } pre_kind;

static int pre_from_name(const char *name, pre_kind *k) {
    if (strcmp(name, "gpt-2") == 0 || strcmp(name, "gpt2") == 0)
        *k = PRE_GPT2;
    else if (strcmp(name, "smollm") == 0)
        *k = PRE_SMOLLM;
    else if (strcmp(name, "llama-bpe") == 0 || strcmp(name, "llama3") == 0 ||
             strcmp(name, "llama-v3") == 0)
        *k = PRE_LLAMA3;
    else if (strcmp(name, "qwen2") == 0)
        *k = PRE_QWEN2;
    else
        return -1;
    return 0;
}

static cJSON *byte_level(int trim_offsets, int use_regex) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", 0);
    cJSON_AddBoolToObject(o, "trim_offsets", trim_offsets);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static cJSON *split(const char *regex) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Split");
    cJSON *p = cJSON_AddObjectToObject(o, "pattern");
    cJSON_AddStringToObject(p, "Regex", regex);
    cJSON_AddStringToObject(o, "behavior", "Isolated");
    cJSON_AddBoolToObject(o, "invert", 0);
    return o;
}

static cJSON *sequence(cJSON *a, cJSON *b) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Sequence");
    cJSON *l = cJSON_AddArrayToObject(o, "pretokenizers");
    cJSON_AddItemToArray(l, a);
    cJSON_AddItemToArray(l, b);
    return o;
}

static cJSON *pre_tokenizer(pre_kind k) {
    switch (k) {
        case PRE_SMOLLM: {
            cJSON *digits = cJSON_CreateObject();
            cJSON_AddStringToObject(digits, "type", "Digits");
            cJSON_AddBoolToObject(digits, "individual_digits", 1);
            return sequence(digits, byte_level(1, 1));
        }
        case PRE_LLAMA3:
            return sequence(split(k_regex_llama3), byte_level(1, 0));
        case PRE_QWEN2:
            return sequence(split(k_regex_qwen2), byte_level(0, 0));
        default:
            return byte_level(1, 1);
    }
}

/* BOS-prepending post-processor (Llama-3 style) or the plain ByteLevel one. */
static cJSON *post_processor(int add_bos, const char *bos, int bos_id) {
    if (!add_bos || !bos) {
        cJSON *o = byte_level(0, 1);
        cJSON_ReplaceItemInObject(o, "add_prefix_space", cJSON_CreateBool(1));
        return o;
    }
    return lrsa_gguf_template_processor(bos, bos_id, NULL, -1);
}

static cJSON *added_token(int id, const char *content, int special) {
    return lrsa_gguf_added_token(id, content, special, !special);
}

static int write_json(cJSON *root, const char *dir, const char *name, int pretty, lrsa_err *e) {
    char path[4400];
    lrsa_path_join(path, sizeof path, dir, name);
    char *text = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
    LRSA_CHECK(text != NULL, "cJSON print ran out of memory");
    int rc = lrsa_write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

typedef struct vocab {
    const lrsa_gguf_value *tokens, *types, *merges, *scores;
    int64_t n;
    int spm; /* tokenizer.ggml.model = llama: a SentencePiece vocabulary */
} vocab;

static int token_type(const vocab *v, int64_t i) {
    return v->types ? (int)lrsa_gguf_array_int(v->types, (uint64_t)i) : TOKEN_NORMAL;
}
static const char *token_str(const vocab *v, int id) {
    return id >= 0 && id < v->n ? v->tokens->items[id].s : NULL;
}

static int load_vocab(const lrsa_gguf *g, vocab *v, pre_kind *pk, lrsa_err *e) {
    memset(v, 0, sizeof *v);
    const char *model, *pre;
    if (lrsa_gguf_get_str(g, "tokenizer.ggml.model", &model, e)) return -1;
    v->spm = strcmp(model, "llama") == 0;
    if (strcmp(model, "gpt2") != 0 && !v->spm)
        return lrsa_errorf(e,
                           "%s: tokenizer.ggml.model is '%s'; lrsa converts byte-level BPE "
                           "('gpt2') and SentencePiece BPE ('llama') vocabularies, not "
                           "Unigram ('t5') or others",
                           g->path, model);
    if (lrsa_gguf_get_str_opt(g, "tokenizer.ggml.pre", "gpt-2", &pre, e)) return -1;
    if (!v->spm && pre_from_name(pre, pk))
        return lrsa_errorf(e,
                           "%s: tokenizer.ggml.pre is '%s', which lrsa does not know; "
                           "supported pre-tokenizers: smollm, llama-bpe (llama3, llama-v3), "
                           "qwen2, gpt-2",
                           g->path, pre);
    if (lrsa_gguf_get_array(g, "tokenizer.ggml.tokens", LRSA_GGUF_STRING, &v->tokens, e)) return -1;
    /* a SentencePiece vocabulary has scores instead of merges (the merges follow from them) */
    if ((!v->spm || lrsa_gguf_get(g, "tokenizer.ggml.merges")) &&
        lrsa_gguf_get_array(g, "tokenizer.ggml.merges", LRSA_GGUF_STRING, &v->merges, e))
        return -1;
    if (v->spm && !v->merges &&
        lrsa_gguf_get_array(g, "tokenizer.ggml.scores", LRSA_GGUF_F32, &v->scores, e))
        return lrsa_err_prefix(e, "a SentencePiece vocabulary without merges needs scores: ");
    if (v->scores && v->scores->n != v->tokens->n)
        return lrsa_errorf(e,
                           "%s: tokenizer.ggml.scores has %llu entries but tokenizer.ggml.tokens "
                           "has %llu; the file is corrupt",
                           g->path, (unsigned long long)v->scores->n,
                           (unsigned long long)v->tokens->n);
    v->n = (int64_t)v->tokens->n;
    if (lrsa_gguf_get(g, "tokenizer.ggml.token_type")) {
        if (lrsa_gguf_get_array(g, "tokenizer.ggml.token_type", LRSA_GGUF_I32, &v->types, e))
            return -1;
        if (v->types->n != v->tokens->n)
            return lrsa_errorf(e,
                               "%s: tokenizer.ggml.token_type has %llu entries but "
                               "tokenizer.ggml.tokens has %llu; the file is corrupt",
                               g->path, (unsigned long long)v->types->n,
                               (unsigned long long)v->tokens->n);
    }
    for (uint64_t i = 0; v->merges && i < v->merges->n; i++) {
        const char *m = v->merges->items[i].s;
        const char *sp = strchr(m, ' ');
        if (!sp || sp == m || sp[1] == 0)
            return lrsa_errorf(e,
                               "%s: tokenizer.ggml.merges[%llu] = \"%s\" is not \"left right\"; "
                               "the file is corrupt",
                               g->path, (unsigned long long)i, m);
    }
    return 0;
}

static cJSON *build_tokenizer_json(const vocab *v, pre_kind pk, int add_bos, int bos_id,
                                   int unk_id) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int64_t i = 0; i < v->n; i++) {
        int ty = token_type(v, i);
        if (ty == TOKEN_CONTROL || ty == TOKEN_USER)
            cJSON_AddItemToArray(added,
                                 added_token((int)i, token_str(v, (int)i), ty == TOKEN_CONTROL));
    }
    if (pk == PRE_QWEN2) {
        cJSON *n = cJSON_AddObjectToObject(root, "normalizer");
        cJSON_AddStringToObject(n, "type", "NFC");
    } else {
        cJSON_AddNullToObject(root, "normalizer");
    }
    cJSON_AddItemToObject(root, "pre_tokenizer", pre_tokenizer(pk));
    cJSON_AddItemToObject(root, "post_processor",
                          post_processor(add_bos, token_str(v, bos_id), bos_id));
    cJSON *dec = byte_level(1, 1);
    cJSON_ReplaceItemInObject(dec, "add_prefix_space", cJSON_CreateBool(1));
    cJSON_AddItemToObject(root, "decoder", dec);
    /* llama.cpp (and HF for Llama-3) look a whole pre-token up in the vocab before merging */
    cJSON *m = lrsa_gguf_bpe_model(root, token_str(v, unk_id), 0, 0, pk == PRE_LLAMA3);
    cJSON *vo = cJSON_AddObjectToObject(m, "vocab");
    for (int64_t i = 0; i < v->n; i++)
        cJSON_AddItemToObject(vo, token_str(v, (int)i), cJSON_CreateNumber((double)i));
    cJSON *mg = cJSON_AddArrayToObject(m, "merges");
    for (uint64_t i = 0; i < v->merges->n; i++)
        cJSON_AddItemToArray(mg, cJSON_CreateString(v->merges->items[i].s));
    return root;
}

static void add_token_field(cJSON *o, const char *key, const vocab *v, int id) {
    if (token_str(v, id))
        cJSON_AddStringToObject(o, key, token_str(v, id));
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *build_tokenizer_config(const lrsa_gguf *g, const vocab *v, int add_bos, int add_eos,
                                     int bos, int eos, int pad, int unk, int max_len) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "add_bos_token", add_bos);
    cJSON_AddBoolToObject(r, "add_eos_token", add_eos);
    if (!v->spm) cJSON_AddBoolToObject(r, "add_prefix_space", 0);
    cJSON *dec = cJSON_AddObjectToObject(r, "added_tokens_decoder");
    cJSON *extra = cJSON_CreateArray();
    for (int64_t i = 0; i < v->n; i++) {
        int ty = token_type(v, i);
        char id[32];
        snprintf(id, sizeof id, "%lld", (long long)i);
        int special = ty == TOKEN_CONTROL || (v->spm && ty == TOKEN_UNKNOWN);
        if (!special && ty != TOKEN_USER) continue;
        cJSON *t = v->spm ? lrsa_gguf_added_token((int)i, token_str(v, (int)i), special, 0)
                          : added_token((int)i, token_str(v, (int)i), special);
        cJSON_DeleteItemFromObject(t, "id");
        cJSON_AddItemToObject(dec, id, t);
        if (special && i != bos && i != eos && i != pad && i != unk)
            cJSON_AddItemToArray(extra, cJSON_CreateString(token_str(v, (int)i)));
    }
    cJSON_AddItemToObject(r, "additional_special_tokens", extra);
    add_token_field(r, "bos_token", v, bos);
    add_token_field(r, "eos_token", v, eos);
    add_token_field(r, "pad_token", v, pad);
    add_token_field(r, "unk_token", v, unk);
    const char *tmpl = NULL;
    const lrsa_gguf_value *ct = lrsa_gguf_get(g, "tokenizer.chat_template");
    if (ct && ct->type == LRSA_GGUF_STRING) tmpl = ct->s;
    if (tmpl) cJSON_AddStringToObject(r, "chat_template", tmpl);
    cJSON_AddBoolToObject(r, "clean_up_tokenization_spaces", 0);
    cJSON_AddNumberToObject(r, "model_max_length", max_len);
    /* transformers 5 rebuilds a LlamaTokenizer's pipeline (Metaspace "first") instead of
     * reading tokenizer.json; the generic class keeps the SentencePiece-exact one */
    cJSON_AddStringToObject(r, "tokenizer_class",
                            v->spm ? "PreTrainedTokenizerFast" : "GPT2Tokenizer");
    return r;
}

static cJSON *build_generation_config(const lrsa_model_config *c) {
    cJSON *r = cJSON_CreateObject();
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_token_id);
    if (c->n_eos == 1)
        cJSON_AddNumberToObject(r, "eos_token_id", c->eos_token_ids[0]);
    else if (c->n_eos > 1)
        cJSON_AddItemToObject(r, "eos_token_id", cJSON_CreateIntArray(c->eos_token_ids, c->n_eos));
    if (c->pad_token_id >= 0) cJSON_AddNumberToObject(r, "pad_token_id", c->pad_token_id);
    return r;
}

int lrsa_gguf_write_tokenizer(const lrsa_gguf *g, const lrsa_model_config *c, const char *dir,
                              lrsa_err *e) {
    vocab v;
    pre_kind pk = PRE_GPT2;
    int64_t unk;
    int add_bos, add_eos;
    if (load_vocab(g, &v, &pk, e) ||
        lrsa_gguf_get_int_opt(g, "tokenizer.ggml.unknown_token_id", -1, &unk, e) ||
        lrsa_gguf_get_bool_opt(g, "tokenizer.ggml.add_bos_token", pk == PRE_LLAMA3 || v.spm,
                               &add_bos, e) ||
        lrsa_gguf_get_bool_opt(g, "tokenizer.ggml.add_eos_token", 0, &add_eos, e))
        return -1;
    if (unk < -1 || unk >= v.n) unk = -1;
    for (int64_t i = 0; v.spm && unk < 0 && i < v.n; i++)
        if (token_type(&v, i) == TOKEN_UNKNOWN) unk = i; /* SentencePiece's <unk> */
    const lrsa_gguf_value *ct = lrsa_gguf_get(g, "tokenizer.chat_template");
    if (ct && ct->type != LRSA_GGUF_STRING)
        return lrsa_errorf(e, "%s: tokenizer.chat_template is a %s, expected a string", g->path,
                           lrsa_gguf_vtype_name(ct->type));
    int eos = c->n_eos > 0 ? c->eos_token_ids[0] : -1;
    int add_space_prefix = 1;
    if (v.spm &&
        lrsa_gguf_get_bool_opt(g, "tokenizer.ggml.add_space_prefix", 1, &add_space_prefix, e))
        return -1;
    lrsa_gguf_spm_vocab sv = {.tokens = v.tokens,
                              .types = v.types,
                              .scores = v.scores,
                              .merges = v.merges,
                              .add_space_prefix = add_space_prefix,
                              .bos_id = add_bos ? c->bos_token_id : -1,
                              .eos_id = add_eos ? eos : -1,
                              .unk_id = (int)unk};
    cJSON *tj = v.spm ? lrsa_gguf_spm_tokenizer_json(g, &sv, e)
                      : build_tokenizer_json(&v, pk, add_bos, c->bos_token_id, (int)unk);
    if (!tj) return -1;
    int rc = write_json(tj, dir, "tokenizer.json", 0, e);
    cJSON_Delete(tj);
    if (rc) return -1;
    cJSON *tc = build_tokenizer_config(g, &v, add_bos, add_eos, c->bos_token_id, eos,
                                       c->pad_token_id, (int)unk, c->max_position_embeddings);
    rc = write_json(tc, dir, "tokenizer_config.json", 1, e);
    cJSON_Delete(tc);
    if (rc) return -1;
    cJSON *gc = build_generation_config(c);
    rc = write_json(gc, dir, "generation_config.json", 1, e);
    cJSON_Delete(gc);
    return rc;
}
