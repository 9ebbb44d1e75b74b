# Finds what the mixprec INTERFACE target links: the CUDA toolkit's headers
# (cuda_fp16.h, cuda_bf16.h, cuda_fp8.h) and CCCL (Thrust, CUB, libcu++) with
# the Thrust device system selected by MIXPREC_DEVICE_SYSTEM.
#
# Shared by the source tree (add_subdirectory) and the installed package
# (find_package), so both pick the backend the same way:
#   MIXPREC_DEVICE_SYSTEM = CUDA | OMP | CPP, mirroring CCCL's
#   CCCL_THRUST_DEVICE_SYSTEM. When unset: CUDA if the CUDA language is
#   enabled in the consuming project, else OMP if OpenMP is found, else CPP.

include_guard(GLOBAL)

macro(mixprec_find_dependencies)
  find_package(CUDAToolkit REQUIRED)

  if(NOT MIXPREC_DEVICE_SYSTEM)
    get_property(_mixprec_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
    if("CUDA" IN_LIST _mixprec_languages)
      set(_mixprec_default_system CUDA)
    else()
      find_package(OpenMP COMPONENTS CXX QUIET)
      if(OpenMP_CXX_FOUND)
        set(_mixprec_default_system OMP)
      else()
        set(_mixprec_default_system CPP)
      endif()
    endif()
    set(MIXPREC_DEVICE_SYSTEM ${_mixprec_default_system} CACHE STRING
        "Thrust device system mixprec runs on: CUDA, OMP or CPP")
  endif()
  set_property(CACHE MIXPREC_DEVICE_SYSTEM PROPERTY STRINGS CUDA OMP CPP)
  if(NOT MIXPREC_DEVICE_SYSTEM MATCHES "^(CUDA|OMP|CPP)$")
    message(FATAL_ERROR "MIXPREC_DEVICE_SYSTEM must be CUDA, OMP or CPP (got '${MIXPREC_DEVICE_SYSTEM}')")
  endif()

  # CCCL builds its CCCL::Thrust target from this cache option.
  set(CCCL_THRUST_DEVICE_SYSTEM ${MIXPREC_DEVICE_SYSTEM} CACHE STRING
      "Device system for CCCL::Thrust (set by mixprec)" FORCE)
  find_package(CCCL CONFIG REQUIRED
    HINTS "${CUDAToolkit_LIBRARY_DIR}/cmake" "${CUDAToolkit_LIBRARY_ROOT}/lib64/cmake")

  # Optional: the JSON parser of io/safetensors.hpp (target mixprec::safetensors).
  find_package(nlohmann_json 3 CONFIG QUIET)

  # Optional: the engines of mixprec/dist. MPI (mixprec::mpi, host backend)
  # and the CUDA toolkit's NCCL (mixprec::nccl, CUDA backend).
  find_package(MPI COMPONENTS CXX QUIET)
  find_library(MIXPREC_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  find_path(MIXPREC_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  if(MIXPREC_NCCL_LIBRARY AND MIXPREC_NCCL_INCLUDE_DIR AND NOT TARGET mixprec_nccl_runtime)
    add_library(mixprec_nccl_runtime UNKNOWN IMPORTED GLOBAL)
    set_target_properties(mixprec_nccl_runtime PROPERTIES
      IMPORTED_LOCATION ${MIXPREC_NCCL_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES ${MIXPREC_NCCL_INCLUDE_DIR})
  endif()
endmacro()
