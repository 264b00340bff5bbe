/* The grid end to end on a tiny random model with the fixture SmolLM tokenizer: `lrsa eval
 * CONFIG.yaml` writes one complete JSON line per cell, resumes without redoing cells (also after
 * a torn last line), runs only the cells a widened config adds; `lrsa report` writes report.md
 * and SVGs that are well-formed XML; `lrsa inspect` draws a well-formed SVG and prints the kept
 * fractions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <dirent.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "eval/run/metrics.h"
#include "test_util.h"
#include "eval/tiny_model.h"

static char dir[1024], model_dir[1200], run_dir[1200], cfg_path[1200], results[1400];

/* ---- a small XML well-formedness check (what an SVG viewer needs first) ---- */
static int xml_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == ':' || c == '.';
}

/* Returns NULL when well-formed with root element `root`, else a description. */
static const char *xml_check(const char *s, const char *root) {
    static char why[256];
    const char *stack[256];
    size_t stack_len[256];
    int depth = 0, seen_root = 0;
    const char *p = s;
    if (!strncmp(p, "<?xml", 5)) {
        p = strstr(p, "?>");
        if (!p) return "unterminated XML declaration";
        p += 2;
    }
    while (*p) {
        if (*p == '&') { /* entities in text */
            if (strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) && strncmp(p, "&amp;", 5) &&
                strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6) && strncmp(p, "&#", 2))
                return "bare & in text";
            p++;
            continue;
        }
        if (*p != '<') {
            if (depth == 0 && !(*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
                return "text outside the root element";
            p++;
            continue;
        }
        p++;
        int closing = *p == '/';
        if (closing) p++;
        const char *name = p;
        while (xml_name_char(*p)) p++;
        size_t nlen = (size_t)(p - name);
        if (nlen == 0) return "empty tag name";
        if (closing) {
            while (*p == ' ') p++;
            if (*p != '>') return "junk in a closing tag";
            p++;
            if (depth == 0 || stack_len[depth - 1] != nlen ||
                strncmp(stack[depth - 1], name, nlen)) {
                snprintf(why, sizeof why, "closing </%.*s> does not match", (int)nlen, name);
                return why;
            }
            depth--;
            continue;
        }
        if (depth == 0) {
            if (seen_root) return "two root elements";
            if (strlen(root) != nlen || strncmp(root, name, nlen)) return "wrong root element";
            seen_root = 1;
        }
        /* attributes: name="value" with no < or bare & inside */
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\t') p++;
            if (*p == '>' || (*p == '/' && p[1] == '>')) break;
            const char *an = p;
            while (xml_name_char(*p)) p++;
            if (p == an) return "bad attribute";
            if (*p++ != '=') return "attribute without =";
            char q = *p++;
            if (q != '"' && q != '\'') return "unquoted attribute";
            while (*p && *p != q) {
                if (*p == '<') return "< inside an attribute";
                p++;
            }
            if (*p != q) return "unterminated attribute";
            p++;
        }
        if (*p == '/') {
            p += 2; /* self-closing */
        } else {
            p++;
            if (depth >= 256) return "too deep";
            stack[depth] = name;
            stack_len[depth++] = nlen;
        }
    }
    if (!seen_root) return "no root element";
    if (depth != 0) return "unclosed elements";
    return NULL;
}

static void assert_svg_file(const char *path) {
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(path, NULL, &e);
    if (!text) fail_msg("%s", e.msg);
    const char *why = xml_check(text, "svg");
    if (why) fail_msg("%s is not well-formed SVG: %s", path, why);
    free(text);
}

/* ---- helpers ---- */
static void write_text(const char *path, const char *text) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_write_file_atomic(path, text, strlen(text), &e), 0);
}

/* Complete rows of results.jsonl (and the number of lines that are not). */
static int count_rows(int *torn) {
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(results, NULL, &e);
    assert_non_null(text);
    int n = 0;
    *torn = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(l);
        if (r && cJSON_IsString(cJSON_GetObjectItem(r, "key")))
            n++;
        else
            (*torn)++;
        cJSON_Delete(r);
    }
    free(text);
    return n;
}

static char *run_eval(const char *extra, int want_rc) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s eval %s %s 2>&1", LRSA_BINARY, cfg_path, extra);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != want_rc) fail_msg("`%s`: rc %d: %s", cmd, rc, out ? out : "");
    return out;
}

/* Mean of a numeric field over the rows matching method and keep. */
static double field(const char *method, double keep, const char *name) {
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(results, NULL, &e);
    double sum = 0;
    int n = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(l);
        if (!r) continue;
        cJSON *m = cJSON_GetObjectItem(r, "method"), *k = cJSON_GetObjectItem(r, "keep");
        cJSON *v = cJSON_GetObjectItem(r, name);
        if (!v) v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), name);
        if (m && k && v && !strcmp(m->valuestring, method) && k->valuedouble == keep) {
            sum += v->valuedouble;
            n++;
        }
        cJSON_Delete(r);
    }
    free(text);
    if (n == 0) fail_msg("no rows for %s keep %g", method, keep);
    return sum / n;
}

static void setup(void) {
    tu_tmpdir(dir, sizeof dir, "grid_run");
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/grid.yaml", dir);
    snprintf(results, sizeof results, "%s/results.jsonl", run_dir);
    tiny_model_save_dir(model_dir, 2, 1359, 1, 77, 1);
    char text[4096];
    snprintf(text, sizeof text,
             "run_dir: %s\n"
             "models:\n  - {name: tiny, path: %s}\n"
             "methods:\n"
             "  - none\n"
             "  - knorm\n"
             "  - {name: snapkv, window: 8}\n"
             "  - {name: streaming, sink: 2}\n"
             "  - {name: lagkv, sink: 2, lag: 16}\n"
             "  - kvzip\n"
             "budgets: {keep: [1, 0.5]}\n"
             "tasks:\n"
             "  - {synthetic: passkey, lengths: [320], depths: [0.25, 0.75], n: 2}\n"
             "protocols: [query-agnostic, query-aware]\n"
             "max_new: 6\n",
             run_dir, model_dir);
    write_text(cfg_path, text);
}

static void test_grid(void **state) {
    (void)state;
    /* 6 methods x 2 budgets x 2 depths x 2 protocols */
    char *out = run_eval("--quiet", 0);
    assert_non_null(strstr(out, "48 cells, 0 done, 48 to run"));
    free(out);
    int torn = 0;
    assert_int_equal(count_rows(&torn), 48);
    assert_int_equal(torn, 0);
    /* every row is labelled and the budgets took effect */
    lrsa_err e = {{0}};
    char *text = lrsa_read_file(results, NULL, &e);
    const char *must[] = {"\"model\":\"tiny\"",
                          "\"protocol\":\"query-agnostic\"",
                          "\"protocol\":\"query-aware\"",
                          "\"prefill\":\"chunked\"",
                          "\"prefill_ran\":\"oneshot\"",
                          "\"prefill_ran\":\"chunked\"",
                          "\"task\":\"passkey\"",
                          "\"string_match_all\"",
                          "\"answer_nll\"",
                          "\"press_overhead\"",
                          "\"peak_cache_bytes\"",
                          "\"depth\":0.75"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (!strstr(text, must[i])) fail_msg("results lack %s", must[i]);
    free(text);
    /* one record per sample in every row */
    text = lrsa_read_file(results, NULL, &e);
    cJSON *first = cJSON_Parse(strtok(text, "\n"));
    assert_non_null(first);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(first, "samples")), 2);
    assert_non_null(strstr(cJSON_GetObjectItem(first, "key")->valuestring, "|max_new=6|"));
    cJSON_Delete(first);
    free(text);
    assert_true(field("none", 0.5, "kept_fraction") == 1.0);
    double snap = field("snapkv", 0.5, "kept_fraction");
    assert_true(snap > 0.45 && snap < 0.6);
    assert_true(field("knorm", 1, "kept_fraction") == 1.0);
    assert_true(field("lagkv", 0.5, "kept_fraction") < 0.9);
    assert_true(field("snapkv", 0.5, "peak_cache_bytes") < field("none", 0.5, "peak_cache_bytes"));
    assert_true(field("kvzip", 0.5, "score_s") > 0); /* the reconstruction passes are timed */
    double nll = field("none", 1, "answer_nll");
    assert_true(isfinite(nll) && nll > 0);

    /* resume: nothing to redo, file untouched */
    char *before = lrsa_read_file(results, NULL, &e);
    out = run_eval("--quiet", 0);
    assert_non_null(strstr(out, "48 cells, 48 done, 0 to run"));
    free(out);
    char *after = lrsa_read_file(results, NULL, &e);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* a widened grid runs only the new cells */
    out = run_eval("'budgets.keep=[1, 0.5, 0.25]' --quiet", 0);
    assert_non_null(strstr(out, "72 cells, 48 done, 24 to run"));
    free(out);
    assert_int_equal(count_rows(&torn), 72);

    /* a torn last line (a crash mid-write) is ignored and its cell runs again */
    size_t n = 0;
    text = lrsa_read_file(results, &n, &e);
    text[n - 1] = '\0';
    char *last = strrchr(text, '\n');
    assert_non_null(last);
    size_t cut = (size_t)(last - text) + 1 + (n - (size_t)(last - text)) / 2;
    write_text(results, ""); /* rewrite: all lines but half of the last one */
    FILE *f = fopen(results, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, cut, f), cut);
    fclose(f);
    free(text);
    assert_int_equal(count_rows(&torn), 71);
    assert_int_equal(torn, 1);
    out = run_eval("'budgets.keep=[1, 0.5, 0.25]' --quiet", 0);
    assert_non_null(strstr(out, "72 cells, 71 done, 1 to run"));
    assert_non_null(strstr(out, "not a complete result row"));
    free(out);
    assert_int_equal(count_rows(&torn), 72);
    assert_int_equal(torn, 1);

    /* --dry-run lists cells and runs nothing */
    out = run_eval("--dry-run", 0);
    assert_non_null(strstr(out, "done  tiny|"));
    free(out);

    /* the report */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s report %s 2>&1", LRSA_BINARY, run_dir);
    out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("lrsa report: %s", out ? out : "");
    free(out);
    char md[1400];
    snprintf(md, sizeof md, "%s/report.md", run_dir);
    text = lrsa_read_file(md, NULL, &e);
    assert_non_null(text);
    const char *md_must[] = {
        "| method | 1 | 1/2 | 1/4 |",
        "| snapkv |",
        "| kvzip |",
        "![score vs keep fraction](score_vs_keep_tiny_query-agnostic_chunked.svg)",
        "heatmap_tiny_passkey_query-aware_chunked.svg",
        "### Memory",
        "press / prefill",
        "### Answer NLL",
        "### Kept fraction achieved",
        "## Protocols side by side (tiny, chunked prefill)",
        "protocols_side_by_side_tiny_chunked.svg"};
    for (size_t i = 0; i < sizeof md_must / sizeof md_must[0]; i++)
        if (!strstr(text, md_must[i])) fail_msg("report.md lacks %s", md_must[i]);
    free(text);
    int svgs = 0;
    DIR *d = opendir(run_dir);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".svg")) {
            char p[2400];
            snprintf(p, sizeof p, "%s/%s", run_dir, de->d_name);
            assert_svg_file(p);
            svgs++;
        }
    }
    closedir(d);
    assert_int_equal(svgs, 5); /* score vs keep and heat map per protocol; protocols side by side */
    /* the checker itself rejects broken XML */
    assert_non_null(xml_check("<svg><g></svg>", "svg"));
    assert_non_null(xml_check("<svg a=\"1\">x & y</svg>", "svg"));
    assert_null(xml_check("<?xml version=\"1.0\"?>\n<svg a='1'><g/>t &amp; u</svg>\n", "svg"));
}

static void test_inspect(void **state) {
    (void)state;
    char txt[1400], svg[1400], cmd[4096];
    snprintf(txt, sizeof txt, "%s/text.txt", dir);
    snprintf(svg, sizeof svg, "%s/keep.svg", dir);
    write_text(txt, "The river runs past the old mill, and the mill wheel turns slowly all day. "
                    "Children come to watch it after school, and the miller tells them stories "
                    "about the floods of long ago, when the water reached the second floor.");
    snprintf(cmd, sizeof cmd,
             "%s inspect --model %s --text %s --press snapkv --keep 0.5 --window 4 --out %s 2>&1",
             LRSA_BINARY, model_dir, txt, svg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) fail_msg("lrsa inspect: %s", out ? out : "");
    assert_non_null(strstr(out, "layer   1"));
    const char *ov = strstr(out, "overall");
    assert_non_null(ov);
    double frac = 0;
    assert_int_equal(sscanf(ov, "overall %lf", &frac), 1);
    assert_true(frac > 0.45 && frac <= 0.55);
    free(out);
    assert_svg_file(svg);
    snprintf(cmd, sizeof cmd,
             "%s inspect --model %s --text %s/none.txt --press snapkv --out %s 2>&1", LRSA_BINARY,
             model_dir, dir, svg);
    out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    assert_non_null(strstr(out, "none.txt"));
    free(out);
}

/* Two models: the report puts them side by side (table and picture). */
static void test_two_models(void **state) {
    (void)state;
    char model2[1400], cfg2[1400], run2[1400], text[4096], cmd[4096];
    snprintf(model2, sizeof model2, "%s/model2", dir);
    snprintf(cfg2, sizeof cfg2, "%s/two.yaml", dir);
    snprintf(run2, sizeof run2, "%s/run2", dir);
    lrsa_model m;
    tiny_model_create(&m, 2, 1359, 1, 78);
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_model_save(&m, model2, LRSA_ST_F32, &e), 0);
    lrsa_model_free(&m);
    char src[1400], dst[1400];
    snprintf(src, sizeof src, "%s/tokenizer.json", model_dir);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", model2);
    size_t n = 0;
    char *tok = lrsa_read_file(src, &n, &e);
    assert_non_null(tok);
    assert_int_equal(lrsa_write_file_atomic(dst, tok, n, &e), 0);
    free(tok);
    snprintf(text, sizeof text,
             "run_dir: %s\nmodels: [{name: base, path: %s}, {name: tuned, path: %s}]\n"
             "methods: [none, knorm]\nbudgets: [1, 0.5]\n"
             "tasks: [{synthetic: passkey, lengths: [320], n: 1}]\nmax_new: 4\n",
             run2, model_dir, model2);
    write_text(cfg2, text);
    snprintf(cmd, sizeof cmd, "%s eval %s --quiet 2>&1 && %s report %s 2>&1", LRSA_BINARY, cfg2,
             LRSA_BINARY, run2);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("%s", out ? out : "");
    assert_non_null(strstr(out, "8 cells, 0 done, 8 to run"));
    free(out);
    char md[1500], svg[1500];
    snprintf(md, sizeof md, "%s/report.md", run2);
    char *rep = lrsa_read_file(md, NULL, &e);
    assert_non_null(rep);
    assert_non_null(strstr(rep, "## Models side by side"));
    assert_non_null(strstr(rep, "each cell reads base / tuned"));
    assert_non_null(strstr(rep, "## base, query-agnostic, chunked prefill"));
    assert_non_null(strstr(rep, "## tuned, query-agnostic, chunked prefill"));
    free(rep);
    snprintf(svg, sizeof svg, "%s/models_side_by_side_query-agnostic_chunked.svg", run2);
    assert_svg_file(svg);
}

/* A synthetic length too short for the task fails at start-up, before anything is written. */
static void test_length_too_short(void **state) {
    (void)state;
    char cfg[1400], run[1400], text[4096], cmd[4096];
    snprintf(cfg, sizeof cfg, "%s/short.yaml", dir);
    snprintf(run, sizeof run, "%s/run_short", dir);
    snprintf(text, sizeof text,
             "run_dir: %s\nmodels: [%s]\nmethods: [none]\n"
             "tasks: [{synthetic: vartrack, lengths: [1024, 100]}]\n",
             run, model_dir);
    write_text(cfg, text);
    snprintf(cmd, sizeof cmd, "%s eval %s 2>&1", LRSA_BINARY, cfg);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc == 0 || !out || !strstr(out, "too small") || !strstr(out, "task 'vartrack'"))
        fail_msg("rc %d: %s", rc, out ? out : "");
    free(out);
    assert_false(lrsa_file_exists(run));
}

/* `lrsa prepare --synthetic TASKS --n 4` into DIR/TAG.h5 (in data), then the grid of
 * DIR/TAG.yaml over it: run_dir DIR/run_TAG (its results file in res), the test model, `grid`
 * (methods and budgets) before the task and `after` behind it. */
static void synthetic_grid(const char *tag, const char *tasks, int length, int seed,
                           const char *grid, const char *after, char *data, size_t data_size,
                           char *res, size_t res_size) {
    char cfg[1400], run[1400], text[8192], cmd[8192];
    snprintf(cfg, sizeof cfg, "%s/%s.yaml", dir, tag);
    snprintf(run, sizeof run, "%s/run_%s", dir, tag);
    snprintf(data, data_size, "%s/%s.h5", dir, tag);
    snprintf(res, res_size, "%s/results.jsonl", run);
    snprintf(cmd, sizeof cmd,
             "LRSA_CACHE=%s/nocache %s prepare --model %s --synthetic %s --n 4 --length %d "
             "--seed %d --out %s 2>&1",
             dir, LRSA_BINARY, model_dir, tasks, length, seed, data);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("prepare: %s", out ? out : "");
    free(out);
    snprintf(text, sizeof text, "run_dir: %s\nmodels: [%s]\n%stasks: [{file: %s}]\n%s", run,
             model_dir, grid, data, after);
    write_text(cfg, text);
    snprintf(cmd, sizeof cmd, "%s eval %s --quiet 2>&1", LRSA_BINARY, cfg);
    out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("%s", out ? out : "");
    free(out);
}

/* A dataset file of mixed tasks, no max_new anywhere: every row carries one record per sample
 * with the sample's own task, a budget of its answer tokens + 16 ("auto" in the row and key),
 * scores split at ", " (synthetic samples), and the records add up to the row's aggregates. */
static void test_file_mixture_records(void **state) {
    (void)state;
    char data[1400], res[1500];
    synthetic_grid("mix", "passkey,niah-multivalue", 480, 8,
                   "methods: [none, {name: snapkv, window: 8}]\nbudgets: [1, 0.5]\n",
                   "protocols: [query-aware]\n", data, sizeof data, res, sizeof res);
    lrsa_err e = {{0}};
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, data, &e) != 0) fail_msg("%s", e.msg);
    char *all = lrsa_read_file(res, NULL, &e);
    assert_non_null(all);
    int rows = 0;
    char *save = NULL;
    for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(l);
        assert_non_null(r);
        rows++;
        assert_non_null(strstr(cJSON_GetObjectItem(r, "key")->valuestring, "|max_new=auto|"));
        assert_string_equal(cJSON_GetObjectItem(r, "max_new")->valuestring, "auto");
        const cJSON *samples = cJSON_GetObjectItem(r, "samples");
        assert_int_equal(cJSON_GetArraySize(samples), 4);
        double nll = 0, tok = 0, sma = 0, smp = 0, kept = 0;
        for (int i = 0; i < 4; i++) {
            const cJSON *x = cJSON_GetArrayItem(samples, i);
            assert_int_equal(cJSON_GetObjectItem(x, "index")->valueint, i);
            assert_string_equal(cJSON_GetObjectItem(x, "task")->valuestring,
                                lrsa_dataset_sample_task(&d, i));
            assert_int_equal(cJSON_GetObjectItem(x, "max_new")->valueint,
                             (int)lrsa_dataset_n_target(&d, i) + 16);
            lrsa_answer_scores sc;
            lrsa_score_answer(cJSON_GetObjectItem(x, "prediction")->valuestring,
                              lrsa_dataset_answer(&d, i), ", ", &sc);
            assert_true(cJSON_GetObjectItem(x, "string_match_all")->valuedouble == sc.match_all);
            nll += cJSON_GetObjectItem(x, "answer_nll_sum")->valuedouble;
            tok += cJSON_GetObjectItem(x, "answer_tokens")->valuedouble;
            sma += sc.match_all;
            smp += cJSON_GetObjectItem(x, "string_match_part")->valuedouble;
            kept += cJSON_GetObjectItem(x, "kept_fraction")->valuedouble;
        }
        const cJSON *mt = cJSON_GetObjectItem(r, "metrics");
        double row_nll = cJSON_GetObjectItem(r, "answer_nll")->valuedouble;
        assert_true(fabs(row_nll - nll / tok) <= 1e-9 * row_nll);
        assert_true(fabs(cJSON_GetObjectItem(mt, "string_match_all")->valuedouble - sma / 4) <
                    1e-12);
        assert_true(fabs(cJSON_GetObjectItem(mt, "string_match_part")->valuedouble - smp / 4) <
                    1e-12);
        assert_true(fabs(cJSON_GetObjectItem(r, "kept_fraction")->valuedouble - kept / 4) < 1e-12);
        cJSON_Delete(r);
    }
    assert_int_equal(rows, 4); /* 2 methods x 2 budgets */
    free(all);
    lrsa_dataset_close(&d);
}

/* The grid's per-sample needle_kept and needle_tokens_kept (data with needle spans, from `lrsa
 * prepare --synthetic`) are those `lrsa eval` records for the same model, data and press: the
 * full cache keeps every needle (1), LagKV's records equal the single run's to the last digit,
 * and LagKV drops part of some needle (not vacuous). */
static void test_needle_kept_equals_eval(void **state) {
    (void)state;
    char data[1400], res[1500], js[1500], cmd[8192];
    synthetic_grid("needle", "passkey,niah-multikey", 400, 9,
                   "methods: [none, {name: lagkv, sink: 4, lag: 16}]\nbudgets: [0.25]\n",
                   "protocols: [query-agnostic]\nprefill: [chunked]\nbatch: 1\n", data, sizeof data,
                   res, sizeof res);
    snprintf(js, sizeof js, "%s/needle_eval.json", dir);
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s --data %s --press lagkv --keep 0.25 --sink 4 --lag 16 "
             "--protocol agnostic --prefill chunked --batch 1 --json %s 2>&1",
             LRSA_BINARY, model_dir, data, js);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("%s", out ? out : "");
    free(out);
    lrsa_err e = {{0}};
    char *one = lrsa_read_file(js, NULL, &e), *all = lrsa_read_file(res, NULL, &e);
    assert_non_null(one);
    assert_non_null(all);
    cJSON *single = cJSON_Parse(one);
    assert_non_null(single);
    const cJSON *ss = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(single, "results"), 0), "samples");
    assert_int_equal(cJSON_GetArraySize(ss), 4);
    int rows = 0, partial = 0;
    char *save = NULL;
    for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(l);
        assert_non_null(r);
        rows++;
        const int none = !strcmp(cJSON_GetObjectItem(r, "method")->valuestring, "none");
        const cJSON *samples = cJSON_GetObjectItem(r, "samples");
        for (int i = 0; i < 4; i++) {
            const cJSON *x = cJSON_GetArrayItem(samples, i), *y = cJSON_GetArrayItem(ss, i);
            const cJSON *k = cJSON_GetObjectItem(x, "needle_kept"),
                        *t = cJSON_GetObjectItem(x, "needle_tokens_kept");
            if (!k || !t) fail_msg("sample %d of %s: no needle_kept / needle_tokens_kept", i, l);
            if (none) {
                assert_true(k->valuedouble == 1.0 && t->valuedouble == 1.0);
                continue;
            }
            assert_true(k->valuedouble == cJSON_GetObjectItem(y, "needle_kept")->valuedouble);
            assert_true(t->valuedouble ==
                        cJSON_GetObjectItem(y, "needle_tokens_kept")->valuedouble);
            partial += t->valuedouble < 1.0;
        }
        cJSON_Delete(r);
    }
    assert_int_equal(rows, 2);
    assert_true(partial > 0);
    cJSON_Delete(single);
    free(one);
    free(all);
}

/* The grid with batch: 3 gives every sample of every cell the record it gets with batch: 1 (4
 * samples: a batch of 3, then 1), for a full cache, a sweepable press (SnapKV, its budgets
 * applied to clones of one batched prefill) and LagKV (its budget shapes the batched prefill),
 * under both protocols. NLLs agree up to SGEMM's rounding (docs/EVAL.md, "Batched
 * evaluation"); predictions and kept fractions are equal. */
static void test_batch_equals_one(void **state) {
    (void)state;
    char cfg[1400], text[4096], cmd[8192], res[2][1500];
    snprintf(cfg, sizeof cfg, "%s/batch.yaml", dir);
    snprintf(text, sizeof text,
             "run_dir: %s/unused\nmodels: [%s]\n"
             "methods: [none, {name: snapkv, window: 8}, {name: lagkv, sink: 2, lag: 16}]\n"
             "budgets: [1, 0.5]\n"
             "tasks: [{synthetic: passkey, lengths: [320], depths: [0.5], n: 4}]\n"
             "protocols: [query-agnostic, query-aware]\nmax_new: 6\n",
             dir, model_dir);
    write_text(cfg, text);
    for (int k = 0; k < 2; k++) {
        snprintf(res[k], sizeof res[k], "%s/run_b%d/results.jsonl", dir, k ? 3 : 1);
        snprintf(cmd, sizeof cmd, "%s eval %s run_dir=%s/run_b%d batch=%d --quiet 2>&1",
                 LRSA_BINARY, cfg, dir, k ? 3 : 1, k ? 3 : 1);
        char *out = NULL;
        if (tu_run(cmd, &out) != 0) fail_msg("`%s`: %s", cmd, out ? out : "");
        free(out);
    }
    lrsa_err e = {{0}};
    char *t1 = lrsa_read_file(res[0], NULL, &e), *t3 = lrsa_read_file(res[1], NULL, &e);
    assert_non_null(t1);
    assert_non_null(t3);
    int rows = 0, compressed = 0;
    char *s1 = NULL, *s3 = NULL;
    for (char *l1 = strtok_r(t1, "\n", &s1), *l3 = strtok_r(t3, "\n", &s3); l1 && l3;
         l1 = strtok_r(NULL, "\n", &s1), l3 = strtok_r(NULL, "\n", &s3)) {
        cJSON *a = cJSON_Parse(l1), *b = cJSON_Parse(l3);
        assert_non_null(a);
        assert_non_null(b);
        const char *key = cJSON_GetObjectItem(a, "key")->valuestring;
        assert_string_equal(key, cJSON_GetObjectItem(b, "key")->valuestring);
        const cJSON *sa = cJSON_GetObjectItem(a, "samples"),
                    *sb = cJSON_GetObjectItem(b, "samples");
        assert_int_equal(cJSON_GetArraySize(sa), 4);
        assert_int_equal(cJSON_GetArraySize(sb), 4);
        for (int i = 0; i < 4; i++) {
            const cJSON *x = cJSON_GetArrayItem(sa, i), *y = cJSON_GetArrayItem(sb, i);
            assert_int_equal(cJSON_GetObjectItem(y, "index")->valueint, i);
            const double nx = cJSON_GetObjectItem(x, "answer_nll_sum")->valuedouble,
                         ny = cJSON_GetObjectItem(y, "answer_nll_sum")->valuedouble;
            if (!(fabs(nx - ny) <= 1e-5 * fabs(nx)))
                fail_msg("%s, sample %d: NLL %.9g with batch 3, %.9g with batch 1", key, i, ny, nx);
            assert_string_equal(cJSON_GetObjectItem(x, "prediction")->valuestring,
                                cJSON_GetObjectItem(y, "prediction")->valuestring);
            const double kx = cJSON_GetObjectItem(x, "kept_fraction")->valuedouble;
            assert_true(kx == cJSON_GetObjectItem(y, "kept_fraction")->valuedouble);
            compressed += kx < 1.0;
        }
        /* the samples differ from each other: a mix-up would show */
        assert_true(
            fabs(cJSON_GetObjectItem(cJSON_GetArrayItem(sa, 0), "answer_nll_sum")->valuedouble -
                 cJSON_GetObjectItem(cJSON_GetArrayItem(sa, 1), "answer_nll_sum")->valuedouble) >
            1e-3);
        rows++;
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
    assert_int_equal(rows, 12); /* 3 methods x 2 budgets x 2 protocols, in the same order */
    assert_true(compressed >= 8);
    free(t1);
    free(t3);
}

/* One budget (and one length and depth): the report still has its tables and says, in report.md
 * and on stdout, why the pictures over the keep fraction and the heat map are missing. The grid
 * warns before the work that its LagKV method cannot compress these short prompts. */
static void test_one_budget_report(void **state) {
    (void)state;
    char cfg[1400], run[1400], text[4096], cmd[4096], md[1500];
    snprintf(cfg, sizeof cfg, "%s/one.yaml", dir);
    snprintf(run, sizeof run, "%s/run_one", dir);
    snprintf(text, sizeof text,
             "run_dir: %s\nmodels: [%s]\nmethods: [none, knorm, {name: lagkv, sink: 4, lag: 200}]\n"
             "budgets: [1/4]\n"
             "tasks: [{synthetic: passkey, lengths: [320], n: 1}]\nmax_new: 4\n",
             run, model_dir);
    write_text(cfg, text);
    snprintf(cmd, sizeof cmd, "%s eval %s --quiet 2>&1 && %s report %s 2>&1", LRSA_BINARY, cfg,
             LRSA_BINARY, run);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("%s", out ? out : "");
    if (!strstr(out, "report: no score-vs-keep picture: the grid has one keep fraction"))
        fail_msg("stdout does not say why the picture is missing:\n%s", out);
    assert_non_null(strstr(out, "report: no length x depth heat map picture"));
    /* LagKV with sink + 2*lag = 404 above the context (the default protocol is query-agnostic):
     * said once, before the work, naming the group, the method and the lag that would compress it;
     * nothing for the other methods */
    const char *w = strstr(out, "lrsa: warning: ");
    if (!w || !strstr(w, "method lagkv: the context (") || !strstr(w, "sink + 2*lag = 4 + 2*200") ||
        !strstr(w, "or less (with sink 4) would compress"))
        fail_msg("no short-prompt warning for the LagKV method:\n%s", out);
    assert_null(strstr(w + 1, "lrsa: warning: "));
    assert_null(strstr(out, "method knorm:"));
    free(out);
    snprintf(md, sizeof md, "%s/report.md", run);
    lrsa_err e = {{0}};
    char *rep = lrsa_read_file(md, NULL, &e);
    assert_non_null(rep);
    assert_non_null(strstr(rep, "*No score-vs-keep picture: the grid has one keep fraction"));
    assert_non_null(strstr(rep, "budgets.keep two or more"));
    assert_non_null(strstr(rep, "### Score by method and keep fraction")); /* tables stay */
    free(rep);
}

int main(void) {
    setup();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_grid),
                                       cmocka_unit_test(test_inspect),
                                       cmocka_unit_test(test_two_models),
                                       cmocka_unit_test(test_length_too_short),
                                       cmocka_unit_test(test_file_mixture_records),
                                       cmocka_unit_test(test_needle_kept_equals_eval),
                                       cmocka_unit_test(test_batch_equals_one),
                                       cmocka_unit_test(test_one_budget_report)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
