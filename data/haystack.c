/* Haystack loading: essays split into sentences, or the built-in filler (see haystack.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/hash.h"
#include "data/haystack.h"

/* Neutral, self-written filler sentences used when no essay text is installed. They avoid
 * numbers and names so they never collide with a needle. */
static const char *const FILLER[] = {
    "The morning light spread slowly across the quiet valley.",
    "A narrow path wound between the fields and the old stone walls.",
    "Most of the houses in the village had small gardens behind them.",
    "People often walked to the market early, before the day grew warm.",
    "The river was calm in summer and loud with melting snow in spring.",
    "Children learned to read in a single room with tall windows.",
    "Travellers who passed through usually stopped to rest by the well.",
    "In the evenings the square filled with conversation and music.",
    "The baker opened his shop before anyone else was awake.",
    "Clouds gathered over the hills but the rain rarely reached the town.",
    "Every autumn the orchards were heavy with apples and pears.",
    "The library kept its oldest books in a cool room under the stairs.",
    "A careful reader notices how each chapter prepares the next one.",
    "Good tools last longer when they are cleaned after every use.",
    "The committee met once a month to discuss the state of the roads.",
    "Some questions take years to answer, and some are never settled.",
    "Farmers watched the sky closely when the harvest was near.",
    "The bridge had been repaired so many times that little of the original remained.",
    "Visitors were often surprised by how quiet the streets became at night.",
    "Learning a craft well requires patience more than talent.",
    "The school added a new wing when the number of pupils grew.",
    "Winter evenings were spent mending nets and telling long stories.",
    "A simple plan, followed steadily, often beats a clever one abandoned halfway.",
    "The painter preferred the soft colours of late afternoon.",
    "Most letters arrived on the slow train that came twice a week.",
    "The forest beyond the ridge was dense and full of birdsong.",
    "Neighbours shared their tools and their advice without being asked.",
    "The clock in the tower had not kept the right time for decades.",
    "Writing things down is a reliable way to notice what you do not understand.",
    "Small boats were pulled up on the shingle when storms approached.",
    "The old road followed the line of the valley rather than the shortest route.",
    "Ideas improve when they are explained plainly to someone else.",
    "A long table in the hall was used for meetings and for meals.",
    "The wind turned cold as soon as the sun went behind the hills.",
    "Shops closed early on the day before a holiday.",
    "The museum displayed tools, maps and photographs from earlier times.",
    "Good work is usually the result of many small corrections.",
    "Walking along the coast, one could see the lighthouse from far away.",
    "The kitchen was the warmest room in the house during the winter.",
    "Nobody remembered exactly when the fountain had stopped working.",
};

void lrsa_haystack_default_dir(char *out, size_t cap) {
    const char *cache = getenv("LRSA_CACHE");
    lrsa_path_join(out, cap, cache && cache[0] ? cache : ".cache", "haystack");
}

static void push(lrsa_haystack *h, int64_t *cap, const char *s, size_t n) {
    if (h->n == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        h->sents = lrsa_realloc(h->sents, (size_t)*cap * sizeof(char *));
    }
    char *c = lrsa_malloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    h->sents[h->n++] = c;
}

/* Collapses whitespace and splits after '.', '!' or '?' followed by whitespace. */
static void split_sentences(lrsa_haystack *h, int64_t *cap, const char *text) {
    size_t n = strlen(text);
    char *buf = lrsa_malloc(n + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        int ws = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
        if (ws) {
            if (len > 0 && buf[len - 1] != ' ') buf[len++] = ' ';
        } else {
            buf[len++] = c;
        }
        int end = (c == '.' || c == '!' || c == '?') &&
                  (i + 1 == n || text[i + 1] == ' ' || text[i + 1] == '\n');
        if (end || i + 1 == n) {
            size_t s = 0;
            while (s < len && buf[s] == ' ') s++;
            while (len > s && buf[len - 1] == ' ') len--;
            /* Keep only real sentences (very short fragments are headings or list marks). */
            if (len - s >= 16) push(h, cap, buf + s, len - s);
            len = 0;
        }
    }
    free(buf);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lrsa_essay_split_parse(const char *name, lrsa_essay_split *out) {
    static const char *const names[] = {"all", "train", "heldout"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *out = (lrsa_essay_split)i;
            return 0;
        }
    return -1;
}

const char *lrsa_essay_split_name(lrsa_essay_split s) {
    return s == LRSA_ESSAYS_TRAIN ? "train" : s == LRSA_ESSAYS_HELDOUT ? "heldout" : "all";
}

int lrsa_essay_is_heldout(const char *name) {
    return lrsa_fnv1a64_str(name) % 4 == 0;
}

static int in_split(const char *name, lrsa_essay_split split) {
    return split == LRSA_ESSAYS_ALL ||
           lrsa_essay_is_heldout(name) == (split == LRSA_ESSAYS_HELDOUT);
}

int lrsa_haystack_load(lrsa_haystack *h, const char *dir, lrsa_err *e) {
    return lrsa_haystack_load_split(h, dir, LRSA_ESSAYS_ALL, e);
}

int lrsa_haystack_load_split(lrsa_haystack *h, const char *dir, lrsa_essay_split split,
                             lrsa_err *e) {
    memset(h, 0, sizeof *h);
    h->split = split;
    char def[4096];
    if (!dir) {
        lrsa_haystack_default_dir(def, sizeof def);
        dir = def;
    }
    int64_t cap = 0;
    char **names = NULL;
    int n_names = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d))) {
            size_t l = strlen(ent->d_name);
            if (l > 4 && strcmp(ent->d_name + l - 4, ".txt") == 0) {
                h->n_found++;
                if (!in_split(ent->d_name, split)) continue;
                names = lrsa_realloc(names, (size_t)(n_names + 1) * sizeof(char *));
                names[n_names++] = lrsa_strdup(ent->d_name);
            }
        }
        closedir(d);
    }
    if (n_names > 1) qsort(names, (size_t)n_names, sizeof(char *), by_name);
    int rc = 0;
    for (int i = 0; i < n_names; i++) {
        char path[8192];
        lrsa_path_join(path, sizeof path, dir, names[i]);
        char *text = lrsa_read_file(path, NULL, e);
        if (!text) {
            rc = lrsa_err_prefix(e,
                                 "reading haystack essays in %s (re-run tools/fetch-haystack.sh "
                                 "or remove the directory): ",
                                 dir);
            break;
        }
        split_sentences(h, &cap, text);
        free(text);
        h->n_files++;
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    if (rc != 0) {
        lrsa_haystack_free(h);
        return -1;
    }
    if (h->n > 0 && split == LRSA_ESSAYS_ALL) {
        snprintf(h->desc, sizeof h->desc, "haystack=paul-graham-essays(%d files, %lld sentences)",
                 h->n_files, (long long)h->n);
        return 0;
    }
    if (h->n > 0) {
        snprintf(h->desc, sizeof h->desc,
                 "haystack=paul-graham-essays(essays=%s: %d of %d files, %lld sentences)",
                 lrsa_essay_split_name(split), h->n_files, h->n_found, (long long)h->n);
        return 0;
    }
    if (split != LRSA_ESSAYS_ALL) {
        if (h->n_found == 0)
            lrsa_errorf(e,
                        "--essays %s: no haystack essays in %s, and the built-in filler has no "
                        "essay split; run tools/fetch-haystack.sh (or give --haystack DIR with "
                        ".txt essays), or use --essays all",
                        lrsa_essay_split_name(split), dir);
        else
            lrsa_errorf(e,
                        "--essays %s: %s of the %d essays in %s (held out = FNV-1a hash of the "
                        "file name mod 4 == 0); add essays (tools/fetch-haystack.sh) or use "
                        "--essays all",
                        lrsa_essay_split_name(split),
                        h->n_files ? "the split holds no sentences" : "the split holds none",
                        h->n_found, dir);
        lrsa_haystack_free(h);
        return -1;
    }
    h->builtin = 1;
    for (size_t i = 0; i < sizeof FILLER / sizeof FILLER[0]; i++)
        push(h, &cap, FILLER[i], strlen(FILLER[i]));
    snprintf(h->desc, sizeof h->desc,
             "haystack=builtin-filler (no essays installed; run tools/fetch-haystack.sh)");
    return 0;
}

void lrsa_haystack_free(lrsa_haystack *h) {
    for (int64_t i = 0; i < h->n; i++) free(h->sents[i]);
    free(h->sents);
    memset(h, 0, sizeof *h);
}
