/* Warnings for settings that do less than they seem to on the given sequences, printed once per
 * run by `lrsa eval`, `lrsa generate` and `lrsa train` instead of letting a run look compressed
 * when it was not (docs/EVAL.md "When a press does less than asked"):
 *  - LagKV compresses nothing in a sequence shorter than sink + 2*lag: no partition has the full
 *    successor it is scored against. Evaluation then keeps 100 % of the rows, LRSA training
 *    runs dense attention, and lagkv-kvpress falls back to sink + most recent rows.
 *  - lagkv-kvpress when its budget is smaller than the sink + the unscored tail (last partition
 *    + leftover): lrsa keeps the whole sink (protected) and the earliest tail rows, no scored
 *    row; kvpress's LagKVPress scores sink and tail alike (1.0) and its top-k among those equal
 *    scores drops sink rows instead, so the two tools' figures differ there. */
#ifndef LRSA_EVAL_PRESS_NOTES_H
#define LRSA_EVAL_PRESS_NOTES_H
#include <stddef.h>
#include <stdint.h>

#include "eval/press/press.h"

/* The shortest sequence LagKV compresses: sink + 2*lag. */
int64_t lrsa_lagkv_min_compressed_len(const lrsa_lagkv_params *p);

/* When some of the n sequence lengths are shorter than sink + 2*lag: writes one warning into buf
 * (how many, their lengths, the threshold, `effect` = what happens to them, a clause of its own,
 * and the lag, named `lag_name`, that would compress them all; `sink_name` when even lag 1
 * cannot) and returns 1; else returns 0. `what` names one sequence in the singular ("prompt",
 * "training sample"). */
int lrsa_lagkv_short_note(const lrsa_lagkv_params *p, const int64_t *lens, int64_t n,
                          const char *what, const char *effect, const char *sink_name,
                          const char *lag_name, char *buf, size_t cap);

/* lagkv-kvpress on sequences of these lengths under spec s: when the budget of some is smaller
 * than sink + unscored tail, writes a note saying which rows lrsa keeps and how kvpress differs
 * there, and returns 1; else 0 (also for every other method). */
int lrsa_kvpress_tail_note(const lrsa_press_spec *s, const int64_t *lens, int64_t n, char *buf,
                           size_t cap);

/* Both notes for an evaluation of a press over these compressed lengths (the prompts, or the
 * contexts under the agnostic protocol), printed to stderr as "lrsa: warning: ...". */
void lrsa_press_warn_lengths(const lrsa_press_spec *s, const int64_t *lens, int64_t n,
                             const char *what);
/* The same with the messages prefixed by `where` (NULL: none) and the LagKV parameters named
 * sink_name and lag_name (an evaluation grid's method keys instead of the command's flags). */
void lrsa_press_warn_lengths_at(const lrsa_press_spec *s, const int64_t *lens, int64_t n,
                                const char *what, const char *where, const char *sink_name,
                                const char *lag_name);

/* For one group of an evaluation grid (`where` names it): the notes above for every method of
 * the grid at its smallest budget, over the group's compressed lengths (prompts, or contexts
 * under the agnostic protocol: `what`), naming the method and its keys sink and lag. */
struct lrsa_grid_config;
void lrsa_grid_warn_lengths(const struct lrsa_grid_config *c, lrsa_prefill_mode prefill,
                            const int64_t *lens, int64_t n, const char *what, const char *where);
#endif
