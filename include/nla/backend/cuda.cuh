#pragma once
// The Cuda backend: the nla::cuda::Cuda type and every kernel it implements.
// Include this from .cu translation units compiled by nvcc (GPU), or from a
// host translation unit built with THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP
// (the same code on the CPU, for tests). Op front-ends in ops/ find the
// kernels by argument-dependent lookup on the Cuda object.

#include "nla/backend/cuda/attention.cuh"
#include "nla/backend/cuda/cross_entropy.cuh"
#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/elementwise.cuh"
#include "nla/backend/cuda/embedding.cuh"
#include "nla/backend/cuda/gemm.cuh"
#include "nla/backend/cuda/norm.cuh"
#include "nla/backend/cuda/optimizer.cuh"
#include "nla/backend/cuda/rope.cuh"
#include "nla/backend/cuda/token_draw.cuh"
