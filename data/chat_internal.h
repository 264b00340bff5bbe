/* Shared by data/chat.c, data/chat_inst.c (the [INST] templates of Llama 2 and Mistral) and
 * data/chat_segment.c (the id builder they use). */
#ifndef LRSA_DATA_CHAT_INTERNAL_H
#define LRSA_DATA_CHAT_INTERNAL_H
#include "data/chat.h"

#define LRSA_CHAT_MAX_PARTS 8

/* Builds a conversation as Hugging Face tokenizes its rendered text: special tokens go in as
 * ids, and each stretch of text between two of them is tokenized as one text (so a
 * SentencePiece-style normalizer sees it whole). The text is added in parts, each with its
 * mask value; a token gets the value of the part it starts in (a token straddling two parts
 * gets the later one's). */
typedef struct lrsa_chat_builder {
    const lrsa_tokenizer *t;
    lrsa_ids *ids;
    lrsa_mask *mask; /* may be NULL */
    int emitted;     /* anything emitted yet: only the first text starts the input */
    char *text;      /* the pending stretch */
    size_t len, cap;
    size_t part_end[LRSA_CHAT_MAX_PARTS];
    uint8_t part_mask[LRSA_CHAT_MAX_PARTS];
    int n_parts;
} lrsa_chat_builder;

void lrsa_chat_builder_init(lrsa_chat_builder *b, const lrsa_tokenizer *t, lrsa_ids *ids,
                            lrsa_mask *mask);
void lrsa_chat_text(lrsa_chat_builder *b, const char *s, size_t n, uint8_t mask);
void lrsa_chat_str(lrsa_chat_builder *b, const char *s, uint8_t mask);
/* Tokenizes the pending text, then appends the special token. */
int lrsa_chat_special(lrsa_chat_builder *b, int32_t id, uint8_t mask, lrsa_err *e);
/* Tokenizes the pending text and frees the builder. */
int lrsa_chat_finish(lrsa_chat_builder *b, lrsa_err *e);
/* Frees the builder without tokenizing (after an error). */
void lrsa_chat_builder_free(lrsa_chat_builder *b);

/* The id of a token the format needs, or an error naming the format and the token. */
int lrsa_chat_need_token(const lrsa_tokenizer *t, const char *tok, lrsa_chat_format f, int32_t *id,
                         lrsa_err *e);
/* lrsa_chat_build for LRSA_CHAT_LLAMA2 and LRSA_CHAT_MISTRAL (their generation prompt is
 * empty: the text already ends with [/INST]). */
int lrsa_chat_build_inst(const lrsa_tokenizer *t, lrsa_chat_format f, const lrsa_chat_msg *msgs,
                         int n_msgs, lrsa_ids *ids, lrsa_mask *mask, lrsa_err *e);
#endif
