#include "eval/run/grid_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "data/dataset_build.h"
#include "data/jsonl.h"
#include "data/synthetic/synthetic.h"

static int load_haystack(const lrsa_grid_config *c, lrsa_haystack *h, lrsa_err *e);

/* Calls fn on every non-blank JSONL record of text (at most `limit` records when > 0). */
typedef int (*record_fn)(void *user, const lrsa_qa_record *r, int64_t line, lrsa_err *e);

static int each_record(const char *path, int64_t limit, record_fn fn, void *user, lrsa_err *e) {
    size_t size = 0;
    char *text = lrsa_read_file(path, &size, e);
    if (!text) return -1;
    const char *p = text, *end = text + size;
    if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    int64_t line = 0, records = 0;
    int rc = 0;
    while (p < end && rc == 0 && (limit <= 0 || records < limit)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        lrsa_qa_record r;
        int st = lrsa_jsonl_parse_record(p, len, path, line, &r, e);
        p += len + (nl ? 1 : 0);
        if (st == 1) continue;
        if (st < 0) {
            rc = -1;
            break;
        }
        records++;
        rc = fn ? fn(user, &r, line, e) : 0;
        lrsa_qa_record_free(&r);
    }
    if (rc == 0 && records == 0) rc = lrsa_errorf(e, "%s: no QA records", path);
    free(text);
    return rc;
}

int lrsa_grid_check_data_file(const char *path, lrsa_err *e) {
    size_t n = strlen(path);
    if (n > 6 && !strcmp(path + n - 6, ".jsonl")) return each_record(path, 0, NULL, NULL, e);
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, e) != 0) return -1;
    int rc = lrsa_dataset_size(&d) > 0 ? 0 : lrsa_errorf(e, "%s: the dataset has no samples", path);
    lrsa_dataset_close(&d);
    return rc;
}

typedef struct jsonl_ctx {
    const lrsa_sample_builder *b;
    lrsa_dataset_writer *w;
    const char *path;
} jsonl_ctx;

static int add_record(void *user, const lrsa_qa_record *r, int64_t line, lrsa_err *e) {
    jsonl_ctx *j = user;
    lrsa_sample s;
    lrsa_err le;
    if (lrsa_sample_build(j->b, r->msgs, r->n_msgs, &s, &le) != 0)
        return lrsa_errorf(e, "%s:%lld: %s", j->path, (long long)line, le.msg);
    int rc = lrsa_dataset_writer_add(j->w, s.ids.v, s.mask.v, s.ids.n, s.prompt_len, r->answer, e);
    lrsa_sample_free(&s);
    return rc;
}

/* RUN_DIR/data/MODEL/NAME.h5 */
static void data_path(char *out, size_t cap, const lrsa_grid_config *c, const char *model,
                      const char *name) {
    snprintf(out, cap, "%s/data/%s/%s.h5", c->run_dir, model, name);
}

int lrsa_grid_task_open(const lrsa_grid_config *c, const lrsa_grid_task *t, int64_t length,
                        double depth, const char *model_name, const lrsa_tokenizer *tok,
                        lrsa_haystack *haystack, lrsa_dataset *out, lrsa_err *e) {
    size_t fl = strlen(t->file);
    if (t->file[0] && !(fl > 6 && !strcmp(t->file + fl - 6, ".jsonl"))) {
        /* an HDF5 dataset made by `lrsa prepare`: must match the model's tokenizer */
        if (lrsa_dataset_open(out, t->file, e) != 0) return -1;
        if (lrsa_dataset_check_tokenizer(out, lrsa_tokenizer_checksum(tok), e) != 0) {
            lrsa_dataset_close(out);
            return lrsa_err_prefix(e, "task '%s', model '%s': ", t->name, model_name);
        }
        return 0;
    }
    char name[256], path[LRSA_GRID_PATH + 512];
    if (t->synthetic[0])
        snprintf(name, sizeof name, "%s_L%lld_d%g_n%lld_s%llu", t->name, (long long)length, depth,
                 (long long)t->n, (unsigned long long)t->seed);
    else
        snprintf(name, sizeof name, "%s_n%lld", t->name, (long long)t->n);
    data_path(path, sizeof path, c, model_name, name);
    if (lrsa_file_exists(path)) {
        if (lrsa_dataset_open(out, path, e) != 0) return -1;
        if (lrsa_dataset_check_tokenizer(out, lrsa_tokenizer_checksum(tok), e) == 0) return 0;
        lrsa_dataset_close(out); /* made with another tokenizer: build it again */
    }
    char dir[LRSA_GRID_PATH + 512];
    snprintf(dir, sizeof dir, "%s/data/%s", c->run_dir, model_name);
    if (lrsa_mkdirs(dir, e) != 0) return -1;
    lrsa_sample_builder b = {tok, lrsa_chat_detect(tok), NULL, 0};
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    char source[1024];
    int rc;
    if (t->synthetic[0]) {
        rc = load_haystack(c, haystack, e);
        /* every (length, depth) point gets its own needles: the seed is mixed with the point */
        uint64_t seed =
            t->seed * 1000003ULL + (uint64_t)length * 7919ULL + (uint64_t)llround(depth * 1000.0);
        lrsa_synth_config sc = {t->synthetic, t->n, length, &depth, 1, seed, 0};
        if (rc == 0) rc = lrsa_synth_generate(&sc, &b, haystack, w, e);
        snprintf(source, sizeof source,
                 "synthetic task=%s n=%lld length=%lld seed=%llu depths=%g template=%s %s (lrsa "
                 "eval grid %s)",
                 t->synthetic, (long long)t->n, (long long)length, (unsigned long long)seed, depth,
                 lrsa_chat_format_name(b.fmt), haystack->desc, c->path);
    } else {
        jsonl_ctx j = {&b, w, t->file};
        rc = each_record(t->file, t->n, add_record, &j, e);
        snprintf(source, sizeof source,
                 "jsonl %s (first %lld records, template %s; lrsa eval grid)", t->file,
                 (long long)t->n, lrsa_chat_format_name(b.fmt));
    }
    lrsa_dataset_meta meta = {lrsa_tokenizer_checksum(tok), lrsa_chat_format_name(b.fmt), source,
                              t->synthetic[0] ? t->synthetic : "jsonl",
                              t->synthetic[0] ? length : 0};
    if (rc == 0) rc = lrsa_dataset_writer_commit(w, path, &meta, e);
    lrsa_dataset_writer_free(w);
    if (rc != 0) return lrsa_err_prefix(e, "task '%s': ", t->name);
    return lrsa_dataset_open(out, path, e);
}

static int load_haystack(const lrsa_grid_config *c, lrsa_haystack *h, lrsa_err *e) {
    if (h->sents) return 0;
    if (lrsa_haystack_load(h, c->haystack[0] ? c->haystack : NULL, e) != 0) return -1;
    if (h->builtin)
        fprintf(stderr, "lrsa: note: no haystack essays found; the synthetic tasks use the "
                        "built-in filler (tools/fetch-haystack.sh fetches essays)\n");
    return 0;
}

int lrsa_grid_check_synthetic(const lrsa_grid_config *c, const lrsa_tokenizer *tok,
                              lrsa_haystack *haystack, lrsa_err *e) {
    lrsa_sample_builder b = {tok, lrsa_chat_detect(tok), NULL, 0};
    for (int i = 0; i < c->n_tasks; i++) {
        const lrsa_grid_task *t = &c->tasks[i];
        if (!t->synthetic[0]) continue;
        if (load_haystack(c, haystack, e) != 0) return -1;
        int64_t shortest = t->lengths[0];
        for (int k = 1; k < t->n_lengths; k++)
            if (t->lengths[k] < shortest) shortest = t->lengths[k];
        lrsa_synth_config sc = {t->synthetic, 1, shortest, &t->depths[0], 1, t->seed, 0};
        lrsa_dataset_writer *w = lrsa_dataset_writer_new();
        lrsa_err le;
        int rc = lrsa_synth_generate(&sc, &b, haystack, w, &le);
        lrsa_dataset_writer_free(w);
        if (rc != 0) return lrsa_errorf(e, "%s: task '%s', lengths: %s", c->path, t->name, le.msg);
    }
    return 0;
}
