/* `lrsa prepare`: QA JSONL or a synthetic long-context task -> an HDF5 dataset (dataset.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "data/dataset_build.h"
#include "data/haystack.h"
#include "data/jsonl.h"
#include "data/prepare_stats.h"
#include "data/synthetic/plan.h"
#include "data/synthetic/synthetic.h"
#include "data/synthetic/tasks.h"
#include "cli/commands.h"

static const char USAGE[] =
    "usage: lrsa prepare --model DIR --input FILE.jsonl --out FILE.h5 [options]\n"
    "       lrsa prepare --model DIR --synthetic TASK[,TASK...] --n N --length TOKENS[:MAX]\n"
    "                    --out FILE.h5 [options]\n"
    "\n"
    "Tokenises QA data with the model's tokenizer and chat template into an HDF5 dataset\n"
    "(format lrsa-qa-v1: tokens, loss mask, offsets, prompt lengths, answers).\n"
    "\n"
    "JSONL input, one record per line:\n"
    "  {\"context\": ..., \"question\": ..., \"answer\": ... [, \"system\": ...]}\n"
    "      user turn = context + \"\\n\\n\" + question; the loss covers the answer + end token\n"
    "  {\"messages\": [{\"role\": \"system|user|assistant\", \"content\": ...}, ...]}\n"
    "      the last message must be the assistant's answer\n"
    "\n"
    "common options:\n"
    "  --model DIR          model directory with tokenizer.json (required)\n"
    "  --out FILE.h5        output dataset (written atomically; required)\n"
    "  --template T         auto|chatml|llama3|llama2|mistral|none (default auto: from the\n"
    "                       tokenizer)\n"
    "  --system TEXT        system turn added to records that have none\n"
    "  --loss all|last      loss on every assistant turn (default) or only the last one\n"
    "JSONL options:\n"
    "  --input FILE.jsonl   the records\n"
    "  --max-len N          longest sample in tokens (default: no limit)\n"
    "  --overflow M         truncate (default: cut the middle of the context, never the\n"
    "                       question or the answer) or drop\n"
    "  --skip-bad           skip invalid lines (reported and counted) instead of failing\n"
    "synthetic options:\n"
    "  --synthetic TASK     passkey niah-single niah-multikey niah-multivalue niah-multiquery\n"
    "                       vartrack factqa; a comma-separated list mixes tasks: equal counts,\n"
    "                       each block of k samples holds every task once in a seeded order\n"
    "                       (the per-sample task is stored in /sample_task)\n"
    "  --n N                number of samples\n"
    "  --length TOKENS      tokens per sample (haystack filled up to it); LO:HI draws each\n"
    "                       sample's target uniformly in [LO, HI] (seeded)\n"
    "  --depth D            needle position as a fraction of the context (0..1)\n"
    "  --depths a,b,c       cycle through several depths (default: uniform random)\n"
    "  --seed S             random seed (default 0); same seed -> identical file\n"
    "  --haystack DIR       essay .txt files (default $LRSA_CACHE/haystack, else\n"
    "                       ./.cache/haystack; built-in filler text when absent)\n"
    "  --essays SPLIT       all (default), train or heldout: a file is held out when the\n"
    "                       FNV-1a hash of its name is 0 mod 4 (about a quarter; stable when\n"
    "                       essays are added), so train and heldout sets share no essay;\n"
    "                       needs real essays (tools/fetch-haystack.sh)\n"
    "\n"
    "prepare prints the token-length distribution of what it wrote (per task for a mixture).\n";

typedef struct prepare_args {
    const char *model, *out, *input, *synthetic, *template_name, *system, *haystack;
    int64_t max_len, n, length, length_max;
    lrsa_essay_split essays;
    int overflow_drop, skip_bad, loss_last;
    double depths[64];
    int n_depths;
    uint64_t seed;
} prepare_args;

static int parse_i64(const char *flag, const char *s, int64_t lo, int64_t *out, lrsa_err *e) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return lrsa_errorf(e, "%s %s: expected an integer >= %lld", flag, s, (long long)lo);
    *out = v;
    return 0;
}

/* --length N, or LO:HI for a range (LO <= HI). */
static int parse_length(const char *flag, const char *s, prepare_args *a, lrsa_err *e) {
    const char *colon = strchr(s, ':');
    if (!colon) return parse_i64(flag, s, 1, &a->length, e);
    char lo[64];
    snprintf(lo, sizeof lo, "%.*s", (int)(colon - s < 63 ? colon - s : 63), s);
    if (parse_i64(flag, lo, 1, &a->length, e) || parse_i64(flag, colon + 1, 1, &a->length_max, e))
        return lrsa_err_prefix(e, "%s %s takes TOKENS or LO:HI: ", flag, s);
    if (a->length_max < a->length)
        return lrsa_errorf(e, "%s %s: the range's low end is above its high end", flag, s);
    return 0;
}

static int parse_depths(const char *flag, const char *s, prepare_args *a, lrsa_err *e) {
    a->n_depths = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        double d = strtod(p, &end);
        if (errno || end == p || !(d >= 0.0 && d <= 1.0) || (*end && *end != ','))
            return lrsa_errorf(e,
                               "%s %s: expected fractions in [0, 1] separated by commas, e.g. "
                               "0.1,0.5,0.9",
                               flag, s);
        if (a->n_depths == 64) return lrsa_errorf(e, "%s: at most 64 depths", flag);
        a->depths[a->n_depths++] = d;
        if (!*end) break;
        p = end + 1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, prepare_args *a, lrsa_err *e) {
    memset(a, 0, sizeof *a);
    a->template_name = "auto";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--skip-bad")) {
            a->skip_bad = 1;
            continue;
        }
        if (strncmp(f, "--", 2) != 0)
            return lrsa_errorf(e, "unexpected argument '%s'; see `lrsa prepare --help`", f);
        if (i + 1 >= argc) return lrsa_errorf(e, "%s needs a value; see `lrsa prepare --help`", f);
        const char *v = argv[++i];
        int64_t tmp;
        if (!strcmp(f, "--model"))
            a->model = v;
        else if (!strcmp(f, "--out"))
            a->out = v;
        else if (!strcmp(f, "--input"))
            a->input = v;
        else if (!strcmp(f, "--synthetic"))
            a->synthetic = v;
        else if (!strcmp(f, "--template"))
            a->template_name = v;
        else if (!strcmp(f, "--system"))
            a->system = v;
        else if (!strcmp(f, "--haystack"))
            a->haystack = v;
        else if (!strcmp(f, "--max-len")) {
            if (parse_i64(f, v, 1, &a->max_len, e)) return -1;
        } else if (!strcmp(f, "--n")) {
            if (parse_i64(f, v, 1, &a->n, e)) return -1;
        } else if (!strcmp(f, "--length")) {
            if (parse_length(f, v, a, e)) return -1;
        } else if (!strcmp(f, "--essays")) {
            if (lrsa_essay_split_parse(v, &a->essays) != 0)
                return lrsa_errorf(e, "--essays %s: expected all, train or heldout", v);
        } else if (!strcmp(f, "--seed")) {
            if (parse_i64(f, v, 0, &tmp, e)) return -1;
            a->seed = (uint64_t)tmp;
        } else if (!strcmp(f, "--depth") || !strcmp(f, "--depths")) {
            if (parse_depths(f, v, a, e)) return -1;
            if (!strcmp(f, "--depth") && a->n_depths != 1)
                return lrsa_errorf(e, "--depth takes one fraction; use --depths for a list");
        } else if (!strcmp(f, "--overflow")) {
            if (strcmp(v, "drop") && strcmp(v, "truncate"))
                return lrsa_errorf(e, "--overflow %s: expected drop or truncate", v);
            a->overflow_drop = !strcmp(v, "drop");
        } else if (!strcmp(f, "--loss")) {
            if (strcmp(v, "all") && strcmp(v, "last"))
                return lrsa_errorf(e, "--loss %s: expected all or last", v);
            a->loss_last = !strcmp(v, "last");
        } else
            return lrsa_errorf(e, "unknown option %s; see `lrsa prepare --help`", f);
    }
    if (!a->model) return lrsa_errorf(e, "--model DIR is required (the model's directory)");
    if (!a->out) return lrsa_errorf(e, "--out FILE.h5 is required");
    if (!a->input == !a->synthetic)
        return lrsa_errorf(e, "give exactly one of --input FILE.jsonl or --synthetic TASK");
    if (a->input && (a->n || a->length || a->n_depths || a->haystack || a->essays))
        return lrsa_errorf(e, "--n, --length, --depth(s), --haystack and --essays apply to "
                              "--synthetic, not to --input");
    if (a->synthetic) {
        if (!a->n) return lrsa_errorf(e, "--synthetic needs --n N (number of samples)");
        if (!a->length) return lrsa_errorf(e, "--synthetic needs --length TOKENS");
        if (a->max_len || a->skip_bad || a->overflow_drop)
            return lrsa_errorf(e, "--max-len, --overflow and --skip-bad apply to --input; "
                                  "synthetic samples are sized by --length");
        lrsa_synth_tasks tasks;
        if (lrsa_synth_tasks_parse(a->synthetic, &tasks, e) != 0) return -1;
    }
    return 0;
}

static int pick_format(const lrsa_tokenizer *t, const char *name, lrsa_chat_format *f,
                       lrsa_err *e) {
    lrsa_chat_format detected = lrsa_chat_detect(t);
    if (!strcmp(name, "auto"))
        *f = detected;
    else if (!strcmp(name, "none"))
        *f = LRSA_CHAT_NONE;
    else if (!strcmp(name, "chatml")) {
        if (lrsa_tokenizer_token_id(t, "<|im_start|>") < 0 ||
            lrsa_tokenizer_token_id(t, "<|im_end|>") < 0)
            return lrsa_errorf(e, "--template chatml: the tokenizer has no <|im_start|>/<|im_end|> "
                                  "tokens; use --template auto or none");
        *f = detected == LRSA_CHAT_CHATML_QWEN ? LRSA_CHAT_CHATML_QWEN : LRSA_CHAT_CHATML_SMOLLM;
    } else if (!strcmp(name, "llama3")) {
        if (lrsa_tokenizer_token_id(t, "<|start_header_id|>") < 0)
            return lrsa_errorf(e, "--template llama3: the tokenizer has no <|start_header_id|> "
                                  "token; use --template auto or none");
        *f = LRSA_CHAT_LLAMA3;
    } else if (!strcmp(name, "llama2") || !strcmp(name, "mistral")) {
        if (lrsa_tokenizer_token_id(t, "<s>") < 0 || lrsa_tokenizer_token_id(t, "</s>") < 0)
            return lrsa_errorf(e,
                               "--template %s: the tokenizer has no <s>/</s> tokens; use "
                               "--template auto or none",
                               name);
        *f = !strcmp(name, "llama2") ? LRSA_CHAT_LLAMA2 : LRSA_CHAT_MISTRAL;
    } else
        return lrsa_errorf(
            e, "--template %s: expected auto, chatml, llama3, llama2, mistral or none", name);
    return 0;
}

typedef struct jsonl_counts {
    int64_t lines, samples, bad, dropped, truncated, untruncatable;
} jsonl_counts;

static int prepare_jsonl(const prepare_args *a, const lrsa_sample_builder *b,
                         lrsa_dataset_writer *w, jsonl_counts *c, lrsa_err *e) {
    size_t size = 0;
    char *text = lrsa_read_file(a->input, &size, e);
    if (!text) return lrsa_err_prefix(e, "--input: ");
    int rc = 0;
    const char *p = text, *end = text + size;
    if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3; /* a UTF-8 byte-order mark */
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        c->lines++;
        lrsa_qa_record r;
        lrsa_err le;
        int st = lrsa_jsonl_parse_record(p, len, a->input, c->lines, &r, &le);
        p += len + (nl ? 1 : 0);
        if (st == 1) continue;
        if (st < 0) {
            if (!a->skip_bad) {
                rc = lrsa_errorf(e, "%s (or pass --skip-bad to skip such lines)", le.msg);
                break;
            }
            if (c->bad < 20) fprintf(stderr, "lrsa: warning: skipping %s\n", le.msg);
            c->bad++;
            continue;
        }
        lrsa_sample s;
        int truncated = 0;
        int64_t limit = a->overflow_drop ? 0 : a->max_len;
        st = lrsa_sample_build_fit(b, r.msgs, r.n_msgs, r.trunc_msg, r.trunc_begin, r.trunc_end,
                                   limit, &s, &truncated, &le);
        if (st < 0) {
            rc = lrsa_errorf(e, "%s:%lld: %s", a->input, (long long)c->lines, le.msg);
        } else if (st == 1) {
            c->untruncatable++;
        } else if (a->max_len > 0 && s.ids.n > a->max_len) {
            c->dropped++;
            lrsa_sample_free(&s);
        } else {
            c->truncated += truncated;
            rc = lrsa_dataset_writer_add(w, s.ids.v, s.mask.v, s.ids.n, s.prompt_len, r.answer, e);
            c->samples += rc == 0;
            lrsa_sample_free(&s);
        }
        lrsa_qa_record_free(&r);
    }
    free(text);
    return rc;
}

/* Creates the directory --out lives in (mkdir -p), so `--out data/new/train.h5` works. Called
 * only when the samples are ready, so a failed run creates nothing. */
static int make_out_dir(const char *out, lrsa_err *e) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", out) >= (int)sizeof dir)
        return lrsa_errorf(e, "--out %s: path too long", out);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0; /* the current directory, or directly under / */
    *slash = '\0';
    if (lrsa_mkdirs(dir, e) != 0) return lrsa_err_prefix(e, "--out %s: ", out);
    return 0;
}

int lrsa_cmd_prepare(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
    lrsa_err e = {{0}};
    prepare_args a;
    if (parse_args(argc, argv, &a, &e) != 0) {
        lrsa_err_print(&e);
        return 2;
    }
    lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(a.model, &e);
    if (!tok) {
        lrsa_err_prefix(&e, "--model %s: ", a.model);
        lrsa_err_print(&e);
        return 1;
    }
    int rc = 1;
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    lrsa_haystack h = {0};
    lrsa_sample_builder b = {tok, LRSA_CHAT_NONE, a.system, a.loss_last};
    if (pick_format(tok, a.template_name, &b.fmt, &e) != 0) goto done;
    char source[8192];
    lrsa_dataset_meta meta = {lrsa_tokenizer_checksum(tok), lrsa_chat_format_name(b.fmt), source,
                              a.synthetic ? a.synthetic : "jsonl", a.max_len};
    if (a.input) {
        jsonl_counts c = {0};
        if (prepare_jsonl(&a, &b, w, &c, &e) != 0) goto done;
        snprintf(source, sizeof source, "jsonl %s (template %s, loss %s, overflow %s)", a.input,
                 meta.chat_template, a.loss_last ? "last" : "all",
                 a.overflow_drop ? "drop" : "truncate");
        if (make_out_dir(a.out, &e) != 0 || lrsa_dataset_writer_commit(w, a.out, &meta, &e) != 0)
            goto done;
        printf("prepare: wrote %lld samples to %s (%lld lines read", (long long)c.samples, a.out,
               (long long)c.lines);
        if (c.bad) printf(", %lld bad lines skipped", (long long)c.bad);
        if (c.truncated) printf(", %lld truncated to --max-len", (long long)c.truncated);
        if (c.dropped) printf(", %lld over --max-len dropped", (long long)c.dropped);
        if (c.untruncatable)
            printf(", %lld dropped: question + answer alone exceed --max-len",
                   (long long)c.untruncatable);
        printf(")\n");
    } else {
        if (lrsa_haystack_load_split(&h, a.haystack, a.essays, &e) != 0) goto done;
        if (h.builtin)
            fprintf(stderr, "lrsa: note: no haystack essays found; using the built-in filler "
                            "(run tools/fetch-haystack.sh for real English text)\n");
        lrsa_synth_config cfg = {a.synthetic, a.n,    a.length,    a.depths,
                                 a.n_depths,  a.seed, a.length_max};
        if (lrsa_synth_generate(&cfg, &b, &h, w, &e) != 0) goto done;
        char range[32] = "";
        if (a.length_max > a.length)
            snprintf(range, sizeof range, ":%lld", (long long)a.length_max);
        size_t len = (size_t)snprintf(
            source, sizeof source,
            "synthetic task=%s n=%lld length=%lld%s seed=%llu depths=", a.synthetic, (long long)a.n,
            (long long)a.length, range, (unsigned long long)a.seed);
        if (a.n_depths == 0) len += (size_t)snprintf(source + len, sizeof source - len, "random");
        for (int i = 0; i < a.n_depths && len < sizeof source; i++)
            len += (size_t)snprintf(source + len, sizeof source - len, "%s%g", i ? "," : "",
                                    a.depths[i]);
        if (len < sizeof source)
            snprintf(source + len, sizeof source - len, " template=%s %s", meta.chat_template,
                     h.desc);
        meta.max_len = a.length_max > a.length ? a.length_max : a.length;
        if (make_out_dir(a.out, &e) != 0 || lrsa_dataset_writer_commit(w, a.out, &meta, &e) != 0)
            goto done;
        printf("prepare: wrote %lld %s samples of up to %lld tokens to %s (%s)\n", (long long)a.n,
               a.synthetic, (long long)meta.max_len, a.out, h.desc);
    }
    lrsa_print_length_stats(stdout, w);
    rc = 0;
done:
    if (rc != 0) lrsa_err_print(&e);
    lrsa_haystack_free(&h);
    lrsa_dataset_writer_free(w);
    lrsa_tokenizer_free(tok);
    return rc;
}
