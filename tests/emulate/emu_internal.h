// Internal interfaces between the emulation's runtime (emu_runtime.cpp), its scheduler
// (emu_scheduler.cpp), its warp instructions (emu_warp.cpp) and its library stand-ins.
#ifndef LRSA_EMU_INTERNAL_H
#define LRSA_EMU_INTERNAL_H
#include "lrsa_emu_cuda.h"

namespace lrsa_emu {
// Runs every block of a validated launch.
void run_launch(const LaunchSite &s, const std::function<void()> &body);
} // namespace lrsa_emu
#endif
