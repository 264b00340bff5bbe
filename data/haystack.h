/* Haystack text for the synthetic long-context tasks: real English (the Paul Graham essays that
 * tools/fetch-haystack.sh puts in $LRSA_CACHE/haystack) split into sentences, or, when those
 * are absent, a built-in neutral filler. */
#ifndef LRSA_DATA_HAYSTACK_H
#define LRSA_DATA_HAYSTACK_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Which essays a dataset may draw from. A file is held out when the FNV-1a 64-bit hash of its
 * name (e.g. "addiction.txt", without the directory) is 0 mod 4 (about a quarter), so the split
 * of a file never changes when essays are added or removed, and a training set made from TRAIN
 * shares no essay with an evaluation set made from HELDOUT. */
typedef enum lrsa_essay_split {
    LRSA_ESSAYS_ALL = 0,
    LRSA_ESSAYS_TRAIN,
    LRSA_ESSAYS_HELDOUT
} lrsa_essay_split;

/* "all", "train", "heldout" -> *out; -1 for anything else. */
int lrsa_essay_split_parse(const char *name, lrsa_essay_split *out);
const char *lrsa_essay_split_name(lrsa_essay_split s);
/* 1 when the essay file `name` (a file name, no directory) belongs to the held-out split. */
int lrsa_essay_is_heldout(const char *name);

typedef struct lrsa_haystack {
    char **sents; /* [n] sentences, whitespace collapsed, no leading/trailing space */
    int64_t n;
    int builtin; /* 1 = the built-in filler (no essays found) */
    int n_files; /* essays read */
    int n_found; /* essays in the directory, before the split */
    lrsa_essay_split split;
    char desc[512]; /* for the dataset's `source` attribute */
} lrsa_haystack;

/* The directory searched by default: $LRSA_CACHE/haystack, or ./.cache/haystack. */
void lrsa_haystack_default_dir(char *out, size_t cap);
/* Loads every *.txt in dir (sorted by name; dir NULL = the default). Falls back to the built-in
 * filler when the directory is missing or holds no .txt file. Errors only on unreadable files. */
int lrsa_haystack_load(lrsa_haystack *h, const char *dir, lrsa_err *e);
/* Like lrsa_haystack_load, but only the essays of `split`. A split other than ALL cannot be
 * honoured by the built-in filler: no essays is then an error naming tools/fetch-haystack.sh, and
 * so is a split that holds none of the essays found. */
int lrsa_haystack_load_split(lrsa_haystack *h, const char *dir, lrsa_essay_split split,
                             lrsa_err *e);
void lrsa_haystack_free(lrsa_haystack *h);
#endif
