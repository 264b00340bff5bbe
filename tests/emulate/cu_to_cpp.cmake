# Rewrites a .cu/.cuh source for the emulated build (run by tests/emulate/CMakeLists.txt):
#   kernel<<<grid, block, smem, stream>>>(args)  ->  kernel, ::lrsa_emu::LaunchCfg(__FILE__,
#       __LINE__, grid, block, smem, stream)(args)     (lrsa_emu_device.h runs the launch)
#   extern __shared__ T name[];                   ->  T *name = (T *)::lrsa_emu::dynamic_smem();
#   NULL                                          ->  nullptr (so it converts to any pointer
#                                                     parameter after passing through a tuple)
# A #line directive keeps the original file and line numbers in messages.
# usage: cmake -DIN=src.cu -DOUT=out.cpp -P cu_to_cpp.cmake
file(READ "${IN}" s)
string(REPLACE "<<<" ", ::lrsa_emu::LaunchCfg(__FILE__, __LINE__, " s "${s}")
string(REPLACE ">>>(" ")(" s "${s}")
string(REGEX REPLACE
       "extern __shared__ (__align__\\([0-9]+\\) )?([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) ([A-Za-z_][A-Za-z0-9_]*)\\[\\];"
       "\\2 *\\3 = (\\2 *)::lrsa_emu::dynamic_smem();" s "${s}")
foreach(pass 1 2)
  string(REGEX REPLACE "([^A-Za-z0-9_])NULL([^A-Za-z0-9_])" "\\1nullptr\\2" s "${s}")
endforeach()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${s}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
