/* Shared by data/chat.c and data/chat_inst.c (the [INST] templates of Llama 2 and Mistral). */
#ifndef LRSA_DATA_CHAT_INTERNAL_H
#define LRSA_DATA_CHAT_INTERNAL_H
#include "data/chat.h"

/* The id of a token the format needs, or an error naming the format and the token. */
int lrsa_chat_need_token(const lrsa_tokenizer *t, const char *tok, lrsa_chat_format f, int32_t *id,
                         lrsa_err *e);
/* lrsa_chat_build for LRSA_CHAT_LLAMA2 and LRSA_CHAT_MISTRAL (their generation prompt is
 * empty: the text already ends with [/INST]). */
int lrsa_chat_build_inst(const lrsa_tokenizer *t, lrsa_chat_format f, const lrsa_chat_msg *msgs,
                         int n_msgs, lrsa_ids *ids, lrsa_mask *mask, lrsa_err *e);
#endif
