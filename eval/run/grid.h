/* `lrsa eval CONFIG.yaml [key=value ...]`: the evaluation grid (models x methods x budgets x
 * tasks x protocols x prefill modes) -> RUN_DIR/results.jsonl, resumable. Config keys:
 * eval/run/grid_config.h; row format: docs/EVAL.md.
 *
 * Work order ("score once, sweep budgets"): per model, per task point (task, length, depth),
 * per protocol and prefill mode, per sample, per method: prefill the sample once while the press
 * scores it, then for every budget compact a clone of that cache (lrsa_press_apply) and answer
 * on it (teacher-forced answer NLL, then greedy generation scored by the metrics of
 * eval/run/metrics.h). LagKV, whose budget shapes its prefill, prefills once per budget. */
#ifndef LRSA_EVAL_GRID_H
#define LRSA_EVAL_GRID_H

/* argv[0] = "eval", argv[1] = the YAML file, then overrides and --dry-run / --quiet. Returns the
 * process exit status. */
int lrsa_grid_main(int argc, char **argv);
/* Does the first argument of `lrsa eval` name a grid config (*.yaml / *.yml)? */
int lrsa_grid_is_config(const char *arg);
#endif
