/* Flag parsing shared by the evaluation commands: numbers with full validation and the press flags
 * (LRSA_PRESS_FLAGS_HELP; docs/EVAL.md). Press flags may come in any order: --press sets the
 * method's defaults and the other press flags of the command line are applied over them. */
#ifndef LRSA_EVAL_CLI_FLAGS_H
#define LRSA_EVAL_CLI_FLAGS_H
#include <stdint.h>

#include "base/error.h"
#include "eval/run/answer_nll.h"

/* Parse a whole-string integer / float for `flag`; errors name the flag and the value. */
int lrsa_flag_int(const char *flag, const char *s, long long lo, long long hi, long long *out,
                  lrsa_err *e);
int lrsa_flag_float(const char *flag, const char *s, float *out, lrsa_err *e);
/* The value after argv[*i] (advancing *i), or an error naming the flag. */
int lrsa_flag_value(int argc, char **argv, int *i, const char **out, lrsa_err *e);

/* Defaults: --press none, S=16, L=128, r=0.5, w=1, --prefill chunked, --protocol aware. */
void lrsa_press_defaults(lrsa_press_config *p);
/* If argv[*i] is a press flag, parses it (and its value) and returns 1; 0 if not a press flag;
 * -1 on a bad value. */
int lrsa_press_flag(lrsa_press_config *p, int argc, char **argv, int *i, lrsa_err *e);
/* Validates the press (lrsa_press_spec_check on the effective spec). */
int lrsa_press_check(const lrsa_press_config *p, lrsa_err *e);
/* "none", "lagkv(S=16,L=128,r=0.5,w=1)", "snapkv(keep=0.25,...)" into buf. */
const char *lrsa_press_describe(const lrsa_press_config *p, char *buf, int cap);
#define LRSA_PRESS_FLAGS_HELP                                                                      \
    "  --press NAME         KV-cache press: none (default), lagkv, lagkv-kvpress, streaming,\n"    \
    "                       snapkv, h2o, pyramidkv, tova, knorm, kvzip, compresskv\n"              \
    "  --keep r             budget: fraction kept, in (0, 1] (default 0.5); for lagkv the\n"       \
    "                       fraction of each partition, for the others of the whole cache\n"       \
    "  --tokens N           budget instead of --keep: rows kept per layer and KV head\n"           \
    "  --sink S             protected first tokens (lagkv default 16, streaming/kvzip 4)\n"        \
    "  --lag L              LagKV partition size (default 128)\n"                                  \
    "  --value-weight w     LagKV weight of the value score (default 1)\n"                         \
    "  --window W           observation window, protected (snapkv/pyramidkv 64, compresskv 8)\n"   \
    "  --kernel K --pool avg|max   SnapKV-family pooling (default 5, avg)\n"                       \
    "  --selector uniform|adaptive|layer|global   (default per press; adaptive = AdaKV)\n"         \
    "  --alpha a            AdaKV safeguard fraction (default 0.2)\n"                              \
    "  --beta b             PyramidKV slope (default 20)\n"                                        \
    "  --kvzip-chunk N      KVzip reconstruction chunk (default 2048)\n"                           \
    "  --compresskv-file F  CompressKV per-model file (lrsa compresskv)\n"                         \
    "  --protocol aware|agnostic   question inside the compressed prompt (default aware) or\n"     \
    "                       asked after compressing the context alone\n"                           \
    "  --prefill chunked|oneshot   LagKV prefill mode (default chunked)\n"
#endif
