/* Rotate-half RoPE (Hugging Face convention) and its inverse frequencies. Every float
 * operation below mirrors the fp32 tensor arithmetic transformers performs, so the
 * frequencies and angles agree with it to the last bit or two. */
#include "kernels/rope/rope.h"

#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "kernels/cpu/cpu_threads.h"

void lrsa_rope_inv_freq(float *inv_freq, int D, const lrsa_rope_config *rc) {
    int half = D / 2;
    float theta = rc->theta > 0.0f ? rc->theta : 10000.0f;
    for (int j = 0; j < half; j++) {
        /* transformers: 1 / (base ** (arange(0, D, 2).float() / D)), all fp32 */
        float expo = (float)(2 * j) / (float)D;
        inv_freq[j] = 1.0f / powf(theta, expo);
    }
    if (rc->type == LRSA_ROPE_LINEAR) {
        for (int j = 0; j < half; j++) inv_freq[j] = inv_freq[j] / rc->factor;
    } else if (rc->type == LRSA_ROPE_LLAMA3) {
        float orig = (float)rc->original_max_position_embeddings;
        float lo = rc->low_freq_factor, hi = rc->high_freq_factor, factor = rc->factor;
        float lo_wavelen = orig / lo, hi_wavelen = orig / hi;
        float two_pi = (float)(2.0 * M_PI);
        for (int j = 0; j < half; j++) {
            float inv = inv_freq[j];
            float wavelen = two_pi / inv;
            if (wavelen > lo_wavelen) {
                inv_freq[j] = inv / factor; /* low frequency: stretched by factor */
            } else if (wavelen >= hi_wavelen) {
                /* medium frequency: blend of scaled and unscaled */
                float smooth = (orig / wavelen - lo) / (hi - lo);
                inv_freq[j] = (1.0f - smooth) * inv / factor + smooth * inv;
            } /* high frequency: unchanged */
        }
    }
}

/* cos/sin of one row's angles, computed once per row and reused by every head. Rows are
 * threaded; each row is rotated by one thread alone (the same bits for any thread count). */
enum { ROPE_STACK_HALF = 512 };

static void rope_rows(float *x, const int32_t *pos, const float *inv_freq, int64_t i0, int64_t i1,
                      int n_heads, int D, int64_t stride, float sign) {
    int half = D / 2;
    float stack_cs[2 * ROPE_STACK_HALF];
    float *cs = half <= ROPE_STACK_HALF ? stack_cs : lrsa_malloc(sizeof(float) * 2 * (size_t)half);
    float *cosv = cs, *sinv = cs + half;
    for (int64_t i = i0; i < i1; i++) {
        float p = (float)pos[i];
        for (int j = 0; j < half; j++) {
            float angle = p * inv_freq[j];
            cosv[j] = cosf(angle);
            sinv[j] = sign * sinf(angle);
        }
        float *row = x + i * stride;
        for (int h = 0; h < n_heads; h++) {
            float *a = row + (int64_t)h * D, *b = a + half;
#pragma omp simd
            for (int j = 0; j < half; j++) {
                float x1 = a[j], x2 = b[j];
                a[j] = x1 * cosv[j] - x2 * sinv[j];
                b[j] = x2 * cosv[j] + x1 * sinv[j];
            }
        }
    }
    if (cs != stack_cs) free(cs);
}

static void rope_apply(float *x, const int32_t *pos, const float *inv_freq, int64_t N, int n_heads,
                       int D, int64_t stride, float sign) {
    enum { ROWS = 16 }; /* rows per piece */
    const int64_t pieces = (N + ROWS - 1) / ROWS;
#pragma omp parallel for schedule(static)                                                          \
    num_threads(lrsa_cpu_threads_for(N, 40 * (int64_t)D + 6 * (int64_t)n_heads * D))
    for (int64_t pc = 0; pc < pieces; pc++) {
        const int64_t i0 = pc * ROWS, i1 = i0 + ROWS < N ? i0 + ROWS : N;
        rope_rows(x, pos, inv_freq, i0, i1, n_heads, D, stride, sign);
    }
}

void lrsa_rope_forward_cpu(float *x, const int32_t *pos, const float *inv_freq, int64_t N,
                           int n_heads, int D, int64_t stride) {
    rope_apply(x, pos, inv_freq, N, n_heads, D, stride, 1.0f);
}

/* The rotation is orthogonal, so its transpose (the backward) is the rotation by -angle. */
void lrsa_rope_backward_cpu(float *dx, const int32_t *pos, const float *inv_freq, int64_t N,
                            int n_heads, int D, int64_t stride) {
    rope_apply(dx, pos, inv_freq, N, n_heads, D, stride, -1.0f);
}
