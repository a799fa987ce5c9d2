// The Cuda backend's parity suite on Thrust's OpenMP device system: the same
// source as the nvcc build, compiled by the host compiler (see parity_test.cu).
#include "parity_test.cu"
