/* Answer metrics of the evaluation grid (../shared/docs/kv-compression.md section 4.1):
 *   string-match-all   RULER's: the share of the reference parts contained in the prediction
 *                      (1 only when every part is there), case-insensitive
 *   string-match-part  RULER's qa_*: 1 when any reference part is contained in the prediction
 *   exact match        SQuAD: normalised prediction == normalised reference
 *   token F1           SQuAD: F1 of the normalised token bags
 * "Normalised" (SQuAD) = lower-case, punctuation removed, the articles a/an/the removed,
 * whitespace runs collapsed. Containment uses a lighter normalisation (lower-case, whitespace
 * collapsed) so that "12, 34" still matches inside "12, 34.". Lower-casing is ASCII only; other
 * UTF-8 bytes are compared as they are.
 *
 * A reference answer may have several parts (vartrack's "A, B, C, D", multi-value NIAH's
 * values): `sep` splits it (e.g. ", "); NULL or "" = one part. Exact match and F1 always compare
 * against the whole reference string. */
#ifndef LRSA_EVAL_METRICS_H
#define LRSA_EVAL_METRICS_H

typedef struct lrsa_answer_scores {
    double match_all, match_part, exact, f1;
} lrsa_answer_scores;

/* SQuAD normalisation into a malloc'd string. */
char *lrsa_squad_normalize(const char *s);
double lrsa_exact_match(const char *prediction, const char *reference);
double lrsa_token_f1(const char *prediction, const char *reference);
/* refs[0..n): parts; n == 0 gives 0. Empty parts are ignored (do not count as contained). */
double lrsa_string_match_all(const char *prediction, const char *const *refs, int n);
double lrsa_string_match_part(const char *prediction, const char *const *refs, int n);
/* All four metrics of one prediction against one reference answer split by sep. */
void lrsa_score_answer(const char *prediction, const char *reference, const char *sep,
                       lrsa_answer_scores *out);
#endif
