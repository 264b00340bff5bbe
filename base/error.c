#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lrsa_errorf(lrsa_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int lrsa_err_prefix(lrsa_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char prefix[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s%s", prefix, old);
    return -1;
}

void lrsa_err_print(const lrsa_err *e) {
    fprintf(stderr, "lrsa: error: %s\n", e && e->msg[0] ? e->msg : "(no message)");
}

_Noreturn void lrsa_fatal(const char *file, int line, const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "lrsa: internal error at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *lrsa_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) lrsa_fatal(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *lrsa_calloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) lrsa_fatal(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *lrsa_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) lrsa_fatal(file, line, "out of memory reallocating to %zu bytes", n);
    return q;
}

void *lrsa_alloc_aligned_at(size_t n, const char *file, int line) {
    size_t rounded = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) lrsa_fatal(file, line, "out of memory allocating %zu aligned bytes", n);
    return p;
}

char *lrsa_strdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = lrsa_malloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}
