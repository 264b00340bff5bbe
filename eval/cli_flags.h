/* Flag parsing shared by the eval/ commands: numbers with full validation and the press flags
 * (--press none|lagkv --sink S --lag L --keep r --value-weight w --prefill chunked|oneshot). */
#ifndef LRSA_EVAL_CLI_FLAGS_H
#define LRSA_EVAL_CLI_FLAGS_H
#include <stdint.h>

#include "autograd/error.h"
#include "eval/answer_nll.h"

/* Parse a whole-string integer / float for `flag`; errors name the flag and the value. */
int lrsa_flag_int(const char *flag, const char *s, long long lo, long long hi, long long *out,
                  lrsa_err *e);
int lrsa_flag_float(const char *flag, const char *s, float *out, lrsa_err *e);
/* The value after argv[*i] (advancing *i), or an error naming the flag. */
int lrsa_flag_value(int argc, char **argv, int *i, const char **out, lrsa_err *e);

/* Defaults: --press none, S=16, L=128, r=0.5, w=1, --prefill chunked. */
void lrsa_press_defaults(lrsa_press_config *p);
/* If argv[*i] is a press flag, parses it (and its value) and returns 1; 0 if not a press flag;
 * -1 on a bad value. */
int lrsa_press_flag(lrsa_press_config *p, int argc, char **argv, int *i, lrsa_err *e);
/* Validates the LagKV parameters when the press compresses. */
int lrsa_press_check(const lrsa_press_config *p, lrsa_err *e);
/* "none" or "lagkv(S=16,L=128,r=0.5,w=1)" into buf. */
const char *lrsa_press_describe(const lrsa_press_config *p, char *buf, int cap);
#define LRSA_PRESS_FLAGS_HELP                                                                      \
    "  --press none|lagkv   KV-cache compression (default none: full cache)\n"                     \
    "  --sink S             LagKV sink size (default 16)\n"                                        \
    "  --lag L              LagKV partition size (default 128)\n"                                  \
    "  --keep r             fraction of each partition kept, in (0, 1] (default 0.5)\n"            \
    "  --value-weight w     weight of the value score (default 1)\n"                               \
    "  --prefill chunked|oneshot   prefill mode (default chunked)\n"
#endif
