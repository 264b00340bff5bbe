/* A test-only LD_PRELOAD library that makes the disk look full: writes to files whose path
 * contains LRSA_TEST_ENOSPC_MATCH (default ".h5.tmp.", a checkpoint being written) succeed
 * until LRSA_TEST_ENOSPC_AFTER bytes have gone to such files in this process, then fail with
 * ENOSPC, as write(2) does on a full file system. Other files (the terminal, metrics) are left
 * alone. With LRSA_TEST_ENOSPC_STATVFS=1, statvfs() also reports only the bytes left as free
 * (the disk is honestly full); without it the file system claims room it does not have (as a
 * quota or a disk filling meanwhile does). Used by test_ckpt_faults; never linked into lrsa. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

/* Bytes the "disk" still takes (-1: not read from the environment yet). Test code: one
 * process-wide counter is the point of the shim. */
static long long room = -1;

static int watched(int fd) {
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    const char *match = getenv("LRSA_TEST_ENOSPC_MATCH");
    return strstr(target, match && *match ? match : ".h5.tmp.") != NULL;
}

static void read_room(void) {
    if (room < 0) {
        const char *s = getenv("LRSA_TEST_ENOSPC_AFTER");
        room = s ? atoll(s) : (long long)1 << 62;
    }
}

/* How many of n bytes may be written to fd: n, fewer (a short write), or -1 (ENOSPC). */
static ssize_t allowed(int fd, size_t n) {
    read_room();
    if (!watched(fd)) return (ssize_t)n;
    if (room == 0 && n > 0) {
        errno = ENOSPC;
        return -1;
    }
    size_t k = (long long)n < room ? n : (size_t)room;
    room -= (long long)k;
    return (ssize_t)k;
}

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    ssize_t k = allowed(fd, n);
    return k < 0 ? -1 : real(fd, buf, (size_t)k);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    ssize_t k = allowed(fd, n);
    return k < 0 ? -1 : real(fd, buf, (size_t)k, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    ssize_t k = allowed(fd, n);
    return k < 0 ? -1 : real(fd, buf, (size_t)k, off);
}

static int report_room(struct statvfs *v) {
    const char *s = getenv("LRSA_TEST_ENOSPC_STATVFS");
    if (!s || strcmp(s, "1")) return 0;
    read_room();
    v->f_bavail = v->f_bfree = (fsblkcnt_t)(room / (long long)(v->f_frsize ? v->f_frsize : 1));
    return 0;
}

/* (On 64-bit glibc statvfs64 is an alias the program does not call by that name.) */
int statvfs(const char *path, struct statvfs *v) {
    static int (*real)(const char *, struct statvfs *);
    if (!real) real = (int (*)(const char *, struct statvfs *))dlsym(RTLD_NEXT, "statvfs");
    int rc = real(path, v);
    return rc == 0 ? report_room(v) : rc;
}
