/* `lrsa generate`: chat with a model, optionally through a compressed KV cache (any press). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/chat.h"
#include "data/tokenizer.h"
#include "base/fileio.h"
#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "eval/press/press_kvzip.h"
#include "eval/run/generate.h"
#include "eval/run/eval_gpu.h"
#include "eval/run/generate_gpu.h"
#include "eval/run/press_notes.h"
#include "model/device_ops.h"
#include "model/lora.h"

static const char *GENERATE_HELP =
    "usage: lrsa generate --model DIR [--adapter DIR] --prompt TEXT [--system TEXT]\n"
    "                     [--max-new N]\n"
    "                     [--temperature t --top-p p --seed s]\n"
    "                     [--press NAME --keep r ...press flags below]\n"
    "\n"
    "Builds the chat prompt with the model's template, generates (greedy by default), streams\n"
    "the text as it comes, and prints cache statistics to stderr at the end. With --protocol\n"
    "agnostic the prompt is CONTEXT, a blank line, QUESTION: the context alone is compressed,\n"
    "then the question is read (as `lrsa eval --protocol agnostic` does); the default, aware,\n"
    "compresses the whole prompt.\n"
    "\n"
    "  --model DIR          Hugging Face model directory (config.json, safetensors, tokenizer)\n"
    "  --adapter DIR        a PEFT LoRA adapter directory (lrsa export --adapter), merged into\n"
    "                       the model at load\n"
    "  --prompt TEXT        the user message\n"
    "  --system TEXT        system message (default: the template's own default, if any)\n"
    "  --max-new N          at most N new tokens (default 256)\n"
    "  --temperature t      0 = greedy (default); > 0 samples\n"
    "  --top-p p            nucleus mass in (0, 1] (default 1)\n"
    "  --seed s             sampling seed (default 0)\n"
    "  --device cpu|cuda    where the cache and the model run (default cpu); cuda: the full\n"
    "                       cache or --press lagkv, either protocol (never run on a GPU "
    "yet)\n" LRSA_PRESS_FLAGS_HELP;

typedef struct stream_state {
    lrsa_stream_decoder dec;
} stream_state;

static int print_token(void *user, int32_t id) {
    stream_state *s = user;
    char buf[1024];
    int n = lrsa_stream_decoder_push(&s->dec, id, buf, sizeof(buf));
    if (n > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
    }
    return 0;
}

static int run(int argc, char **argv, lrsa_err *e) {
    const char *model_dir = NULL, *prompt = NULL, *system = NULL, *v = NULL, *adapter = NULL;
    const char *device = "cpu";
    lrsa_press_config press;
    lrsa_press_defaults(&press);
    lrsa_gen_options g = {.max_new = 256, .temperature = 0.0f, .top_p = 1.0f, .seed = 0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        long long n = 0;
        int pr = lrsa_press_flag(&press, argc, argv, &i, e);
        if (pr < 0) return -1;
        if (pr > 0) continue;
        if (strcmp(f, "--model") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &model_dir, e)) return -1;
        } else if (strcmp(f, "--adapter") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &adapter, e)) return -1;
        } else if (strcmp(f, "--prompt") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &prompt, e)) return -1;
        } else if (strcmp(f, "--system") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &system, e)) return -1;
        } else if (strcmp(f, "--max-new") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_int(f, v, 0, 1 << 24, &n, e))
                return -1;
            g.max_new = (int)n;
        } else if (strcmp(f, "--temperature") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_float(f, v, &g.temperature, e))
                return -1;
            if (g.temperature < 0)
                return lrsa_errorf(e, "--temperature: %g is negative; use 0 for greedy",
                                   g.temperature);
        } else if (strcmp(f, "--top-p") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_float(f, v, &g.top_p, e))
                return -1;
            if (!(g.top_p > 0 && g.top_p <= 1))
                return lrsa_errorf(e, "--top-p: %g is outside (0, 1]", g.top_p);
        } else if (strcmp(f, "--device") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &device, e)) return -1;
            if (strcmp(device, "cpu") && strcmp(device, "cuda"))
                return lrsa_errorf(e, "--device: '%s' is not cpu or cuda", device);
        } else if (strcmp(f, "--seed") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) ||
                lrsa_flag_int(f, v, 0, 0x7fffffffffffffffLL, &n, e))
                return -1;
            g.seed = (uint64_t)n;
        } else {
            return lrsa_errorf(e, "generate: unknown argument '%s' (see lrsa generate --help)", f);
        }
    }
    if (!model_dir) return lrsa_errorf(e, "generate: --model DIR is required");
    if (!prompt) return lrsa_errorf(e, "generate: --prompt TEXT is required");
    if (lrsa_press_check(&press, e) != 0) return -1;
    const int on_gpu = !strcmp(device, "cuda");
    if (on_gpu && lrsa_press_gpu_check(&press.spec, "--device cuda", e)) return -1;
    if (on_gpu && lrsa_cuda_usable("--device cuda", "use --device cpu", e)) return -1;

    lrsa_model m;
    if (lrsa_model_load_adapted(&m, model_dir, adapter, e) != 0) return -1;
    lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(model_dir, e);
    if (!tok) {
        lrsa_model_free(&m);
        return -1;
    }
    int rc = -1;
    lrsa_ids ids = {0};
    lrsa_kv_cache c = {0};
    lrsa_gen_result res = {0};
    lrsa_ids kvzip_ids = {0};
    float *logits = NULL;
    lrsa_chat_format fmt = lrsa_chat_detect(tok);
    lrsa_chat_msg msgs[2];
    int nm = 0;
    if (system) msgs[nm++] = (lrsa_chat_msg){"system", system};
    msgs[nm++] = (lrsa_chat_msg){"user", prompt};
    if (lrsa_chat_build(tok, fmt, msgs, nm, 1, &ids, NULL, e) != 0) goto done;
    int32_t stop[16];
    int n_stop = lrsa_chat_stop_ids(tok, fmt, stop, 8);
    for (int i = 0; i < m.cfg.n_eos && n_stop < 16; i++) stop[n_stop++] = m.cfg.eos_token_ids[i];
    g.stop_ids = stop;
    g.n_stop = n_stop;
    if (press.spec.method == LRSA_PRESS_KVZIP) {
        if (lrsa_kvzip_prompt_ids(tok, fmt, &kvzip_ids, e) != 0) goto done;
        press.spec.kvzip_prompt_ids = kvzip_ids.v;
        press.spec.n_kvzip_prompt = kvzip_ids.n;
    }
    /* Aware: the whole chat prompt is compressed, then decoding continues on the compressed
     * cache. Agnostic: only the context before the question is compressed and the cache frozen
     * (as lrsa eval does), then the question is read and the answer generated. */
    int64_t split = ids.n;
    if (press.protocol == LRSA_PROTOCOL_AGNOSTIC) {
        split = lrsa_press_question_start(tok, ids.v, ids.n);
        if (split < 1) {
            lrsa_errorf(e, "--protocol agnostic: the prompt has no blank line before the "
                           "question; write --prompt as CONTEXT, a blank line, then the "
                           "QUESTION (the context is compressed before the question is read), or "
                           "use --protocol aware");
            goto done;
        }
    }
    lrsa_press_spec spec;
    lrsa_press_config_spec(&press, &spec);
    lrsa_press_warn_lengths(&spec, &split, 1, split < ids.n ? "context" : "prompt");
    stream_state ss;
    lrsa_stream_decoder_init(&ss.dec, tok, 1);
    if (on_gpu) {
        char stats[256];
        if (lrsa_generate_gpu(&m, &spec, ids.v, ids.n, split, &g, print_token, &ss, &res, stats,
                              sizeof stats, e) != 0)
            goto done;
        char tail[1024];
        int nt = lrsa_stream_decoder_flush(&ss.dec, tail, sizeof(tail));
        if (nt > 0) fwrite(tail, 1, (size_t)nt, stdout);
        fprintf(stdout,
                "\n--\nprompt %lld tokens, generated %lld; %s\nprefill %.2f s, decode %.2f s\n",
                (long long)ids.n, (long long)res.n, stats, res.prefill_s, res.decode_s);
        rc = 0;
        goto done;
    }
    if (lrsa_press_cache_init(&c, &m, &spec, e) != 0) goto done;
    logits = lrsa_malloc((size_t)m.cfg.vocab_size * sizeof(float));
    double t0 = lrsa_now();
    if (lrsa_press_compress(&m, &c, &spec, ids.v, split, logits, 0, NULL, e) != 0) goto done;
    if (press.protocol == LRSA_PROTOCOL_AGNOSTIC) lrsa_press_freeze(&c);
    double press_s = lrsa_now() - t0;
    if (lrsa_generate_from(&m, &c, ids.v, ids.n, split, logits, &g, print_token, &ss, &res, e) != 0)
        goto done;
    res.prefill_s += press_s;
    char tail[1024];
    int nt = lrsa_stream_decoder_flush(&ss.dec, tail, sizeof(tail));
    if (nt > 0) fwrite(tail, 1, (size_t)nt, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    char pdesc[256];
    size_t full = (size_t)c.seen * lrsa_kv_cache_bytes_per_token(&c);
    size_t live = lrsa_kv_cache_live_bytes(&c);
    char split_note[128] = "";
    if (split < ids.n)
        snprintf(split_note, sizeof split_note,
                 " (context %lld compressed, then the question's %lld read)", (long long)split,
                 (long long)(ids.n - split));
    fprintf(stderr,
            "--\npress %s, prefill %s, protocol %s, template %s\n"
            "prompt %lld tokens%s, generated %lld (%s)\n"
            "cache: tokens seen %lld, tokens kept %lld (longest head), KV bytes %zu live / %zu "
            "uncompressed (%.1f%%), %zu allocated\n"
            "prefill %.2f s (%.1f tok/s), decode %.2f s (%.2f tok/s)\n",
            lrsa_press_describe(&press, pdesc, sizeof(pdesc)), lrsa_press_prefill_label(&spec),
            lrsa_press_protocol_name(press.protocol), lrsa_chat_format_name(fmt), (long long)ids.n,
            split_note, (long long)res.n, res.stopped ? "stop token" : "max-new reached",
            (long long)c.seen, (long long)lrsa_kv_cache_max_len(&c), live, full,
            full ? 100.0 * live / full : 100.0, lrsa_kv_cache_alloc_bytes(&c), res.prefill_s,
            res.prefill_s > 0 ? ids.n / res.prefill_s : 0.0, res.decode_s,
            res.decode_s > 0 ? res.decode_steps / res.decode_s : 0.0);
    rc = 0;
done:
    free(logits);
    lrsa_ids_free(&kvzip_ids);
    free(res.ids);
    lrsa_kv_cache_free(&c);
    lrsa_ids_free(&ids);
    lrsa_tokenizer_free(tok);
    lrsa_model_free(&m);
    return rc;
}

int lrsa_cmd_generate(int argc, char **argv) {
    return lrsa_cmd_main(argc, argv, GENERATE_HELP, run);
}
