#include "train/trainer.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "kernels/lagkv/lagkv_visible.h"
#include "model/base_bf16.h"
#include "model/device_ops.h"
#include "model/lora.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/comm_nccl.h"
#include "train/grad_sync.h"
#include "train/lora_ckpt.h"
#include "train/optim.h"
#include "train/attn_mix.h"
#include "train/train_eval.h"
#include "train/train_gpu.h"
#include "train/train_log.h"

/* Set from a signal handler: the one process-wide flag of the trainer. */
static volatile sig_atomic_t stop_signal = 0;

void lrsa_train_request_stop(int signal_number) {
    stop_signal = signal_number ? signal_number : 1;
}
int lrsa_train_stop_requested(void) {
    return (int)stop_signal;
}

typedef struct trainer {
    const lrsa_train_config *cfg;
    const lrsa_train_opts *opts;
    lrsa_comm *comm;
    lrsa_model model;
    int have_model;
    lrsa_lora lora; /* lora.rank > 0: the adapter that trains, attached to the frozen model */
    int have_lora;
    lrsa_tensor_table *trainable; /* the model's table, or the adapter's */
    char base_checksum[17];
    char *lora_json;
    lrsa_workspace *ws;
    lrsa_train_gpu *gpu; /* device: cuda (train_gpu.h); NULL on the CPU */
    lrsa_dataset train, eval;
    int have_train, have_eval;
    lrsa_loader loader;
    int have_loader;
    lrsa_adamw opt;
    int have_opt;
    lrsa_attn_config attn;
    lrsa_attn_mix attn_mix; /* per-sample attention (keep_mix, dense_mix) */
    lrsa_ckpt_state st;
    double *acc;         /* deterministic_reduce: per-sample gradients summed in double */
    lrsa_grad_sync sync; /* comm.overlap: bucketed reduction during the last backward */
    int have_sync;
    float *weight; /* loss weights of one sample */
    int64_t weight_cap;
    uint8_t *needle; /* [weight_cap] the salience loss's needle mask of one sample */
    int64_t micro_per_step, loader_budget;
    char *config_yaml, *model_config_json;
    char ckpt_dir[LRSA_PATH_MAX + 8], metrics_path[LRSA_PATH_MAX + 16];
    FILE *metrics;
    char resume_from[LRSA_PATH_MAX + 64];
} trainer;

/* Makes every rank agree on a failure: returns -1 everywhere when any rank failed. A rank that
 * did not fail itself reports that another did. */
static int agree(trainer *t, int failed, lrsa_err *e) {
    int flag = failed ? 1 : 0;
    lrsa_err ce;
    if (lrsa_comm_allreduce_max_int(t->comm, &flag, 1, &ce)) {
        if (e) *e = ce;
        return -1;
    }
    if (flag && !failed) lrsa_errorf(e, "another rank failed (its message is printed above)");
    return flag ? -1 : 0;
}

static int check_vocab(const lrsa_dataset *d, int vocab, const char *key, lrsa_err *e) {
    for (int64_t i = 0; i < d->total; i++)
        if (d->tokens[i] < 0 || d->tokens[i] >= vocab)
            return lrsa_errorf(e,
                               "%s %s: token id %d at position %lld is outside the model's "
                               "vocabulary (vocab_size %d); was it prepared with another "
                               "tokenizer?",
                               key, d->path, (int)d->tokens[i], (long long)i, vocab);
    return 0;
}

/* Loads or creates the model, and keeps its config.json text for checkpoints. */
static int setup_model(trainer *t, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    char cfg_path[LRSA_PATH_MAX + 16];
    if (!strcmp(c->model_init, "random")) {
        lrsa_model_config mc;
        if (lrsa_config_load(&mc, c->model_config, e)) return lrsa_err_prefix(e, "model.config: ");
        if (lrsa_model_create(&t->model, &mc, e)) return lrsa_err_prefix(e, "model.config: ");
        t->have_model = 1;
        lrsa_model_init_random(&t->model, (uint64_t)c->seed, (float)c->model_init_std);
        snprintf(cfg_path, sizeof cfg_path, "%s", c->model_config);
    } else {
        /* lora.base_dtype bf16: the base's matrices rounded as they load (no fp32 copy of them) */
        const int bf16 = c->lora_rank > 0 && !strcmp(c->lora_base_dtype, "bf16");
        if ((bf16 ? lrsa_model_load_base_bf16 : lrsa_model_load)(&t->model, c->model_path, e))
            return lrsa_err_prefix(e, "model.path: ");
        t->have_model = 1;
        lrsa_path_join(cfg_path, sizeof cfg_path, c->model_path, "config.json");
    }
    t->model_config_json = lrsa_read_file(cfg_path, NULL, e);
    if (!t->model_config_json) return lrsa_err_prefix(e, "model: ");
    t->trainable = &t->model.table;
    if (c->lora_rank > 0) { /* the base is frozen; the adapter starts as PEFT's (B = 0) */
        lrsa_lora_config lc = lrsa_lora_config_of(c);
        if (lrsa_lora_create(&t->lora, &t->model.cfg, &lc, e)) return lrsa_err_prefix(e, "lora: ");
        t->have_lora = 1;
        lrsa_lora_init(&t->lora, (uint64_t)c->seed ^ 0x6c6f7261ULL);
        t->model.lora = &t->lora;
        t->trainable = &t->lora.table;
        /* lora.base_dtype bf16 on a random base: rounded now. The checksum is always the one of
         * the fp32 weights as loaded, so resume and export check (and merge onto) those. */
        if (!strcmp(c->lora_base_dtype, "bf16") && !t->model.base16)
            lrsa_model_store_base_bf16(&t->model);
        lrsa_checksum_hex(lrsa_model_checksum(&t->model), t->base_checksum);
        t->lora_json = lrsa_lora_ckpt_json(&lc);
    }
    return 0;
}

/* Whether device: cuda trains data-parallel (ZeRO-1 over NCCL): under a launcher (mpirun, srun),
 * also with one rank, so `mpirun -np 1` runs the same engine as N ranks. */
static int gpu_data_parallel(const trainer *t) {
    return !strcmp(t->cfg->device, "cuda") && (t->comm->world > 1 || t->comm->mpi);
}

/* device: cuda needs a CUDA build, a usable device, bf16 weights and, under a launcher, NCCL;
 * says which is missing before anything is loaded. */
static int check_device(trainer *t, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    if (strcmp(c->device, "cuda")) {
        if (strcmp(c->model_dtype, "f32"))
            return lrsa_errorf(e,
                               "model.dtype: %s is for the GPU path; CPU training keeps fp32 "
                               "weights, set model.dtype: f32 (or device: cuda)",
                               c->model_dtype);
        return 0;
    }
    if (lrsa_cuda_usable("device: cuda", "set device: cpu to train on the CPU", e)) return -1;
    if (gpu_data_parallel(t) && !lrsa_nccl_built())
        return lrsa_errorf(e,
                           "device: cuda with %d rank(s) started by %s trains data-parallel over "
                           "NCCL, and this lrsa was built without NCCL: rebuild it with NCCL "
                           "(NCCL_ROOT=..., docs/TRAINING.md), or run one process without "
                           "mpirun/srun for one GPU",
                           t->comm->world, t->comm->launcher[0] ? t->comm->launcher : "a launcher");
    if (strcmp(c->model_dtype, "bf16"))
        return lrsa_errorf(e, "device: cuda trains bf16 weights with an fp32 master copy: set "
                              "model.dtype: bf16");
    return 0;
}

/* device: cuda under a launcher: the job's NCCL communicator; each rank takes the GPU its local
 * rank names (lrsa_nccl_init, collective: every rank calls it, and it agrees on a failure). */
static int setup_nccl(trainer *t, lrsa_err *e) {
    if (!gpu_data_parallel(t)) return 0;
    return lrsa_nccl_init(t->comm, t->cfg->comm_timeout_s, e);
}

static int setup_inputs(trainer *t, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    if (check_device(t, e)) return -1;
    t->attn.mode = !strcmp(c->attn_mode, "lrsa") ? LRSA_ATTN_LRSA : LRSA_ATTN_DENSE;
    t->attn.cudnn = !strcmp(c->attn_impl, "cudnn");
    t->attn.lagkv = (lrsa_lagkv_params){(int)c->attn_sink, (int)c->attn_lag, (float)c->attn_keep,
                                        (float)c->attn_value_weight};
    if (lrsa_lagkv_validate(&t->attn.lagkv, e)) return lrsa_err_prefix(e, "attention: ");
    t->attn_mix = (lrsa_attn_mix){.base = t->attn,
                                  .dense_share = c->attn_dense_mix,
                                  .seed = (uint64_t)c->seed ^ 0x61746d6978ULL};
    if (lrsa_attn_mix_parse_keeps(c->attn_keep_mix, t->attn_mix.keeps, &t->attn_mix.n_keeps,
                                  "attention.keep_mix", e))
        return -1;
    for (int i = 0; i < t->attn_mix.n_keeps; i++) {
        lrsa_lagkv_params p = t->attn.lagkv;
        p.keep = t->attn_mix.keeps[i];
        if (lrsa_lagkv_validate(&p, e)) return lrsa_err_prefix(e, "attention.keep_mix: ");
    }
    if (lrsa_dataset_open(&t->train, c->data_train, e)) return lrsa_err_prefix(e, "data.train: ");
    t->have_train = 1;
    if (c->attn_salience_weight > 0 && !lrsa_dataset_has_needle_spans(&t->train))
        return lrsa_errorf(e,
                           "attention.salience.weight = %g needs needle spans, but data.train %s "
                           "has no /needle_spans; make it with `lrsa prepare --synthetic ...` "
                           "(docs/DATA.md) or set attention.salience.weight: 0",
                           c->attn_salience_weight, c->data_train);
    if (c->data_eval[0]) {
        if (lrsa_dataset_open(&t->eval, c->data_eval, e)) return lrsa_err_prefix(e, "data.eval: ");
        t->have_eval = 1;
    }
    if (setup_model(t, e)) return -1;
    if (check_vocab(&t->train, t->model.cfg.vocab_size, "data.train", e)) return -1;
    if (t->have_eval && check_vocab(&t->eval, t->model.cfg.vocab_size, "data.eval", e)) return -1;
    return 0;
}

/* Decides fresh start or resume (rank 0 reads the checkpoints through their checksums and
 * tells the others), and checks a checkpoint fits this model: all before any file is
 * written. */
static int setup_resume(trainer *t, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    lrsa_path_join(t->ckpt_dir, sizeof t->ckpt_dir, c->run_dir, "ckpt");
    lrsa_path_join(t->metrics_path, sizeof t->metrics_path, c->run_dir, "metrics.jsonl");
    int failed = 0;
    if (t->comm->rank == 0)
        failed = lrsa_ckpt_choose_resume(t->ckpt_dir, c->resume, t->resume_from,
                                         sizeof t->resume_from, e) < 0;
    if (agree(t, failed, e)) return -1;
    if (lrsa_comm_bcast(t->comm, t->resume_from, sizeof t->resume_from, 0, e)) return -1;
    if (!t->resume_from[0]) return 0;
    lrsa_lora_config stored;
    int is_lora = lrsa_lora_ckpt_config(t->resume_from, &stored, e);
    if (is_lora < 0) return -1;
    if (is_lora != t->have_lora)
        return lrsa_errorf(e,
                           "checkpoint %s holds %s, but this config trains %s; resume with the "
                           "lora settings the run started with (lora.rank = %d there)",
                           t->resume_from, is_lora ? "a LoRA adapter" : "full model weights",
                           t->have_lora ? "a LoRA adapter" : "the full model",
                           is_lora ? stored.rank : 0);
    if (is_lora) {
        const lrsa_lora_config *now = &t->lora.cfg;
        if (stored.rank != now->rank || stored.alpha != now->alpha ||
            stored.targets != now->targets || stored.rslora != now->rslora)
            return lrsa_errorf(e,
                               "checkpoint %s was trained with lora rank %d, alpha %g and other "
                               "targets or scaling than this config (rank %d, alpha %g); resume "
                               "with the lora settings the run started with",
                               t->resume_from, stored.rank, stored.alpha, now->rank, now->alpha);
        char desc[LRSA_PATH_MAX + 32];
        snprintf(desc, sizeof desc, "in model.path (%s)",
                 strcmp(c->model_init, "random") ? c->model_path : "model.init: random");
        if (lrsa_lora_ckpt_check_base(t->resume_from, &t->model, desc, e)) return -1;
    }
    if (lrsa_ckpt_check_model(t->resume_from, t->trainable, e)) return -1;
    return 0;
}

/* Rank 0, once every input is checked: the run directory, the resolved config, the
 * checkpoints a restart deletes or a resume passed over, and metrics.jsonl (kept up to the
 * resumed step, or started afresh: never two runs mixed in one file). */
static int setup_run_dir(trainer *t, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    if (lrsa_mkdirs(c->run_dir, e) || lrsa_mkdirs(t->ckpt_dir, e))
        return lrsa_err_prefix(e, "run_dir: ");
    char path[LRSA_PATH_MAX + 32];
    lrsa_path_join(path, sizeof path, c->run_dir, "config.resolved.yaml");
    if (lrsa_write_file_atomic(path, t->config_yaml, strlen(t->config_yaml), e))
        return lrsa_err_prefix(e, "run_dir: ");
    if (c->resume == LRSA_RESUME_RESTART) {
        int n = lrsa_ckpt_remove_all(t->ckpt_dir);
        if (n)
            fprintf(stderr,
                    "lrsa: note: resume=restart: deleted %d checkpoint(s) of the earlier run in "
                    "%s and started %s afresh\n",
                    n, t->ckpt_dir, t->metrics_path);
    }
    if (t->resume_from[0]) {
        lrsa_ckpt_set_aside_newer(t->ckpt_dir, t->st.step);
        if (lrsa_metrics_truncate_after(t->metrics_path, t->st.step, e)) return -1;
    }
    t->metrics = fopen(t->metrics_path, t->resume_from[0] ? "a" : "w");
    if (!t->metrics) return lrsa_errorf(e, "run_dir: cannot write %s", t->metrics_path);
    lrsa_ckpt_prune(t->ckpt_dir, c->keep_ckpts); /* leftovers of killed writes */
    return 0;
}

static int sample_fits(const trainer *t, int64_t idx) {
    return t->cfg->max_len <= 0 || lrsa_dataset_len(&t->train, idx) <= t->cfg->max_len;
}

static int setup_state(trainer *t, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    lrsa_table_alloc(t->trainable, LRSA_ROLE_GRAD);
    /* The GPU keeps its ZeRO-1 shard of the moments on the device (its own bucket layout): the
     * host optimizer holds them whole, for reading and writing checkpoints. */
    const int dp = gpu_data_parallel(t);
    lrsa_adamw_init(&t->opt, t->trainable, dp ? 0 : t->comm->rank, dp ? 1 : t->comm->world,
                    c->beta1, c->beta2, c->eps, c->weight_decay);
    t->have_opt = 1;
    if (c->tokens_per_microbatch > 0) {
        t->loader_budget = c->tokens_per_microbatch;
        t->micro_per_step =
            (c->tokens_per_batch + c->tokens_per_microbatch - 1) / c->tokens_per_microbatch;
    } else {
        t->loader_budget = c->tokens_per_batch;
        t->micro_per_step = c->grad_accum;
    }
    if (lrsa_loader_init(&t->loader, &t->train, t->loader_budget, (uint64_t)c->seed, 1,
                         t->comm->rank, t->comm->world, e))
        return lrsa_err_prefix(e, "data: ");
    t->have_loader = 1;
    memset(&t->st, 0, sizeof t->st);
    lrsa_rng_seed(&t->st.rng, (uint64_t)c->seed ^ 0x7472616e6572ULL);
    t->st.world_size = t->comm->world;
    if (t->resume_from[0]) {
        if (lrsa_ckpt_read(t->resume_from, t->trainable, t->opt.lo, t->opt.hi, t->opt.m, t->opt.v,
                           &t->st, e))
            return -1;
        t->opt.t = t->st.adam_t;
        if (lrsa_loader_restore(&t->loader, &t->st.loader, e))
            return lrsa_err_prefix(e, "checkpoint %s: ", t->resume_from);
        t->st.world_size = t->comm->world;
    }
    if (!strcmp(c->device, "cuda")) {
        /* One process: no reduction. Under a launcher: ZeRO-1 over NCCL, buckets reduce-scattered
         * during the last backward (comm.overlap), in comm.reduce_dtype; deterministic_reduce
         * is the CPU path's double accumulation and does not apply. */
        int64_t max_T = 1;
        for (int64_t i = 0; i < t->train.n; i++)
            if (sample_fits(t, i) && lrsa_dataset_len(&t->train, i) > max_T)
                max_T = lrsa_dataset_len(&t->train, i);
        /* the memory plan holds the largest keep a sample can draw (attention.keep_mix) */
        lrsa_attn_config plan = t->attn;
        for (int i = 0; i < t->attn_mix.n_keeps; i++)
            if (t->attn_mix.keeps[i] > plan.lagkv.keep) plan.lagkv.keep = t->attn_mix.keeps[i];
        int64_t bucket = (int64_t)(c->comm_bucket_mb * 1e6 / sizeof(float));
        lrsa_train_gpu_dp par = {t->comm, bucket, !strcmp(c->comm_reduce_dtype, "bf16"),
                                 c->comm_overlap};
        t->gpu = lrsa_train_gpu_new(&t->model, &t->opt, &plan, (int)max_T, c->recompute,
                                    dp ? &par : NULL, e);
        if (t->gpu) lrsa_train_gpu_set_graphs(t->gpu, c->cuda_graphs);
        return t->gpu ? 0 : -1;
    }
    if (c->deterministic_reduce) t->acc = lrsa_calloc((size_t)t->trainable->numel, sizeof(double));
    t->ws = lrsa_workspace_new();
    /* The buckets follow the model's readiness points (offsets in the model's table): a LoRA
     * run's trainable table is the adapter's, whose small gradient is reduced after the
     * backward instead. */
    if (c->comm_overlap && t->comm->world > 1 && !t->have_lora) {
        int64_t bucket = (int64_t)(c->comm_bucket_mb * 1e6 / sizeof(float));
        lrsa_grad_sync_init(&t->sync, &t->model, t->comm, bucket > 0 ? bucket : 1);
        lrsa_grad_sync_attach(&t->sync, t->ws);
        t->have_sync = 1;
    }
    return 0;
}

static int write_checkpoint(trainer *t, lrsa_err *e) {
    lrsa_tensor_table *tab = t->trainable;
    int world = t->comm->world, root = 0, failed = 0;
    /* the GPU path gathers the whole weights and moments on root */
    if (t->gpu && lrsa_train_gpu_download(t->gpu, &t->model, &t->opt, root, e)) failed = 1;
    int64_t *counts = lrsa_malloc(sizeof(int64_t) * 2 * (size_t)world), *displs = counts + world;
    for (int r = 0; r < world; r++) {
        int64_t lo, hi;
        lrsa_shard_range(tab->numel, r, world, &lo, &hi);
        counts[r] = hi - lo;
        displs[r] = lo;
    }
    /* One rank, or the GPU path: the moments are already whole, write them in place. */
    int single = world == 1 || t->gpu;
    float *m = single ? t->opt.m : NULL, *v = single ? t->opt.v : NULL;
    if (!single && t->comm->rank == root) {
        m = lrsa_malloc(sizeof(float) * (size_t)(tab->numel ? tab->numel : 1));
        v = lrsa_malloc(sizeof(float) * (size_t)(tab->numel ? tab->numel : 1));
    }
    int rc =
        single || failed ? 0 : lrsa_comm_gatherv_f32(t->comm, t->opt.m, m, counts, displs, root, e);
    if (!rc && !single) rc = lrsa_comm_gatherv_f32(t->comm, t->opt.v, v, counts, displs, root, e);
    if (rc) failed = 1;
    if (!failed && t->comm->rank == root) {
        char path[LRSA_PATH_MAX + 64];
        lrsa_ckpt_path(path, sizeof path, t->ckpt_dir, t->st.step);
        t->st.adam_t = t->opt.t;
        t->st.loader = lrsa_loader_state_get(&t->loader);
        /* export copies the tokenizer from here, maybe from another directory: absolute */
        char model_abs[PATH_MAX] = "";
        if (strcmp(t->cfg->model_init, "random") && !realpath(t->cfg->model_path, model_abs))
            snprintf(model_abs, sizeof model_abs, "%s", t->cfg->model_path);
        lrsa_ckpt_text text = {t->config_yaml, t->model_config_json, model_abs,
                               t->have_lora ? t->lora_json : NULL,
                               t->have_lora ? t->base_checksum : NULL};
        double t0 = lrsa_now();
        if (lrsa_ckpt_write(path, tab, m, v, &t->st, &text, e)) {
            failed = 1;
        } else {
            lrsa_ckpt_prune(t->ckpt_dir, t->cfg->keep_ckpts);
            if (!t->opts->quiet) {
                printf("checkpoint %s written in %.1f s\n", path, lrsa_now() - t0);
                fflush(stdout);
            }
        }
    }
    if (single) m = v = NULL;
    free(m);
    free(v);
    free(counts);
    return agree(t, failed, e);
}

/* Needle kept rate of the sample just run in LRSA mode (sums[1] += the sample's fraction,
 * sums[2] += 1): of its (layer, KV head, needle span) triples, the fraction in which some token of
 * the span is visible to the query of the first answer token. Nothing for dense samples or
 * samples without spans. */
static void needle_kept(trainer *t, int64_t idx, const lrsa_attn_config *attn, double *sums) {
    const int64_t *rows;
    int64_t n_spans = lrsa_dataset_needle_spans(&t->train, idx, &rows);
    if (attn->mode != LRSA_ATTN_LRSA || n_spans == 0) return;
    const uint8_t *mask = lrsa_dataset_mask(&t->train, idx);
    int64_t T = lrsa_dataset_len(&t->train, idx), q = 1;
    while (q < T && !mask[q]) q++;
    if (q == T) return;
    const int layers = t->model.cfg.num_hidden_layers, Hkv = t->model.cfg.num_key_value_heads;
    int64_t kept = 0;
    for (int l = 0; l < layers; l++)
        kept += lrsa_lrsa_spans_visible(lrsa_workspace_selection(t->ws, l), (int)T, Hkv,
                                        &attn->lagkv, q, rows, n_spans);
    sums[1] += (double)kept / (double)((int64_t)layers * Hkv * n_spans);
    sums[2] += 1.0;
}

/* Samples of the global batch the salience loss applies to (0 when it is off). */
static int64_t salience_samples(const trainer *t, const lrsa_global_batch *gb, int64_t nm) {
    int64_t n = 0;
    const int64_t *rows;
    if (t->cfg->attn_salience_weight > 0)
        for (int64_t a = 0; a < nm; a++)
            for (int64_t i = 0; i < gb[a].n; i++)
                n += sample_fits(t, gb[a].samples[i]) &&
                     lrsa_dataset_needle_spans(&t->train, gb[a].samples[i], &rows) > 0;
    return n;
}

/* Turns the salience loss on for sample idx when it applies (weight > 0, the sample has needle
 * spans): its needle mask, LagKV's partitions, and the weight shared over the global batch's
 * n_salience such samples, so the step adds W x (their mean aux) to the loss. */
static int salience_on(trainer *t, int64_t idx, int64_t n_salience) {
    const lrsa_train_config *c = t->cfg;
    const int64_t *rows;
    int64_t n = lrsa_dataset_needle_spans(&t->train, idx, &rows);
    if (c->attn_salience_weight <= 0 || n == 0 || n_salience == 0) return 0;
    int64_t T = lrsa_dataset_len(&t->train, idx);
    memset(t->needle, 0, (size_t)T);
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = rows[3 * i + 1]; p < rows[3 * i + 2]; p++) t->needle[p] = 1;
    lrsa_lagkv_params p = {(int)c->attn_sink, (int)c->attn_lag, (float)c->attn_keep,
                           (float)c->attn_value_weight};
    lrsa_workspace_set_salience(t->ws, t->needle, &p, c->attn_salience_weight / (double)n_salience);
    return 1;
}

/* The weighted loss of one sample, its gradients added to GRAD (and moved to acc). `key`
 * identifies the sample's place in the run (step, micro-batch, sample) for LoRA dropout.
 * sums[1..2] collect the needle kept rate (needle_kept). */
static double run_sample(trainer *t, int64_t step, int64_t idx, double n_target, uint64_t key,
                         double *sums, int64_t n_salience) {
    const int32_t *ids = lrsa_dataset_ids(&t->train, idx);
    const uint8_t *mask = lrsa_dataset_mask(&t->train, idx);
    int64_t T = lrsa_dataset_len(&t->train, idx);
    if (T > t->weight_cap) {
        t->weight = lrsa_realloc(t->weight, sizeof(float) * (size_t)T);
        t->needle = lrsa_realloc(t->needle, (size_t)T);
        t->weight_cap = T;
    }
    float w = (float)(1.0 / n_target);
    for (int64_t i = 0; i < T; i++) t->weight[i] = (i > 0 && mask[i]) ? w : 0.0f;
    if (t->have_lora) t->lora.pass_key = key;
    lrsa_attn_config attn = lrsa_attn_mix_pick(&t->attn_mix, step, idx);
    int salience = salience_on(t, idx, n_salience);
    if (t->gpu) { /* the loss is summed on the device, read back with the gradient norm */
        lrsa_train_gpu_sample(t->gpu, &t->model, ids, t->weight, (int)T, &attn, t->cfg->recompute);
        return 0.0;
    }
    double loss = lrsa_model_forward_backward(&t->model, t->ws, ids, t->weight, 1, (int)T, &attn,
                                              t->cfg->recompute, 1, NULL);
    needle_kept(t, idx, &attn, sums); /* reads the CPU workspace's selection */
    if (salience) {
        sums[3] += lrsa_workspace_salience(t->ws);
        lrsa_workspace_set_salience(t->ws, NULL, NULL, 0.0);
    }
    if (t->acc && !(t->have_sync && lrsa_grad_sync_consumed(&t->sync))) {
        float *g = t->trainable->arena[LRSA_ROLE_GRAD];
        for (int64_t i = 0; i < t->trainable->numel; i++) {
            t->acc[i] += g[i];
            g[i] = 0.0f;
        }
    }
    return loss;
}

/* Test hook: LRSA_TEST_BAD_STEPS="3,4" poisons the gradient of those steps with a NaN, so a
 * test can exercise the skip-guard without a diverging model. */
static int test_hook_bad_step(int64_t step) {
    const char *s = getenv("LRSA_TEST_BAD_STEPS");
    while (s && *s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s) break;
        if (v == step) return 1;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

typedef struct step_result {
    double loss, gnorm, lr;
    int64_t tokens, n_target;
    int skipped;
    int has_needle_kept;
    double needle_kept;
    int has_salience;
    double salience_loss;
} step_result;

static int train_step(trainer *t, int64_t step, step_result *r, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    lrsa_tensor_table *tab = t->trainable;
    int64_t nm = t->micro_per_step;
    lrsa_global_batch *gb = lrsa_calloc((size_t)nm, sizeof *gb);
    int64_t n_target = 0, tokens = 0;
    for (int64_t a = 0; a < nm; a++) {
        lrsa_loader_next(&t->loader, &gb[a]);
        for (int64_t i = 0; i < gb[a].n; i++)
            if (sample_fits(t, gb[a].samples[i])) {
                n_target += lrsa_dataset_n_target(&t->train, gb[a].samples[i]);
                tokens += lrsa_dataset_len(&t->train, gb[a].samples[i]);
            }
    }
    if (t->gpu)
        lrsa_train_gpu_zero_grad(t->gpu);
    else
        lrsa_table_zero(tab, LRSA_ROLE_GRAD);
    if (t->acc) memset(t->acc, 0, sizeof(double) * (size_t)tab->numel);
    float *g = tab->arena[LRSA_ROLE_GRAD];
    if (t->have_sync) lrsa_grad_sync_begin(&t->sync, g, t->acc);
    int64_t n_calls = 0, call = 0;
    for (int64_t a = 0; a < nm; a++)
        for (int64_t i = 0; i < gb[a].n_local; i++) n_calls += sample_fits(t, gb[a].local[i]);
    /* loss; needle kept: sum of per-sample rates, samples; salience: sum of aux */
    double sums[4] = {0};
    const int64_t n_salience = salience_samples(t, gb, nm);
    if (n_target > 0)
        for (int64_t a = 0; a < nm; a++)
            for (int64_t i = 0; i < gb[a].n_local; i++)
                if (sample_fits(t, gb[a].local[i])) {
                    /* the same key on any rank and after a resume: the run's seed, the step,
                     * the micro-batch and the sample */
                    uint64_t key = (uint64_t)c->seed * 0x9e3779b97f4a7c15ULL ^
                                   ((uint64_t)step << 24) ^ ((uint64_t)a << 56) ^
                                   (uint64_t)gb[a].local[i];
                    /* the last backward of the step starts the bucketed reduction */
                    if (++call == n_calls && t->have_sync) lrsa_grad_sync_arm(&t->sync);
                    if (call == n_calls && t->gpu) lrsa_train_gpu_arm(t->gpu);
                    sums[0] += run_sample(t, step, gb[a].local[i], (double)n_target, key, sums,
                                          n_salience);
                }
    for (int64_t a = 0; a < nm; a++) lrsa_global_batch_free(&gb[a]);
    free(gb);
    double gnorm = 0.0;
    if (t->gpu) {
        if (lrsa_train_gpu_reduce(t->gpu, e)) return -1; /* no-op on one GPU */
        if (tab->numel > 0 && test_hook_bad_step(step)) lrsa_train_gpu_poison_grad(t->gpu);
        /* the step's one synchronisation: the norm and this rank's loss sum */
        if (lrsa_train_gpu_grad_norm(t->gpu, c->clip_grad_norm, &gnorm, &sums[0], e)) return -1;
    } else if (t->have_sync) {
        if (lrsa_grad_sync_finish(&t->sync, e)) return -1;
    } else if (t->acc) {
        if (lrsa_comm_allreduce_sum_f64(t->comm, t->acc, tab->numel, e)) return -1;
        for (int64_t i = 0; i < tab->numel; i++) g[i] = (float)t->acc[i];
    } else if (lrsa_comm_allreduce_sum_f32(t->comm, g, tab->numel, e)) {
        return -1;
    }
    if (lrsa_comm_allreduce_sum_f64(t->comm, sums, 4, e)) return -1;
    memset(r, 0, sizeof *r);
    r->loss = sums[0];
    r->has_needle_kept = sums[2] > 0;
    r->needle_kept = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
    r->has_salience = n_salience > 0;
    r->salience_loss = n_salience > 0 ? sums[3] / (double)n_salience : 0.0;
    r->tokens = tokens;
    r->n_target = n_target;
    if (!t->gpu && tab->numel > 0 && test_hook_bad_step(step)) g[0] = NAN;
    r->gnorm = t->gpu ? gnorm : lrsa_grad_norm(g, tab->numel);
    r->lr = lrsa_schedule_lr(c, step);
    if (!isfinite(r->loss) || !isfinite(r->gnorm)) {
        r->skipped = 1;
        t->st.bad_in_row++;
        t->st.bad_total++;
        if (t->st.bad_in_row >= c->max_bad_steps)
            return lrsa_errorf(e,
                               "step %lld: %lld steps in a row had a non-finite loss or gradient "
                               "norm (max_bad_steps = %lld); lower optim.lr or check the data",
                               (long long)step, (long long)t->st.bad_in_row,
                               (long long)c->max_bad_steps);
        return 0;
    }
    t->st.bad_in_row = 0;
    if (t->gpu) /* clipping factor and update on the device */
        return lrsa_train_gpu_adamw(t->gpu, r->lr, e);
    double scale = lrsa_clip_scale(r->gnorm, c->clip_grad_norm);
    lrsa_adamw_step(&t->opt, tab->arena[LRSA_ROLE_PARAM], g, r->lr, scale);
    /* ZeRO-1: every rank updated its shard; everyone gets the whole updated arena. */
    int world = t->comm->world;
    int64_t *counts = lrsa_malloc(sizeof(int64_t) * 2 * (size_t)world), *displs = counts + world;
    for (int rk = 0; rk < world; rk++) {
        int64_t lo, hi;
        lrsa_shard_range(tab->numel, rk, world, &lo, &hi);
        counts[rk] = hi - lo;
        displs[rk] = lo;
    }
    int rc = lrsa_comm_allgatherv_f32(t->comm, tab->arena[LRSA_ROLE_PARAM], counts, displs, e);
    free(counts);
    return rc;
}

static int run_eval(trainer *t, int64_t step, lrsa_err *e) {
    if (!t->have_eval || t->cfg->eval_samples == 0) return 0;
    lrsa_eval_record r;
    /* evaluated on the CPU, every rank its part: the weights on every rank */
    if (t->gpu && lrsa_train_gpu_download(t->gpu, &t->model, NULL, -1, e)) return -1;
    int failed = lrsa_train_eval(&t->model, &t->eval, t->cfg, t->comm, &r, e) != 0;
    if (agree(t, failed, e)) return -1;
    r.step = step;
    if (t->comm->rank == 0) {
        if (!t->opts->quiet) lrsa_log_eval_line(stdout, &r);
        lrsa_metrics_append_eval(t->metrics, &r);
    }
    return 0;
}

static int loop(trainer *t, lrsa_err *e) {
    const lrsa_train_config *c = t->cfg;
    int64_t last = c->max_steps;
    if (t->opts->stop_after > 0 && t->opts->stop_after < last) last = t->opts->stop_after;
    int64_t first = t->st.step + 1;
    double t0 = lrsa_now();
    if (t->comm->rank == 0 && !t->opts->quiet) {
        if (t->resume_from[0])
            printf("resuming from %s (step %lld)\n", t->resume_from, (long long)t->st.step);
        if (t->have_lora) {
            const lrsa_weight_bytes wb = lrsa_model_weight_bytes(&t->model);
            printf("LoRA rank %d, alpha %g, dropout %g on %s: %lld trainable parameters, base "
                   "frozen (checksum %s), its linear matrices in %s (%.1f MB)\n",
                   t->lora.cfg.rank, t->lora.cfg.alpha, t->lora.cfg.dropout, c->lora_targets,
                   (long long)t->lora.table.numel, t->base_checksum, c->lora_base_dtype,
                   (double)wb.matrices / 1e6);
        }
        char attn[256];
        lrsa_attn_mix_describe(&t->attn_mix, attn, sizeof attn);
        printf("training %s: %lld parameters, %d rank(s), %lld micro-batch(es) of <= %lld tokens "
               "per step, attention %s\n",
               c->run_dir, (long long)t->trainable->numel, t->comm->world,
               (long long)t->micro_per_step, (long long)t->loader_budget, attn);
        if (t->model.cfg.defaults_used[0])
            printf("model config.json leaves out %s: Hugging Face's defaults used\n",
                   t->model.cfg.defaults_used);
        fflush(stdout);
    }
    char note[1024];
    if (t->comm->rank == 0 &&
        lrsa_attn_mix_short_note(&t->attn_mix, &t->train, c->max_len, note, sizeof note))
        fprintf(stderr, "lrsa: warning: %s\n", note);
    /* A fresh run measures the starting model too, so the curves show what training did. */
    if (first == 1 && c->eval_every > 0 && run_eval(t, 0, e)) return -1;
    t0 = lrsa_now(); /* the ETA counts training steps, not that first evaluation */
    for (int64_t step = first; step <= last; step++) {
        double ts = lrsa_now();
        step_result r;
        if (train_step(t, step, &r, e)) return -1;
        t->st.step = step;
        t->st.tokens_seen += r.tokens;
        double now = lrsa_now();
        int64_t done = step - first + 1;
        lrsa_step_record rec = {
            .step = step,
            .max_steps = c->max_steps,
            .loss = r.loss,
            .gnorm = r.gnorm,
            .lr = r.lr,
            .tok_per_s = r.tokens / fmax(now - ts, 1e-9),
            .eta_s = (now - t0) / (double)done * (double)(last - step),
            .elapsed_s = now - t0,
            .tokens = r.tokens,
            .n_target = r.n_target,
            .skipped_total = t->st.bad_total,
            .skipped = r.skipped,
            .has_needle_kept = r.has_needle_kept,
            .needle_kept = r.needle_kept,
            .has_salience = r.has_salience,
            .salience_loss = r.salience_loss,
        };
        if (t->comm->rank == 0 && (step % c->log_every == 0 || step == last || r.skipped)) {
            if (!t->opts->quiet) lrsa_log_step_line(stdout, &rec);
            lrsa_metrics_append_step(t->metrics, &rec);
        }
        if (step == c->max_steps || (c->eval_every > 0 && step % c->eval_every == 0))
            if (run_eval(t, step, e)) return -1;
        /* A stop request on any rank stops every rank after this same step. */
        int stop = stop_signal != 0;
        if (lrsa_comm_allreduce_max_int(t->comm, &stop, 1, e)) return -1;
        if (step == last || stop || (c->ckpt_every > 0 && step % c->ckpt_every == 0))
            if (write_checkpoint(t, e)) return -1;
        if (stop && step < last) {
            if (t->comm->rank == 0) {
                printf("stopped on request after step %lld (checkpoint written); continue with "
                       "resume=true\n",
                       (long long)step);
                fflush(stdout);
            }
            return 1;
        }
    }
    if (t->comm->rank == 0 && !t->opts->quiet) {
        printf("done: step %lld, checkpoints in %s\n", (long long)t->st.step, t->ckpt_dir);
        lrsa_train_gpu_graph_stats gs = {0, 0, 0};
        if (t->gpu) gs = lrsa_train_gpu_graphs(t->gpu);
        if (gs.direct + gs.launched > 0)
            printf("cuda graphs: %lld sample(s) ran as graph launches (%lld shape(s) captured), "
                   "%lld without a graph\n",
                   (long long)gs.launched, (long long)gs.captured, (long long)gs.direct);
        fflush(stdout);
    }
    return 0;
}

static void trainer_free(trainer *t) {
    if (t->metrics) fclose(t->metrics);
    if (t->ws) lrsa_workspace_free(t->ws);
    lrsa_train_gpu_free(t->gpu);
    if (t->have_sync) lrsa_grad_sync_free(&t->sync);
    if (t->have_loader) lrsa_loader_free(&t->loader);
    if (t->have_opt) lrsa_adamw_free(&t->opt);
    if (t->have_lora) lrsa_lora_free(&t->lora);
    if (t->have_model) lrsa_model_free(&t->model);
    free(t->lora_json);
    if (t->have_train) lrsa_dataset_close(&t->train);
    if (t->have_eval) lrsa_dataset_close(&t->eval);
    free(t->acc);
    free(t->weight);
    free(t->needle);
    free(t->config_yaml);
    free(t->model_config_json);
}

int lrsa_train_run(const lrsa_train_config *cfg, const lrsa_train_opts *opts, lrsa_comm *comm,
                   lrsa_err *e) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.opts = opts;
    t.comm = comm;
    t.config_yaml = lrsa_train_config_to_yaml(cfg);
    int rc = agree(&t, setup_inputs(&t, e) != 0, e);
    if (!rc) rc = agree(&t, setup_nccl(&t, e) != 0, e);
    if (!rc) rc = agree(&t, setup_resume(&t, e) != 0, e);
    if (!rc) rc = agree(&t, setup_state(&t, e) != 0, e);
    /* Only now, with every input checked, does rank 0 create anything on disk. */
    if (!rc) rc = agree(&t, comm->rank == 0 && setup_run_dir(&t, e) != 0, e);
    if (!rc && t.st.step >= cfg->max_steps && comm->rank == 0 && !opts->quiet)
        printf("the run in %s already reached schedule.max_steps = %lld; nothing to do\n",
               cfg->run_dir, (long long)cfg->max_steps);
    if (!rc) rc = loop(&t, e);
    trainer_free(&t);
    return rc;
}
