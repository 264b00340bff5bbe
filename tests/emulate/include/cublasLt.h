/* Emulated build only: see lrsa_emu_cublas.h. */
#include "lrsa_emu_cublas.h"
