#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"

void tu_fill_normal(float *x, int64_t n, float scale, lrsa_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * lrsa_rng_normal(rng);
}

void tu_fill_uniform(float *x, int64_t n, float lo, float hi, lrsa_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * lrsa_rng_uniform(rng);
}

double tu_rel_err(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

double tu_max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

void tu_tmpdir(char *out, size_t cap, const char *tag) {
    const char *base = getenv("LRSA_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    static int counter = 0;
    snprintf(out, cap, "%s/%s-%ld-%d", base, tag, (long)getpid(), counter++);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
    if (system(cmd) != 0) fail_msg("cannot create %s", out);
}

int tu_run(const char *cmd, char **output) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    if (output)
        *output = buf;
    else
        free(buf);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
