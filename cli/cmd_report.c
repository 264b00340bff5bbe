/* `lrsa report RUN_DIR`: report.md and SVG pictures from an evaluation grid's results.jsonl. */
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "eval/report/report.h"
#include "cli/commands.h"

static const char REPORT_HELP[] =
    "usage: lrsa report RUN_DIR\n"
    "\n"
    "Reads RUN_DIR/results.jsonl (written by `lrsa eval CONFIG.yaml`) and writes\n"
    "RUN_DIR/report.md with tables (score per method and keep fraction for every task, answer\n"
    "NLL, kept fraction achieved, memory, time and KVzip's overhead, models side by side) and\n"
    "SVG pictures next to it: score vs keep fraction (one line per method), length x depth\n"
    "heat maps per method, and the models side by side when the grid has several.\n";

int lrsa_cmd_report(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(REPORT_HELP, stdout);
            return 0;
        }
    lrsa_err e = {{0}};
    if (argc != 2) {
        lrsa_errorf(&e, "report: give exactly one RUN_DIR (see lrsa report --help)");
        lrsa_err_print(&e);
        return 2;
    }
    if (lrsa_report_write(argv[1], &e) != 0) {
        lrsa_err_print(&e);
        return 1;
    }
    return 0;
}
