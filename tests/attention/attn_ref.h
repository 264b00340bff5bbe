/* Naive references for the attention tests: the full score matrix of every query row with an
 * explicit softmax in double, under a visibility predicate. Deliberately simple and independent
 * of the tile engine (no blocking, no online softmax, no gather). */
#ifndef LRSA_TESTS_ATTN_REF_H
#define LRSA_TESTS_ATTN_REF_H
#include <stdint.h>

#include "kernels/attention/attention.h"

/* 1 when query position i of sequence b, KV head g may attend to key position t. */
typedef int (*ref_visible_fn)(const void *ctx, int b, int g, int i, int t);
int ref_causal(const void *ctx, int b, int g, int i, int t);

/* out[((b*T + t)*Hq + h)*D + c] (contiguous), lse[(b*Hq + h)*T + t]; inputs use d's strides. */
void ref_attention_forward(double *out, double *lse, const float *q, const float *k, const float *v,
                           const lrsa_attn_dims *d, ref_visible_fn vis, const void *ctx);
/* Gradients of sum(out * dout) (dout with d->o_stride), written contiguous:
 * dq[((b*T+t)*Hq+h)*D+c], dk/dv[((b*T+t)*Hkv+g)*D+c]. */
void ref_attention_backward(double *dq, double *dk, double *dv, const float *dout, const float *q,
                            const float *k, const float *v, const lrsa_attn_dims *d,
                            ref_visible_fn vis, const void *ctx);

/* Copies the H heads of a strided buffer into contiguous float [B*T*H*D]. */
void ref_pack(float *dst, const float *src, int B, int T, int H, int D, int64_t stride);
/* Relative error ||a - b|| / ||b|| between a float and a double array. */
double ref_rel_err(const float *a, const double *b, int64_t n);
#endif

/* Finite-difference check: for n_probe random entries x[i] of x[0..n), compares
 * (loss(x + eps e_i) - loss(x - eps e_i)) / (2 eps) with grad[i]; returns the relative error
 * ||fd - grad|| / ||fd|| over the probed entries. loss() must be deterministic. */
typedef double (*ref_loss_fn)(void *ctx, const float *x);
double ref_fd_check(ref_loss_fn loss, void *ctx, float *x, const float *grad, int64_t n,
                    int n_probe, float eps, uint64_t seed);
