/* `lrsa convert`: a GGUF file or a Hugging Face directory -> a Hugging Face directory
 * (config.json, model.safetensors, tokenizer files), and `--info` to print what a GGUF holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "convert/gguf_convert.h"
#include "model/quant.h"
#include "model/model.h"
#include "cli/commands.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lrsa convert IN OUT_DIR [--dtype f32|bf16] [--force]\n"
            "       lrsa convert --info IN.gguf\n"
            "\n"
            "IN is a GGUF file (architecture llama or qwen2; tensor types F32, F16, BF16, Q8_0,\n"
            "Q4_0, Q4_1) or a Hugging Face model directory (config.json + safetensors, single or\n"
            "sharded). OUT_DIR receives config.json, model.safetensors, and the tokenizer files\n"
            "(tokenizer.json, tokenizer_config.json, generation_config.json; copied from an HF\n"
            "input). GGUF weights are dequantized and llama q/k rows are put back in Hugging Face\n"
            "order. The output is built in OUT_DIR.tmp.<pid> and renamed into place at the end.\n"
            "\n"
            "  --dtype f32|bf16  weight dtype of model.safetensors (default bf16)\n"
            "  --force           replace OUT_DIR when it already exists\n"
            "  --info            print a GGUF's metadata and tensor types, write nothing\n");
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- --info ---- */

static void print_value(const lrsa_gguf_value *v) {
    switch (v->type) {
        case LRSA_GGUF_STRING:
            if (v->len > 120)
                printf("<string, %llu bytes>", (unsigned long long)v->len);
            else
                printf("\"%s\"", v->s);
            break;
        case LRSA_GGUF_F32:
        case LRSA_GGUF_F64:
            printf("%g", v->f);
            break;
        case LRSA_GGUF_BOOL:
            printf("%s", v->u ? "true" : "false");
            break;
        case LRSA_GGUF_ARRAY:
            printf("[%s x %llu]", lrsa_gguf_vtype_name(v->elem_type), (unsigned long long)v->n);
            break;
        default: {
            int64_t i;
            if (lrsa_gguf_value_int(v, &i) == 0)
                printf("%lld", (long long)i);
            else
                printf("%llu", (unsigned long long)v->u);
        }
    }
}

static int print_info(const char *path) {
    lrsa_err e;
    lrsa_gguf g;
    if (lrsa_gguf_open(&g, path, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    printf("file: %s\nsize: %zu bytes\nversion: %u\nalignment: %llu\ndata_start: %llu\n", path,
           g.size, g.version, (unsigned long long)g.alignment, (unsigned long long)g.data_start);
    printf("metadata (%lld keys):\n", (long long)g.n_kv);
    for (int64_t i = 0; i < g.n_kv; i++) {
        printf("  %s (%s) = ", g.kv[i].key, lrsa_gguf_vtype_name(g.kv[i].v.type));
        print_value(&g.kv[i].v);
        printf("\n");
    }
    int64_t count[64] = {0}, elems[64] = {0}, bytes[64] = {0};
    for (int64_t i = 0; i < g.n_tensors; i++) {
        uint32_t t = g.tensors[i].type < 64 ? g.tensors[i].type : 63;
        count[t]++;
        elems[t] += g.tensors[i].nelem;
        bytes[t] += (int64_t)g.tensors[i].nbytes;
    }
    printf("tensors (%lld):\n", (long long)g.n_tensors);
    for (int t = 0; t < 64; t++)
        if (count[t])
            printf("  %-5s %4lld tensors, %11lld elements, %11lld bytes\n",
                   lrsa_ggml_type_name((uint32_t)t), (long long)count[t], (long long)elems[t],
                   (long long)bytes[t]);
    for (int64_t i = 0; i < g.n_tensors; i++) {
        const lrsa_gguf_tensor *t = &g.tensors[i];
        /* the first layer and the non-layer tensors show the pattern without 270 lines */
        if (strncmp(t->name, "blk.", 4) == 0 && strncmp(t->name, "blk.0.", 6) != 0) continue;
        printf("  %-28s %-5s ne=[", t->name, lrsa_ggml_type_name(t->type));
        for (int d = 0; d < t->n_dims; d++) printf("%s%lld", d ? "," : "", (long long)t->ne[d]);
        printf("]\n");
    }
    lrsa_model_config c;
    if (lrsa_gguf_model_config(&g, &c, &e) == 0)
        printf("config: arch %s, layers %d, hidden %d, ffn %d, heads %d, kv heads %d, head_dim "
               "%d, vocab %d, theta %g, eps %g, ctx %d, tied %d, params %lld\n",
               c.model_type, c.num_hidden_layers, c.hidden_size, c.intermediate_size,
               c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.vocab_size,
               (double)c.rope.theta, (double)c.rms_norm_eps, c.max_position_embeddings,
               c.tie_word_embeddings, lrsa_config_num_params(&c));
    else
        printf("config: not convertible: %s\n", e.msg);
    lrsa_gguf_close(&g);
    return 0;
}

/* ---- HF directory -> HF directory ---- */

static int convert_hf_dir(const char *in, const char *out, lrsa_st_dtype dtype, int force,
                          lrsa_err *e) {
    if (lrsa_file_exists(out) && !force)
        return lrsa_errorf(e,
                           "convert: output directory %s already exists; remove it or pass "
                           "--force to replace it",
                           out);
    lrsa_model m;
    if (lrsa_model_load(&m, in, e)) return lrsa_err_prefix(e, "convert: loading %s: ", in);
    char tmp[4200];
    lrsa_tmp_dir_name(tmp, sizeof tmp, out);
    int rc = lrsa_model_save(&m, tmp, dtype, e);
    lrsa_model_free(&m);
    static const char *extra[] = {"tokenizer.json", "tokenizer_config.json",
                                  "generation_config.json", "special_tokens_map.json"};
    for (size_t i = 0; rc == 0 && i < sizeof extra / sizeof extra[0]; i++) {
        char src[4400], dst[4400];
        lrsa_path_join(src, sizeof src, in, extra[i]);
        lrsa_path_join(dst, sizeof dst, tmp, extra[i]);
        if (lrsa_file_exists(src)) rc = lrsa_copy_file(src, dst, e);
    }
    if (rc != 0) {
        lrsa_remove_tree(tmp);
        return -1;
    }
    return lrsa_dir_commit(tmp, out, e) ? lrsa_err_prefix(e, "convert: ") : 0;
}

int lrsa_cmd_convert(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL}, *info = NULL;
    int npos = 0, force = 0;
    lrsa_st_dtype dtype = LRSA_ST_BF16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dtype")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lrsa: error: convert: --dtype needs a value (f32 or bf16)\n");
                return 2;
            }
            const char *d = argv[++i];
            if (!strcmp(d, "f32") || !strcmp(d, "float32"))
                dtype = LRSA_ST_F32;
            else if (!strcmp(d, "bf16") || !strcmp(d, "bfloat16"))
                dtype = LRSA_ST_BF16;
            else {
                fprintf(stderr,
                        "lrsa: error: convert: --dtype '%s' is not supported; use f32 or "
                        "bf16\n",
                        d);
                return 2;
            }
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--info")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lrsa: error: convert: --info needs a .gguf file\n");
                return 2;
            }
            info = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "lrsa: error: convert: unknown flag '%s'; see `lrsa convert --help`\n",
                    a);
            return 2;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr,
                    "lrsa: error: convert: unexpected argument '%s'; usage: lrsa convert "
                    "IN OUT_DIR [--dtype f32|bf16]\n",
                    a);
            return 2;
        }
    }
    if (info) return print_info(info);
    if (npos != 2) {
        fprintf(stderr, "lrsa: error: convert: needs an input (a .gguf file or an HF directory) "
                        "and an output directory\n");
        usage(stderr);
        return 2;
    }
    lrsa_err e;
    int rc;
    if (lrsa_is_dir(pos[0])) {
        printf("convert: Hugging Face directory %s -> %s (%s)\n", pos[0], pos[1],
               dtype == LRSA_ST_F32 ? "f32" : "bf16");
        rc = convert_hf_dir(pos[0], pos[1], dtype, force, &e);
    } else if (lrsa_file_exists(pos[0])) {
        if (!ends_with(pos[0], ".gguf"))
            fprintf(stderr, "lrsa: warning: %s does not end in .gguf; reading it as GGUF\n",
                    pos[0]);
        printf("convert: GGUF %s -> %s (%s)\n", pos[0], pos[1],
               dtype == LRSA_ST_F32 ? "f32" : "bf16");
        double t0 = lrsa_now();
        rc = lrsa_gguf_convert(pos[0], pos[1], dtype, force, &e);
        if (rc == 0) printf("convert: done in %.1f s\n", lrsa_now() - t0);
    } else {
        fprintf(stderr,
                "lrsa: error: convert: input %s does not exist; pass a .gguf file or a "
                "Hugging Face model directory\n",
                pos[0]);
        return 2;
    }
    if (rc) {
        lrsa_err_print(&e);
        return 1;
    }
    printf("convert: wrote %s\n", pos[1]);
    return 0;
}
