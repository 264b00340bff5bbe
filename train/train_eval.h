/* The trainer's evaluation: the compressed answer-NLL (eval/run/answer_nll.h) of the first
 * data.eval_samples held-out samples, with a full KV cache and with LagKV at the configured
 * attention.keep (chunked prefill, the mode LRSA trains for). Samples are spread over ranks
 * (i % world) and the sums reduced. */
#ifndef LRSA_TRAIN_TRAIN_EVAL_H
#define LRSA_TRAIN_TRAIN_EVAL_H

#include "data/dataset.h"
#include "model/model.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/train_log.h"

int lrsa_train_eval(const lrsa_model *m, const lrsa_dataset *ds, const lrsa_train_config *c,
                    const lrsa_comm *comm, lrsa_eval_record *r, lrsa_err *e);

#endif
