/* Chat templates built at the id level (formats.md section 5): ChatML (SmolLM2, Qwen2.5),
 * Llama-3, Llama 2 and Mistral ([INST] ... [/INST]). Produces ids and a loss mask that covers
 * only the assistant's answer and its end token. Message text is encoded as plain text (no
 * special-token injection). */
#ifndef LRSA_DATA_CHAT_H
#define LRSA_DATA_CHAT_H
#include "base/error.h"
#include "data/ids.h"
#include "data/tokenizer.h"

typedef enum lrsa_chat_format {
    LRSA_CHAT_CHATML_SMOLLM = 0, /* ChatML, default system "You are a helpful AI assistant named
                                    SmolLM, trained by Hugging Face" */
    LRSA_CHAT_CHATML_QWEN, /* ChatML, default system "You are Qwen, created by Alibaba Cloud. You
                              are a helpful assistant." */
    LRSA_CHAT_LLAMA3,      /* <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n ...
                              <|eot_id|> */
    LRSA_CHAT_NONE,        /* plain concatenation: no template */
    LRSA_CHAT_LLAMA2,      /* <s>[INST] <<SYS>>\n..\n<</SYS>>\n\n user [/INST] answer </s> */
    LRSA_CHAT_MISTRAL,     /* <s> [INST] user [/INST] answer</s> [INST] ... */
} lrsa_chat_format;

typedef struct lrsa_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} lrsa_chat_msg;

/* Picks the format from the tokenizer's special tokens / chat template (or NONE): Llama 2 when
 * the template has "<<SYS>>", Mistral when it has "[INST]" otherwise. */
lrsa_chat_format lrsa_chat_detect(const lrsa_tokenizer *t);
const char *lrsa_chat_format_name(lrsa_chat_format f);
/* Appends the conversation. mask gets 1 for the tokens of assistant contents plus their end
 * token, 0 elsewhere (mask may be NULL). With add_generation_prompt the assistant header is
 * appended at the end (for generation). */
int lrsa_chat_build(const lrsa_tokenizer *t, lrsa_chat_format f, const lrsa_chat_msg *msgs,
                    int n_msgs, int add_generation_prompt, lrsa_ids *ids, lrsa_mask *mask,
                    lrsa_err *e);
/* The end-of-turn ids generation stops at (e.g. <|im_end|>); returns how many (<= cap). */
int lrsa_chat_stop_ids(const lrsa_tokenizer *t, lrsa_chat_format f, int32_t *out, int cap);
#endif
