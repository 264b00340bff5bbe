/* The synthetic long-context QA tasks: each draws its needles (facts to hide in the haystack,
 * with their depths), the question and the short reference answer. */
#ifndef LRSA_DATA_SYNTHETIC_TASKS_H
#define LRSA_DATA_SYNTHETIC_TASKS_H
#include "base/rng.h"

#define LRSA_SYNTH_MAX_NEEDLES 8

typedef struct lrsa_synth_item {
    char instruction[512];                     /* before the context */
    char needles[LRSA_SYNTH_MAX_NEEDLES][256]; /* sentences inserted into the haystack */
    double depth[LRSA_SYNTH_MAX_NEEDLES];      /* their positions, fractions of the context */
    int n_needles;
    /* 1 for each needle that carries (part of) the answer: its token span goes into the dataset's
     * /needle_spans (passkey, niah-single, niah-multikey: the asked needle; niah-multivalue: all
     * four values of the key; niah-multiquery: the two asked keys; vartrack: the whole chain;
     * factqa: the birthplace fact, plus the city's country fact for the country question). */
    int answer_needle[LRSA_SYNTH_MAX_NEEDLES];
    char question[512]; /* after the context */
    char answer[256];
} lrsa_synth_item;

/* Space-separated names of the tasks. */
const char *lrsa_synth_task_names(void);
int lrsa_synth_task_known(const char *task);
/* Fills *it for one sample; the needle the question is about sits at `depth`, and the needles are
 * listed in the order they appear in the text (so the asked one is not always needles[0]). */
void lrsa_synth_task_make(const char *task, lrsa_rng *r, double depth, lrsa_synth_item *it);
#endif
