/* Task order and target lengths of a synthetic dataset (see plan.h). */
#include "data/synthetic/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "data/synthetic/tasks.h"

/* Stream tags mixed into the seed: the sample stream uses the seed itself. */
#define ORDER_STREAM  0x6f72646572ULL /* "order" */
#define LENGTH_STREAM 0x6c656e67ULL   /* "leng" */

int lrsa_synth_tasks_parse(const char *list, lrsa_synth_tasks *t, lrsa_err *e) {
    memset(t, 0, sizeof *t);
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), p);
        if (len == 0 || len > 31 || !lrsa_synth_task_known(name))
            return lrsa_errorf(e,
                               "--synthetic %s: unknown task '%s'; give one task or a "
                               "comma-separated list of: %s",
                               list, name, lrsa_synth_task_names());
        for (int i = 0; i < t->n; i++)
            if (!strcmp(t->name[i], name))
                return lrsa_errorf(e, "--synthetic %s: task '%s' is listed twice", list, name);
        if (t->n == LRSA_SYNTH_MAX_MIX)
            return lrsa_errorf(e, "--synthetic %s: at most %d tasks in a mixture", list,
                               LRSA_SYNTH_MAX_MIX);
        memcpy(t->name[t->n++], name, len + 1);
        if (!p[len]) break;
        p += len + 1;
    }
    return 0;
}

void lrsa_synth_plan_make(lrsa_synth_plan *p, int64_t n, int n_tasks, int64_t length,
                          int64_t length_max, uint64_t seed) {
    p->n = n;
    p->task = lrsa_calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    p->length = lrsa_malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    lrsa_rng order, lengths;
    lrsa_rng_seed(&order, seed ^ ORDER_STREAM);
    lrsa_rng_seed(&lengths, seed ^ LENGTH_STREAM);
    int64_t perm[LRSA_SYNTH_MAX_MIX];
    for (int64_t i = 0; i < n; i++) {
        if (n_tasks > 1) {
            if (i % n_tasks == 0) { /* a new block: every task once, in a fresh order */
                for (int k = 0; k < n_tasks; k++) perm[k] = k;
                lrsa_rng_shuffle_i64(&order, perm, n_tasks);
            }
            p->task[i] = (int)perm[i % n_tasks];
        }
        p->length[i] = length;
        if (length_max > length)
            p->length[i] += (int64_t)lrsa_rng_below(&lengths, (uint64_t)(length_max - length + 1));
    }
}

void lrsa_synth_plan_free(lrsa_synth_plan *p) {
    free(p->task);
    free(p->length);
    memset(p, 0, sizeof *p);
}
