/* YAML documents for the config readers: syntax errors and repeated keys (see yaml_doc.h). */
#include "base/yaml_doc.h"

#include <string.h>

int lrsa_yaml_line(const yaml_node_t *n) {
    return (int)n->start_mark.line + 1;
}

static int same_scalar(const yaml_node_t *a, const yaml_node_t *b) {
    return a && b && a->type == YAML_SCALAR_NODE && b->type == YAML_SCALAR_NODE &&
           a->data.scalar.length == b->data.scalar.length &&
           memcmp(a->data.scalar.value, b->data.scalar.value, a->data.scalar.length) == 0;
}

/* Every mapping of the document (nested ones included: libyaml keeps all nodes in one array),
 * pair against earlier pair; configs are small, so the quadratic scan costs nothing. */
static int check_repeated_keys(yaml_document_t *doc, const char *where, lrsa_err *e) {
    for (yaml_node_t *n = doc->nodes.start; n < doc->nodes.top; n++) {
        if (n->type != YAML_MAPPING_NODE) continue;
        yaml_node_pair_t *first = n->data.mapping.pairs.start, *top = n->data.mapping.pairs.top;
        for (yaml_node_pair_t *p = first; p < top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            for (yaml_node_pair_t *q = first; q < p; q++) {
                yaml_node_t *earlier = yaml_document_get_node(doc, q->key);
                if (!same_scalar(k, earlier)) continue;
                return lrsa_errorf(e,
                                   "%s:%d: key '%s' appears twice in the same mapping (first on "
                                   "line %d); keep one of the two",
                                   where, lrsa_yaml_line(k), (const char *)k->data.scalar.value,
                                   lrsa_yaml_line(earlier));
            }
        }
    }
    return 0;
}

int lrsa_yaml_load(yaml_document_t *doc, const char *text, size_t n, const char *where,
                   lrsa_err *e) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return lrsa_errorf(e, "%s: libyaml init failed", where);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    int rc = 0;
    if (!yaml_parser_load(&parser, doc))
        rc = lrsa_errorf(e, "%s:%d:%d: YAML syntax error: %s%s%s", where,
                         (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                         parser.problem ? parser.problem : "?", parser.context ? " " : "",
                         parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    if (rc == 0 && check_repeated_keys(doc, where, e) != 0) {
        yaml_document_delete(doc);
        rc = -1;
    }
    return rc;
}
