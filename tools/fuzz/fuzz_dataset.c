/* libFuzzer target for the HDF5 QA dataset reader: each input is written to a per-process file
 * in /dev/shm (or TMPDIR) and opened with lrsa_dataset_open, which must either reject it with a
 * message or return a dataset whose every sample can be walked (ids, mask, answer, task).
 * Seeds: small datasets from the dataset writer (tools/fuzz/make_dataset_seeds.c). Run with
 * `tools/fuzz/run.sh dataset SECONDS`. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "data/dataset.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size, "dataset");
    if (!path) return 0;
    lrsa_err e;
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) == 0) {
        uint64_t sum = 0;
        for (int64_t i = 0; i < lrsa_dataset_size(&d); i++) {
            const int32_t *ids = lrsa_dataset_ids(&d, i);
            const uint8_t *mask = lrsa_dataset_mask(&d, i);
            for (int64_t t = 0, n = lrsa_dataset_len(&d, i); t < n; t++)
                sum += (uint64_t)ids[t] + mask[t];
            sum += (uint64_t)lrsa_dataset_prompt_len(&d, i) + lrsa_dataset_n_target(&d, i);
            sum += strlen(lrsa_dataset_answer(&d, i)) + strlen(lrsa_dataset_sample_task(&d, i));
        }
        if (sum == 42) fprintf(stderr, "%s", ""); /* keeps the walk from being optimised out */
        lrsa_dataset_close(&d);
    }
    return 0;
}
