#include "eval/run/grid_results.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/fileio.h"

int lrsa_grid_rows_read(lrsa_grid_rows *r, const char *path, lrsa_err *e) {
    memset(r, 0, sizeof *r);
    if (!lrsa_file_exists(path)) return 0;
    size_t size = 0;
    char *text = lrsa_read_file(path, &size, e);
    if (!text) return -1;
    int cap = 0;
    char *save = NULL;
    int line = 0;
    /* strtok_r skips empty lines, which is what we want */
    for (char *s = strtok_r(text, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        line++;
        cJSON *row = cJSON_Parse(s);
        if (!row || !cJSON_IsObject(row) || !cJSON_IsString(cJSON_GetObjectItem(row, "key"))) {
            fprintf(stderr, "lrsa: warning: %s:%d: not a complete result row; ignored\n", path,
                    line);
            cJSON_Delete(row);
            r->torn++;
            continue;
        }
        if (r->n == cap) {
            cap = cap ? 2 * cap : 64;
            r->row = lrsa_realloc(r->row, (size_t)cap * sizeof *r->row);
        }
        r->row[r->n++] = row;
    }
    free(text);
    return 0;
}

void lrsa_grid_rows_free(lrsa_grid_rows *r) {
    for (int i = 0; i < r->n; i++) cJSON_Delete(r->row[i]);
    free(r->row);
    memset(r, 0, sizeof *r);
}

int lrsa_grid_rows_has_key(const lrsa_grid_rows *r, const char *key) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(lrsa_row_str(r->row[i], "key", ""), key)) return 1;
    return 0;
}

int lrsa_grid_append_row(const char *path, const cJSON *row, lrsa_err *e) {
    char *text = cJSON_PrintUnformatted(row);
    LRSA_CHECK(text != NULL);
    size_t n = strlen(text);
    text = lrsa_realloc(text, n + 3);
    text[n++] = '\n';
    text[n] = '\0';
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT, 0644);
    int rc = 0;
    if (fd < 0) {
        rc = lrsa_errorf(e, "%s: cannot open for appending: %s", path, strerror(errno));
    } else {
        /* a torn last line (a crash mid-write) must not swallow this row: start a new line */
        off_t size = lseek(fd, 0, SEEK_END);
        char last = '\n';
        if (size > 0 && pread(fd, &last, 1, size - 1) != 1) last = '\n';
        if (last != '\n') {
            memmove(text + 1, text, n + 1);
            text[0] = '\n';
            n++;
        }
        ssize_t w = write(fd, text, n); /* one write: the line lands whole or not at all */
        if (w != (ssize_t)n)
            rc = lrsa_errorf(e, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "short");
        else if (fsync(fd) != 0)
            rc = lrsa_errorf(e, "%s: fsync failed: %s", path, strerror(errno));
        close(fd);
    }
    free(text);
    return rc;
}

const char *lrsa_row_str(const cJSON *row, const char *key, const char *def) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsString(x) ? x->valuestring : def;
}

double lrsa_row_num(const cJSON *row, const char *key, double def) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, key);
    if (cJSON_IsNumber(x)) return x->valuedouble;
    /* nested "metrics": {...} */
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(row, "metrics");
    x = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsNumber(x) ? x->valuedouble : def;
}

void lrsa_host_description(char *out, size_t cap) {
    char cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ') c++;
                    c[strcspn(c, "\n")] = '\0';
                    snprintf(cpu, sizeof cpu, "%s", c);
                }
                break;
            }
        fclose(f);
    }
    struct utsname u;
    const char *rel = uname(&u) == 0 ? u.release : "?";
    const char *blas = getenv("OPENBLAS_NUM_THREADS");
    snprintf(out, cap, "%s, %ld cores, Linux %s, OPENBLAS_NUM_THREADS=%s", cpu,
             sysconf(_SC_NPROCESSORS_ONLN), rel, blas ? blas : "unset");
}
