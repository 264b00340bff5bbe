/* Helpers shared by the model commands (`lrsa logits`, `lrsa bench`). */
#ifndef LRSA_MODEL_CMD_UTIL_H
#define LRSA_MODEL_CMD_UTIL_H
#include <stdint.h>

#include "base/error.h"
#include "model/model.h"

/* Parses the attention flags at argv[*i] (--attn dense|lrsa, --sink, --lag, --keep,
 * --value-weight). Returns 1 when argv[*i] was one of them (advancing *i past its value),
 * 0 when it was not, -1 on a bad value. Defaults: dense; sink 16, lag 128, keep 0.25, w 1. */
int lrsa_parse_attn_flag(lrsa_attn_config *a, int argc, char **argv, int *i, lrsa_err *e);
void lrsa_attn_config_default(lrsa_attn_config *a);
/* Checks the LagKV parameters when the mode is LRSA. */
int lrsa_attn_config_check(const lrsa_attn_config *a, lrsa_err *e);

/* Reads a matrix of integers: one row per non-empty line, whitespace-separated, every row the
 * same length. *rows, *cols receive the shape; returns a malloc'd array or NULL (error names
 * the file, line and fix). */
int32_t *lrsa_read_int_rows(const char *path, int *rows, int *cols, lrsa_err *e);
#endif
