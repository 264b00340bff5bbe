/* Haystack text for the synthetic long-context tasks: real English (the Paul Graham essays that
 * tools/fetch-haystack.sh puts in $LRSA_CACHE/haystack) split into sentences, or, when those
 * are absent, a built-in neutral filler. */
#ifndef LRSA_DATA_HAYSTACK_H
#define LRSA_DATA_HAYSTACK_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct lrsa_haystack {
    char **sents; /* [n] sentences, whitespace collapsed, no leading/trailing space */
    int64_t n;
    int builtin;    /* 1 = the built-in filler (no essays found) */
    int n_files;    /* essays read */
    char desc[512]; /* for the dataset's `source` attribute */
} lrsa_haystack;

/* The directory searched by default: $LRSA_CACHE/haystack, or ./.cache/haystack. */
void lrsa_haystack_default_dir(char *out, size_t cap);
/* Loads every *.txt in dir (sorted by name; dir NULL = the default). Falls back to the built-in
 * filler when the directory is missing or holds no .txt file. Errors only on unreadable files. */
int lrsa_haystack_load(lrsa_haystack *h, const char *dir, lrsa_err *e);
void lrsa_haystack_free(lrsa_haystack *h);
#endif
