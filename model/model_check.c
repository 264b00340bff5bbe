#include "model/model_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The layer index of "model.layers.<i>.<...>", or -1. */
static long layer_of(const char *name) {
    const char *p = "model.layers.";
    if (strncmp(name, p, strlen(p))) return -1;
    char *end;
    long i = strtol(name + strlen(p), &end, 10);
    return end != name + strlen(p) && *end == '.' ? i : -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int lrsa_model_check_extra(const lrsa_tensor_table *t, const lrsa_model_config *c,
                           const lrsa_st_set *set, const char *config_path, lrsa_err *e) {
    long max_layer = -1;
    const char *beyond = NULL, *beyond_file = NULL;
    for (int f = 0; f < set->n_files; f++)
        for (int i = 0; i < set->files[f].n; i++) {
            const lrsa_st_tensor *x = &set->files[f].tensors[i];
            long l = layer_of(x->name);
            if (l > max_layer) max_layer = l;
            if (l >= c->num_hidden_layers && !beyond) {
                beyond = x->name;
                beyond_file = set->files[f].path;
            }
        }
    if (beyond)
        return lrsa_errorf(e,
                           "%s: tensor \"%s\" belongs to layer %ld, but %s says "
                           "\"num_hidden_layers\": %d; the weights hold layers 0..%ld. Set "
                           "num_hidden_layers to %ld in config.json (or use the config.json "
                           "that came with these weights)",
                           beyond_file, beyond, layer_of(beyond), config_path, c->num_hidden_layers,
                           max_layer, max_layer + 1);
    for (int f = 0; f < set->n_files; f++)
        for (int i = 0; i < set->files[f].n; i++) {
            const lrsa_st_tensor *x = &set->files[f].tensors[i];
            if (lrsa_table_find(t, x->name) >= 0 || ends_with(x->name, ".rotary_emb.inv_freq"))
                continue;
            if (!strcmp(x->name, "lm_head.weight") && c->tie_word_embeddings) continue;
            const char *hint;
            if (strstr(x->name, ".self_attn.") && ends_with(x->name, ".bias"))
                hint = c->arch == LRSA_ARCH_LLAMA
                           ? "attention biases need \"attention_bias\": true in config.json"
                           : "this architecture has no such bias; check \"model_type\"";
            else if (strstr(x->name, ".mlp.") && ends_with(x->name, ".bias"))
                hint = "MLP biases (\"mlp_bias\": true) are not supported";
            else
                hint = "check \"model_type\" and the sizes in config.json, or remove the tensor";
            return lrsa_errorf(e,
                               "%s: tensor \"%s\" is not used by the %s model that %s describes, "
                               "so the weights and config.json disagree: %s",
                               set->files[f].path, x->name, c->model_type, config_path, hint);
        }
    return 0;
}

int lrsa_model_missing_tensor(const lrsa_model_config *c, const char *name, const char *dir,
                              const char *config_path, lrsa_err *e) {
    if (!strcmp(name, "lm_head.weight")) {
        if (!c->tie_word_embeddings_given)
            return lrsa_errorf(e,
                               "%s: tensor \"lm_head.weight\" is missing, and %s has no "
                               "\"tie_word_embeddings\" field, so Hugging Face's default (false: "
                               "a separate output matrix) applies. If this model's output layer "
                               "shares the input embedding, add \"tie_word_embeddings\": true to "
                               "config.json",
                               dir, config_path);
        return lrsa_errorf(e,
                           "%s: tensor \"lm_head.weight\" is missing, but %s sets "
                           "\"tie_word_embeddings\": false. If this model's output layer shares "
                           "the input embedding, set it to true",
                           dir, config_path);
    }
    lrsa_errorf(e, "%s: tensor \"%s\" is missing from the weights (config %s)", dir, name,
                config_path);
    return lrsa_config_note_defaults(c, e);
}
