/* Helpers shared by the model/ commands. */
#include "cli/cmd_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

void lrsa_attn_config_default(lrsa_attn_config *a) {
    memset(a, 0, sizeof *a);
    a->mode = LRSA_ATTN_DENSE;
    a->lagkv.sink = 16;
    a->lagkv.lag = 128;
    a->lagkv.keep = 0.25f;
    a->lagkv.value_weight = 1.f;
}

static int need_value(int argc, char **argv, int i, lrsa_err *e) {
    if (i + 1 >= argc) return lrsa_errorf(e, "flag %s needs a value", argv[i]);
    return 0;
}

static int parse_int(const char *flag, const char *s, int *out, lrsa_err *e) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < -2147483647L || v > 2147483647L)
        return lrsa_errorf(e, "flag %s: \"%s\" is not an integer", flag, s);
    *out = (int)v;
    return 0;
}

static int parse_float(const char *flag, const char *s, float *out, lrsa_err *e) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s)
        return lrsa_errorf(e, "flag %s: \"%s\" is not a number", flag, s);
    *out = (float)v;
    return 0;
}

int lrsa_parse_attn_flag(lrsa_attn_config *a, int argc, char **argv, int *i, lrsa_err *e) {
    const char *f = argv[*i];
    const char *known[] = {"--attn", "--sink", "--lag", "--keep", "--value-weight"};
    int k = -1;
    for (int j = 0; j < 5; j++)
        if (strcmp(f, known[j]) == 0) k = j;
    if (k < 0) return 0;
    if (need_value(argc, argv, *i, e)) return -1;
    const char *v = argv[++*i];
    int rc = 0;
    switch (k) {
        case 0:
            if (strcmp(v, "dense") == 0)
                a->mode = LRSA_ATTN_DENSE;
            else if (strcmp(v, "lrsa") == 0)
                a->mode = LRSA_ATTN_LRSA;
            else
                rc = lrsa_errorf(e, "flag --attn: \"%s\" is not dense or lrsa", v);
            break;
        case 1:
            rc = parse_int(f, v, &a->lagkv.sink, e);
            break;
        case 2:
            rc = parse_int(f, v, &a->lagkv.lag, e);
            break;
        case 3:
            rc = parse_float(f, v, &a->lagkv.keep, e);
            break;
        default:
            rc = parse_float(f, v, &a->lagkv.value_weight, e);
            break;
    }
    return rc ? -1 : 1;
}

int lrsa_attn_config_check(const lrsa_attn_config *a, lrsa_err *e) {
    if (a->mode != LRSA_ATTN_LRSA) return 0;
    if (lrsa_lagkv_validate(&a->lagkv, e)) return lrsa_err_prefix(e, "--attn lrsa: ");
    return 0;
}

int32_t *lrsa_read_int_rows(const char *path, int *rows, int *cols, lrsa_err *e) {
    size_t n;
    char *text = lrsa_read_file(path, &n, e);
    if (!text) return NULL;
    int32_t *v = NULL;
    int64_t nv = 0, cap = 0;
    int r = 0, c = -1, line = 0;
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        line++;
        int count = 0;
        char *p = ln;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r') p++;
            if (!*p) break;
            char *end;
            errno = 0;
            long x = strtol(p, &end, 10);
            if (end == p || errno || x < -2147483647L || x > 2147483647L ||
                (*end && *end != ' ' && *end != '\t' && *end != '\r')) {
                lrsa_errorf(e,
                            "%s:%d: \"%.20s\" is not an integer; write whitespace-separated "
                            "integers, one sequence per line",
                            path, line, p);
                goto fail;
            }
            if (nv == cap) {
                cap = cap ? 2 * cap : 1024;
                v = lrsa_realloc(v, (size_t)cap * sizeof *v);
            }
            v[nv++] = (int32_t)x;
            count++;
            p = end;
        }
        if (count == 0) continue;
        if (c >= 0 && count != c) {
            lrsa_errorf(e,
                        "%s:%d: line has %d values but the first line has %d; all sequences "
                        "must have the same length",
                        path, line, count, c);
            goto fail;
        }
        c = count;
        r++;
    }
    if (r == 0) {
        lrsa_errorf(e, "%s: no integers found; write one sequence per line", path);
        goto fail;
    }
    free(text);
    *rows = r;
    *cols = c;
    return v;
fail:
    free(text);
    free(v);
    return NULL;
}
