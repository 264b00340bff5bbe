/* The main of the NCCL tests (test_gpu_nccl, test_gpu_zero), run as one rank and under mpiexec:
 * MPI start-up, the skip (77, on every rank of the node alike) where the node has fewer visible
 * GPUs than ranks, the job's NCCL communicator, then the cmocka group. Include only under
 * LRSA_HAVE_NCCL. */
#ifndef LRSA_TESTS_GPU_NCCL_TEST_MAIN_H
#define LRSA_TESTS_GPU_NCCL_TEST_MAIN_H
#include <stdio.h>

#include "kernels/device/device.h"
#include "test_util.h"
#include "train/comm.h"
#include "train/comm_nccl.h"

static inline int nccl_test_main(lrsa_comm *world, const char *group,
                                 const struct CMUnitTest *tests, size_t n_tests) {
    lrsa_err e;
    if (lrsa_comm_init(world, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    int devices = lrsa_cuda_device_count();
    if (devices < world->local_world) {
        printf("skipped: %d rank(s) on this node need as many GPUs, %d visible (%s)\n",
               world->local_world, devices, desc);
        lrsa_comm_finalize(world);
        return 77;
    }
    if (lrsa_nccl_init(world, 60, &e)) {
        fprintf(stderr, "rank %d: %s\n", world->rank, e.msg);
        return 1;
    }
    printf("rank %d of %d on GPU %d: %s\n", world->rank, world->world, lrsa_nccl_device(world),
           desc);
    int rc = _cmocka_run_group_tests(group, tests, n_tests, NULL, NULL);
    lrsa_comm_finalize(world);
    return rc;
}
#endif
