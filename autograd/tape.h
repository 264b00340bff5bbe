/* The tape: records, during a forward pass, which hand-written backward functions must run, and
 * replays them in reverse. It never differentiates anything itself.
 *
 * An op wrapper runs its forward, then calls lrsa_tape_push() to get storage for a context
 * struct (the pointers and sizes its backward needs) and fills it. lrsa_tape_backward() calls
 * each entry's function on its context, newest first. Context storage is stable: pointers
 * returned by lrsa_tape_push stay valid until lrsa_tape_reset/free.
 *
 * Recomputation: a model can record one entry per layer whose backward re-runs that layer's
 * forward on a nested tape and replays it (see model/). A NULL tape means "no grad": op
 * wrappers then run the forward only. */
#ifndef LRSA_TAPE_H
#define LRSA_TAPE_H

#include <stddef.h>

typedef void (*lrsa_backward_fn)(void *ctx);

typedef struct lrsa_tape_entry {
    lrsa_backward_fn fn;
    void *ctx;
    const char *name; /* static string, for debugging and profiling */
} lrsa_tape_entry;

typedef struct lrsa_tape_block lrsa_tape_block;

typedef struct lrsa_tape {
    lrsa_tape_entry *entries;
    int n, cap;
    lrsa_tape_block *blocks; /* context storage, a list of blocks so pointers never move */
} lrsa_tape;

void lrsa_tape_init(lrsa_tape *t);
void lrsa_tape_free(lrsa_tape *t);
/* Forgets the entries, keeps the memory. */
void lrsa_tape_reset(lrsa_tape *t);
/* Records a backward call; returns zeroed, 16-byte aligned storage of ctx_size bytes. */
void *lrsa_tape_push(lrsa_tape *t, const char *name, lrsa_backward_fn fn, size_t ctx_size);
/* Runs every recorded backward, newest first; then resets the tape. */
void lrsa_tape_backward(lrsa_tape *t);

#endif
