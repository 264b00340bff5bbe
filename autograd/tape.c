#include "autograd/tape.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

struct lrsa_tape_block {
    lrsa_tape_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void lrsa_tape_init(lrsa_tape *t) {
    memset(t, 0, sizeof *t);
}

void lrsa_tape_free(lrsa_tape *t) {
    for (lrsa_tape_block *b = t->blocks; b;) {
        lrsa_tape_block *next = b->next;
        free(b);
        b = next;
    }
    free(t->entries);
    memset(t, 0, sizeof *t);
}

void lrsa_tape_reset(lrsa_tape *t) {
    t->n = 0;
    for (lrsa_tape_block *b = t->blocks; b; b = b->next) b->used = 0;
}

void *lrsa_tape_push(lrsa_tape *t, const char *name, lrsa_backward_fn fn, size_t ctx_size) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->entries = lrsa_realloc(t->entries, (size_t)t->cap * sizeof *t->entries);
    }
    size_t need = (ctx_size + 15) & ~(size_t)15;
    lrsa_tape_block *b = t->blocks;
    while (b && b->cap - b->used < need) b = b->next;
    if (!b) {
        size_t cap = need > 65536 ? need : 65536;
        b = lrsa_malloc(sizeof *b + cap);
        b->used = 0;
        b->cap = cap;
        b->next = t->blocks;
        t->blocks = b;
    }
    void *ctx = b->data + b->used;
    b->used += need;
    memset(ctx, 0, ctx_size);
    t->entries[t->n++] = (lrsa_tape_entry){fn, ctx, name};
    return ctx;
}

void lrsa_tape_backward(lrsa_tape *t) {
    for (int i = t->n - 1; i >= 0; i--) t->entries[i].fn(t->entries[i].ctx);
    lrsa_tape_reset(t);
}
