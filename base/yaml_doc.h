/* Loading a YAML document for the config readers (the training config, the evaluation grid):
 * libyaml's syntax errors with file, line and column, and the checks libyaml leaves to its
 * users. YAML says the keys of a mapping are unique, but libyaml keeps both pairs of a repeated
 * key and a reader taking the last would silently drop the first; here it is an error naming
 * both lines. */
#ifndef LRSA_BASE_YAML_DOC_H
#define LRSA_BASE_YAML_DOC_H
#include <stddef.h>
#include <yaml.h>

#include "base/error.h"

/* Parses text[0:n] into *doc (delete it with yaml_document_delete after a 0 return). `where`
 * names the text in messages ("FILE" or "command line"). Returns -1 on a syntax error or a key
 * that appears twice in one mapping, with *e naming the place(s); *doc is then released. */
int lrsa_yaml_load(yaml_document_t *doc, const char *text, size_t n, const char *where,
                   lrsa_err *e);

/* The 1-based line a node starts on. */
int lrsa_yaml_line(const yaml_node_t *n);
#endif
