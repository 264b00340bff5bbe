/* libFuzzer target: the GGUF reader, the metadata -> config mapping and dequantization. Any
 * input must give either a parsed file or an lrsa_err, never a crash, a leak or a read outside
 * the buffer (AddressSanitizer watches). */
#include <stdint.h>
#include <stdlib.h>

#include "convert/gguf_convert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lrsa_gguf g;
    lrsa_err e;
    if (lrsa_gguf_open_mem(&g, data, size, "fuzz.gguf", &e) != 0) return 0;
    lrsa_model_config c;
    (void)lrsa_gguf_model_config(&g, &c, &e);
    for (int64_t i = 0; i < g.n_tensors; i++) {
        const lrsa_gguf_tensor *t = &g.tensors[i];
        if (t->nelem > (1 << 20)) continue; /* the reader checked the bytes exist; keep it fast */
        float *out = malloc((size_t)(t->nelem ? t->nelem : 1) * sizeof(float));
        lrsa_gguf_tensor_to_f32(&g, t, out);
        free(out);
    }
    for (int64_t i = 0; i < g.n_kv; i++) {
        const lrsa_gguf_value *v = &g.kv[i].v;
        if (v->type == LRSA_GGUF_ARRAY && v->raw && v->n)
            (void)lrsa_gguf_array_int(v, v->n - 1), (void)lrsa_gguf_array_float(v, 0);
    }
    lrsa_gguf_close(&g);
    return 0;
}
