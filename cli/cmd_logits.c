/* `lrsa logits`: logits (and optionally the loss and every parameter gradient) of a model on
 * given token ids, written as safetensors. Used for parity checks against other frameworks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd_util.h"
#include "model/lora.h"
#include "model/model.h"
#include "cli/commands.h"

static const char *LOGITS_HELP =
    "usage: lrsa logits --model DIR [--adapter DIR] --ids FILE --out OUT.safetensors\n"
    "                   [--loss-mask FILE]\n"
    "                   [--grads] [--attn dense|lrsa --sink S --lag L --keep r\n"
    "                   --value-weight w]\n"
    "  --adapter DIR     a PEFT LoRA adapter directory, merged into the model at load\n"
    "  --ids FILE        whitespace-separated token ids, one sequence per line, all\n"
    "                    lines the same length\n"
    "  --loss-mask FILE  0/1 per token, same shape: 1 = this token is predicted by the\n"
    "                    loss (default: every token after the first)\n"
    "  --grads           also write `loss` (mean NLL over the masked tokens) and\n"
    "                    `grad.<name>` for every parameter\n"
    "Writes `logits` [B, T, V] F32.\n";

static int run(int argc, char **argv, lrsa_err *e) {
    const char *model_dir = NULL, *ids_path = NULL, *out = NULL, *mask_path = NULL, *adapter = NULL;
    int grads = 0;
    lrsa_attn_config attn;
    lrsa_attn_config_default(&attn);
    for (int i = 1; i < argc; i++) {
        int r = lrsa_parse_attn_flag(&attn, argc, argv, &i, e);
        if (r < 0) return -1;
        if (r > 0) continue;
        const char *a = argv[i];
        const char **dst = strcmp(a, "--model") == 0       ? &model_dir
                           : strcmp(a, "--ids") == 0       ? &ids_path
                           : strcmp(a, "--out") == 0       ? &out
                           : strcmp(a, "--loss-mask") == 0 ? &mask_path
                           : strcmp(a, "--adapter") == 0   ? &adapter
                                                           : NULL;
        if (dst) {
            if (i + 1 >= argc) return lrsa_errorf(e, "flag %s needs a value", a);
            *dst = argv[++i];
        } else if (strcmp(a, "--grads") == 0) {
            grads = 1;
        } else {
            return lrsa_errorf(e, "unknown argument \"%s\"; see `lrsa logits --help`", a);
        }
    }
    if (!model_dir || !ids_path || !out)
        return lrsa_errorf(e, "--model, --ids and --out are required; see `lrsa logits --help`");
    if (lrsa_attn_config_check(&attn, e)) return -1;

    int B, T;
    int32_t *ids = lrsa_read_int_rows(ids_path, &B, &T, e);
    if (!ids) return lrsa_err_prefix(e, "--ids: ");
    int32_t *mask = NULL;
    if (mask_path) {
        int mb, mt;
        mask = lrsa_read_int_rows(mask_path, &mb, &mt, e);
        if (!mask) {
            free(ids);
            return lrsa_err_prefix(e, "--loss-mask: ");
        }
        if (mb != B || mt != T) {
            free(ids);
            free(mask);
            return lrsa_errorf(e,
                               "--loss-mask %s is %dx%d but --ids %s is %dx%d; give one 0/1 "
                               "per token",
                               mask_path, mb, mt, ids_path, B, T);
        }
    }
    lrsa_model m;
    if (lrsa_model_load_adapted(&m, model_dir, adapter, e)) {
        free(ids);
        free(mask);
        return -1;
    }
    int rc = 0;
    const int64_t N = (int64_t)B * T, V = m.cfg.vocab_size;
    for (int64_t i = 0; i < N && !rc; i++)
        if (ids[i] < 0 || ids[i] >= V)
            rc = lrsa_errorf(e,
                             "%s: line %lld, position %lld: id %d is outside the model's "
                             "vocabulary [0, %lld)",
                             ids_path, (long long)(i / T + 1), (long long)(i % T + 1), ids[i],
                             (long long)V);
    float *logits = NULL, *w = NULL;
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_st_writer *wr = lrsa_st_writer_new();
    float loss = 0.f;
    if (!rc) {
        logits = lrsa_malloc((size_t)(N * V) * sizeof(float));
        lrsa_model_logits(&m, ws, ids, B, T, &attn, logits);
        int64_t shape[3] = {B, T, V};
        lrsa_st_writer_add_f32(wr, "logits", LRSA_ST_F32, 3, shape, logits);
    }
    if (!rc && grads) {
        w = lrsa_calloc((size_t)N, sizeof(float));
        int64_t count = 0;
        for (int64_t i = 0; i < N; i++)
            if (i % T != 0 && (!mask || mask[i] != 0)) count++;
        if (count == 0)
            rc = lrsa_errorf(e,
                             "--loss-mask %s selects no token after the first of a line; "
                             "nothing to differentiate",
                             mask_path ? mask_path : "(none)");
        for (int64_t i = 0; i < N && !rc; i++)
            if (i % T != 0 && (!mask || mask[i] != 0)) w[i] = 1.0f / (float)count;
        if (!rc) {
            lrsa_table_alloc(&m.table, LRSA_ROLE_GRAD);
            lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
            loss = (float)lrsa_model_forward_backward(&m, ws, ids, w, B, T, &attn, 0, 1, NULL);
            lrsa_st_writer_add_f32(wr, "loss", LRSA_ST_F32, 0, NULL, &loss);
            for (int i = 0; i < m.table.n; i++) {
                const lrsa_param_desc *d = &m.table.desc[i];
                char name[160];
                snprintf(name, sizeof name, "grad.%s", d->name);
                lrsa_st_writer_add_f32(wr, name, LRSA_ST_F32, d->ndim, d->shape,
                                       lrsa_table_ptr(&m.table, LRSA_ROLE_GRAD, i));
            }
        }
    }
    if (!rc) rc = lrsa_st_writer_write(wr, out, e);
    lrsa_st_writer_free(wr);
    lrsa_workspace_free(ws);
    lrsa_model_free(&m);
    free(logits);
    free(w);
    free(ids);
    free(mask);
    return rc;
}

int lrsa_cmd_logits(int argc, char **argv) {
    return lrsa_cmd_main(argc, argv, LOGITS_HELP, run);
}
