/* Errors for people, and internal checks for programmers.
 *
 * Two kinds of failure:
 *  - Bad input (a file, a flag, a config key): library functions return -1 (or NULL) and fill an
 *    lrsa_err with a message that names the file, the place and the fix. The CLI prints it and
 *    exits non-zero. Tests assert on the message. Never abort on bad input.
 *  - A broken invariant inside lrsa (a bug) or an out-of-memory: LRSA_CHECK aborts with file:line.
 */
#ifndef LRSA_ERROR_H
#define LRSA_ERROR_H

#include <stddef.h>

typedef struct lrsa_err {
    char msg[2048];
} lrsa_err;

/* Formats a message into *e (when e is non-NULL) and returns -1, so `return lrsa_errorf(...)`. */
int lrsa_errorf(lrsa_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context ("reading X: ") to an existing message; returns -1. */
int lrsa_err_prefix(lrsa_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "lrsa: error: <msg>" to stderr. */
void lrsa_err_print(const lrsa_err *e);

/* Aborts with file:line and a message: for bugs, never for bad input. */
_Noreturn void lrsa_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LRSA_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) lrsa_fatal(__FILE__, __LINE__, "check failed: " #cond " " __VA_ARGS__);       \
    } while (0)

/* Allocation that never returns NULL (aborts with the size and call site on failure).
 * Memory from lrsa_alloc_aligned is 64-byte aligned and released with free(). */
#define lrsa_malloc(n)        lrsa_malloc_at((n), __FILE__, __LINE__)
#define lrsa_calloc(n, sz)    lrsa_calloc_at((n), (sz), __FILE__, __LINE__)
#define lrsa_realloc(p, n)    lrsa_realloc_at((p), (n), __FILE__, __LINE__)
#define lrsa_alloc_aligned(n) lrsa_alloc_aligned_at((n), __FILE__, __LINE__)
#define lrsa_strdup(s)        lrsa_strdup_at((s), __FILE__, __LINE__)
void *lrsa_malloc_at(size_t n, const char *file, int line);
void *lrsa_calloc_at(size_t n, size_t size, const char *file, int line);
void *lrsa_realloc_at(void *p, size_t n, const char *file, int line);
void *lrsa_alloc_aligned_at(size_t n, const char *file, int line);
char *lrsa_strdup_at(const char *s, const char *file, int line);

#endif
