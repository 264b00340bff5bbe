/* The checksum manifest of an exported model directory (`lrsa export`): OUT_DIR/lrsa-manifest.json
 * lists every file the export wrote with its size in bytes and its FNV-1a 64-bit hash (the
 * project's checksum hash, docs/TOKENIZER.md), so a file damaged or changed later (a disk
 * error, a copy cut short, bytes overwritten in place) is found when the model is loaded,
 * naming the file. A directory without a manifest (a Hugging Face download, `lrsa convert`)
 * loads unchecked.
 *
 *   {"format": "lrsa-manifest-v1",
 *    "files": {"model.safetensors": {"bytes": 540000000, "fnv1a64": "9f0c..."}, ...}} */
#ifndef LRSA_MODEL_MANIFEST_H
#define LRSA_MODEL_MANIFEST_H

#include "base/error.h"

#define LRSA_MANIFEST_NAME   "lrsa-manifest.json"
#define LRSA_MANIFEST_FORMAT "lrsa-manifest-v1"

/* Hashes the n named files of dir (names relative to dir) and writes dir/lrsa-manifest.json
 * (to a temporary name, then renamed). */
int lrsa_manifest_write(const char *dir, const char *const *names, int n, lrsa_err *e);
/* Checks every file dir/lrsa-manifest.json lists: present, of the listed size and hash.
 * 0 when they all match or there is no manifest; else -1 with an error naming the file, what
 * differs and the fix. */
int lrsa_manifest_check(const char *dir, lrsa_err *e);

#endif
