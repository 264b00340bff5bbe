/* Weight readiness for the forward, the mirror of the backward's gradient readiness
 * (lrsa_workspace_on_grads_ready, model.h): during every forward on the workspace, fn(ctx, end)
 * is called before the forward reads weights below arena offset `end` of the model's table, with
 * `end` growing: the end of the embedding (the first layer's offset) before the embedding, the
 * next layer's offset (the final norm's after the last layer) before each layer, and the whole
 * arena (numel) before the final norm and LM head. A data-parallel engine that all-gathers the
 * updated weights bucket by bucket makes the compute stream wait there for the buckets below
 * `end` only (train/zero_gpu.h), so the gather of the later layers runs behind the forward of the
 * first. On a device op table the calls come when the work is enqueued, not done. fn NULL: no
 * calls. In its own header, not model.h, so adding it did not rebuild every file. */
#ifndef LRSA_MODEL_WEIGHTS_NEEDED_H
#define LRSA_MODEL_WEIGHTS_NEEDED_H

#include <stdint.h>

#include "model/model.h"

typedef void (*lrsa_weights_needed_fn)(void *ctx, int64_t end);
void lrsa_workspace_on_weights_needed(lrsa_workspace *ws, lrsa_weights_needed_fn fn, void *ctx);

#endif
