#include "train/grad_sync.h"

#include <stdlib.h>
#include <string.h>

void lrsa_grad_sync_init(lrsa_grad_sync *s, const lrsa_model *m, const lrsa_comm *comm,
                         int64_t bucket_elems) {
    memset(s, 0, sizeof *s);
    s->comm = comm;
    s->numel = m->table.numel;
    int64_t *ready = lrsa_malloc(sizeof(int64_t) * (size_t)(m->cfg.num_hidden_layers + 2));
    int n_ready = lrsa_model_grad_ready_offsets(m, ready);
    s->lo = lrsa_malloc(sizeof(int64_t) * (size_t)n_ready);
    int64_t hi = s->numel;
    for (int i = 0; i < n_ready; i++) {
        /* a bucket closes at a readiness point once it is big enough; offset 0 closes the last */
        if (ready[i] < hi && (hi - ready[i] >= bucket_elems || ready[i] == 0)) {
            s->lo[s->n_buckets++] = ready[i];
            hi = ready[i];
        }
    }
    free(ready);
    s->reqs = lrsa_calloc((size_t)(s->n_buckets > 0 ? s->n_buckets : 1), sizeof *s->reqs);
}

void lrsa_grad_sync_free(lrsa_grad_sync *s) {
    free(s->lo);
    free(s->reqs);
    memset(s, 0, sizeof *s);
}

static int64_t bucket_hi(const lrsa_grad_sync *s, int b) {
    return b == 0 ? s->numel : s->lo[b - 1];
}

/* Starts bucket b's all-reduce (the double buffer's or the gradients'). */
static void start_bucket(lrsa_grad_sync *s, int b) {
    int64_t lo = s->lo[b], n = bucket_hi(s, b) - lo;
    int rc = s->acc ? lrsa_comm_iallreduce(s->comm, s->acc + lo, n, LRSA_F64, &s->reqs[b],
                                           s->failed ? NULL : &s->err)
                    : lrsa_comm_iallreduce(s->comm, s->grad + lo, n, LRSA_F32, &s->reqs[b],
                                           s->failed ? NULL : &s->err);
    if (rc) s->failed = 1;
    s->launched = b + 1;
}

/* Lets MPI progress the buckets in flight (it moves data only inside MPI calls). */
static void progress(lrsa_grad_sync *s) {
    for (int b = 0; b < s->launched && !s->failed; b++) {
        int done;
        if (lrsa_comm_test(s->comm, &s->reqs[b], &done, &s->err)) s->failed = 1;
    }
}

static void on_ready(void *ctx, int64_t offset) {
    lrsa_grad_sync *s = ctx;
    if (!s->armed || offset >= s->done_from) return;
    if (s->acc) /* this sample's part of the sum, as the blocking path adds it */
        for (int64_t i = offset; i < s->done_from; i++) {
            s->acc[i] += s->grad[i];
            s->grad[i] = 0.0f;
        }
    s->done_from = offset;
    while (s->launched < s->n_buckets && s->lo[s->launched] >= offset) start_bucket(s, s->launched);
    progress(s);
}

void lrsa_grad_sync_attach(lrsa_grad_sync *s, lrsa_workspace *ws) {
    lrsa_workspace_on_grads_ready(ws, on_ready, s);
}

void lrsa_grad_sync_begin(lrsa_grad_sync *s, float *grad, double *acc) {
    s->grad = grad;
    s->acc = acc;
    s->launched = 0;
    s->armed = 0;
    s->done_from = s->numel;
    s->failed = 0;
}

void lrsa_grad_sync_arm(lrsa_grad_sync *s) {
    s->armed = 1;
    s->done_from = s->numel;
}

int lrsa_grad_sync_consumed(const lrsa_grad_sync *s) {
    return s->armed && s->acc != NULL;
}

int lrsa_grad_sync_finish(lrsa_grad_sync *s, lrsa_err *e) {
    while (s->launched < s->n_buckets) start_bucket(s, s->launched);
    for (int b = 0; b < s->n_buckets; b++) {
        lrsa_err we;
        if (lrsa_comm_wait(s->comm, &s->reqs[b], &we) && !s->failed) {
            s->failed = 1;
            s->err = we;
        }
    }
    s->armed = 0;
    if (s->failed) {
        if (e) *e = s->err;
        return -1;
    }
    if (s->acc)
        for (int64_t i = 0; i < s->numel; i++) s->grad[i] = (float)s->acc[i];
    return 0;
}
