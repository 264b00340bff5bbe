/* The checkpoint directory: which checkpoint a run resumes from, and which ones the cleanup
 * keeps. Unreadable files never displace readable ones. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "train/checkpoint.h"

void lrsa_ckpt_path(char *out, size_t cap, const char *ckpt_dir, int64_t step) {
    char name[64];
    snprintf(name, sizeof name, "step_%06lld.h5", (long long)step);
    lrsa_path_join(out, cap, ckpt_dir, name);
}

/* Parses "step_<digits>.h5" exactly; -1 otherwise (temporary and set-aside files do not
 * match). */
static int64_t ckpt_step_of(const char *name) {
    if (strncmp(name, "step_", 5)) return -1;
    const char *p = name + 5;
    int64_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0'), digits++;
    return digits && !strcmp(p, ".h5") ? v : -1;
}

/* Steps of the checkpoints in dir, descending; returns the count (malloc'd array in *steps). */
static int list_ckpts(const char *dir, int64_t **steps) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t s = ckpt_step_of(de->d_name);
        if (s < 0) continue;
        if (n == cap) *steps = lrsa_realloc(*steps, sizeof(int64_t) * (size_t)(cap = cap * 2 + 8));
        (*steps)[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t x = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = x;
        }
    return n;
}

int lrsa_ckpt_count(const char *ckpt_dir) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps);
    free(steps);
    return n;
}

int lrsa_ckpt_find_latest(const char *ckpt_dir, char *out, size_t cap) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps), found = 0;
    for (int i = 0; i < n && !found; i++) {
        lrsa_ckpt_path(out, cap, ckpt_dir, steps[i]);
        lrsa_err e;
        if (!lrsa_ckpt_opens(out, &e))
            found = 1;
        else
            fprintf(stderr, "lrsa: warning: skipping unreadable checkpoint: %s\n", e.msg);
    }
    free(steps);
    return found;
}

/* Appends to a bounded message, ending it with "..." when it no longer fits. */
static void append(char *buf, size_t cap, const char *text) {
    size_t k = strlen(buf);
    if (k + strlen(text) + 4 < cap)
        memcpy(buf + k, text, strlen(text) + 1);
    else if (k + 4 < cap && strcmp(buf + (k >= 3 ? k - 3 : 0), "..."))
        memcpy(buf + k, "...", 4);
}

int lrsa_ckpt_choose_resume(const char *ckpt_dir, int mode, char *out, size_t cap, lrsa_err *e) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps);
    out[0] = 0;
    if (n == 0 || mode == LRSA_RESUME_RESTART) {
        free(steps);
        return 0;
    }
    if (mode == LRSA_RESUME_NO) {
        lrsa_ckpt_path(out, cap, ckpt_dir, steps[0]);
        lrsa_errorf(e,
                    "%s already holds checkpoints (%d, the newest %s); set resume: true (or "
                    "resume=true on the command line) to continue that run, resume=restart to "
                    "delete them and start over, or choose a new run_dir",
                    ckpt_dir, n, out);
        out[0] = 0;
        free(steps);
        return -1;
    }
    /* Newest first; a checkpoint must read back whole (every checksum) to be resumed from. */
    char bad[1400] = "";
    int found = 0;
    for (int i = 0; i < n && !found; i++) {
        lrsa_ckpt_path(out, cap, ckpt_dir, steps[i]);
        lrsa_err ve;
        if (!lrsa_ckpt_verify(out, 0, &ve)) {
            found = 1;
            break;
        }
        char line[900];
        snprintf(line, sizeof line, "%s%s", bad[0] ? "; " : "", ve.msg);
        append(bad, sizeof bad, line);
    }
    if (found && bad[0])
        fprintf(stderr,
                "lrsa: warning: the newest checkpoint(s) cannot be used (%s). Resuming from the "
                "older %s instead; the unreadable file(s) are renamed to *.unreadable and kept "
                "for inspection\n",
                bad, out);
    if (!found) {
        out[0] = 0;
        lrsa_errorf(e,
                    "none of the %d checkpoint(s) in %s can be read: %s. Nothing was changed. "
                    "To start the run over, set resume=restart (this deletes them), or choose a "
                    "new run_dir",
                    n, ckpt_dir, bad);
    }
    free(steps);
    return found ? 1 : -1;
}

int lrsa_ckpt_set_aside_newer(const char *ckpt_dir, int64_t step) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps), moved = 0;
    for (int i = 0; i < n && steps[i] > step; i++) {
        char from[4200], to[4300];
        lrsa_ckpt_path(from, sizeof from, ckpt_dir, steps[i]);
        snprintf(to, sizeof to, "%s.unreadable", from);
        if (rename(from, to) == 0)
            moved++;
        else
            fprintf(stderr, "lrsa: warning: cannot rename %s to %s\n", from, to);
    }
    free(steps);
    return moved;
}

/* Leftovers of writes that were killed: "step_*.h5.tmp.<pid>". */
static void remove_leftovers(const char *ckpt_dir) {
    DIR *d = opendir(ckpt_dir);
    if (!d) return;
    struct dirent *de;
    char path[4096 + 300];
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "step_", 5) && strstr(de->d_name, ".h5.tmp.")) {
            lrsa_path_join(path, sizeof path, ckpt_dir, de->d_name);
            unlink(path);
        }
    closedir(d);
}

int lrsa_ckpt_remove_all(const char *ckpt_dir) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps), removed = 0;
    for (int i = 0; i < n; i++) {
        char path[4200];
        lrsa_ckpt_path(path, sizeof path, ckpt_dir, steps[i]);
        removed += unlink(path) == 0;
    }
    free(steps);
    remove_leftovers(ckpt_dir);
    return removed;
}

void lrsa_ckpt_prune(const char *ckpt_dir, int64_t keep) {
    int64_t *steps;
    int n = list_ckpts(ckpt_dir, &steps);
    char path[4096 + 64];
    int64_t readable = 0;
    /* Only checkpoints that open count towards `keep`; an unreadable file is left alone, so a
     * damaged newer file can never push a good one out. */
    for (int i = 0; i < n; i++) {
        lrsa_ckpt_path(path, sizeof path, ckpt_dir, steps[i]);
        lrsa_err e;
        if (lrsa_ckpt_opens(path, &e)) continue;
        if (++readable > keep) unlink(path);
    }
    free(steps);
    remove_leftovers(ckpt_dir);
}
