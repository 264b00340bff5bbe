/* `lrsa export CKPT OUT_DIR [--dtype f32|bf16|f16]`: a training checkpoint -> a Hugging Face
 * directory (config.json + model.safetensors + the tokenizer files of the model it was trained
 * from). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "cli/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: lrsa export CKPT.h5 OUT_DIR [--dtype f32|bf16|f16]\n"
               "\n"
               "Writes OUT_DIR/config.json and OUT_DIR/model.safetensors from a training\n"
               "checkpoint (RUN_DIR/ckpt/step_*.h5), and copies the tokenizer files from the\n"
               "model directory the run started from. --dtype defaults to bf16.\n");
}

/* The tokenizer and generation files a Hugging Face directory carries next to the weights. */
static const char *const tokenizer_files[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "tokenizer.model",
};

static int copy_file(const char *from, const char *to, lrsa_err *e) {
    size_t n;
    char *buf = lrsa_read_file(from, &n, e);
    if (!buf) return -1;
    int rc = lrsa_write_file_atomic(to, buf, n, e);
    free(buf);
    return rc;
}

/* Builds the model a checkpoint was trained with (from its stored config.json) and loads the
 * weights. */
static int load_ckpt_model(lrsa_model *m, const char *ckpt, lrsa_err *e) {
    char *json = lrsa_ckpt_read_string(ckpt, "model_config_json", e);
    if (!json) return -1;
    char tmp[] = "/tmp/lrsa-export-config-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(json);
        return lrsa_errorf(e, "cannot create a temporary file in /tmp (set TMPDIR?)");
    }
    size_t len = strlen(json);
    int bad = write(fd, json, len) != (ssize_t)len;
    close(fd);
    free(json);
    lrsa_model_config mc;
    int rc = bad ? lrsa_errorf(e, "cannot write %s", tmp) : lrsa_config_load(&mc, tmp, e);
    unlink(tmp);
    if (rc) return lrsa_err_prefix(e, "the model config stored in %s: ", ckpt);
    if (lrsa_model_create(m, &mc, e)) return -1;
    if (lrsa_ckpt_read(ckpt, &m->table, 0, 0, NULL, NULL, NULL, e)) {
        lrsa_model_free(m);
        return -1;
    }
    return 0;
}

int lrsa_cmd_export(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL}, *dtype_name = "bf16";
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--dtype")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lrsa: error: --dtype needs a value: f32, bf16 or f16\n");
                return 2;
            }
            dtype_name = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "lrsa: error: unknown option '%s' (see lrsa export --help)\n", argv[i]);
            return 2;
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "lrsa: error: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (npos != 2) {
        usage(stderr);
        return 2;
    }
    lrsa_st_dtype dt;
    if (!strcmp(dtype_name, "f32"))
        dt = LRSA_ST_F32;
    else if (!strcmp(dtype_name, "bf16"))
        dt = LRSA_ST_BF16;
    else if (!strcmp(dtype_name, "f16"))
        dt = LRSA_ST_F16;
    else {
        fprintf(stderr, "lrsa: error: --dtype %s: expected f32, bf16 or f16\n", dtype_name);
        return 2;
    }
    lrsa_err e;
    lrsa_model m;
    if (load_ckpt_model(&m, pos[0], &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    int rc = lrsa_model_save(&m, pos[1], dt, &e);
    lrsa_model_free(&m);
    if (rc) {
        lrsa_err_print(&e);
        return 1;
    }
    char *model_path = lrsa_ckpt_read_string(pos[0], "model_path", &e);
    int copied = 0;
    if (model_path && model_path[0]) {
        for (size_t i = 0; i < sizeof tokenizer_files / sizeof tokenizer_files[0]; i++) {
            char from[4200], to[4200];
            lrsa_path_join(from, sizeof from, model_path, tokenizer_files[i]);
            lrsa_path_join(to, sizeof to, pos[1], tokenizer_files[i]);
            if (!lrsa_file_exists(from)) continue;
            if (copy_file(from, to, &e)) {
                lrsa_err_print(&e);
                free(model_path);
                return 1;
            }
            copied++;
        }
        if (!copied)
            fprintf(stderr,
                    "lrsa: warning: no tokenizer files found in %s (the model directory "
                    "recorded in the checkpoint); copy them into %s by hand\n",
                    model_path, pos[1]);
    } else {
        fprintf(stderr, "lrsa: note: the run started from a randomly initialised model, so "
                        "there are no tokenizer files to copy\n");
    }
    free(model_path);
    printf("exported %s -> %s (%s weights, %d tokenizer file(s))\n", pos[0], pos[1], dtype_name,
           copied);
    return 0;
}
