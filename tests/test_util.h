/* Helpers shared by the test suites (cmocka). */
#ifndef LRSA_TEST_UTIL_H
#define LRSA_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/rng.h"

/* Fills with N(0, scale^2) values from rng (never all zeros). */
void tu_fill_normal(float *x, int64_t n, float scale, lrsa_rng *rng);
void tu_fill_uniform(float *x, int64_t n, float lo, float hi, lrsa_rng *rng);
/* ||a - b|| / max(||b||, tiny); NaN anywhere gives +INFINITY (NaN never passes). */
double tu_rel_err(const float *a, const float *b, int64_t n);
double tu_max_abs_diff(const float *a, const float *b, int64_t n);
/* A fresh empty directory under the build tree's test tmp dir (LRSA_TEST_TMP) or /tmp. */
void tu_tmpdir(char *out, size_t cap, const char *tag);
/* Runs a shell command, returns its exit status (-1 if it could not run). Output captured in
 * *output (malloc'd, may be NULL) when output != NULL. */
int tu_run(const char *cmd, char **output);
/* Asserts rel_err(a, b) <= tol, printing the error and the label on failure. */
#define TU_ASSERT_CLOSE(a, b, n, tol, label)                                                       \
    do {                                                                                           \
        double tu_e_ = tu_rel_err((a), (b), (n));                                                  \
        if (!(tu_e_ <= (tol))) fail_msg("%s: relative error %.3g > %.3g", (label), tu_e_, (tol));  \
    } while (0)

#endif
