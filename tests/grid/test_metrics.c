/* Answer metrics on hand-made predictions with known scores (SQuAD normalisation, token F1,
 * RULER's string-match-all / -part with multi-part references). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/metrics.h"
#include "test_util.h"

static void test_normalize(void **state) {
    (void)state;
    struct {
        const char *in, *out;
    } cases[] = {
        {"The Eiffel Tower!", "eiffel tower"},
        {"  a  cat,\tan owl  and THE dog. ", "cat owl and dog"},
        {"theatre anthem", "theatre anthem"}, /* articles only as whole words */
        {"12,345", "12345"},
        {"", ""},
        {"Ünïcode stays", "Ünïcode stays"}, /* non-ASCII bytes untouched */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *n = lrsa_squad_normalize(cases[i].in);
        assert_string_equal(n, cases[i].out);
        free(n);
    }
}

static void test_exact_and_f1(void **state) {
    (void)state;
    assert_true(lrsa_exact_match("The Paris.", "paris") == 1.0);
    assert_true(lrsa_exact_match("Paris, France", "Paris") == 0.0);
    /* pred "paris france" (2 tokens), ref "paris" (1): P = 1/2, R = 1, F1 = 2/3 */
    assert_true(fabs(lrsa_token_f1("Paris, France", "Paris") - 2.0 / 3.0) < 1e-12);
    /* repeated words count once each: pred "a a b" -> "b" after articles... use other words */
    /* pred "x x y", ref "x y y": common = min counts = x:1 + y:1 = 2, P = R = 2/3 */
    assert_true(fabs(lrsa_token_f1("x x y", "x y y") - 2.0 / 3.0) < 1e-12);
    assert_true(lrsa_token_f1("blue", "red") == 0.0);
    assert_true(lrsa_token_f1("", "") == 1.0);
    assert_true(lrsa_token_f1("the", "something") == 0.0); /* empty after normalisation */
}

static void test_string_match(void **state) {
    (void)state;
    const char *refs[3] = {"12345", "ABCDE", "  "};
    /* case-insensitive containment, empty parts ignored */
    assert_true(lrsa_string_match_all("the key is 12345 and abcde", refs, 3) == 1.0);
    assert_true(lrsa_string_match_all("the key is 12345", refs, 3) == 0.5);
    assert_true(lrsa_string_match_part("the key is 12345", refs, 3) == 1.0);
    assert_true(lrsa_string_match_part("nothing here", refs, 3) == 0.0);
    assert_true(lrsa_string_match_all("anything", refs, 0) == 0.0);
    /* whitespace runs fold to one space on both sides */
    const char *r2[1] = {"New   York"};
    assert_true(lrsa_string_match_all("in new\nyork.", r2, 1) == 1.0);
}

static void test_score_answer(void **state) {
    (void)state;
    lrsa_answer_scores s;
    /* vartrack-like reference with 4 parts, prediction names 3 of them */
    lrsa_score_answer("The variables are QWERT, ASDFG and ZXCVB.", "QWERT, ASDFG, ZXCVB, POIUY",
                      ", ", &s);
    assert_true(fabs(s.match_all - 0.75) < 1e-12);
    assert_true(s.match_part == 1.0);
    assert_true(s.exact == 0.0);
    /* pred tokens: variables are qwert asdfg and zxcvb (6); ref: qwert asdfg zxcvb poiuy (4);
     * common 3: P = 1/2, R = 3/4, F1 = 0.6 */
    assert_true(fabs(s.f1 - 0.6) < 1e-12);
    /* no separator: the whole reference is one part */
    lrsa_score_answer("QWERT, ASDFG", "QWERT, ASDFG", NULL, &s);
    assert_true(s.match_all == 1.0 && s.match_part == 1.0 && s.exact == 1.0 && s.f1 == 1.0);
    lrsa_score_answer("ASDFG, QWERT", "QWERT, ASDFG", "", &s);
    assert_true(s.match_all == 0.0 && s.match_part == 0.0 && s.exact == 0.0 && s.f1 == 1.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize), cmocka_unit_test(test_exact_and_f1),
        cmocka_unit_test(test_string_match), cmocka_unit_test(test_score_answer)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
