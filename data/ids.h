/* Growable vectors of token ids and of per-token loss-mask bytes. */
#ifndef LRSA_DATA_IDS_H
#define LRSA_DATA_IDS_H
#include <stdint.h>

typedef struct lrsa_ids {
    int32_t *v;
    int64_t n, cap;
} lrsa_ids;

typedef struct lrsa_mask {
    uint8_t *v;
    int64_t n, cap;
} lrsa_mask;

void lrsa_ids_push(lrsa_ids *a, int32_t id);
void lrsa_ids_append(lrsa_ids *a, const int32_t *ids, int64_t n);
void lrsa_ids_free(lrsa_ids *a);
void lrsa_mask_push(lrsa_mask *m, uint8_t x, int64_t count);
void lrsa_mask_free(lrsa_mask *m);
#endif
