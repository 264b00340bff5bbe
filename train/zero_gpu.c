/* The ZeRO-1 GPU engine (zero_gpu.h): host code driving streams, events, the shard kernels
 * (zero_cuda.cu) and the device collectives (comm.h -> NCCL). Compiled, NEVER RUN ON A GPU. */
#include "train/zero_gpu.h"

#ifdef LRSA_HAVE_CUDA
#include <stdlib.h>
#include <string.h>

#include "kernels/device/cuda_check.h"
#include "train/comm_nccl.h"

struct lrsa_zero_gpu {
    const lrsa_comm *c;
    const lrsa_zero_layout *L;
    lrsa_zero_gpu_opts o;
    cudaStream_t compute, comm; /* the backward's stream; the reductions' own stream */
    cudaEvent_t *ready;         /* per bucket: its gradients are final on the compute stream */
    cudaEvent_t *gathered;      /* per bucket: its bf16 weights are all-gathered (comm stream) */
    cudaEvent_t reduced, updated;
    float *grad;
    lrsa_bf16 *param_bf16, *comm_bf16; /* comm_bf16: bf16 copies of buckets (reduce_bf16) */
    float *master;                     /* this rank's shard of the fp32 weights */
    lrsa_adamw_cuda opt;               /* moments of the shard, decay ranges, step count */
    lrsa_zero_span *spans, *spans_dev;
    int n_spans;
    double *partials, *norm;
    float *scale;
    int launched, armed, failed;
    int waited; /* buckets (forward order) the compute stream waits for since the last gather */
    lrsa_err err;
};

/* Enqueues bucket b's reduce-scatter on the communication stream, after the compute stream
 * has produced its gradients. */
static void start_bucket(lrsa_zero_gpu *z, int b) {
    const lrsa_zero_bucket *bk = &z->L->b[b];
    const int rank = z->L->rank;
    lrsa_err *e = z->failed ? NULL : &z->err;
    CUDA_CHECK(cudaEventRecord(z->ready[b], z->compute));
    CUDA_CHECK(cudaStreamWaitEvent(z->comm, z->ready[b], 0));
    int rc;
    if (z->o.reduce_bf16) {
        lrsa_bf16 *buf = z->comm_bf16 + bk->lo;
        lrsa_bf16_from_f32_cuda(buf, z->grad + bk->lo, bk->hi - bk->lo, z->comm);
        rc = lrsa_comm_reduce_scatter(z->c, LRSA_MEM_DEVICE, buf, bk->piece, LRSA_BF16, z->comm, e);
        if (!rc)
            lrsa_f32_from_bf16_cuda(z->grad + bk->lo + rank * bk->piece, buf + rank * bk->piece,
                                    bk->piece, z->comm);
    } else {
        rc = lrsa_comm_reduce_scatter(z->c, LRSA_MEM_DEVICE, z->grad + bk->lo, bk->piece, LRSA_F32,
                                      z->comm, e);
    }
    if (rc) z->failed = 1;
    z->launched = b + 1;
}

void lrsa_zero_gpu_on_ready(void *ctx, int64_t offset) {
    lrsa_zero_gpu *z = ctx;
    if (!z->armed || !z->o.overlap || z->failed) return;
    int n = lrsa_zero_buckets_ready(z->L, offset);
    while (z->launched < n) start_bucket(z, z->launched);
}

void lrsa_zero_gpu_arm(lrsa_zero_gpu *z) {
    z->armed = 1;
}

/* The compute stream waits for the all-gather of the first n buckets in forward order (the
 * ones it does not wait for yet). */
static void wait_gathered(lrsa_zero_gpu *z, int n) {
    const int nb = z->L->n_buckets;
    for (; z->waited < n; z->waited++)
        CUDA_CHECK(cudaStreamWaitEvent(z->compute, z->gathered[nb - 1 - z->waited], 0));
}

void lrsa_zero_gpu_on_weights_needed(void *ctx, int64_t end) {
    lrsa_zero_gpu *z = ctx;
    wait_gathered(z, lrsa_zero_buckets_needed(z->L, end));
}

int lrsa_zero_gpu_reduce(lrsa_zero_gpu *z, lrsa_err *e) {
    /* a rank without a sample this step ran no forward: its compute stream waits here */
    wait_gathered(z, z->L->n_buckets);
    while (z->launched < z->L->n_buckets && !z->failed) start_bucket(z, z->launched);
    CUDA_CHECK(cudaEventRecord(z->reduced, z->comm));
    CUDA_CHECK(cudaStreamWaitEvent(z->compute, z->reduced, 0));
    z->launched = 0;
    z->armed = 0;
    if (z->failed) {
        z->failed = 0;
        if (e) *e = z->err;
        return -1;
    }
    return 0;
}

void lrsa_zero_gpu_poison_grad(lrsa_zero_gpu *z) {
    for (int s = 0; s < z->n_spans; s++)
        if (z->spans[s].real > 0) {
            CUDA_CHECK(cudaMemsetAsync(z->grad + z->spans[s].abs, 0xFF, sizeof(float), z->compute));
            return;
        }
}

/* Waits for a stream: through NCCL's watchdog (timeout, abort) when there is a communicator. */
static int wait_stream(lrsa_zero_gpu *z, cudaStream_t s, lrsa_err *e) {
    if (z->c->nccl) return lrsa_nccl_wait(z->c, s, e);
    CUDA_CHECK(cudaStreamSynchronize(s));
    return 0;
}

int lrsa_zero_gpu_grad_norm(lrsa_zero_gpu *z, double max_norm, double *norm, lrsa_err *e) {
    lrsa_zero_sumsq_cuda(z->partials, z->grad, z->spans_dev, z->n_spans, z->L->shard, z->compute);
    /* the partials of every rank added slot by slot, then summed in one fixed order */
    if (lrsa_comm_allreduce(z->c, LRSA_MEM_DEVICE, z->partials, LRSA_ZERO_NORM_PARTS, LRSA_F64,
                            LRSA_RED_SUM, z->compute, e))
        return -1;
    lrsa_norm_from_partials_cuda(z->norm, z->scale, z->partials, LRSA_ZERO_NORM_PARTS, max_norm,
                                 z->compute);
    CUDA_CHECK(cudaMemcpyAsync(norm, z->norm, sizeof(double), cudaMemcpyDeviceToHost, z->compute));
    return wait_stream(z, z->compute, e);
}

int lrsa_zero_gpu_step(lrsa_zero_gpu *z, double lr, lrsa_err *e) {
    const lrsa_zero_layout *L = z->L;
    lrsa_zero_adamw_cuda(&z->opt, z->master, z->grad, z->param_bf16, z->spans_dev, z->n_spans,
                         L->shard, lr, z->scale, z->compute);
    CUDA_CHECK(cudaEventRecord(z->updated, z->compute));
    CUDA_CHECK(cudaStreamWaitEvent(z->comm, z->updated, 0));
    /* Forward order (the bucket holding the embedding and the first layers first). With overlap
     * each bucket is its own collective with its own event, and the next forward waits bucket
     * by bucket (lrsa_zero_gpu_on_weights_needed), so the later buckets' gather runs behind the
     * first layers' forward; without, one NCCL group and the compute stream waits for all. */
    const int prefetch = z->o.overlap, grouped = !prefetch && z->c->nccl != NULL;
    int rc = 0;
    if (grouped && lrsa_nccl_group_start(z->c, e)) return -1;
    for (int k = 0; k < L->n_buckets && !rc; k++) {
        const lrsa_zero_bucket *b = &L->b[L->n_buckets - 1 - k];
        rc = lrsa_comm_allgather(z->c, LRSA_MEM_DEVICE, z->param_bf16 + b->lo, b->piece, LRSA_BF16,
                                 z->comm, e);
        if (!rc && prefetch)
            CUDA_CHECK(cudaEventRecord(z->gathered[L->n_buckets - 1 - k], z->comm));
    }
    if (grouped && lrsa_nccl_group_end(z->c, rc ? NULL : e)) rc = -1;
    if (rc) return -1;
    z->waited = 0;
    if (!prefetch) {
        for (int b = 0; b < L->n_buckets; b++) CUDA_CHECK(cudaEventRecord(z->gathered[b], z->comm));
        wait_gathered(z, L->n_buckets);
    }
    return 0;
}

int64_t lrsa_zero_gpu_adam_t(const lrsa_zero_gpu *z) {
    return z->opt.t;
}

int lrsa_zero_gpu_download(lrsa_zero_gpu *z, float *param_full, float *m_full, float *v_full,
                           int root, lrsa_err *e) {
    if (wait_stream(z, z->compute, e) || wait_stream(z, z->comm, e)) return -1;
    const int64_t S = z->L->shard;
    float *local = lrsa_malloc(sizeof(float) * (size_t)(S > 0 ? S : 1));
    const float *dev[3] = {z->master, z->opt.m, z->opt.v};
    float *full[3] = {param_full, m_full, v_full};
    int rc = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        if (!full[k] && root < 0) continue; /* every rank takes part, or none */
        if (S > 0) lrsa_dev_download(local, dev[k], sizeof(float) * (size_t)S);
        int here = root < 0 || z->c->rank == root;
        float *dst = here ? full[k] : NULL;
        float *scratch = NULL;
        if (here && !dst) /* root must receive even what it does not keep */
            dst = scratch = lrsa_malloc(sizeof(float) * (size_t)(z->L->numel ? z->L->numel : 1));
        rc = lrsa_zero_gather(z->c, z->L, local, dst, root, e);
        free(scratch);
    }
    free(local);
    return rc;
}

lrsa_zero_gpu *lrsa_zero_gpu_new(const lrsa_comm *c, const lrsa_zero_layout *L,
                                 const lrsa_adamw *opt, const float *param_full,
                                 const float *m_full, const float *v_full, float *grad,
                                 lrsa_bf16 *param_bf16, cudaStream_t compute,
                                 const lrsa_zero_gpu_opts *o, lrsa_err *e) {
    if (c->world != L->world || c->rank != L->rank) {
        lrsa_errorf(e, "%s:%d: the ZeRO layout was made for rank %d of %d, not %d of %d", __FILE__,
                    __LINE__, L->rank, L->world, c->rank, c->world);
        return NULL;
    }
    lrsa_zero_gpu *z = lrsa_calloc(1, sizeof *z);
    z->c = c;
    z->L = L;
    z->o = *o;
    z->compute = compute;
    z->grad = grad;
    z->param_bf16 = param_bf16;
    CUDA_CHECK(cudaStreamCreateWithFlags(&z->comm, cudaStreamNonBlocking));
    z->ready = lrsa_calloc((size_t)(L->n_buckets > 0 ? L->n_buckets : 1), sizeof *z->ready);
    z->gathered = lrsa_calloc((size_t)(L->n_buckets > 0 ? L->n_buckets : 1), sizeof *z->gathered);
    for (int b = 0; b < L->n_buckets; b++) {
        CUDA_CHECK(cudaEventCreateWithFlags(&z->ready[b], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&z->gathered[b], cudaEventDisableTiming));
    }
    z->waited = L->n_buckets; /* nothing gathered yet: the weights are the uploaded ones */
    cudaEvent_t *evs[] = {&z->reduced, &z->updated};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        CUDA_CHECK(cudaEventCreateWithFlags(evs[i], cudaEventDisableTiming));
    if (o->reduce_bf16) z->comm_bf16 = lrsa_dev_alloc(sizeof(lrsa_bf16) * (size_t)L->padded);

    /* this rank's piece of every bucket */
    z->n_spans = L->n_buckets;
    z->spans = lrsa_calloc((size_t)(L->n_buckets > 0 ? L->n_buckets : 1), sizeof *z->spans);
    for (int b = 0; b < L->n_buckets; b++) {
        lrsa_zero_span *s = &z->spans[b];
        s->local = L->b[b].local;
        s->piece = L->b[b].piece;
        s->abs = L->b[b].lo + (int64_t)L->rank * s->piece;
        int64_t real = L->numel - s->abs;
        s->real = real < 0 ? 0 : (real < s->piece ? real : s->piece);
    }
    z->spans_dev = lrsa_dev_alloc(sizeof(lrsa_zero_span) * (size_t)z->n_spans);
    lrsa_dev_upload(z->spans_dev, z->spans, sizeof(lrsa_zero_span) * (size_t)z->n_spans);

    /* the shard of the weights and of the moments, from the whole host arrays */
    const int64_t S = L->shard;
    size_t sbytes = sizeof(float) * (size_t)(S > 0 ? S : 1);
    float *w = lrsa_malloc(sbytes), *m = lrsa_calloc(1, sbytes), *v = lrsa_calloc(1, sbytes);
    lrsa_zero_extract(L, param_full, w);
    if (m_full) lrsa_zero_extract(L, m_full, m);
    if (v_full) lrsa_zero_extract(L, v_full, v);
    z->master = lrsa_dev_alloc(sbytes);
    lrsa_dev_upload(z->master, w, sizeof(float) * (size_t)S);
    lrsa_adamw shard_opt = *opt; /* hyperparameters, decay ranges (arena offsets), t */
    shard_opt.lo = 0;
    shard_opt.hi = S;
    shard_opt.m = m;
    shard_opt.v = v;
    lrsa_adamw_cuda_init(&z->opt, &shard_opt);
    free(w);
    free(m);
    free(v);
    z->partials = lrsa_dev_alloc(sizeof(double) * LRSA_ZERO_NORM_PARTS);
    z->norm = lrsa_dev_alloc(sizeof(double));
    z->scale = lrsa_dev_alloc(sizeof(float));
    return z;
}

void lrsa_zero_gpu_free(lrsa_zero_gpu *z) {
    if (!z) return;
    /* a failed communicator may never finish its stream: do not wait on it then */
    if (!lrsa_nccl_aborted(z->c)) {
        CUDA_CHECK(cudaStreamSynchronize(z->comm));
        CUDA_CHECK(cudaStreamSynchronize(z->compute));
    }
    for (int b = 0; b < z->L->n_buckets; b++) {
        cudaEventDestroy(z->ready[b]);
        cudaEventDestroy(z->gathered[b]);
    }
    cudaEventDestroy(z->reduced);
    cudaEventDestroy(z->updated);
    cudaStreamDestroy(z->comm);
    lrsa_adamw_cuda_free(&z->opt);
    void *bufs[] = {z->comm_bf16, z->master, z->spans_dev, z->partials, z->norm, z->scale};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lrsa_dev_free(bufs[i]);
    free(z->ready);
    free(z->gathered);
    free(z->spans);
    free(z);
}
#else
typedef int lrsa_zero_gpu_unused; /* ISO C forbids an empty translation unit */
#endif
