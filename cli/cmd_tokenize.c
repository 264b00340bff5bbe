/* `lrsa tokenize`: text on stdin -> ids on stdout, or ids -> text with --decode. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "data/tokenizer.h"
#include "cli/commands.h"

static const char *USAGE =
    "usage: lrsa tokenize --model DIR|tokenizer.json [--decode] [--special] "
    "[--add-special-tokens]\n"
    "                     [--text STR] [--info]\n"
    "\n"
    "Encodes UTF-8 text from stdin (or --text) and prints the ids, space-separated, on one line.\n"
    "The text is taken byte for byte: a trailing newline from `echo` is encoded too (use printf).\n"
    "\n"
    "  --model PATH  a model directory with tokenizer.json, or a tokenizer.json file\n"
    "  --decode      read ids (separated by spaces, commas or newlines) and print the text\n"
    "  --special     encode: literal added tokens such as <|im_start|> become their ids\n"
    "                (default: they are plain text); decode: print special tokens\n"
    "                (default: skip them)\n"
    "  --add-special-tokens  encode as Hugging Face's encode(text) does: --special plus the ids\n"
    "                the post-processor adds (Llama 2: <s> first)\n"
    "  --text STR    encode STR instead of reading stdin\n"
    "  --info        print vocabulary size, checksum and chat format, then exit\n";

static char *read_stdin(size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = lrsa_malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += got;
        if (cap - len - 1 == 0) buf = lrsa_realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    *n = len;
    return buf;
}

static int decode_ids(const lrsa_tokenizer *t, const char *in, int special) {
    lrsa_ids ids = {0};
    const char *p = in;
    int rc = 0;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\r' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= lrsa_tokenizer_vocab_size(t)) {
            fprintf(stderr,
                    "lrsa: error: stdin, id number %lld (\"%.20s\"): not an integer id in 0..%d; "
                    "give token ids separated by spaces, commas or newlines\n",
                    (long long)ids.n + 1, p, lrsa_tokenizer_vocab_size(t) - 1);
            rc = 1;
            break;
        }
        lrsa_ids_push(&ids, (int32_t)v);
        p = end;
    }
    if (rc == 0) {
        size_t len;
        char *text = lrsa_tokenizer_decode_len(t, ids.v, ids.n, !special, &len);
        fwrite(text, 1, len, stdout); /* a NUL byte in the text is written too */
        free(text);
    }
    lrsa_ids_free(&ids);
    return rc;
}

int lrsa_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    int decode = 0, special = 0, info = 0, hf = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--text")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lrsa: error: %s needs a value\n%s", a, USAGE);
                return 2;
            }
            *(!strcmp(a, "--model") ? &model : &text) = argv[++i];
        } else if (!strcmp(a, "--decode")) {
            decode = 1;
        } else if (!strcmp(a, "--special")) {
            special = 1;
        } else if (!strcmp(a, "--add-special-tokens")) {
            hf = 1;
        } else if (!strcmp(a, "--info")) {
            info = 1;
        } else {
            fprintf(stderr, "lrsa: error: tokenize: unknown argument \"%s\"\n%s", a, USAGE);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr,
                "lrsa: error: tokenize needs --model DIR (a directory with "
                "tokenizer.json) or --model path/to/tokenizer.json\n%s",
                USAGE);
        return 2;
    }
    lrsa_err e;
    lrsa_tokenizer *t =
        lrsa_is_dir(model) ? lrsa_tokenizer_load_dir(model, &e) : lrsa_tokenizer_load(model, &e);
    if (!t) {
        lrsa_err_print(&e);
        return 1;
    }
    int rc = 0;
    if (info) {
        printf("vocab_size %d\nchecksum %s\nchat_format %s\n", lrsa_tokenizer_vocab_size(t),
               lrsa_tokenizer_checksum(t), lrsa_chat_format_name(lrsa_chat_detect(t)));
    } else {
        size_t n = text ? strlen(text) : 0;
        char *in = text ? NULL : read_stdin(&n);
        const char *src = text ? text : in;
        if (decode) {
            rc = decode_ids(t, src, special);
        } else {
            lrsa_ids ids = {0};
            int r = hf        ? lrsa_tokenizer_encode_hf(t, src, n, &ids, &e)
                    : special ? lrsa_tokenizer_encode_with_special(t, src, n, &ids, &e)
                              : lrsa_tokenizer_encode(t, src, n, &ids, &e);
            if (r) {
                lrsa_err_print(&e);
                rc = 1;
            } else {
                for (int64_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.v[i]);
                putchar('\n');
            }
            lrsa_ids_free(&ids);
        }
        free(in);
    }
    lrsa_tokenizer_free(t);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "lrsa: error: writing to stdout failed\n");
        rc = 1;
    }
    return rc;
}
