/* `lrsa plot RUN_DIR [--out FILE.svg]`: training loss and evaluation answer-NLL (full cache vs
 * LagKV) against the step, from RUN_DIR/metrics.jsonl. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "cli/commands.h"
#include "eval/report/plot_svg.h"

typedef struct points {
    double *x, *y;
    int n, cap;
} points;

static void push(points *p, double x, double y) {
    if (p->n == p->cap) {
        p->cap = p->cap * 2 + 64;
        p->x = lrsa_realloc(p->x, sizeof(double) * (size_t)p->cap);
        p->y = lrsa_realloc(p->y, sizeof(double) * (size_t)p->cap);
    }
    p->x[p->n] = x;
    p->y[p->n++] = y;
}

static int num(const cJSON *j, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!x || !cJSON_IsNumber(x)) return 0;
    *v = x->valuedouble;
    return 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: lrsa plot RUN_DIR [--out FILE.svg]\n"
               "\n"
               "Draws the training loss and the evaluation answer-NLL (full cache and LagKV) of\n"
               "a run against the step, from RUN_DIR/metrics.jsonl, as an SVG picture (default\n"
               "RUN_DIR/curves.svg) that any browser opens.\n");
}

int lrsa_cmd_plot(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lrsa: error: --out needs a file name (e.g. curves.svg)\n");
                return 2;
            }
            out = argv[++i];
        } else if (argv[i][0] == '-' || run_dir) {
            fprintf(stderr, "lrsa: error: unexpected argument '%s' (see lrsa plot --help)\n",
                    argv[i]);
            return 2;
        } else {
            run_dir = argv[i];
        }
    }
    if (!run_dir) {
        usage(stderr);
        return 2;
    }
    char metrics[4200], out_default[4200];
    lrsa_path_join(metrics, sizeof metrics, run_dir, "metrics.jsonl");
    lrsa_path_join(out_default, sizeof out_default, run_dir, "curves.svg");
    if (!out) out = out_default;
    lrsa_err e;
    char *text = lrsa_read_file(metrics, NULL, &e);
    if (!text) {
        fprintf(stderr, "lrsa: error: %s (is %s a run directory of `lrsa train`?)\n", e.msg,
                run_dir);
        return 1;
    }
    points loss = {0}, full = {0}, lag = {0};
    double keep = NAN;
    int line_no = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        line_no++;
        cJSON *j = cJSON_Parse(line);
        if (!j) {
            fprintf(stderr, "lrsa: warning: %s:%d is not JSON; skipped\n", metrics, line_no);
            continue;
        }
        double step, v;
        if (num(j, "step", &step)) {
            if (num(j, "loss", &v)) push(&loss, step, v);
            if (num(j, "eval_nll_full", &v)) push(&full, step, v);
            if (num(j, "eval_nll_lagkv", &v)) push(&lag, step, v);
            if (num(j, "eval_keep", &v)) keep = v;
        }
        cJSON_Delete(j);
    }
    free(text);
    if (loss.n + full.n + lag.n == 0) {
        fprintf(stderr, "lrsa: error: %s has no training or evaluation records yet\n", metrics);
        return 1;
    }
    char lag_label[64];
    snprintf(lag_label, sizeof lag_label, "eval answer NLL, LagKV keep %.3g", keep);
    lrsa_series s[3] = {
        {"training loss", "#1f77b4", loss.x, loss.y, loss.n, loss.n < 40},
        {"eval answer NLL, full cache", "#2ca02c", full.x, full.y, full.n, 1},
        {lag_label, "#d62728", lag.x, lag.y, lag.n, 1},
    };
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    char title[4300];
    snprintf(title, sizeof title, "lrsa run %s", run_dir);
    lrsa_svg_chart(f, title, "step", "nats per answer token", s, 3);
    fclose(f);
    int rc = lrsa_write_file_atomic(out, buf, n, &e);
    free(buf);
    free(loss.x), free(loss.y), free(full.x), free(full.y), free(lag.x), free(lag.y);
    if (rc) {
        lrsa_err_print(&e);
        return 1;
    }
    printf("wrote %s (%d training points, %d evaluations)\n", out, loss.n, full.n);
    return 0;
}
