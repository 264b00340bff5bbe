/* `lrsa prepare --synthetic` for issue 19's experiment: task mixtures (balanced blocks in a
 * seeded order, per-sample tasks in /sample_task), length ranges, a single task at one length
 * unchanged from before those existed (a content digest recorded from the code before them), and
 * the train/held-out essay split (disjoint essays, stable membership, clear errors). Runs the
 * `lrsa` binary with the tokenizer fixture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/dataset.h"
#include "data/haystack.h"
#include "data/tokenizer.h"
#include "prepare_cli.h"
#include "test_util.h"

#define MIX "passkey,niah-multikey,niah-multivalue,vartrack,factqa"

static lrsa_tokenizer *tok;
static char dir[1024], hay[1200];

/* Essay k: six sentences, each carrying the marker "qzKK" so a context tells which essays it
 * drew from. */
static void write_essay(int k) {
    char path[1400], text[2048];
    snprintf(path, sizeof path, "%s/essay%02d.txt", hay, k);
    snprintf(text, sizeof text,
             "Entry qz%02d tells how the keeper walked along the grey shore at dusk. "
             "In entry qz%02d the miller counts the sacks stacked by the door.\n\n"
             "The note qz%02d says that the orchard was planted long before the war. "
             "Record qz%02d describes a narrow bridge over a quick cold stream. "
             "Page qz%02d lists the tools that hang in the workshop. "
             "Line qz%02d ends with the bells of the town ringing at noon.\n",
             k, k, k, k, k, k);
    lrsa_err e;
    assert_int_equal(lrsa_write_file_atomic(path, text, strlen(text), &e), 0);
}

static int setup(void **state) {
    lrsa_err e;
    tok = lrsa_tokenizer_load_dir(PREPARE_MODEL, &e);
    if (!tok) fprintf(stderr, "cannot load %s: %s\n", PREPARE_MODEL, e.msg);
    tu_tmpdir(dir, sizeof dir, "synthetic_mix");
    snprintf(hay, sizeof hay, "%s/hay", dir);
    if (lrsa_mkdirs(hay, &e) != 0) return -1;
    for (int k = 0; k < 12; k++) write_essay(k);
    return tok ? 0 : -1;
}
static int teardown(void **state) {
    lrsa_tokenizer_free(tok);
    return 0;
}

static const char *gen(const char *name, const char *args) {
    static char path[1200];
    char full[4096];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    snprintf(full, sizeof full, "%s --out %s", args, path);
    char *o;
    if (prepare_cli(dir, full, &o) != 0) fail_msg("prepare %s failed: %s", full, o);
    free(o);
    return path;
}

static void open_ds(lrsa_dataset *d, const char *path) {
    lrsa_err e;
    if (lrsa_dataset_open(d, path, &e) != 0) fail_msg("%s", e.msg);
}

static int same_file(const char *a, const char *b) {
    lrsa_err e;
    size_t na, nb;
    char *x = lrsa_read_file(a, &na, &e), *y = lrsa_read_file(b, &nb, &e);
    assert_non_null(x);
    assert_non_null(y);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static char *prompt_of(const lrsa_dataset *d, int64_t i) {
    return lrsa_tokenizer_decode(tok, lrsa_dataset_ids(d, i), lrsa_dataset_prompt_len(d, i), 0);
}

/* The question each task asks (tasks.c). */
static const char *question_of(const char *task) {
    if (!strcmp(task, "passkey")) return "What is the pass key?";
    if (!strcmp(task, "niah-multikey")) return "What is the special magic number for";
    if (!strcmp(task, "niah-multivalue")) return "What are all the special magic numbers for";
    if (!strcmp(task, "vartrack")) return "Which variables are assigned the value";
    if (!strcmp(task, "factqa")) return "In which c";
    fail_msg("unexpected task '%s'", task);
    return NULL;
}

static void test_mixture(void **state) {
    static const char *tasks[5] = {"passkey", "niah-multikey", "niah-multivalue", "vartrack",
                                   "factqa"};
    char a[1200], b[1200], c[1200];
    snprintf(a, sizeof a, "%s", gen("mix_a", "--synthetic " MIX " --n 12 --length 600 --seed 4"));
    snprintf(b, sizeof b, "%s", gen("mix_b", "--synthetic " MIX " --n 12 --length 600 --seed 4"));
    snprintf(c, sizeof c, "%s", gen("mix_c", "--synthetic " MIX " --n 12 --length 600 --seed 5"));
    assert_true(same_file(a, b));
    assert_false(same_file(a, c));
    lrsa_dataset d, dc;
    open_ds(&d, a);
    open_ds(&dc, c);
    assert_string_equal(d.task, MIX);
    assert_non_null(d.sample_task);
    assert_int_equal(d.n, 12);
    int count[5] = {0}, order_differs = 0, block_order_differs = 0;
    for (int64_t i = 0; i < d.n; i++) {
        const char *t = lrsa_dataset_sample_task(&d, i);
        int k = 0;
        while (k < 5 && strcmp(tasks[k], t)) k++;
        if (k == 5) fail_msg("sample %lld has task '%s'", (long long)i, t);
        count[k]++;
        /* every block of 5 samples holds each task once */
        for (int64_t j = i - i % 5; j < i; j++)
            if (!strcmp(lrsa_dataset_sample_task(&d, j), t))
                fail_msg("task %s twice in block %lld", t, (long long)i / 5);
        order_differs |= strcmp(t, lrsa_dataset_sample_task(&dc, i)) != 0;
        if (i >= 5) block_order_differs |= strcmp(t, lrsa_dataset_sample_task(&d, i - 5)) != 0;
        /* the sample is one of its task: its question, its answer's shape, its length */
        char *prompt = prompt_of(&d, i);
        if (!strstr(prompt, question_of(t)))
            fail_msg("sample %lld (%s) lacks its question: %s", (long long)i, t, prompt);
        const char *ans = lrsa_dataset_answer(&d, i);
        int commas = 0;
        for (const char *p = ans; (p = strstr(p, ", ")); p++) commas++;
        if (!strcmp(t, "niah-multivalue")) assert_int_equal(commas, 3);
        if (!strcmp(t, "vartrack")) assert_int_equal(commas, 3);
        if (!strcmp(t, "passkey")) assert_int_equal(strlen(ans), 5);
        int64_t len = lrsa_dataset_len(&d, i);
        if (len > 600 || len < 600 * 85 / 100)
            fail_msg("sample %lld has %lld tokens, target 600", (long long)i, (long long)len);
        free(prompt);
    }
    for (int k = 0; k < 5; k++)
        if (count[k] < 2 || count[k] > 3) fail_msg("%s has %d of 12 samples", tasks[k], count[k]);
    assert_true(order_differs);       /* the order depends on the seed */
    assert_true(block_order_differs); /* and is drawn per block, not one fixed cycle */
    lrsa_dataset_close(&d);
    lrsa_dataset_close(&dc);

    /* the printed distribution: all samples and each task */
    char args[2048], *o;
    snprintf(args, sizeof args, "--synthetic " MIX " --n 10 --length 600 --out %s/mix_p.h5", dir);
    assert_int_equal(prepare_cli(dir, args, &o), 0);
    assert_non_null(strstr(o, "prepare: all: 10 samples, tokens min"));
    for (int k = 0; k < 5; k++) {
        char line[128];
        snprintf(line, sizeof line, "prepare:   %s: 2 samples, tokens min", tasks[k]);
        if (!strstr(o, line)) fail_msg("output lacks '%s': %s", line, o);
    }
    free(o);

    /* bad lists */
    snprintf(args, sizeof args, "--synthetic passkey,bogus --n 2 --length 600 --out %s/x.h5", dir);
    prepare_cli_fails(dir, args, "unknown task 'bogus'");
    snprintf(args, sizeof args, "--synthetic passkey,vartrack,passkey --n 2 --length 600 --out %s",
             "x.h5");
    prepare_cli_fails(dir, args, "listed twice");
}

/* A digest of a dataset's content (ids, masks, offsets, prompt lengths, answers). */
static uint64_t digest(const lrsa_dataset *d) {
    uint64_t h = 0xcbf29ce484222325ULL;
#define MIXIN(ptr, bytes)                                                                          \
    for (size_t q_ = 0; q_ < (size_t)(bytes); q_++) {                                              \
        h ^= ((const unsigned char *)(ptr))[q_];                                                   \
        h *= 0x100000001b3ULL;                                                                     \
    }
    MIXIN(d->tokens, d->total * 4);
    MIXIN(d->loss_mask, d->total);
    MIXIN(d->offsets, (d->n + 1) * 8);
    MIXIN(d->prompt_len, d->n * 8);
    for (int64_t i = 0; i < d->n; i++) MIXIN(d->answers[i], strlen(d->answers[i]) + 1);
#undef MIXIN
    return h;
}

static void test_length_range(void **state) {
    const char *path = gen("range", "--synthetic passkey --n 10 --length 300:700 --seed 1");
    lrsa_dataset r, f;
    open_ds(&r, path);
    assert_int_equal(r.max_len, 700);
    assert_non_null(strstr(r.source, "length=300:700 seed=1"));
    assert_null(r.sample_task); /* one task: nothing per sample */
    int64_t lo = 1 << 30, hi = 0;
    for (int64_t i = 0; i < r.n; i++) {
        int64_t len = lrsa_dataset_len(&r, i);
        if (len > 700 || len < 300 * 85 / 100)
            fail_msg("sample %lld has %lld tokens, range 300:700", (long long)i, (long long)len);
        lo = len < lo ? len : lo;
        hi = len > hi ? len : hi;
    }
    if (hi - lo < 150) fail_msg("lengths %lld..%lld do not spread over 300:700", lo, hi);
    /* the range draws from its own stream: the needles are those of the fixed-length file */
    open_ds(&f, gen("fixed", "--synthetic passkey --n 10 --length 700 --seed 1"));
    for (int64_t i = 0; i < r.n; i++)
        assert_string_equal(lrsa_dataset_answer(&r, i), lrsa_dataset_answer(&f, i));
    lrsa_dataset_close(&f);
    lrsa_dataset_close(&r);

    char args[2048];
    snprintf(args, sizeof args, "--synthetic passkey --n 2 --length 700:300 --out %s/x.h5", dir);
    prepare_cli_fails(dir, args, "low end is above its high end");
    snprintf(args, sizeof args, "--synthetic passkey --n 2 --length 300:lots --out %s/x.h5", dir);
    prepare_cli_fails(dir, args, "takes TOKENS or LO:HI");
    snprintf(args, sizeof args, "--synthetic passkey --n 4 --length 20:30 --out %s/x.h5", dir);
    prepare_cli_fails(dir, args, "raise the low end");
}

/* A single task at one length gives what the code before mixtures, ranges and splits gave: the
 * digests were recorded from files made by that code (which were also byte-identical to the
 * ones this code writes, checked with cmp when this test was written). */
static void test_fixed_length_unchanged(void **state) {
    lrsa_dataset d;
    open_ds(&d, gen("old_a", "--synthetic niah-multikey --n 3 --length 600 --seed 5"));
    assert_null(d.sample_task);
    int64_t t1 = d.total;
    uint64_t h1 = digest(&d);
    lrsa_dataset_close(&d);
    char args[2048];
    snprintf(args, sizeof args,
             "--synthetic factqa --n 4 --length 450 --depths 0.2,0.8 --seed 9 --haystack %s", hay);
    open_ds(&d, gen("old_b", args));
    int64_t t2 = d.total;
    uint64_t h2 = digest(&d);
    lrsa_dataset_close(&d);
    if (t1 != 1768 || t2 != 1724 || h1 != 0xe887970a70a7187bULL || h2 != 0x515260a0b92e7264ULL)
        fail_msg("tokens %lld %lld, content digests 0x%016llxULL 0x%016llxULL differ from the "
                 "recorded ones",
                 (long long)t1, (long long)t2, (unsigned long long)h1, (unsigned long long)h2);
}

/* Which fixture essays (markers qzKK) a text quotes. */
static void markers(const char *text, int seen[32]) {
    for (const char *p = text; (p = strstr(p, "qz")); p += 2)
        if (p[2] >= '0' && p[2] <= '9' && p[3] >= '0' && p[3] <= '9')
            seen[(p[2] - '0') * 10 + (p[3] - '0')] = 1;
}

static int is_heldout_k(int k) {
    char name[32];
    snprintf(name, sizeof name, "essay%02d.txt", k);
    return lrsa_essay_is_heldout(name);
}

static void test_essay_split(void **state) {
    /* Stable membership: FNV-1a 64 of the name mod 4 == 0, values computed independently. */
    assert_true(lrsa_essay_is_heldout("essay02.txt"));
    assert_true(lrsa_essay_is_heldout("essay06.txt"));
    assert_true(lrsa_essay_is_heldout("essay11.txt"));
    assert_true(lrsa_essay_is_heldout("addiction.txt"));
    assert_false(lrsa_essay_is_heldout("essay00.txt"));
    assert_false(lrsa_essay_is_heldout("essay01.txt"));
    assert_false(lrsa_essay_is_heldout("apple.txt"));

    lrsa_err e;
    lrsa_haystack all, tr, ho;
    assert_int_equal(lrsa_haystack_load_split(&all, hay, LRSA_ESSAYS_ALL, &e), 0);
    assert_int_equal(lrsa_haystack_load_split(&tr, hay, LRSA_ESSAYS_TRAIN, &e), 0);
    assert_int_equal(lrsa_haystack_load_split(&ho, hay, LRSA_ESSAYS_HELDOUT, &e), 0);
    assert_int_equal(all.n_files, 12);
    assert_int_equal(tr.n_files, 9);
    assert_int_equal(ho.n_files, 3); /* essays 02, 06 and 11 */
    assert_int_equal(ho.n_found, 12);
    assert_int_equal(tr.n + ho.n, all.n);
    assert_non_null(strstr(ho.desc, "essays=heldout: 3 of 12 files"));
    for (int64_t i = 0; i < ho.n; i++) {
        int seen[32] = {0};
        markers(ho.sents[i], seen);
        for (int k = 0; k < 32; k++)
            if (seen[k] && !is_heldout_k(k)) fail_msg("held-out sentence from essay %d", k);
    }
    for (int64_t i = 0; i < tr.n; i++) {
        int seen[32] = {0};
        markers(tr.sents[i], seen);
        for (int k = 0; k < 32; k++)
            if (seen[k] && is_heldout_k(k)) fail_msg("training sentence from essay %d", k);
    }
    lrsa_haystack_free(&all);
    lrsa_haystack_free(&tr);
    lrsa_haystack_free(&ho);

    /* Datasets from the two splits draw their contexts from disjoint essays. */
    char args[4096], *o;
    int used[2][32] = {{0}};
    for (int s = 0; s < 2; s++) {
        snprintf(args, sizeof args,
                 "--synthetic passkey,factqa --n 6 --length 500 --seed 2 --haystack %s "
                 "--essays %s --out %s/split%d.h5",
                 hay, s ? "heldout" : "train", dir, s);
        if (prepare_cli(dir, args, &o) != 0) fail_msg("%s", o);
        assert_non_null(strstr(o, s ? "essays=heldout: 3 of 12 files" : "essays=train: 9 of 12"));
        free(o);
        snprintf(args, sizeof args, "%s/split%d.h5", dir, s);
        lrsa_dataset d;
        open_ds(&d, args);
        assert_non_null(strstr(d.source, s ? "essays=heldout: 3 of 12" : "essays=train: 9 of 12"));
        for (int64_t i = 0; i < d.n; i++) {
            char *p = prompt_of(&d, i);
            markers(p, used[s]);
            free(p);
        }
        lrsa_dataset_close(&d);
    }
    int n_used[2] = {0};
    for (int k = 0; k < 32; k++) {
        n_used[0] += used[0][k];
        n_used[1] += used[1][k];
        if (used[0][k] && used[1][k]) fail_msg("essay %d is in both the train and held-out set", k);
        if (used[0][k] && is_heldout_k(k)) fail_msg("train set uses held-out essay %d", k);
        if (used[1][k] && !is_heldout_k(k)) fail_msg("held-out set uses training essay %d", k);
    }
    assert_true(n_used[0] >= 2 && n_used[1] >= 2);

    /* Adding essays moves none: the three held out stay held out, one more joins them. */
    for (int k = 12; k < 16; k++) write_essay(k);
    assert_int_equal(lrsa_haystack_load_split(&ho, hay, LRSA_ESSAYS_HELDOUT, &e), 0);
    assert_int_equal(ho.n_files, 4); /* + essay15 */
    int seen[32] = {0};
    for (int64_t i = 0; i < ho.n; i++) markers(ho.sents[i], seen);
    assert_true(seen[2] && seen[6] && seen[11] && seen[15]);
    lrsa_haystack_free(&ho);

    /* No essays: the built-in filler cannot honour a split. */
    snprintf(args, sizeof args,
             "--synthetic passkey --n 1 --length 300 --essays heldout --out %s/nosplit.h5", dir);
    prepare_cli_fails(dir, args, "tools/fetch-haystack.sh");
    prepare_cli_fails(dir, args, "--essays heldout");
    snprintf(args, sizeof args, "%s/nosplit.h5", dir);
    assert_false(lrsa_file_exists(args));
    /* A split that holds no essay. */
    char only_train[1300];
    snprintf(only_train, sizeof only_train, "%s/hay_train", dir);
    assert_int_equal(lrsa_mkdirs(only_train, &e), 0);
    const char *essay = "Only one essay sits in this directory, and it is for training.";
    snprintf(args, sizeof args, "%s/essay00.txt", only_train);
    assert_int_equal(lrsa_write_file_atomic(args, essay, strlen(essay), &e), 0);
    snprintf(args, sizeof args,
             "--synthetic passkey --n 1 --length 300 --haystack %s --essays heldout --out "
             "%s/empty.h5",
             only_train, dir);
    prepare_cli_fails(dir, args, "the split holds none of the 1 essays");
    prepare_cli_fails(dir, "--synthetic passkey --n 1 --length 300 --essays most --out x.h5",
                      "expected all, train or heldout");
    prepare_cli_fails(dir, "--input x.jsonl --essays train --out x.h5",
                      "--essays apply to --synthetic");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixture),
        cmocka_unit_test(test_length_range),
        cmocka_unit_test(test_fixed_length_unchanged),
        cmocka_unit_test(test_essay_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
