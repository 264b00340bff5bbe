/* Internal helpers shared by the dataset reader and writer: HDF5 return-code checks that name
 * the file, the object and the source line. */
#ifndef LRSA_DATA_DATASET_H5_H
#define LRSA_DATA_DATASET_H5_H
#include <hdf5.h>

#include "base/error.h"

/* Runs an HDF5 call; on a negative result fills *e and jumps to the local `fail:` label. */
#define LRSA_H5_TRY(call, path, what, e)                                                           \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            lrsa_errorf((e), "%s: HDF5 call failed on %s (%s:%d: %s)", (path), (what), __FILE__,   \
                        __LINE__, #call);                                                          \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
#endif
