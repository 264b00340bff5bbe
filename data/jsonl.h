/* Parsing one line of a QA JSONL file into a conversation.
 *
 * Two record forms (extra keys are ignored):
 *   {"context": str, "question": str, "answer": str [, "system": str]}
 *       user turn = context + "\n\n" + question (just question when context is ""), and the
 *       assistant turn = answer. "question" and "answer" must be non-empty.
 *   {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
 *       at least one user turn; the last turn must be a non-empty assistant turn (its content is
 *       the reference answer).
 * Errors name the file, the line (and the column for JSON syntax errors) and the fix. Text that
 * cJSON would take silently is refused, naming the field (e.g. messages[1].content) and the
 * column: invalid UTF-8, the escape \u0000 (a NUL would cut the field there) and lone UTF-16
 * surrogate escapes. */
#ifndef LRSA_DATA_JSONL_H
#define LRSA_DATA_JSONL_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "data/chat.h"

typedef struct lrsa_qa_record {
    int is_chat;         /* 1 = "messages" form */
    lrsa_chat_msg *msgs; /* [n_msgs] the conversation (strings owned by the record) */
    int n_msgs;
    int trunc_msg;      /* message whose content may be cut in the middle to fit --max-len */
    size_t trunc_begin; /* byte span of that content that may be cut (the context) */
    size_t trunc_end;
    const char *answer; /* the last assistant content (points into msgs) */
} lrsa_qa_record;

/* Parses line[0:len] (not necessarily NUL-terminated). Returns 0, or 1 for a blank line (no
 * record), or -1 with *e naming path:lineno. */
int lrsa_jsonl_parse_record(const char *line, size_t len, const char *path, int64_t lineno,
                            lrsa_qa_record *r, lrsa_err *e);
void lrsa_qa_record_free(lrsa_qa_record *r);
/* The checks above that cJSON leaves undone, on a raw line; `where` is "FILE:LINE". */
int lrsa_jsonl_check_text(const char *line, size_t len, const char *where, lrsa_err *e);
#endif
