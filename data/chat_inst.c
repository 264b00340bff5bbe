/* The Llama 2 and Mistral chat templates ([INST] ... [/INST]) at the id level, with the
 * answer-only loss mask. The templates are those of the Llama-2-chat and Mistral-7B-Instruct
 * repositories (docs/TOKENIZER.md):
 *   Llama 2:  <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user}.strip() [/INST] {answer}.strip() </s>
 *             (<s>[INST] {user}.strip() [/INST] for later turns; no system: no <<SYS>> block)
 *   Mistral:  <s> [INST] {system}\n\n{user} [/INST] {answer}</s> [INST] {user} [/INST] ...
 * Built with lrsa_chat_builder (data/chat_segment.c), as Hugging Face tokenizes the rendered
 * string; message text stays plain text (a "</s>" typed by a user is not the end token). The
 * mask is 1 for the tokens of each answer stretch (from the space before the answer up to the
 * end token, inclusive) and 0 elsewhere. */
#include <stdlib.h>
#include <string.h>

#include "data/chat_internal.h"
#include "data/tokenizer_internal.h"

/* Python's str.isspace set (Jinja's .strip() is Python's). */
static int py_space(int32_t cp) {
    return (cp >= 9 && cp <= 13) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* s[*a..*b) without leading and trailing whitespace. */
static void py_strip(const char *s, size_t *a, size_t *b) {
    const unsigned char *u = (const unsigned char *)s;
    while (*a < *b) {
        int32_t cp;
        int k = lrsa_utf8_next(u + *a, *b - *a, &cp);
        if (!py_space(cp)) break;
        *a += (size_t)k;
    }
    while (*b > *a) {
        size_t i = *b - 1;
        while (i > *a && (u[i] & 0xC0) == 0x80) i--;
        int32_t cp;
        lrsa_utf8_next(u + i, *b - i, &cp);
        if (!py_space(cp)) break;
        *b = i;
    }
}

static void add_stripped(lrsa_chat_builder *b, const char *s, uint8_t mask) {
    size_t a = 0, z = strlen(s);
    py_strip(s, &a, &z);
    lrsa_chat_text(b, s + a, z - a, mask);
}

/* The messages after an optional leading system message must alternate user, assistant. */
static int check_roles(lrsa_chat_format f, const lrsa_chat_msg *m, int n, const char **sys,
                       int *first, lrsa_err *e) {
    *sys = n > 0 && strcmp(m[0].role, "system") == 0 ? m[0].content : NULL;
    *first = *sys ? 1 : 0;
    for (int i = *first; i < n; i++) {
        const char *want = (i - *first) % 2 == 0 ? "user" : "assistant";
        if (strcmp(m[i].role, want) != 0)
            return lrsa_errorf(e,
                               "chat format %s: message %d has role \"%s\" where \"%s\" is "
                               "expected; after an optional first system message the roles "
                               "must alternate user, assistant, user, ...",
                               lrsa_chat_format_name(f), i, m[i].role, want);
    }
    return 0;
}

static int build(lrsa_chat_builder *b, lrsa_chat_format f, const lrsa_chat_msg *m, int n,
                 lrsa_err *e) {
    int32_t bos, eos;
    const char *sys;
    int first;
    if (lrsa_chat_need_token(b->t, "<s>", f, &bos, e) ||
        lrsa_chat_need_token(b->t, "</s>", f, &eos, e) || check_roles(f, m, n, &sys, &first, e))
        return -1;
    const int llama2 = f == LRSA_CHAT_LLAMA2;
    if (!llama2 && lrsa_chat_special(b, bos, 0, e)) return -1;
    for (int i = first; i < n; i++) {
        if (strcmp(m[i].role, "assistant") == 0) {
            lrsa_chat_str(b, " ", 1);
            if (llama2) {
                add_stripped(b, m[i].content, 1);
                lrsa_chat_str(b, " ", 1);
            } else {
                lrsa_chat_str(b, m[i].content, 1);
            }
            if (lrsa_chat_special(b, eos, 1, e)) return -1;
            continue;
        }
        if (llama2) {
            if (lrsa_chat_special(b, bos, 0, e)) return -1;
            lrsa_chat_str(b, "[INST] ", 0);
            if (i == first && sys) { /* the system block is stripped together with the text */
                size_t ls = strlen(sys), lu = strlen(m[i].content);
                char *all = lrsa_malloc(ls + lu + 32);
                memcpy(all, "<<SYS>>\n", 8);
                memcpy(all + 8, sys, ls);
                memcpy(all + 8 + ls, "\n<</SYS>>\n\n", 11);
                memcpy(all + 19 + ls, m[i].content, lu + 1);
                add_stripped(b, all, 0);
                free(all);
            } else {
                add_stripped(b, m[i].content, 0);
            }
            lrsa_chat_str(b, " [/INST]", 0);
        } else {
            lrsa_chat_str(b, " [INST] ", 0);
            if (i == first && sys) {
                lrsa_chat_str(b, sys, 0);
                lrsa_chat_str(b, "\n\n", 0);
            }
            lrsa_chat_str(b, m[i].content, 0);
            lrsa_chat_str(b, " [/INST]", 0);
        }
    }
    return 0; /* the generation prompt adds nothing: the text ends with [/INST] */
}

int lrsa_chat_build_inst(const lrsa_tokenizer *t, lrsa_chat_format f, const lrsa_chat_msg *msgs,
                         int n_msgs, lrsa_ids *ids, lrsa_mask *mask, lrsa_err *e) {
    lrsa_chat_builder b;
    lrsa_chat_builder_init(&b, t, ids, mask);
    if (build(&b, f, msgs, n_msgs, e)) {
        lrsa_chat_builder_free(&b);
        return -1;
    }
    return lrsa_chat_finish(&b, e);
}
