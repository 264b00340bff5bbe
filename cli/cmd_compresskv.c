/* `lrsa compresskv`: CompressKV's offline steps for one model (kv-compression.md 1.1 and 1.3),
 * written to the per-model file the COMPRESSKV press reads (eval/press/compresskv.h).
 *
 * Step A (semantic retrieval heads): synthetic retrieval probes (the data/synthetic tasks: a
 * needle in haystack text, then the question, in the model's chat format). The prompt minus its
 * last token is prefilled; then up to --decode tokens are greedy-decoded (stopping at a newline
 * or the end of the turn). At every decode step whose token is one of the answer span's ids,
 * every query head adds the attention mass its query puts on the answer span in the context.
 * A probe counts when the response recalls more than half of the answer's words (ROUGE-1
 * recall > 0.5), or always with --all-probes; a head's score is the mean over counted probes.
 * Per layer the heads are ranked by score; the press uses the first --first-k.
 *
 * Step B (layer weights): each probe is prefilled whole, every layer keeps --error-budget rows
 * chosen by its SRHs from the last --window queries (the online rule), and the reference answer
 * (and the end-of-turn token) is teacher-forced over the full cache. For every answer token each
 * layer's attention output after o_proj is computed with the full and with the compressed rows;
 * e_l += ||o_comp - o_full|| / (||o_full|| + 1e-5). Per task the errors are L1-normalised over
 * layers, then averaged over tasks and L1-normalised again: the layer weights. */
#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "data/chat.h"
#include "data/haystack.h"
#include "data/synthetic/tasks.h"
#include "data/tokenizer.h"
#include "cli/cli_flags.h"
#include "eval/press/compresskv.h"
#include "eval/run/prefill.h"
#include "cli/commands.h"

static const char *HELP =
    "usage: lrsa compresskv --model DIR --out FILE.json [options]\n"
    "\n"
    "Finds the model's semantic retrieval heads (CompressKV step A) and its layer weights from\n"
    "per-layer eviction error (step B) on synthetic retrieval probes, and writes the per-model\n"
    "file the compresskv press reads (docs/EVAL.md).\n"
    "\n"
    "  --model DIR          model directory (config.json, safetensors, tokenizer.json)\n"
    "  --out FILE           output JSON (written atomically)\n"
    "  --tasks A,B          synthetic tasks (default passkey,niah-single)\n"
    "  --samples N          probes per task (default 4); depths spread over 0.05..0.95\n"
    "  --length T           tokens per probe (default 1024)\n"
    "  --decode N           greedy decode steps per probe in step A (default 32)\n"
    "  --first-k K          SRHs used per layer online (default 4, at most the query heads)\n"
    "  --error-budget B     rows kept per layer while measuring step B's error (default 32)\n"
    "  --window W           observation window of the online rule (default 8)\n"
    "  --seed S             probe seed (default 1)\n"
    "  --haystack DIR       haystack essays (default $LRSA_CACHE/haystack, else built-in)\n"
    "  --all-probes         count every probe in step A, answered correctly or not\n";

typedef struct options {
    const char *model, *out, *tasks, *haystack;
    long long samples, length, decode, first_k, error_budget, window, seed;
    int all_probes;
} options;

typedef struct probe {
    lrsa_ids ids;      /* the prompt, generation header included */
    int64_t r0, r1;    /* answer span rows in the context */
    lrsa_ids span_ids; /* the answer's token ids */
    lrsa_ids answer;   /* teacher-forced answer ids + end of turn (step B) */
    char answer_text[256];
    int task;
} probe;

static void probe_free(probe *p) {
    lrsa_ids_free(&p->ids);
    lrsa_ids_free(&p->span_ids);
    lrsa_ids_free(&p->answer);
}

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = lrsa_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

static int64_t find_sub(const int32_t *a, int64_t n, const int32_t *b, int64_t m, int64_t from) {
    for (int64_t i = from; i + m <= n; i++)
        if (memcmp(a + i, b, (size_t)m * sizeof(int32_t)) == 0) return i;
    return -1;
}

/* One probe: returns 0, 1 when the answer could not be located as tokens (skipped), -1. */
static int build_probe(const lrsa_tokenizer *tok, lrsa_chat_format fmt, const lrsa_haystack *h,
                       const char *task, int task_idx, lrsa_rng *r, double depth, int64_t length,
                       probe *p, lrsa_err *e) {
    memset(p, 0, sizeof(*p));
    p->task = task_idx;
    lrsa_synth_item it;
    lrsa_synth_task_make(task, r, depth, &it);
    snprintf(p->answer_text, sizeof p->answer_text, "%s", it.answer);
    /* haystack sentences until the estimated prompt reaches `length` tokens */
    lrsa_ids tmp = {0};
    sbuf fixed = {0};
    sb_add(&fixed, it.instruction);
    sb_add(&fixed, it.question);
    for (int i = 0; i < it.n_needles; i++) sb_add(&fixed, it.needles[i]);
    if (lrsa_tokenizer_encode(tok, fixed.s, fixed.n, &tmp, e)) goto fail;
    int64_t budget = length - tmp.n - 48; /* chat template and separators */
    free(fixed.s);
    if (budget < 16) {
        lrsa_ids_free(&tmp);
        return lrsa_errorf(e,
                           "compresskv: --length %lld is too short for the %s probes; use "
                           "at least %lld",
                           (long long)length, task, (long long)(length - budget + 16));
    }
    int64_t start = (int64_t)lrsa_rng_below(r, (uint64_t)h->n), used = 0;
    sbuf ctx = {0};
    int next = 0;
    for (int64_t j = 0; used < budget; j++) {
        while (next < it.n_needles && used >= it.depth[next] * (double)budget) {
            sb_add(&ctx, " ");
            sb_add(&ctx, it.needles[next++]);
        }
        const char *sent = h->sents[(start + j) % h->n];
        tmp.n = 0;
        if (lrsa_tokenizer_encode(tok, sent, strlen(sent), &tmp, e)) goto fail_ctx;
        if (used + tmp.n > budget) break;
        sb_add(&ctx, " ");
        sb_add(&ctx, sent);
        used += tmp.n + 1;
    }
    while (next < it.n_needles) {
        sb_add(&ctx, " ");
        sb_add(&ctx, it.needles[next++]);
    }
    sbuf user = {0};
    sb_add(&user, it.instruction);
    sb_add(&user, "\n\n");
    sb_add(&user, ctx.s + 1);
    sb_add(&user, "\n\n");
    sb_add(&user, it.question);
    free(ctx.s);
    lrsa_chat_msg msg = {"user", user.s};
    int rc = lrsa_chat_build(tok, fmt, &msg, 1, 1, &p->ids, NULL, e);
    free(user.s);
    if (rc) goto fail;
    /* the answer span: first to last occurrence of the answer's tokens in the prompt, as a
     * word (" 12345") or bare */
    char spaced[300];
    snprintf(spaced, sizeof spaced, " %s", it.answer);
    const char *forms[2] = {spaced, it.answer};
    p->r0 = -1;
    for (int f = 0; f < 2 && p->r0 < 0; f++) {
        p->span_ids.n = 0;
        if (lrsa_tokenizer_encode(tok, forms[f], strlen(forms[f]), &p->span_ids, e)) goto fail;
        const int64_t m = p->span_ids.n;
        for (int64_t at = find_sub(p->ids.v, p->ids.n, p->span_ids.v, m, 0); at >= 0;
             at = find_sub(p->ids.v, p->ids.n, p->span_ids.v, m, at + 1)) {
            if (p->r0 < 0) p->r0 = at;
            p->r1 = at + m;
        }
    }
    if (lrsa_tokenizer_encode(tok, it.answer, strlen(it.answer), &p->answer, e)) goto fail;
    int32_t stop[4];
    if (lrsa_chat_stop_ids(tok, fmt, stop, 4) > 0) lrsa_ids_push(&p->answer, stop[0]);
    lrsa_ids_free(&tmp);
    return p->r0 < 0 ? 1 : 0;
fail_ctx:
    free(ctx.s);
fail:
    lrsa_ids_free(&tmp);
    probe_free(p);
    return -1;
}

/* Lower-cased alphanumeric words of s into words (NUL-separated), returns the count. */
static int split_words(const char *s, char words[][64], int cap) {
    int n = 0;
    while (*s && n < cap) {
        while (*s && !isalnum((unsigned char)*s)) s++;
        int k = 0;
        while (*s && isalnum((unsigned char)*s)) {
            if (k < 63) words[n][k++] = (char)tolower((unsigned char)*s);
            s++;
        }
        if (k > 0) words[n++][k] = 0;
    }
    return n;
}

/* ROUGE-1 recall of the response against the reference (unigram overlap / reference words). */
static double rouge1_recall(const char *response, const char *reference) {
    static const int CAP = 128;
    char(*ref)[64] = lrsa_malloc(CAP * 64), (*res)[64] = lrsa_malloc(CAP * 64);
    const int nr = split_words(reference, ref, CAP), ns = split_words(response, res, CAP);
    uint8_t used[128] = {0};
    int hit = 0;
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < ns; j++)
            if (!used[j] && strcmp(ref[i], res[j]) == 0) {
                used[j] = 1;
                hit++;
                break;
            }
    free(ref);
    free(res);
    return nr > 0 ? (double)hit / nr : 0.0;
}

/* ---- step A ---- */
typedef struct mass_obs {
    int n_q_heads;
    int64_t r0, r1;
    double *mass; /* [L * Hq] of the current step */
} mass_obs;

static void observe_mass(void *user, const lrsa_kv_cache *c, int layer, const float *q,
                         int64_t q_stride, int n_q_heads, const int32_t *pos, int64_t N) {
    (void)pos;
    mass_obs *o = user;
    lrsa_srh_step_mass(c, layer, q + (N - 1) * q_stride, n_q_heads, o->r0, o->r1,
                       o->mass + (int64_t)layer * n_q_heads);
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Adds the probe's decode-step masses to acc[L*Hq]; *ok = the response recalls the answer. */
static int step_a_probe(const lrsa_model *m, const lrsa_tokenizer *tok, lrsa_chat_format fmt,
                        const probe *p, int64_t decode, double *acc, int *ok, char *response,
                        size_t cap, lrsa_err *e) {
    const lrsa_model_config *cfg = &m->cfg;
    const int L = cfg->num_hidden_layers, Hq = cfg->num_attention_heads, V = cfg->vocab_size;
    lrsa_kv_cache c;
    if (lrsa_kv_cache_init(&c, L, cfg->num_key_value_heads, cfg->head_dim, NULL, e)) return -1;
    const int64_t n = p->ids.n;
    if (n > 1) lrsa_cached_forward_observed(m, &c, p->ids.v, n - 1, NULL, 0, NULL);
    double *mass = lrsa_malloc((size_t)L * Hq * sizeof(double));
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    mass_obs mo = {Hq, p->r0, p->r1, mass};
    lrsa_layer_observer obs = {observe_mass, &mo};
    int32_t stop[4];
    const int n_stop = lrsa_chat_stop_ids(tok, fmt, stop, 4);
    int32_t x = p->ids.v[n - 1];
    size_t w = 0;
    response[0] = 0;
    for (int64_t t = 0; t < decode; t++) {
        lrsa_cached_forward_observed(m, &c, &x, 1, logits, 0, &obs);
        const int32_t y = argmax(logits, V);
        int is_stop = 0;
        for (int i = 0; i < n_stop; i++) is_stop |= y == stop[i];
        if (is_stop) break;
        int in_span = 0;
        for (int64_t i = 0; i < p->span_ids.n; i++) in_span |= y == p->span_ids.v[i];
        if (in_span)
            for (int64_t i = 0; i < (int64_t)L * Hq; i++) acc[i] += mass[i];
        char *piece = lrsa_tokenizer_decode(tok, &y, 1, 1);
        const int nl = strchr(piece, '\n') != NULL;
        if (!(nl && w == 0)) {
            size_t k = strlen(piece);
            if (w + k + 1 < cap) {
                memcpy(response + w, piece, k + 1);
                w += k;
            }
        }
        free(piece);
        if (nl && w > 0) break;
        x = y;
    }
    *ok = rouge1_recall(response, p->answer_text) > 0.5;
    free(mass);
    free(logits);
    lrsa_kv_cache_free(&c);
    return 0;
}

/* ---- step B ---- */
typedef struct err_obs {
    const lrsa_model *m;
    int64_t n_prompt, window;
    float **wq;           /* [L] -> [window, Hq, D] the prompt's last queries */
    uint8_t **kept;       /* [L] -> [n_prompt] rows kept by the compressed layer */
    double *err;          /* [L] accumulated relative error */
    float *att_f, *att_c; /* [Hq * D] */
    float *o_f, *o_c;     /* [C] */
    float *p;             /* [rows] */
} err_obs;

static void observe_window(void *user, const lrsa_kv_cache *c, int layer, const float *q,
                           int64_t q_stride, int n_q_heads, const int32_t *pos, int64_t N) {
    (void)c;
    (void)pos;
    err_obs *o = user;
    const int D = c->head_dim;
    for (int64_t j = 0; j < o->window; j++)
        memcpy(o->wq[layer] + j * n_q_heads * D, q + (N - o->window + j) * q_stride,
               (size_t)n_q_heads * D * sizeof(float));
}

/* Attention output of query q (one head, D) over the rows of kh where use(row) holds, rows
 * [0, vis). */
static void attend(const lrsa_kv_head *kh, int D, const float *q, int64_t vis, const uint8_t *kept,
                   int64_t n_prompt, float *p, float *out) {
    const float scale = 1.0f / sqrtf((float)D);
    float mx = -INFINITY;
    for (int64_t t = 0; t < vis; t++) {
        if (kept && t < n_prompt && !kept[t]) {
            p[t] = -INFINITY;
            continue;
        }
        p[t] = scale * cblas_sdot(D, q, 1, kh->k + t * D, 1);
        if (p[t] > mx) mx = p[t];
    }
    double sum = 0.0;
    for (int64_t t = 0; t < vis; t++) sum += (p[t] = p[t] == -INFINITY ? 0.0f : expf(p[t] - mx));
    memset(out, 0, (size_t)D * sizeof(float));
    for (int64_t t = 0; t < vis; t++)
        if (p[t] > 0.0f) cblas_saxpy(D, (float)(p[t] / sum), kh->v + t * D, 1, out, 1);
}

static void observe_error(void *user, const lrsa_kv_cache *c, int layer, const float *q,
                          int64_t q_stride, int n_q_heads, const int32_t *pos, int64_t N) {
    (void)pos;
    err_obs *o = user;
    const lrsa_model *m = o->m;
    const int D = c->head_dim, Hkv = c->n_kv_heads, G = n_q_heads / Hkv;
    const int C = m->cfg.hidden_size, HD = n_q_heads * D;
    const float *W = lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, m->layers[layer].o);
    const float *bias = m->layers[layer].o_bias >= 0
                            ? lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, m->layers[layer].o_bias)
                            : NULL;
    for (int64_t j = 0; j < N; j++) {
        for (int h = 0; h < n_q_heads; h++) {
            const lrsa_kv_head *kh = &c->heads[(int64_t)layer * Hkv + h / G];
            const int64_t vis = kh->len - N + j + 1;
            attend(kh, D, q + j * q_stride + (int64_t)h * D, vis, NULL, 0, o->p,
                   o->att_f + (int64_t)h * D);
            attend(kh, D, q + j * q_stride + (int64_t)h * D, vis, o->kept[layer], o->n_prompt, o->p,
                   o->att_c + (int64_t)h * D);
        }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, C, HD, 1.0f, W, HD, o->att_f, 1, 0.0f, o->o_f, 1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, C, HD, 1.0f, W, HD, o->att_c, 1, 0.0f, o->o_c, 1);
        double dn = 0.0, fn = 0.0;
        for (int i = 0; i < C; i++) {
            const double f = o->o_f[i] + (bias ? bias[i] : 0.0f), d = o->o_c[i] - o->o_f[i];
            dn += d * d;
            fn += f * f;
        }
        o->err[layer] += sqrt(dn) / (sqrt(fn) + 1e-5);
    }
}

/* Adds the probe's per-layer relative errors to err[L]. */
static int step_b_probe(const lrsa_model *m, const probe *p, const lrsa_compresskv_file *f,
                        int64_t window, int64_t budget, double *err, lrsa_err *e) {
    const lrsa_model_config *cfg = &m->cfg;
    const int L = cfg->num_hidden_layers, Hq = cfg->num_attention_heads, D = cfg->head_dim;
    const int64_t n = p->ids.n;
    if (window > n) window = n;
    lrsa_kv_cache c;
    if (lrsa_kv_cache_init(&c, L, cfg->num_key_value_heads, D, NULL, e)) return -1;
    err_obs o = {.m = m, .n_prompt = n, .window = window, .err = err};
    o.wq = lrsa_malloc((size_t)L * sizeof(float *));
    o.kept = lrsa_malloc((size_t)L * sizeof(uint8_t *));
    for (int l = 0; l < L; l++) {
        o.wq[l] = lrsa_malloc((size_t)(window > 0 ? window : 1) * Hq * D * sizeof(float));
        o.kept[l] = lrsa_calloc((size_t)n, 1);
    }
    lrsa_layer_observer win = {observe_window, &o};
    lrsa_cached_forward_observed(m, &c, p->ids.v, n, NULL, 0, &win);
    float *score = lrsa_malloc((size_t)n * sizeof(float));
    int64_t *idx = lrsa_malloc((size_t)n * sizeof(int64_t));
    for (int l = 0; l < L; l++) {
        lrsa_compresskv_layer_scores(&c, l, o.wq[l], window, Hq, f->heads + (int64_t)l * Hq,
                                     f->first_k, 5, LRSA_POOL_AVG, 0, score);
        /* keep the `budget` best rows (the window's +inf first); ties: lower row */
        for (int64_t t = 0; t < n; t++) idx[t] = t;
        const int64_t k = budget < n ? budget : n;
        for (int64_t i = 0; i < k; i++) { /* partial selection sort: budget is small */
            int64_t best = i;
            for (int64_t t = i + 1; t < n; t++)
                if (score[idx[t]] > score[idx[best]] ||
                    (score[idx[t]] == score[idx[best]] && idx[t] < idx[best]))
                    best = t;
            const int64_t tmp = idx[i];
            idx[i] = idx[best];
            idx[best] = tmp;
            o.kept[l][idx[i]] = 1;
        }
    }
    free(score);
    free(idx);
    o.att_f = lrsa_malloc((size_t)Hq * D * sizeof(float));
    o.att_c = lrsa_malloc((size_t)Hq * D * sizeof(float));
    o.o_f = lrsa_malloc((size_t)cfg->hidden_size * sizeof(float));
    o.o_c = lrsa_malloc((size_t)cfg->hidden_size * sizeof(float));
    o.p = lrsa_malloc((size_t)(n + p->answer.n) * sizeof(float));
    lrsa_layer_observer eo = {observe_error, &o};
    lrsa_cached_forward_observed(m, &c, p->answer.v, p->answer.n, NULL, 0, &eo);
    for (int l = 0; l < L; l++) {
        free(o.wq[l]);
        free(o.kept[l]);
    }
    free(o.wq);
    free(o.kept);
    free(o.att_f);
    free(o.att_c);
    free(o.o_f);
    free(o.o_c);
    free(o.p);
    lrsa_kv_cache_free(&c);
    return 0;
}

static int parse_options(int argc, char **argv, options *o, lrsa_err *e) {
    *o = (options){.tasks = "passkey,niah-single",
                   .samples = 4,
                   .length = 1024,
                   .decode = 32,
                   .first_k = 4,
                   .error_budget = 32,
                   .window = 8,
                   .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = NULL;
        struct {
            const char *name;
            long long lo, hi, *dst;
        } ints[] = {{"--samples", 1, 100000, &o->samples},
                    {"--length", 64, 1 << 24, &o->length},
                    {"--decode", 1, 4096, &o->decode},
                    {"--first-k", 1, 1 << 16, &o->first_k},
                    {"--error-budget", 1, 1 << 24, &o->error_budget},
                    {"--window", 1, 1 << 16, &o->window},
                    {"--seed", 0, (1LL << 62), &o->seed}};
        int done = 0;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++)
            if (strcmp(f, ints[k].name) == 0) {
                if (lrsa_flag_value(argc, argv, &i, &v, e) ||
                    lrsa_flag_int(f, v, ints[k].lo, ints[k].hi, ints[k].dst, e))
                    return -1;
                done = 1;
            }
        if (done) continue;
        if (strcmp(f, "--model") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &o->model, e)) return -1;
        } else if (strcmp(f, "--out") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &o->out, e)) return -1;
        } else if (strcmp(f, "--tasks") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &o->tasks, e)) return -1;
        } else if (strcmp(f, "--haystack") == 0) {
            if (lrsa_flag_value(argc, argv, &i, &o->haystack, e)) return -1;
        } else if (strcmp(f, "--all-probes") == 0) {
            o->all_probes = 1;
        } else {
            return lrsa_errorf(e, "compresskv: unknown argument '%s' (see lrsa compresskv --help)",
                               f);
        }
    }
    if (!o->model) return lrsa_errorf(e, "compresskv: --model DIR is required");
    if (!o->out) return lrsa_errorf(e, "compresskv: --out FILE.json is required");
    if (o->error_budget <= o->window)
        return lrsa_errorf(e, "compresskv: --error-budget %lld must exceed --window %lld",
                           o->error_budget, o->window);
    return 0;
}

#define MAX_TASKS 16

static int run(int argc, char **argv, lrsa_err *e) {
    options o;
    if (parse_options(argc, argv, &o, e)) return -1;
    char task_buf[512], *tasks[MAX_TASKS];
    int n_tasks = 0;
    snprintf(task_buf, sizeof task_buf, "%s", o.tasks);
    for (char *tk = strtok(task_buf, ","); tk; tk = strtok(NULL, ",")) {
        if (!lrsa_synth_task_known(tk))
            return lrsa_errorf(e, "compresskv: --tasks: unknown task '%s' (known: %s)", tk,
                               lrsa_synth_task_names());
        if (n_tasks == MAX_TASKS)
            return lrsa_errorf(e, "compresskv: --tasks: at most %d tasks", MAX_TASKS);
        tasks[n_tasks++] = tk;
    }
    if (n_tasks == 0) return lrsa_errorf(e, "compresskv: --tasks is empty");
    lrsa_model m;
    if (lrsa_model_load(&m, o.model, e)) return -1;
    const lrsa_model_config *cfg = &m.cfg;
    const int L = cfg->num_hidden_layers, Hq = cfg->num_attention_heads;
    lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(o.model, e);
    if (!tok) {
        lrsa_model_free(&m);
        return -1;
    }
    const lrsa_chat_format fmt = lrsa_chat_detect(tok);
    lrsa_haystack hay;
    int rc = lrsa_haystack_load(&hay, o.haystack, e);
    if (rc) {
        lrsa_tokenizer_free(tok);
        lrsa_model_free(&m);
        return -1;
    }
    const int64_t n_probes = o.samples * n_tasks;
    probe *probes = lrsa_calloc((size_t)n_probes, sizeof(probe));
    int64_t n_built = 0, n_skipped = 0;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, (uint64_t)o.seed);
    for (int t = 0; t < n_tasks && rc == 0; t++)
        for (long long s = 0; s < o.samples && rc == 0; s++) {
            const double depth = o.samples > 1 ? 0.05 + 0.9 * (double)s / (o.samples - 1) : 0.5;
            int r = build_probe(tok, fmt, &hay, tasks[t], t, &rng, depth, o.length,
                                &probes[n_built], e);
            if (r < 0)
                rc = -1;
            else if (r == 1) {
                probe_free(&probes[n_built]);
                n_skipped++;
            } else
                n_built++;
        }
    lrsa_compresskv_file f = {0};
    double *acc = lrsa_calloc((size_t)L * Hq, sizeof(double));
    double *err = lrsa_calloc((size_t)n_tasks * L, sizeof(double));
    int64_t n_ok = 0, n_used = 0;
    const double t0 = lrsa_now();
    if (rc == 0 && n_built == 0)
        rc = lrsa_errorf(e, "compresskv: no probe could be built (the answers were not found as "
                            "tokens in the prompts); try other --tasks");
    /* step A */
    double *one = lrsa_calloc((size_t)L * Hq, sizeof(double));
    for (int64_t i = 0; i < n_built && rc == 0; i++) {
        char response[512];
        int ok = 0;
        memset(one, 0, (size_t)L * Hq * sizeof(double));
        rc = step_a_probe(&m, tok, fmt, &probes[i], o.decode, one, &ok, response, sizeof response,
                          e);
        n_ok += ok;
        if (ok || o.all_probes) {
            n_used++;
            for (int64_t j = 0; j < (int64_t)L * Hq; j++) acc[j] += one[j];
        }
        fprintf(stderr, "compresskv: step A probe %lld/%lld (%s, %lld tokens): %s [%s]\n",
                (long long)i + 1, (long long)n_built, tasks[probes[i].task],
                (long long)probes[i].ids.n, ok ? "answered" : "missed", response);
    }
    free(one);
    if (rc == 0 && n_used == 0)
        rc = lrsa_errorf(e,
                         "compresskv: none of the %lld probes was answered (ROUGE-1 recall > "
                         "0.5), so no head can be scored; use a shorter --length, other --tasks, "
                         "or --all-probes",
                         (long long)n_built);
    if (rc == 0) {
        snprintf(f.name, sizeof f.name, "%s", o.model);
        snprintf(f.model_type, sizeof f.model_type, "%s", cfg->model_type);
        f.n_layers = L;
        f.n_q_heads = Hq;
        f.n_kv_heads = cfg->num_key_value_heads;
        f.head_dim = cfg->head_dim;
        f.hidden_size = cfg->hidden_size;
        f.vocab_size = cfg->vocab_size;
        f.first_k = o.first_k < Hq ? (int)o.first_k : Hq;
        f.heads = lrsa_malloc((size_t)L * Hq * sizeof(int32_t));
        f.head_scores = lrsa_malloc((size_t)L * Hq * sizeof(double));
        for (int64_t j = 0; j < (int64_t)L * Hq; j++) f.head_scores[j] = acc[j] / n_used;
        lrsa_srh_rank_heads(f.head_scores, L, Hq, f.heads);
        f.layer_weight = lrsa_malloc((size_t)L * sizeof(double));
    }
    /* step B */
    for (int64_t i = 0; i < n_built && rc == 0; i++) {
        rc = step_b_probe(&m, &probes[i], &f, o.window, o.error_budget,
                          err + (int64_t)probes[i].task * L, e);
        fprintf(stderr, "compresskv: step B probe %lld/%lld\n", (long long)i + 1,
                (long long)n_built);
    }
    if (rc == 0) {
        for (int l = 0; l < L; l++) f.layer_weight[l] = 0.0;
        int n_norm = 0;
        for (int t = 0; t < n_tasks; t++) {
            double s = 0.0;
            for (int l = 0; l < L; l++) s += err[(int64_t)t * L + l];
            if (!(s > 0)) continue;
            n_norm++;
            for (int l = 0; l < L; l++) f.layer_weight[l] += err[(int64_t)t * L + l] / s;
        }
        double s = 0.0;
        for (int l = 0; l < L; l++) s += f.layer_weight[l];
        for (int l = 0; l < L; l++) f.layer_weight[l] = s > 0 ? f.layer_weight[l] / s : 1.0 / L;
        char probes_json[1024];
        snprintf(probes_json, sizeof probes_json,
                 "{\"tasks\": \"%s\", \"samples_per_task\": %lld, \"length\": %lld, "
                 "\"decode\": %lld, \"seed\": %lld, \"built\": %lld, \"skipped\": %lld, "
                 "\"answered\": %lld, \"counted\": %lld, \"all_probes\": %s, "
                 "\"error_budget\": %lld, \"window\": %lld, \"haystack\": \"%s\", "
                 "\"seconds\": %.1f}",
                 o.tasks, o.samples, o.length, o.decode, o.seed, (long long)n_built,
                 (long long)n_skipped, (long long)n_ok, (long long)n_used,
                 o.all_probes ? "true" : "false", o.error_budget, o.window,
                 hay.builtin ? "built-in" : "essays", lrsa_now() - t0);
        f.probes_json = lrsa_strdup(probes_json);
        rc = lrsa_compresskv_save(&f, o.out, e);
        if (rc == 0)
            printf("compresskv: %s: %lld probes (%lld answered, %lld counted), %d layers x %d "
                   "heads -> %s\n",
                   o.model, (long long)n_built, (long long)n_ok, (long long)n_used, L, Hq, o.out);
    }
    lrsa_compresskv_free(&f);
    free(acc);
    free(err);
    for (int64_t i = 0; i < n_built; i++) probe_free(&probes[i]);
    free(probes);
    lrsa_haystack_free(&hay);
    lrsa_tokenizer_free(tok);
    lrsa_model_free(&m);
    return rc;
}

int lrsa_cmd_compresskv(int argc, char **argv) {
    return lrsa_cmd_main(argc, argv, HELP, run);
}
