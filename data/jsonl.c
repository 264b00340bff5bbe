/* QA JSONL records -> conversations (see jsonl.h for the accepted forms). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/jsonl.h"

static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* The string member `key`, or NULL with *e set (missing / not a string / empty when required). */
static const char *get_string(const cJSON *obj, const char *key, int required_nonempty,
                              const char *where, lrsa_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        lrsa_errorf(e,
                    "%s: missing field \"%s\"; every record needs \"context\", \"question\" and "
                    "\"answer\" strings, or a \"messages\" list",
                    where, key);
        return NULL;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        lrsa_errorf(e, "%s: field \"%s\" must be a string (write it in double quotes)", where, key);
        return NULL;
    }
    if (required_nonempty && v->valuestring[0] == '\0') {
        lrsa_errorf(e, "%s: field \"%s\" is empty; give it some text or remove the record", where,
                    key);
        return NULL;
    }
    return v->valuestring;
}

static void add_msg(lrsa_qa_record *r, const char *role, const char *content) {
    r->msgs = lrsa_realloc(r->msgs, (size_t)(r->n_msgs + 1) * sizeof *r->msgs);
    r->msgs[r->n_msgs].role = lrsa_strdup(role);
    r->msgs[r->n_msgs].content = lrsa_strdup(content);
    r->n_msgs++;
}

static int parse_qa(const cJSON *root, const char *where, lrsa_qa_record *r, lrsa_err *e) {
    const char *context = get_string(root, "context", 0, where, e);
    if (!context) return -1;
    const char *question = get_string(root, "question", 1, where, e);
    if (!question) return -1;
    const char *answer = get_string(root, "answer", 1, where, e);
    if (!answer) return -1;
    if (cJSON_GetObjectItemCaseSensitive(root, "system")) {
        const char *system = get_string(root, "system", 0, where, e);
        if (!system) return -1;
        add_msg(r, "system", system);
    }
    size_t nc = strlen(context), nq = strlen(question);
    char *user = lrsa_malloc(nc + nq + 3);
    size_t at = 0;
    if (nc > 0) {
        memcpy(user, context, nc);
        memcpy(user + nc, "\n\n", 2);
        at = nc + 2;
    }
    memcpy(user + at, question, nq + 1);
    r->trunc_msg = r->n_msgs;
    r->trunc_begin = 0;
    r->trunc_end = nc;
    add_msg(r, "user", user);
    free(user);
    add_msg(r, "assistant", answer);
    return 0;
}

static int parse_chat(const cJSON *msgs, const char *where, lrsa_qa_record *r, lrsa_err *e) {
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return lrsa_errorf(e,
                           "%s: \"messages\" must be a non-empty list of {\"role\", "
                           "\"content\"} objects",
                           where);
    int i = 0, n_user = 0;
    size_t longest = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        char w[600];
        snprintf(w, sizeof w, "%s: messages[%d]", where, i);
        if (!cJSON_IsObject(m))
            return lrsa_errorf(e, "%s must be an object with \"role\" and \"content\"", w);
        const char *role = get_string(m, "role", 1, w, e);
        if (!role) return -1;
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
            return lrsa_errorf(e,
                               "%s: role \"%s\" is not one of \"system\", \"user\", "
                               "\"assistant\"",
                               w, role);
        const char *content = get_string(m, "content", 0, w, e);
        if (!content) return -1;
        if (!strcmp(role, "user")) {
            n_user++;
            /* The longest user turn is taken to hold the long context that may be cut. */
            size_t len = strlen(content);
            if (len > longest || n_user == 1) {
                longest = len;
                r->trunc_msg = r->n_msgs;
                r->trunc_begin = 0;
                r->trunc_end = len;
            }
        }
        add_msg(r, role, content);
        i++;
    }
    if (n_user == 0) return lrsa_errorf(e, "%s: \"messages\" has no \"user\" turn; add one", where);
    const lrsa_chat_msg *last = &r->msgs[r->n_msgs - 1];
    if (strcmp(last->role, "assistant") != 0)
        return lrsa_errorf(e,
                           "%s: the last message must be the assistant's answer (role "
                           "\"assistant\"), not \"%s\"",
                           where, last->role);
    if (last->content[0] == '\0')
        return lrsa_errorf(e, "%s: the last assistant message is empty; give the answer text",
                           where);
    return 0;
}

int lrsa_jsonl_parse_record(const char *line, size_t len, const char *path, int64_t lineno,
                            lrsa_qa_record *r, lrsa_err *e) {
    memset(r, 0, sizeof *r);
    if (is_blank(line, len)) return 1;
    char where[512];
    snprintf(where, sizeof where, "%s:%lld", path, (long long)lineno);
    /* cJSON keeps a raw NUL inside a string, and every C string use of the value would then
     * silently cut the text there: refuse it (JSON text never contains one). */
    const char *nul = memchr(line, '\0', len);
    if (nul)
        return lrsa_errorf(e, "%s:%ld: a raw NUL byte; JSON text cannot contain one (remove it)",
                           where, (long)(nul - line) + 1);
    if (lrsa_jsonl_check_text(line, len, where, e) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long col = (at && at >= line && at <= line + len) ? (long)(at - line) + 1 : 1;
        return lrsa_errorf(e,
                           "%s:%ld: invalid JSON; each line must be one complete JSON object "
                           "(check quotes, commas and braces near column %ld)",
                           where, col, col);
    }
    int rc = -1;
    if (end && !is_blank(end, (size_t)(line + len - end))) {
        lrsa_errorf(e, "%s:%ld: unexpected text after the JSON object; put one record per line",
                    where, (long)(end - line) + 1);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        lrsa_errorf(e,
                    "%s: the line is JSON but not an object; write {\"context\": ..., "
                    "\"question\": ..., \"answer\": ...}",
                    where);
        goto done;
    }
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    r->is_chat = msgs != NULL;
    if ((msgs ? parse_chat(msgs, where, r, e) : parse_qa(root, where, r, e)) != 0) goto done;
    r->answer = r->msgs[r->n_msgs - 1].content;
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc != 0) lrsa_qa_record_free(r);
    return rc;
}

void lrsa_qa_record_free(lrsa_qa_record *r) {
    for (int i = 0; i < r->n_msgs; i++) {
        free((char *)r->msgs[i].role);
        free((char *)r->msgs[i].content);
    }
    free(r->msgs);
    memset(r, 0, sizeof *r);
}
