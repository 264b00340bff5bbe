/* The shared front of the commands: help, then the body, then the error report. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

int lrsa_cmd_main(int argc, char **argv, const char *help, lrsa_cmd_body run) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help, stdout);
            return 0;
        }
    lrsa_err e = {{0}};
    if (run(argc, argv, &e) != 0) {
        lrsa_err_print(&e);
        return 1;
    }
    return 0;
}
