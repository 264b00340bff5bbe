#include "block_forward.h"

#include <math.h>
#include <stdlib.h>

#include "kernels/attention/attention.h"

void tm_block_forward_logits(const lrsa_model *m, const int32_t *ids, int T, float *logits) {
    const lrsa_model_config *c = &m->cfg;
    const int C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
              Hkv = c->num_key_value_heads, QKV = (Hq + 2 * Hkv) * D;
    float *xs = malloc((size_t)T * C * sizeof(float));
    float *qkv = malloc((size_t)T * QKV * sizeof(float));
    float *att = malloc((size_t)T * Hq * D * sizeof(float));
    float *lse = malloc((size_t)T * Hq * sizeof(float));
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    for (int t = 0; t < T; t++) pos[t] = t;
    lrsa_attn_dims d = {.B = 1,
                        .T = T,
                        .Hq = Hq,
                        .Hkv = Hkv,
                        .D = D,
                        .q_stride = QKV,
                        .kv_stride = QKV,
                        .o_stride = Hq * D,
                        .scale = 1.0f / sqrtf((float)D)};
    lrsa_model_embed(m, ids, T, xs);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        lrsa_model_layer_qkv(m, l, xs, pos, T, qkv);
        lrsa_attention_forward_cpu(att, lse, qkv, qkv + Hq * D, qkv + (Hq + Hkv) * D, &d);
        lrsa_model_layer_out(m, l, xs, att, T);
    }
    lrsa_model_final_logits(m, xs, T, logits);
    free(xs);
    free(qkv);
    free(att);
    free(lse);
    free(pos);
}
