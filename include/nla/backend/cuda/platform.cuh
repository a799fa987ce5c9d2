#pragma once
// Which Thrust device system the Cuda backend is built for. With nvcc and the
// default system (CUDA) the backend runs on the GPU: Thrust launches on the
// model's stream, GEMMs go to cuBLASLt. Built by a host compiler with
//   -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP   (or _CPP)
// the same code runs on the CPU through Thrust's OpenMP system, and the
// CUDA-only pieces fall back to portable Thrust loops. That second build is
// how every Thrust code path is tested on machines without a GPU.

#include <thrust/detail/config.h>

#include "nla/core/config.hpp"  // NLA_HOST_DEVICE

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#if !defined(__CUDACC__)
#error \
    "the Cuda backend with Thrust's CUDA device system must be compiled by nvcc (.cu files); \
for a host build define THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP"
#endif
#define NLA_CUDA_DEVICE_SYSTEM 1
#else
#define NLA_CUDA_DEVICE_SYSTEM 0
#endif
