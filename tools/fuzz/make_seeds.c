/* Writes seed corpora for the fuzz targets into DIR/{gguf,safetensors,tokenizer,jsonl}: small
 * synthetic GGUF models (llama Q4_1 and Q8_0, qwen2 F32), a metadata file with every value type,
 * the safetensors and tokenizer.json a conversion produces, a two-tensor safetensors file, and
 * QA JSONL records of both forms (one line each). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "convert/gguf_convert.h"
#include "model/quant.h"
#include "gguf_fixture.h"

static void die(const lrsa_err *e) {
    lrsa_err_print(e);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    char sub[4][1024], path[2048];
    const char *names[4] = {"gguf", "safetensors", "tokenizer", "jsonl"};
    lrsa_err e;
    for (int i = 0; i < 4; i++) {
        snprintf(sub[i], sizeof sub[i], "%s/%s", argv[1], names[i]);
        if (lrsa_mkdirs(sub[i], &e)) die(&e);
    }
    const struct {
        int qwen2, tied;
        uint32_t type;
    } variants[] = {{0, 1, LRSA_GGML_Q4_1}, {0, 0, LRSA_GGML_Q8_0}, {1, 0, LRSA_GGML_F32}};
    for (int v = 0; v < 3; v++) {
        tiny_model m;
        lrsa_gguf_writer *w =
            tiny_model_build(&m, variants[v].qwen2, variants[v].tied, variants[v].type, 1 + v);
        snprintf(path, sizeof path, "%s/tiny%d.gguf", sub[0], v);
        if (lrsa_gguf_writer_write(w, path, &e)) die(&e);
        lrsa_gguf_writer_free(w);
        tiny_model_free(&m);
        if (v == 0) {
            char out[2048], from[2300], to[2300];
            snprintf(out, sizeof out, "%s/hf.tmp", argv[1]);
            if (lrsa_gguf_convert(path, out, LRSA_ST_BF16, 1, &e)) die(&e);
            const char *files[2][2] = {{"model.safetensors", "safetensors"},
                                       {"tokenizer.json", "tokenizer"}};
            for (int f = 0; f < 2; f++) {
                snprintf(from, sizeof from, "%s/%s", out, files[f][0]);
                snprintf(to, sizeof to, "%s/%s/converted", argv[1], files[f][1]);
                size_t n;
                char *buf = lrsa_read_file(from, &n, &e);
                if (!buf || lrsa_write_file_atomic(to, buf, n, &e)) die(&e);
                free(buf);
            }
        }
    }
    /* a small GGUF with every metadata value type */
    lrsa_gguf_writer *w = lrsa_gguf_writer_new(64);
    lrsa_gguf_writer_set_str(w, "general.architecture", "llama");
    lrsa_gguf_writer_set_u64(w, "llama.block_count", 1);
    lrsa_gguf_writer_set_i32(w, "llama.embedding_length", 32);
    lrsa_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    lrsa_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    const char *s[] = {"a", "b c"};
    lrsa_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", s, 2);
    int32_t ii[3] = {1, 2, 3};
    lrsa_gguf_writer_set_i32_array(w, "tokenizer.ggml.token_type", ii, 3);
    float f[64];
    for (int i = 0; i < 64; i++) f[i] = (float)i / 7;
    int64_t ne[2] = {32, 2};
    lrsa_gguf_writer_add_tensor(w, "q4_0", LRSA_GGML_Q4_0, 2, ne, f);
    lrsa_gguf_writer_add_tensor(w, "f16", LRSA_GGML_F16, 2, ne, f);
    lrsa_gguf_writer_add_tensor(w, "bf16", LRSA_GGML_BF16, 2, ne, f);
    snprintf(path, sizeof path, "%s/types.gguf", sub[0]);
    if (lrsa_gguf_writer_write(w, path, &e)) die(&e);
    lrsa_gguf_writer_free(w);
    /* a two-tensor safetensors file */
    lrsa_st_writer *sw = lrsa_st_writer_new();
    int64_t shape[2] = {2, 3};
    lrsa_st_writer_add_f32(sw, "a", LRSA_ST_F32, 2, shape, f);
    lrsa_st_writer_add_f32(sw, "b", LRSA_ST_BF16, 1, shape, f);
    lrsa_st_writer_add_meta(sw, "format", "pt");
    snprintf(path, sizeof path, "%s/small.safetensors", sub[1]);
    if (lrsa_st_writer_write(sw, path, &e)) die(&e);
    lrsa_st_writer_free(sw);
    /* QA records: both forms, a system turn, escapes and non-ASCII text */
    const char *records[] = {
        "{\"context\": \"The key is 4821.\", \"question\": \"What is the key?\", "
        "\"answer\": \"4821\"}",
        "{\"context\": \"\", \"question\": \"Caf\\u00e9?\", \"answer\": \"Oui \\\"non\\\"\", "
        "\"system\": \"Be brief.\"}",
        "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", "
        "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", "
        "\"content\": \"b\"}, {\"role\": \"user\", \"content\": \"c\"}, {\"role\": "
        "\"assistant\", \"content\": \"d\"}]}",
    };
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
        snprintf(path, sizeof path, "%s/record%zu.jsonl", sub[3], i);
        if (lrsa_write_file_atomic(path, records[i], strlen(records[i]), &e)) die(&e);
    }
    printf("make_seeds: wrote seeds under %s\n", argv[1]);
    return 0;
}
