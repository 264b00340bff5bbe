/* `lrsa export CKPT OUT_DIR [--dtype f32|bf16|f16] [--adapter] [--base DIR] [--force]`: a
 * training checkpoint -> a Hugging Face directory (config.json + model.safetensors + the tokenizer
 * files of the model it was trained from). A LoRA checkpoint gives the merged model (base +
 * adapter), or with --adapter a PEFT adapter directory. Either is written under a temporary name
 * and renamed into place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "cli/commands.h"
#include "model/lora.h"
#include "model/manifest.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/lora_ckpt.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lrsa export CKPT.h5 OUT_DIR [--dtype f32|bf16|f16] [--adapter] [--base DIR]\n"
            "                   [--force]\n"
            "\n"
            "Writes OUT_DIR/config.json and OUT_DIR/model.safetensors from a training\n"
            "checkpoint (RUN_DIR/ckpt/step_*.h5), and copies the tokenizer files from the\n"
            "model directory the run started from.\n"
            "\n"
            "A LoRA checkpoint holds the adapter only: the export merges it into the base\n"
            "model the run started from (whose weights must have the checksum the checkpoint\n"
            "recorded). --adapter writes a PEFT adapter directory instead\n"
            "(adapter_config.json, adapter_model.safetensors), for PEFT or\n"
            "`lrsa eval/generate --model BASE --adapter OUT_DIR`.\n"
            "OUT_DIR/lrsa-manifest.json records every file's size and checksum (of a model\n"
            "directory, not of an adapter directory); loading the directory checks them.\n"
            "\n"
            "  --dtype f32|bf16|f16  weight precision (default f32, the checkpoint's master\n"
            "                        precision: a short fine-tune moves weights by less than\n"
            "                        bf16's resolution, so bf16 can round its gain away)\n"
            "  --adapter             a LoRA checkpoint's adapter as a PEFT directory\n"
            "  --base DIR            the base model, when it is no longer where the\n"
            "                        checkpoint says\n"
            "  --force               replace OUT_DIR when it already exists\n");
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

/* The config of the model a checkpoint was trained with (its stored config.json). */
static int ckpt_model_config(lrsa_model_config *mc, const char *ckpt, lrsa_err *e) {
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
    int rc = bad ? lrsa_errorf(e, "cannot write %s", tmp) : lrsa_config_load(mc, tmp, e);
    unlink(tmp);
    if (rc) return lrsa_err_prefix(e, "the model config stored in %s: ", ckpt);
    return 0;
}

/* Builds the model a full fine-tuning checkpoint was trained with and loads its weights. */
static int load_ckpt_model(lrsa_model *m, const char *ckpt, lrsa_err *e) {
    lrsa_model_config mc;
    if (ckpt_model_config(&mc, ckpt, e) || lrsa_model_create(m, &mc, e)) return -1;
    if (lrsa_ckpt_read(ckpt, &m->table, 0, 0, NULL, NULL, NULL, e)) {
        lrsa_model_free(m);
        return -1;
    }
    return 0;
}

/* The adapter of a LoRA checkpoint, built for the model config it was trained with. */
static int load_ckpt_adapter(lrsa_lora *a, const lrsa_lora_config *lc, const lrsa_model_config *mc,
                             const char *ckpt, lrsa_err *e) {
    if (lrsa_lora_create(a, mc, lc, e)) return lrsa_err_prefix(e, "checkpoint %s: ", ckpt);
    if (lrsa_ckpt_read(ckpt, &a->table, 0, 0, NULL, NULL, NULL, e)) {
        lrsa_lora_free(a);
        return -1;
    }
    return 0;
}

/* The frozen base a LoRA run trained on: base_dir when given, else the model directory the
 * checkpoint records, or the random model its config describes; its checksum must match. */
static int load_lora_base(lrsa_model *m, const char *ckpt, const char *base_dir, lrsa_err *e) {
    char desc[4200];
    int rc = 0;
    if (base_dir) {
        snprintf(desc, sizeof desc, "given with --base (%s)", base_dir);
        rc = lrsa_model_load(m, base_dir, e);
    } else {
        char *yaml = lrsa_ckpt_read_string(ckpt, "config_yaml", e);
        char *path = yaml ? lrsa_ckpt_read_string(ckpt, "model_path", e) : NULL;
        lrsa_train_config c;
        lrsa_train_config_defaults(&c);
        if (!path || lrsa_train_config_parse(&c, yaml, strlen(yaml), ckpt, e)) {
            rc = -1;
        } else if (!strcmp(c.model_init, "random")) {
            lrsa_model_config mc;
            snprintf(desc, sizeof desc, "(model.init: random, seed %lld)", (long long)c.seed);
            rc = ckpt_model_config(&mc, ckpt, e) || lrsa_model_create(m, &mc, e) ? -1 : 0;
            if (!rc) lrsa_model_init_random(m, (uint64_t)c.seed, (float)c.model_init_std);
        } else {
            snprintf(desc, sizeof desc,
                     "in %s (recorded in the checkpoint; --base DIR names "
                     "another place)",
                     path);
            rc = lrsa_model_load(m, path, e);
        }
        free(yaml);
        free(path);
    }
    if (rc) return lrsa_err_prefix(e, "the base model of LoRA checkpoint %s: ", ckpt);
    if (lrsa_lora_ckpt_check_base(ckpt, m, desc, e)) {
        lrsa_model_free(m);
        return -1;
    }
    return 0;
}

/* --adapter: the checkpoint's adapter as a PEFT directory at out; the base is not read. */
static int export_adapter(const char *ckpt, const char *out, const lrsa_lora_config *lc,
                          const char *base_dir, lrsa_st_dtype dt, lrsa_err *e) {
    lrsa_model_config mc;
    lrsa_lora a;
    if (ckpt_model_config(&mc, ckpt, e) || load_ckpt_adapter(&a, lc, &mc, ckpt, e)) return -1;
    char *base = base_dir ? lrsa_strdup(base_dir) : lrsa_ckpt_read_string(ckpt, "model_path", e);
    int rc = base ? lrsa_lora_save_peft(&a, out, base, dt, e) : -1;
    lrsa_lora_free(&a);
    if (rc == 0 && !base[0])
        fprintf(stderr, "lrsa: note: the run started from a randomly initialised model, so "
                        "base_model_name_or_path is empty\n");
    free(base);
    return rc;
}

/* Copies the tokenizer files of the model directory the run started from (or base_dir) into
 * dir; *copied counts them. */
static int copy_tokenizer_files(const char *ckpt, const char *base_dir, const char *dir,
                                int *copied, lrsa_err *e) {
    *copied = 0;
    char *model_path =
        base_dir ? lrsa_strdup(base_dir) : lrsa_ckpt_read_string(ckpt, "model_path", e);
    if (!model_path || !model_path[0]) {
        free(model_path);
        fprintf(stderr, "lrsa: note: the run started from a randomly initialised model, so "
                        "there are no tokenizer files to copy\n");
        return 0;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof tokenizer_files / sizeof tokenizer_files[0]; i++) {
        char from[4200], to[4200];
        lrsa_path_join(from, sizeof from, model_path, tokenizer_files[i]);
        lrsa_path_join(to, sizeof to, dir, tokenizer_files[i]);
        if (!lrsa_file_exists(from)) continue;
        rc = lrsa_copy_file(from, to, e);
        *copied += rc == 0;
    }
    if (rc == 0 && !*copied)
        fprintf(stderr,
                "lrsa: warning: no tokenizer files found in %s (the model directory "
                "recorded in the checkpoint); copy them into the export by hand\n",
                model_path);
    free(model_path);
    return rc;
}

/* The checksums of everything written (checked whenever the directory is loaded). */
static int write_manifest(const char *dir, lrsa_err *e) {
    const char *written[2 + sizeof tokenizer_files / sizeof tokenizer_files[0]];
    int n_written = 0;
    written[n_written++] = "model.safetensors";
    written[n_written++] = "config.json";
    for (size_t i = 0; i < sizeof tokenizer_files / sizeof tokenizer_files[0]; i++) {
        char to[4200];
        lrsa_path_join(to, sizeof to, dir, tokenizer_files[i]);
        if (lrsa_file_exists(to)) written[n_written++] = tokenizer_files[i];
    }
    return lrsa_manifest_write(dir, written, n_written, e);
}

/* The checkpoint -> a model directory written at tmp (a LoRA checkpoint merged into its base);
 * the caller renames it into place. */
static int export_to(const char *ckpt, const char *tmp, int is_lora, const lrsa_lora_config *lc,
                     const char *base_dir, lrsa_st_dtype dt, int *copied, lrsa_err *e) {
    lrsa_model m;
    int rc = is_lora ? load_lora_base(&m, ckpt, base_dir, e) : load_ckpt_model(&m, ckpt, e);
    if (rc) return -1;
    if (is_lora) {
        lrsa_lora a;
        if (load_ckpt_adapter(&a, lc, &m.cfg, ckpt, e)) {
            lrsa_model_free(&m);
            return -1;
        }
        lrsa_lora_merge(&a, &m);
        lrsa_lora_free(&a);
    }
    rc = lrsa_model_save(&m, tmp, dt, e);
    lrsa_model_free(&m);
    if (rc == 0) rc = copy_tokenizer_files(ckpt, base_dir, tmp, copied, e);
    /* last: the checksums of everything written */
    if (rc == 0) rc = write_manifest(tmp, e);
    return rc;
}

int lrsa_cmd_export(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL}, *dtype_name = NULL, *base_dir = NULL;
    int npos = 0, adapter = 0, force = 0;
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
        } else if (!strcmp(argv[i], "--adapter")) {
            adapter = 1;
        } else if (!strcmp(argv[i], "--base")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lrsa: error: --base needs the base model's directory\n");
                return 2;
            }
            base_dir = argv[++i];
        } else if (!strcmp(argv[i], "--force")) {
            force = 1;
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
    /* Checkpoints hold float32 master weights (train/checkpoint.h): that is the default. */
    const int dtype_given = dtype_name != NULL;
    if (!dtype_given) dtype_name = "f32";
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
    if (lrsa_file_exists(pos[1]) && !force) {
        fprintf(stderr,
                "lrsa: error: export: output directory %s already exists; remove it or pass "
                "--force to replace it\n",
                pos[1]);
        return 2;
    }
    lrsa_err e;
    /* every dataset through its checksum, moments included: a damaged file exports nothing */
    if (lrsa_ckpt_verify(pos[0], 0, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    lrsa_lora_config lc;
    int is_lora = lrsa_lora_ckpt_config(pos[0], &lc, &e);
    if (is_lora < 0) {
        lrsa_err_print(&e);
        return 1;
    }
    if ((adapter || base_dir) && !is_lora) {
        fprintf(stderr,
                "lrsa: error: %s is a full fine-tuning checkpoint; --adapter and --base are for "
                "LoRA checkpoints (lora.rank > 0)\n",
                pos[0]);
        return 2;
    }
    char tmp[4200];
    lrsa_tmp_dir_name(tmp, sizeof tmp, pos[1]);
    int copied = 0;
    int rc = adapter ? export_adapter(pos[0], tmp, &lc, base_dir, dt, &e)
                     : export_to(pos[0], tmp, is_lora, &lc, base_dir, dt, &copied, &e);
    if (rc != 0) {
        lrsa_remove_tree(tmp);
        lrsa_err_print(&e);
        return 1;
    }
    if (lrsa_dir_commit(tmp, pos[1], &e) != 0) {
        lrsa_err_print(&e);
        return 1;
    }
    if (adapter)
        printf("exported the LoRA adapter of %s -> %s (PEFT directory, %s)\n", pos[0], pos[1],
               dtype_name);
    else
        printf("exported %s -> %s (%s%s weights%s, %d tokenizer file(s))\n", pos[0], pos[1],
               is_lora ? "base + LoRA adapter merged, " : "", dtype_name,
               dtype_given ? ""
                           : ": the checkpoint's master precision; --dtype bf16 halves the size",
               copied);
    return 0;
}
