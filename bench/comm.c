/* Data-parallel communication figures, run under mpirun (or srun):
 *   1. bus bandwidth of all-reduce, reduce-scatter and all-gather over sizes, through the
 *      communication interface (comm.h): MPI on host buffers, and with --device NCCL on device
 *      buffers (one GPU per rank); busbw as NVIDIA's nccl-tests count it (algbw * 2(n-1)/n for
 *      all-reduce, algbw * (n-1)/n for the other two), so figures compare across rank counts;
 *   2. --step: the training step's weak scaling from 1 to N ranks (sub-communicators of the first
 *      1, 2, 4, .. N ranks, the same samples of T tokens per rank):
 *      - on the CPU: forward+backward of each sample with the bucketed overlapped all-reduce
 *        (train/grad_sync.h), AdamW on the ZeRO shard, all-gather of the shards;
 *      - with --device (bench/comm_gpu_step.c): the GPU trainer's step (train/train_gpu.h and its
 *        ZeRO-1 engine over NCCL), with comm.overlap on and off, against the one-GPU trainer;
 *      efficiency = tokens/s at k ranks / (k * tokens/s at 1), i.e. time(1) / time(k).
 * Usage: mpirun -np N bench_comm [--device] [--max-mb 64] [--step] [--config config.json]
 *          [--seq T] [--samples S] [--steps K] [--warmup 1] [--no-overlap] [--recompute]
 *          [--reduce-bf16] [--bucket-mb 25]        (--warmup: untimed GPU steps first)
 * Defaults: CPU step configs/tiny/config-smollm2-vocab.json, T = 256, 2 samples; GPU step
 * configs/bench/llama-3.2-1b.json (the Llama-3.2-1B shape, random weights), T = 8192, 1 sample.
 * Relative paths are relative to the directory it runs in (the repository root). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "bench/comm_bench.h"
#include "model/model.h"
#include "train/comm.h"
#include "train/comm_nccl.h"
#include "train/grad_sync.h"
#include "train/optim.h"

static int fail(const lrsa_comm *c, const lrsa_err *e) {
    fprintf(stderr, "rank %d: %s\n", c->rank, e->msg);
    return 1;
}

int bench_idle_barrier(const lrsa_comm *c, lrsa_err *e) {
    int token = 0;
    lrsa_comm_request req;
    if (lrsa_comm_iallreduce(c, &token, 1, LRSA_I32, &req, e)) return -1;
    for (int done = 0;;) {
        if (lrsa_comm_test(c, &req, &done, e)) return -1;
        if (done) return 0;
        struct timespec ts = {0, 5 * 1000 * 1000}; /* 5 ms */
        nanosleep(&ts, NULL);
    }
}

/* ---- collective bandwidth ------------------------------------------------------------------ */

typedef enum coll { COLL_ALLREDUCE = 0, COLL_REDUCE_SCATTER, COLL_ALLGATHER } coll;
static const char *const coll_name[] = {"all-reduce", "reduce-scatter", "all-gather"};

/* One collective over n fp32 elements (n a multiple of the world size). */
static int run_coll(const lrsa_comm *c, coll k, lrsa_mem mem, void *buf, int64_t n, lrsa_err *e) {
    int64_t block = n / c->world;
    switch (k) {
        case COLL_ALLREDUCE:
            return lrsa_comm_allreduce(c, mem, buf, n, LRSA_F32, LRSA_RED_SUM, NULL, e);
        case COLL_REDUCE_SCATTER:
            return lrsa_comm_reduce_scatter(c, mem, buf, block, LRSA_F32, NULL, e);
        case COLL_ALLGATHER:
            return lrsa_comm_allgather(c, mem, buf, block, LRSA_F32, NULL, e);
    }
    return lrsa_errorf(e, "%s:%d: unknown collective %d", __FILE__, __LINE__, (int)k);
}

/* Seconds per collective over n elements, the slowest rank's mean over `reps`. */
static int time_coll(lrsa_comm *c, coll k, lrsa_mem mem, void *buf, int64_t n, int reps,
                     double *sec, lrsa_err *e) {
    for (int r = -2; r < reps; r++) { /* two warm-ups */
        if (r == 0) {
            if (lrsa_comm_barrier(c, e)) return -1;
            *sec = lrsa_now();
        }
        if (run_coll(c, k, mem, buf, n, e)) return -1;
        if (mem == LRSA_MEM_DEVICE && c->nccl && lrsa_nccl_wait(c, NULL, e)) return -1;
    }
    double t = (lrsa_now() - *sec) / reps;
    if (lrsa_comm_allreduce(c, LRSA_MEM_HOST, &t, 1, LRSA_F64, LRSA_RED_MAX, NULL, e)) return -1;
    *sec = t;
    return 0;
}

static int bench_bandwidth(lrsa_comm *c, const bench_comm_opts *o, lrsa_err *e) {
    lrsa_mem mem = o->device ? LRSA_MEM_DEVICE : LRSA_MEM_HOST;
    int64_t max_n = (int64_t)(o->max_mb * 1e6 / 4);
    max_n -= max_n % c->world;
    void *buf = NULL;
    if (!o->device) {
        buf = lrsa_calloc((size_t)(max_n > 0 ? max_n : 1), sizeof(float));
    } else {
        int refused = 0;
        if (bench_nccl_init(c, &refused, e)) return -1;
        if (refused) return 0;
        buf = bench_dev_alloc(sizeof(float) * (size_t)max_n);
    }
    int rc = 0;
    for (int k = COLL_ALLREDUCE; k <= COLL_ALLGATHER && !rc; k++) {
        /* busbw as NVIDIA's nccl-tests count it: all-reduce moves 2(n-1)/n of the buffer per
         * rank, reduce-scatter and all-gather (n-1)/n; bytes is the whole buffer */
        double factor =
            c->world > 1 ? (k == COLL_ALLREDUCE ? 2.0 : 1.0) * (c->world - 1) / c->world : 0.0;
        if (c->rank == 0)
            printf("%s%s (%s, fp32, in place), %d rank(s)\n%-15s %12s %12s %12s %12s\n",
                   k ? "\n" : "", coll_name[k],
                   o->device ? "NCCL, device buffers" : "MPI, host buffers", c->world, "collective",
                   "bytes", "time_us", "algbw_GB/s", "busbw_GB/s");
        for (int64_t n = 1024; n <= max_n && !rc; n *= 4) {
            int64_t nn = n - n % c->world;
            int reps = nn < (1 << 20) ? 50 : 10;
            double sec = 0;
            rc = time_coll(c, (coll)k, mem, buf, nn, reps, &sec, e);
            double bytes = 4.0 * (double)nn, alg = bytes / sec / 1e9;
            if (!rc && c->rank == 0)
                printf("%-15s %12.0f %12.3f %12.3f %12.3f\n", coll_name[k], bytes, sec * 1e6, alg,
                       alg * factor);
        }
    }
    if (!o->device) {
        free(buf);
    } else { /* the step's rows make their own communicators */
        bench_dev_free(buf);
        lrsa_nccl_free(c);
    }
    fflush(stdout);
    return rc;
}

/* ---- the training step's weak scaling ------------------------------------------------------ */

typedef struct step_state {
    lrsa_model model;
    lrsa_workspace *ws;
    lrsa_adamw opt;
    lrsa_grad_sync sync;
    int32_t *ids;
    float *weight;
} step_state;

/* One step on comm `c`: samples forward+backward, the overlapped reduction, clip, AdamW on the
 * shard, all-gather. */
static int one_step(step_state *s, const lrsa_comm *c, const bench_comm_opts *o, int overlap,
                    lrsa_err *e) {
    lrsa_tensor_table *tab = &s->model.table;
    float *g = tab->arena[LRSA_ROLE_GRAD];
    lrsa_table_zero(tab, LRSA_ROLE_GRAD);
    if (overlap) lrsa_grad_sync_begin(&s->sync, g, NULL);
    lrsa_attn_config attn = {LRSA_ATTN_DENSE, {0, 1, 1.0f, 1.0f}, 0};
    for (int i = 0; i < o->samples; i++) {
        if (overlap && i == o->samples - 1) lrsa_grad_sync_arm(&s->sync);
        lrsa_model_forward_backward(&s->model, s->ws, s->ids + (int64_t)i * o->seq, s->weight, 1,
                                    o->seq, &attn, 0, 1, NULL);
    }
    if (overlap ? lrsa_grad_sync_finish(&s->sync, e)
                : lrsa_comm_allreduce_sum_f32(c, g, tab->numel, e))
        return -1;
    double scale = lrsa_clip_scale(lrsa_grad_norm(g, tab->numel), 1.0);
    lrsa_adamw_step(&s->opt, tab->arena[LRSA_ROLE_PARAM], g, 1e-4, scale);
    int64_t *counts = lrsa_malloc(sizeof(int64_t) * 2 * (size_t)c->world),
            *displs = counts + c->world;
    for (int r = 0; r < c->world; r++) {
        int64_t lo, hi;
        lrsa_shard_range(tab->numel, r, c->world, &lo, &hi);
        counts[r] = hi - lo;
        displs[r] = lo;
    }
    int rc = lrsa_comm_allgatherv_f32(c, tab->arena[LRSA_ROLE_PARAM], counts, displs, e);
    free(counts);
    return rc;
}

static int bench_step(lrsa_comm *world, const bench_comm_opts *o, lrsa_err *e) {
    lrsa_model_config mc;
    if (lrsa_config_load(&mc, o->config, e)) return -1;
    if (world->rank == 0)
        printf("\ntraining step, weak scaling: %s (%lld parameters), %d sample(s) of %d tokens "
               "per rank, overlap %s, %d step(s) timed after 1 warm-up\n%6s %12s %14s %11s\n",
               o->config, lrsa_config_num_params(&mc), o->samples, o->seq,
               o->overlap ? "on" : "off", o->steps, "ranks", "step_s", "tokens/s", "efficiency");
    double t1 = 0;
    for (int k = 1; k <= world->world; k *= 2) {
        lrsa_comm c;
        int in = world->rank < k;
        if (lrsa_comm_split(world, in ? 0 : 1, world->rank, &c, e)) return -1;
        double t = 0;
        if (in) {
            step_state s;
            memset(&s, 0, sizeof s);
            if (lrsa_model_create(&s.model, &mc, e)) return -1;
            lrsa_model_init_random(&s.model, 3, 0.02f);
            lrsa_table_alloc(&s.model.table, LRSA_ROLE_GRAD);
            lrsa_adamw_init(&s.opt, &s.model.table, c.rank, c.world, 0.9, 0.95, 1e-8, 0.0);
            s.ws = lrsa_workspace_new();
            int64_t nt = (int64_t)o->samples * o->seq;
            s.ids = lrsa_malloc(sizeof(int32_t) * (size_t)nt);
            s.weight = lrsa_malloc(sizeof(float) * (size_t)o->seq);
            lrsa_rng rng;
            lrsa_rng_seed(&rng, 11 + (uint64_t)c.rank);
            for (int64_t i = 0; i < nt; i++)
                s.ids[i] = (int32_t)lrsa_rng_below(&rng, (uint64_t)mc.vocab_size);
            for (int i = 0; i < o->seq; i++) s.weight[i] = 1.0f / (float)(o->seq * o->samples * k);
            int overlap = o->overlap && c.world > 1;
            if (overlap) {
                lrsa_grad_sync_init(&s.sync, &s.model, &c, (int64_t)(25e6 / 4));
                lrsa_grad_sync_attach(&s.sync, s.ws);
            }
            int rc = one_step(&s, &c, o, overlap, e); /* warm-up */
            if (!rc) rc = lrsa_comm_barrier(&c, e);
            double t0 = lrsa_now();
            for (int i = 0; i < o->steps && !rc; i++) rc = one_step(&s, &c, o, overlap, e);
            t = (lrsa_now() - t0) / o->steps;
            if (!rc)
                rc = lrsa_comm_allreduce(&c, LRSA_MEM_HOST, &t, 1, LRSA_F64, LRSA_RED_MAX, NULL, e);
            if (overlap) lrsa_grad_sync_free(&s.sync);
            lrsa_workspace_free(s.ws);
            lrsa_adamw_free(&s.opt);
            lrsa_model_free(&s.model);
            free(s.ids);
            free(s.weight);
            if (rc) return -1;
        }
        lrsa_comm_free_sub(&c);
        if (bench_idle_barrier(world, e)) return -1;
        if (k == 1) t1 = t;
        if (world->rank == 0)
            printf("%6d %12.3f %14.0f %10.1f%%\n", k, t, (double)k * o->samples * o->seq / t,
                   100.0 * t1 / t);
        fflush(stdout);
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: mpirun -np N bench_comm [--device] [--max-mb MB] [--step] "
                    "[--config config.json] [--seq T] [--samples S] [--steps K] [--no-overlap] "
                    "[--warmup W] [--recompute] [--reduce-bf16] [--bucket-mb MB]\n");
}

int main(int argc, char **argv) {
    bench_comm_opts o = {0, 0, 1, 0, 0, 64, 25, NULL, -1, -1, 3, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--device"))
            o.device = 1;
        else if (!strcmp(a, "--step"))
            o.step = 1;
        else if (!strcmp(a, "--no-overlap"))
            o.overlap = 0;
        else if (!strcmp(a, "--recompute"))
            o.recompute = 1;
        else if (!strcmp(a, "--reduce-bf16"))
            o.reduce_bf16 = 1;
        else if (!strcmp(a, "--max-mb") && v)
            o.max_mb = atof(argv[++i]);
        else if (!strcmp(a, "--bucket-mb") && v)
            o.bucket_mb = atof(argv[++i]);
        else if (!strcmp(a, "--config") && v)
            o.config = argv[++i];
        else if (!strcmp(a, "--seq") && v)
            o.seq = atoi(argv[++i]);
        else if (!strcmp(a, "--samples") && v)
            o.samples = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && v)
            o.steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && v)
            o.warmup = atoi(argv[++i]);
        else {
            usage();
            return 2;
        }
    }
    if (!o.config)
        o.config =
            o.device ? "configs/bench/llama-3.2-1b.json" : "configs/tiny/config-smollm2-vocab.json";
    if (o.seq < 0) o.seq = o.device ? 8192 : 256;
    if (o.samples < 0) o.samples = o.device ? 1 : 2;
    if (o.seq < 2 || o.samples < 1 || o.steps < 1 || o.warmup < 0 || !(o.max_mb > 0) ||
        !(o.bucket_mb > 0)) {
        fprintf(stderr,
                "bench_comm: --seq must be >= 2, --samples and --steps >= 1, --warmup >= 0, "
                "--max-mb and --bucket-mb > 0\n");
        usage();
        return 2;
    }
    lrsa_comm c;
    lrsa_err e;
    if (lrsa_comm_init(&c, &e)) return fail(&c, &e);
    int rc = bench_bandwidth(&c, &o, &e) ? fail(&c, &e) : 0;
    if (!rc && o.step && (o.device ? bench_gpu_step(&c, &o, &e) : bench_step(&c, &o, &e)))
        rc = fail(&c, &e);
    lrsa_comm_finalize(&c);
    return rc;
}
