/* Runs the `lrsa` binary's `prepare` with the tokenizer fixture as the model, for the data
 * tests. */
#ifndef LRSA_TESTS_DATA_PREPARE_CLI_H
#define LRSA_TESTS_DATA_PREPARE_CLI_H

#define PREPARE_MODEL LRSA_TEST_DATA "/tokenizer/smollm"

/* `lrsa prepare --model PREPARE_MODEL ARGS` (stderr merged into stdout); with tmp set,
 * LRSA_CACHE points at TMP/nocache so the built-in filler is used unless --haystack is given.
 * Returns the exit status; the output goes to *out (malloc'd) when out is not NULL. */
int prepare_cli(const char *tmp, const char *args, char **out);
/* Asserts that `prepare ARGS` fails and that its output contains `needle`. */
void prepare_cli_fails(const char *tmp, const char *args, const char *needle);
#endif
