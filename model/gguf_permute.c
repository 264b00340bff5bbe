/* The llama Q/K row permutation (formats.md 3.5). ggml's "normal" RoPE rotates adjacent pairs
 * (2i, 2i+1) while Hugging Face rotates (i, i+hd/2), so the HF->GGUF converter interleaves the
 * two halves of every head; importing must undo it to use the HF-convention RoPE kernel. Rows
 * are moved as opaque bytes, which works for quantized rows too (blocks run along a row). */
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

/* to_hf: hf_row[h*hd + c*hd/2 + i] = gguf_row[h*hd + 2i + c]; otherwise the inverse. */
static void move_rows(uint8_t *rows, int n_head, int head_dim, size_t row_bytes, int to_hf) {
    LRSA_CHECK((head_dim & 1) == 0, "head_dim must be even");
    size_t head_bytes = (size_t)head_dim * row_bytes;
    uint8_t *tmp = lrsa_malloc(head_bytes ? head_bytes : 1);
    int half = head_dim / 2;
    for (int h = 0; h < n_head; h++) {
        uint8_t *head = rows + (size_t)h * head_bytes;
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < half; i++) {
                size_t hf = (size_t)(c * half + i), gg = (size_t)(2 * i + c);
                size_t dst = to_hf ? hf : gg, src = to_hf ? gg : hf;
                memcpy(tmp + dst * row_bytes, head + src * row_bytes, row_bytes);
            }
        memcpy(head, tmp, head_bytes);
    }
    free(tmp);
}

void lrsa_gguf_unpermute_rows(void *rows, int n_head, int head_dim, size_t row_bytes) {
    move_rows(rows, n_head, head_dim, row_bytes, 1);
}
void lrsa_gguf_permute_rows(void *rows, int n_head, int head_dim, size_t row_bytes) {
    move_rows(rows, n_head, head_dim, row_bytes, 0);
}
