/* Token-length distribution of a dataset being written (see prepare_stats.h). */
#include "data/prepare_stats.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

static int by_value(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

lrsa_length_stats lrsa_writer_length_stats(const lrsa_dataset_writer *w, const char *task) {
    lrsa_length_stats s = {0};
    int64_t n = lrsa_dataset_writer_count(w);
    int64_t *len = lrsa_malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        const char *t = lrsa_dataset_writer_task(w, i);
        if (!task || (t && !strcmp(t, task))) len[s.n++] = lrsa_dataset_writer_len(w, i);
    }
    if (s.n > 0) {
        qsort(len, (size_t)s.n, sizeof(int64_t), by_value);
        s.min = len[0];
        s.max = len[s.n - 1];
        s.median = s.n % 2 ? (double)len[s.n / 2] : 0.5 * (double)(len[s.n / 2 - 1] + len[s.n / 2]);
    }
    free(len);
    return s;
}

static void print_line(FILE *f, const char *what, lrsa_length_stats s) {
    fprintf(f, "prepare: %s: %lld samples, tokens min %lld, median %g, max %lld\n", what,
            (long long)s.n, (long long)s.min, s.median, (long long)s.max);
}

void lrsa_print_length_stats(FILE *f, const lrsa_dataset_writer *w) {
    print_line(f, "all", lrsa_writer_length_stats(w, NULL));
    const char *seen[64];
    int n_seen = 0;
    for (int64_t i = 0, n = lrsa_dataset_writer_count(w); i < n && n_seen < 64; i++) {
        const char *t = lrsa_dataset_writer_task(w, i);
        int known = !t;
        for (int j = 0; j < n_seen && !known; j++) known = !strcmp(seen[j], t);
        if (known) continue;
        seen[n_seen++] = t;
        char what[64];
        snprintf(what, sizeof what, "  %s", t);
        print_line(f, what, lrsa_writer_length_stats(w, t));
    }
}
