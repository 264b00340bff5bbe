/* BPE tokenizers as Hugging Face `tokenizers` runs them (../shared/docs/formats.md section 4):
 * byte-level BPE (GPT-2, SmolLM, Llama-3, Qwen2 with NFC) and SentencePiece-style BPE with
 * byte fallback (Llama 2, Mistral: "▁" for spaces, <0xNN> byte tokens). Loads tokenizer.json
 * (or a GGUF vocabulary), decodes with streaming-safe UTF-8. docs/TOKENIZER.md. */
#ifndef LRSA_DATA_TOKENIZER_H
#define LRSA_DATA_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "data/ids.h"

typedef struct lrsa_tokenizer lrsa_tokenizer;

/* From a tokenizer.json file. */
lrsa_tokenizer *lrsa_tokenizer_load(const char *tokenizer_json_path, lrsa_err *e);
/* From a model directory: tokenizer.json, plus tokenizer_config.json when present. */
lrsa_tokenizer *lrsa_tokenizer_load_dir(const char *model_dir, lrsa_err *e);
void lrsa_tokenizer_free(lrsa_tokenizer *t);
/* From raw arrays (the GGUF importer): tokens[i] is the byte-mapped string of id i; token_types
 * (may be NULL) are GGUF types (1 normal, 3 control = special added token, 4 user-defined =
 * added token); merges are "left right" strings in rank order; pre_name is the GGUF
 * `tokenizer.ggml.pre` value ("gpt2", "smollm", "llama-bpe"/"llama3", "qwen2"; NULL = gpt2). */
lrsa_tokenizer *lrsa_tokenizer_from_vocab(const char **tokens, int n_tokens,
                                          const int32_t *token_types, const char **merges,
                                          int n_merges, const char *pre_name, lrsa_err *e);

/* Appends the ids of UTF-8 text treated as plain text: special-token strings in the text are
 * NOT recognised (safe for user data: no injection of <|im_end|>). Invalid UTF-8 is encoded
 * byte by byte as Hugging Face does. */
int lrsa_tokenizer_encode(const lrsa_tokenizer *t, const char *text, size_t len, lrsa_ids *out,
                          lrsa_err *e);
/* Like encode, but literal added tokens (e.g. "<|im_start|>") become their ids, as HF does. */
int lrsa_tokenizer_encode_with_special(const lrsa_tokenizer *t, const char *text, size_t len,
                                       lrsa_ids *out, lrsa_err *e);
/* HF's encode(text) with add_special_tokens=True: encode_with_special plus the ids the
 * post-processor puts around one sequence (Llama 2: <s> first). The template comes from
 * tokenizer.json's TemplateProcessing; a model directory's tokenizer_config.json with
 * add_bos_token / add_eos_token replaces it as transformers does. */
int lrsa_tokenizer_encode_hf(const lrsa_tokenizer *t, const char *text, size_t len, lrsa_ids *out,
                             lrsa_err *e);
/* Decodes ids to UTF-8 (invalid/incomplete sequences become U+FFFD). Caller frees. */
char *lrsa_tokenizer_decode(const lrsa_tokenizer *t, const int32_t *ids, int64_t n,
                            int skip_special);
/* The same, with the length in *len (the text holds a NUL byte where a token decodes to one). */
char *lrsa_tokenizer_decode_len(const lrsa_tokenizer *t, const int32_t *ids, int64_t n,
                                int skip_special, size_t *len);
/* Id of an exact token string (vocab or added token), or -1. */
int32_t lrsa_tokenizer_token_id(const lrsa_tokenizer *t, const char *token);
int lrsa_tokenizer_vocab_size(const lrsa_tokenizer *t);
int lrsa_tokenizer_is_special(const lrsa_tokenizer *t, int32_t id);
/* A stable hex checksum of the vocabulary, merges and pre-tokenizer (recorded in datasets). */
const char *lrsa_tokenizer_checksum(const lrsa_tokenizer *t);

/* Streaming decoder: feed ids one at a time, get the newly completed UTF-8 text (bytes of an
 * incomplete character are held back until they complete). */
#define LRSA_STREAM_WINDOW 32
typedef struct lrsa_stream_decoder {
    const lrsa_tokenizer *tok;
    unsigned char pending[8];
    int n_pending;
    int skip_special;
    /* SentencePiece-style tokenizers: the ids still needed to decode the next text, and how
     * many of them make up the text already returned */
    int32_t window[LRSA_STREAM_WINDOW];
    int n_window, prefix_index;
} lrsa_stream_decoder;
void lrsa_stream_decoder_init(lrsa_stream_decoder *d, const lrsa_tokenizer *t, int skip_special);
/* Writes NUL-terminated text into out (cap >= 64 + longest token); returns its length. */
int lrsa_stream_decoder_push(lrsa_stream_decoder *d, int32_t id, char *out, size_t cap);
int lrsa_stream_decoder_flush(lrsa_stream_decoder *d, char *out, size_t cap);
#endif
