/* The `lrsa` subcommands, each in cli/cmd_<name>.c (the comment names the library folder it
 * drives); each returns the process exit status. cli/main.c dispatches by name. */
#ifndef LRSA_COMMANDS_H
#define LRSA_COMMANDS_H
#include "base/error.h"

int lrsa_cmd_convert(int argc, char **argv);  /* convert/: GGUF or HF dir -> HF dir */
int lrsa_cmd_tokenize(int argc, char **argv); /* data/ */
int lrsa_cmd_prepare(int argc, char **argv);  /* data/: JSONL or synthetic -> HDF5 */
int lrsa_cmd_train(int argc, char **argv);    /* train/ */
int lrsa_cmd_export(int argc, char **argv);   /* train/ */
int lrsa_cmd_plot(int argc, char **argv);     /* train/ */
int lrsa_cmd_eval(int argc, char **argv);     /* eval/ */
int lrsa_cmd_report(int argc, char **argv);   /* eval/ */
int lrsa_cmd_generate(int argc, char **argv); /* eval/ */
int lrsa_cmd_inspect(int argc, char **argv);  /* eval/ */
int lrsa_cmd_lagkv(int argc, char **argv);    /* eval/ */
int lrsa_cmd_logits(int argc, char **argv);   /* model/ */
int lrsa_cmd_bench(int argc, char **argv);    /* model/: the training step */
/* eval/: `lrsa bench --mode prefill|decode` (lrsa_cmd_bench hands those modes over) */
int lrsa_cmd_bench_infer(int argc, char **argv);

/* eval/: CompressKV's per-model heads/weights file */
int lrsa_cmd_compresskv(int argc, char **argv);

/* The common shape of a command: `--help`/`-h` anywhere prints `help` to stdout and exits 0;
 * otherwise run() does the work and an error it reports is printed (exit 1). */
typedef int (*lrsa_cmd_body)(int argc, char **argv, lrsa_err *e);
int lrsa_cmd_main(int argc, char **argv, const char *help, lrsa_cmd_body run);

#endif
