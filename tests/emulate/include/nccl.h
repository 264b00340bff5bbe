/* Emulated build only: the part of NCCL's C API that lrsa uses (train/comm_nccl.c), implemented
 * by emu_nccl.cpp over MPI on the emulated device memory (host memory). It stands in for NCCL the
 * way emu_cublaslt.cpp stands in for cuBLASLt: the data-parallel GPU code (comm_nccl.c, the ZeRO-1
 * engine, the GPU trainer) runs its real calls in the emulated CI tests; NCCL itself (its
 * transports, its reduction order beyond two ranks, its asynchronous errors) is not emulated.
 * Streams are synchronous in the emulation, so each collective runs when it is called. */
#ifndef LRSA_EMU_NCCL_H
#define LRSA_EMU_NCCL_H
#include <stddef.h>

#include "lrsa_emu_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NCCL_VERSION_CODE    22800
#define NCCL_UNIQUE_ID_BYTES 128

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
} ncclResult_t;

typedef enum {
    ncclInt8 = 0,
    ncclUint8 = 1,
    ncclInt32 = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6,
    ncclFloat32 = 7,
    ncclFloat64 = 8,
    ncclBfloat16 = 9,
} ncclDataType_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef struct ncclComm *ncclComm_t;

typedef struct {
    int blocking; /* accepted and ignored: every call completes before it returns */
} ncclConfig_t;
#define NCCL_CONFIG_INITIALIZER                                                                    \
    { 1 }

ncclResult_t ncclGetUniqueId(ncclUniqueId *id);
/* Communicators of one rank, or of every rank of MPI_COMM_WORLD (nranks = its size, rank = the
 * MPI rank): the only ones the emulation makes. */
ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t *config);
ncclResult_t ncclCommFinalize(ncclComm_t comm);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError);
const char *ncclGetErrorString(ncclResult_t result);
const char *ncclGetLastError(ncclComm_t comm);

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream);
ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);

#ifdef __cplusplus
} /* extern "C" */
#endif
#endif
