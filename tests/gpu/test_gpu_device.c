/* The device probe: a GPU-less machine reports 0 devices (and the test is skipped); a machine
 * with a GPU must describe it. */
#include <stdio.h>
#include <string.h>

#include "kernels/device/device.h"

int main(void) {
    char desc[256], vers[256];
    lrsa_cuda_describe(desc, sizeof desc);
    lrsa_cuda_library_versions(vers, sizeof vers);
    int n = lrsa_cuda_device_count();
    printf("devices: %d; %s; %s\n", n, desc, vers);
    if (n == 0) {
        if (strncmp(desc, "no CUDA device", 14) != 0) return 1;
        return 77;
    }
    return strstr(desc, "SMs") ? 0 : 1;
}
