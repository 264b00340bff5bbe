/* LagKV selection on the GPU against lrsa_lagkv_select_cpu: on the same fp32 inputs the kept
 * positions must be identical (exact), the scores within 1e-5 norm-relative, +INFINITY exactly
 * where the CPU puts it. Inputs include duplicated rows (exact score ties, which must go to the
 * lower position), a constant channel (the 1e-6 range guard) and a fused-QKV row stride. The
 * bf16 path must equal the CPU on the bf16-rounded inputs; its overlap with the unrounded fp32
 * selection is printed. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/device/device.h"
#include "kernels/lagkv/lagkv.h"

#ifdef LRSA_HAVE_CUDA
#include "gpu_mem.h"
#include "test_util.h"

typedef struct {
    int B, T, Hkv, D, extra_stride;
    lrsa_lagkv_params p;
} lag_case;

/* Returns 0 when GPU and CPU agree; prints the first difference otherwise. */
static int run_case(const lag_case *c, uint64_t seed) {
    int B = c->B, T = c->T, Hkv = c->Hkv, D = c->D;
    int64_t st = (int64_t)Hkv * D + c->extra_stride, n = (int64_t)B * T * st;
    int ns = lrsa_lagkv_num_scored(T, &c->p), kk = lrsa_lagkv_k(&c->p);
    int64_t nsel = (int64_t)B * Hkv * ns * kk, nsc = (int64_t)B * Hkv * T;
    float *k = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    tu_fill_normal(k, n, 1.0f, &rng);
    tu_fill_normal(v, n, 0.7f, &rng);
    /* ties: every 7th row repeats its predecessor (same head channels, so same scores) */
    for (int b = 0; b < B; b++)
        for (int t = 1; t < T; t += 7) {
            memcpy(k + ((int64_t)b * T + t) * st, k + ((int64_t)b * T + t - 1) * st,
                   sizeof(float) * st);
            memcpy(v + ((int64_t)b * T + t) * st, v + ((int64_t)b * T + t - 1) * st,
                   sizeof(float) * st);
        }
    /* a constant channel: channel 3 of KV head 0 (range 0 -> the 1e-6 guard) */
    for (int64_t r = 0; r < (int64_t)B * T; r++) k[r * st + 3] = 0.25f;

    int32_t *sel_cpu = malloc(sizeof(int32_t) * (nsel ? nsel : 1));
    int32_t *sel_gpu = malloc(sizeof(int32_t) * (nsel ? nsel : 1));
    float *sc_cpu = malloc(sizeof(float) * nsc), *sc_gpu = malloc(sizeof(float) * nsc);
    lrsa_lagkv_select_cpu(sel_cpu, sc_cpu, k, v, B, T, Hkv, D, st, &c->p);

    float *dk = gm_alloc(sizeof(float) * n), *dv = gm_alloc(sizeof(float) * n);
    int32_t *dsel = gm_alloc(sizeof(int32_t) * (nsel ? nsel : 1));
    float *dsc = gm_alloc(sizeof(float) * nsc);
    gm_upload(dk, k, sizeof(float) * n);
    gm_upload(dv, v, sizeof(float) * n);
    gm_poison(dsel, sizeof(int32_t) * (nsel ? nsel : 1));
    gm_poison(dsc, sizeof(float) * nsc);
    lrsa_lagkv_select_cuda(dsel, dsc, dk, dv, B, T, Hkv, D, st, &c->p, NULL);
    gm_download(sel_gpu, dsel, sizeof(int32_t) * nsel);
    gm_download(sc_gpu, dsc, sizeof(float) * nsc);

    int bad = 0;
    for (int64_t i = 0; i < nsel && !bad; i++)
        if (sel_gpu[i] != sel_cpu[i]) {
            printf("fp32 selection differs at %lld: gpu %d cpu %d\n", (long long)i, sel_gpu[i],
                   sel_cpu[i]);
            bad = 1;
        }
    /* scores: +inf positions equal, finite ones within 1e-5 */
    float *fa = malloc(sizeof(float) * nsc), *fb = malloc(sizeof(float) * nsc);
    int64_t nf = 0;
    for (int64_t i = 0; i < nsc && !bad; i++) {
        if (isinf(sc_cpu[i]) || isinf(sc_gpu[i])) {
            if (sc_cpu[i] != sc_gpu[i]) {
                printf("score %lld: gpu %g cpu %g\n", (long long)i, sc_gpu[i], sc_cpu[i]);
                bad = 1;
            }
            continue;
        }
        fa[nf] = sc_gpu[i];
        fb[nf++] = sc_cpu[i];
    }
    double err = nf ? tu_rel_err(fa, fb, nf) : 0.0;
    if (!(err <= 1e-5)) bad = 1;

    /* bf16 inputs: exact against the CPU on the rounded values */
    uint16_t *hk = malloc(sizeof(uint16_t) * n), *hv = malloc(sizeof(uint16_t) * n);
    gm_round_bf16(k, hk, n);
    gm_round_bf16(v, hv, n);
    int32_t *sel_cpu16 = malloc(sizeof(int32_t) * (nsel ? nsel : 1));
    lrsa_lagkv_select_cpu(sel_cpu16, NULL, k, v, B, T, Hkv, D, st, &c->p);
    uint16_t *dk16 = gm_alloc(sizeof(uint16_t) * n), *dv16 = gm_alloc(sizeof(uint16_t) * n);
    gm_upload(dk16, hk, sizeof(uint16_t) * n);
    gm_upload(dv16, hv, sizeof(uint16_t) * n);
    gm_poison(dsel, sizeof(int32_t) * (nsel ? nsel : 1));
    lrsa_lagkv_select_cuda_bf16(dsel, NULL, dk16, dv16, B, T, Hkv, D, st, &c->p, NULL);
    gm_download(sel_gpu, dsel, sizeof(int32_t) * nsel);
    int64_t same16 = 0, overlap = 0;
    for (int64_t i = 0; i < nsel; i++) same16 += sel_gpu[i] == sel_cpu16[i];
    /* overlap of the bf16 selection with the fp32 one, per partition (both ascending) */
    for (int64_t pidx = 0; pidx < nsel / (kk ? kk : 1); pidx++) {
        const int32_t *a = sel_gpu + pidx * kk, *b2 = sel_cpu + pidx * kk;
        int i = 0, j = 0;
        while (i < kk && j < kk) {
            if (a[i] == b2[j])
                overlap++, i++, j++;
            else if (a[i] < b2[j])
                i++;
            else
                j++;
        }
    }
    if (same16 != nsel) bad = 1;
    printf("B=%d T=%d Hkv=%d D=%d S=%d L=%d r=%g w=%g: %lld kept, fp32 %s, score err %.2e, "
           "bf16 exact %lld/%lld, bf16-vs-fp32 overlap %.4f\n",
           B, T, Hkv, D, c->p.sink, c->p.lag, (double)c->p.keep, (double)c->p.value_weight,
           (long long)nsel, bad ? "DIFFERS" : "identical", err, (long long)same16, (long long)nsel,
           nsel ? (double)overlap / (double)nsel : 1.0);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dsel);
    cudaFree(dsc);
    cudaFree(dk16);
    cudaFree(dv16);
    free(k);
    free(v);
    free(sel_cpu);
    free(sel_gpu);
    free(sel_cpu16);
    free(sc_cpu);
    free(sc_gpu);
    free(fa);
    free(fb);
    free(hk);
    free(hv);
    return bad;
}

int main(void) {
    if (lrsa_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    const lag_case cases[] = {
        {2, 1000, 3, 64, 0, {.sink = 16, .lag = 128, .keep = 0.25f, .value_weight = 1.0f}},
        {1, 700, 2, 128, 8, {.sink = 4, .lag = 64, .keep = 0.5f, .value_weight = 0.5f}},
        {1, 5000, 4, 128, 0, {.sink = 16, .lag = 1024, .keep = 0.125f, .value_weight = 1.0f}},
        {3, 300, 1, 64, 0, {.sink = 0, .lag = 37, .keep = 1.0f, .value_weight = 2.0f}},
        {1, 100, 2, 64, 0, {.sink = 16, .lag = 128, .keep = 0.5f, .value_weight = 1.0f}},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) bad |= run_case(&cases[i], 11 + i);
    return bad;
}
#else
int main(void) {
    printf("built without CUDA: skipped\n");
    return 77;
}
#endif
