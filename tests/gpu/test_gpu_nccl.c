/* The NCCL backend of the communication interface on device buffers: registered twice, as one
 * rank (one GPU) and under `mpiexec -n 2` (two GPUs; NCCL refuses two ranks on one device, so
 * with fewer GPUs than ranks on the node every rank exits 77). The five collectives through
 * comm.h in every type the trainer uses (fp32, fp64, bf16, int32), NCCL's in-place block
 * conventions, a group of all-gathers, the barrier; then the watchdog: a stream that does not
 * finish in time (one rank: a sleeping host callback; two ranks: a peer that never joins the
 * collective) makes lrsa_nccl_wait fail with a timeout and abort the communicator, and later
 * calls on it fail at once instead of hanging. Compiled, NEVER RUN ON A GPU. */
#include <stdio.h>
#include <string.h>

#include "kernels/device/device.h"
#include "train/comm.h"

#ifndef LRSA_HAVE_NCCL
int main(void) {
    printf("skipped: built without CUDA and NCCL\n");
    return 77;
}
#else
#include <cuda_runtime_api.h>
#include <unistd.h>

#include "test_util.h"
#include "gpu_mem.h"
#include "nccl_test_main.h"
#include "train/comm_nccl.h"

static lrsa_comm world;

static double value(int rank, int i) {
    return 10.0 * (rank + 1) + (i % 50); /* small integers: exact in bf16 sums too */
}

static double sum_over_ranks(int i) {
    double s = 0;
    for (int r = 0; r < world.world; r++) s += value(r, i);
    return s;
}

static void *upload_f32(int n) {
    float *h = lrsa_malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) h[i] = (float)value(world.rank, i);
    void *d = gm_alloc(sizeof(float) * (size_t)n);
    gm_upload(d, h, sizeof(float) * (size_t)n);
    free(h);
    return d;
}

static void test_allreduce(void **state) {
    (void)state;
    lrsa_err e;
    enum { N = 4099 };
    float *f = upload_f32(N), hf[N];
    double hd[N], *d = gm_alloc(sizeof hd);
    uint16_t hb[N], *b = gm_alloc(sizeof hb);
    int32_t hi[N], *m = gm_alloc(sizeof hi);
    for (int i = 0; i < N; i++) {
        hd[i] = value(world.rank, i);
        hb[i] = lrsa_f32_to_bf16((float)value(world.rank, i));
        hi[i] = world.rank * 1000 + i;
    }
    gm_upload(d, hd, sizeof hd);
    gm_upload(b, hb, sizeof hb);
    gm_upload(m, hi, sizeof hi);
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_DEVICE, f, N, LRSA_F32, LRSA_RED_SUM, NULL, &e), 0);
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_DEVICE, d, N, LRSA_F64, LRSA_RED_SUM, NULL, &e), 0);
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_DEVICE, b, N, LRSA_BF16, LRSA_RED_SUM, NULL, &e), 0);
    assert_int_equal(
        lrsa_comm_allreduce(&world, LRSA_MEM_DEVICE, m, N, LRSA_I32, LRSA_RED_MAX, NULL, &e), 0);
    assert_int_equal(lrsa_nccl_wait(&world, NULL, &e), 0);
    gm_download(hf, f, sizeof hf);
    gm_download(hd, d, sizeof hd);
    gm_download(hb, b, sizeof hb);
    gm_download(hi, m, sizeof hi);
    for (int i = 0; i < N; i++) {
        if (hf[i] != (float)sum_over_ranks(i) || hd[i] != sum_over_ranks(i) ||
            lrsa_bf16_to_f32(hb[i]) != (float)sum_over_ranks(i) ||
            hi[i] != (world.world - 1) * 1000 + i)
            fail_msg("element %d: f32 %g f64 %g bf16 %g max %d, expected %g and %d", i, hf[i],
                     hd[i], lrsa_bf16_to_f32(hb[i]), hi[i], sum_over_ranks(i),
                     (world.world - 1) * 1000 + i);
    }
    void *bufs[] = {f, d, b, m};
    for (int i = 0; i < 4; i++) lrsa_dev_free(bufs[i]);
}

/* In place as NCCL defines it: my block at rank * block; then a grouped all-gather of two
 * halves brings every block back everywhere; then a broadcast from the last rank. */
static void test_reduce_scatter_allgather_broadcast(void **state) {
    (void)state;
    lrsa_err e;
    const int block = 1030, n = block * world.world;
    float *d = upload_f32(n), *h = lrsa_malloc(sizeof(float) * (size_t)n);
    cudaStream_t s;
    gm_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    assert_int_equal(lrsa_comm_reduce_scatter(&world, LRSA_MEM_DEVICE, d, block, LRSA_F32, s, &e),
                     0);
    assert_int_equal(lrsa_nccl_wait(&world, s, &e), 0);
    gm_download(h, d, sizeof(float) * (size_t)n);
    for (int j = 0; j < block; j++) {
        int i = world.rank * block + j;
        if (h[i] != (float)sum_over_ranks(i)) fail_msg("reduce-scatter element %d: %g", i, h[i]);
    }
    for (int i = 0; i < n; i++)
        if (i / block != world.rank) h[i] = -1.0f;
    gm_upload(d, h, sizeof(float) * (size_t)n);
    /* the same buffer seen as two interleaved all-gathers of half blocks is not NCCL's layout,
     * so group two all-gathers over two separate buffers instead */
    float *d2 = upload_f32(n);
    assert_int_equal(lrsa_nccl_group_start(&world, &e), 0);
    assert_int_equal(lrsa_comm_allgather(&world, LRSA_MEM_DEVICE, d, block, LRSA_F32, s, &e), 0);
    assert_int_equal(lrsa_comm_allgather(&world, LRSA_MEM_DEVICE, d2, block, LRSA_F32, s, &e), 0);
    assert_int_equal(lrsa_nccl_group_end(&world, &e), 0);
    assert_int_equal(lrsa_nccl_wait(&world, s, &e), 0);
    gm_download(h, d, sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (h[i] != (float)sum_over_ranks(i)) fail_msg("all-gather element %d: %g", i, h[i]);
    gm_download(h, d2, sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) /* block r of rank r's own values */
        if (h[i] != (float)value(i / block, i)) fail_msg("all-gather 2 element %d: %g", i, h[i]);
    int root = world.world - 1;
    assert_int_equal(lrsa_comm_broadcast(&world, LRSA_MEM_DEVICE, d2, n, LRSA_F32, root, s, &e), 0);
    assert_int_equal(lrsa_nccl_wait(&world, s, &e), 0);
    gm_download(h, d2, sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (h[i] != (float)value(i / block, i)) fail_msg("broadcast element %d: %g", i, h[i]);
    assert_int_equal(lrsa_nccl_barrier(&world, &e), 0);
    gm_check(cudaStreamDestroy(s), "cudaStreamDestroy");
    lrsa_dev_free(d);
    lrsa_dev_free(d2);
    free(h);
}

static void CUDART_CB sleep_3s(void *arg) {
    (void)arg;
    sleep(3);
}

/* A communicator of its own with a 1 s deadline: a stream still busy after it is a failure
 * that aborts that communicator; the job's communicator is untouched. */
static void test_timeout_aborts(void **state) {
    (void)state;
    lrsa_err e;
    lrsa_comm sub;
    assert_int_equal(lrsa_comm_split(&world, 0, world.rank, &sub, &e), 0);
    assert_int_equal(lrsa_nccl_init(&sub, 1.0, &e), 0);
    cudaStream_t s;
    gm_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    float *d = upload_f32(64);
    if (world.world == 1) {
        gm_check(cudaLaunchHostFunc(s, sleep_3s, NULL), "cudaLaunchHostFunc");
    } else if (sub.rank == 0) {
        /* rank 0 all-reduces; its peer never joins */
        assert_int_equal(
            lrsa_comm_allreduce(&sub, LRSA_MEM_DEVICE, d, 64, LRSA_F32, LRSA_RED_SUM, s, &e), 0);
    }
    if (world.world == 1 || sub.rank == 0) {
        int rc = lrsa_nccl_wait(&sub, s, &e);
        assert_int_equal(rc, -1);
        printf("rank %d: %s\n", world.rank, e.msg);
        assert_non_null(strstr(e.msg, "did not finish within 1 s"));
    }
    /* the peer aborts only after rank 0 timed out (a host barrier), as a failing rank would */
    assert_int_equal(lrsa_comm_barrier(&world, &e), 0);
    if (world.world > 1 && sub.rank != 0) lrsa_nccl_abort(&sub);
    assert_true(lrsa_nccl_aborted(&sub));
    assert_int_equal(
        lrsa_comm_allreduce(&sub, LRSA_MEM_DEVICE, d, 64, LRSA_F32, LRSA_RED_SUM, s, &e), -1);
    assert_non_null(strstr(e.msg, "aborted after an earlier failure"));
    gm_check(cudaStreamSynchronize(s), "cudaStreamSynchronize"); /* the callback, if any */
    lrsa_nccl_free(&sub);
    lrsa_comm_free_sub(&sub);
    lrsa_dev_free(d);
    gm_check(cudaStreamDestroy(s), "cudaStreamDestroy");
    /* the job's communicator still works */
    assert_int_equal(lrsa_nccl_barrier(&world, &e), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce),
        cmocka_unit_test(test_reduce_scatter_allgather_broadcast),
        cmocka_unit_test(test_timeout_aborts),
    };
    return nccl_test_main(&world, "test_gpu_nccl", tests, sizeof tests / sizeof tests[0]);
}
#endif
