/* ggml tensor types: sizes, names, dequantization to fp32 and the quantizers used to write test
 * files (../shared/docs/formats.md 3.1-3.2). Only F32, F16, BF16, Q8_0, Q4_0 and Q4_1 are
 * implemented; every other ggml type is known by name (for clear errors) but refused. */
#ifndef LRSA_DATA_QUANT_H
#define LRSA_DATA_QUANT_H
#include <stddef.h>
#include <stdint.h>

typedef enum lrsa_ggml_type {
    LRSA_GGML_F32 = 0,
    LRSA_GGML_F16 = 1,
    LRSA_GGML_Q4_0 = 2,
    LRSA_GGML_Q4_1 = 3,
    LRSA_GGML_Q5_0 = 6,
    LRSA_GGML_Q5_1 = 7,
    LRSA_GGML_Q8_0 = 8,
    LRSA_GGML_Q8_1 = 9,
    LRSA_GGML_Q2_K = 10,
    LRSA_GGML_Q3_K = 11,
    LRSA_GGML_Q4_K = 12,
    LRSA_GGML_Q5_K = 13,
    LRSA_GGML_Q6_K = 14,
    LRSA_GGML_Q8_K = 15,
    LRSA_GGML_I8 = 24,
    LRSA_GGML_I16 = 25,
    LRSA_GGML_I32 = 26,
    LRSA_GGML_I64 = 27,
    LRSA_GGML_F64 = 28,
    LRSA_GGML_BF16 = 30,
} lrsa_ggml_type;

/* Bytes of one Q8_0 / Q4_0 / Q4_1 block of 32 values. */
#define LRSA_QK         32
#define LRSA_Q8_0_BYTES 34
#define LRSA_Q4_0_BYTES 18
#define LRSA_Q4_1_BYTES 20

/* Name of a ggml type ("Q4_1"), or NULL when the id is unknown. */
const char *lrsa_ggml_type_name(uint32_t type);
/* Whether lrsa can dequantize this type. */
int lrsa_ggml_type_supported(uint32_t type);
/* The supported types as text, for error messages: "F32, F16, BF16, Q8_0, Q4_0, Q4_1". */
const char *lrsa_ggml_supported_list(void);
/* Elements per block (1 for plain floats) and bytes per block of a supported type; 0 otherwise. */
int64_t lrsa_ggml_block_elems(uint32_t type);
int64_t lrsa_ggml_block_bytes(uint32_t type);
/* Bytes of a row of n elements (n a multiple of the block size) of a supported type. */
int64_t lrsa_ggml_row_bytes(uint32_t type, int64_t n);

/* Dequantizes n elements (a multiple of the type's block size) of a supported type. */
void lrsa_dequantize(uint32_t type, const void *src, float *dst, int64_t n);
/* Quantizers (n a multiple of 32). Q8_0: d = amax/127, q = round(x/d). Q4_0: d = x_amax/-8 where
 * x_amax is the signed value of largest magnitude, q = clamp(round(x/d) + 8, 0, 15). Q4_1:
 * m = min, d = (max-min)/15, q = clamp(round((x-m)/d), 0, 15). */
void lrsa_quantize_q8_0(const float *src, void *dst, int64_t n);
void lrsa_quantize_q4_0(const float *src, void *dst, int64_t n);
void lrsa_quantize_q4_1(const float *src, void *dst, int64_t n);
/* Converts fp32 to a supported type (F32/F16/BF16 or one of the quantizers). */
void lrsa_quantize(uint32_t type, const float *src, void *dst, int64_t n);
#endif
