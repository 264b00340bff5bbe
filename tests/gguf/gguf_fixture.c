#include "gguf_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "model/quant.h"

void tiny_unpermute(const float *gg, float *hf, int n_head, int hd, int64_t cols) {
    int64_t w = cols ? cols : 1;
    for (int h = 0; h < n_head; h++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < hd / 2; i++)
                memcpy(hf + ((int64_t)h * hd + c * hd / 2 + i) * w,
                       gg + ((int64_t)h * hd + 2 * i + c) * w, (size_t)w * sizeof(float));
}

static void tiny_permute(const float *hf, float *gg, int n_head, int hd, int64_t cols) {
    int64_t w = cols ? cols : 1;
    for (int h = 0; h < n_head; h++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < hd / 2; i++)
                memcpy(gg + ((int64_t)h * hd + 2 * i + c) * w,
                       hf + ((int64_t)h * hd + c * hd / 2 + i) * w, (size_t)w * sizeof(float));
}

static void add(tiny_model *m, const char *hf, const char *gg, int64_t rows, int64_t cols,
                uint32_t type, int perm) {
    int k = m->n++;
    snprintf(m->hf_name[k], sizeof m->hf_name[k], "%s", hf);
    snprintf(m->gg_name[k], sizeof m->gg_name[k], "%s", gg);
    m->rows[k] = rows;
    m->cols[k] = cols;
    m->type[k] = type;
    m->perm_heads[k] = perm;
}

/* GPT-2 byte -> code point, written as UTF-8 into out. */
static void byte_symbol(int b, char *out) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    int cp = b;
    if (!printable) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

static void add_vocab(lrsa_gguf_writer *w, int V, const char *pre) {
    char **tok = calloc((size_t)V, sizeof *tok);
    int32_t *type = calloc((size_t)V, sizeof *type);
    const char *special[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        tok[n] = strdup(special[i]);
        type[n++] = 3;
    }
    tok[n] = strdup("<tool>");
    type[n++] = 4;
    for (int b = 0; b < 256; b++) {
        char s[4];
        byte_symbol(b, s);
        tok[n] = strdup(s);
        type[n++] = 1;
    }
    const char *merged[] = {"th", "the", "\xC4\xA0t"}; /* "Ġt" */
    for (int i = 0; i < 3; i++) {
        tok[n] = strdup(merged[i]);
        type[n++] = 1;
    }
    while (n < V) { /* padding rows, as converters add for round vocab sizes */
        char s[32];
        snprintf(s, sizeof s, "[PAD%d]", n);
        tok[n] = strdup(s);
        type[n++] = 5;
    }
    const char *merges[] = {"t h", "th e", "\xC4\xA0 t"};
    lrsa_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    lrsa_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    lrsa_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)tok, V);
    lrsa_gguf_writer_set_i32_array(w, "tokenizer.ggml.token_type", type, V);
    lrsa_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", merges, 3);
    lrsa_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    lrsa_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    lrsa_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 2);
    lrsa_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 0);
    lrsa_gguf_writer_set_str(w, "tokenizer.chat_template",
                             "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                             "{{ m['content'] }}<|im_end|>\n{% endfor %}");
    for (int i = 0; i < V; i++) free(tok[i]);
    free(tok);
    free(type);
}

lrsa_gguf_writer *tiny_model_build(tiny_model *m, int qwen2, int tied, uint32_t matrix_type,
                                   uint64_t seed) {
    return tiny_model_build_pre(m, qwen2, tied, matrix_type, seed, "smollm");
}

lrsa_gguf_writer *tiny_model_build_pre(tiny_model *m, int qwen2, int tied, uint32_t matrix_type,
                                       uint64_t seed, const char *pre) {
    memset(m, 0, sizeof *m);
    m->qwen2 = qwen2;
    m->tied = tied;
    m->L = 2, m->C = 64, m->Hq = 4, m->Hkv = 2, m->D = 16, m->I = 96, m->V = 264;
    const char *arch = qwen2 ? "qwen2" : "llama";
    int perm_q = qwen2 ? 0 : m->Hq, perm_k = qwen2 ? 0 : m->Hkv;
    int64_t C = m->C, QD = m->Hq * m->D, KD = m->Hkv * m->D, I = m->I;
    add(m, "model.embed_tokens.weight", "token_embd.weight", m->V, C, LRSA_GGML_Q8_0, 0);
    add(m, "model.norm.weight", "output_norm.weight", C, 0, LRSA_GGML_F32, 0);
    if (!tied) add(m, "lm_head.weight", "output.weight", m->V, C, LRSA_GGML_Q8_0, 0);
    for (int l = 0; l < m->L; l++) {
        char hf[128], gg[96];
#define T(H, G, R, K, TY, P)                                                                       \
    do {                                                                                           \
        snprintf(hf, sizeof hf, "model.layers.%d.%s", l, H);                                       \
        snprintf(gg, sizeof gg, "blk.%d.%s", l, G);                                                \
        add(m, hf, gg, R, K, TY, P);                                                               \
    } while (0)
        T("input_layernorm.weight", "attn_norm.weight", C, 0, LRSA_GGML_F32, 0);
        T("self_attn.q_proj.weight", "attn_q.weight", QD, C, matrix_type, perm_q);
        T("self_attn.k_proj.weight", "attn_k.weight", KD, C, matrix_type, perm_k);
        T("self_attn.v_proj.weight", "attn_v.weight", KD, C, matrix_type, 0);
        T("self_attn.o_proj.weight", "attn_output.weight", C, QD, matrix_type, 0);
        if (qwen2) {
            T("self_attn.q_proj.bias", "attn_q.bias", QD, 0, LRSA_GGML_F32, 0);
            T("self_attn.k_proj.bias", "attn_k.bias", KD, 0, LRSA_GGML_F32, 0);
            T("self_attn.v_proj.bias", "attn_v.bias", KD, 0, LRSA_GGML_F32, 0);
        }
        T("post_attention_layernorm.weight", "ffn_norm.weight", C, 0, LRSA_GGML_F32, 0);
        T("mlp.gate_proj.weight", "ffn_gate.weight", I, C, matrix_type, 0);
        T("mlp.up_proj.weight", "ffn_up.weight", I, C, matrix_type, 0);
        T("mlp.down_proj.weight", "ffn_down.weight", C, I, matrix_type, 0);
#undef T
    }
    lrsa_gguf_writer *w = lrsa_gguf_writer_new(0);
    lrsa_gguf_writer_set_str(w, "general.architecture", arch);
    lrsa_gguf_writer_set_str(w, "general.name", "tiny test model");
    lrsa_gguf_writer_set_u32(w, "general.quantization_version", 2);
    char key[128];
#define K(S) (snprintf(key, sizeof key, "%s.%s", arch, S), key)
    /* deliberately mixed integer types: readers must accept any of them */
    lrsa_gguf_writer_set_u64(w, K("block_count"), (uint64_t)m->L);
    lrsa_gguf_writer_set_u32(w, K("context_length"), 512);
    lrsa_gguf_writer_set_u32(w, K("embedding_length"), (uint32_t)m->C);
    lrsa_gguf_writer_set_i32(w, K("feed_forward_length"), m->I);
    lrsa_gguf_writer_set_u32(w, K("attention.head_count"), (uint32_t)m->Hq);
    lrsa_gguf_writer_set_u32(w, K("attention.head_count_kv"), (uint32_t)m->Hkv);
    lrsa_gguf_writer_set_f32(w, K("attention.layer_norm_rms_epsilon"), qwen2 ? 1e-6f : 1e-5f);
    lrsa_gguf_writer_set_f32(w, K("rope.freq_base"), qwen2 ? 1000000.0f : 100000.0f);
    lrsa_gguf_writer_set_u32(w, K("rope.dimension_count"), (uint32_t)m->D);
#undef K
    add_vocab(w, m->V, pre);
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    for (int k = 0; k < m->n; k++) {
        int64_t n = m->rows[k] * (m->cols[k] ? m->cols[k] : 1);
        m->hf[k] = malloc((size_t)n * sizeof(float));
        int norm = strstr(m->hf_name[k], "norm") != NULL;
        for (int64_t i = 0; i < n; i++)
            m->hf[k][i] = norm ? 1.0f + 0.1f * lrsa_rng_normal(&r) : 0.5f * lrsa_rng_normal(&r);
        float *gg = m->hf[k];
        if (m->perm_heads[k]) {
            gg = malloc((size_t)n * sizeof(float));
            tiny_permute(m->hf[k], gg, m->perm_heads[k], m->D, m->cols[k]);
        }
        int64_t ne[2] = {m->cols[k] ? m->cols[k] : m->rows[k], m->rows[k]};
        lrsa_gguf_writer_add_tensor(w, m->gg_name[k], m->type[k], m->cols[k] ? 2 : 1, ne, gg);
        if (gg != m->hf[k]) free(gg);
    }
    return w;
}

void tiny_model_free(tiny_model *m) {
    for (int k = 0; k < m->n; k++) free(m->hf[k]);
    memset(m, 0, sizeof *m);
}

int tiny_model_find(const tiny_model *m, const char *hf_name) {
    for (int k = 0; k < m->n; k++)
        if (strcmp(m->hf_name[k], hf_name) == 0) return k;
    return -1;
}
