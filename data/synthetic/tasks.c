/* Needles, questions and answers for the synthetic tasks (wording is our own; the shapes follow
 * the usual passkey / needle-in-a-haystack / variable-tracking benchmarks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synthetic/tasks.h"

static const char *const TASKS[] = {"passkey",         "niah-single",     "niah-multikey",
                                    "niah-multivalue", "niah-multiquery", "vartrack",
                                    "factqa"};
#define N_TASKS ((int)(sizeof TASKS / sizeof TASKS[0]))

static const char *const ADJ[] = {"amber",  "brisk",  "calm",   "dusty", "eager",  "faint",
                                  "gentle", "hollow", "icy",    "jolly", "keen",   "lofty",
                                  "mellow", "nimble", "olive",  "proud", "quiet",  "rusty",
                                  "silent", "tidy",   "upbeat", "vivid", "woolly", "young"};
static const char *const NOUN[] = {"falcon",  "harbor",  "lantern", "meadow",  "orchard", "pebble",
                                   "quarry",  "ribbon",  "saddle",  "thimble", "valley",  "walnut",
                                   "anchor",  "beacon",  "canyon",  "dagger",  "ember",   "fjord",
                                   "glacier", "hammock", "island",  "jigsaw",  "kettle",  "ledger"};
static const char *const SYL[] = {"ka",  "lo",  "mi",  "ren", "tas", "vel", "dor", "fin", "gal",
                                  "hu",  "ib",  "jor", "ket", "mur", "nal", "os",  "pra", "quin",
                                  "sar", "tul", "ur",  "vos", "wen", "yl",  "zan"};
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

const char *lrsa_synth_task_names(void) {
    return "passkey niah-single niah-multikey niah-multivalue niah-multiquery vartrack factqa";
}

int lrsa_synth_task_known(const char *task) {
    for (int i = 0; i < N_TASKS; i++)
        if (strcmp(task, TASKS[i]) == 0) return 1;
    return 0;
}

static long number(lrsa_rng *r, long lo, long hi) {
    return lo + (long)lrsa_rng_below(r, (uint64_t)(hi - lo + 1));
}

/* "adjective-noun", distinct from the `n` keys already in `used`. */
static void key(lrsa_rng *r, char used[][64], int n, char *out) {
    for (;;) {
        snprintf(out, 64, "%s-%s", ADJ[lrsa_rng_below(r, COUNT(ADJ))],
                 NOUN[lrsa_rng_below(r, COUNT(NOUN))]);
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= strcmp(used[i], out) == 0;
        if (!dup) return;
    }
}

/* An invented capitalised name of 2-3 syllables. */
static void name(lrsa_rng *r, char *out, size_t cap) {
    int n = 2 + (int)lrsa_rng_below(r, 2);
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s", SYL[lrsa_rng_below(r, COUNT(SYL))]);
    out[0] = (char)(out[0] - 'a' + 'A');
}

/* Upper-case variable name of 5 letters. */
static void var(lrsa_rng *r, char *out) {
    for (int i = 0; i < 5; i++) out[i] = (char)('A' + lrsa_rng_below(r, 26));
    out[5] = 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Depths for n needles: needle 0 at `depth`, the others uniform in [lo, 1]; returned sorted,
 * with *first set to the index where `depth` ended up. */
static void depths(lrsa_rng *r, int n, double depth, double lo, double *out, int *first) {
    out[0] = depth;
    for (int i = 1; i < n; i++) out[i] = lo + (1.0 - lo) * lrsa_rng_uniform(r);
    qsort(out, (size_t)n, sizeof(double), cmp_double);
    *first = 0;
    for (int i = 0; i < n; i++)
        if (out[i] == depth) {
            *first = i;
            break;
        }
}

/* Sorted slot of each entry: entry 0 at slot `first`, the others fill the remaining slots in
 * order. */
static void assign_slots(int n, int first, int *slot_of) {
    for (int i = 1, s = 0; i < n; i++, s++) {
        if (s == first) s++;
        slot_of[i] = s;
    }
    slot_of[0] = first;
}

static void passkey(lrsa_rng *r, double depth, lrsa_synth_item *it) {
    long k = number(r, 10000, 99999);
    snprintf(it->instruction, sizeof it->instruction,
             "A pass key is hidden somewhere in the long text below, among a lot of unrelated "
             "material. Find it and remember it, because you will be asked for it at the end.");
    snprintf(it->needles[0], sizeof it->needles[0],
             "The pass key is %ld. Remember it. %ld is the pass key.", k, k);
    it->depth[0] = depth;
    it->n_needles = 1;
    it->answer_needle[0] = 1;
    snprintf(it->question, sizeof it->question,
             "What is the pass key? Answer with the number only.");
    snprintf(it->answer, sizeof it->answer, "%ld", k);
}

static const char *NIAH_INSTR = "Some special magic numbers are hidden inside the long text below. "
                                "Read it carefully and memorize them; a question about them "
                                "follows the text.";

static void niah(const char *task, lrsa_rng *r, double depth, lrsa_synth_item *it) {
    char keys[4][64];
    long vals[4];
    snprintf(it->instruction, sizeof it->instruction, "%s", NIAH_INSTR);
    int multikey = !strcmp(task, "niah-multikey"), multivalue = !strcmp(task, "niah-multivalue"),
        multiquery = !strcmp(task, "niah-multiquery");
    int n = (multikey || multivalue || multiquery) ? 4 : 1;
    for (int i = 0; i < n; i++) {
        if (multivalue && i > 0)
            snprintf(keys[i], 64, "%s", keys[0]); /* one key, several values */
        else
            key(r, keys, i, keys[i]);
        vals[i] = number(r, 1000000, 9999999);
    }
    /* Key/value 0 is what the question asks about (and sits at `depth`). */
    double d[4];
    int first;
    depths(r, n, depth, 0.0, d, &first);
    int slot_of[4];
    assign_slots(n, first, slot_of);
    for (int i = 0; i < n; i++) {
        snprintf(it->needles[slot_of[i]], sizeof it->needles[0],
                 "One of the special magic numbers for %s is: %ld.", keys[i], vals[i]);
        it->depth[slot_of[i]] = d[slot_of[i]];
    }
    it->n_needles = n;
    /* Answer-bearing: key 0 (asked), every value of the one key, or both asked keys. */
    for (int i = 0; i < n; i++)
        it->answer_needle[slot_of[i]] = i == 0 || multivalue || (multiquery && i == 1);
    if (multivalue) {
        /* All values of the one key, in the order they appear. */
        size_t len = 0;
        for (int slot = 0; slot < n; slot++)
            for (int i = 0; i < n; i++)
                if (slot_of[i] == slot)
                    len += (size_t)snprintf(it->answer + len, sizeof it->answer - len, "%s%ld",
                                            slot ? ", " : "", vals[i]);
        snprintf(it->question, sizeof it->question,
                 "What are all the special magic numbers for %s mentioned in the text? List them "
                 "in the order they appear, separated by commas.",
                 keys[0]);
    } else if (multiquery) {
        snprintf(it->question, sizeof it->question,
                 "What are the special magic numbers for %s and for %s mentioned in the text? "
                 "Answer with the two numbers, separated by a comma.",
                 keys[0], keys[1]);
        snprintf(it->answer, sizeof it->answer, "%ld, %ld", vals[0], vals[1]);
    } else {
        snprintf(it->question, sizeof it->question,
                 "What is the special magic number for %s mentioned in the text? Answer with the "
                 "number only.",
                 keys[0]);
        snprintf(it->answer, sizeof it->answer, "%ld", vals[0]);
    }
}

static void vartrack(lrsa_rng *r, double depth, lrsa_synth_item *it) {
    enum { HOPS = 4 };
    char names[HOPS][8];
    long value = number(r, 10000, 99999);
    for (int i = 0; i < HOPS; i++) {
        int dup;
        do {
            var(r, names[i]);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= strcmp(names[i], names[j]) == 0;
        } while (dup);
    }
    snprintf(it->instruction, sizeof it->instruction,
             "Memorize every variable assignment (lines starting with VAR) hidden in the long "
             "text below, and follow the chain of assignments to answer the question.");
    /* The chain starts at `depth`; later hops come after it so each refers back. */
    double d[HOPS];
    int first;
    depths(r, HOPS, depth, depth, d, &first);
    size_t len = 0;
    for (int i = 0; i < HOPS; i++) {
        if (i == 0)
            snprintf(it->needles[i], sizeof it->needles[i], "VAR %s = %ld.", names[0], value);
        else
            snprintf(it->needles[i], sizeof it->needles[i], "VAR %s = VAR %s.", names[i],
                     names[i - 1]);
        it->depth[i] = d[i];
        it->answer_needle[i] = 1; /* the answer lists every variable of the chain */
        len += (size_t)snprintf(it->answer + len, sizeof it->answer - len, "%s%s", i ? ", " : "",
                                names[i]);
    }
    it->n_needles = HOPS;
    snprintf(it->question, sizeof it->question,
             "Which variables are assigned the value %ld, directly or through other variables? "
             "List them in order of assignment, separated by commas.",
             value);
}

static void factqa(lrsa_rng *r, double depth, lrsa_synth_item *it) {
    char person[2][64], city[2][64], country[64];
    for (int i = 0; i < 2; i++) {
        char first[32], last[32];
        name(r, first, sizeof first);
        name(r, last, sizeof last);
        snprintf(person[i], sizeof person[i], "%s %s", first, last);
        name(r, city[i], sizeof city[i]);
        if (i == 1 && !strcmp(city[1], city[0])) snprintf(city[1], 64, "%sberg", city[0]);
    }
    name(r, country, sizeof country);
    snprintf(country + strlen(country), sizeof country - strlen(country), "ia");
    snprintf(it->instruction, sizeof it->instruction,
             "The long text below contains a few facts about invented people and places. Use "
             "only those facts to answer the question after the text.");
    /* Needle 0: the asked person's birthplace (at depth). Then where that city lies, and one
     * distractor person born elsewhere. */
    double d[3];
    int first;
    depths(r, 3, depth, 0.0, d, &first);
    char facts[3][256];
    snprintf(facts[0], 256, "%s was born in the city of %s.", person[0], city[0]);
    snprintf(facts[1], 256, "The city of %s lies in the country of %s.", city[0], country);
    snprintf(facts[2], 256, "%s was born in the city of %s.", person[1], city[1]);
    int slot_of[3];
    assign_slots(3, first, slot_of);
    for (int i = 0; i < 3; i++) {
        snprintf(it->needles[slot_of[i]], sizeof it->needles[0], "%s", facts[i]);
        it->depth[slot_of[i]] = d[slot_of[i]];
    }
    it->n_needles = 3;
    it->answer_needle[slot_of[0]] = 1;
    if (lrsa_rng_below(r, 2) == 0) {
        snprintf(it->question, sizeof it->question,
                 "In which city was %s born? Answer with the name only.", person[0]);
        snprintf(it->answer, sizeof it->answer, "%s", city[0]);
    } else {
        snprintf(it->question, sizeof it->question,
                 "In which country was %s born? Answer with the name only.", person[0]);
        snprintf(it->answer, sizeof it->answer, "%s", country);
        it->answer_needle[slot_of[1]] = 1; /* the country comes from the city's fact */
    }
}

void lrsa_synth_task_make(const char *task, lrsa_rng *r, double depth, lrsa_synth_item *it) {
    memset(it, 0, sizeof *it);
    if (!strcmp(task, "passkey"))
        passkey(r, depth, it);
    else if (!strncmp(task, "niah-", 5))
        niah(task, r, depth, it);
    else if (!strcmp(task, "vartrack"))
        vartrack(r, depth, it);
    else
        factqa(r, depth, it);
}
