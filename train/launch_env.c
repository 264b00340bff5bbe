#include "train/launch_env.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *process_env(void *ctx, const char *name) {
    (void)ctx;
    return getenv(name);
}

/* One launcher's variable names; local_* may be NULL (not provided). */
typedef struct launcher_vars {
    const char *name, *marker, *rank, *world, *world_alt, *local_rank, *local_world;
} launcher_vars;

static const launcher_vars launchers[] = {
    {"openmpi", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", NULL,
     "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    /* Inside an sbatch script SLURM_NTASKS is set too, but only srun starts a step. */
    {"slurm", "SLURM_STEP_ID", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS",
     "SLURM_LOCALID", NULL},
    {"slurm", "SLURM_STEPID", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS",
     "SLURM_LOCALID", NULL},
    {"pmi", "PMI_SIZE", "PMI_RANK", "PMI_SIZE", NULL, "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
};

/* Parses a non-negative int variable; *out = dflt when it is absent (or required fails). */
static int read_int(lrsa_env_lookup get, void *ctx, const char *launcher, const char *var,
                    int required, int dflt, int *out, lrsa_err *e) {
    const char *s = var ? get(ctx, var) : NULL;
    *out = dflt;
    if (!s) {
        if (required)
            return lrsa_errorf(e,
                               "launched by %s, but %s is not set; start lrsa with mpirun or "
                               "srun, or unset the launcher's variables for a single process",
                               launcher, var);
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v > INT_MAX)
        return lrsa_errorf(e, "launched by %s: %s='%s' is not a non-negative integer", launcher,
                           var, s);
    *out = (int)v;
    return 0;
}

int lrsa_launch_read(lrsa_launch *l, lrsa_env_lookup lookup, void *ctx, lrsa_err *e) {
    lrsa_env_lookup get = lookup ? lookup : process_env;
    memset(l, 0, sizeof *l);
    snprintf(l->launcher, sizeof l->launcher, "none");
    l->world = 1;
    l->local_rank = l->local_world = -1;
    const launcher_vars *v = NULL;
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0] && !v; i++)
        if (get(ctx, launchers[i].marker)) v = &launchers[i];
    if (!v) {
        l->local_rank = 0;
        l->local_world = 1;
        return 0;
    }
    snprintf(l->launcher, sizeof l->launcher, "%s", v->name);
    const char *world_var = v->world;
    if (!get(ctx, world_var) && v->world_alt) world_var = v->world_alt;
    if (read_int(get, ctx, v->name, v->rank, 1, 0, &l->rank, e) ||
        read_int(get, ctx, v->name, world_var, 1, 1, &l->world, e) ||
        read_int(get, ctx, v->name, v->local_rank, 0, -1, &l->local_rank, e) ||
        read_int(get, ctx, v->name, v->local_world, 0, -1, &l->local_world, e))
        return -1;
    if (l->world < 1 || l->rank >= l->world)
        return lrsa_errorf(e, "launched by %s: rank %d (%s) is outside a world of %d (%s)", v->name,
                           l->rank, v->rank, l->world, world_var);
    if (l->local_world >= 0 && (l->local_world < 1 || l->local_rank >= l->local_world))
        return lrsa_errorf(e, "launched by %s: local rank %d (%s) is outside %d local ranks (%s)",
                           v->name, l->local_rank, v->local_rank, l->local_world, v->local_world);
    if (l->local_rank >= l->world)
        return lrsa_errorf(e, "launched by %s: local rank %d (%s) is not below the world size %d",
                           v->name, l->local_rank, v->local_rank, l->world);
    return 0;
}

int lrsa_launch_pick_device(const lrsa_launch *l, int n_devices, int *device, lrsa_err *e) {
    *device = -1;
    if (n_devices < 1) return lrsa_errorf(e, "no CUDA device is visible to rank %d", l->rank);
    if (n_devices == 1) {
        *device = 0; /* one device per rank (CUDA_VISIBLE_DEVICES or --gpus-per-task) */
        return 0;
    }
    int local = l->local_rank >= 0 ? l->local_rank : 0;
    if (local >= n_devices)
        return lrsa_errorf(e,
                           "rank %d has local rank %d but its node shows only %d CUDA devices: "
                           "start at most %d ranks per node (one GPU each)",
                           l->rank, local, n_devices, n_devices);
    *device = local;
    return 0;
}
