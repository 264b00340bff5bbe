/* Commands whose implementation has not landed yet. Each says so plainly and exits non-zero.
 * Implementing a command means deleting its entry here and defining it next to its code. */
#include <stdio.h>

#include "train/commands.h"

#define PENDING(fn, name, where)                                                                   \
    int fn(int argc, char **argv) {                                                                \
        (void)argc;                                                                                \
        (void)argv;                                                                                \
        fprintf(stderr, "lrsa: error: `lrsa %s` is not implemented yet (%s)\n", name, where);     \
        return 2;                                                                                  \
    }

PENDING(lrsa_cmd_convert, "convert", "data/")
PENDING(lrsa_cmd_tokenize, "tokenize", "data/")
PENDING(lrsa_cmd_prepare, "prepare", "data/")
PENDING(lrsa_cmd_train, "train", "train/")
PENDING(lrsa_cmd_export, "export", "train/")
PENDING(lrsa_cmd_plot, "plot", "train/")
PENDING(lrsa_cmd_eval, "eval", "eval/")
PENDING(lrsa_cmd_report, "report", "eval/")
PENDING(lrsa_cmd_generate, "generate", "eval/")
PENDING(lrsa_cmd_inspect, "inspect", "eval/")
PENDING(lrsa_cmd_lagkv, "lagkv", "eval/")
PENDING(lrsa_cmd_logits, "logits", "model/")
PENDING(lrsa_cmd_bench, "bench", "train/")
