#include "prepare_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

int prepare_cli(const char *tmp, const char *args, char **out) {
    char cmd[8192], env[2048] = "";
    if (tmp) snprintf(env, sizeof env, "LRSA_CACHE=%s/nocache ", tmp);
    snprintf(cmd, sizeof cmd, "%s%s prepare --model %s %s 2>&1", env, LRSA_BINARY, PREPARE_MODEL,
             args);
    char *o = NULL;
    int rc = tu_run(cmd, &o);
    if (out)
        *out = o;
    else
        free(o);
    return rc;
}

void prepare_cli_fails(const char *tmp, const char *args, const char *needle) {
    char *o = NULL;
    int rc = prepare_cli(tmp, args, &o);
    if (rc == 0 || !o || !strstr(o, needle))
        fail_msg("`prepare %s`: rc %d, output lacks '%s': %s", args, rc, needle, o ? o : "");
    free(o);
}
