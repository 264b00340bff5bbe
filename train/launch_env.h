/* Who started this process and where it sits in the job, read from the launcher's environment:
 *   Open MPI's mpirun: OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE;
 *   Slurm's srun:      SLURM_PROCID / SLURM_STEP_NUM_TASKS (or SLURM_NTASKS) / SLURM_LOCALID,
 *                      counted only inside a job step (SLURM_STEP_ID or SLURM_STEPID set), so a
 *                      plain `lrsa train` in an sbatch script stays one rank;
 *   MPICH's Hydra:     PMI_RANK / PMI_SIZE / MPI_LOCALRANKID / MPI_LOCALNRANKS.
 * The first launcher found wins, in that order. MPI_Init still bootstraps the job where MPI is
 * built in (comm.c); the environment says whether to call it, gives the local rank (which GPU)
 * and is cross-checked against what MPI reports. The lookup is a function so tests can pass a
 * fake environment. */
#ifndef LRSA_TRAIN_LAUNCH_ENV_H
#define LRSA_TRAIN_LAUNCH_ENV_H

#include "base/error.h"

typedef struct lrsa_launch {
    char launcher[16];           /* "none", "openmpi", "slurm" or "pmi" */
    int rank, world;             /* 0 and 1 without a launcher */
    int local_rank, local_world; /* on this node; -1 when the launcher does not say */
} lrsa_launch;

/* Returns the value of an environment variable or NULL (getenv's contract). */
typedef const char *(*lrsa_env_lookup)(void *ctx, const char *name);

/* Reads the launch from `lookup` (NULL: the process environment). A value that is not a
 * non-negative integer, or a rank outside its world, is an error naming the variable. */
int lrsa_launch_read(lrsa_launch *l, lrsa_env_lookup lookup, void *ctx, lrsa_err *e);

/* The CUDA device a rank uses: its local rank, or 0 where the launcher (or
 * CUDA_VISIBLE_DEVICES) leaves each rank one visible device. An error, naming the counts, when
 * the node has more ranks than visible devices. */
int lrsa_launch_pick_device(const lrsa_launch *l, int n_devices, int *device, lrsa_err *e);

#endif
