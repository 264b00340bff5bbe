/* Writes seed datasets for the dataset fuzz target into DIR: small lrsa-qa-v1 files from the
 * dataset writer (one sample; three samples with answers of several lengths; a task mixture
 * with /sample_task; an empty-answer sample). Kept small so mutations reach every structure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"

static void die(const lrsa_err *e) {
    lrsa_err_print(e);
    exit(1);
}

static void write_seed(const char *dir, const char *name, int n, int len, int with_tasks) {
    lrsa_err e;
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    int32_t ids[64];
    uint8_t mask[64];
    const char *answers[] = {"42", "", "Paris, France", "\xc3\xa9t\xc3\xa9"};
    for (int s = 0; s < n; s++) {
        int L = len + s;
        for (int t = 0; t < L; t++) ids[t] = 1 + (t * 7 + s) % 90, mask[t] = t >= L - 3;
        if (lrsa_dataset_writer_add(w, ids, mask, L, L - 3, answers[s % 4], &e)) die(&e);
        if (with_tasks) lrsa_dataset_writer_set_task(w, s, s % 2 ? "vartrack" : "passkey");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    lrsa_dataset_meta meta = {"0123abcd", "chatml", "fuzz seeds",
                              with_tasks ? "passkey,vartrack" : "qa", 0};
    if (lrsa_dataset_writer_commit(w, path, &meta, &e)) die(&e);
    lrsa_dataset_writer_free(w);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_dataset_seeds DIR\n");
        return 2;
    }
    lrsa_err e;
    if (lrsa_mkdirs(argv[1], &e)) die(&e);
    write_seed(argv[1], "one.h5", 1, 8, 0);
    write_seed(argv[1], "three.h5", 3, 12, 0);
    write_seed(argv[1], "mixture.h5", 4, 10, 1);
    return 0;
}
