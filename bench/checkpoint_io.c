/* Checkpoint I/O benchmark: write, verify (every chunk's Fletcher32 checksum) and read a
 * training checkpoint of a SmolLM2-135M-shaped model (weights + both AdamW moments, fp32),
 * next to a plain read() of the same file, so the checksum's cost shows; then the same model
 * exported (fp32 safetensors) and its manifest written and checked (FNV-1a 64 of every file).
 *
 *   bench_checkpoint_io [--layers N] [--dir DIR]     (default: 30 layers, /tmp)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "model/manifest.h"
#include "model/model.h"
#include "train/checkpoint.h"

static double raw_read(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    char *buf = lrsa_malloc(1 << 22);
    double t0 = lrsa_now();
    while (read(fd, buf, 1 << 22) > 0) {
    }
    double dt = lrsa_now() - t0;
    close(fd);
    free(buf);
    return dt;
}

int main(int argc, char **argv) {
    int layers = 30;
    const char *dir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--layers"))
            layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
    }
    lrsa_model_config c = {0};
    c.arch = LRSA_ARCH_LLAMA;
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab_size = 49152, c.hidden_size = 576, c.intermediate_size = 1536;
    c.num_hidden_layers = layers, c.num_attention_heads = 9, c.num_key_value_heads = 3;
    c.head_dim = 64, c.rms_norm_eps = 1e-5f, c.tie_word_embeddings = 1;
    c.max_position_embeddings = 8192;
    c.rope.theta = 100000.f, c.rope.factor = 1.f;
    lrsa_model m;
    lrsa_err e;
    if (lrsa_model_create(&m, &c, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    lrsa_model_init_random(&m, 1, 0.02f);
    int64_t n = m.table.numel;
    float *mom = lrsa_malloc(sizeof(float) * (size_t)n * 2);
    lrsa_rng r;
    lrsa_rng_seed(&r, 2);
    for (int64_t i = 0; i < 2 * n; i++) mom[i] = lrsa_rng_normal(&r) * 1e-3f;
    lrsa_ckpt_state s = {.step = 1, .adam_t = 1, .world_size = 1};
    lrsa_ckpt_text text = {
        .config_yaml = "bench: true\n", .model_config_json = "{}", .model_path = ""};
    char path[4200];
    snprintf(path, sizeof path, "%s/bench_ckpt_%d.h5", dir, (int)getpid());
    double t0 = lrsa_now();
    if (lrsa_ckpt_write(path, &m.table, mom, mom + n, &s, &text, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    double t_write = lrsa_now() - t0;
    struct stat st;
    stat(path, &st);
    t0 = lrsa_now();
    if (lrsa_ckpt_verify(path, 0, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    double t_verify = lrsa_now() - t0;
    t0 = lrsa_now();
    if (lrsa_ckpt_read(path, &m.table, 0, n, mom, mom + n, NULL, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    double t_read = lrsa_now() - t0, t_raw = raw_read(path);
    printf("checkpoint of %lld parameters (%d layers): %.2f GB on disk\n", (long long)n, layers,
           (double)st.st_size / 1e9);
    printf("write (chunked, Fletcher32, fsync): %.2f s (%.0f MB/s)\n", t_write,
           st.st_size / 1e6 / t_write);
    printf("verify (every chunk's checksum):    %.2f s (%.0f MB/s)\n", t_verify,
           st.st_size / 1e6 / t_verify);
    printf("read (weights + whole moments):     %.2f s (%.0f MB/s)\n", t_read,
           st.st_size / 1e6 / t_read);
    printf("plain read() of the file:           %.2f s (%.0f MB/s)\n", t_raw,
           st.st_size / 1e6 / t_raw);
    unlink(path);

    char out_dir[4200], st_path[4300];
    snprintf(out_dir, sizeof out_dir, "%s/bench_export_%d", dir, (int)getpid());
    if (lrsa_model_save(&m, out_dir, LRSA_ST_F32, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    lrsa_path_join(st_path, sizeof st_path, out_dir, "model.safetensors");
    stat(st_path, &st);
    const char *names[] = {"model.safetensors", "config.json"};
    t0 = lrsa_now();
    if (lrsa_manifest_write(out_dir, names, 2, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    double t_mwrite = lrsa_now() - t0;
    t0 = lrsa_now();
    if (lrsa_manifest_check(out_dir, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    double t_mcheck = lrsa_now() - t0;
    printf("export's manifest, write (hash %.2f GB): %.2f s (%.0f MB/s)\n",
           (double)st.st_size / 1e9, t_mwrite, st.st_size / 1e6 / t_mwrite);
    printf("export's manifest, check at load:      %.2f s (%.0f MB/s)\n", t_mcheck,
           st.st_size / 1e6 / t_mcheck);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_dir);
    if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", out_dir);
    free(mom);
    lrsa_model_free(&m);
    return 0;
}
