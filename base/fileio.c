#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *lrsa_read_file(const char *path, size_t *size, lrsa_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        lrsa_errorf(e, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = lrsa_malloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        buf = lrsa_realloc(buf, cap + 1);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        lrsa_errorf(e, "error reading %s", path);
        return NULL;
    }
    buf[n] = 0;
    if (size) *size = n;
    return buf;
}

void lrsa_tmp_name(char *out, size_t cap, const char *path) {
    snprintf(out, cap, "%s.tmp.%ld", path, (long)getpid());
}

int lrsa_atomic_open(lrsa_atomic_file *af, const char *path, lrsa_err *e) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return lrsa_errorf(e, "path too long: %s", path);
    strcpy(af->path, path);
    lrsa_tmp_name(af->tmp_path, sizeof af->tmp_path, path);
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f)
        return lrsa_errorf(e, "cannot write %s: %s (is the directory writable?)", af->tmp_path,
                           strerror(errno));
    return 0;
}

int lrsa_rename_into_place(const char *tmp_path, const char *path, lrsa_err *e) {
    if (rename(tmp_path, path) != 0) {
        int err = errno;
        unlink(tmp_path);
        return lrsa_errorf(e, "cannot rename %s to %s: %s", tmp_path, path, strerror(err));
    }
    return 0;
}

int lrsa_atomic_commit(lrsa_atomic_file *af, lrsa_err *e) {
    int bad = fflush(af->f) != 0 || ferror(af->f);
    if (!bad) bad = fsync(fileno(af->f)) != 0;
    int err = errno;
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        unlink(af->tmp_path);
        return lrsa_errorf(e, "error writing %s: %s (disk full?)", af->path, strerror(err));
    }
    return lrsa_rename_into_place(af->tmp_path, af->path, e);
}

void lrsa_atomic_abort(lrsa_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp_path[0]) unlink(af->tmp_path);
}

int lrsa_write_file_atomic(const char *path, const void *data, size_t n, lrsa_err *e) {
    lrsa_atomic_file af;
    if (lrsa_atomic_open(&af, path, e)) return -1;
    if (n && fwrite(data, 1, n, af.f) != n) {
        lrsa_atomic_abort(&af);
        return lrsa_errorf(e, "error writing %s: %s", path, strerror(errno));
    }
    return lrsa_atomic_commit(&af, e);
}

int lrsa_mkdirs(const char *path, lrsa_err *e) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) return lrsa_errorf(e, "path too long: %s", path);
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return lrsa_errorf(e, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return lrsa_errorf(e, "cannot create directory %s: %s", buf, strerror(errno));
    if (!lrsa_is_dir(buf)) return lrsa_errorf(e, "%s exists and is not a directory", buf);
    return 0;
}

int lrsa_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int lrsa_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void lrsa_path_join(char *out, size_t cap, const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n && dir[n - 1] == '/')
        snprintf(out, cap, "%s%s", dir, name);
    else
        snprintf(out, cap, "%s/%s", dir, name);
}

double lrsa_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double lrsa_peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
        fclose(f);
        if (kb >= 0) return (double)kb / 1024.0;
    }
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}
