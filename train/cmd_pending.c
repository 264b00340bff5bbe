/* Commands whose implementation has not landed yet. Each says so plainly and exits non-zero.
 * Implementing a command means deleting its entry here and defining it next to its code. */
#include <stdio.h>

#include "train/commands.h"

#define PENDING(fn, name, where)                                                                   \
    int fn(int argc, char **argv) {                                                                \
        (void)argc;                                                                                \
        (void)argv;                                                                                \
        fprintf(stderr, "lrsa: error: `lrsa %s` is not implemented yet (%s)\n", name, where);      \
        return 2;                                                                                  \
    }

