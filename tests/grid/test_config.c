/* The grid config: parsing, defaults, overrides, and start-up validation errors that name the
 * key, the line and the fix; `lrsa eval BAD.yaml` exits non-zero and writes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/run/eval_dataset.h"
#include "eval/run/grid_config.h"
#include "test_util.h"

static char dir[1024], model_dir[1200];

static void write_text(const char *path, const char *text) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_write_file_atomic(path, text, strlen(text), &e), 0);
}

/* A fake model directory: validation only checks that its files exist. */
static void setup_dirs(void) {
    tu_tmpdir(dir, sizeof dir, "grid_config");
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_mkdirs(model_dir, &e), 0);
    char p[1400];
    snprintf(p, sizeof p, "%s/config.json", model_dir);
    write_text(p, "{}");
    snprintf(p, sizeof p, "%s/tokenizer.json", model_dir);
    write_text(p, "{}");
}

static int parse(lrsa_grid_config *c, const char *body, lrsa_err *e) {
    char text[8192];
    snprintf(text, sizeof text, "run_dir: %s/run\nmodels:\n  - {name: base, path: %s}\n%s", dir,
             model_dir, body);
    int rc = lrsa_grid_config_parse(c, text, strlen(text), "grid.yaml", e);
    return rc == 0 ? lrsa_grid_config_validate(c, e) : rc;
}

static const char GOOD[] = "methods:\n"
                           "  - none\n"
                           "  - {name: snapkv, window: 32, kernel: 7, pool: max}\n"
                           "  - {name: lagkv, sink: 4, lag: 64, label: lagkv-small}\n"
                           "  - {name: pyramidkv, beta: 10}\n"
                           "budgets: {keep: [1, 0.5, 1/8]}\n"
                           "tasks:\n"
                           "  - {synthetic: passkey, lengths: [512, 1024], n: 3}\n"
                           "  - {synthetic: vartrack, lengths: [512], depths: [0.1, 0.9], "
                           "seed: 5, name: vt}\n"
                           "protocols: [query-agnostic, query-aware]\n"
                           "max_new: 20\n";

static void test_parse_good(void **state) {
    (void)state;
    lrsa_grid_config *c = malloc(sizeof *c);
    lrsa_err e = {{0}};
    if (parse(c, GOOD, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(c->n_models, 1);
    assert_string_equal(c->models[0].name, "base");
    assert_int_equal(c->n_methods, 4);
    assert_int_equal(c->methods[0].spec.method, LRSA_PRESS_NONE);
    assert_int_equal(c->methods[1].spec.method, LRSA_PRESS_SNAPKV);
    assert_int_equal(c->methods[1].spec.window, 32);
    assert_int_equal(c->methods[1].spec.kernel, 7);
    assert_int_equal(c->methods[1].spec.pool, LRSA_POOL_MAX);
    assert_string_equal(c->methods[2].label, "lagkv-small");
    assert_int_equal(c->methods[2].spec.lagkv.sink, 4);
    assert_int_equal(c->methods[2].spec.lagkv.lag, 64);
    assert_true(c->methods[3].spec.pyramid_beta == 10.0f);
    assert_int_equal(c->n_budgets, 3);
    assert_true(c->budgets[2].keep == 0.125 && c->budgets[2].tokens == 0);
    assert_int_equal(c->n_tasks, 2);
    assert_int_equal(c->tasks[0].n_lengths, 2);
    assert_int_equal(c->tasks[0].n_depths, 1); /* default depth 0.5 */
    assert_true(c->tasks[0].depths[0] == 0.5);
    assert_int_equal(c->tasks[0].n, 3);
    assert_string_equal(c->tasks[0].answer_sep, ", ");
    assert_string_equal(c->tasks[1].name, "vt");
    assert_int_equal((int)c->tasks[1].seed, 5);
    assert_int_equal(c->n_protocols, 2);
    assert_int_equal(c->protocols[0], LRSA_PROTOCOL_AGNOSTIC);
    assert_int_equal(c->protocols[1], LRSA_PROTOCOL_AWARE);
    assert_int_equal(c->max_new, 20);
    assert_int_equal(c->batch, LRSA_EVAL_BATCH); /* not given: the default */
    /* a method's budget goes where the press reads it: LagKV's partition keep */
    lrsa_press_spec s;
    lrsa_grid_spec_at(&c->methods[2], &c->budgets[1], LRSA_PREFILL_ONESHOT, &s);
    assert_true(s.lagkv.keep == 0.5f && s.prefill == LRSA_PREFILL_ONESHOT);
    lrsa_grid_spec_at(&c->methods[1], &c->budgets[2], LRSA_PREFILL_CHUNKED, &s);
    assert_true(s.keep == 0.125 && s.tokens_per_layer == 0 && s.window == 32);

    /* overrides */
    assert_int_equal(lrsa_grid_config_override(c, "budgets.keep=[1, 0.25]", &e), 0);
    assert_int_equal(c->n_budgets, 2);
    assert_true(c->budgets[1].keep == 0.25);
    assert_int_equal(lrsa_grid_config_override(c, "budgets.tokens_per_layer=64", &e), 0);
    assert_int_equal(c->n_budgets, 3);
    assert_true(c->budgets[2].tokens == 64);
    assert_int_equal(lrsa_grid_config_override(c, "tasks.n=2", &e), 0);
    assert_true(c->tasks[0].n == 2 && c->tasks[1].n == 2);
    /* naming an existing label keeps its parameters; a new name gets the defaults */
    assert_int_equal(lrsa_grid_config_override(c, "methods=[snapkv, knorm]", &e), 0);
    assert_int_equal(c->n_methods, 2);
    assert_int_equal(c->methods[0].spec.window, 32);
    assert_int_equal(c->methods[1].spec.method, LRSA_PRESS_KNORM);
    assert_int_equal(lrsa_grid_config_override(c, "run_dir=/tmp/elsewhere", &e), 0);
    assert_string_equal(c->run_dir, "/tmp/elsewhere");
    assert_int_equal(lrsa_grid_config_override(c, "protocols=query-aware", &e), 0);
    assert_int_equal(c->n_protocols, 1);
    assert_int_not_equal(lrsa_grid_config_override(c, "budgets.keep=[2]", &e), 0);
    assert_non_null(strstr(e.msg, "bad budget"));
    assert_int_not_equal(lrsa_grid_config_override(c, "max_neww=3", &e), 0);
    assert_non_null(strstr(e.msg, "did you mean 'max_new'"));
    assert_int_not_equal(lrsa_grid_config_override(c, "no equals sign", &e), 0);
    /* batch: samples per forward, 1..LRSA_EVAL_BATCH_MAX */
    assert_int_equal(lrsa_grid_config_override(c, "batch=8", &e), 0);
    assert_int_equal(c->batch, 8);
    assert_int_not_equal(lrsa_grid_config_override(c, "batch=0", &e), 0);
    assert_non_null(strstr(e.msg, "batch must be in [1, 256]"));
    assert_int_not_equal(lrsa_grid_config_override(c, "batch=many", &e), 0);
    assert_int_equal(c->batch, 8);
    /* device: cpu (default) or cuda */
    assert_int_equal(c->device_cuda, 0);
    assert_int_equal(lrsa_grid_config_override(c, "device=cuda", &e), 0);
    assert_int_equal(c->device_cuda, 1);
    assert_int_not_equal(lrsa_grid_config_override(c, "device=gpu", &e), 0);
    assert_non_null(strstr(e.msg, "device must be cpu or cuda"));
    assert_int_equal(lrsa_grid_config_override(c, "device=cpu", &e), 0);
    assert_int_equal(c->device_cuda, 0);
    free(c);
}

static void test_errors(void **state) {
    (void)state;
    char qa_bad[1400], qa_good[1400], missing[1400];
    snprintf(qa_bad, sizeof qa_bad, "%s/bad.jsonl", dir);
    write_text(qa_bad,
               "{\"context\": \"c\", \"question\": \"q\", \"answer\": \"a\"}\n{\"context\": 3}\n");
    snprintf(qa_good, sizeof qa_good, "%s/good.jsonl", dir);
    write_text(qa_good, "{\"context\": \"c\", \"question\": \"q\", \"answer\": \"a\"}\n");
    snprintf(missing, sizeof missing, "%s/missing.jsonl", dir);
    char bad_file[2000], good_file[2000], missing_file[2000];
    snprintf(bad_file, sizeof bad_file, "methods: [none]\ntasks:\n  - {file: %s}\n", qa_bad);
    snprintf(good_file, sizeof good_file, "methods: [none]\ntasks:\n  - {file: %s, n: 0}\n",
             qa_good);
    snprintf(missing_file, sizeof missing_file, "methods: [none]\ntasks:\n  - {file: %s}\n",
             missing);
    const char *T = "tasks:\n  - {synthetic: passkey, lengths: [256]}\n";
    char buf[64][600];
    struct {
        const char *body, *needle[3];
    } cases[] = {
        {"methdos: [none]\n", {"grid.yaml:4", "unknown key 'methdos'", "did you mean 'methods'"}},
        {"methods:\n  - {name: snapkv, windw: 8}\n", {"grid.yaml:5", "did you mean 'window'"}},
        {"methods: [snapk]\n", {"grid.yaml:4", "snapk"}},
        {"methods: [none]\nbudgets: {keep: [1, 1.5]}\n",
         {"grid.yaml:5", "bad budget 1.5", "(0, 1]"}},
        {"methods: [none]\nbudgets: [0]\n", {"bad budget 0"}},
        {"methods: [none]\nbudgets: {tokens_per_layer: [-3]}\n", {"bad budget -3", "> 0"}},
        {"methods: [none]\nbudgets: {keep: [1], tokenz: [3]}\n",
         {"did you mean 'tokens_per_layer'"}},
        {missing_file, {"does not exist", "missing.jsonl"}},
        {bad_file, {"bad.jsonl:2"}},
        {"methods: [none]\ntasks:\n  - {synthetic: paskey, lengths: [256]}\n",
         {"unknown synthetic task 'paskey'", "did you mean 'passkey'"}},
        {"methods: [none]\ntasks:\n  - {synthetic: passkey}\n", {"needs 'lengths"}},
        {"methods: [none]\ntasks:\n  - {synthetic: passkey, lengths: [256], depths: [1.5]}\n",
         {"depth 1.5"}},
        {"methods: [none]\ntasks:\n  - {synthetic: passkey, lengths: [256], lenghts: [3]}\n",
         {"did you mean 'lengths'"}},
        {"methods: [lagkv]\nbudgets: {tokens_per_layer: [64]}\n", {"lagkv", "keep fractions"}},
        {"methods: [none]\nprotocols: [query-unaware]\n", {"query-unaware"}},
        {"methods: [none, none]\n", {"labelled 'none'"}},
        {"methods: [compresskv]\n", {"compresskv_file"}},
        {"tasks:\n  - {synthetic: passkey, lengths: [256]}\n", {"methods is missing"}},
        {"methods: [none]\n", {"tasks is missing"}},
        {"methods: [none\n", {"YAML syntax error"}},
        /* a repeated key names both lines; value errors found by validation name their line */
        {"methods: [none]\nmax_new: 8\nmethods: [knorm]\n",
         {"grid.yaml:6", "'methods' appears twice", "first on line 4"}},
        {"methods:\n  - {name: snapkv, window: 8, window: 16}\n", {"grid.yaml:5", "'window'"}},
        {"methods:\n  - none\n  - {name: lagkv, lag: 0}\n", {"grid.yaml:6", "lag"}},
        {"methods: [none]\ntasks:\n  - {synthetic: passkey, lengths: [256]}\n"
         "  - {file: /nonexistent/x.jsonl}\n",
         {"grid.yaml:7", "does not exist"}},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    lrsa_grid_config *c = malloc(sizeof *c);
    for (int i = 0; i < nc; i++) {
        /* most cases need tasks to reach the check they test */
        int has_tasks = strstr(cases[i].body, "tasks") != NULL;
        int wants_missing = strstr(cases[i].needle[0], "tasks is missing") != NULL;
        snprintf(buf[i], sizeof buf[i], "%s%s", cases[i].body, has_tasks || wants_missing ? "" : T);
        lrsa_err e = {{0}};
        int rc = parse(c, buf[i], &e);
        if (rc == 0) fail_msg("case %d accepted:\n%s", i, buf[i]);
        for (int k = 0; k < 3 && cases[i].needle[k]; k++)
            if (!strstr(e.msg, cases[i].needle[k]))
                fail_msg("case %d: message lacks '%s': %s", i, cases[i].needle[k], e.msg);
    }
    lrsa_err e = {{0}};
    if (parse(c, good_file, &e) != 0) fail_msg("%s", e.msg);
    assert_string_equal(c->tasks[0].name, "good");
    /* a model directory without config.json */
    char text[4096];
    snprintf(text, sizeof text, "run_dir: %s/run\nmodels: [%s/nomodel]\nmethods: [none]\n%s", dir,
             dir, T);
    assert_int_equal(lrsa_grid_config_parse(c, text, strlen(text), "g.yaml", &e), 0);
    assert_int_not_equal(lrsa_grid_config_validate(c, &e), 0);
    assert_non_null(strstr(e.msg, "nomodel"));
    assert_non_null(strstr(e.msg, "config.json"));
    free(c);
}

/* The command: bad configs exit non-zero, print the message and create nothing. */
static void test_cli_writes_nothing(void **state) {
    (void)state;
    const char *bodies[3] = {
        "methdos: [none]\ntasks:\n  - {synthetic: passkey, lengths: [256]}\n",
        "methods: [none]\ntasks:\n  - {file: /nonexistent/qa.jsonl}\n",
        "methods: [none]\nbudgets: {keep: [0.5, 3]}\ntasks:\n  - {synthetic: passkey, lengths: "
        "[256]}\n",
    };
    const char *needles[3] = {"did you mean 'methods'", "/nonexistent/qa.jsonl", "bad budget 3"};
    for (int i = 0; i < 3; i++) {
        char cfg[1400], run[1400], text[4096], cmd[4096];
        snprintf(cfg, sizeof cfg, "%s/cli%d.yaml", dir, i);
        snprintf(run, sizeof run, "%s/clirun%d", dir, i);
        snprintf(text, sizeof text, "run_dir: %s\nmodels: [%s]\n%s", run, model_dir, bodies[i]);
        write_text(cfg, text);
        snprintf(cmd, sizeof cmd, "%s eval %s 2>&1", LRSA_BINARY, cfg);
        char *out = NULL;
        int rc = tu_run(cmd, &out);
        if (rc == 0 || !out || !strstr(out, needles[i]))
            fail_msg("case %d: rc %d, output lacks '%s': %s", i, rc, needles[i], out ? out : "");
        free(out);
        assert_false(lrsa_file_exists(run)); /* nothing written */
    }
    /* an unknown flag and an override error are start-up errors too */
    char cmd[4096], cfg[1400];
    snprintf(cfg, sizeof cfg, "%s/cli0.yaml", dir);
    snprintf(cmd, sizeof cmd, "%s eval %s --fast 2>&1", LRSA_BINARY, cfg);
    char *out = NULL;
    assert_int_not_equal(tu_run(cmd, &out), 0);
    free(out);
}

int main(void) {
    setup_dirs();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_good),
                                       cmocka_unit_test(test_errors),
                                       cmocka_unit_test(test_cli_writes_nothing)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
