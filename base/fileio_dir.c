/* Whole output directories written as one: build the new one under a temporary name, then
 * rename it into place (see fileio.h). Used by the commands that write a model directory
 * (`lrsa convert`, `lrsa export`), so a failure leaves the old directory or none, never a
 * half-written one. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void lrsa_remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void lrsa_tmp_dir_name(char *out, size_t cap, const char *dir) {
    snprintf(out, cap, "%s.tmp.%ld", dir, (long)getpid());
}

int lrsa_dir_commit(const char *tmp, const char *dir, lrsa_err *e) {
    int rc = 0;
    if (lrsa_file_exists(dir)) {
        /* replacing (--force): move the old directory aside first, so a failed rename still
         * leaves one of the two */
        char old[4200];
        snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
        if (rename(dir, old) != 0)
            rc = lrsa_errorf(e, "cannot move the existing %s aside: %s", dir, strerror(errno));
        else if (rename(tmp, dir) != 0)
            rc = lrsa_errorf(e, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
        else
            lrsa_remove_tree(old);
    } else if (rename(tmp, dir) != 0) {
        rc = lrsa_errorf(e, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    }
    if (rc != 0) lrsa_remove_tree(tmp);
    return rc;
}

int lrsa_copy_file(const char *src, const char *dst, lrsa_err *e) {
    size_t n;
    char *buf = lrsa_read_file(src, &n, e);
    if (!buf) return -1;
    int rc = lrsa_write_file_atomic(dst, buf, n, e);
    free(buf);
    return rc;
}

int lrsa_check_output_file(const char *path, const char *what, lrsa_err *e) {
    if (lrsa_is_dir(path))
        return lrsa_errorf(e, "%s %s is a directory; give a file name inside it", what, path);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0'; /* "/x": the root */
    else
        *slash = '\0';
    if (!lrsa_is_dir(dir))
        return lrsa_errorf(e,
                           "%s %s: the directory %s does not exist; create it first (mkdir -p %s)",
                           what, path, dir, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return lrsa_errorf(e, "%s %s: the directory %s is not writable (%s)", what, path, dir,
                           strerror(errno));
    return 0;
}
