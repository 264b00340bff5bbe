/* Chat templates at the id level (formats.md section 5). Special tokens are inserted as ids and
 * message text is encoded as plain text, so user text cannot inject <|im_end|>. */
#include <stdlib.h>
#include <string.h>

#include "data/chat.h"
#include "data/chat_internal.h"
#include "data/tokenizer_internal.h"

#define SMOLLM_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#define QWEN_SYSTEM   "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

lrsa_chat_format lrsa_chat_detect(const lrsa_tokenizer *t) {
    if (lrsa_tokenizer_token_id(t, "<|start_header_id|>") >= 0 &&
        lrsa_tokenizer_token_id(t, "<|end_header_id|>") >= 0 &&
        lrsa_tokenizer_token_id(t, "<|eot_id|>") >= 0)
        return LRSA_CHAT_LLAMA3;
    /* the [INST] families share their tokens (<s>, </s>) with base models: only a chat
     * template tells them apart (and it wins over ChatML tokens a fine-tune may have added) */
    const char *tpl = t->chat_template;
    if (tpl && strstr(tpl, "[INST]") && !strstr(tpl, "<|im_start|>") &&
        lrsa_tokenizer_token_id(t, "</s>") >= 0)
        return strstr(tpl, "<<SYS>>") ? LRSA_CHAT_LLAMA2 : LRSA_CHAT_MISTRAL;
    if (lrsa_tokenizer_token_id(t, "<|im_start|>") >= 0 &&
        lrsa_tokenizer_token_id(t, "<|im_end|>") >= 0) {
        /* the two ChatML families differ only in the default system prompt: use the chat
         * template when we have it, else the vocabulary size (Qwen2: ~151k, SmolLM2: 49k) */
        if (tpl && strstr(tpl, "SmolLM")) return LRSA_CHAT_CHATML_SMOLLM;
        if (tpl && strstr(tpl, "Qwen")) return LRSA_CHAT_CHATML_QWEN;
        return t->n_vocab > 100000 ? LRSA_CHAT_CHATML_QWEN : LRSA_CHAT_CHATML_SMOLLM;
    }
    return LRSA_CHAT_NONE;
}

/* Appends the ids of plain text and `mask_value` for each of them. */
static int put_text(const lrsa_tokenizer *t, const char *s, lrsa_ids *ids, lrsa_mask *mask,
                    uint8_t mask_value, lrsa_err *e) {
    int64_t before = ids->n;
    if (lrsa_tokenizer_encode(t, s, strlen(s), ids, e)) return -1;
    if (mask) lrsa_mask_push(mask, mask_value, ids->n - before);
    return 0;
}

/* Llama-3 strips the message content (Jinja's | trim): spaces, tabs and newlines at both ends. */
static const char *trimmed(const char *s, char *buf, size_t cap, char **heap) {
    *heap = NULL;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    char *out = n + 1 <= cap ? buf : (*heap = lrsa_malloc(n + 1));
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

/* ChatML and Llama-3 go through the builder, as HF tokenizes the rendered string (for a
 * byte-level tokenizer the pre-tokenizer splits at these boundaries anyway). */
static int build_chatml(lrsa_chat_builder *b, lrsa_chat_format f, const lrsa_chat_msg *msgs, int n,
                        int gen, lrsa_err *e) {
    int32_t start, end;
    if (lrsa_chat_need_token(b->t, "<|im_start|>", f, &start, e) ||
        lrsa_chat_need_token(b->t, "<|im_end|>", f, &end, e))
        return -1;
    if (n == 0 || strcmp(msgs[0].role, "system") != 0) {
        const char *sys = f == LRSA_CHAT_CHATML_QWEN ? QWEN_SYSTEM : SMOLLM_SYSTEM;
        if (lrsa_chat_special(b, start, 0, e)) return -1;
        lrsa_chat_str(b, "system\n", 0);
        lrsa_chat_str(b, sys, 0);
        if (lrsa_chat_special(b, end, 0, e)) return -1;
        lrsa_chat_str(b, "\n", 0);
    }
    for (int i = 0; i < n; i++) {
        uint8_t answer = strcmp(msgs[i].role, "assistant") == 0;
        if (lrsa_chat_special(b, start, 0, e)) return -1;
        lrsa_chat_str(b, msgs[i].role, 0);
        lrsa_chat_str(b, "\n", 0);
        lrsa_chat_str(b, msgs[i].content, answer);
        if (lrsa_chat_special(b, end, answer, e)) return -1; /* the model must learn to stop */
        lrsa_chat_str(b, "\n", 0);
    }
    if (gen) {
        if (lrsa_chat_special(b, start, 0, e)) return -1;
        lrsa_chat_str(b, "assistant\n", 0);
    }
    return 0;
}

static int build_llama3(lrsa_chat_builder *b, const lrsa_chat_msg *msgs, int n, int gen,
                        lrsa_err *e) {
    int32_t bos, sh, eh, eot;
    lrsa_chat_format f = LRSA_CHAT_LLAMA3;
    if (lrsa_chat_need_token(b->t, "<|begin_of_text|>", f, &bos, e) ||
        lrsa_chat_need_token(b->t, "<|start_header_id|>", f, &sh, e) ||
        lrsa_chat_need_token(b->t, "<|end_header_id|>", f, &eh, e) ||
        lrsa_chat_need_token(b->t, "<|eot_id|>", f, &eot, e))
        return -1;
    if (lrsa_chat_special(b, bos, 0, e)) return -1;
    for (int i = 0; i < n; i++) {
        uint8_t answer = strcmp(msgs[i].role, "assistant") == 0;
        if (lrsa_chat_special(b, sh, 0, e)) return -1;
        lrsa_chat_str(b, msgs[i].role, 0);
        if (lrsa_chat_special(b, eh, 0, e)) return -1;
        lrsa_chat_str(b, "\n\n", 0);
        char buf[1024], *heap;
        lrsa_chat_str(b, trimmed(msgs[i].content, buf, sizeof buf, &heap), answer);
        free(heap);
        if (lrsa_chat_special(b, eot, answer, e)) return -1;
    }
    if (gen) {
        if (lrsa_chat_special(b, sh, 0, e)) return -1;
        lrsa_chat_str(b, "assistant", 0);
        if (lrsa_chat_special(b, eh, 0, e)) return -1;
        lrsa_chat_str(b, "\n\n", 0);
    }
    return 0;
}

/* Runs one of the builder-based templates. */
static int with_builder(const lrsa_tokenizer *t, lrsa_chat_format f, const lrsa_chat_msg *msgs,
                        int n, int gen, lrsa_ids *ids, lrsa_mask *mask, lrsa_err *e) {
    lrsa_chat_builder b;
    lrsa_chat_builder_init(&b, t, ids, mask);
    int rc = f == LRSA_CHAT_LLAMA3 ? build_llama3(&b, msgs, n, gen, e)
                                   : build_chatml(&b, f, msgs, n, gen, e);
    if (rc) {
        lrsa_chat_builder_free(&b);
        return -1;
    }
    return lrsa_chat_finish(&b, e);
}

int lrsa_chat_build(const lrsa_tokenizer *t, lrsa_chat_format f, const lrsa_chat_msg *msgs,
                    int n_msgs, int add_generation_prompt, lrsa_ids *ids, lrsa_mask *mask,
                    lrsa_err *e) {
    for (int i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].role[0] || !msgs[i].content || strchr(msgs[i].role, '\n'))
            return lrsa_errorf(e,
                               "chat message %d needs a one-line \"role\" (system, user or "
                               "assistant) and a \"content\" string",
                               i);
    switch (f) {
        case LRSA_CHAT_CHATML_SMOLLM:
        case LRSA_CHAT_CHATML_QWEN:
        case LRSA_CHAT_LLAMA3:
            return with_builder(t, f, msgs, n_msgs, add_generation_prompt, ids, mask, e);
        case LRSA_CHAT_LLAMA2:
        case LRSA_CHAT_MISTRAL:
            return lrsa_chat_build_inst(t, f, msgs, n_msgs, ids, mask, e);
        case LRSA_CHAT_NONE:
            /* no template: the contents back to back; only assistant text is trained on */
            for (int i = 0; i < n_msgs; i++)
                if (put_text(t, msgs[i].content, ids, mask,
                             (uint8_t)(strcmp(msgs[i].role, "assistant") == 0), e))
                    return -1;
            return 0;
    }
    return lrsa_errorf(e, "unknown chat format %d", (int)f);
}

int lrsa_chat_stop_ids(const lrsa_tokenizer *t, lrsa_chat_format f, int32_t *out, int cap) {
    const char *names[2] = {NULL, NULL};
    switch (f) {
        case LRSA_CHAT_CHATML_SMOLLM:
            names[0] = "<|im_end|>";
            break;
        case LRSA_CHAT_CHATML_QWEN:
            names[0] = "<|im_end|>", names[1] = "<|endoftext|>";
            break;
        case LRSA_CHAT_LLAMA3:
            names[0] = "<|eot_id|>", names[1] = "<|end_of_text|>";
            break;
        case LRSA_CHAT_NONE:
            names[0] = "<|endoftext|>", names[1] = "<|end_of_text|>";
            break;
        case LRSA_CHAT_LLAMA2:
        case LRSA_CHAT_MISTRAL:
            names[0] = "</s>";
            break;
    }
    int n = 0;
    for (int i = 0; i < 2 && names[i]; i++) {
        int32_t id = lrsa_tokenizer_token_id(t, names[i]);
        if (id >= 0 && n < cap) out[n++] = id;
    }
    return n;
}
