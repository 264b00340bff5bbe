#include "autograd/tensor.h"

#include <math.h>
#include <string.h>

size_t lrsa_dtype_size(lrsa_dtype t) {
    switch (t) {
        case LRSA_F32:
            return 4;
        case LRSA_BF16:
            return 2;
        case LRSA_F16:
            return 2;
        case LRSA_I32:
            return 4;
        case LRSA_U8:
            return 1;
        case LRSA_F64:
            return 8;
    }
    return 0;
}

const char *lrsa_dtype_name(lrsa_dtype t) {
    switch (t) {
        case LRSA_F32:
            return "F32";
        case LRSA_BF16:
            return "BF16";
        case LRSA_F16:
            return "F16";
        case LRSA_I32:
            return "I32";
        case LRSA_U8:
            return "U8";
        case LRSA_F64:
            return "F64";
    }
    return "?";
}

int64_t lrsa_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

float lrsa_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t lrsa_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float lrsa_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    float f;
    if (exp == 0) {
        f = ldexpf((float)mant, -24); /* zero or subnormal */
        uint32_t u;
        memcpy(&u, &f, 4);
        u |= sign;
        memcpy(&f, &u, 4);
        return f;
    }
    uint32_t u;
    if (exp == 31)
        u = sign | 0x7f800000u | (mant << 13);
    else
        u = sign | ((exp + 112) << 23) | (mant << 13);
    memcpy(&f, &u, 4);
    return f;
}

uint16_t lrsa_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;  /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00; /* overflow (rounds to inf) */
    if (a < 0x38800000u) {                      /* subnormal or zero in f16 */
        float af;
        memcpy(&af, &a, 4);
        return sign | (uint16_t)lrintf(af * 16777216.0f); /* 2^24, round-to-nearest-even */
    }
    uint32_t mant = a & 0x7fffff, exp = (a >> 23) - 112;
    uint32_t r = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return sign | (uint16_t)r;
}
