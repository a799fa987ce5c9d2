// cuda_workloads.cu compiled by the host compiler on Thrust's OpenMP device
// system: CI runs the GPU benchmark workloads without a GPU.
#include "cuda_workloads.cu"
