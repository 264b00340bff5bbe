/* `lrsa bench`: speed of the CPU training step (forward + backward over T tokens, optionally the
 * AdamW update) in tokens/s and model FLOP/s, next to the OpenBLAS SGEMM rate on a GEMM of the
 * model's own shape measured in the same run, so the ratio says how close the step is to the
 * machine's matmul speed; with --lora-rank the step trains a LoRA adapter on the frozen model. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "cli/cli_flags.h"
#include "cli/cmd_util.h"
#include "cli/commands.h"
#include "model/base_bf16.h"
#include "model/lora.h"
#include "model/model.h"
#include "train/optim.h"

static const char *BENCH_HELP =
    "usage: lrsa bench [--model DIR | --config small|smollm2-135m] [--T 1024] [--B 1]\n"
    "                  [--steps 3] [--loss all|last-quarter] [--recompute] [--optim]\n"
    "                  [--ids FILE] [--attn dense|lrsa --sink S --lag L --keep r\n"
    "                  --value-weight w] [--lora-rank R [--lora-targets q_proj,v_proj,...]\n"
    "                  [--lora-base-dtype f32|bf16]]\n"
    "       lrsa bench --mode prefill|decode|attention --model DIR ...\n"
    "                  (`lrsa bench --mode prefill -h`)\n"
    "Times the CPU training step on random token ids (a random model for --config) and\n"
    "the OpenBLAS SGEMM rate on a [B*T, hidden] x [hidden, 2*intermediate] GEMM.\n"
    "--optim: each step also zeroes the gradients and takes an AdamW step (lr 1e-5,\n"
    "betas 0.9/0.999, eps 1e-8, weight decay 0.01, as torch.optim.AdamW's defaults).\n"
    "--ids FILE: token ids (whitespace-separated, repeated to B*T) instead of random ones.\n"
    "--lora-rank R trains a rank-R LoRA adapter (alpha 2R, all seven projections unless\n"
    "--lora-targets) on the frozen model instead of every weight; --lora-base-dtype bf16\n"
    "stores the frozen base's linear matrices in bf16 (lora.base_dtype, docs/LORA.md).\n"
    "Threads: set OPENBLAS_NUM_THREADS (the one count of every CPU kernel).\n";

static void config_preset(lrsa_model_config *c, const char *name, int *ok) {
    memset(c, 0, sizeof *c);
    c->arch = LRSA_ARCH_LLAMA;
    snprintf(c->model_type, sizeof c->model_type, "llama");
    c->rms_norm_eps = 1e-5f;
    c->rope.type = LRSA_ROPE_DEFAULT;
    c->rope.factor = 1.f;
    c->max_position_embeddings = 8192;
    c->bos_token_id = c->pad_token_id = -1;
    *ok = 1;
    if (strcmp(name, "smollm2-135m") == 0) {
        /* SmolLM2-135M shape (formats.md 2.1) */
        c->vocab_size = 49152, c->hidden_size = 576, c->intermediate_size = 1536;
        c->num_hidden_layers = 30, c->num_attention_heads = 9, c->num_key_value_heads = 3;
        c->head_dim = 64, c->rope.theta = 100000.f, c->tie_word_embeddings = 1;
    } else if (strcmp(name, "small") == 0) {
        c->vocab_size = 4096, c->hidden_size = 256, c->intermediate_size = 704;
        c->num_hidden_layers = 4, c->num_attention_heads = 4, c->num_key_value_heads = 2;
        c->head_dim = 64, c->rope.theta = 10000.f, c->tie_word_embeddings = 1;
    } else {
        *ok = 0;
    }
}

/* SGEMM FLOP/s on C[M,N] = A[M,K] B[N,K]^T (the layout of a linear layer), ~1 s of work. */
static double sgemm_rate(int M, int N, int K) {
    float *a = lrsa_alloc_aligned((size_t)M * K * sizeof(float));
    float *b = lrsa_alloc_aligned((size_t)N * K * sizeof(float));
    float *c = lrsa_alloc_aligned((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)((i * 7) % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)((i * 5) % 11) * 0.01f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, a, K, b, K, 0.f, c, N);
    double flop = 2.0 * M * N * K, t0 = lrsa_now(), t;
    int reps = 0;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, a, K, b, K, 0.f, c, N);
        reps++;
        t = lrsa_now() - t0;
    } while (t < 1.0 || reps < 3);
    free(a);
    free(b);
    free(c);
    return flop * reps / t;
}

/* CPU seconds of the whole process (all threads): on a shared machine the work a step costs,
 * independent of how much of the CPU the other jobs leave to it. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Token ids from a file, repeated to n; -1 (error names the file) on a bad file or id. */
static int read_ids(int32_t *ids, int64_t n, const char *path, int vocab, lrsa_err *e) {
    int rows, cols;
    int32_t *src = lrsa_read_int_rows(path, &rows, &cols, e);
    if (!src) return -1;
    int64_t have = (int64_t)rows * cols;
    for (int64_t i = 0; i < n; i++) ids[i] = src[i % have];
    free(src);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return lrsa_errorf(e, "%s: token id %d is outside the model's vocabulary [0, %d)", path,
                               ids[i], vocab);
    return 0;
}

/* One training step: forward + backward, and with optim the gradient reset and an AdamW
 * update of the trainable table (every weight, or the LoRA adapter): what the trainer does per
 * step, without clipping or logging. *t_opt gains the seconds of the update. */
static double bench_step(lrsa_model *m, lrsa_tensor_table *trainable, lrsa_workspace *ws,
                         lrsa_adamw *opt, int optim, const int32_t *ids, const float *w, int B,
                         int T, const lrsa_attn_config *attn, int recompute, double *t_opt) {
    if (optim) lrsa_table_zero(trainable, LRSA_ROLE_GRAD);
    double loss = lrsa_model_forward_backward(m, ws, ids, w, B, T, attn, recompute, 1, NULL);
    if (optim) {
        double t1 = lrsa_now();
        lrsa_adamw_step(opt, trainable->arena[LRSA_ROLE_PARAM], trainable->arena[LRSA_ROLE_GRAD],
                        1e-5, 1.0);
        *t_opt += lrsa_now() - t1;
    }
    return loss;
}

static int run(int argc, char **argv, lrsa_err *e) {
    const char *model_dir = NULL, *preset = "small", *loss_mode = "all";
    const char *ids_path = NULL;
    int T = 1024, B = 1, steps = 3, recompute = 0, optim = 0, lora_rank = 0;
    const char *lora_targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
    const char *base_dtype = "f32";
    lrsa_attn_config attn;
    lrsa_attn_config_default(&attn);
    for (int i = 1; i < argc; i++) {
        int r = lrsa_parse_attn_flag(&attn, argc, argv, &i, e);
        if (r < 0) return -1;
        if (r > 0) continue;
        const char *a = argv[i];
        if (strcmp(a, "--recompute") == 0 || strcmp(a, "--optim") == 0) {
            *(a[2] == 'r' ? &recompute : &optim) = 1;
            continue;
        }
        if (i + 1 >= argc) return lrsa_errorf(e, "unknown flag or missing value: %s", a);
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0)
            model_dir = v;
        else if (strcmp(a, "--config") == 0)
            preset = v;
        else if (strcmp(a, "--loss") == 0)
            loss_mode = v;
        else if (strcmp(a, "--ids") == 0)
            ids_path = v;
        else if (strcmp(a, "--mode") == 0 && strcmp(v, "train") == 0)
            continue;
        else if (!strcmp(a, "--T") || !strcmp(a, "--B") || !strcmp(a, "--steps") ||
                 !strcmp(a, "--lora-rank")) {
            /* whole-string integers: "--T abc" names the value instead of reading it as 0 */
            long long n;
            const int is_T = a[2] == 'T', is_rank = a[2] == 'l';
            if (lrsa_flag_int(a, v, is_T ? 2 : is_rank ? 0 : 1, 1 << 24, &n, e)) return -1;
            *(is_T ? &T : a[2] == 'B' ? &B : a[2] == 's' ? &steps : &lora_rank) = (int)n;
        } else if (strcmp(a, "--lora-targets") == 0)
            lora_targets = v;
        else if (strcmp(a, "--lora-base-dtype") == 0)
            base_dtype = v;
        else
            return lrsa_errorf(e, "unknown flag \"%s\"; see `lrsa bench --help`", a);
    }
    if (T < 2 || B < 1 || steps < 1 || lora_rank < 0)
        return lrsa_errorf(e, "--T must be >= 2, --B >= 1, --steps >= 1 and --lora-rank >= 0");
    lrsa_lora_config lc = {.rank = lora_rank, .alpha = 2.0 * lora_rank};
    if (lora_rank && lrsa_lora_targets_parse(lora_targets, &lc.targets, "--lora-targets", e))
        return -1;
    const int bf16 = strcmp(base_dtype, "bf16") == 0;
    if (!bf16 && strcmp(base_dtype, "f32") != 0)
        return lrsa_errorf(e, "--lora-base-dtype must be f32 or bf16, not \"%s\"", base_dtype);
    if (bf16 && !lora_rank)
        return lrsa_errorf(e, "--lora-base-dtype bf16 stores the frozen base of a LoRA step; "
                              "add --lora-rank R");
    if (strcmp(loss_mode, "all") != 0 && strcmp(loss_mode, "last-quarter") != 0)
        return lrsa_errorf(e, "--loss must be all or last-quarter, not \"%s\"", loss_mode);
    if (lrsa_attn_config_check(&attn, e)) return -1;
    lrsa_model m;
    if (model_dir) {
        if ((bf16 ? lrsa_model_load_base_bf16 : lrsa_model_load)(&m, model_dir, e)) return -1;
    } else {
        lrsa_model_config c;
        int ok;
        config_preset(&c, preset, &ok);
        if (!ok)
            return lrsa_errorf(e, "--config \"%s\" is unknown; use small or smollm2-135m", preset);
        if (lrsa_model_create(&m, &c, e)) return -1;
        lrsa_model_init_random(&m, 1, 0.02f);
        if (bf16) lrsa_model_store_base_bf16(&m);
    }
    const lrsa_model_config *c = &m.cfg;
    const int64_t N = (int64_t)B * T;
    int32_t *ids = lrsa_malloc((size_t)N * sizeof(int32_t));
    float *w = lrsa_calloc((size_t)N, sizeof(float));
    lrsa_rng r;
    lrsa_rng_seed(&r, 3);
    int64_t loss_rows = 0;
    int first = strcmp(loss_mode, "all") == 0 ? 1 : T - T / 4;
    for (int64_t i = 0; i < N; i++) {
        ids[i] = (int32_t)lrsa_rng_below(&r, (uint64_t)c->vocab_size);
        if (i % T >= first) loss_rows++;
    }
    if (ids_path && read_ids(ids, N, ids_path, c->vocab_size, e)) {
        free(ids), free(w);
        lrsa_model_free(&m);
        return -1;
    }
    for (int64_t i = 0; i < N; i++)
        if (i % T >= first) w[i] = 1.0f / (float)loss_rows;
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_lora lora;
    lrsa_tensor_table *trainable = &m.table;
    if (lora_rank) {
        if (lrsa_lora_create(&lora, &m.cfg, &lc, e)) {
            lrsa_workspace_free(ws);
            lrsa_model_free(&m);
            free(ids);
            free(w);
            return -1;
        }
        lrsa_lora_init(&lora, 2);
        m.lora = &lora;
        trainable = &lora.table;
    }
    lrsa_table_alloc(trainable, LRSA_ROLE_GRAD);
    lrsa_adamw opt;
    memset(&opt, 0, sizeof opt); /* only read with --optim, after lrsa_adamw_init */
    if (optim) lrsa_adamw_init(&opt, trainable, 0, 1, 0.9, 0.999, 1e-8, 0.01);

    /* (F, not I: cblas.h pulls in complex.h, whose I is a macro.)
     * Model FLOPs: 6 per matrix parameter per token (forward 2, backward 4), the LM head only at
     * the loss rows, plus attention: QK^T and PV cost 2 * 2 * D per (query, visible key) pair
     * and head forward, times 3 with the backward. Visible keys: causal in dense mode; under
     * the LRSA rule (lagkv-lrsa.md 5) the sink, the selected tokens of the partitions before
     * the previous one and the causal band from the previous partition's start. Embedding
     * lookups and elementwise ops are not counted. */
    const double C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
                 Hkv = c->num_key_value_heads, F = c->intermediate_size, V = c->vocab_size;
    double pairs = 0;
    for (int i = 0; i < T; i++) {
        const lrsa_lagkv_params *p = &attn.lagkv;
        int S = p->sink, L = p->lag;
        if (attn.mode != LRSA_ATTN_LRSA || i < S + 2 * L) {
            pairs += i + 1;
        } else {
            int cpart = (i - S) / L; /* partition of query i (>= 2) */
            pairs += S + (double)lrsa_lagkv_k(p) * (cpart - 1) + (i - (S + (cpart - 1) * L) + 1);
        }
    }
    /* A frozen weight costs 4 per token (forward, gradient to the input: no weight gradient);
     * LoRA adds 6 per adapter parameter per token. */
    const double per_weight = lora_rank ? 4.0 : 6.0;
    double layer_mat = (Hq + 2 * Hkv) * D * C + Hq * D * C + 3 * F * C;
    double flop = per_weight * layer_mat * c->num_hidden_layers * (double)N +
                  per_weight * V * C * (double)loss_rows +
                  12.0 * D * Hq * pairs * B * c->num_hidden_layers +
                  (lora_rank ? 6.0 * (double)lora.table.numel * (double)N : 0.0);
    /* The SGEMM rate is taken before and after the steps and averaged: on a shared machine the
     * load changes during the run, and the ratio should compare like with like. */
    double gemm_before = sgemm_rate((int)N, (int)(2 * F), (int)C);
    double t0 = lrsa_now(), t_opt = 0;
    double loss =
        bench_step(&m, trainable, ws, &opt, optim, ids, w, B, T, &attn, recompute, &t_opt);
    double warm = lrsa_now() - t0;
    t0 = lrsa_now(), t_opt = 0;
    double c0 = cpu_seconds();
    for (int s = 0; s < steps; s++)
        loss = bench_step(&m, trainable, ws, &opt, optim, ids, w, B, T, &attn, recompute, &t_opt);
    double dt = (lrsa_now() - t0) / steps, cpu = (cpu_seconds() - c0) / steps;
    double step_rate = flop / dt;
    double gemm_after = sgemm_rate((int)N, (int)(2 * F), (int)C);
    double gemm = 0.5 * (gemm_before + gemm_after);

    const char *env = getenv("OPENBLAS_NUM_THREADS");
    printf("model: %s  params %lld  layers %d  hidden %d  heads %d/%d  head_dim %d  vocab %d\n",
           model_dir ? model_dir : preset, lrsa_config_num_params(c), c->num_hidden_layers,
           c->hidden_size, c->num_attention_heads, c->num_key_value_heads, c->head_dim,
           c->vocab_size);
    printf("step: B %d  T %d  attn %s  loss rows %s  recompute %d  OpenBLAS threads %d "
           "(OPENBLAS_NUM_THREADS=%s)\n",
           B, T, attn.mode == LRSA_ATTN_LRSA ? "lrsa" : "dense", loss_mode, recompute,
           openblas_get_num_threads(), env ? env : "unset");
    if (lora_rank)
        printf("training: LoRA rank %d (alpha %g) on %s, %lld trainable parameters, base frozen, "
               "its linear matrices in %s (%.1f MB)\n",
               lora_rank, lc.alpha, lora_targets, (long long)trainable->numel, base_dtype,
               (double)lrsa_model_weight_bytes(&m).matrices / 1e6);
    else
        printf("training: every weight, %lld trainable parameters\n", (long long)trainable->numel);
    printf("first step %.3f s (includes allocation); mean of %d steps %.3f s%s; loss %.4f\n", warm,
           steps, dt, optim ? " (with AdamW)" : "", loss);
    printf("CPU time per step %.3f s (all threads)\n", cpu);
    if (optim) printf("AdamW update %.3f s per step\n", t_opt / steps);
    printf("result train B %d T %d seconds %.6f cpu_seconds %.6f peak_rss_mib %.1f\n", B, T, dt,
           cpu, lrsa_peak_rss_mib());
    printf("tokens/s %.1f\n", (double)N / dt);
    printf("model GFLOP/s %.2f  (%.3g FLOP per step, attention %.1f%% of query-key pairs of "
           "dense causal)\n",
           step_rate / 1e9, flop, 100.0 * pairs / ((double)T * (T + 1) / 2));
    printf("SGEMM GFLOP/s %.2f  ([%lld x %d] x [%d x %d]; %.2f before the steps, %.2f after)\n",
           gemm / 1e9, (long long)N, (int)C, (int)C, (int)(2 * F), gemm_before / 1e9,
           gemm_after / 1e9);
    printf("ratio step/SGEMM %.2f\n", step_rate / gemm);
    printf("peak resident memory %.1f MiB (weights, gradients, %sactivations)\n",
           lrsa_peak_rss_mib(), optim ? "AdamW moments, " : "");
    if (optim) lrsa_adamw_free(&opt);
    if (lora_rank) lrsa_lora_free(&lora);
    lrsa_workspace_free(ws);
    lrsa_model_free(&m);
    free(ids);
    free(w);
    return 0;
}

int lrsa_cmd_bench(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--mode")) {
            const char *mode = argv[i + 1];
            if (!strcmp(mode, "prefill") || !strcmp(mode, "decode") || !strcmp(mode, "attention"))
                return lrsa_cmd_bench_infer(argc, argv);
            if (strcmp(mode, "train") != 0) {
                fprintf(stderr,
                        "lrsa: error: --mode must be train, prefill, decode or attention, not "
                        "\"%s\"\n",
                        mode);
                return 1;
            }
        }
    return lrsa_cmd_main(argc, argv, BENCH_HELP, run);
}
