/* `lrsa train CONFIG.yaml [section.key=value ...]`: fine-tune from a YAML config. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/comm.h"
#include "cli/commands.h"
#include "train/config.h"
#include "train/trainer.h"

/* First signal: checkpoint and stop after the current step. Second: the default action. */
static void on_stop_signal(int sig) {
    if (lrsa_train_stop_requested()) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    lrsa_train_request_stop(sig);
}

static void install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: lrsa train CONFIG.yaml [section.key=value ...] [--stop-after N] [--quiet]\n"
            "       mpirun -np N lrsa train CONFIG.yaml ...   (data parallel, ZeRO-1)\n"
            "\n"
            "Fine-tunes a model as the YAML config says. Overrides use dotted keys, e.g.\n"
            "  lrsa train configs/smollm2-135m-lrsa.yaml optim.lr=1e-4 run_dir=runs/try2\n"
            "Writes RUN_DIR/config.resolved.yaml, RUN_DIR/metrics.jsonl and checkpoints in\n"
            "RUN_DIR/ckpt/; resume=true continues from the newest checkpoint that reads back\n"
            "whole (checksums checked); resume=restart deletes the checkpoints and starts over.\n"
            "\n"
            "options:\n"
            "  --stop-after N   stop after step N with a checkpoint (the schedule still ends at\n"
            "                   schedule.max_steps; resume=true continues)\n"
            "  --quiet          no progress lines (metrics.jsonl is still written)\n"
            "\n"
            "SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 stop the run after the current step with a\n"
            "checkpoint (exit status 3); a second one stops at once.\n"
            "\n"
            "config keys (configs/README.md explains each):\n");
    lrsa_train_config_print_keys(f);
}

int lrsa_cmd_train(int argc, char **argv) {
    const char *config_path = NULL;
    lrsa_train_opts opts = {0};
    lrsa_err e;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    lrsa_train_config cfg;
    lrsa_train_config_defaults(&cfg);
    /* The config file first, then overrides in order, whatever their position. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--stop-after") || !strcmp(argv[i], "--quiet")) {
            if (argv[i][2] == 's') i++;
            continue;
        }
        if (!strchr(argv[i], '=') && argv[i][0] != '-') {
            if (config_path) {
                fprintf(stderr,
                        "lrsa: error: lrsa train takes one CONFIG.yaml, got '%s' and "
                        "'%s' (overrides are section.key=value)\n",
                        config_path, argv[i]);
                return 2;
            }
            config_path = argv[i];
        }
    }
    if (!config_path) {
        fprintf(stderr, "lrsa: error: lrsa train needs a CONFIG.yaml (see configs/)\n\n");
        usage(stderr);
        return 2;
    }
    if (lrsa_train_config_load(&cfg, config_path, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet")) {
            opts.quiet = 1;
        } else if (!strcmp(argv[i], "--stop-after")) {
            char *end;
            if (i + 1 >= argc || (opts.stop_after = strtoll(argv[i + 1], &end, 10)) <= 0 || *end) {
                fprintf(stderr, "lrsa: error: --stop-after needs a positive step number\n");
                return 2;
            }
            i++;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "lrsa: error: unknown option '%s' (see lrsa train --help)\n", argv[i]);
            return 2;
        } else if (strchr(argv[i], '=')) {
            char where[64];
            snprintf(where, sizeof where, "command line argument %d", i);
            if (lrsa_train_config_override(&cfg, argv[i], where, &e)) {
                lrsa_err_print(&e);
                return 2;
            }
        }
    }
    if (lrsa_train_config_validate(&cfg, config_path, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    lrsa_comm comm;
    if (lrsa_comm_init(&comm, &e)) {
        lrsa_err_print(&e);
        return 1;
    }
    install_stop_handlers();
    int rc = lrsa_train_run(&cfg, &opts, &comm, &e);
    if (rc == 1) {
        lrsa_comm_finalize(&comm);
        return 3;
    }
    if (rc) {
        if (comm.world > 1) lrsa_err_prefix(&e, "rank %d: ", comm.rank);
        lrsa_err_print(&e);
    }
    lrsa_comm_finalize(&comm);
    return rc ? 1 : 0;
}
