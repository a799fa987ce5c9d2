#pragma once
// Build-wide macros. NLA_HOST_DEVICE marks functions that nvcc must compile for
// both host and device (the RNG, the scalar helpers); plain C++ compilers see
// nothing.

#if defined(__CUDACC__)
#define NLA_HOST_DEVICE __host__ __device__
#else
#define NLA_HOST_DEVICE
#endif

#define NLA_VERSION_MAJOR 0
#define NLA_VERSION_MINOR 1
#define NLA_VERSION_PATCH 0
