/* The tokenizer.json pieces both GGUF vocabulary kinds write (byte-level BPE in
 * convert/gguf_tokenizer.c, SentencePiece-style in convert/gguf_tokenizer_spm.c): the BPE model
 * header, an added_tokens entry, a TemplateProcessing post-processor. */
#include <cjson/cJSON.h>

#include "convert/gguf_tokenizer_spm.h"

/* One special-token entry of a TemplateProcessing post-processor. */
static cJSON *template_piece(const char *special, const char *seq, int type_id) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "id", special ? special : seq);
    cJSON_AddNumberToObject(in, "type_id", type_id);
    cJSON_AddItemToObject(o, special ? "SpecialToken" : "Sequence", in);
    return o;
}

/* TemplateProcessing with BOS before and/or EOS after the text; NULL for a name leaves it out. */
cJSON *lrsa_gguf_template_processor(const char *bos, int bos_id, const char *eos, int eos_id) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(o, "single");
    cJSON *pair = cJSON_AddArrayToObject(o, "pair");
    for (int seq = 0; seq < 2; seq++) {
        if (bos) cJSON_AddItemToArray(pair, template_piece(bos, NULL, seq));
        cJSON_AddItemToArray(pair, template_piece(NULL, seq ? "B" : "A", seq));
        if (eos) cJSON_AddItemToArray(pair, template_piece(eos, NULL, seq));
    }
    if (bos) cJSON_AddItemToArray(single, template_piece(bos, NULL, 0));
    cJSON_AddItemToArray(single, template_piece(NULL, "A", 0));
    if (eos) cJSON_AddItemToArray(single, template_piece(eos, NULL, 0));
    cJSON *sp = cJSON_AddObjectToObject(o, "special_tokens");
    for (int k = 0; k < 2; k++) {
        const char *name = k ? eos : bos;
        int id = k ? eos_id : bos_id;
        if (!name || cJSON_GetObjectItem(sp, name)) continue;
        cJSON *b = cJSON_AddObjectToObject(sp, name);
        cJSON_AddStringToObject(b, "id", name);
        cJSON_AddItemToObject(b, "ids", cJSON_CreateIntArray(&id, 1));
        cJSON *toks = cJSON_AddArrayToObject(b, "tokens");
        cJSON_AddItemToArray(toks, cJSON_CreateString(name));
    }
    return o;
}

cJSON *lrsa_gguf_bpe_model(cJSON *root, const char *unk, int fuse_unk, int byte_fallback,
                           int ignore_merges) {
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    if (unk)
        cJSON_AddStringToObject(m, "unk_token", unk);
    else
        cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", fuse_unk);
    cJSON_AddBoolToObject(m, "byte_fallback", byte_fallback);
    cJSON_AddBoolToObject(m, "ignore_merges", ignore_merges);
    return m;
}

cJSON *lrsa_gguf_added_token(int id, const char *content, int special, int normalized) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", normalized);
    cJSON_AddBoolToObject(o, "special", special);
    return o;
}
