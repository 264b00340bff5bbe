/* rope against Hugging Face: inverse frequencies and rotated rows produced by transformers'
 * LlamaRotaryEmbedding + apply_rotary_pos_emb (fp32, CPU), stored as float bit patterns in
 * tests/fixtures/kernels/rope_hf.json by tools/make_rope_fixtures.py. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rope/rope.h"
#include "kt_util.h"

static cJSON *load_fixture(void) {
    const char *path = LRSA_TEST_DATA "/kernels/rope_hf.json";
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (regenerate with tools/make_rope_fixtures.py)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = lrsa_malloc((size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = 0;
    fclose(f);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    assert_non_null(doc);
    return doc;
}

/* A JSON array of uint32 bit patterns -> floats (exactly the values Hugging Face produced). */
static float *bits_array(const cJSON *obj, const char *key, int expect_n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsArray(a));
    assert_int_equal(cJSON_GetArraySize(a), expect_n);
    float *out = lrsa_malloc(sizeof(float) * (size_t)expect_n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        uint32_t u = (uint32_t)e->valuedouble;
        memcpy(&out[i++], &u, sizeof u);
    }
    return out;
}

static double num(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* Distance in units in the last place between two finite floats of the same sign. */
static int64_t ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return llabs((long long)ia - (long long)ib);
}

static void test_rope_matches_transformers(void **state) {
    (void)state;
    cJSON *doc = load_fixture();
    int D = (int)num(doc, "head_dim"), H = (int)num(doc, "heads");
    const cJSON *jpos = cJSON_GetObjectItemCaseSensitive(doc, "positions");
    int T = cJSON_GetArraySize(jpos);
    int32_t *pos = lrsa_malloc(sizeof(int32_t) * (size_t)T);
    for (int t = 0; t < T; t++) pos[t] = (int32_t)cJSON_GetArrayItem(jpos, t)->valuedouble;
    float *x = bits_array(doc, "x", T * H * D);
    float *inv = kt_zeros(D / 2), *buf = kt_zeros(T * H * D);
    const cJSON *c;
    int ncases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const char *type = cJSON_GetObjectItemCaseSensitive(c, "type")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        lrsa_rope_config rc = {.theta = (float)num(c, "theta"), .type = LRSA_ROPE_DEFAULT};
        if (strcmp(type, "linear") == 0) {
            rc.type = LRSA_ROPE_LINEAR;
            rc.factor = (float)num(c, "factor");
        } else if (strcmp(type, "llama3") == 0) {
            rc.type = LRSA_ROPE_LLAMA3;
            rc.factor = (float)num(c, "factor");
            rc.low_freq_factor = (float)num(c, "low_freq_factor");
            rc.high_freq_factor = (float)num(c, "high_freq_factor");
            rc.original_max_position_embeddings = (int)num(c, "original_max_position_embeddings");
        }
        float *want_inv = bits_array(c, "inv_freq", D / 2);
        float *want_rot = bits_array(c, "rotated", T * H * D);
        lrsa_rope_inv_freq(inv, D, &rc);
        /* the same fp32 operations as transformers; powf vs torch's pow may differ by 1 ulp */
        for (int j = 0; j < D / 2; j++)
            if (ulps(inv[j], want_inv[j]) > 1)
                fail_msg("%s: inv_freq[%d] = %.9g, transformers %.9g (%lld ulps)", name, j, inv[j],
                         want_inv[j], (long long)ulps(inv[j], want_inv[j]));
        /* rotate with transformers' own frequencies, so this compares the rotation alone: the
         * angle product is the same fp32 operation; cos/sin may differ by an ulp (libm vs
         * torch), so each output is within a few ulps of |x| */
        memcpy(buf, x, sizeof(float) * (size_t)(T * H * D));
        lrsa_rope_forward_cpu(buf, pos, want_inv, T, H, D, (int64_t)H * D);
        for (int i = 0; i < T * H * D; i++) {
            int t = i / (H * D), j = i % D < D / 2 ? i % D : i % D - D / 2;
            int64_t base = (int64_t)(i - i % D);
            float scale = fabsf(x[base + j]) + fabsf(x[base + j + D / 2]);
            if (!(fabsf(buf[i] - want_rot[i]) <= 4e-7f * scale))
                fail_msg("%s: row %d (pos %d) elem %d: %.9g, transformers %.9g", name, t, pos[t],
                         i % (H * D), buf[i], want_rot[i]);
        }
        free(want_inv), free(want_rot);
        ncases++;
    }
    assert_int_equal(ncases, 4);
    free(pos), free(x), free(inv), free(buf);
    cJSON_Delete(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rope_matches_transformers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
