#ifndef LRSA_KERNELS_EMBEDDING_H
#define LRSA_KERNELS_EMBEDDING_H
#include <stdint.h>
/* out[i, :] = table[ids[i], :] for i < N. Ids must be in [0, vocab) (checked by the caller). */
void lrsa_embedding_forward_cpu(float *out, const int32_t *ids, const float *table, int64_t N,
                                int C);
/* dtable[ids[i], :] += dout[i, :]. Deterministic: rows are added in order of i. */
void lrsa_embedding_backward_cpu(float *dtable, const float *dout, const int32_t *ids, int64_t N,
                                 int C);
#endif
