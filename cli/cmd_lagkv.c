/* `lrsa lagkv`: one-shot LagKV selection of a stored K/V cache (a debugging and comparison
 * tool: its output is checked against other implementations by selection overlap). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_flags.h"
#include "eval/cache/kv_cache.h"
#include "model/safetensors.h"
#include "cli/commands.h"

static const char *LAGKV_HELP =
    "usage: lrsa lagkv --kv IN.safetensors --sink S --lag L --keep r [--value-weight w]\n"
    "                  --out OUT.safetensors\n"
    "\n"
    "Reads F32 tensors `k` and `v` of shape [layers, kv_heads, T, D] (post-RoPE keys and\n"
    "values) and writes the positions kept by ONE-SHOT LagKV compression of that T-token cache:\n"
    "  selected  I32 [layers, kv_heads, n_kept]  ascending: the sink, the top-k of every scored\n"
    "            partition, the last full partition and the leftover (all T when T < S + 2L)\n"
    "  scores    F32 [layers, kv_heads, T]       p_K + w*p_V; +inf for the sink and unscored\n"
    "\n"
    "  --kv FILE            input safetensors\n"
    "  --sink S             sink size (>= 0)\n"
    "  --lag L              partition size (> 0)\n"
    "  --keep r             fraction of each partition kept, in (0, 1]\n"
    "  --value-weight w     weight of the value score (default 1)\n"
    "  --out FILE           output safetensors (written atomically)\n";

/* Reads tensor `name` as F32 [layers, kv_heads, T, D]; shape[4] receives its shape. */
static float *read_kv(const lrsa_safetensors *st, const char *name, int64_t shape[4], lrsa_err *e) {
    const lrsa_st_tensor *t = lrsa_st_find(st, name);
    if (!t) {
        lrsa_errorf(e,
                    "%s: no tensor named `%s`; the file must hold F32 tensors `k` and `v` of "
                    "shape [layers, kv_heads, T, D]",
                    st->path, name);
        return NULL;
    }
    if (t->dtype != LRSA_ST_F32) {
        lrsa_errorf(e, "%s: tensor `%s` has dtype %s; store it as F32", st->path, name,
                    lrsa_st_dtype_name(t->dtype));
        return NULL;
    }
    if (t->ndim != 4) {
        lrsa_errorf(e, "%s: tensor `%s` has %d dimensions; expected 4: [layers, kv_heads, T, D]",
                    st->path, name, t->ndim);
        return NULL;
    }
    for (int i = 0; i < 4; i++) shape[i] = t->shape[i];
    if (shape[0] < 1 || shape[1] < 1 || shape[2] < 1 || shape[3] < 2) {
        lrsa_errorf(e,
                    "%s: tensor `%s` has shape [%lld, %lld, %lld, %lld]; every dimension must "
                    "be >= 1 and D >= 2 (the score is a standard deviation over D)",
                    st->path, name, (long long)shape[0], (long long)shape[1], (long long)shape[2],
                    (long long)shape[3]);
        return NULL;
    }
    if (shape[2] > (1LL << 30)) {
        lrsa_errorf(e, "%s: tensor `%s` has T = %lld tokens; at most 2^30 are supported", st->path,
                    name, (long long)shape[2]);
        return NULL;
    }
    float *x = lrsa_malloc((size_t)(shape[0] * shape[1] * shape[2] * shape[3]) * sizeof(float));
    if (lrsa_st_read_f32(st, t, x, e) != 0) {
        free(x);
        return NULL;
    }
    return x;
}

/* The ascending positions one-shot compression keeps in one (layer, head). */
static int64_t kept_positions(const int32_t *sel, int64_t T, const lrsa_lagkv_params *p,
                              int32_t *out) {
    const int n = lrsa_lagkv_num_partitions((int)T, p), ns = lrsa_lagkv_num_scored((int)T, p);
    const int kk = lrsa_lagkv_k(p);
    int64_t w = 0;
    if (ns == 0) {
        for (int64_t t = 0; t < T; t++) out[w++] = (int32_t)t;
        return w;
    }
    for (int t = 0; t < p->sink; t++) out[w++] = t;
    for (int64_t i = 0; i < (int64_t)ns * kk; i++) out[w++] = sel[i];
    for (int64_t t = p->sink + (int64_t)(n - 1) * p->lag; t < T; t++) out[w++] = (int32_t)t;
    return w;
}

static int run(int argc, char **argv, lrsa_err *e) {
    const char *kv_path = NULL, *out_path = NULL, *v = NULL;
    lrsa_lagkv_params p = {.sink = -1, .lag = 0, .keep = NAN, .value_weight = 1.0f};
    int have_sink = 0, have_lag = 0, have_keep = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        long long n = 0;
        if (strcmp(f, "--kv") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &kv_path, e)) return -1;
        } else if (strcmp(f, "--out") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &out_path, e)) return -1;
        } else if (strcmp(f, "--sink") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_int(f, v, 0, 1 << 30, &n, e))
                return -1;
            p.sink = (int)n;
            have_sink = 1;
        } else if (strcmp(f, "--lag") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_int(f, v, 1, 1 << 30, &n, e))
                return -1;
            p.lag = (int)n;
            have_lag = 1;
        } else if (strcmp(f, "--keep") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_float(f, v, &p.keep, e))
                return -1;
            have_keep = 1;
        } else if (strcmp(f, "--value-weight") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_float(f, v, &p.value_weight, e))
                return -1;
        } else {
            return lrsa_errorf(e, "lagkv: unknown argument '%s' (see lrsa lagkv --help)", f);
        }
    }
    if (!kv_path) return lrsa_errorf(e, "lagkv: --kv IN.safetensors is required");
    if (!out_path) return lrsa_errorf(e, "lagkv: --out OUT.safetensors is required");
    if (!have_sink || !have_lag || !have_keep)
        return lrsa_errorf(e, "lagkv: --sink, --lag and --keep are all required (missing %s)",
                           !have_sink  ? "--sink"
                           : !have_lag ? "--lag"
                                       : "--keep");
    if (lrsa_lagkv_validate(&p, e) != 0) return lrsa_err_prefix(e, "lagkv: ");

    lrsa_safetensors st;
    if (lrsa_st_open(&st, kv_path, e) != 0) return -1;
    int64_t ks[4], vs[4];
    float *k = read_kv(&st, "k", ks, e);
    float *vv = k ? read_kv(&st, "v", vs, e) : NULL;
    lrsa_st_close(&st);
    if (!k || !vv) {
        free(k);
        return -1;
    }
    if (memcmp(ks, vs, sizeof(ks)) != 0) {
        free(k);
        free(vv);
        return lrsa_errorf(e,
                           "%s: `k` has shape [%lld, %lld, %lld, %lld] but `v` has [%lld, "
                           "%lld, %lld, %lld]; they must match",
                           kv_path, (long long)ks[0], (long long)ks[1], (long long)ks[2],
                           (long long)ks[3], (long long)vs[0], (long long)vs[1], (long long)vs[2],
                           (long long)vs[3]);
    }
    const int64_t LH = ks[0] * ks[1], T = ks[2], D = ks[3];
    const int64_t n_kept = lrsa_lagkv_oneshot_len(T, &p);
    const int64_t n_sel = (int64_t)lrsa_lagkv_num_scored((int)T, &p) * lrsa_lagkv_k(&p);
    int32_t *sel = lrsa_malloc((size_t)(n_sel > 0 ? n_sel : 1) * sizeof(int32_t));
    int32_t *kept = lrsa_malloc((size_t)(LH * n_kept) * sizeof(int32_t));
    float *scores = lrsa_malloc((size_t)(LH * T) * sizeof(float));
    for (int64_t h = 0; h < LH; h++) {
        lrsa_lagkv_select_cpu(sel, scores + h * T, k + h * T * D, vv + h * T * D, 1, (int)T, 1,
                              (int)D, D, &p);
        int64_t w = kept_positions(sel, T, &p, kept + h * n_kept);
        LRSA_CHECK(w == n_kept, "(kept count disagrees with the size formula)");
    }
    free(sel);
    free(k);
    free(vv);
    lrsa_st_writer *wr = lrsa_st_writer_new();
    int64_t sel_shape[3] = {ks[0], ks[1], n_kept}, sc_shape[3] = {ks[0], ks[1], T};
    lrsa_st_writer_add_raw(wr, "selected", LRSA_ST_I32, 3, sel_shape, kept);
    lrsa_st_writer_add_f32(wr, "scores", LRSA_ST_F32, 3, sc_shape, scores);
    char buf[64];
    snprintf(buf, sizeof(buf), "%d", p.sink);
    lrsa_st_writer_add_meta(wr, "sink", buf);
    snprintf(buf, sizeof(buf), "%d", p.lag);
    lrsa_st_writer_add_meta(wr, "lag", buf);
    snprintf(buf, sizeof(buf), "%.9g", p.keep);
    lrsa_st_writer_add_meta(wr, "keep", buf);
    snprintf(buf, sizeof(buf), "%.9g", p.value_weight);
    lrsa_st_writer_add_meta(wr, "value_weight", buf);
    int rc = lrsa_st_writer_write(wr, out_path, e);
    lrsa_st_writer_free(wr);
    free(kept);
    free(scores);
    if (rc != 0) return -1;
    printf("lagkv: %lld layers x %lld KV heads, T = %lld -> %lld kept per head (S=%d L=%d k=%d)\n",
           (long long)ks[0], (long long)ks[1], (long long)T, (long long)n_kept, p.sink, p.lag,
           lrsa_lagkv_k(&p));
    return 0;
}

int lrsa_cmd_lagkv(int argc, char **argv) {
    return lrsa_cmd_main(argc, argv, LAGKV_HELP, run);
}
