#include "train/train_log.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

void lrsa_format_duration(char *out, size_t cap, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, cap, "%lds", t);
}

void lrsa_log_step_line(FILE *f, const lrsa_step_record *r) {
    char eta[32];
    lrsa_format_duration(eta, sizeof eta, r->eta_s);
    if (r->skipped) {
        fprintf(
            f,
            "step %lld/%lld | SKIPPED (loss %.4f, gnorm %.3g not finite; %lld skipped) | ETA %s\n",
            (long long)r->step, (long long)r->max_steps, r->loss, r->gnorm,
            (long long)r->skipped_total, eta);
    } else {
        char needle[80] = "";
        int k = 0;
        if (r->has_needle_kept)
            k = snprintf(needle, sizeof needle, " | needle kept %.3f", r->needle_kept);
        if (r->has_salience)
            snprintf(needle + k, sizeof needle - (size_t)k, " | salience %.4f", r->salience_loss);
        fprintf(f, "step %lld/%lld | loss %.4f | gnorm %.3g | lr %.1e%s | %.0f tok/s | ETA %s\n",
                (long long)r->step, (long long)r->max_steps, r->loss, r->gnorm, r->lr, needle,
                r->tok_per_s, eta);
    }
    fflush(f);
}

void lrsa_log_eval_line(FILE *f, const lrsa_eval_record *r) {
    fprintf(f,
            "eval @ step %lld | answer NLL full cache %.4f | LagKV keep %.3g %.4f | %lld samples, "
            "%lld answer tokens\n",
            (long long)r->step, r->nll_full, r->keep, r->nll_lagkv, (long long)r->samples,
            (long long)r->tokens);
    fflush(f);
}

/* JSON numbers cannot be NaN or inf: those become null. Losses and norms are written with
 * every digit (%.17g) so runs can be compared exactly (resume, 1 vs N ranks). */
static void num(FILE *f, const char *key, double v) {
    int exact = !strcmp(key, "loss") || !strcmp(key, "gnorm") || !strncmp(key, "eval_nll", 8);
    if (isfinite(v))
        fprintf(f, exact ? ",\"%s\":%.17g" : ",\"%s\":%.6g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

int lrsa_metrics_append_step(FILE *f, const lrsa_step_record *r) {
    fprintf(f, "{\"step\":%lld", (long long)r->step);
    num(f, "loss", r->loss);
    num(f, "gnorm", r->gnorm);
    num(f, "lr", r->lr);
    num(f, "tok_per_s", r->tok_per_s);
    num(f, "elapsed_s", r->elapsed_s);
    if (r->has_needle_kept) num(f, "needle_kept", r->needle_kept);
    if (r->has_salience) num(f, "salience_loss", r->salience_loss);
    fprintf(f, ",\"tokens\":%lld,\"n_target\":%lld,\"skipped\":%s,\"skipped_total\":%lld}\n",
            (long long)r->tokens, (long long)r->n_target, r->skipped ? "true" : "false",
            (long long)r->skipped_total);
    return fflush(f) == 0 ? 0 : -1;
}

int lrsa_metrics_append_eval(FILE *f, const lrsa_eval_record *r) {
    fprintf(f, "{\"step\":%lld", (long long)r->step);
    num(f, "eval_nll_full", r->nll_full);
    num(f, "eval_nll_lagkv", r->nll_lagkv);
    num(f, "eval_keep", r->keep);
    fprintf(f, ",\"eval_samples\":%lld,\"eval_tokens\":%lld}\n", (long long)r->samples,
            (long long)r->tokens);
    return fflush(f) == 0 ? 0 : -1;
}

int lrsa_metrics_truncate_after(const char *path, int64_t last_step, lrsa_err *e) {
    if (!lrsa_file_exists(path)) return 0;
    size_t n;
    char *text = lrsa_read_file(path, &n, e);
    if (!text) return -1;
    char *out = lrsa_malloc(n + 1);
    size_t k = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char saved = line[len];
        line[len] = 0;
        cJSON *j = cJSON_Parse(line);
        const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
        if (s && cJSON_IsNumber(s) && s->valuedouble <= (double)last_step) {
            memcpy(out + k, line, len);
            k += len;
            out[k++] = '\n';
        }
        cJSON_Delete(j);
        line[len] = saved;
        line += len + (nl ? 1 : 0);
    }
    int rc = lrsa_write_file_atomic(path, out, k, e);
    free(out);
    free(text);
    return rc;
}
