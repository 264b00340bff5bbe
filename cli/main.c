/* lrsa: fine-tune Llama-family models with Lag-Relative Sparse Attention. */
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"convert", lrsa_cmd_convert, "GGUF file or HF directory -> HF directory (safetensors)"},
    {"tokenize", lrsa_cmd_tokenize, "text on stdin -> token ids (or back with --decode)"},
    {"prepare", lrsa_cmd_prepare, "QA JSONL or a synthetic long-context task -> HDF5 dataset"},
    {"train", lrsa_cmd_train, "fine-tune from a YAML config (CPU; mpirun -np N: data parallel)"},
    {"export", lrsa_cmd_export, "checkpoint -> Hugging Face directory"},
    {"plot", lrsa_cmd_plot, "draw a run's training and evaluation curves"},
    {"eval", lrsa_cmd_eval, "evaluate models under KV-cache compression"},
    {"report", lrsa_cmd_report, "tables and plots from an eval run"},
    {"generate", lrsa_cmd_generate, "generate text, optionally from a compressed KV cache"},
    {"inspect", lrsa_cmd_inspect, "draw which tokens a press keeps"},
    {"lagkv", lrsa_cmd_lagkv, "LagKV selection on given K/V tensors (safetensors)"},
    {"compresskv", lrsa_cmd_compresskv, "CompressKV's per-model retrieval heads and layer weights"},
    {"logits", lrsa_cmd_logits, "dump logits (and gradients) for parity checks"},
    {"bench", lrsa_cmd_bench, "measure training-step throughput"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lrsa COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`lrsa COMMAND --help` describes a command.\n");
}

/* `--flag=value` -> `--flag` `value`, for every command, so the commands parse one form. Only
 * names of letters, digits and dashes split: values such as training overrides (optim.lr=1e-4)
 * and grid overrides (budgets.keep=[1/4]) never start with "--". */
static char **split_flag_values(int argc, char **argv, int *argc_out) {
    char **out = malloc((size_t)(2 * argc + 1) * sizeof *out);
    if (!out) {
        fprintf(stderr, "lrsa: error: out of memory\n");
        exit(1);
    }
    int n = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        size_t name = a[0] == '-' && a[1] == '-' ? 2 + strspn(a + 2, "abcdefghijklmnopqrstuvwxyz"
                                                                     "0123456789-")
                                                 : 0;
        if (i > 0 && name > 2 && a[name] == '=') {
            a[name] = '\0'; /* argv's strings are ours to modify (C11 5.1.2.2.1) */
            out[n++] = a;
            out[n++] = a + name + 1;
        } else {
            out[n++] = a;
        }
    }
    out[n] = NULL;
    *argc_out = n;
    return out;
}

static int run_command(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lrsa 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lrsa: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

/* OpenMP's threads (our kernels) and OpenBLAS's pthreads share the cores, so an idle thread of
 * either pool must sleep rather than spin, or it steals the core the other pool's thread needs.
 * - libgomp's default wait policy spins: on the 2-core VM (2026-12-06) a decode token took
 *   0.35 s with spinning and 0.08 s without, a 1K prefill 5.5 s vs 4.3 s, a training step
 *   9.5 s vs 7.6 s. We set OMP_WAIT_POLICY=passive.
 * - OpenBLAS's idle workers yield-spin for 2^28 cycles (~0.1 s) after each call before they
 *   sleep, i.e. through the OpenMP region (attention, norms, SwiGLU) that follows every GEMM:
 *   on the same VM (2026-12-07) that doubled the CPU time of a 1K prefill's attention, and
 *   OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles: sleep at once) made the 1K prefill 1.16x and a 1K
 *   training step 1.10x faster, decode unchanged (docs/BENCHMARKS.md, "Idle OpenBLAS threads").
 * Both libraries read their variable when they load, before main(), so the first start sets what
 * the user has not set and re-executes itself once. A value the user set is kept (for OpenBLAS
 * also its older name GOTO_THREAD_TIMEOUT). Without /proc/self/exe (not Linux) it goes on
 * unchanged; a variable setenv cannot set stays unset (and cannot cause a second re-exec). */
static void prefer_sleeping_idle_threads(char **argv) {
    int set = 0; /* a variable set here takes effect only after the re-exec */
    if (getenv("OMP_WAIT_POLICY") == NULL && setenv("OMP_WAIT_POLICY", "passive", 0) == 0) set = 1;
    if (getenv("OPENBLAS_THREAD_TIMEOUT") == NULL && getenv("GOTO_THREAD_TIMEOUT") == NULL &&
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0) == 0)
        set = 1;
    if (set) execv("/proc/self/exe", argv); /* returns only on failure: carry on as we are */
}

int main(int argc, char **argv) {
    prefer_sleeping_idle_threads(argv);
    char **args = split_flag_values(argc, argv, &argc);
    int rc = run_command(argc, args);
    free(args);
    return rc;
}
