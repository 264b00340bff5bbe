/* Block (de)quantization for the ggml types lrsa imports. Blocks are read byte by byte (never by
 * casting to a struct) so that the layout is explicit and unaligned data is fine. */
#include "model/quant.h"

#include <math.h>
#include <string.h>

#include "autograd/tensor.h"

typedef struct type_info {
    uint32_t id;
    const char *name;
    int64_t block_elems, block_bytes; /* 0 when lrsa does not implement the type */
} type_info;

static const type_info k_types[] = {
    {LRSA_GGML_F32, "F32", 1, 4},
    {LRSA_GGML_F16, "F16", 1, 2},
    {LRSA_GGML_Q4_0, "Q4_0", 32, 18},
    {LRSA_GGML_Q4_1, "Q4_1", 32, 20},
    {LRSA_GGML_Q5_0, "Q5_0", 0, 0},
    {LRSA_GGML_Q5_1, "Q5_1", 0, 0},
    {LRSA_GGML_Q8_0, "Q8_0", 32, 34},
    {LRSA_GGML_Q8_1, "Q8_1", 0, 0},
    {LRSA_GGML_Q2_K, "Q2_K", 0, 0},
    {LRSA_GGML_Q3_K, "Q3_K", 0, 0},
    {LRSA_GGML_Q4_K, "Q4_K", 0, 0},
    {LRSA_GGML_Q5_K, "Q5_K", 0, 0},
    {LRSA_GGML_Q6_K, "Q6_K", 0, 0},
    {LRSA_GGML_Q8_K, "Q8_K", 0, 0},
    {16, "IQ2_XXS", 0, 0},
    {17, "IQ2_XS", 0, 0},
    {18, "IQ3_XXS", 0, 0},
    {19, "IQ1_S", 0, 0},
    {20, "IQ4_NL", 0, 0},
    {21, "IQ3_S", 0, 0},
    {22, "IQ2_S", 0, 0},
    {23, "IQ4_XS", 0, 0},
    {LRSA_GGML_I8, "I8", 0, 0},
    {LRSA_GGML_I16, "I16", 0, 0},
    {LRSA_GGML_I32, "I32", 0, 0},
    {LRSA_GGML_I64, "I64", 0, 0},
    {LRSA_GGML_F64, "F64", 0, 0},
    {29, "IQ1_M", 0, 0},
    {LRSA_GGML_BF16, "BF16", 1, 2},
    {34, "TQ1_0", 0, 0},
    {35, "TQ2_0", 0, 0},
};

static const type_info *find_type(uint32_t type) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].id == type) return &k_types[i];
    return NULL;
}

const char *lrsa_ggml_type_name(uint32_t type) {
    const type_info *t = find_type(type);
    return t ? t->name : NULL;
}
int lrsa_ggml_type_supported(uint32_t type) {
    const type_info *t = find_type(type);
    return t && t->block_elems > 0;
}
const char *lrsa_ggml_supported_list(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1";
}
int64_t lrsa_ggml_block_elems(uint32_t type) {
    const type_info *t = find_type(type);
    return t ? t->block_elems : 0;
}
int64_t lrsa_ggml_block_bytes(uint32_t type) {
    const type_info *t = find_type(type);
    return t ? t->block_bytes : 0;
}
int64_t lrsa_ggml_row_bytes(uint32_t type, int64_t n) {
    const type_info *t = find_type(type);
    if (!t || t->block_elems == 0) return 0;
    return n / t->block_elems * t->block_bytes;
}

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static void dequant_q8_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += LRSA_Q8_0_BYTES, y += LRSA_QK) {
        float d = lrsa_f16_to_f32(rd16(b));
        for (int j = 0; j < LRSA_QK; j++) y[j] = d * (float)(int8_t)b[2 + j];
    }
}

/* Q4_0 and Q4_1 share the nibble layout: byte j holds element j (low) and j+16 (high). */
static void dequant_q4_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += LRSA_Q4_0_BYTES, y += LRSA_QK) {
        float d = lrsa_f16_to_f32(rd16(b));
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((qs[j] & 15) - 8);
            y[j + 16] = d * (float)((qs[j] >> 4) - 8);
        }
    }
}

static void dequant_q4_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += LRSA_Q4_1_BYTES, y += LRSA_QK) {
        float d = lrsa_f16_to_f32(rd16(b));
        float m = lrsa_f16_to_f32(rd16(b + 2));
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(qs[j] & 15) + m;
            y[j + 16] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

void lrsa_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    switch (type) {
        case LRSA_GGML_F32:
            memcpy(dst, s, (size_t)n * 4);
            break;
        case LRSA_GGML_F16:
            for (int64_t i = 0; i < n; i++) dst[i] = lrsa_f16_to_f32(rd16(s + 2 * i));
            break;
        case LRSA_GGML_BF16:
            for (int64_t i = 0; i < n; i++) dst[i] = lrsa_bf16_to_f32(rd16(s + 2 * i));
            break;
        case LRSA_GGML_Q8_0:
            dequant_q8_0(s, dst, n / LRSA_QK);
            break;
        case LRSA_GGML_Q4_0:
            dequant_q4_0(s, dst, n / LRSA_QK);
            break;
        case LRSA_GGML_Q4_1:
            dequant_q4_1(s, dst, n / LRSA_QK);
            break;
        default:
            memset(dst, 0, (size_t)n * sizeof(float));
            break; /* callers check support */
    }
}

static int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

void lrsa_quantize_q8_0(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / LRSA_QK; i++, x += LRSA_QK, b += LRSA_Q8_0_BYTES) {
        float amax = 0;
        for (int j = 0; j < LRSA_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d > 0 ? 1.0f / d : 0.0f;
        wr16(b, lrsa_f32_to_f16(d));
        for (int j = 0; j < LRSA_QK; j++)
            b[2 + j] = (uint8_t)(int8_t)clamp_int((int)lrintf(x[j] * id), -127, 127);
    }
}

void lrsa_quantize_q4_0(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / LRSA_QK; i++, x += LRSA_QK, b += LRSA_Q4_0_BYTES) {
        float amax = 0, vmax = 0;
        for (int j = 0; j < LRSA_QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                vmax = x[j];
            }
        /* The extreme value maps to q = 0 (x = -8d), which uses the full asymmetric range. */
        float d = vmax / -8.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        wr16(b, lrsa_f32_to_f16(d));
        for (int j = 0; j < 16; j++) {
            int lo = clamp_int((int)lrintf(x[j] * id) + 8, 0, 15);
            int hi = clamp_int((int)lrintf(x[j + 16] * id) + 8, 0, 15);
            b[2 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void lrsa_quantize_q4_1(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / LRSA_QK; i++, x += LRSA_QK, b += LRSA_Q4_1_BYTES) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < LRSA_QK; j++) {
            mn = fminf(mn, x[j]);
            mx = fmaxf(mx, x[j]);
        }
        float d = (mx - mn) / 15.0f;
        float id = d > 0 ? 1.0f / d : 0.0f;
        wr16(b, lrsa_f32_to_f16(d));
        wr16(b + 2, lrsa_f32_to_f16(mn));
        for (int j = 0; j < 16; j++) {
            int lo = clamp_int((int)lrintf((x[j] - mn) * id), 0, 15);
            int hi = clamp_int((int)lrintf((x[j + 16] - mn) * id), 0, 15);
            b[4 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void lrsa_quantize(uint32_t type, const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    switch (type) {
        case LRSA_GGML_F32:
            memcpy(d, src, (size_t)n * 4);
            break;
        case LRSA_GGML_F16:
            for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, lrsa_f32_to_f16(src[i]));
            break;
        case LRSA_GGML_BF16:
            for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, lrsa_f32_to_bf16(src[i]));
            break;
        case LRSA_GGML_Q8_0:
            lrsa_quantize_q8_0(src, d, n);
            break;
        case LRSA_GGML_Q4_0:
            lrsa_quantize_q4_0(src, d, n);
            break;
        case LRSA_GGML_Q4_1:
            lrsa_quantize_q4_1(src, d, n);
            break;
        default:
            break;
    }
}
