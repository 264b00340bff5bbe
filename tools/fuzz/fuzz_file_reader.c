/* libFuzzer targets for the readers that take a path: the safetensors header validator
 * (FUZZ_SAFETENSORS) and tokenizer.json loading (FUZZ_TOKENIZER). Each input is written to a
 * per-process file in /dev/shm (or TMPDIR) and opened from there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/tokenizer.h"
#include "fuzz_input.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size, "reader");
    if (!path) return 0;
    lrsa_err e;
#if defined(FUZZ_SAFETENSORS)
    lrsa_safetensors st;
    if (lrsa_st_open(&st, path, &e) == 0) {
        for (int i = 0; i < st.n; i++) {
            const lrsa_st_tensor *t = &st.tensors[i];
            uint64_t n = 1;
            for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
            if (n > (1u << 20)) continue;
            float *out = malloc((size_t)(n ? n : 1) * sizeof(float));
            (void)lrsa_st_read_f32(&st, t, out, &e);
            free(out);
        }
        lrsa_st_close(&st);
    }
#elif defined(FUZZ_TOKENIZER)
    lrsa_tokenizer *t = lrsa_tokenizer_load(path, &e);
    if (t) {
        lrsa_ids ids = {0};
        (void)lrsa_tokenizer_encode(t, "Hello world! 123 \xC3\xA9", 18, &ids, &e);
        char *text = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
        free(text);
        lrsa_ids_free(&ids);
        lrsa_tokenizer_free(t);
    }
#else
#error define FUZZ_SAFETENSORS or FUZZ_TOKENIZER
#endif
    return 0;
}
