#include "train/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/fileio.h"
#include "model/lora.h"
#include "base/yaml_doc.h"
#include "train/attn_mix.h"

/* KEY_LIST: a YAML list of names, stored as a string joined by commas.
 * KEY_RESUME: a bool that also takes "restart" (2: start over, deleting the checkpoints). */
typedef enum key_type { KEY_STR, KEY_INT, KEY_FLOAT, KEY_BOOL, KEY_LIST, KEY_RESUME } key_type;

typedef struct key_desc {
    const char *key; /* "section.name" or "name" */
    key_type type;
    size_t off, cap;     /* cap: string capacity */
    const char *def;     /* default, as YAML text ("" for an empty string) */
    const char *choices; /* "a|b|c" for enumerations, else NULL */
} key_desc;

#define STR(k, field, def, ch)                                                                     \
    {                                                                                              \
        k, KEY_STR, offsetof(lrsa_train_config, field), sizeof(((lrsa_train_config *)0)->field),   \
            def, ch                                                                                \
    }
#define NUM(k, type, field, def)                                                                   \
    { k, type, offsetof(lrsa_train_config, field), 0, def, NULL }

/* The one list of keys. configs/README.md documents each one. */
static const key_desc keys[] = {
    STR("model.path", model_path, "", NULL),
    STR("model.init", model_init, "pretrained", "pretrained|random"),
    STR("model.config", model_config, "", NULL),
    NUM("model.init_std", KEY_FLOAT, model_init_std, "0.02"),
    STR("model.dtype", model_dtype, "f32", "f32|bf16"),
    STR("data.train", data_train, "", NULL),
    STR("data.eval", data_eval, "", NULL),
    NUM("data.tokens_per_batch", KEY_INT, tokens_per_batch, "16384"),
    NUM("data.tokens_per_microbatch", KEY_INT, tokens_per_microbatch, "0"),
    NUM("data.max_len", KEY_INT, max_len, "0"),
    NUM("data.eval_samples", KEY_INT, eval_samples, "32"),
    STR("attention.mode", attn_mode, "lrsa", "dense|lrsa"),
    STR("attention.impl", attn_impl, "native", "native|cudnn"),
    NUM("attention.sink", KEY_INT, attn_sink, "16"),
    NUM("attention.lag", KEY_INT, attn_lag, "1024"),
    NUM("attention.keep", KEY_FLOAT, attn_keep, "0.5"),
    NUM("attention.value_weight", KEY_FLOAT, attn_value_weight, "1.0"),
    STR("attention.keep_mix", attn_keep_mix, "", NULL),
    NUM("attention.dense_mix", KEY_FLOAT, attn_dense_mix, "0"),
    NUM("attention.salience.weight", KEY_FLOAT, attn_salience_weight, "0"),
    NUM("optim.lr", KEY_FLOAT, lr, "2e-5"),
    NUM("optim.beta1", KEY_FLOAT, beta1, "0.9"),
    NUM("optim.beta2", KEY_FLOAT, beta2, "0.95"),
    NUM("optim.eps", KEY_FLOAT, eps, "1e-8"),
    NUM("optim.weight_decay", KEY_FLOAT, weight_decay, "0.0"),
    NUM("schedule.warmup_steps", KEY_INT, warmup_steps, "0"),
    STR("schedule.decay", decay, "cosine", "cosine|linear|constant"),
    NUM("schedule.min_lr_ratio", KEY_FLOAT, min_lr_ratio, "0.1"),
    NUM("schedule.max_steps", KEY_INT, max_steps, "0"),
    NUM("grad_accum", KEY_INT, grad_accum, "1"),
    NUM("clip_grad_norm", KEY_FLOAT, clip_grad_norm, "1.0"),
    NUM("recompute", KEY_BOOL, recompute, "false"),
    NUM("seed", KEY_INT, seed, "1234"),
    STR("run_dir", run_dir, "", NULL),
    NUM("log_every", KEY_INT, log_every, "1"),
    NUM("eval_every", KEY_INT, eval_every, "0"),
    NUM("ckpt_every", KEY_INT, ckpt_every, "0"),
    NUM("keep_ckpts", KEY_INT, keep_ckpts, "3"),
    NUM("max_bad_steps", KEY_INT, max_bad_steps, "5"),
    NUM("resume", KEY_RESUME, resume, "false"),
    STR("device", device, "cpu", "cpu|cuda"),
    NUM("deterministic_reduce", KEY_BOOL, deterministic_reduce, "true"),
    NUM("cuda_graphs", KEY_BOOL, cuda_graphs, "true"),
    NUM("lora.rank", KEY_INT, lora_rank, "0"),
    NUM("lora.alpha", KEY_FLOAT, lora_alpha, "16"),
    NUM("lora.dropout", KEY_FLOAT, lora_dropout, "0.0"),
    {"lora.targets", KEY_LIST, offsetof(lrsa_train_config, lora_targets),
     sizeof(((lrsa_train_config *)0)->lora_targets),
     "[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]", NULL},
    STR("lora.base_dtype", lora_base_dtype, "f32", "f32|bf16"),
    NUM("comm.overlap", KEY_BOOL, comm_overlap, "true"),
    NUM("comm.bucket_mb", KEY_FLOAT, comm_bucket_mb, "25"),
    STR("comm.reduce_dtype", comm_reduce_dtype, "fp32", "fp32|bf16"),
    NUM("comm.timeout_s", KEY_FLOAT, comm_timeout_s, "600"),
};
#define NKEYS ((int)(sizeof keys / sizeof keys[0]))
_Static_assert(NKEYS <= LRSA_TRAIN_MAX_KEYS, "raise LRSA_TRAIN_MAX_KEYS in train/config.h");

static const key_desc *find_key(const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].key, key)) return &keys[i];
    return NULL;
}

static int is_section(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < NKEYS; i++)
        if (!strncmp(keys[i].key, name, n) && keys[i].key[n] == '.') return 1;
    return 0;
}

static const char *type_name(key_type t) {
    switch (t) {
        case KEY_STR:
            return "a string";
        case KEY_INT:
            return "an integer";
        case KEY_FLOAT:
            return "a number";
        case KEY_BOOL:
            return "true or false";
        case KEY_LIST:
            return "a list of names";
        case KEY_RESUME:
            return "true, false or restart";
    }
    return "?";
}

/* Sets one key from its text; `where` is "FILE:LINE" or "command line". */
static int set_value(lrsa_train_config *c, const key_desc *k, const char *v, const char *where,
                     lrsa_err *e) {
    char *base = (char *)c + k->off;
    switch (k->type) {
        case KEY_STR: {
            if (k->choices) {
                /* match one of "a|b|c" exactly */
                const char *p = k->choices;
                int ok = 0;
                size_t n = strlen(v);
                while (*p) {
                    const char *bar = strchr(p, '|');
                    size_t len = bar ? (size_t)(bar - p) : strlen(p);
                    if (len == n && !strncmp(p, v, n)) ok = 1;
                    p += len + (bar ? 1 : 0);
                }
                if (!ok)
                    return lrsa_errorf(e, "%s: key '%s' has value '%s'; expected one of %s", where,
                                       k->key, v, k->choices);
            }
            if (strlen(v) >= k->cap)
                return lrsa_errorf(e, "%s: key '%s': value too long (at most %zu characters)",
                                   where, k->key, k->cap - 1);
            strcpy(base, v);
            return 0;
        }
        case KEY_INT: {
            char *end;
            errno = 0;
            long long x = strtoll(v, &end, 10);
            if (!*v || *end || errno)
                return lrsa_errorf(e, "%s: key '%s' must be %s, got '%s'", where, k->key,
                                   type_name(k->type), v);
            *(int64_t *)base = x;
            return 0;
        }
        case KEY_FLOAT: {
            char *end;
            errno = 0;
            double x = strtod(v, &end);
            if (!*v || *end || errno || !isfinite(x))
                return lrsa_errorf(e, "%s: key '%s' must be %s, got '%s'", where, k->key,
                                   type_name(k->type), v);
            *(double *)base = x;
            return 0;
        }
        case KEY_LIST: { /* "a, b", "[a, b]" (flow list on the command line) or the joined items */
            const char *p = v;
            while (*p == ' ' || *p == '[') p++;
            size_t n = 0;
            for (; *p && *p != ']'; p++) {
                if (*p == ' ') continue;
                if (n + 1 >= k->cap)
                    return lrsa_errorf(e, "%s: key '%s': list too long", where, k->key);
                base[n++] = *p;
            }
            base[n] = 0;
            return 0;
        }
        case KEY_BOOL:
        case KEY_RESUME: {
            int x;
            if (k->type == KEY_RESUME && !strcmp(v, "restart"))
                x = 2;
            else if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "yes") ||
                     !strcmp(v, "1"))
                x = 1;
            else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "no") ||
                     !strcmp(v, "0"))
                x = 0;
            else
                return lrsa_errorf(e, "%s: key '%s' must be %s, got '%s'", where, k->key,
                                   type_name(k->type), v);
            *(int *)base = x;
            return 0;
        }
    }
    return 0;
}

void lrsa_train_config_defaults(lrsa_train_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NKEYS; i++) {
        lrsa_err e;
        int rc = set_value(c, &keys[i], keys[i].def, "defaults", &e);
        LRSA_CHECK(rc == 0, "%s", e.msg);
    }
}

int lrsa_train_config_override(lrsa_train_config *c, const char *assignment, const char *where,
                               lrsa_err *e) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return lrsa_errorf(e,
                           "%s: '%s' is not an override; write section.key=value, e.g. "
                           "optim.lr=1e-4",
                           where, assignment);
    char key[256];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof key) return lrsa_errorf(e, "%s: key too long in '%s'", where, assignment);
    memcpy(key, assignment, n);
    key[n] = 0;
    const key_desc *k = find_key(key);
    if (!k)
        return lrsa_errorf(e, "%s: unknown key '%s' (see configs/README.md for every key)", where,
                           key);
    if (set_value(c, k, eq + 1, where, e)) return -1;
    c->key_line[k - keys] = -1;
    return 0;
}

/* Walks one mapping level; prefix is "" at the top and "section" inside a section. */
static int walk_mapping(lrsa_train_config *c, yaml_document_t *doc, yaml_node_t *map,
                        const char *prefix, const char *file, lrsa_err *e) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        int line = lrsa_yaml_line(kn);
        if (kn->type != YAML_SCALAR_NODE)
            return lrsa_errorf(e, "%s:%d: keys must be plain names", file, line);
        char name[256];
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "",
                 (const char *)kn->data.scalar.value);
        char where[LRSA_PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%d", file, line);
        if (vn->type == YAML_MAPPING_NODE) {
            /* sections, and sub-sections such as attention.salience */
            if (!is_section(name))
                return lrsa_errorf(e,
                                   "%s: unknown section '%s' (sections: model, data, attention, "
                                   "optim, schedule, lora; see configs/README.md)",
                                   where, name);
            if (walk_mapping(c, doc, vn, name, file, e)) return -1;
            continue;
        }
        const key_desc *k = find_key(name);
        if (!k) {
            if (!*prefix && is_section(name))
                return lrsa_errorf(e, "%s: '%s' is a section; give it keys (see configs/README.md)",
                                   where, name);
            return lrsa_errorf(e,
                               "%s: unknown key '%s' (check the spelling; every key is listed "
                               "in configs/README.md)",
                               where, name);
        }
        if (vn->type == YAML_SEQUENCE_NODE && k->type == KEY_LIST) {
            char joined[1024] = "";
            size_t n = 0;
            for (yaml_node_item_t *it = vn->data.sequence.items.start;
                 it < vn->data.sequence.items.top; it++) {
                yaml_node_t *item = yaml_document_get_node(doc, *it);
                if (item->type != YAML_SCALAR_NODE)
                    return lrsa_errorf(e, "%s: key '%s' must be a list of names", where, name);
                n += (size_t)snprintf(joined + n, n < sizeof joined ? sizeof joined - n : 0, "%s%s",
                                      n ? "," : "", (const char *)item->data.scalar.value);
            }
            if (set_value(c, k, joined, where, e)) return -1;
            continue;
        }
        if (vn->type != YAML_SCALAR_NODE)
            return lrsa_errorf(e, "%s: key '%s' must be %s, not a list", where, name,
                               type_name(k->type));
        if (set_value(c, k, (const char *)vn->data.scalar.value, where, e)) return -1;
        c->key_line[k - keys] = line;
    }
    return 0;
}

int lrsa_train_config_parse(lrsa_train_config *c, const char *text, size_t n, const char *where,
                            lrsa_err *e) {
    yaml_document_t doc;
    if (lrsa_yaml_load(&doc, text, n, where, e)) return -1;
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE)
        rc = walk_mapping(c, &doc, root, "", where, e);
    else if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
        rc = lrsa_errorf(e, "%s:%d: the config must be a mapping of keys (e.g. `seed: 1`)", where,
                         lrsa_yaml_line(root));
    yaml_document_delete(&doc);
    return rc;
}

int lrsa_train_config_load(lrsa_train_config *c, const char *path, lrsa_err *e) {
    size_t n;
    char *text = lrsa_read_file(path, &n, e);
    if (!text) return lrsa_err_prefix(e, "reading the training config: ");
    int rc = lrsa_train_config_parse(c, text, n, path, e);
    free(text);
    return rc;
}

/* Where a key's value came from, for value errors: "FILE:LINE", "command line" (an override),
 * or just FILE when the key kept its default. */
static const char *key_where(const lrsa_train_config *c, const char *key, const char *file,
                             char *buf, size_t cap) {
    const key_desc *k = find_key(key);
    LRSA_CHECK(k != NULL, "(%s is not in the key table)", key);
    const int line = c->key_line[k - keys];
    if (line > 0)
        snprintf(buf, cap, "%s:%d", file, line);
    else
        snprintf(buf, cap, "%s", line < 0 ? "command line" : file);
    return buf;
}

#define RANGE(cond, key, what)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return lrsa_errorf(e, "%s: key '%s' %s", key_where(c, key, where, at, sizeof at), key, \
                               what);                                                              \
    } while (0)

int lrsa_train_config_validate(const lrsa_train_config *c, const char *where, lrsa_err *e) {
    char at[LRSA_PATH_MAX + 32];
    int random = !strcmp(c->model_init, "random");
    if (random && !c->model_config[0])
        return lrsa_errorf(e,
                           "%s: model.init is random but model.config (a config.json) is "
                           "missing; add it",
                           where);
    if (!random && !c->model_path[0])
        return lrsa_errorf(e, "%s: required key model.path is missing (the model directory)",
                           where);
    if (!c->data_train[0])
        return lrsa_errorf(e,
                           "%s: required key data.train is missing (an HDF5 dataset from "
                           "`lrsa prepare`)",
                           where);
    if (!c->run_dir[0])
        return lrsa_errorf(e,
                           "%s: required key run_dir is missing (where checkpoints and "
                           "metrics go)",
                           where);
    RANGE(c->max_steps > 0, "schedule.max_steps", "is required and must be > 0");
    RANGE(c->tokens_per_batch > 0, "data.tokens_per_batch", "must be > 0");
    RANGE(c->tokens_per_microbatch >= 0, "data.tokens_per_microbatch", "must be >= 0");
    RANGE(c->max_len >= 0, "data.max_len", "must be >= 0 (0: no limit)");
    RANGE(c->eval_samples >= 0, "data.eval_samples", "must be >= 0");
    /* the upper bounds keep sink + 2*lag and the partition arithmetic far from int overflow */
    RANGE(c->attn_sink >= 0 && c->attn_sink <= (1 << 28), "attention.sink",
          "must be >= 0 (and at most 2^28)");
    RANGE(c->attn_lag > 0 && c->attn_lag <= (1 << 28), "attention.lag",
          "must be > 0 (and at most 2^28)");
    RANGE(c->attn_keep > 0 && c->attn_keep <= 1, "attention.keep", "must be in (0, 1]");
    RANGE(c->attn_value_weight >= 0, "attention.value_weight", "must be >= 0");
    RANGE(c->attn_dense_mix >= 0 && c->attn_dense_mix <= 1, "attention.dense_mix",
          "must be in [0, 1]");
    RANGE(c->attn_salience_weight >= 0 && c->attn_salience_weight <= 1e6,
          "attention.salience.weight",
          "must be a number >= 0 (0: off; the salience loss's weight, e.g. 0.1)");
    /* the salience term and the needle-kept rate read the CPU workspace (docs/TRAINING.md) */
    RANGE(c->attn_salience_weight == 0 || strcmp(c->device, "cuda"), "attention.salience.weight",
          "is set with device: cuda, and the salience loss is CPU-only for now: set device: cpu "
          "or attention.salience.weight: 0");
    /* cuDNN's fused attention: dense causal on the GPU, in builds that have cuDNN */
    int cudnn = !strcmp(c->attn_impl, "cudnn");
    RANGE(!cudnn || !strcmp(c->device, "cuda"), "attention.impl",
          "is cudnn with device: cpu, and cuDNN attention runs on the GPU only: set device: cuda "
          "or attention.impl: native");
    RANGE(!cudnn || !strcmp(c->attn_mode, "dense"), "attention.impl",
          "is cudnn with attention.mode: lrsa, and cuDNN runs dense causal attention only (it "
          "cannot express the gathered LRSA prefix): set attention.mode: dense or "
          "attention.impl: native");
#ifndef LRSA_HAVE_CUDNN
    RANGE(!cudnn, "attention.impl",
          "is cudnn, and this lrsa was built without cuDNN: rebuild with cuDNN (LRSA_CUDNN_ROOT "
          "or a cuDNN wheel, docs/CUDA.md) or set attention.impl: native");
#endif
    {
        float keeps[LRSA_ATTN_MIX_MAX];
        int n;
        char what[LRSA_PATH_MAX + 64];
        snprintf(what, sizeof what, "%s: attention.keep_mix",
                 key_where(c, "attention.keep_mix", where, at, sizeof at));
        if (lrsa_attn_mix_parse_keeps(c->attn_keep_mix, keeps, &n, what, e)) return -1;
    }
    RANGE(c->lr > 0, "optim.lr", "must be > 0");
    RANGE(c->beta1 >= 0 && c->beta1 < 1, "optim.beta1", "must be in [0, 1)");
    RANGE(c->beta2 >= 0 && c->beta2 < 1, "optim.beta2", "must be in [0, 1)");
    RANGE(c->eps > 0, "optim.eps", "must be > 0");
    RANGE(c->weight_decay >= 0, "optim.weight_decay", "must be >= 0");
    RANGE(c->warmup_steps >= 0, "schedule.warmup_steps", "must be >= 0");
    RANGE(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1, "schedule.min_lr_ratio",
          "must be in [0, 1]");
    RANGE(c->grad_accum >= 1, "grad_accum", "must be >= 1");
    RANGE(c->log_every >= 1, "log_every", "must be >= 1");
    RANGE(c->eval_every >= 0, "eval_every", "must be >= 0 (0: only at the end)");
    RANGE(c->ckpt_every >= 0, "ckpt_every", "must be >= 0 (0: only at the end)");
    RANGE(c->keep_ckpts >= 1, "keep_ckpts", "must be >= 1");
    RANGE(c->max_bad_steps >= 1, "max_bad_steps", "must be >= 1");
    RANGE(c->model_init_std > 0, "model.init_std", "must be > 0");
    RANGE(c->seed >= 0, "seed", "must be >= 0");
    RANGE(c->lora_rank >= 0, "lora.rank", "must be >= 0 (0: full fine-tuning)");
    if (c->lora_rank > 0) {
        RANGE(c->lora_alpha > 0, "lora.alpha", "must be > 0");
        RANGE(c->lora_dropout >= 0 && c->lora_dropout < 1, "lora.dropout", "must be in [0, 1)");
        unsigned mask;
        char what[LRSA_PATH_MAX + 32];
        snprintf(what, sizeof what, "%s: key 'lora.targets'", where);
        if (lrsa_lora_targets_parse(c->lora_targets, &mask, what, e)) return -1;
        /* the bf16 store is host memory widened on the CPU (model/base_bf16.h; docs/LORA.md) */
        RANGE(strcmp(c->lora_base_dtype, "bf16") || strcmp(c->device, "cuda"), "lora.base_dtype",
              "is bf16 with device: cuda, and a bf16-stored base (like lora) is CPU-only for now: "
              "set device: cpu");
        /* the GPU trainer holds the model's table only (train/train_gpu.h; docs/CUDA.md) */
        RANGE(strcmp(c->device, "cuda"), "lora.rank",
              "is set with device: cuda, and lora is CPU-only for now: set device: cpu or remove "
              "lora");
    }
    if (c->lora_rank == 0 && strcmp(c->lora_base_dtype, "f32"))
        return lrsa_errorf(e,
                           "%s: key 'lora.base_dtype' is %s, but it stores the frozen base of a "
                           "LoRA run and this run trains the full model (lora.rank 0, fp32 "
                           "weights); set lora.rank > 0 or remove lora.base_dtype",
                           key_where(c, "lora.base_dtype", where, at, sizeof at),
                           c->lora_base_dtype);
    RANGE(c->comm_bucket_mb > 0, "comm.bucket_mb", "must be > 0");
    RANGE(c->comm_timeout_s > 0, "comm.timeout_s", "must be > 0");
    if (c->tokens_per_microbatch > 0 && c->grad_accum != 1)
        return lrsa_errorf(e, "%s: set either grad_accum or data.tokens_per_microbatch, not both",
                           key_where(c, "grad_accum", where, at, sizeof at));
    return 0;
}

/* A double-quoted YAML string that reads back as exactly these bytes: quotes and backslashes
 * escaped, and so is every character a YAML reader would not give back as itself (control
 * characters, which libyaml refuses raw; line breaks, which it folds into a space: \n, NEL
 * U+0085 and the C1 range, U+2028, U+2029). Other UTF-8 is written as it is. */
static void write_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\x%02x", *p);
        } else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* U+0080..U+009F */
            fprintf(f, "\\x%02x", p[1]);
            p++;
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            fprintf(f, "\\u%04x", 0x2000 + (p[2] - 0x80));
            p += 2;
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* YAML needs quotes around strings that would read as another type or hold special
 * characters; quoting every string is always safe. */
static void write_value(FILE *f, const lrsa_train_config *c, const key_desc *k) {
    const char *base = (const char *)c + k->off;
    switch (k->type) {
        case KEY_STR:
            write_quoted(f, base);
            break;
        case KEY_INT:
            fprintf(f, "%lld", (long long)*(const int64_t *)base);
            break;
        case KEY_FLOAT:
            fprintf(f, "%.17g", *(const double *)base);
            break;
        case KEY_BOOL:
            fputs(*(const int *)base ? "true" : "false", f);
            break;
        case KEY_LIST: /* names need no quotes: [a, b] */
            fputc('[', f);
            for (const char *p = base; *p; p++)
                if (*p == ',')
                    fputs(", ", f);
                else
                    fputc(*p, f);
            fputc(']', f);
            break;
        case KEY_RESUME:
            fputs(*(const int *)base == 2 ? "restart" : *(const int *)base ? "true" : "false", f);
            break;
    }
}

void lrsa_train_config_write_yaml(const lrsa_train_config *c, FILE *f) {
    fprintf(f, "# resolved lrsa training config (every key, defaults filled in)\n");
    /* top-level keys first, then each section in table order */
    for (int i = 0; i < NKEYS; i++) {
        if (strchr(keys[i].key, '.')) continue;
        fprintf(f, "%s: ", keys[i].key);
        write_value(f, c, &keys[i]);
        fputc('\n', f);
    }
    char section[64] = "";
    for (int i = 0; i < NKEYS; i++) {
        const char *dot = strchr(keys[i].key, '.');
        if (!dot) continue;
        size_t n = (size_t)(dot - keys[i].key);
        if (strlen(section) != n || strncmp(section, keys[i].key, n)) {
            memcpy(section, keys[i].key, n);
            section[n] = 0;
            fprintf(f, "%s:\n", section);
        }
        fprintf(f, "  %s: ", dot + 1);
        write_value(f, c, &keys[i]);
        fputc('\n', f);
    }
}

char *lrsa_train_config_to_yaml(const lrsa_train_config *c) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    LRSA_CHECK(f != NULL);
    lrsa_train_config_write_yaml(c, f);
    fclose(f);
    return buf;
}

void lrsa_train_config_print_keys(FILE *f) {
    for (int i = 0; i < NKEYS; i++) {
        char t[64];
        snprintf(t, sizeof t, "%s", keys[i].choices ? keys[i].choices : type_name(keys[i].type));
        /* required keys have no usable default (validate says when they are missing) */
        const char *req[] = {"model.path", "data.train", "run_dir", "schedule.max_steps"};
        int required = 0;
        for (size_t r = 0; r < sizeof req / sizeof req[0]; r++)
            required |= !strcmp(keys[i].key, req[r]);
        fprintf(f, "  %-28s %-26s %s%s\n", keys[i].key, t, required ? "required" : "default: ",
                required
                    ? (!strcmp(keys[i].key, "model.path") ? " (unless model.init: random)" : "")
                    : (*keys[i].def ? keys[i].def : "(none)"));
    }
}
