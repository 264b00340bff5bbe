/* lrsa: fine-tune Llama-family models with Lag-Relative Sparse Attention. */
#include <stdio.h>
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
    {"train", lrsa_cmd_train, "fine-tune from a YAML config (1 CPU/GPU, or mpirun -np N)"},
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

int main(int argc, char **argv) {
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
