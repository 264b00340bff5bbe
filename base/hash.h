/* FNV-1a 64, the project's checksum and name hash: the tokenizer checksum, the export manifest
 * (model/manifest.c), the held-out essay split (data/haystack.c), the GGUF name index. One
 * definition, so that every one of them hashes the same bytes to the same value; the values are
 * written to files (manifests, tokenizer checksums), so they must never change. */
#ifndef LRSA_BASE_HASH_H
#define LRSA_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define LRSA_FNV1A64_OFFSET 0xcbf29ce484222325ULL /* the hash of no bytes: where a hash starts */
#define LRSA_FNV1A64_PRIME  0x100000001b3ULL

/* Continues the hash h over n bytes at p (start with h = LRSA_FNV1A64_OFFSET). */
static inline uint64_t lrsa_fnv1a64(const void *p, size_t n, uint64_t h) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * LRSA_FNV1A64_PRIME;
    return h;
}

/* The hash of a NUL-terminated string (without its NUL). */
static inline uint64_t lrsa_fnv1a64_str(const char *s) {
    uint64_t h = LRSA_FNV1A64_OFFSET;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * LRSA_FNV1A64_PRIME;
    return h;
}

#endif
