/* A llama/qwen2 GGUF file (model/gguf.h) -> a Hugging Face model directory: config.json from
 * the metadata, model.safetensors with the weights dequantized and un-permuted, and the
 * tokenizer files written from the GGUF vocabulary (formats.md 3 and 4). convert/ sits above
 * model/ and data/, so it may use both. */
#ifndef LRSA_CONVERT_GGUF_CONVERT_H
#define LRSA_CONVERT_GGUF_CONVERT_H

#include "base/error.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/safetensors.h"

/* ---- Conversion to a Hugging Face directory ------------------------------------------------ */
/* Fills a model config from the metadata and tensor list (arch llama or qwen2). */
int lrsa_gguf_model_config(const lrsa_gguf *g, lrsa_model_config *c, lrsa_err *e);
/* Writes tokenizer.json, tokenizer_config.json and generation_config.json into dir. */
int lrsa_gguf_write_tokenizer(const lrsa_gguf *g, const lrsa_model_config *c, const char *dir,
                              lrsa_err *e);
/* The whole conversion: config.json, model.safetensors (F32 or BF16, un-permuted for llama) and
 * the tokenizer files, written into a temporary directory renamed to out_dir at the end.
 * out_dir must not exist unless force (then it is replaced). */
int lrsa_gguf_convert(const char *gguf_path, const char *out_dir, lrsa_st_dtype dtype, int force,
                      lrsa_err *e);
#endif
