/* The parts of tokenizer.json that SentencePiece-style tokenizers add (data/tokenizer_json_spm.c):
 * Prepend/Replace normalizers, the Metaspace pre-tokenizer, the decoder steps, the
 * post-processor template, and tokenizer_config.json's add_bos_token/add_eos_token. Private to
 * data/tokenizer_json*.c. */
#ifndef LRSA_DATA_TOKENIZER_JSON_SPM_H
#define LRSA_DATA_TOKENIZER_JSON_SPM_H
#include <cjson/cJSON.h>

#include "data/tokenizer_internal.h"

/* A Prepend or Replace normalizer (ty is its "type"); the caller checks the tokenizer is
 * character-level. */
int lrsa_json_norm_step(lrsa_tokenizer *t, const cJSON *n, const char *ty, const char *path,
                        lrsa_err *e);
/* A Metaspace pre-tokenizer. */
int lrsa_json_metaspace(lrsa_tokenizer *t, const cJSON *p, const char *path, lrsa_err *e);
/* The "decoder" of a character-level tokenizer (null: tokens joined with spaces). */
int lrsa_json_decoder(lrsa_tokenizer *t, const cJSON *d, const char *path, lrsa_err *e);
/* The "post_processor": the ids TemplateProcessing puts around a single sequence. */
int lrsa_json_post_processor(lrsa_tokenizer *t, const cJSON *p, const char *path, lrsa_err *e);
/* tokenizer_config.json: add_bos_token / add_eos_token replace the template, as transformers
 * rebuilds the post-processor when either key is present. */
void lrsa_json_config_template(lrsa_tokenizer *t, const cJSON *config);
#endif
