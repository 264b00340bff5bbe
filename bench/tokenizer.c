/* Tokenizer throughput: encodes a few MB of English on one thread and prints MB/s, first with
 * an empty piece cache (cold) and then again (warm), plus decode speed. Each figure is given
 * per second of wall time and per second of this process's CPU time (the second one is what
 * to compare on a machine shared with other work).
 *
 *   bench_tokenizer [--model DIR|tokenizer.json] [--text FILE] [--mb N]
 *
 * Defaults: models/smollm2-135m-instruct (else the small SmolLM-style test fixture), the
 * haystack essays (data/haystack.h; its built-in filler when absent) repeated to 4 MB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "data/haystack.h"
#include "data/tokenizer.h"

static char *haystack_text(size_t want, size_t *n, char *desc, size_t desc_cap) {
    lrsa_haystack h;
    lrsa_err e;
    if (lrsa_haystack_load(&h, NULL, &e) || h.n == 0) {
        lrsa_err_print(&e);
        exit(1);
    }
    snprintf(desc, desc_cap, "%s", h.desc);
    char *buf = lrsa_malloc(want + 4096);
    size_t o = 0;
    for (int64_t i = 0; o < want; i = (i + 1) % h.n) {
        size_t l = strlen(h.sents[i]);
        if (o + l + 2 > want + 4096) break;
        memcpy(buf + o, h.sents[i], l);
        o += l;
        buf[o++] = (i % 7 == 6) ? '\n' : ' '; /* paragraphs now and then */
    }
    buf[o] = 0;
    *n = o;
    lrsa_haystack_free(&h);
    return buf;
}

int main(int argc, char **argv) {
    const char *model = NULL, *text_path = NULL;
    double mb = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc)
            text_path = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc)
            mb = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_tokenizer [--model DIR|tokenizer.json] [--text FILE] "
                            "[--mb N]\n");
            return 2;
        }
    }
    if (!model)
        model = lrsa_is_dir("models/smollm2-135m-instruct") ? "models/smollm2-135m-instruct"
                                                            : "tests/fixtures/tokenizer/smollm";
    lrsa_err e;
    double t0 = lrsa_now();
    lrsa_tokenizer *t =
        lrsa_is_dir(model) ? lrsa_tokenizer_load_dir(model, &e) : lrsa_tokenizer_load(model, &e);
    if (!t) {
        lrsa_err_print(&e);
        return 1;
    }
    double t_load = lrsa_now() - t0;
    size_t n;
    char desc[512] = "";
    char *text;
    if (text_path) {
        text = lrsa_read_file(text_path, &n, &e);
        if (!text) {
            lrsa_err_print(&e);
            return 1;
        }
        snprintf(desc, sizeof desc, "%s", text_path);
    } else {
        text = haystack_text((size_t)(mb * 1e6), &n, desc, sizeof desc);
    }
    printf("tokenizer %s (vocab %d), loaded in %.3f s\n", model, lrsa_tokenizer_vocab_size(t),
           t_load);
    printf("text: %.2f MB from %.200s\n", n / 1e6, desc);
    lrsa_ids ids = {0};
    for (int pass = 0; pass < 2; pass++) {
        ids.n = 0;
        t0 = lrsa_now();
        clock_t c0 = clock();
        if (lrsa_tokenizer_encode(t, text, n, &ids, &e)) {
            lrsa_err_print(&e);
            return 1;
        }
        double dt = lrsa_now() - t0, dc = (double)(clock() - c0) / CLOCKS_PER_SEC;
        printf("encode (%s cache): %.2f MB/s (%.2f MB per CPU s), %.0f tokens/s, %.3f "
               "bytes/token\n",
               pass ? "warm" : "cold", n / 1e6 / dt, n / 1e6 / dc, ids.n / dt,
               (double)n / (double)ids.n);
    }
    t0 = lrsa_now();
    clock_t c0 = clock();
    char *back = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
    double dt = lrsa_now() - t0, dc = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("decode: %.2f MB/s (%.2f MB per CPU s), round trip %s\n", n / 1e6 / dt, n / 1e6 / dc,
           strcmp(back, text) == 0 ? "exact" : "DIFFERS");
    free(back);
    lrsa_ids_free(&ids);
    free(text);
    lrsa_tokenizer_free(t);
    return 0;
}
