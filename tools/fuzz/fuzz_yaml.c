/* libFuzzer target for the two YAML config readers: the training config (train/config.c) and
 * the evaluation grid's config (eval/run/grid_config.c), both through base/yaml_doc.c. Not part
 * of the build or CI; `tools/fuzz/run.sh yaml SECONDS` builds and runs it, with the shipped
 * configs as seeds.
 *
 * Each input is parsed as both. What must hold besides "no crash, no leak, no undefined
 * behaviour":
 *  - every error names the input ("fuzz.yaml") and says something;
 *  - a training config that parses and validates writes a resolved YAML that parses back to
 *    exactly the same values (the round trip `lrsa train` relies on for config.resolved.yaml);
 *  - a grid config that parses has its counts within their limits.
 * The grid's validation is not run: it opens the files the config names. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/grid_config.h"
#include "train/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const lrsa_err *e) {
    if (!strstr(e->msg, "fuzz.yaml") || strlen(e->msg) < 20) abort();
}

static void fuzz_train(const char *text, size_t size) {
    lrsa_train_config *c = malloc(sizeof *c), *d = malloc(sizeof *d);
    lrsa_err e;
    lrsa_train_config_defaults(c);
    if (lrsa_train_config_parse(c, text, size, "fuzz.yaml", &e) != 0) {
        check_error(&e);
    } else if (lrsa_train_config_validate(c, "fuzz.yaml", &e) != 0) {
        check_error(&e);
    } else {
        char *yaml = lrsa_train_config_to_yaml(c);
        lrsa_train_config_defaults(d);
        if (lrsa_train_config_parse(d, yaml, strlen(yaml), "resolved", &e) != 0) abort();
        if (memcmp(c, d, offsetof(lrsa_train_config, key_line)) != 0) abort();
        free(yaml);
    }
    free(c);
    free(d);
}

static void fuzz_grid(const char *text, size_t size) {
    lrsa_grid_config *g = malloc(sizeof *g);
    lrsa_err e;
    if (lrsa_grid_config_parse(g, text, size, "fuzz.yaml", &e) != 0) {
        check_error(&e);
    } else if (g->n_models > LRSA_GRID_MAX_MODELS || g->n_methods > LRSA_GRID_MAX_METHODS ||
               g->n_budgets > LRSA_GRID_MAX_BUDGETS || g->n_tasks > LRSA_GRID_MAX_TASKS ||
               g->n_protocols < 1 || g->n_protocols > 2 || g->n_prefill < 1 || g->n_prefill > 2) {
        abort();
    }
    free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* libyaml reads a length, but the readers keep C strings: give them one */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_train(text, size);
    fuzz_grid(text, size);
    free(text);
    return 0;
}
