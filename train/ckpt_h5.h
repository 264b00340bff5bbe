/* HDF5 helpers of the checkpoint code: quiet error stacks, the reason a call failed (HDF5's
 * innermost message, or the system's errno text for a failed write), checksummed float
 * datasets (chunked, Fletcher32 filter) and scalar attributes. */
#ifndef LRSA_TRAIN_CKPT_H5_H
#define LRSA_TRAIN_CKPT_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* HDF5 prints its error stack by default; the checkpoint code reports its own messages. */
typedef struct lrsa_h5_quiet {
    H5E_auto2_t fn;
    void *data;
} lrsa_h5_quiet;
lrsa_h5_quiet lrsa_h5_quiet_begin(void);
void lrsa_h5_quiet_end(lrsa_h5_quiet q);

/* Why the last HDF5 call failed, from the default error stack: the system's error text when
 * a read or write of the file failed (e.g. "No space left on device"), else HDF5's innermost
 * description (e.g. "data error detected by Fletcher32 checksum"). *sys_errno gets the errno
 * HDF5 recorded (0 when none). Clears the stack. */
void lrsa_h5_failure(char *out, size_t cap, int *sys_errno);

/* A float32 dataset of the given shape, stored in chunks of about 1M elements, each with a
 * Fletcher32 checksum that HDF5 checks on every read. On failure, reason gets why. */
int lrsa_h5_write_f32(hid_t loc, const char *name, int ndim, const int64_t *shape, const float *x,
                      char *reason, size_t cap);
/* Whether a dataset carries the Fletcher32 filter (1), not (0), or cannot be asked (-1). */
int lrsa_h5_has_checksum(hid_t ds);
/* Reads a whole dataset in pieces (so every chunk's checksum is checked) into a scratch
 * buffer; 0 when every piece read, else -1 with the reason. */
int lrsa_h5_read_through(hid_t ds, char *reason, size_t cap);

int lrsa_h5_write_i64_attr(hid_t loc, const char *name, int64_t v);
int lrsa_h5_write_str_attr(hid_t loc, const char *name, const char *s);
int lrsa_h5_read_i64_attr(hid_t loc, const char *name, int64_t *v);
/* A fixed-length string attribute (malloc'd), or NULL. */
char *lrsa_h5_read_str_attr(hid_t loc, const char *name);

#endif
