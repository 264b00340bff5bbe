/* Fuzz target for the QA JSONL record parser (data/jsonl.c). Not part of the build or CI.
 *
 * libFuzzer (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_DEFAULT_SOURCE -I. \
 *     tools/fuzz/fuzz_jsonl.c data/jsonl.c base/error.c -lcjson
 *     -o fuzz_jsonl && ./fuzz_jsonl -max_len=4096
 * Without libFuzzer (gcc), replaying files: add -DLRSA_FUZZ_STANDALONE and run
 *   ./fuzz_jsonl FILE...
 * Each input is parsed as one line; the parser must return 0, 1 or -1 without crashing or
 * leaking, and an accepted record must end with a non-empty assistant answer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lrsa_qa_record r;
    lrsa_err e;
    int rc = lrsa_jsonl_parse_record((const char *)data, size, "fuzz.jsonl", 1, &r, &e);
    if (rc == 0) {
        if (r.n_msgs < 2 || !r.answer || !r.answer[0] ||
            strcmp(r.msgs[r.n_msgs - 1].role, "assistant") != 0)
            abort();
        if (r.trunc_msg < 0 || r.trunc_msg >= r.n_msgs ||
            r.trunc_end > strlen(r.msgs[r.trunc_msg].content) || r.trunc_begin > r.trunc_end)
            abort();
        lrsa_qa_record_free(&r);
    } else if (rc == -1) {
        if (!strstr(e.msg, "fuzz.jsonl:1")) abort(); /* every error names the place */
    } else if (rc != 1) {
        abort();
    }
    return 0;
}

#ifdef LRSA_FUZZ_STANDALONE
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) continue;
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    return 0;
}
#endif
