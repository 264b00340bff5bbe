/* Emulated build only: see lrsa_emu_cuda.h. */
#include "lrsa_emu_cuda.h"
