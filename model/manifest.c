#include "model/manifest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/hash.h"

/* FNV-1a 64 of a whole file, read in 4 MB pieces; -1 with an error when it cannot be read. */
static int hash_file(const char *path, uint64_t *hash, int64_t *bytes, lrsa_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return lrsa_errorf(e, "cannot open %s: %s", path, strerror(errno));
    enum { PIECE = 4 << 20 };
    unsigned char *buf = lrsa_malloc(PIECE);
    uint64_t h = LRSA_FNV1A64_OFFSET;
    int64_t total = 0;
    size_t got;
    while ((got = fread(buf, 1, PIECE, f)) > 0) {
        h = lrsa_fnv1a64(buf, got, h);
        total += (int64_t)got;
    }
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) return lrsa_errorf(e, "cannot read %s (%s:%d)", path, __FILE__, __LINE__);
    *hash = h;
    *bytes = total;
    return 0;
}

int lrsa_manifest_write(const char *dir, const char *const *names, int n, lrsa_err *e) {
    cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", LRSA_MANIFEST_FORMAT);
    cJSON_AddItemToObject(root, "files", files);
    for (int i = 0; i < n; i++) {
        char path[4200], hex[17];
        lrsa_path_join(path, sizeof path, dir, names[i]);
        uint64_t h;
        int64_t bytes;
        if (hash_file(path, &h, &bytes, e)) {
            cJSON_Delete(root);
            return -1;
        }
        snprintf(hex, sizeof hex, "%016" PRIx64, h);
        cJSON *entry = cJSON_AddObjectToObject(files, names[i]);
        cJSON_AddNumberToObject(entry, "bytes", (double)bytes);
        cJSON_AddStringToObject(entry, "fnv1a64", hex);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char path[4200];
    lrsa_path_join(path, sizeof path, dir, LRSA_MANIFEST_NAME);
    int rc = text ? lrsa_write_file_atomic(path, text, strlen(text), e)
                  : lrsa_errorf(e, "cannot build %s (out of memory)", path);
    cJSON_free(text);
    return rc;
}

/* The fix every mismatch message ends with. */
#define MANIFEST_FIX                                                                               \
    "export the checkpoint again (lrsa export), or, if the change was intended, delete %s"

static int check_entry(const char *dir, const char *manifest, const cJSON *entry, lrsa_err *e) {
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(entry, "bytes");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(entry, "fnv1a64");
    if (!entry->string || !cJSON_IsNumber(bytes) || !cJSON_IsString(hash))
        return lrsa_errorf(e,
                           "%s: the entry for \"%s\" needs \"bytes\" (a number) and \"fnv1a64\" "
                           "(a string); " MANIFEST_FIX,
                           manifest, entry->string ? entry->string : "?", manifest);
    char path[4200], hex[17];
    lrsa_path_join(path, sizeof path, dir, entry->string);
    if (!lrsa_file_exists(path))
        return lrsa_errorf(e, "%s is missing, but %s lists it; " MANIFEST_FIX, path, manifest,
                           manifest);
    uint64_t h;
    int64_t size;
    if (hash_file(path, &h, &size, e)) return -1;
    if (size != (int64_t)bytes->valuedouble)
        return lrsa_errorf(e,
                           "%s has %lld bytes, but %s says the export wrote %lld (the file was "
                           "cut short or changed); " MANIFEST_FIX,
                           path, (long long)size, manifest, (long long)bytes->valuedouble,
                           manifest);
    snprintf(hex, sizeof hex, "%016" PRIx64, h);
    if (strcmp(hex, hash->valuestring))
        return lrsa_errorf(e,
                           "%s fails its checksum: FNV-1a 64 is %s, %s says %s (the file is "
                           "damaged or was changed after the export); " MANIFEST_FIX,
                           path, hex, manifest, hash->valuestring, manifest);
    return 0;
}

int lrsa_manifest_check(const char *dir, lrsa_err *e) {
    char manifest[4200];
    lrsa_path_join(manifest, sizeof manifest, dir, LRSA_MANIFEST_NAME);
    if (!lrsa_file_exists(manifest)) return 0;
    char *text = lrsa_read_file(manifest, NULL, e);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    int rc = 0;
    if (!cJSON_IsString(format) || strcmp(format->valuestring, LRSA_MANIFEST_FORMAT) ||
        !cJSON_IsObject(files))
        rc = lrsa_errorf(e,
                         "%s is not an lrsa manifest (it needs \"format\": \"%s\" and a "
                         "\"files\" object); " MANIFEST_FIX,
                         manifest, LRSA_MANIFEST_FORMAT, manifest);
    for (const cJSON *it = files ? files->child : NULL; it && !rc; it = it->next)
        rc = check_entry(dir, manifest, it, e);
    cJSON_Delete(root);
    return rc;
}
