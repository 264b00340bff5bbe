/* `lrsa inspect`: which tokens a press keeps, per layer and KV head, over a text. Prefills the
 * text under the press (as the evaluator does), compacts the cache, and draws the kept rows'
 * original positions: one SVG row per (layer, KV head), one column per token, kept = dark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "data/tokenizer.h"
#include "cli/cli_flags.h"
#include "eval/press/press.h"
#include "eval/press/press_kvzip.h"
#include "eval/run/prefill.h"
#include "cli/commands.h"
#include "eval/report/plot_svg.h"

static const char INSPECT_HELP[] =
    "usage: lrsa inspect --model DIR --text FILE --press NAME [press flags] --out FILE.svg\n"
    "                    [--chat]\n"
    "\n"
    "Prefills the text of FILE (UTF-8) through the model under a KV-cache press, compresses\n"
    "the cache as the evaluator does, and draws which tokens each layer and KV head keeps:\n"
    "rows = (layer, KV head), columns = token positions, kept = dark. Prints the kept fraction\n"
    "per layer (mean over heads, and each head) on stdout.\n"
    "\n"
    "  --model DIR          Hugging Face model directory (with tokenizer.json)\n"
    "  --text FILE          the text (tokenised as plain text)\n"
    "  --chat               wrap the text as a user turn of the model's chat template\n"
    "  --out FILE.svg       the picture (written atomically)\n" LRSA_PRESS_FLAGS_HELP;

typedef struct inspect_args {
    const char *model, *text, *out;
    int chat;
    lrsa_press_config press;
} inspect_args;

static int parse(int argc, char **argv, inspect_args *a, lrsa_err *e) {
    memset(a, 0, sizeof *a);
    lrsa_press_defaults(&a->press);
    for (int i = 1; i < argc; i++) {
        int pr = lrsa_press_flag(&a->press, argc, argv, &i, e);
        if (pr < 0) return -1;
        if (pr > 0) continue;
        if (!strcmp(argv[i], "--model")) {
            if (lrsa_flag_value(argc, argv, &i, &a->model, e)) return -1;
        } else if (!strcmp(argv[i], "--text")) {
            if (lrsa_flag_value(argc, argv, &i, &a->text, e)) return -1;
        } else if (!strcmp(argv[i], "--out")) {
            if (lrsa_flag_value(argc, argv, &i, &a->out, e)) return -1;
        } else if (!strcmp(argv[i], "--chat")) {
            a->chat = 1;
        } else {
            return lrsa_errorf(e, "inspect: unknown argument '%s' (see lrsa inspect --help)",
                               argv[i]);
        }
    }
    if (!a->model) return lrsa_errorf(e, "inspect: --model DIR is required");
    if (!a->text) return lrsa_errorf(e, "inspect: --text FILE is required");
    if (!a->out) return lrsa_errorf(e, "inspect: --out FILE.svg is required");
    if (!lrsa_file_exists(a->text))
        return lrsa_errorf(e, "inspect: --text %s does not exist", a->text);
    return lrsa_press_check(&a->press, e);
}

/* The picture: a row per (layer, head); runs of kept positions as one rect each. */
static int draw(const char *path, const lrsa_kv_cache *c, int64_t T, const char *title,
                lrsa_err *e) {
    const int rows = c->n_layers * c->n_kv_heads;
    const double L = 70, TOP = 60, RH = rows > 120 ? 4 : 7, R = 90;
    double cw = 1400.0 / (double)T;
    if (cw > 10) cw = 10;
    const double pw = cw * (double)T, W = L + pw + R, H = TOP + rows * RH + 60;
    lrsa_atomic_file af;
    if (lrsa_atomic_open(&af, path, e) != 0) return -1;
    FILE *f = af.f;
    lrsa_svg_begin(f, W, H);
    fprintf(f, "<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">", W / 2);
    lrsa_svg_escape(f, title);
    fprintf(f,
            "</text>\n<text x=\"%.0f\" y=\"42\" text-anchor=\"middle\" font-size=\"11\" "
            "fill=\"#555\">rows: layer x KV head (top = layer 0); columns: token position; "
            "dark = kept; right: kept fraction</text>\n",
            W / 2);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f1f1f1\"/>\n", L,
            TOP, pw, rows * RH);
    for (int l = 0; l < c->n_layers; l++)
        for (int g = 0; g < c->n_kv_heads; g++) {
            const lrsa_kv_head *h = &c->heads[(int64_t)l * c->n_kv_heads + g];
            const double y = TOP + (l * c->n_kv_heads + g) * RH;
            int64_t kept = 0;
            for (int64_t i = 0; i < h->len;) {
                if (h->pos[i] >= T) {
                    i++;
                    continue;
                }
                int64_t j = i + 1; /* a run of consecutive positions */
                while (j < h->len && h->pos[j] == h->pos[j - 1] + 1 && h->pos[j] < T) j++;
                fprintf(f,
                        "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                        "fill=\"#1f3a93\"/>\n",
                        L + h->pos[i] * cw, y, (double)(h->pos[j - 1] - h->pos[i] + 1) * cw,
                        RH - (RH > 4 ? 1 : 0.5));
                kept += j - i;
                i = j;
            }
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"#e377c2\"/>\n",
                    L + pw + 6, y, 60.0 * (double)kept / (double)T, RH - (RH > 4 ? 1 : 0.5));
            if (g == 0 && (c->n_layers <= 40 || l % 2 == 0))
                fprintf(f,
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"9\">layer "
                        "%d</text>\n",
                        L - 4, y + (RH > 4 ? RH : 2 * RH) - 1, l);
        }
    double ticks[32];
    int nt = lrsa_nice_ticks(0, (double)(T - 1), 10, 1.0, ticks, 32);
    const double yb = TOP + rows * RH;
    for (int i = 0; i < nt; i++) {
        double x = L + (ticks[i] + 0.5) * cw;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">%g</text>\n",
                x, yb, x, yb + 5, x, yb + 17, ticks[i]);
    }
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">token "
            "position</text>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">0 .. 100%%</text>\n",
            L + pw / 2, yb + 38, L + pw + 6, TOP - 4);
    lrsa_svg_end(f);
    return lrsa_atomic_commit(&af, e);
}

static int run(const inspect_args *a, lrsa_err *e) {
    lrsa_model m;
    if (lrsa_model_load(&m, a->model, e) != 0) return lrsa_err_prefix(e, "--model %s: ", a->model);
    int rc = -1;
    lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(a->model, e);
    lrsa_ids ids = {0}, kz = {0};
    lrsa_kv_cache c = {0};
    char *text = NULL;
    double *kf = NULL;
    if (!tok) goto done;
    size_t n = 0;
    text = lrsa_read_file(a->text, &n, e);
    if (!text) goto done;
    lrsa_chat_format fmt = lrsa_chat_detect(tok);
    if (a->chat) {
        lrsa_chat_msg msg = {"user", text};
        if (lrsa_chat_build(tok, fmt, &msg, 1, 0, &ids, NULL, e) != 0) goto done;
    } else if (lrsa_tokenizer_encode(tok, text, n, &ids, e) != 0) {
        goto done;
    }
    if (ids.n < 2) {
        lrsa_errorf(e, "inspect: %s has fewer than 2 tokens", a->text);
        goto done;
    }
    lrsa_press_spec s;
    lrsa_press_config_spec(&a->press, &s);
    if (lrsa_kvzip_prompt_ids(tok, fmt, &kz, e) != 0) goto done;
    s.kvzip_prompt_ids = kz.v;
    s.n_kvzip_prompt = kz.n;
    if (lrsa_press_cache_init(&c, &m, &s, e) != 0) goto done;
    const int H = m.cfg.num_hidden_layers * m.cfg.num_key_value_heads;
    kf = lrsa_calloc((size_t)H, sizeof *kf);
    if (lrsa_press_compress(&m, &c, &s, ids.v, ids.n, NULL, 0, kf, e) != 0) goto done;
    char desc[256], title[512];
    lrsa_press_describe_spec(&s, desc, sizeof desc);
    const char *base = strrchr(a->text, '/');
    snprintf(title, sizeof title, "Kept tokens: %s on %s (%lld tokens)", desc,
             base ? base + 1 : a->text, (long long)ids.n);
    if (draw(a->out, &c, ids.n, title, e) != 0) goto done;
    printf("press %s, %lld tokens; kept fraction per layer (mean over %d KV heads: each head)\n",
           desc, (long long)ids.n, m.cfg.num_key_value_heads);
    double all = 0;
    for (int l = 0; l < m.cfg.num_hidden_layers; l++) {
        double mean = 0;
        for (int g = 0; g < m.cfg.num_key_value_heads; g++) {
            const lrsa_kv_head *h = &c.heads[(int64_t)l * c.n_kv_heads + g];
            mean += (double)h->len / (double)ids.n;
        }
        mean /= m.cfg.num_key_value_heads;
        all += mean;
        printf("layer %3d  %.3f :", l, mean);
        for (int g = 0; g < m.cfg.num_key_value_heads; g++)
            printf(" %.3f", (double)c.heads[(int64_t)l * c.n_kv_heads + g].len / (double)ids.n);
        printf("\n");
    }
    printf("overall    %.3f; picture: %s\n", all / m.cfg.num_hidden_layers, a->out);
    rc = 0;
done:
    free(kf);
    free(text);
    lrsa_kv_cache_free(&c);
    lrsa_ids_free(&ids);
    lrsa_ids_free(&kz);
    lrsa_tokenizer_free(tok);
    lrsa_model_free(&m);
    return rc;
}

int lrsa_cmd_inspect(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(INSPECT_HELP, stdout);
            return 0;
        }
    lrsa_err e = {{0}};
    inspect_args a;
    if (parse(argc, argv, &a, &e) != 0) {
        lrsa_err_print(&e);
        return 2;
    }
    if (run(&a, &e) != 0) {
        lrsa_err_print(&e);
        return 1;
    }
    return 0;
}
