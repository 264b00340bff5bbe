/* A GGUF SentencePiece vocabulary (tokenizer.ggml.model = llama) as a Hugging Face
 * tokenizer.json (convert/gguf_tokenizer_spm.c), and the JSON pieces both vocabulary kinds
 * write (convert/gguf_tokenizer_json.c). Private to convert/gguf_tokenizer*.c. */
#ifndef LRSA_CONVERT_GGUF_TOKENIZER_SPM_H
#define LRSA_CONVERT_GGUF_TOKENIZER_SPM_H
#include <cjson/cJSON.h>

#include "model/gguf.h"

typedef struct lrsa_gguf_spm_vocab {
    const lrsa_gguf_value *tokens, *types, *scores, *merges; /* types/merges may be NULL */
    int add_space_prefix;                                    /* tokenizer.ggml.add_space_prefix */
    int bos_id, eos_id; /* added around each text by the post-processor, or -1 */
    int unk_id;         /* or -1 */
} lrsa_gguf_spm_vocab;

/* tokenizer.json as the Llama 2 / Mistral repositories ship it: BPE with byte_fallback and
 * fuse_unk, Prepend("▁") + Replace(" ", "▁") normalizer, no pre-tokenizer, decoder Replace,
 * ByteFallback, Fuse, Strip; merges from the file or, as Hugging Face derives them, from the
 * scores. NULL with a message on bad input. */
cJSON *lrsa_gguf_spm_tokenizer_json(const lrsa_gguf *g, const lrsa_gguf_spm_vocab *v, lrsa_err *e);
/* The "model" object of root with its BPE settings (vocab and merges are the caller's). */
cJSON *lrsa_gguf_bpe_model(cJSON *root, const char *unk, int fuse_unk, int byte_fallback,
                           int ignore_merges);
/* One added_tokens entry. */
cJSON *lrsa_gguf_added_token(int id, const char *content, int special, int normalized);
/* TemplateProcessing putting bos before and/or eos after the text (NULL name: left out). */
cJSON *lrsa_gguf_template_processor(const char *bos, int bos_id, const char *eos, int eos_id);
#endif
