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
    char question[512]; /* after the context */
    char answer[256];
} lrsa_synth_item;

/* Space-separated names of the tasks. */
const char *lrsa_synth_task_names(void);
int lrsa_synth_task_known(const char *task);
/* Fills *it for one sample; needle 0 (the one the question is about) sits at `depth`, and the
 * needles are listed in the order they appear in the text. */
void lrsa_synth_task_make(const char *task, lrsa_rng *r, double depth, lrsa_synth_item *it);
#endif
