// NCCL for the emulated build (include/nccl.h): the collectives lrsa uses, run over MPI on the
// emulated device memory (which is host memory). Emulated streams are synchronous, so when a
// collective is called every earlier launch on every stream has completed: the MPI call runs at
// once and the work "enqueued" on the stream is done when it returns, as the emulated kernels
// are. Every rank must call the collectives in the same order, as NCCL requires (a rank that
// does not would block here, where real NCCL would time out). Buffers must lie in device memory
// (checked, as NCCL would fault on host pointers). bf16 sums are computed in fp32 and rounded
// to nearest even per addition; with two ranks that is the one rounding NCCL makes. Only
// communicators of one rank or of all of MPI_COMM_WORLD are made, and, as NCCL does, none with
// two ranks on one device of one host. The stand-in exists in emulation only; the real build
// links NCCL.
// MPI's C API only (Open MPI's mpi.h would bring its C++ bindings, which need another library)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "nccl.h"

struct ncclComm {
    MPI_Comm mpi; // MPI_COMM_NULL for a communicator of one rank
    int rank, nranks;
    bool aborted;
};

namespace {

const char kIdTag[] = "lrsa emulated NCCL";
char last_error[256] = "";

ncclResult_t fail(ncclResult_t r, const char *what) {
    snprintf(last_error, sizeof last_error, "emulated NCCL: %s", what);
    return r;
}

// Collectives run when called: one issued into a stream capture cannot be recorded here (the
// trainer keeps NCCL outside its graphs), so it is refused loudly rather than run at the wrong
// time.
ncclResult_t not_captured(cudaStream_t stream, const char *what) {
    if (!lrsa_emu::stream_capturing(stream)) return ncclSuccess;
    fprintf(stderr, "lrsa CUDA emulation: %s on a stream being captured (not emulated)\n", what);
    return fail(ncclInvalidUsage, "collective on a capturing stream");
}

size_t type_size(ncclDataType_t t) {
    switch (t) {
        case ncclInt8:
        case ncclUint8:
            return 1;
        case ncclFloat16:
        case ncclBfloat16:
            return 2;
        case ncclInt32:
        case ncclUint32:
        case ncclFloat32:
            return 4;
        case ncclInt64:
        case ncclUint64:
        case ncclFloat64:
            return 8;
    }
    return 0;
}

float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                          // nearest even
    return (uint16_t)(u >> 16);
}

// MPI_User_function for bf16 sums (elements carried as MPI_UINT16_T).
void bf16_sum(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = (const uint16_t *)in;
    uint16_t *b = (uint16_t *)inout;
    for (int i = 0; i < *len; i++) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

// The MPI type and operation of a collective; false (with last_error) when not emulated.
bool mpi_of(ncclDataType_t t, ncclRedOp_t op, MPI_Datatype *mt, MPI_Op *mo) {
    static MPI_Op bf16_sum_op = MPI_OP_NULL;
    if (op != ncclSum && op != ncclMax) return false;
    *mo = op == ncclSum ? MPI_SUM : MPI_MAX;
    switch (t) {
        case ncclInt8:
            *mt = MPI_INT8_T;
            return true;
        case ncclUint8:
            *mt = MPI_UINT8_T;
            return true;
        case ncclInt32:
            *mt = MPI_INT32_T;
            return true;
        case ncclUint32:
            *mt = MPI_UINT32_T;
            return true;
        case ncclInt64:
            *mt = MPI_INT64_T;
            return true;
        case ncclUint64:
            *mt = MPI_UINT64_T;
            return true;
        case ncclFloat32:
            *mt = MPI_FLOAT;
            return true;
        case ncclFloat64:
            *mt = MPI_DOUBLE;
            return true;
        case ncclBfloat16:
            if (op != ncclSum) return false;
            if (bf16_sum_op == MPI_OP_NULL) MPI_Op_create(bf16_sum, 1, &bf16_sum_op);
            *mt = MPI_UINT16_T;
            *mo = bf16_sum_op;
            return true;
        case ncclFloat16:
            return false;
    }
    return false;
}

// Common checks of a collective: a live communicator, a count MPI can pass, device buffers.
ncclResult_t check(ncclComm_t comm, size_t count, ncclDataType_t t, const void *a, size_t a_elems,
                   const void *b, size_t b_elems, const char *what) {
    if (!comm) return fail(ncclInvalidArgument, "NULL communicator");
    if (comm->aborted) return fail(ncclInvalidUsage, "the communicator was aborted");
    if (type_size(t) == 0) return fail(ncclInvalidArgument, "unknown data type");
    if (count > (size_t)INT_MAX) return fail(ncclInvalidArgument, "count above INT_MAX");
    lrsa_emu_check_device_range(a, a_elems * type_size(t), what);
    lrsa_emu_check_device_range(b, b_elems * type_size(t), what);
    return ncclSuccess;
}

} // namespace

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    memset(id, 0, sizeof *id);
    memcpy(id->internal, kIdTag, sizeof kIdTag);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t *config) {
    (void)config;
    *comm = nullptr;
    if (memcmp(id.internal, kIdTag, sizeof kIdTag))
        return fail(ncclInvalidArgument, "the unique id was not made by ncclGetUniqueId");
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return fail(ncclInvalidArgument, "rank outside the communicator");
    ncclComm c = {MPI_COMM_NULL, rank, nranks, false};
    if (nranks > 1) {
        int inited = 0, size = 0, me = -1;
        MPI_Initialized(&inited);
        if (!inited) return fail(ncclInvalidUsage, "several ranks need MPI to be initialised");
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Comm_rank(MPI_COMM_WORLD, &me);
        if (size != nranks || me != rank)
            return fail(ncclInvalidUsage, "only communicators over all of MPI_COMM_WORLD, in its "
                                          "rank order, are emulated");
        // As NCCL: two ranks of one communicator on one device (of one host) are refused.
        struct where {
            char host[MPI_MAX_PROCESSOR_NAME];
            int device;
        } me_at, *all = new where[(size_t)nranks];
        memset(&me_at, 0, sizeof me_at);
        int len = 0;
        MPI_Get_processor_name(me_at.host, &len);
        cudaGetDevice(&me_at.device);
        MPI_Allgather(&me_at, (int)sizeof me_at, MPI_BYTE, all, (int)sizeof me_at, MPI_BYTE,
                      MPI_COMM_WORLD);
        int twin = -1;
        for (int r = 0; r < nranks && twin < 0; r++)
            if (r != rank && all[r].device == me_at.device && !strcmp(all[r].host, me_at.host))
                twin = r;
        delete[] all;
        if (twin >= 0) {
            char why[160];
            snprintf(why, sizeof why, "Duplicate GPU detected: rank %d and rank %d both on CUDA "
                     "device %d", rank, twin, me_at.device);
            return fail(ncclInvalidUsage, why);
        }
        MPI_Comm_dup(MPI_COMM_WORLD, &c.mpi);
    }
    *comm = new ncclComm(c);
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
    if (!comm) return fail(ncclInvalidArgument, "NULL communicator");
    return comm->aborted ? fail(ncclInvalidUsage, "the communicator was aborted") : ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm) return fail(ncclInvalidArgument, "NULL communicator");
    if (comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
    delete comm;
    return ncclSuccess;
}

// Marks the communicator dead without talking to the other ranks (as ncclCommAbort does); later
// calls on it fail. Its MPI communicator is left to MPI_Finalize.
ncclResult_t ncclCommAbort(ncclComm_t comm) {
    if (comm) comm->aborted = true;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
    if (!comm) return fail(ncclInvalidArgument, "NULL communicator");
    *asyncError = ncclSuccess; // every call has completed before it returned
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess:
            return "no error";
        case ncclUnhandledCudaError:
            return "unhandled cuda error";
        case ncclSystemError:
            return "unhandled system error";
        case ncclInternalError:
            return "internal error";
        case ncclInvalidArgument:
            return "invalid argument";
        case ncclInvalidUsage:
            return "invalid usage";
        case ncclRemoteError:
            return "remote process exited or there was a network error";
        case ncclInProgress:
            return "NCCL operation in progress";
    }
    return "unknown result code";
}

const char *ncclGetLastError(ncclComm_t comm) {
    (void)comm;
    return last_error;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
    if (not_captured(stream, "ncclAllReduce")) return ncclInvalidUsage;
    ncclResult_t r =
        check(comm, count, datatype, sendbuff, count, recvbuff, count, "ncclAllReduce");
    if (r != ncclSuccess) return r;
    MPI_Datatype mt;
    MPI_Op mo;
    if (!mpi_of(datatype, op, &mt, &mo)) return fail(ncclInvalidArgument, "type/op not emulated");
    if (comm->mpi == MPI_COMM_NULL) {
        if (sendbuff != recvbuff) memmove(recvbuff, sendbuff, count * type_size(datatype));
        return ncclSuccess;
    }
    MPI_Allreduce(sendbuff == recvbuff ? MPI_IN_PLACE : sendbuff, recvbuff, (int)count, mt, mo,
                  comm->mpi);
    return ncclSuccess;
}

ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream) {
    if (not_captured(stream, "ncclReduceScatter")) return ncclInvalidUsage;
    ncclResult_t r =
        check(comm, recvcount, datatype, sendbuff, comm ? recvcount * (size_t)comm->nranks : 0,
              recvbuff, recvcount, "ncclReduceScatter");
    if (r != ncclSuccess) return r;
    MPI_Datatype mt;
    MPI_Op mo;
    if (!mpi_of(datatype, op, &mt, &mo)) return fail(ncclInvalidArgument, "type/op not emulated");
    const size_t bytes = recvcount * type_size(datatype);
    if (comm->mpi == MPI_COMM_NULL) {
        if (sendbuff != recvbuff) memmove(recvbuff, sendbuff, bytes);
        return ncclSuccess;
    }
    // through a separate buffer: NCCL's in-place form has recvbuff inside sendbuff
    std::vector<char> mine(bytes ? bytes : 1);
    MPI_Reduce_scatter_block(sendbuff, mine.data(), (int)recvcount, mt, mo, comm->mpi);
    memcpy(recvbuff, mine.data(), bytes);
    return ncclSuccess;
}

ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
    if (not_captured(stream, "ncclAllGather")) return ncclInvalidUsage;
    ncclResult_t r = check(comm, sendcount, datatype, sendbuff, sendcount, recvbuff,
                           comm ? sendcount * (size_t)comm->nranks : 0, "ncclAllGather");
    if (r != ncclSuccess) return r;
    const size_t sz = type_size(datatype), bytes = sendcount * sz;
    char *mine = (char *)recvbuff + (size_t)comm->rank * bytes;
    if (comm->mpi == MPI_COMM_NULL || sendbuff == mine) {
        if (sendbuff != mine) memmove(mine, sendbuff, bytes);
        if (comm->mpi == MPI_COMM_NULL) return ncclSuccess;
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_BYTE, recvbuff, (int)bytes, MPI_BYTE, comm->mpi);
        return ncclSuccess;
    }
    if (bytes > (size_t)INT_MAX) return fail(ncclInvalidArgument, "count above INT_MAX");
    MPI_Allgather(sendbuff, (int)bytes, MPI_BYTE, recvbuff, (int)bytes, MPI_BYTE, comm->mpi);
    return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream) {
    if (not_captured(stream, "ncclBroadcast")) return ncclInvalidUsage;
    ncclResult_t r =
        check(comm, count, datatype, recvbuff, count, recvbuff, count, "ncclBroadcast");
    if (r != ncclSuccess) return r;
    if (root < 0 || root >= comm->nranks) return fail(ncclInvalidArgument, "root outside");
    const size_t bytes = count * type_size(datatype);
    if (comm->rank == root && sendbuff != recvbuff) {
        lrsa_emu_check_device_range(sendbuff, bytes, "ncclBroadcast");
        memmove(recvbuff, sendbuff, bytes);
    }
    if (comm->mpi == MPI_COMM_NULL) return ncclSuccess;
    if (bytes > (size_t)INT_MAX) return fail(ncclInvalidArgument, "count above INT_MAX");
    MPI_Bcast(recvbuff, (int)bytes, MPI_BYTE, root, comm->mpi);
    return ncclSuccess;
}

// Collectives run when called, so a group only has to balance.
ncclResult_t ncclGroupStart(void) {
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
    return ncclSuccess;
}

} // extern "C"
