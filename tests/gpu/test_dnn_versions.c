// Which cuDNN and NCCL the build found, and that each header matches the library it links: a
// carried build (docs/CUDA.md, "Carried dependencies") takes both from the PyTorch wheels
// (nvidia/cudnn, nvidia/nccl) while the CUDA toolkit of the same machine may hold other copies;
// headers from one and a library from the other compile and link, then misbehave. The version
// queries need no GPU and no driver, so this runs in every CUDA build.
#include <stdio.h>

#ifdef LRSA_HAVE_CUDNN
#include <cudnn.h>
#endif
#ifdef LRSA_HAVE_NCCL
#include <nccl.h>
#endif

int main(void) {
    int failures = 0;
#ifdef LRSA_HAVE_CUDNN
    size_t cudnn_lib = cudnnGetVersion();
    printf("cuDNN: header %d, library %zu (built for CUDA runtime %zu)\n", CUDNN_VERSION, cudnn_lib,
           cudnnGetCudartVersion());
    if (cudnn_lib != (size_t)CUDNN_VERSION) {
        fprintf(stderr,
                "FAIL: cudnn.h is %d but the linked libcudnn is %zu: point LRSA_CUDNN_ROOT at "
                "one folder holding both\n",
                CUDNN_VERSION, cudnn_lib);
        failures++;
    }
#endif
#ifdef LRSA_HAVE_NCCL
    int nccl_lib = 0;
    ncclResult_t rc = ncclGetVersion(&nccl_lib);
    printf("NCCL: header %d, library %d\n", NCCL_VERSION_CODE, nccl_lib);
    if (rc != ncclSuccess || nccl_lib != NCCL_VERSION_CODE) {
        fprintf(stderr,
                "FAIL: nccl.h is %d but the linked libnccl is %d (rc %d): point "
                "LRSA_NCCL_ROOT at one folder holding both\n",
                NCCL_VERSION_CODE, nccl_lib, (int)rc);
        failures++;
    }
#endif
    return failures ? 1 : 0;
}
