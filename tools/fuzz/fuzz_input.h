/* For the fuzz targets whose reader takes a path: writes the input to a per-process file in
 * /dev/shm (or TMPDIR, or /tmp) named lrsa_fuzz_<tag>_<pid>, and returns its path (NULL when it
 * cannot be written). */
#ifndef LRSA_FUZZ_INPUT_H
#define LRSA_FUZZ_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fuzz_input_file(const uint8_t *data, size_t size, const char *tag) {
    static char path[512];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/lrsa_fuzz_%s_%ld", dir ? dir : "/tmp", tag, (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    int bad = fwrite(data, 1, size, f) != size;
    bad |= fclose(f) != 0;
    return bad ? NULL : path;
}

#endif
