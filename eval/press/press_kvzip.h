/* KVzip (kv-compression.md section 2): the reconstruction prompt the caller passes in the press
 * spec. */
#ifndef LRSA_EVAL_PRESS_KVZIP_H
#define LRSA_EVAL_PRESS_KVZIP_H
#include <stdint.h>

#include "data/chat.h"
#include "data/ids.h"
#include "data/tokenizer.h"
#include "eval/press/press.h"

/* The reconstruction instruction (the official code's string for the first chunk). */
#define LRSA_KVZIP_PROMPT "Repeat the previous context exactly."

/* Appends the reconstruction prompt's ids to out: "\n\n" + LRSA_KVZIP_PROMPT as plain text, then
 * the chat format's end of the user turn and assistant header (what lrsa_chat_build puts after
 * a user message with add_generation_prompt), so the context prefilled as an open user turn is
 * followed by "repeat it" and the assistant's turn. Format NONE: the text plus "\n". Set
 * spec.kvzip_prompt_ids / n_kvzip_prompt to out->v / out->n. */
int lrsa_kvzip_prompt_ids(const lrsa_tokenizer *t, lrsa_chat_format f, lrsa_ids *out, lrsa_err *e);

/* Chunk t > 0 of the reconstruction is prompt + the last LRSA_KVZIP_OVERLAP context tokens of
 * chunk t-1 + chunk t (the official code's "starting with <8 tokens>" continuation). */
#define LRSA_KVZIP_OVERLAP 8

#endif
