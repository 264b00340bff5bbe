/* `lrsa eval`: answer NLL and generation accuracy of a model on a QA dataset under a press.
 * One run = one row (press x prefill mode); the grid over presses and baselines loops over
 * lrsa_eval_dataset and appends rows to the same table and JSON array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "eval/press/press_kvzip.h"
#include "eval/run/eval_dataset.h"
#include "eval/run/grid.h"
#include "eval/run/prefill.h"
#include "eval/run/eval_gpu.h"
#include "model/device_ops.h"
#include "model/lora.h"

/* --batch's default in the help below */
_Static_assert(LRSA_EVAL_BATCH == 4, "update the default of --batch in EVAL_HELP");

static const char *EVAL_HELP =
    "usage: lrsa eval --model DIR [--adapter DIR] --data FILE.h5 [--n N] [--metrics nll,match]\n"
    "                 [--press NAME --keep r|--tokens N ...press flags below]\n"
    "                 [--protocol aware|agnostic] [--prefill chunked|oneshot]\n"
    "                 [--max-new N] [--batch N] [--device cpu|cuda] [--json OUT.json]\n"
    "                 [--verbose]\n"
    "       lrsa eval CONFIG.yaml [key=value ...]   a grid of models x presses x budgets x\n"
    "                 tasks (see lrsa eval CONFIG.yaml --help, docs/EVAL.md)\n"
    "\n"
    "Evaluates a model on the first N samples of a QA dataset (lrsa prepare) through a KV\n"
    "cache: the mean answer NLL (teacher forcing; the prompt is prefilled under the press, the\n"
    "answer fed as decode steps) and/or greedy-generation accuracy (the reference answer must\n"
    "occur in the generated text, case- and whitespace-insensitively).\n"
    "\n"
    "  --model DIR          Hugging Face model directory\n"
    "  --adapter DIR        a PEFT LoRA adapter directory (lrsa export --adapter), merged into\n"
    "                       the model at load\n"
    "  --data FILE.h5       dataset (lrsa-qa-v1)\n"
    "  --n N                first N samples (default: all)\n"
    "  --metrics LIST       comma-separated: nll, match (default nll)\n"
    "  --max-new N          generation budget for match (default: per sample, its reference\n"
    "                       answer's tokens + 16)\n"
    "  --batch N            samples evaluated together, their forwards shared (default 4;\n"
    "                       memory grows with N; results equal N = 1's up to float\n"
    "                       rounding, docs/EVAL.md \"Batched evaluation\")\n"
    "  --device cpu|cuda    where the model and the cache run (default cpu); cuda: the full\n"
    "                       cache or --press lagkv (chunked or one-shot), either protocol,\n"
    "                       one sample at a time, bf16 on the GPU (never run on a GPU yet;\n"
    "                       docs/CUDA.md)\n"
    "  --json FILE          also write the results as JSON: the aggregate row plus a\n"
    "                       \"samples\" array, one record per sample (index, task, answer\n"
    "                       NLL sum and mean, string match all/part, prediction, kept\n"
    "                       fraction) for paired comparisons\n"
    "  --verbose            one line per sample on stderr (on a terminal, without it, a\n"
    "                       progress line: sample i/n and the time left)\n" LRSA_PRESS_FLAGS_HELP;

static int parse_metrics(const char *s, int *nll, int *match, lrsa_err *e) {
    *nll = *match = 0;
    char *copy = lrsa_strdup(s), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "nll") == 0)
            *nll = 1;
        else if (strcmp(t, "match") == 0)
            *match = 1;
        else {
            rc = lrsa_errorf(e, "--metrics: unknown metric '%s'; use nll, match or nll,match", t);
            break;
        }
    }
    free(copy);
    if (rc == 0 && !*nll && !*match) rc = lrsa_errorf(e, "--metrics: name at least one metric");
    return rc;
}

static int write_json(const char *path, const char *model_dir, const char *data_path,
                      const lrsa_press_config *press, const lrsa_eval_options *o,
                      const lrsa_eval_result *r, const lrsa_sample_records *recs, lrsa_err *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", model_dir);
    cJSON_AddStringToObject(root, "data", data_path);
    cJSON *rows = cJSON_AddArrayToObject(root, "results");
    cJSON *row = cJSON_CreateObject();
    lrsa_press_spec s;
    lrsa_press_config_spec(press, &s);
    char label[256];
    cJSON_AddStringToObject(row, "press", lrsa_press_method_name(s.method));
    cJSON_AddStringToObject(row, "press_label", lrsa_press_describe_spec(&s, label, sizeof(label)));
    cJSON_AddStringToObject(row, "protocol", lrsa_press_protocol_name(press->protocol));
    cJSON_AddStringToObject(row, "prefill", lrsa_press_prefill_label(&s));
    if (s.method == LRSA_PRESS_LAGKV || s.method == LRSA_PRESS_LAGKV_KVPRESS) {
        cJSON_AddNumberToObject(row, "sink", s.lagkv.sink);
        cJSON_AddNumberToObject(row, "lag", s.lagkv.lag);
        cJSON_AddNumberToObject(row, "value_weight", s.lagkv.value_weight);
    }
    if (s.method == LRSA_PRESS_LAGKV)
        cJSON_AddNumberToObject(row, "keep", s.lagkv.keep);
    else if (s.method != LRSA_PRESS_NONE && s.tokens_per_layer > 0)
        cJSON_AddNumberToObject(row, "tokens_per_layer", (double)s.tokens_per_layer);
    else if (s.method != LRSA_PRESS_NONE)
        cJSON_AddNumberToObject(row, "keep", s.keep);
    cJSON_AddNumberToObject(row, "n_samples", (double)r->n_samples);
    if (o->want_nll) {
        cJSON_AddNumberToObject(row, "answer_nll", r->mean_nll);
        cJSON_AddNumberToObject(row, "answer_tokens", (double)r->nll_tokens);
    }
    if (o->want_match) cJSON_AddNumberToObject(row, "match_accuracy", r->match_rate);
    cJSON_AddNumberToObject(row, "kept_fraction", r->kept_fraction);
    if (r->n_needle > 0) cJSON_AddNumberToObject(row, "needle_kept", r->needle_kept);
    cJSON_AddNumberToObject(row, "seconds", r->seconds);
    cJSON_AddItemToObject(row, "samples", lrsa_sample_records_json(recs));
    cJSON_AddItemToArray(rows, row);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int rc = lrsa_write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

static int run(int argc, char **argv, lrsa_err *e) {
    const char *model_dir = NULL, *data_path = NULL, *json_path = NULL, *v = NULL, *adapter = NULL;
    lrsa_press_config press;
    lrsa_press_defaults(&press);
    lrsa_eval_options o = {.want_nll = 1, .batch = LRSA_EVAL_BATCH};
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
        } else if (strcmp(f, "--data") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &data_path, e)) return -1;
        } else if (strcmp(f, "--json") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &json_path, e)) return -1;
        } else if (strcmp(f, "--n") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) ||
                lrsa_flag_int(f, v, 1, 0x7fffffffffffLL, &n, e))
                return -1;
            o.n_samples = n;
        } else if (strcmp(f, "--max-new") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) || lrsa_flag_int(f, v, 1, 1 << 24, &n, e))
                return -1;
            o.max_new = (int)n;
        } else if (strcmp(f, "--batch") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) ||
                lrsa_flag_int(f, v, 1, LRSA_EVAL_BATCH_MAX, &n, e))
                return -1;
            o.batch = (int)n;
        } else if (strcmp(f, "--metrics") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e) ||
                parse_metrics(v, &o.want_nll, &o.want_match, e))
                return -1;
        } else if (strcmp(f, "--device") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &v, e)) return -1;
            if (strcmp(v, "cpu") && strcmp(v, "cuda"))
                return lrsa_errorf(e, "--device: '%s' is not cpu or cuda", v);
            o.device_cuda = !strcmp(v, "cuda");
        } else if (strcmp(f, "--verbose") == 0) {
            o.verbose = 1;
        } else {
            return lrsa_errorf(e, "eval: unknown argument '%s' (see lrsa eval --help)", f);
        }
    }
    if (!model_dir) return lrsa_errorf(e, "eval: --model DIR is required");
    if (!data_path) return lrsa_errorf(e, "eval: --data FILE.h5 is required");
    if (lrsa_press_check(&press, e) != 0) return -1;
    /* before anything is loaded: a press the GPU cache cannot run, then no usable GPU */
    if (o.device_cuda && lrsa_press_gpu_check(&press.spec, "--device cuda", e) != 0) return -1;
    if (o.device_cuda && lrsa_cuda_usable("--device cuda", "use --device cpu", e)) return -1;
    /* a results file that cannot be written must fail now, not after the whole run */
    if (json_path && lrsa_check_output_file(json_path, "--json", e) != 0) return -1;
    if (!o.verbose && isatty(fileno(stderr))) o.progress = stderr; /* logs stay clean */

    lrsa_dataset d;
    if (lrsa_dataset_open(&d, data_path, e) != 0) return -1;
    lrsa_model m;
    if (lrsa_model_load_adapted(&m, model_dir, adapter, e) != 0) {
        lrsa_dataset_close(&d);
        return -1;
    }
    if (o.verbose && m.cfg.defaults_used[0])
        fprintf(stderr, "lrsa: %s/config.json leaves out %s: Hugging Face's defaults used\n",
                model_dir, m.cfg.defaults_used);
    int rc = -1;
    lrsa_tokenizer *tok = NULL;
    int32_t stop[16];
    lrsa_ids kvzip_ids = {0};
    lrsa_sample_records recs = {0};
    const int is_kvzip = press.spec.method == LRSA_PRESS_KVZIP;
    if (o.want_match || press.protocol == LRSA_PROTOCOL_AGNOSTIC || is_kvzip) {
        tok = lrsa_tokenizer_load_dir(model_dir, e);
        if (!tok) { /* say why it is needed: the NLL alone (aware) needs no tokenizer */
            lrsa_err_prefix(e, "eval: %s needs the model's tokenizer (%s): ",
                            o.want_match ? "--metrics match"
                            : is_kvzip   ? "--press kvzip"
                                         : "--protocol agnostic",
                            o.want_match ? "to decode the answers"
                            : is_kvzip   ? "for its reconstruction prompt"
                                         : "to find where each question starts");
            goto done;
        }
        if (d.tokenizer_checksum && d.tokenizer_checksum[0] &&
            strcmp(d.tokenizer_checksum, lrsa_tokenizer_checksum(tok)) != 0)
            fprintf(stderr,
                    "lrsa: warning: %s was tokenized with another tokenizer (checksum "
                    "%s, model's %s); results may be meaningless\n",
                    data_path, d.tokenizer_checksum, lrsa_tokenizer_checksum(tok));
        lrsa_chat_format fmt = lrsa_chat_detect(tok);
        int n_stop = lrsa_chat_stop_ids(tok, fmt, stop, 8);
        for (int i = 0; i < m.cfg.n_eos && n_stop < 16; i++)
            stop[n_stop++] = m.cfg.eos_token_ids[i];
        o.tok = tok;
        o.stop_ids = stop;
        o.n_stop = n_stop;
        if (is_kvzip) { /* the reconstruction prompt in the model's chat format */
            if (lrsa_kvzip_prompt_ids(tok, fmt, &kvzip_ids, e) != 0) goto done;
            press.spec.kvzip_prompt_ids = kvzip_ids.v;
            press.spec.n_kvzip_prompt = kvzip_ids.n;
        }
    }
    lrsa_eval_result r;
    if (json_path) o.records = &recs;
    if (lrsa_eval_dataset(&m, &d, &press, &o, &r, e) != 0) goto done;
    char pdesc[256];
    lrsa_press_describe(&press, pdesc, sizeof(pdesc));
    lrsa_press_spec eff;
    lrsa_press_config_spec(&press, &eff);
    printf("%-34s %-8s %-8s %8s %12s %10s %8s %8s\n", "press", "protocol", "prefill", "samples",
           "answer_nll", "match", "kept", "time_s");
    char nll[32] = "-", match[32] = "-";
    if (o.want_nll) snprintf(nll, sizeof(nll), "%.4f", r.mean_nll);
    if (o.want_match) snprintf(match, sizeof(match), "%.3f", r.match_rate);
    printf("%-34s %-8s %-8s %8lld %12s %10s %7.1f%% %8.1f\n", pdesc,
           lrsa_press_protocol_name(press.protocol), lrsa_press_prefill_label(&eff),
           (long long)r.n_samples, nll, match, 100.0 * r.kept_fraction, r.seconds);
    if (r.n_needle > 0)
        printf("needle kept: %.3f of (layer, KV head, needle) triples, mean over %lld samples with "
               "needle spans\n",
               r.needle_kept, (long long)r.n_needle);
    if (json_path && write_json(json_path, model_dir, data_path, &press, &o, &r, &recs, e) != 0)
        goto done;
    rc = 0;
done:
    lrsa_sample_records_free(&recs);
    lrsa_ids_free(&kvzip_ids);
    lrsa_tokenizer_free(tok);
    lrsa_model_free(&m);
    lrsa_dataset_close(&d);
    return rc;
}

int lrsa_cmd_eval(int argc, char **argv) {
    if (argc > 1 && lrsa_grid_is_config(argv[1])) return lrsa_grid_main(argc, argv); /* grid */
    return lrsa_cmd_main(argc, argv, EVAL_HELP, run);
}
