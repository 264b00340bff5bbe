/* Files: whole-file reads, atomic writes (temporary name + rename), directories, timing.
 * Every writer of a user-visible file (checkpoints, safetensors, HDF5 datasets, reports) goes
 * through lrsa_atomic_*: a crash or an error leaves either the old file or no file, never a
 * half-written one. */
#ifndef LRSA_FILEIO_H
#define LRSA_FILEIO_H

#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

/* Reads a whole file into a NUL-terminated buffer (size excludes the NUL). Free with free(). */
char *lrsa_read_file(const char *path, size_t *size, lrsa_err *e);

/* Atomic writing: open writes to "<path>.tmp.<pid>"; commit fsyncs, closes and renames over
 * path; abort closes and deletes the temporary file. */
typedef struct lrsa_atomic_file {
    FILE *f;
    char path[4096];
    char tmp_path[4096 + 32];
} lrsa_atomic_file;
int lrsa_atomic_open(lrsa_atomic_file *af, const char *path, lrsa_err *e);
int lrsa_atomic_commit(lrsa_atomic_file *af, lrsa_err *e);
void lrsa_atomic_abort(lrsa_atomic_file *af);
/* For writers that need a path (HDF5): the temporary name to write, then rename it. */
void lrsa_tmp_name(char *out, size_t cap, const char *path);
int lrsa_rename_into_place(const char *tmp_path, const char *path, lrsa_err *e);
/* Writes a whole buffer atomically. */
int lrsa_write_file_atomic(const char *path, const void *data, size_t n, lrsa_err *e);

/* Output directories: write the new one at lrsa_tmp_dir_name ("DIR.tmp.<pid>"), then
 * lrsa_dir_commit renames it to DIR, replacing an existing DIR (moved aside first, removed after
 * the rename); on failure the temporary directory is removed and DIR is as it was. */
void lrsa_tmp_dir_name(char *out, size_t cap, const char *dir);
int lrsa_dir_commit(const char *tmp, const char *dir, lrsa_err *e);
/* Checks, before a long run, that `path` can be written at its end: not a directory, in an
 * existing, writable directory. `what` names it in the message ("--json"). */
int lrsa_check_output_file(const char *path, const char *what, lrsa_err *e);
/* Copies a whole file (written atomically). */
int lrsa_copy_file(const char *src, const char *dst, lrsa_err *e);
/* rm -r (best effort). */
void lrsa_remove_tree(const char *path);

/* mkdir -p. */
int lrsa_mkdirs(const char *path, lrsa_err *e);
int lrsa_file_exists(const char *path);
int lrsa_is_dir(const char *path);
/* Joins dir and name with one '/'. */
void lrsa_path_join(char *out, size_t cap, const char *dir, const char *name);

/* Monotonic seconds. */
double lrsa_now(void);

/* Peak resident memory of this process image in MiB: VmHWM of /proc/self/status (the high-water
 * mark of the memory map since exec, so not the parent's size that getrusage's ru_maxrss keeps
 * across fork and exec), else ru_maxrss where /proc is missing. */
double lrsa_peak_rss_mib(void);

#endif
