/* bench_comm --device --step: the GPU training step's weak scaling from 1 to N ranks.
 *
 * The step is the GPU trainer's own (train/train_gpu.h, in data parallel its ZeRO-1 engine
 * train/zero_gpu.c over NCCL): the same calls train/trainer.c's train_step makes, in its order
 * (zero the gradients; forward+backward of each local sample through the model code on the CUDA
 * op table, the last one armed so its readiness callbacks start the bucketed reduce-scatter;
 * the remaining buckets; the global norm and clip factor; fused AdamW on the shard and the bf16
 * all-gather), without the data loader, logging and skip-guard around it. Random token ids,
 * random weights (the shape of the config), dense attention, `samples` sequences of `seq`
 * tokens per rank and step (weak scaling: the per-rank micro-batch stays the same).
 *
 * Rows: the one-GPU trainer (no NCCL; what a plain `lrsa train device=cuda` runs), then for the
 * first k = 1, 2, 4, .. N ranks (and N) the engine with comm.overlap on and off. Efficiency =
 * tokens/s at k ranks / (k * tokens/s of the one-GPU trainer) = its step time / the k-rank step
 * time. `loss` is the global mean NLL of the last timed step (about ln(vocab) for random weights:
 * a sanity figure, the same computation on every row). Times: the slowest rank's mean over
 * `steps` steps after `warmup` untimed ones (default 1), the device synchronised before and
 * after.
 *
 * Where NCCL refuses a communicator (several ranks of a node on one GPU, as on a one-GPU
 * machine under `mpirun -np 2`), the row says so and the benchmark goes on. Compiled with CUDA
 * and NCCL, run in emulation (emu_bench_comm_smoke), never run on a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/comm_bench.h"

#ifdef LRSA_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "kernels/device/device_buffer.h"
#include "model/model.h"
#include "train/comm_nccl.h"
#include "train/launch_env.h"
#include "train/optim.h"
#include "train/train_gpu.h"

void *bench_dev_alloc(size_t bytes) {
    void *p = lrsa_dev_alloc(bytes);
    if (p) lrsa_dev_fill_bytes(p, 0, bytes);
    return p;
}

void bench_dev_free(void *p) {
    if (p) lrsa_dev_free(p);
}

/* Whether another rank of c on this host would take this rank's GPU (pick_device's choice). */
static int shares_gpu(const lrsa_comm *c, int *shared, lrsa_err *e) {
    int count = 0, device = -1;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        count = 0;
    }
    lrsa_launch l = {"", c->rank, c->world, c->local_rank, c->local_world};
    lrsa_err ignored;
    if (count > 0 && lrsa_launch_pick_device(&l, count, &device, &ignored)) device = -1;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1)) host[0] = 0;
    uint32_t h = 2166136261u; /* FNV-1a of the host name */
    for (const char *s = host; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    int32_t *all = lrsa_calloc((size_t)c->world * 2, sizeof(int32_t));
    all[2 * c->rank] = (int32_t)h;
    all[2 * c->rank + 1] = device;
    int rc = lrsa_comm_allgather(c, LRSA_MEM_HOST, all, 2, LRSA_I32, NULL, e);
    *shared = 0;
    for (int r = 0; r < c->world && !rc; r++)
        if (r != c->rank && all[2 * r] == (int32_t)h && all[2 * r + 1] == device && device >= 0)
            *shared = 1;
    free(all);
    return rc;
}

int bench_nccl_init(lrsa_comm *c, int *refused, lrsa_err *e) {
    *refused = 0;
    int shared = 0;
    if (shares_gpu(c, &shared, e)) return -1;
    lrsa_err mine;
    int failed = lrsa_nccl_init(c, 120, &mine) != 0;
    int flags[2] = {failed, shared};
    if (lrsa_comm_allreduce_max_int(c, flags, 2, e)) return -1;
    if (flags[1] && c->rank == 0)
        printf("note: %d rank(s) with some sharing one GPU: NCCL %s\n", c->world,
               flags[0] ? "refused the communicator (as it does for two ranks of one "
                          "communicator on one device), so no figure for them"
                        : "accepted it; the figures below are of ranks sharing GPUs");
    if (!flags[0]) return 0;
    if (!failed) { /* the others failed: this rank's communicator is unusable */
        lrsa_nccl_abort(c);
        lrsa_nccl_free(c);
    }
    if (flags[1]) {
        if (c->rank == 0) printf("note: NCCL's message on rank 0: %s\n", failed ? mine.msg : "-");
        fflush(stdout);
        *refused = 1;
        return 0;
    }
    if (failed)
        *e = mine;
    else
        lrsa_errorf(e, "another rank could not make the NCCL communicator (its message is above)");
    return -1;
}

/* Each rank's model, optimizer and samples, made once and reused by every row. */
typedef struct gpu_run {
    lrsa_model model;
    lrsa_adamw opt; /* whole host moments (zeros): what lrsa_train_gpu_new uploads or shards */
    lrsa_attn_config attn;
    int32_t *ids;  /* samples * seq */
    float *weight; /* seq: 1 / (global target tokens), 0 at position 0 (as the trainer) */
} gpu_run;

static int run_init(gpu_run *r, const bench_comm_opts *o, int rank, lrsa_err *e) {
    memset(r, 0, sizeof *r);
    lrsa_model_config mc;
    if (lrsa_config_load(&mc, o->config, e)) return -1;
    if (lrsa_model_create(&r->model, &mc, e)) return -1;
    lrsa_model_init_random(&r->model, 3, 0.02f);
    lrsa_adamw_init(&r->opt, &r->model.table, 0, 1, 0.9, 0.95, 1e-8, 0.1);
    r->attn = (lrsa_attn_config){LRSA_ATTN_DENSE, {0, 1, 1.0f, 1.0f}, 0};
    int64_t nt = (int64_t)o->samples * o->seq;
    r->ids = lrsa_malloc(sizeof(int32_t) * (size_t)nt);
    r->weight = lrsa_malloc(sizeof(float) * (size_t)o->seq);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 11 + (uint64_t)rank);
    for (int64_t i = 0; i < nt; i++)
        r->ids[i] = (int32_t)lrsa_rng_below(&rng, (uint64_t)mc.vocab_size);
    return 0;
}

static void run_free(gpu_run *r) {
    lrsa_adamw_free(&r->opt);
    lrsa_model_free(&r->model);
    free(r->ids);
    free(r->weight);
}

/* One training step on the GPU trainer g, as train/trainer.c's train_step drives it. *loss: this
 * rank's weighted NLL sum. */
static int gpu_step(lrsa_train_gpu *g, gpu_run *r, const bench_comm_opts *o, double *loss,
                    lrsa_err *e) {
    lrsa_train_gpu_zero_grad(g);
    double sum = 0, gnorm = 0;
    for (int i = 0; i < o->samples; i++) {
        if (i == o->samples - 1) lrsa_train_gpu_arm(g); /* the last backward starts buckets */
        lrsa_train_gpu_sample(g, &r->model, r->ids + (int64_t)i * o->seq, r->weight, o->seq,
                              &r->attn, o->recompute);
    }
    if (lrsa_train_gpu_reduce(g, e) || lrsa_train_gpu_grad_norm(g, 1.0, &gnorm, &sum, e)) return -1;
    if (!isfinite(sum) || !isfinite(gnorm))
        return lrsa_errorf(e, "%s:%d: non-finite loss %g or gradient norm %g", __FILE__, __LINE__,
                           sum, gnorm);
    *loss = sum;
    return lrsa_train_gpu_adamw(g, 1e-5, e);
}

/* Step time of the GPU trainer over c (NULL: the one-GPU trainer, with or without CUDA graphs),
 * the slowest rank's, and the global mean loss of the last step. */
static int time_steps(gpu_run *r, const lrsa_comm *c, int overlap, int graphs,
                      const bench_comm_opts *o, double *sec, double *loss, lrsa_err *e) {
    int k = c ? c->world : 1;
    for (int i = 0; i < o->seq; i++)
        r->weight[i] = i > 0 ? (float)(1.0 / ((double)(o->seq - 1) * o->samples * k)) : 0.0f;
    lrsa_train_gpu_dp dp = {c, (int64_t)(o->bucket_mb * 1e6 / sizeof(float)), o->reduce_bf16,
                            overlap};
    lrsa_train_gpu *g =
        lrsa_train_gpu_new(&r->model, &r->opt, &r->attn, o->seq, o->recompute, c ? &dp : NULL, e);
    if (!g) return -1;
    lrsa_train_gpu_set_graphs(g, graphs);
    int rc = 0;
    /* with graphs, a shape is captured the second time it comes: the one-GPU rows (with and
     * without graphs, the same steps so the same loss) warm up past that */
    int warmup = !c && o->samples < 2 && o->warmup < 2 ? 2 : o->warmup;
    for (int i = 0; i < warmup && !rc; i++) rc = gpu_step(g, r, o, loss, e);
    lrsa_dev_sync();
    if (!rc && c) rc = lrsa_comm_barrier(c, e);
    double t0 = lrsa_now();
    for (int i = 0; i < o->steps && !rc; i++) rc = gpu_step(g, r, o, loss, e);
    lrsa_dev_sync(); /* the last update and all-gather included */
    double t = (lrsa_now() - t0) / o->steps;
    lrsa_train_gpu_free(g);
    *sec = t;
    if (!c) return rc;
    /* every rank takes part, also one that failed (the others' NCCL calls then time out) */
    double worst[2] = {t, rc ? 1.0 : 0.0}, sum = rc ? 0.0 : *loss;
    if (lrsa_comm_allreduce(c, LRSA_MEM_HOST, worst, 2, LRSA_F64, LRSA_RED_MAX, NULL,
                            rc ? NULL : e) ||
        lrsa_comm_allreduce_sum_f64(c, &sum, 1, rc ? NULL : e))
        return -1;
    if (rc) return -1;
    if (worst[1] > 0) return lrsa_errorf(e, "another rank failed (its message is above)");
    *sec = worst[0];
    *loss = sum;
    return 0;
}

static void print_row(const bench_comm_opts *o, int k, const char *what, double sec, double t1,
                      double loss) {
    double tokens = (double)k * o->samples * o->seq;
    printf("%6d %-11s %10.4f %12.1f %10.1f%% %8.4f\n", k, what, sec, tokens / sec, 100.0 * t1 / sec,
           loss);
    fflush(stdout);
}

/* Every rank of world agrees whether any failed (after the idle ones have slept). */
static int agree(const lrsa_comm *world, int failed, lrsa_err *mine, lrsa_err *e) {
    int any = failed;
    if (bench_idle_barrier(world, e) || lrsa_comm_allreduce_max_int(world, &any, 1, e)) return -1;
    if (!any) return 0;
    if (failed)
        *e = *mine;
    else
        lrsa_errorf(e, "another rank failed (its message is above)");
    return -1;
}

/* The k-rank rows: the engine over the first k ranks, overlap on then off. */
static int rows_for(lrsa_comm *world, int k, gpu_run *r, const bench_comm_opts *o, double t1,
                    lrsa_err *e) {
    lrsa_comm sub;
    int in = world->rank < k;
    if (lrsa_comm_split(world, in ? 0 : 1, world->rank, &sub, e)) return -1;
    lrsa_err mine;
    int rc = 0, refused = 0;
    if (in) rc = bench_nccl_init(&sub, &refused, &mine);
    double sec[2] = {0, 0}, loss[2] = {0, 0};
    for (int v = 0; v < 2 && in && !rc && !refused; v++)
        rc = time_steps(r, &sub, v == 0, 0, o, &sec[v], &loss[v], &mine);
    if (in && !rc && !refused && world->rank == 0) {
        print_row(o, k, "overlap", sec[0], t1, loss[0]);
        print_row(o, k, "no-overlap", sec[1], t1, loss[1]);
        printf("# %d rank(s): comm.overlap on is %+.1f %% tokens/s against off\n", k,
               100.0 * (sec[1] / sec[0] - 1.0));
    } else if (refused && world->rank == 0) {
        printf("%6d %-11s refused by NCCL (ranks sharing a GPU): no figure\n", k, "overlap");
    }
    fflush(stdout);
    if (in) lrsa_nccl_free(&sub);
    lrsa_comm_free_sub(&sub);
    return agree(world, rc != 0, &mine, e);
}

int bench_gpu_step(lrsa_comm *world, const bench_comm_opts *o, lrsa_err *e) {
    gpu_run r;
    lrsa_err mine;
    int rc = run_init(&r, o, world->rank, &mine);
    if (agree(world, rc != 0, &mine, e)) return -1;
    if (world->rank == 0)
        printf("\nGPU training step, weak scaling: %s (%lld parameters), %d sample(s) of %d "
               "tokens per rank, dense attention, recompute %s, gradients reduced in %s, buckets "
               "of >= %g MB, %d step(s) timed after %d warm-up step(s)\n%6s %-11s %10s %12s %11s "
               "%8s\n",
               o->config, (long long)r.model.table.numel, o->samples, o->seq,
               o->recompute ? "on" : "off", o->reduce_bf16 ? "bf16" : "fp32", o->bucket_mb,
               o->steps, o->warmup, "ranks", "trainer", "step_s", "tokens/s", "efficiency", "loss");
    /* the baseline: the one-GPU trainer on rank 0 alone, with CUDA graphs (its default) and
     * without (what graphs save in launch overhead) */
    double t1 = 0, loss = 0, t_plain = 0, loss_plain = 0;
    if (world->rank == 0) {
        rc = time_steps(&r, NULL, 0, 1, o, &t1, &loss, &mine);
        if (!rc) rc = time_steps(&r, NULL, 0, 0, o, &t_plain, &loss_plain, &mine);
        if (!rc) {
            print_row(o, 1, "one-gpu", t1, t1, loss);
            print_row(o, 1, "no-graphs", t_plain, t1, loss_plain);
            printf("# one GPU: CUDA graphs are %+.1f %% tokens/s against none (LRSA_CUDA_GRAPHS=0 "
                   "turns them off in both rows)\n",
                   100.0 * (t_plain / t1 - 1.0));
        }
    }
    if (agree(world, rc != 0, &mine, e) ||
        lrsa_comm_broadcast(world, LRSA_MEM_HOST, &t1, 1, LRSA_F64, 0, NULL, e)) {
        run_free(&r);
        return -1;
    }
    for (int k = 1; k <= world->world && !rc;
         k = (k < world->world && 2 * k > world->world) ? world->world : 2 * k)
        rc = rows_for(world, k, &r, o, t1, e);
    run_free(&r);
    return rc;
}

#else /* no NCCL: the GPU step cannot run */

static int no_gpu(lrsa_err *e) {
    return lrsa_errorf(e, "--device needs a build with CUDA and NCCL (this one has %s)",
#ifdef LRSA_HAVE_CUDA
                       "CUDA without NCCL"
#else
                       "no CUDA"
#endif
    );
}

int bench_nccl_init(lrsa_comm *c, int *refused, lrsa_err *e) {
    (void)c;
    *refused = 0;
    return no_gpu(e);
}
void *bench_dev_alloc(size_t bytes) {
    (void)bytes;
    return NULL;
}
void bench_dev_free(void *p) {
    (void)p;
}
int bench_gpu_step(lrsa_comm *world, const bench_comm_opts *o, lrsa_err *e) {
    (void)world, (void)o;
    return no_gpu(e);
}
#endif
