# Dependencies from a carried prefix (issue 17 item 7; docs/CUDA.md, "Carried dependencies").
#
# On Debian the top-level CMakeLists.txt finds HDF5, OpenBLAS, cJSON, PCRE2, utf8proc, libyaml,
# cmocka and Open MPI with CMake's find modules and pkg-config. A GPU machine that is not Debian
# has none of them installed, and may have no pkg-config: there tools/fetch-gpu-deps.sh has
# unpacked the Debian packages into one folder, and -DLRSA_DEPS_PREFIX=<that folder> (or the
# environment variable of the same name) makes lrsa_find_carried_deps() below define the same
# targets (hdf5::hdf5, BLAS::BLAS, cjson, PkgConfig::PCRE2/UTF8PROC/YAML/CMOCKA, MPI::MPI_C)
# from that folder alone (NO_DEFAULT_PATH: nothing of the system's can be picked up), so the
# rest of the build does not know where its libraries came from.
#
# Running without LD_LIBRARY_PATH: the binaries get the prefix's library folders as DT_RPATH
# (--disable-new-dtags). Unlike DT_RUNPATH, DT_RPATH also serves the libraries' own
# dependencies (libhdf5 -> libsz, libcurl ...; libmpi -> libhwloc, libevent ...) and the
# components Open MPI dlopens, and it is searched before LD_LIBRARY_PATH and the system.
# MPIEXEC_EXECUTABLE is the prefix's bin/mpiexec wrapper (OPAL_PREFIX and friends).
#
# cuDNN and NCCL, with CUDA, come from the CUDA toolkit, the system, hint variables
# (LRSA_CUDNN_ROOT, LRSA_NCCL_ROOT or NCCL_ROOT: folders holding include/ and lib/, such as a
# pip wheel's site-packages/nvidia/cudnn) or, last, from the Python environment's wheels
# (python3 -c 'import nvidia.cudnn'): lrsa_find_cudnn() below; NCCL's search is in
# CMakeLists.txt.

set(LRSA_DEPS_PREFIX "$ENV{LRSA_DEPS_PREFIX}" CACHE PATH
    "Folder made by tools/fetch-gpu-deps.sh; empty: the system's Debian packages")

# lrsa_carried_lib(<var> <names...> DIRS <dirs...>): a library from the listed folders only.
function(lrsa_carried_lib var)
  cmake_parse_arguments(A "" "" "NAMES;DIRS" ${ARGN})
  find_library(${var} NAMES ${A_NAMES} PATHS ${A_DIRS} NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  if(NOT ${var})
    message(FATAL_ERROR "LRSA_DEPS_PREFIX=${LRSA_DEPS_PREFIX}: no ${A_NAMES} in ${A_DIRS}; "
                        "rerun tools/fetch-gpu-deps.sh on Debian 12 and carry the folder")
  endif()
endfunction()

function(lrsa_carried_header var header)
  find_path(${var} ${header} PATHS ${ARGN} NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  if(NOT ${var})
    message(FATAL_ERROR "LRSA_DEPS_PREFIX=${LRSA_DEPS_PREFIX}: no ${header} in ${ARGN}; "
                        "rerun tools/fetch-gpu-deps.sh on Debian 12 and carry the folder")
  endif()
endfunction()

# lrsa_carried_target(<target> <library var> <include dir> [definitions...])
function(lrsa_carried_target target lib inc)
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES INTERFACE_LINK_LIBRARIES "${${lib}}"
                        INTERFACE_INCLUDE_DIRECTORIES "${inc}"
                        INTERFACE_COMPILE_DEFINITIONS "${ARGN}")
endfunction()

macro(lrsa_find_carried_deps)
  get_filename_component(LRSA_DEPS_PREFIX "${LRSA_DEPS_PREFIX}" ABSOLUTE)
  set(_p ${LRSA_DEPS_PREFIX})
  set(_lib ${_p}/usr/lib/x86_64-linux-gnu)
  set(_inc ${_p}/usr/include)
  if(NOT EXISTS ${_p}/MANIFEST)
    message(FATAL_ERROR "LRSA_DEPS_PREFIX=${_p} holds no MANIFEST: make it with "
                        "tools/fetch-gpu-deps.sh on Debian 12")
  endif()
  message(STATUS "lrsa: dependencies from the carried prefix ${_p} (no system packages)")

  lrsa_carried_lib(LRSA_HDF5_LIBRARY NAMES hdf5 DIRS ${_lib}/hdf5/serial)
  lrsa_carried_header(LRSA_HDF5_INCLUDE hdf5.h ${_inc}/hdf5/serial)
  lrsa_carried_target(hdf5::hdf5 LRSA_HDF5_LIBRARY ${LRSA_HDF5_INCLUDE})

  lrsa_carried_lib(LRSA_OPENBLAS_LIBRARY NAMES openblas DIRS ${_lib}/openblas-pthread)
  lrsa_carried_header(CBLAS_INCLUDE_DIR cblas.h ${_inc}/x86_64-linux-gnu/openblas-pthread)
  lrsa_carried_target(BLAS::BLAS LRSA_OPENBLAS_LIBRARY "")

  # <cjson/cJSON.h> as on Debian (the CMake config's include folder is /usr/include).
  lrsa_carried_lib(LRSA_CJSON_LIBRARY NAMES cjson DIRS ${_lib})
  lrsa_carried_header(LRSA_CJSON_INCLUDE cjson/cJSON.h ${_inc})
  lrsa_carried_target(cjson LRSA_CJSON_LIBRARY ${LRSA_CJSON_INCLUDE})

  lrsa_carried_lib(LRSA_PCRE2_LIBRARY NAMES pcre2-8 DIRS ${_lib})
  lrsa_carried_header(LRSA_PCRE2_INCLUDE pcre2.h ${_inc})
  lrsa_carried_target(PkgConfig::PCRE2 LRSA_PCRE2_LIBRARY ${LRSA_PCRE2_INCLUDE})

  lrsa_carried_lib(LRSA_UTF8PROC_LIBRARY NAMES utf8proc DIRS ${_lib})
  lrsa_carried_header(LRSA_UTF8PROC_INCLUDE utf8proc.h ${_inc})
  # The definition libutf8proc.pc adds on Debian.
  lrsa_carried_target(PkgConfig::UTF8PROC LRSA_UTF8PROC_LIBRARY ${LRSA_UTF8PROC_INCLUDE}
                      UTF8PROC_EXPORTS)

  lrsa_carried_lib(LRSA_YAML_LIBRARY NAMES yaml DIRS ${_lib})
  lrsa_carried_header(LRSA_YAML_INCLUDE yaml.h ${_inc})
  lrsa_carried_target(PkgConfig::YAML LRSA_YAML_LIBRARY ${LRSA_YAML_INCLUDE})

  lrsa_carried_lib(LRSA_CMOCKA_LIBRARY NAMES cmocka DIRS ${_lib})
  lrsa_carried_header(LRSA_CMOCKA_INCLUDE cmocka.h ${_inc})
  lrsa_carried_target(PkgConfig::CMOCKA LRSA_CMOCKA_LIBRARY ${LRSA_CMOCKA_INCLUDE})

  if(LRSA_MPI)
    find_package(Threads REQUIRED)
    lrsa_carried_lib(LRSA_MPI_LIBRARY NAMES mpi DIRS ${_lib}/openmpi/lib ${_lib})
    lrsa_carried_header(LRSA_MPI_INCLUDE mpi.h ${_lib}/openmpi/include)
    lrsa_carried_target(MPI::MPI_C LRSA_MPI_LIBRARY ${LRSA_MPI_INCLUDE})
    set_property(TARGET MPI::MPI_C APPEND PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
    set(MPI_C_FOUND TRUE)
    set(MPIEXEC_EXECUTABLE ${_p}/bin/mpiexec CACHE FILEPATH "carried Open MPI launcher" FORCE)
    set(MPIEXEC_NUMPROC_FLAG -n CACHE STRING "" FORCE)
  endif()

  # Every folder of the prefix that holds shared libraries, as DT_RPATH of what we link.
  file(GLOB_RECURSE _sos LIST_DIRECTORIES false ${_p}/usr/lib/*.so*)
  set(LRSA_DEPS_RPATH "")
  foreach(_so ${_sos})
    get_filename_component(_d ${_so} DIRECTORY)
    # Open MPI's and PMIx's components are dlopened by path, not searched for.
    if(NOT _d MATCHES "/(openmpi3|pmix)$")
      list(APPEND LRSA_DEPS_RPATH ${_d})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES LRSA_DEPS_RPATH)
  list(APPEND CMAKE_BUILD_RPATH ${LRSA_DEPS_RPATH})
  add_link_options("LINKER:--disable-new-dtags")
  unset(_sos)
endmacro()

# lrsa_find_in_wheel(<module> <header> <include var> <library var> <library names...>): the
# header and library of python3's nvidia.<module> wheel (site-packages/nvidia/<module>/{include,
# lib}: a wheel ships only the versioned .so, so name it too), replacing earlier cache results.
macro(lrsa_find_in_wheel module header inc_var lib_var)
  execute_process(COMMAND python3 -c "import nvidia.${module} as m; print(list(m.__path__)[0])"
                  OUTPUT_VARIABLE _wheel OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_wheel)
    unset(${inc_var} CACHE)
    unset(${lib_var} CACHE)
    find_path(${inc_var} ${header} HINTS ${_wheel}/include NO_DEFAULT_PATH)
    find_library(${lib_var} NAMES ${ARGN} HINTS ${_wheel}/lib NO_DEFAULT_PATH)
  endif()
  unset(_wheel)
endmacro()

# cuDNN (headers and libcudnn.so.9): sets LRSA_HAVE_CUDNN and, when found, the imported target
# lrsa::cudnn. Linked by the code that uses it (issue 17 item 4), not by lrsa_core as a whole.
macro(lrsa_find_cudnn)
  set(LRSA_HAVE_CUDNN OFF)
  set(LRSA_CUDNN_ROOT "$ENV{LRSA_CUDNN_ROOT}" CACHE PATH
      "Folder with include/cudnn.h and lib/libcudnn.so*, e.g. site-packages/nvidia/cudnn")
  set(_hints ${LRSA_CUDNN_ROOT})
  if(NOT LRSA_CUDNN_ROOT)
    list(APPEND _hints ${CUDAToolkit_INCLUDE_DIRS}/.. ${CUDAToolkit_LIBRARY_DIR}/..)
  endif()
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_hints} PATH_SUFFIXES include)
  # A wheel ships only libcudnn.so.9 (no unversioned link), hence the second name; NAMES_PER_DIR
  # so that the hinted folder's libcudnn.so.9 wins over a system libcudnn.so found by the first
  # name (which paired the wheel's 9.26 headers with the toolkit's 9.19 library).
  find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 NAMES_PER_DIR HINTS ${_hints} PATH_SUFFIXES lib lib64)
  if((NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY) AND NOT LRSA_CUDNN_ROOT)
    # Last resort: the cuDNN wheel of the Python environment (nvidia-cudnn-cu*, as PyTorch has).
    lrsa_find_in_wheel(cudnn cudnn.h CUDNN_INCLUDE_DIR CUDNN_LIBRARY cudnn libcudnn.so.9)
  endif()
  if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    set(LRSA_HAVE_CUDNN ON)
    if(NOT TARGET lrsa::cudnn)
      add_library(lrsa::cudnn INTERFACE IMPORTED GLOBAL)
      # SYSTEM FALSE: its folder goes on the command line as -I, searched before the CUDA
      # toolkit's -isystem folder, which may hold a cudnn.h of its own (9.19 beside a 9.26 wheel:
      # test_dnn_versions caught the pair).
      set_target_properties(lrsa::cudnn PROPERTIES INTERFACE_LINK_LIBRARIES ${CUDNN_LIBRARY}
                            INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR} SYSTEM FALSE)
    endif()
    message(STATUS "lrsa: cuDNN ${CUDNN_LIBRARY} (headers ${CUDNN_INCLUDE_DIR})")
  else()
    message(STATUS "lrsa: cuDNN not found (set LRSA_CUDNN_ROOT): cuDNN attention disabled")
  endif()
  unset(_hints)
endmacro()
